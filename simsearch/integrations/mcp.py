"""simsearch as a Model Context Protocol server (``pip install 'simsearch[mcp]'``).

Built on the official ``mcp`` SDK (2.x) and its ``MCPServer`` (called FastMCP in 1.x). The same tools run over
stdio (``simsearch mcp NAME...``, what desktop assistants launch) and over streamable HTTP at
``/mcp`` of ``simsearch serve``. Tools: ``search``, ``get_documents``, ``list_indexes``,
``describe_index``, and ``add_documents``/``delete_documents`` only when writes are allowed (over
HTTP with a token, they need the same ``Authorization: Bearer <token>`` header as the HTTP
writes). Texts in results are cut to ``max_text`` characters (``"truncated": true`` and the full
length say so), to keep results small enough for a model's context. A simsearch error comes
back as an MCP tool error carrying its one-line message; the server goes on.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Annotated, Any, Callable, Literal, Mapping, Protocol, Sequence

from simsearch.integrations import missing_extra

try:
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from pydantic import BaseModel, Field
except ImportError as exc:  # pragma: no cover - depends on the extras installed
    raise missing_extra("mcp", exc) from None

from simsearch import __version__
from simsearch.errors import IndexNotFoundError, SimsearchError
from simsearch.search.hits import Hit
from simsearch.readers.records import Document
from simsearch.validate import check_document, document_ids

if TYPE_CHECKING:
    from simsearch.index import Index

MAX_TEXT = 1000  # characters of each text a tool returns (the default of --max-text)
MAX_K = 50  # hits one search may return


class Catalog(Protocol):
    """The indexes the tools reach: opened by ``simsearch mcp`` or held by ``simsearch serve``."""

    def names(self) -> list[str]: ...
    def manifest(self, name: str) -> dict[str, Any]: ...
    def search(
        self, name: str, query: str, k: int, mode: str | None, where: dict[str, Any] | None
    ) -> list[Hit]: ...
    def get(self, name: str, ids: list[str]) -> list[Document]: ...
    def add(self, name: str, documents: list[Document]) -> dict[str, Any]: ...
    def delete(self, name: str, ids: list[str]) -> dict[str, Any]: ...


class DocumentIn(BaseModel):
    """A document to add: its id, text and JSON metadata."""

    id: str = Field(min_length=1, description="unique id; an existing id is replaced")
    text: str = Field(min_length=1, description="the text to index")
    metadata: dict[str, Any] = Field(default_factory=dict, description="JSON metadata, filterable with where")


_WHERE_HELP = (
    'metadata filter, e.g. {"lang": "ko", "year": {">=": 2020}}; fields are AND-ed; '
    '{"$and": [...]}, {"$or": [...]}, {"$not": {...}} nest; field operators =, !=, <, <=, >, >=, '
    "in, not in (lists), exists (true/false)"
)
IndexName = Annotated[str, Field(description="index name, as list_indexes gives it")]


def create_mcp(
    catalog: Catalog,
    *,
    allow_writes: bool = False,
    token: str | None = None,
    max_text: int = MAX_TEXT,
) -> MCPServer:
    """An MCP server with simsearch's tools over ``catalog``; the write tools only when
    ``allow_writes`` (then over HTTP behind ``token``, if one is given)."""
    server = MCPServer(
        "simsearch",
        version=__version__,
        instructions="Semantic, lexical (BM25) and hybrid search over local simsearch indexes. "
        "Call list_indexes first, then search.",
    )
    cut = _cutter(max_text)

    @server.tool(title="Search an index")
    def search(
        index: IndexName,
        query: Annotated[str, Field(min_length=1, description="what to look for, in any language")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="how many hits")] = 5,
        mode: Annotated[
            Literal["dense", "lexical", "hybrid"] | None,
            Field(description="dense (meaning), lexical (BM25 words) or hybrid (both); default: the index's"),
        ] = None,
        where: Annotated[dict[str, Any] | None, Field(description=_WHERE_HELP)] = None,
    ) -> dict[str, Any]:
        """Best documents of an index for a query: id, text, score, cosine, bm25, metadata. The
        score is, in hybrid mode, a 0-1 relevance comparable across queries (1: the query's own
        text); in dense mode the cosine; in lexical mode BM25 (unbounded)."""
        hits = _run(lambda: catalog.search(index, query, k, mode, where))
        return {
            "index": index,
            "query": query,
            "max_text": max_text,
            "hits": [
                {
                    "rank": h.rank,
                    "id": h.id,
                    "score": h.score,
                    "cosine": h.cosine,
                    "bm25": h.bm25,
                    **cut(h.text),
                    "metadata": h.metadata,
                }
                for h in hits
            ],
        }

    @server.tool(title="Get documents by id")
    def get_documents(
        index: IndexName,
        ids: Annotated[list[str], Field(min_length=1, max_length=100, description="document ids")],
    ) -> dict[str, Any]:
        """The stored documents of ``ids`` (ids not in the index are listed as missing)."""
        docs = _run(lambda: catalog.get(index, document_ids(ids)))
        found = {d.id for d in docs}
        return {
            "index": index,
            "max_text": max_text,
            "documents": [{"id": d.id, **cut(d.text), "metadata": d.metadata} for d in docs],
            "missing": [i for i in ids if i not in found],
        }

    @server.tool(title="List indexes")
    def list_indexes() -> dict[str, Any]:
        """The indexes this server searches, with their size and model."""
        return {"indexes": [_summary(name, manifest) for name, manifest in _run(lambda: _manifests(catalog))]}

    @server.tool(title="Describe an index")
    def describe_index(index: IndexName) -> dict[str, Any]:
        """One index's manifest: count, model, dimension, index type, search modes, metadata fields."""
        manifest = _run(lambda: catalog.manifest(index))
        return {**_summary(index, manifest), "manifest": manifest}

    if allow_writes:
        _add_write_tools(server, catalog, token)
    return server


