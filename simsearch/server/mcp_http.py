"""MCP over streamable HTTP at ``/mcp`` of ``simsearch serve`` (when the ``mcp`` extra is
installed): the tools of :mod:`simsearch.integrations.mcp` over the indexes the server holds,
the write tools only with ``--allow-writes`` and behind the same token as the HTTP writes."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI

from simsearch.errors import IndexNotFoundError
from simsearch.search.hits import Hit
from simsearch.readers.records import Document
from simsearch.server.state import Served, ServedIndex

MCP_PATH = "/mcp"


class ServedIndexes:
    """The MCP catalog of a running server: its warm indexes, searched and written as the HTTP
    API does (batched encodes, one write at a time per index)."""

    def __init__(self, served: Served) -> None:
        self.served = served

    def _target(self, name: str) -> ServedIndex:
        if name not in self.served.indexes:
            raise IndexNotFoundError(
                f"index {name!r} is not served here; served: {', '.join(self.served.indexes)}"
            )
        return self.served.indexes[name]

    def names(self) -> list[str]:
        return list(self.served.indexes)

    def manifest(self, name: str) -> dict[str, Any]:
        manifest = dict(self._target(name).manifest)
        manifest.pop("model_path", None)
        return manifest

    def search(
        self, name: str, query: str, k: int, mode: str | None, where: dict[str, Any] | None
    ) -> list[Hit]:
        return self._target(name).search([query], k, None, mode=mode, where=where)[0]

    def get(self, name: str, ids: list[str]) -> list[Document]:
        from simsearch.index import Index

        index = Index.open(self._target(name).path)  # reads only: no model needed
        try:
            return index.get(ids)
        finally:
            index.close()

    def add(self, name: str, documents: list[Document]) -> dict[str, Any]:
        return self._target(name).add(documents)

    def delete(self, name: str, ids: list[str]) -> dict[str, Any]:
        return self._target(name).delete(ids)


def mount_mcp(
    app: FastAPI, served: Served, *, allow_writes: bool, token: str | None
) -> AbstractAsyncContextManager[Any] | None:
    """Add ``/mcp`` to ``app``; returns the session manager's context, which the app's lifespan
    must run, or None when the ``mcp`` extra is not installed (the route is then absent)."""
    try:
        from mcp.server.transport_security import TransportSecuritySettings

        from simsearch.integrations.mcp import create_mcp
    except ImportError:
        return None
    server = create_mcp(ServedIndexes(served), allow_writes=allow_writes, token=token)
    # The Guard in front of the app already checks the Host header (see guard.py).
    mounted = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    app.router.routes.extend(mounted.routes)
    return server.session_manager.run()


__all__ = ["MCP_PATH", "ServedIndexes", "mount_mcp"]
