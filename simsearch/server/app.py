"""The FastAPI app: the JSON search API, the optional write endpoints and the search page."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from contextlib import AsyncExitStack, asynccontextmanager
from importlib import resources
from typing import Any, AsyncIterator, Callable, Literal

from fastapi import FastAPI, Query, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from simsearch import __version__
from simsearch.store.home import check_name
from simsearch.readers import Document
from simsearch.server import schemas as s
from simsearch.server.errors import ApiError, add_error_handlers, error_responses
from simsearch.server.mcp_http import mount_mcp
from simsearch.server.openai import add_openai_routes
from simsearch.server.state import Served, ServedIndex
from simsearch.validate import check_document, document_ids, json_ready, unicode_problem

_ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
_bearer = HTTPBearer(auto_error=False, description="The token held by the variable named by --token-env.")


def create_app(served: Served, *, allow_writes: bool = False, token: str | None = None) -> FastAPI:
    """The app over already opened indexes; writes only when ``allow_writes``, behind ``token``."""

    mcp_sessions: list[Any] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for sessions in mcp_sessions:  # MCP's streamable HTTP sessions live as long as the app
                await stack.enter_async_context(sessions)
            yield
        served.close()  # after the last request, on SIGTERM or Ctrl-C

    app = FastAPI(
        title="simsearch",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Semantic similarity search over simsearch indexes.",
    )
    add_error_handlers(app)
    _add_pages(app)
    _add_reads(app, served, allow_writes)
    add_openai_routes(app, served, token)  # /v1/embeddings and /v1/models, behind the token if any
    if allow_writes:
        _add_writes(app, served, token)
    else:
        _add_disabled_writes(app)
    sessions = mount_mcp(app, served, allow_writes=allow_writes, token=token)  # /mcp with simsearch[mcp]
    if sessions is not None:
        mcp_sessions.append(sessions)
    return app


def _target(served: Served, name: str) -> ServedIndex:
    check_name(name)  # a malformed name is a 400, whatever is served
    if name not in served.indexes:
        raise ApiError(404, f"index {name!r} is not served here; served: {', '.join(served.indexes)}")
    return served.indexes[name]


def _query_texts(query: str | None, queries: list[str] | None) -> list[str]:
    if (query is None) == (queries is None):
        raise ApiError(422, "give exactly one of 'query' (one text) or 'queries' (a list)")
    texts = [query] if query is not None else list(queries or [])
    if not texts:
        raise ApiError(422, "'queries' is empty; give at least one query")
    if len(texts) > s.MAX_QUERIES:
        raise ApiError(413, f"{len(texts)} queries in one request; the limit is {s.MAX_QUERIES}")
    for number, text in enumerate(texts):
        where = "query" if query is not None else f"queries[{number}]"
        if len(text) > s.MAX_QUERY_CHARS:
            raise ApiError(413, f"{where} has {len(text)} characters; the limit is {s.MAX_QUERY_CHARS}")
        problem = unicode_problem(text)
        if problem:  # refused here, so it never reaches a batch shared with other requests
            raise ApiError(422, f"{where}: {problem}")
    return texts


def _search(
    served: Served,
    name: str,
    query: str | None,
    queries: list[str] | None,
    k: int,
    min_score: float | None,
    mode: str | None = None,
    where: dict[str, Any] | None = None,
) -> JSONResponse:
    target = _target(served, name)
    texts = _query_texts(query, queries)
    started = time.perf_counter()
    with target.partial() as missing:
        results = target.search(texts, k, min_score, mode=mode, where=where)
    took = round((time.perf_counter() - started) * 1000, 3)
    # a Ray index with --allow-partial: the hits of the shards that answered, the others named
    partial = {"partial": True, "missing_shards": sorted(missing)} if missing else {}
    if query is not None:
        return JSONResponse(
            {
                "index": name,
                "query": query,
                "took_ms": took,
                "hits": [hit.to_dict(query) for hit in results[0]],
                **partial,
            }
        )
    return JSONResponse(
        {
            "index": name,
            "took_ms": took,
            "results": [
                {"query": text, "hits": [hit.to_dict(text) for hit in hits]}
                for text, hits in zip(texts, results)
            ],
            **partial,
        }
    )


def _info(target: ServedIndex) -> dict[str, Any]:
    manifest = target.manifest
    manifest.pop("model_path", None)  # where the model sits on this machine is nobody else's business
    placement = target.placement()
    extra = {"ray_shards": placement} if placement is not None else {}
    return json_ready({**manifest, "name": target.name, **extra})[0]


def _add_reads(app: FastAPI, served: Served, allow_writes: bool) -> None:
    searched: dict[str, Any] = dict(
        response_model=s.SearchResponse | s.BatchSearchResponse, responses=error_responses(400, 404, 413, 422)
    )

    @app.get(
        "/health",
        response_model=s.Health,
        response_model_exclude_none=True,
        responses=error_responses(503),
        summary="Liveness and what is served (on Ray: each shard's replicas)",
    )
    def health() -> Any:
        body: dict[str, Any] = {
            "status": "ok",
            "version": __version__,
            "indexes": len(served.indexes),
            "writes": allow_writes,
        }
        if served.ray is None:
            return body
        body["ray"] = {
            "cluster": "lost" if served.cluster_lost else "ok",
            "indexes": {name: target.placement() for name, target in served.indexes.items()},
        }
        if served.cluster_lost:  # the server is stopping: monitors see why
            body["status"], body["error"] = "ray cluster lost", served.cluster_lost
            return JSONResponse(body, status_code=503)
        return body

    @app.get("/indexes", response_model=s.IndexList, summary="Manifests of the served indexes")
    def indexes() -> JSONResponse:
        return JSONResponse({"indexes": [_info(target) for target in served.indexes.values()]})

    @app.get(
        "/indexes/{name}",
        response_model=s.IndexInfo,
        responses=error_responses(400, 404),
        summary="One served index's manifest",
    )
    def index(name: str) -> JSONResponse:
        return JSONResponse(_info(_target(served, name)))

    @app.get("/indexes/{name}/search", **searched, summary="Search (query-string parameters)")
    def search_get(
        name: str,
        query: str | None = Query(None, description="One query text."),
        queries: list[str] | None = Query(None, description="Repeat for several queries."),
        k: int = Query(10, ge=1, le=s.MAX_K),
        min_score: float | None = Query(None, ge=-1.0, le=1.0, allow_inf_nan=False),
        mode: Literal["dense", "lexical", "hybrid"] | None = Query(None, description="Search mode."),
        where: str | None = Query(
            None,
            description='Metadata filter: JSON, e.g. {"lang": "ko"}, or text, e.g. '
            "lang=ko and (year>=2020 or not source=wiki).",
        ),
    ) -> JSONResponse:
        return _search(served, name, query, queries, k, min_score, mode, _where_param(where))

    @app.post("/indexes/{name}/search", **searched, summary="Search (JSON body)")
    def search_post(name: str, body: s.SearchRequest) -> JSONResponse:
        where = _where_param(body.where) if isinstance(body.where, str) else body.where
        return _search(served, name, body.query, body.queries, body.k, body.min_score, body.mode, where)


def _where_param(text: str | None) -> dict[str, Any] | None:
    """A ``where`` given as text: a JSON object, or the CLI's syntax (``lang=ko and year>=2020``)."""
    if text is None or not text.strip():
        return None
    if not text.lstrip().startswith(("{", "[")):
        from simsearch.search.where_text import parse_text

        return parse_text(text, "where")  # a syntax mistake: QueryError, 422
    try:
        where = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested thousands of levels deep
        raise ApiError(422, '\'where\' must be a JSON object, e.g. {"lang": "ko"}') from None
    if not isinstance(where, dict):
        raise ApiError(422, '\'where\' must be a JSON object, e.g. {"lang": "ko"}')
    return where


