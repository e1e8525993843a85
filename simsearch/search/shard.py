"""What one shard (one store: a plain index is a single shard) computes for a request.

Every searcher runs these functions on each shard, in a thread or in a Ray actor, and ranks the
answers once (:mod:`simsearch.search.ranking`). A shard never ranks for the whole index; it
returns *candidates* that carry index-wide comparable raw scores:

- the shard's top ``depth`` by cosine (dense side) and by BM25 (lexical side), ties broken by
  document id, so the union of the shards' tops holds the whole index's tops;
- BM25 scored with the whole index's statistics (:func:`statistics`, summed over the shards
  first), so a document's BM25 is the same in any topology;
- the cosine recomputed in float64 from the stored float32 vectors (exact products, one
  summation order per row), so it does not depend on where a vector sits in a FAISS index;
- for hybrid, each candidate's score on the other side too (the fusion happens after the merge).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from simsearch.search.request import SearchRequest
from simsearch.store import lexical
from simsearch.search import where as filters
from simsearch.store.lexical.bm25 import Postings, Statistics
from simsearch.search.dense_filtered import search_allowed
from simsearch.store.generation import Store

SLACK = 8  # extra FAISS results per query: near-ties at the cut-off are settled in float64
NEAR = 1e-5  # FAISS's float32 scores are this close to the exact cosine, with a wide margin
_NO_ROWS = np.zeros(0, np.int64)


class Candidate(NamedTuple):
    """One document a shard proposes: ``cosine`` / ``bm25`` are None where undefined (no query
    vector, no matching term); ``dense`` / ``lexical`` say which side's top it is in."""

    id: str
    rowid: int
    cosine: float | None
    bm25: float | None
    dense: bool
    lexical: bool


def field_types(store: Store) -> dict[str, set[str]]:
    """The metadata fields of this shard and the JSON types each holds."""
    return filters.metadata_types(store, store.db)


def statistics(store: Store, terms: Sequence[str]) -> Statistics:
    """This shard's part of the collection statistics BM25 needs for ``terms``."""
    return _postings(store).statistics(terms)


def candidates(store: Store, request: SearchRequest, collection: Statistics | None) -> list[list[Candidate]]:
    """This shard's candidates for each query of ``request`` (see the module docstring);
    ``collection``: the whole index's statistics (lexical and hybrid modes)."""
    allowed = None
    if request.condition is not None:
        allowed = filters.allowed_rowids(store, store.db, request.condition)
        if len(allowed) == 0:
            return [[] for _ in request.queries]
    depth = request.k if request.mode != "hybrid" else fusion_depth(request.k)
    dense: list[np.ndarray] = [_NO_ROWS] * len(request.queries)
    if request.vectors is not None:
        dense = _dense_rows(store, request.vectors, depth, allowed)
    matched: list[tuple[np.ndarray, np.ndarray]] = []
    if request.tokens is not None and collection is not None:
        postings = _postings(store)
        matched = [_allowed(postings.match(tokens, collection), allowed) for tokens in request.tokens]
    lexical_rows = [_lexical_rows(*found, depth) for found in matched]
    everything = np.concatenate([*dense, *lexical_rows, _NO_ROWS])
    ids = store.ids_of(everything.tolist()) if len(everything) else {}
    answers = []
    for q in range(len(request.queries)):
        vector = None if request.vectors is None else request.vectors[q]
        found = matched[q] if matched else None
        answers.append(
            _candidates(store, ids, vector, dense[q], lexical_rows[q] if matched else _NO_ROWS, found, depth)
        )
    return answers


def fetch(store: Store, rowids: Sequence[int]) -> dict[int, tuple[str, str, dict[str, Any]]]:
    """id, text and metadata of the hits this shard holds."""
    return store.fetch(rowids)


def fusion_depth(k: int) -> int:
    from simsearch.search.fusion import candidates as depth

    return depth(k)


def cosines(store: Store, vector: np.ndarray, rowids: np.ndarray) -> np.ndarray:
    """Cosines of ``vector`` with some stored rows, in float64: each product of two float32
    values is exact there, and each row is summed the same way wherever it is stored."""
    if not len(rowids):
        return np.zeros(0, np.float64)
    stored = store.vectors_of(rowids).astype(np.float64)
    return np.sum(stored * np.asarray(vector, dtype=np.float64)[None, :], axis=1)


