"""uvicorn's HTTP/1.1 protocol with the two things ``serve`` needs that it lacks.

1. A deadline for the request head. uvicorn arms its keep-alive timer only after a response, so
   a connection that never completes a request head (opened and left idle, or trickling a byte
   at a time) holds a slot for ever; 128 of them (``limit_concurrency``) kept every real client
   at 503. Here each connection must deliver a complete head within ``HEAD_TIMEOUT`` seconds of
   opening (or of its previous response), else it gets a JSON 408 and is closed.
2. Errors of one shape. uvicorn answers a malformed request (400) and an exceeded concurrency
   limit (503) in plain text; here both are JSON ``{"error": "..."}`` like every other answer.
"""

from __future__ import annotations

import json
from typing import Any

import h11
from uvicorn.protocols.http import h11_impl
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT = 10.0  # seconds to send a complete request head (line and headers)
KEEP_ALIVE_TIMEOUT = 5  # seconds an idle keep-alive connection stays open
MAX_HEAD_BYTES = 16 * 1024  # request line plus headers; more is refused as malformed


def error_json(path: str, status: int, message: str) -> dict[str, Any]:
    """The error body for ``path``: OpenAI's shape under ``/v1`` (what its clients parse; type
    ``server_error`` for 5xx), ``{"error": message}`` everywhere else."""
    if path == "/v1" or path.startswith("/v1/"):
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return {"error": message}


def error_bytes(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 error response with a JSON body, closing the connection."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


async def unavailable(scope: Any, receive: Any, send: Any) -> None:
    """uvicorn's answer when ``limit_concurrency`` is reached, as JSON."""
    body = json.dumps(
        error_json(
            str(scope.get("path", "")),
            503,
            "the server is at its limit of concurrent connections; retry shortly",
        )
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def use_json_unavailable() -> None:
    """uvicorn looks up its 503 app by this module-level name when the concurrency limit is hit
    (uvicorn 0.29 to 0.54 at least); pointing it at ours makes that answer JSON too."""
    if hasattr(h11_impl, "service_unavailable"):
        h11_impl.service_unavailable = unavailable


class GuardedH11Protocol(H11Protocol):
    """:class:`H11Protocol` with a request-head deadline and JSON error answers."""

    _head_timer: Any = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()  # the next request on this connection gets the same deadline

    def send_400_response(self, msg: str) -> None:
        self._disarm_head_timer()
        self.transport.write(
            error_bytes(
                400,
                "Bad Request",
                "malformed HTTP request (" + msg.rstrip(".") + "); check the request line and headers",
            )
        )
        self.transport.close()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_timeout)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        # IDLE: no complete request head since the connection opened or the last response.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.write(
                error_bytes(
                    408,
                    "Request Timeout",
                    f"no complete request within {HEAD_TIMEOUT:g} s; connection closed",
                )
            )
            self.transport.close()
