"""How the app answers when it does not answer 200: every error one JSON shape.

:class:`ApiError` is what a route raises for a status and message of its own; the library's
:class:`~simsearch.errors.SimsearchError` family maps to statuses here (404 for an unknown index,
422 for a bad query, 503 while locked or shutting down); pydantic's validation findings become
one line (400 for a body that is not JSON). :func:`add_error_handlers` installs all of them, and
:func:`error_responses` documents them in ``/openapi.json``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from simsearch.errors import (
    IndexCorruptError,
    IndexNotFoundError,
    InputError,
    LockTimeoutError,
    QueryError,
    ShardUnavailableError,
    SimsearchError,
)
from simsearch.server import schemas as s
from simsearch.server.protocol import error_json
from simsearch.server.state import ShuttingDown

log = logging.getLogger("simsearch.serve")
_LIBRARY_STATUS = (
    (IndexNotFoundError, 404),
    (QueryError, 422),
    (InputError, 422),
    (LockTimeoutError, 503),
    (ShardUnavailableError, 503),
    (ShuttingDown, 503),
    (IndexCorruptError, 500),
    (SimsearchError, 400),
)


class ApiError(Exception):
    """An answer other than 200, with its status and a message for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=``: the error body's model for each status it may answer."""
    return {status: {"model": s.ErrorOut} for status in statuses}


def _error(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_json(request.url.path, status, message), status_code=status, headers=headers)


def add_error_handlers(app: FastAPI) -> None:
    """Answer every exception a route raises as ``{"error": ...}`` (OpenAI's shape under /v1)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(request, exc.status, exc.message, exc.headers)

    @app.exception_handler(SimsearchError)
    async def library_error(request: Request, exc: SimsearchError) -> JSONResponse:
        return _error(
            request, next(code for kind, code in _LIBRARY_STATUS if isinstance(exc, kind)), str(exc)
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(request, *validation_message(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("error serving %s %s", request.method, request.url.path, exc_info=exc)
        return _error(request, 500, "internal error; the server log has the details")


def validation_message(errors: Any) -> tuple[int, str]:
    """Pydantic's findings as one line: 400 for a body that is not JSON, else 422."""
    parts = []
    for error in errors:
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "")
            return 400, f"the request body is not valid JSON ({detail})"
        where = ".".join(str(part) for part in error.get("loc", ())[1:]) or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return 422, "; ".join(parts)
