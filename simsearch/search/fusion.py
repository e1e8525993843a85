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

The fused value ranks, but it is relative to the query's own candidates (the top is always 1,
whatever it matches; deep candidates fall below 0), so it is not what a hit shows. The
*score* a hit shows is a positive affine map of it, so it keeps the order exactly, onto an
absolute 0-1 scale: the top hit shows its :func:`relevance`::

    relevance = w * clip(cosine, 0, 1) + (1 - w) * min(1, bm25 / bm25_full)

(``bm25_full``: the BM25 of a document made of exactly the query's tokens, i.e. a document
repeating the query scores 1 on both sides), and each next hit shows the top's relevance minus
its fused distance from the top, converted to the same units (each side's normalisation span
in raw units: cosine, and BM25 as a share of ``bm25_full``), floored at 0. So a hit's score is
about what its relevance would be, scores are comparable across queries, the top shows 1 only
for a document that matches the query fully, none is negative, and the ranking is untouched.
When one side ranks alone, the score is that side's relevance exactly (the cosine, or the
BM25 share).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Generic, Mapping, Sequence, TypeVar

DENSE_WEIGHT = 0.5  # the dense share for a query the model covers in full
COVERAGE_FLOOR = 0.5  # coverage at or below which the dense side gets no weight
DEPTH = 100  # each side's normalisation: its best scores 1, its DEPTH-th 0

K = TypeVar("K", int, str)  # what identifies a candidate: a document id (or a row id)


@dataclass(frozen=True)
class Fused(Generic[K]):
    """One fused candidate: the ``score`` it shows (0-1), each side's raw score (None if
    undefined) and the ``fused`` value it was ranked by."""

    key: K
    score: float
    cosine: float | None
    bm25: float | None
    fused: float


def dense_weight(coverage: float) -> float:
    """The dense weight for a query whose letters and digits the model covers at ``coverage``."""
    return DENSE_WEIGHT * min(1.0, max(0.0, (coverage - COVERAGE_FLOOR) / (1.0 - COVERAGE_FLOOR)))


def candidates(k: int) -> int:
    """How many candidates each side contributes to a fused top ``k``."""
    return max(DEPTH, 2 * k)


def relevance(cosine: float | None, bm25: float | None, weight: float, bm25_full: float) -> float:
    """A document's absolute relevance to a query, 0-1: the ``weight`` blend of its cosine
    (clipped to 0-1) and its BM25 as a share of ``bm25_full`` (at most 1)."""
    dense = 0.0 if cosine is None else min(1.0, max(0.0, cosine))
    lexical = min(1.0, bm25 / bm25_full) if bm25 and bm25_full > 0 else 0.0
    return weight * dense + (1.0 - weight) * lexical


def _normaliser(top: Sequence[tuple[K, float]]) -> tuple[float, float]:
    scores = [s for _, s in top[:DEPTH]]  # the side's best DEPTH, best first
    return (min(scores), max(scores)) if scores else (0.0, 0.0)


def _norm(value: float, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    if hi - lo <= 1e-12:
        return 1.0 if value >= lo else 0.0
    return (value - lo) / (hi - lo)


def _span(bounds: tuple[float, float]) -> float:
    """A side's normalisation span in raw units: 1 on its normalised scale. A single-valued
    side normalises as a step from nothing (a non-match, BM25 0) to its score."""
    lo, hi = bounds
    return hi - lo if hi - lo > 1e-12 else max(hi, 0.0)


def fuse(
    dense_top: Sequence[tuple[K, float]],
    lexical_top: Sequence[tuple[K, float]],
    cosine: Mapping[K, float],
    bm25: Mapping[K, float],
    weight: float,
    k: int,
    bm25_full: float,
) -> list[Fused[K]]:
    """The ``k`` best of the union of both sides' top lists, best first, with their scores.

    ``dense_top`` / ``lexical_top``: each side's (key, score) top list, best first (the
    candidates; the first ``DEPTH`` set the normalisation); ``cosine`` / ``bm25``: each
    candidate's raw score on each side where known (a candidate the lexical side does not match
    has no bm25 and counts as BM25 0; one without a cosine counts as the dense side's worst);
    ``bm25_full``: the query's BM25 as a document (the scores' lexical unit, see above).
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
        value = weight * dense_part + (1.0 - weight) * _norm(0.0 if b is None else b, lexical_bounds)
        fused.append(Fused(key, value, c, b, value))  # the score shown is set below
    fused.sort(key=lambda f: (-f.fused, -(f.cosine if f.cosine is not None else -2.0), f.key))
    if not fused:
        return []
    top = fused[0]
    anchor = relevance(top.cosine, top.bm25, weight, bm25_full)
    lexical_unit = _span(lexical_bounds) / bm25_full if bm25_full > 0 else 0.0
    slope = weight * _span(dense_bounds) + (1.0 - weight) * lexical_unit
    return [replace(f, score=max(0.0, anchor + slope * (f.fused - top.fused))) for f in fused[:k]]
