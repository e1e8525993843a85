"""Rank fusion of the dense (cosine) and lexical (BM25) rankings of one query.

The method, and why (measured in docs/hybrid.md): each side's scores are min-max normalised
by that side's own top ``DEPTH`` (the side's best is 1, its ``DEPTH``-th 0, and lower scores
continue the same line below 0; a document matching no query term has BM25 0), and the two are
blended with a dense weight set *per query* by how much of the query the model's vocabulary
covers (:func:`simsearch.encode.coverage.coverage`, the share of its letters and digits the
tokenizer keeps as real pieces)::

    fused = w * dense_norm + (1 - w) * bm25_norm
    w = DENSE_WEIGHT * clip((coverage - COVERAGE_FLOOR) / (1 - COVERAGE_FLOOR), 0, 1)

A query the model reads in full gets the even blend that wins on English (SciFact, STS-B
paraphrases); a query in a script the model shreds into [UNK] or sub-character pieces (Hangul
for the default English model) is ranked by BM25 alone: the dense ranking is noise there, and
plain RRF (which ignores how good each side is) loses most of BM25's quality. Below half the
query the model cannot read, its vector says little (the numbers and Latin words in a Korean
question do not make the English model understand it), hence the floor.

Each side contributes its top :func:`candidates` (``k``) documents, at least ``DEPTH`` and
twice ``k``: a deep fused list (``k`` = 100) needs documents that one side ranks a little
below ``k``, and the normalisation does not depend on ``k`` (the top 10 of a ``k`` = 100 query
is the top 10 of a ``k`` = 10 one). When one side has no candidates (no query token matches,
or the query analyses to nothing), the other side alone ranks. Ties are broken by the higher
cosine, then by the smaller key (the document id): deterministic, and the same in every
topology (the sides here are the whole index's, merged from every shard before fusing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Mapping, Sequence, TypeVar

DENSE_WEIGHT = 0.5  # the dense share for a query the model covers in full
COVERAGE_FLOOR = 0.5  # coverage at or below which the dense side gets no weight
DEPTH = 100  # each side's normalisation: its best scores 1, its DEPTH-th 0

K = TypeVar("K", int, str)  # what identifies a candidate: a document id (or a row id)


@dataclass(frozen=True)
class Fused(Generic[K]):
    """One fused candidate: the fused ``score`` and each side's raw score (None if undefined)."""

    key: K
    score: float
    cosine: float | None
    bm25: float | None


def dense_weight(coverage: float) -> float:
    """The dense weight for a query whose letters and digits the model covers at ``coverage``."""
    return DENSE_WEIGHT * min(1.0, max(0.0, (coverage - COVERAGE_FLOOR) / (1.0 - COVERAGE_FLOOR)))


def candidates(k: int) -> int:
    """How many candidates each side contributes to a fused top ``k``."""
    return max(DEPTH, 2 * k)


def _normaliser(top: Sequence[tuple[K, float]]) -> tuple[float, float]:
    scores = [s for _, s in top[:DEPTH]]  # the side's best DEPTH, best first
    return (min(scores), max(scores)) if scores else (0.0, 0.0)


def _norm(value: float, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    if hi - lo <= 1e-12:
        return 1.0 if value >= lo else 0.0
    return (value - lo) / (hi - lo)


def fuse(
    dense_top: Sequence[tuple[K, float]],
    lexical_top: Sequence[tuple[K, float]],
    cosine: Mapping[K, float],
    bm25: Mapping[K, float],
    weight: float,
    k: int,
) -> list[Fused[K]]:
    """The ``k`` best of the union of both sides' top lists, best first.

    ``dense_top`` / ``lexical_top``: each side's (key, score) top list, best first (the
    candidates; the first ``DEPTH`` set the normalisation); ``cosine`` / ``bm25``: each
    candidate's raw score on each side where known (a candidate the lexical side does not match
    has no bm25 and counts as BM25 0; one without a cosine counts as the dense side's worst).
    """
    if not lexical_top:
        weight = 1.0
    elif not dense_top:
        weight = 0.0
    dense_bounds, lexical_bounds = _normaliser(dense_top), _normaliser(lexical_top)
    worst = min((s for _, s in dense_top), default=0.0)
    pool = dict.fromkeys([r for r, _ in dense_top] + [r for r, _ in lexical_top])
    fused = []
    for key in pool:
        c, b = cosine.get(key), bm25.get(key)
        dense_part = _norm(worst if c is None else c, dense_bounds)
        score = weight * dense_part + (1.0 - weight) * _norm(0.0 if b is None else b, lexical_bounds)
        fused.append(Fused(key, score, c, b))
    fused.sort(key=lambda f: (-f.score, -(f.cosine if f.cosine is not None else -2.0), f.key))
    return fused[:k]