def _postings(store: Store) -> Postings:
    return lexical.postings(store)


def _allowed(
    found: tuple[np.ndarray, np.ndarray], allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    rowids, scores = found
    if allowed is None or not len(rowids):
        return rowids, scores
    keep = np.isin(rowids, allowed, assume_unique=True)
    return rowids[keep], scores[keep]


def _lexical_rows(rowids: np.ndarray, scores: np.ndarray, depth: int) -> np.ndarray:
    """The rows scoring at least the ``depth``-th best BM25 (every tie with it included: the
    cut by document id happens once the ids are known)."""
    if len(rowids) <= depth:
        return rowids
    cut = scores[np.argpartition(-scores, depth - 1)[depth - 1]]
    return rowids[scores >= cut]


def _dense_rows(
    store: Store, vectors: np.ndarray, depth: int, allowed: np.ndarray | None
) -> list[np.ndarray]:
    """Per query, FAISS's best rows: at least the top ``depth`` and every row whose float32
    score comes within :data:`NEAR` of the ``depth``-th (the exact order is settled later)."""
    limit = store.faiss.ntotal if allowed is None else len(allowed)
    if limit == 0:
        return [_NO_ROWS] * len(vectors)
    queries = np.ascontiguousarray(vectors, dtype=np.float32)
    want = min(limit, depth + SLACK)
    while True:
        if allowed is None:
            scores, rowids = store.faiss.search(queries, want)
        else:
            scores, rowids = search_allowed(
                store.faiss, store.db, queries, want, allowed, int(store.manifest.dim)
            )
        valid = (rowids >= 0) & np.isfinite(scores)
        if want >= limit or not _near_cut(scores, valid, depth):
            # a non-finite score (a NaN vector written by an older version) is no match
            return [row[ok] for row, ok in zip(rowids, valid)]
        want = min(limit, want * 2)


def _near_cut(scores: np.ndarray, valid: np.ndarray, depth: int) -> bool:
    """Whether some query's last result may tie with its ``depth``-th (ask FAISS for more)."""
    if scores.shape[1] <= depth:
        return False
    full = valid.all(axis=1)
    return bool(np.any(full & (scores[:, depth - 1] - scores[:, -1] <= NEAR)))


def _candidates(
    store: Store,
    ids: dict[int, str],
    vector: np.ndarray | None,
    dense_rows: np.ndarray,
    lexical_rows: np.ndarray,
    matched: tuple[np.ndarray, np.ndarray] | None,
    depth: int,
) -> list[Candidate]:
    """One query's candidates: each side cut to its top ``depth`` by (score, id), every
    candidate scored on both sides where the request has them."""
    pool = np.unique(np.concatenate([dense_rows, lexical_rows]))
    cosine = cosines(store, vector, pool) if vector is not None else None
    bm25 = _bm25_of(matched, pool) if matched is not None else None
    position = {int(r): n for n, r in enumerate(pool.tolist())}

    def side(rows: np.ndarray, scores: np.ndarray | None) -> set[int]:
        if scores is None or not len(rows):
            return set()
        ranked = sorted(rows.tolist(), key=lambda r: (-scores[position[r]], ids[r]))
        return set(ranked[:depth])

    in_dense = side(dense_rows, cosine)
    in_lexical = side(lexical_rows, bm25)
    return [
        Candidate(
            ids[r],
            r,
            None if cosine is None else float(cosine[n]),
            None if bm25 is None or np.isnan(bm25[n]) else float(bm25[n]),
            r in in_dense,
            r in in_lexical,
        )
        for n, r in enumerate(pool.tolist())
        if r in in_dense or r in in_lexical
    ]


def _bm25_of(matched: tuple[np.ndarray, np.ndarray], pool: np.ndarray) -> np.ndarray:
    """The BM25 of each pooled row (NaN for a row that matches no query term)."""
    rowids, scores = matched
    out = np.full(len(pool), np.nan)
    if len(rowids) and len(pool):
        where = np.minimum(np.searchsorted(rowids, pool), len(rowids) - 1)
        hit = rowids[where] == pool
        out[hit] = scores[where[hit]]
    return out
