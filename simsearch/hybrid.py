"""Query modes over one committed generation: dense, lexical and hybrid, with metadata filters.

:func:`search_store` returns, per query, the ranked :class:`~simsearch.fusion.Fused` rows;
:class:`~simsearch.index.Index` turns them into hits. Filters narrow both sides *before* ranking
(SQL over ``documents`` for the lexical side, an id selector or exact search for the dense side).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from simsearch.errors import QueryError
from simsearch.fusion import MODES, Fused, candidates, dense_weight, fuse
from simsearch.store import filters, lexical
from simsearch.store.bm25 import Postings, best, lookup
from simsearch.store.filtered import search_allowed, vectors_of

__all__ = ["MODES", "check_mode", "default_mode", "search_store"]


def default_mode(manifest: Mapping[str, Any]) -> str:
    """hybrid for an index with a lexical part, dense for older ones (measured: docs/hybrid.md)."""
    return "hybrid" if lexical.lexical_settings(dict(manifest)) is not None else "dense"


def check_mode(mode: str | None, manifest: Mapping[str, Any]) -> str:
    if mode is None:
        return default_mode(manifest)
    if mode not in MODES:
        raise QueryError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
    if mode != "dense" and lexical.lexical_settings(dict(manifest)) is None:
        raise QueryError(
            f"index {manifest.get('name', '')!r} has no lexical part (built before "
            f"simsearch had one), so mode {mode!r} is unavailable; add it with "
            "`simsearch reindex-lexical NAME` or search with --mode dense"
        )
    return mode


def search_store(
    store: Any,
    queries: Sequence[str],
    k: int,
    *,
    mode: str,
    where: Mapping[str, Any] | None,
    encoder: Callable[[], Any],
    weights: Sequence[float] | None = None,
) -> list[list[Fused]]:
    """Ranked rows per query for ``mode`` among the documents ``where`` allows; ``weights``: each
    query's dense weight in hybrid mode, when the caller computed them (else from ``encoder``)."""
    condition = filters.compile_where(where, filters.metadata_types(store, store.db))
    allowed = None if condition is None else filters.allowed_rowids(store, store.db, condition)
    if allowed is not None and len(allowed) == 0:
        return [[] for _ in queries]
    analyzer = lexical.analyzer_of(store.manifest)
    if mode == "lexical":
        assert analyzer is not None  # check_mode refused indexes without a lexical part
        postings = lexical.postings(store)
        return [[Fused(r, s, None, s) for r, s in postings.top(analyzer(q), k, allowed)] for q in queries]
    model = encoder()
    vectors = model.encode(list(queries))
    depth = k if mode == "dense" else candidates(k)
    dense = _dense(store, vectors, depth, allowed)
    if mode == "dense":
        return [[Fused(r, s, s, None) for r, s in row] for row in dense]
    if weights is None:
        from simsearch.encode.coverage import coverage

        weights = [dense_weight(c) for c in coverage(model, queries)]
    assert analyzer is not None  # check_mode refused indexes without a lexical part
    postings = lexical.postings(store)
    return [
        _hybrid(store, postings, vector, analyzer(query), dense_top, weight, k, depth, allowed)
        for query, vector, dense_top, weight in zip(queries, vectors, dense, weights)
    ]


def dense_rows(
    store: Any, vectors: np.ndarray, k: int, where: Mapping[str, Any] | None
) -> list[list[tuple[int, float]]]:
    """``(rowid, cosine)`` of the ``k`` nearest documents per query vector among those ``where``
    allows (all when None); non-finite scores are no match."""
    condition = filters.compile_where(where, filters.metadata_types(store, store.db))
    allowed = None if condition is None else filters.allowed_rowids(store, store.db, condition)
    if allowed is not None and len(allowed) == 0:
        return [[] for _ in range(len(vectors))]
    return _dense(store, vectors, k, allowed)


def _dense(
    store: Any, vectors: np.ndarray, k: int, allowed: np.ndarray | None
) -> list[list[tuple[int, float]]]:
    if allowed is None:
        scores, rowids = store.faiss.search(vectors, k)
    else:
        scores, rowids = search_allowed(
            store.faiss, store.db, vectors, k, allowed, int(store.manifest["dim"])
        )
    # a non-finite score (a NaN vector written by an older version) is no match: verify finds it
    return [
        [(int(r), float(s)) for s, r in zip(srow, rrow) if r >= 0 and np.isfinite(s)]
        for srow, rrow in zip(scores, rowids)
    ]


def _hybrid(
    store: Any,
    postings: Postings,
    vector: np.ndarray,
    tokens: list[str],
    dense_top: list[tuple[int, float]],
    weight: float,
    k: int,
    depth: int,
    allowed: np.ndarray | None,
) -> list[Fused]:
    matched = postings.match(tokens)  # every matching row's BM25, in one pass
    lexical_top = best(*matched, depth, allowed)
    cosine = dict(dense_top)
    bm25 = dict(lexical_top)
    missing_cosine = [r for r in bm25 if r not in cosine]
    for rowid, stored in vectors_of(
        store.faiss, store.db, missing_cosine, int(store.manifest["dim"])
    ).items():
        cosine[rowid] = float(np.dot(vector, stored))
    bm25.update(lookup(*matched, [r for r in cosine if r not in bm25]))
    return fuse(dense_top, lexical_top, cosine, bm25, weight, k)
