"""Request and response shapes of the HTTP API; they are also what /openapi.json describes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_K = 100  # hits per query: bounds the work and the size of one answer
MAX_QUERIES = 64  # queries in one batch request
MAX_QUERY_CHARS = 2000  # longer than any model here reads (256-512 tokens)


class SearchRequest(BaseModel):
    """Exactly one of ``query`` and ``queries``."""

    model_config = ConfigDict(extra="forbid")
    query: str | None = Field(None, description=f"One query text (at most {MAX_QUERY_CHARS} characters).")
    queries: list[str] | None = Field(
        None, description=f"Several query texts (at most {MAX_QUERIES}), encoded in one batch."
    )
    # strict: true and "5" are not numbers (pydantic would read them as 1 and 5)
    k: int = Field(10, ge=1, le=MAX_K, strict=True, description="Hits per query.")
    min_score: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        allow_inf_nan=False,
        strict=True,
        description="Drop hits whose cosine is below this.",
    )
    mode: Literal["dense", "lexical", "hybrid"] | None = Field(
        None,
        description="dense (cosine), lexical (BM25) or hybrid (fused); default: hybrid when "
        "the index has a lexical part, else dense.",
    )
    where: dict[str, Any] | str | None = Field(
        None,
        description='Metadata filter, e.g. {"lang": "ko", "year": {">=": 2020}}; operators '
        '= != < <= > >= in, "not in", exists; {"$and": [...]}, {"$or": [...]}, {"$not": {...}} '
        'nest. Or the CLI\'s text form: "lang=ko and (year>=2020 or not source=wiki)".',
    )


class HitOut(BaseModel):
    """One hit: the same fields as a line of ``simsearch query --json``."""

    query: str
    rank: int
    id: str
    score: float = Field(
        description="In the hits' order: the cosine (dense), BM25 (lexical), or a 0-1 relevance comparable "
        "across queries (hybrid: cosine and BM25 blended; 1 for a document repeating the query)."
    )
    text: str
    metadata: dict[str, Any]
    cosine: float | None = Field(None, description="Cosine similarity, where computed.")
    bm25: float | None = Field(None, description="BM25 score; null when the document matches no query word.")


class SearchResponse(BaseModel):
    index: str
    query: str
    hits: list[HitOut]
    took_ms: float = Field(description="Server time for the search, milliseconds.")
    partial: bool | None = Field(
        None, description="Served on Ray with --allow-partial: some shards did not answer."
    )
    missing_shards: list[int] | None = Field(
        None, description="With partial: the shards whose hits are missing."
    )


class QueryResult(BaseModel):
    query: str
    hits: list[HitOut]


class BatchSearchResponse(BaseModel):
    index: str
    results: list[QueryResult] = Field(description="One entry per query, in the order given.")
    took_ms: float
    partial: bool | None = Field(
        None, description="Served on Ray with --allow-partial: some shards did not answer."
    )
    missing_shards: list[int] | None = Field(
        None, description="With partial: the shards whose hits are missing."
    )


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=1000)
    text: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


class AddRequest(BaseModel):
    """Documents to add; one whose id exists replaces it (unchanged texts are not re-encoded)."""

    model_config = ConfigDict(extra="forbid")
    documents: list[DocumentIn] = Field(min_length=1)


class DeleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] = Field(min_length=1)


class WriteResponse(BaseModel):
    index: str
    stats: dict[str, Any] = Field(description="What the write did (counts), as the library reports it.")
    count: int = Field(description="Documents in the index after the write.")
    took_ms: float


class IndexInfo(BaseModel):
    """An index's manifest (model, pooling, dim, count, files...), less local filesystem paths."""

    model_config = ConfigDict(extra="allow")
    name: str
    count: int
    model: str
    pooling: str
    dim: int


class IndexList(BaseModel):
    indexes: list[IndexInfo]


class Health(BaseModel):
    status: str
    version: str
    indexes: int
    writes: bool
    ray: dict[str, Any] | None = Field(
        None,
        description="Served on Ray: the cluster's state and each index's shards, each shard's "
        "replicas with node, pid and state (healthy, unhealthy: being replaced, down).",
    )


class ErrorOut(BaseModel):
    """Every error answer: one message a person can act on."""

    error: str