def _authorizer(token: str) -> Callable[..., None]:
    wanted = hashlib.sha256(token.encode()).digest()

    def authorize(credentials: HTTPAuthorizationCredentials | None = Security(_bearer)) -> None:
        if credentials is None:
            raise ApiError(
                401, "writes need the header 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"}
            )
        # Digests of equal length, compared in constant time: the answer leaks neither content nor length.
        given = hashlib.sha256(credentials.credentials.encode()).digest()
        if not hmac.compare_digest(given, wanted):
            raise ApiError(403, "wrong bearer token")

    return authorize


def _add_writes(app: FastAPI, served: Served, token: str | None) -> None:
    guard: dict[str, Any] = dict(
        dependencies=[Security(_authorizer(token))] if token else [],
        response_model=s.WriteResponse,
        responses=error_responses(400, 401, 403, 404, 413, 422, 503),
    )

    def write(name: str, change: Callable[[ServedIndex], dict[str, Any]]) -> JSONResponse:
        target = _target(served, name)
        started = time.perf_counter()
        stats = change(target)
        return JSONResponse(
            {
                "index": name,
                "stats": stats,
                "count": int(target.manifest["count"]),
                "took_ms": round((time.perf_counter() - started) * 1000, 3),
            }
        )

    @app.post("/indexes/{name}/documents", **guard, summary="Add or replace documents")
    def add_documents(name: str, body: s.AddRequest) -> JSONResponse:
        documents = [
            Document(d.id, d.text, d.metadata, f"documents[{n}]") for n, d in enumerate(body.documents)
        ]
        for doc in documents:  # all refused before the write lock is taken
            check_document(doc)
        return write(name, lambda target: target.add(documents))

    @app.delete("/indexes/{name}/documents", **guard, summary="Delete documents by id")
    def delete_documents(name: str, body: s.DeleteRequest) -> JSONResponse:
        ids = document_ids(body.ids)
        return write(name, lambda target: target.delete(ids))


def _add_disabled_writes(app: FastAPI) -> None:
    @app.api_route("/indexes/{name}/documents", methods=["POST", "DELETE"], include_in_schema=False)
    def writes_disabled(name: str) -> None:
        raise ApiError(403, "writes are disabled on this server; start it with --allow-writes")


def _add_pages(app: FastAPI) -> None:
    folder = resources.files(__package__) / "static"
    page = (folder / "index.html").read_bytes()
    assets = {name: ((folder / name).read_bytes(), kind) for name, kind in _ASSETS.items()}

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    @app.get("/static/{asset}", include_in_schema=False)
    def static(asset: str) -> Response:
        if asset not in assets:
            raise ApiError(404, f"no asset {asset!r}")
        body, kind = assets[asset]
        return Response(body, media_type=kind)
