"""ANN recall: an index's own search against exact inner-product search over its stored vectors.

The vectors in SQLite are the ground truth (the FAISS file is derived from them), so this
measures what an approximate FAISS index loses, whatever its type; an exact one scores 1.0.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from simsearch.errors import IndexCorruptError, QueryError

if TYPE_CHECKING:
    from simsearch.index import Index
    from simsearch.store.generation import Store

_TIE = 1e-5  # float32 inner products of equal vectors may differ in the last bits


def evaluate_ann(
    index: Index | str | os.PathLike[str],
    *,
    queries: int = 1000,
    k: int = 10,
    seed: int = 0,
    index_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Recall@k of ``index``'s own search against exact inner product over its stored vectors.

    ``index`` is an open :class:`~simsearch.index.Index`, or a name or path opened from
    ``index_dir``. Query vectors are ``queries`` stored vectors drawn with a fixed ``seed`` (all
    of them when the index holds fewer). A hit counts as found when its exact score reaches the
    k-th exact score, so ties among equal vectors do not count against the index.
    """
    for name, value in (("queries", queries), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise QueryError(f"{name} must be a whole number of at least 1, got {value!r}")
    if isinstance(index, (str, os.PathLike)):
        from simsearch.index import Index

        opened = Index.open(index, index_dir=index_dir)
        try:
            return evaluate_ann(opened, queries=queries, k=k, seed=seed)
        finally:
            opened.close()
    if index.shards != 1:  # a sharded index: each shard is its own FAISS index
        from simsearch.errors import SimsearchError

        raise SimsearchError(
            f"{index.path.name!r} is sharded; `eval ann` measures one FAISS index: "
            f"run it on a shard directory, e.g. {index.path / index.manifest['shards']['parts'][0]['dir']}"
        )
    store = index.local_stores()[0]  # the stored vectors are the ground truth
    rowids = np.array(
        [r[0] for r in store.db.execute("SELECT rowid FROM documents ORDER BY rowid")], dtype=np.int64
    )
    if not len(rowids):
        raise QueryError(
            f"index {index.path.name!r} holds no documents: there is no recall to measure; "
            "add documents first (`simsearch add`)"
        )
    depth = min(k, len(rowids))
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(rowids, size=min(queries, len(rowids)), replace=False))
    vectors = _stored_vectors(store, chosen)
    found = index.search_vectors(vectors, depth)
    row_of = _rowids_of(store, {h.id for hits in found for h in hits})
    approx = [[row_of[h.id] for h in hits] for hits in found]
    kth, approx_scores = _exact_pass(store, vectors, depth, approx)
    hits_found = (approx_scores >= kth[:, None] - _TIE).sum(axis=1)
    m = store.manifest
    return {
        "recall@k": float(np.mean(hits_found)) / depth,
        "k": depth,
        "queries": len(chosen),
        "documents": len(rowids),
        "seed": seed,
        "index_type": m.index_type,
        "faiss": m.get("faiss", store.faiss.description),
        "model": m.model,
        "pooling": m.pooling,
    }


def _select(store: Store, sql: str, keys: list[Any]) -> dict[Any, Any]:
    """``{key: value}`` from ``sql`` (selecting key, value; ``{marks}`` for the keys), in chunks."""
    from simsearch.store.sql import select_in

    return dict(select_in(store.db, sql, keys))


def _rowids_of(store: Store, doc_ids: set[str]) -> dict[str, int]:
    return _select(store, "SELECT id, rowid FROM documents WHERE id IN ({marks})", sorted(doc_ids))


def _stored_vectors(store: Store, rowids: np.ndarray) -> np.ndarray:
    from simsearch.store.faiss_file import from_blobs

    blobs = _select(store, "SELECT rowid, vector FROM documents WHERE rowid IN ({marks})", rowids.tolist())
    return from_blobs([blobs[r] for r in rowids.tolist()], store.manifest.dim)


def _exact_pass(
    store: Store, queries: np.ndarray, k: int, approx: list[list[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """One chunked pass over the stored vectors: each query's exact k-th best score, and the
    exact scores of the rows the index returned (-inf where it returned fewer than k)."""
    from simsearch.store.faiss_file import iter_vectors

    returned = np.full((len(queries), k), -1, dtype=np.int64)
    for q, row in enumerate(approx):
        returned[q, : len(row)] = row
    returned_scores = np.full(returned.shape, -np.inf, dtype=np.float32)
    best = np.full((len(queries), k), -np.inf, dtype=np.float32)
    query_of = np.repeat(np.arange(len(queries))[:, None], k, axis=1)
    for ids, vectors in iter_vectors(store.db, store.manifest.dim):
        scores = queries @ vectors.T
        merged = np.concatenate([best, scores], axis=1)
        best = -np.partition(-merged, k - 1, axis=1)[:, :k]  # the k best so far, unordered
        where = np.minimum(np.searchsorted(ids, returned), len(ids) - 1)
        inside = ids[where] == returned
        returned_scores[inside] = scores[query_of[inside], where[inside]]
    if not np.isfinite(best).all():
        raise IndexCorruptError(
            "the index's SQLite file holds fewer vectors than its manifest says; run `simsearch verify`"
        )
    return best.min(axis=1), returned_scores
