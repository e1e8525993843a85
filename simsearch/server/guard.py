"""The ASGI layer in front of the app: Host check, body limits, JSON-only bodies, safe headers.

It runs before any routing or parsing, so an oversized or cross-site request costs nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from typing import Any, Awaitable, Callable

from simsearch.server.protocol import error_json

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# The page loads only its own script and style and talks only to this server.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CSP.encode()),
    (b"cache-control", b"no-store"),
]
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
BODY_TIMEOUT = 60.0  # seconds to send a whole request body (32 MiB at ~4 Mbit/s)
log = logging.getLogger("simsearch.serve")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Guard:
    """Wraps an ASGI app.

    ``hosts``: the Host header names accepted (None: any; ``*`` among them: any), plus any IP
    address when ``any_address``. A web page cannot then reach the server through DNS rebinding
    (a foreign name pointed at this address). Bodies are read here, up to ``max_body`` bytes
    (``max_write_body`` for ``/documents``) within ``BODY_TIMEOUT`` seconds, and must be JSON.
    Every answer of its own, and any error below it, is JSON ``{"error": ...}`` (OpenAI's error
    shape under ``/v1``).
    """

    def __init__(
        self,
        app: Any,
        *,
        max_body: int,
        max_write_body: int,
        hosts: frozenset[str] | None,
        any_address: bool = False,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_write_body = max_write_body
        self.hosts = None if hosts is not None and "*" in hosts else hosts
        self.any_address = any_address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._handle(scope, receive, tracking)
            if not started:  # the app returned without answering: uvicorn's reply is text/plain
                log.error("no answer to %s %s", scope.get("method"), scope.get("path"))
                await reply(scope, send, 500, "internal error; the server log has the details")
        except asyncio.CancelledError:
            # uvicorn's graceful shutdown ran out (SIGTERM during a long write) and cancelled the
            # request; uvicorn would answer a plain-text 500. Shutting down is a JSON 503.
            if not started:
                await reply(
                    scope,
                    send,
                    503,
                    "the server is shutting down; the request was cancelled and nothing was changed",
                )
            raise
        except Exception:  # uvicorn would answer a plain-text 500; the shape stays JSON
            log.exception("error serving %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await reply(scope, send, 500, "internal error; the server log has the details")

    def _host_ok(self, value: bytes) -> bool:
        if self.hosts is None:
            return True
        name = host_name(value)
        return name in self.hosts or (self.any_address and is_address(name))

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {key.lower(): value for key, value in scope["headers"]}
        if not self._host_ok(headers.get(b"host", b"")):
            await reply(
                scope,
                send,
                400,
                "unexpected Host header; this server answers only to its own names "
                "(start it with --allow-host NAME to accept another)",
            )
            return
        limit = self.max_write_body if scope["path"].rstrip("/").endswith("/documents") else self.max_body
        declared = headers.get(b"content-length")
        if declared is not None and not declared.isdigit():
            await reply(scope, send, 400, "malformed Content-Length header")
            return
        if declared is not None and int(declared) > limit:
            await too_large(scope, send, limit)  # refused before a byte of the body is read
            return
        if scope["method"] in _BODY_METHODS:
            try:
                body = await asyncio.wait_for(read_body(receive, limit), BODY_TIMEOUT)
            except asyncio.TimeoutError:
                await reply(scope, send, 408, f"the request body did not arrive within {BODY_TIMEOUT:g} s")
                return
            if body is None:
                await too_large(scope, send, limit)
                return
            if body and not is_json(headers.get(b"content-type", b"")):
                await reply(
                    scope, send, 415, "send the request body as JSON with 'Content-Type: application/json'"
                )
                return
            receive = replay(body, receive)
        await self.app(scope, receive, with_headers(send))


def host_name(value: bytes) -> str:
    """``127.0.0.1:8000`` -> ``127.0.0.1``; ``[::1]:8000`` -> ``::1``."""
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def is_address(name: str) -> bool:
    """An IP literal: a browser sending it asked for this address itself, not a rebound name."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_json(content_type: bytes) -> bool:
    kind = content_type.split(b";", 1)[0].strip().lower()
    return kind == b"application/json" or kind.endswith(b"+json")


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes ``limit`` bytes (chunked uploads included)."""
    parts, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        more = message.get("more_body", False)
    return b"".join(parts)


def replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as the server's would

    return again


def with_headers(send: Send) -> Send:
    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            present = {key.lower() for key, _ in message.get("headers", [])}
            message["headers"] = list(message.get("headers", [])) + [
                (key, value) for key, value in _HEADERS if key not in present
            ]
        await send(message)

    return wrapped


async def too_large(scope: Scope, send: Send, limit: int) -> None:
    await reply(scope, send, 413, f"request body is larger than {limit} bytes")


async def reply(scope: Scope, send: Send, status: int, message: str) -> None:
    body = json.dumps(error_json(scope["path"], status, message)).encode()
    await with_headers(send)(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
