"""The shards' candidates -> one ranking per query, computed once for the whole index.

The same rule in every topology (one store, shards over threads, Ray actors), so the answers
are the plain index's: each side's top is taken over the union of the shards' candidates
(which holds it, see :mod:`simsearch.search.shard`), hybrid fusion normalises by those
index-wide tops (:func:`simsearch.search.fusion.fuse`), and ties are broken by document id.
A hybrid hit's score is computed here too, once, with the whole index's BM25 statistics.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from simsearch.search.fusion import fuse
from simsearch.search.request import SearchRequest
from simsearch.search.shard import Candidate, fusion_depth
from simsearch.store.lexical.bm25 import Statistics


class Ranked(NamedTuple):
    """One hit before its text is fetched: the shard holding it, its row there, its scores."""

    shard: int
    rowid: int
    id: str
    score: float
    cosine: float | None
    bm25: float | None


def rank(
    request: SearchRequest,
    answers: Sequence[Sequence[Sequence[Candidate]]],
    collection: Statistics | None = None,
) -> list[list[Ranked]]:
    """Per query, the best ``request.k`` of every shard's candidates (``answers[shard][query]``),
    best first; ``min_score`` then drops hits whose cosine is below it. ``collection``: the
    whole index's BM25 statistics (lexical and hybrid modes), the unit of hybrid scores."""
    ranked = []
    for q in range(len(request.queries)):
        pool = {c.id: (shard, c) for shard, per_query in enumerate(answers) for c in per_query[q]}
        if request.mode == "dense":
            rows = _side(pool, "dense", request.k)
            top = [_ranked(pool, c.id, c.cosine) for c in rows]
        elif request.mode == "lexical":
            rows = _side(pool, "lexical", request.k)
            top = [_ranked(pool, c.id, c.bm25) for c in rows]
        else:
            assert request.weights is not None and request.tokens is not None  # SearchRequest checks
            full = collection.self_score(request.tokens[q]) if collection is not None else 0.0
            top = _hybrid(pool, request.weights[q], request.k, full)
        if request.min_score is not None:
            top = [r for r in top if r.cosine is not None and r.cosine >= request.min_score]
        ranked.append(top)
    return ranked


def _side(pool: dict[str, tuple[int, Candidate]], side: str, depth: int) -> list[Candidate]:
    """One side's top ``depth`` over all shards: by that side's score, ties by document id."""
    if side == "dense":
        rows = [c for _, c in pool.values() if c.dense and c.cosine is not None]
        rows.sort(key=lambda c: (-(c.cosine or 0.0), c.id))
    else:
        rows = [c for _, c in pool.values() if c.lexical and c.bm25 is not None]
        rows.sort(key=lambda c: (-(c.bm25 or 0.0), c.id))
    return rows[:depth]


def _ranked(pool: dict[str, tuple[int, Candidate]], doc_id: str, score: float | None) -> Ranked:
    shard, c = pool[doc_id]
    return Ranked(shard, c.rowid, c.id, float(score if score is not None else 0.0), c.cosine, c.bm25)


def _hybrid(pool: dict[str, tuple[int, Candidate]], weight: float, k: int, bm25_full: float) -> list[Ranked]:
    depth = fusion_depth(k)
    dense = _side(pool, "dense", depth)
    lexical = _side(pool, "lexical", depth)
    cosine = {c.id: c.cosine for _, c in pool.values() if c.cosine is not None}
    bm25 = {c.id: c.bm25 for _, c in pool.values() if c.bm25 is not None}
    fused = fuse(
        [(c.id, c.cosine or 0.0) for c in dense],
        [(c.id, c.bm25 or 0.0) for c in lexical],
        cosine,
        bm25,
        weight,
        k,
        bm25_full,
    )
    return [_ranked(pool, f.key, f.score) for f in fused]