def _add_write_tools(server: MCPServer, catalog: Catalog, token: str | None) -> None:
    allowed = _authorizer(token)

    @server.tool(title="Add or replace documents")
    def add_documents(
        index: IndexName,
        documents: Annotated[list[DocumentIn], Field(min_length=1, max_length=1000)],
        ctx: Context,
    ) -> dict[str, Any]:
        """Add documents to an index (an existing id is replaced), embedded by the index's model."""
        allowed(ctx)
        docs = [Document(d.id, d.text, d.metadata, f"documents[{n}]") for n, d in enumerate(documents)]
        _run(lambda: _check_all(docs))  # all refused before anything is written
        return {"index": index, "stats": _run(lambda: catalog.add(index, docs))}

    @server.tool(title="Delete documents")
    def delete_documents(
        index: IndexName,
        ids: Annotated[list[str], Field(min_length=1, max_length=1000, description="document ids")],
        ctx: Context,
    ) -> dict[str, Any]:
        """Delete documents of an index by id (unknown ids are reported, not an error)."""
        allowed(ctx)
        return {"index": index, "stats": _run(lambda: catalog.delete(index, document_ids(ids)))}


def _authorizer(token: str | None) -> Callable[[Context], None]:
    """Over HTTP with a token, a write needs ``Authorization: Bearer <token>`` (stdio has no
    headers: whoever launched the process may write)."""
    wanted = hashlib.sha256(token.encode()).digest() if token else None

    def check(ctx: Context) -> None:
        headers = ctx.headers
        if wanted is None or headers is None:
            return
        scheme, _, given = (headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ToolError("writes need the header 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(), wanted):
            raise ToolError("wrong bearer token")

    return check


def _run(call: Callable[[], Any]) -> Any:
    """A library error as an MCP tool error with its one-line message."""
    try:
        return call()
    except SimsearchError as exc:
        raise ToolError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def _cutter(max_text: int) -> Callable[[str], dict[str, Any]]:
    def cut(text: str) -> dict[str, Any]:
        if len(text) <= max_text:
            return {"text": text, "truncated": False}
        return {"text": text[:max_text], "truncated": True, "text_length": len(text)}

    return cut


def _check_all(docs: list[Document]) -> None:
    for doc in docs:
        check_document(doc)


def _manifests(catalog: Catalog) -> list[tuple[str, dict[str, Any]]]:
    return [(name, catalog.manifest(name)) for name in catalog.names()]


def _summary(name: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
    lexical = bool(manifest.get("lexical"))
    return {
        "name": name,
        "count": manifest.get("count"),
        "model": manifest.get("model"),
        "dim": manifest.get("dim"),
        "modes": ["dense", "lexical", "hybrid"] if lexical else ["dense"],
    }


class OpenedIndexes:
    """The catalog of ``simsearch mcp``: indexes opened in this process (models loaded on the
    first search of each)."""

    def __init__(self, names: Sequence[str], index_dir: str | None = None) -> None:
        from simsearch.index import Index
        from simsearch.store.home import list_indexes

        chosen = list(names) or [m["name"] for m in list_indexes(index_dir) if "error" not in m]
        if not chosen:
            raise IndexNotFoundError("no index to serve; build one with `simsearch build` or name one")
        self._indexes: dict[str, Index] = {}
        for name in chosen:
            self._indexes[name] = Index.open(name, index_dir=index_dir)

    def _index(self, name: str) -> Index:
        if name not in self._indexes:
            raise IndexNotFoundError(f"index {name!r} is not served here; served: {', '.join(self._indexes)}")
        return self._indexes[name]

    def names(self) -> list[str]:
        return list(self._indexes)

    def manifest(self, name: str) -> dict[str, Any]:
        manifest = dict(self._index(name).manifest)
        manifest.pop("model_path", None)  # where the model sits on this machine is nobody else's business
        return manifest

    def search(
        self, name: str, query: str, k: int, mode: str | None, where: dict[str, Any] | None
    ) -> list[Hit]:
        return list(self._index(name).search(query, k, mode=mode, where=where))

    def get(self, name: str, ids: list[str]) -> list[Document]:
        return list(self._index(name).get(ids))

    def add(self, name: str, documents: list[Document]) -> dict[str, Any]:
        return _stats(self._index(name).add(documents))

    def delete(self, name: str, ids: list[str]) -> dict[str, Any]:
        return _stats(self._index(name).delete(ids))

    def close(self) -> None:
        for index in self._indexes.values():
            index.close()


def _stats(stats: Any) -> dict[str, Any]:
    import dataclasses

    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        return dataclasses.asdict(stats)
    return dict(stats)


def serve_stdio(names: Sequence[str], index_dir: str | None, *, allow_writes: bool, max_text: int) -> None:
    """``simsearch mcp``: open the indexes, then answer MCP over stdin/stdout until it closes."""
    catalog = OpenedIndexes(names, index_dir)
    try:
        create_mcp(catalog, allow_writes=allow_writes, max_text=max_text).run("stdio")
    finally:
        catalog.close()


__all__ = ["MAX_TEXT", "Catalog", "OpenedIndexes", "create_mcp", "serve_stdio"]
