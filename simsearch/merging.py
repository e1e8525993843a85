"""Merging the shards' answers into one ranking: the one rule for shards searched by threads
(:mod:`simsearch.sharded`) and by Ray actors (:mod:`simsearch.scale.serve`).

Each shard ranks its own rows; the merge keeps the best ``k`` by score, ties going to the lower
shard number (then the lower row id), so on exact shards a dense merge is an unsharded index's.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from simsearch.fusion import Fused
from simsearch.hits import Hit


def merge_ranked(
    ranked: Sequence[Sequence[Sequence[Fused]]], k: int, min_score: float | None
) -> list[list[tuple[int, Fused]]]:
    """Per query, the best ``k`` of every shard's ranked rows as ``(shard, row)``: by score, ties
    by shard number then row id; ``min_score`` keeps rows whose cosine reaches it."""
    merged = []
    for q in range(len(ranked[0]) if ranked else 0):
        rows = [
            (n, f)
            for n, per_query in enumerate(ranked)
            for f in per_query[q]
            if min_score is None or (f.cosine is not None and f.cosine >= min_score)
        ]
        rows.sort(key=lambda row: (-row[1].score, row[0], row[1].rowid))
        merged.append(rows[:k])
    return merged


def merge_dense(
    answers: Sequence[tuple[np.ndarray, np.ndarray]], k: int, min_score: float | None
) -> list[list[tuple[float, int, int]]]:
    """Per query, the best ``k`` of every shard's FAISS answer ``(scores, rowids)`` as
    ``(score, shard, rowid)``, ties: lower shard number first (an unsharded exact index's order)."""
    scores = np.hstack([s for s, _ in answers])
    rowids = np.hstack([r for _, r in answers])
    owner = np.hstack([np.full(r.shape, n) for n, (_, r) in enumerate(answers)])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [
        [
            (float(scores[q, c]), int(owner[q, c]), int(rowids[q, c]))
            for c in row
            if rowids[q, c] >= 0
            and np.isfinite(scores[q, c])
            and (min_score is None or scores[q, c] >= min_score)
        ]
        for q, row in enumerate(order)
    ]


Stored = Mapping[int, tuple[str, str, dict[str, Any]]]  # a shard's fetched rows: id, text, metadata


def fused_hits(row: Sequence[tuple[int, Fused]], found: Sequence[Stored]) -> list[Hit]:
    """Hits of one merged query, each from its shard's fetched rows."""
    hits = []
    for rank, (n, f) in enumerate(row, 1):
        doc_id, text, metadata = found[n][f.rowid]
        hits.append(Hit(rank, doc_id, f.score, text, metadata, f.cosine, f.bm25))
    return hits


def dense_hit(rank: int, score: float, stored: tuple[str, str, dict[str, Any]]) -> Hit:
    doc_id, text, metadata = stored
    return Hit(rank, doc_id, score, text, metadata, score)  # dense: the score is the cosine


def as_faiss(rows: list[list[tuple[int, float]]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rowid, score)`` rows as FAISS answers: (scores, rowids), padded with -inf / -1."""
    scores = np.full((len(rows), k), -np.inf, dtype=np.float32)
    rowids = np.full((len(rows), k), -1, dtype=np.int64)
    for q, row in enumerate(rows):
        for c, (rowid, score) in enumerate(row[:k]):
            scores[q, c], rowids[q, c] = score, rowid
    return scores, rowids
