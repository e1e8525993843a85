"""Rank fusion of the dense (cosine) and lexical (BM25) rankings of one query.

The method, and why (measured in docs/hybrid.md): each side's scores are min-max normalised
over that side's own top ``depth`` (a score below the side's ``depth``-th is 0, the side's best
is 1), and the two are blended with a dense weight set *per query* by how much of the query the
model's vocabulary covers (:func:`simsearch.encode.coverage.coverage`, the share of its letters
and digits the tokenizer keeps as real pieces)::

    fused = w * dense_norm + (1 - w) * bm25_norm
    w = DENSE_WEIGHT * clip((coverage - COVERAGE_FLOOR) / (1 - COVERAGE_FLOOR), 0, 1)

A query the model reads in full gets the even blend that wins on English (SciFact, STS-B
paraphrases); a query in a script the model shreds into [UNK] or sub-character pieces (Hangul
for the default English model) is ranked by BM25 alone: the dense ranking is noise there, and
plain RRF (which ignores how good each side is) loses most of BM25's quality. Below half the
query the model cannot read, its vector says little (the numbers and Latin words in a Korean
question do not make the English model understand it), hence the floor. When one side has no
candidates (no query token matches, or the query analyses to nothing), the other side alone
ranks. Ties are broken by the higher cosine, then by the smaller row id: deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

MODES = ("dense", "lexical", "hybrid")  # the search modes (simsearch.hybrid runs them)
DENSE_WEIGHT = 0.5  # the dense share for a query the model covers in full
COVERAGE_FLOOR = 0.5  # coverage at or below which the dense side gets no weight
DEPTH = 100  # candidates taken from each side, and the depth of their normalisation


@dataclass(frozen=True)
class Fused:
    """One fused candidate: the fused ``score`` and each side's raw score (None if undefined)."""

    rowid: int
    score: float
    cosine: float | None
    bm25: float | None


def dense_weight(coverage: float) -> float:
    """The dense weight for a query whose letters and digits the model covers at ``coverage``."""
    return DENSE_WEIGHT * min(1.0, max(0.0, (coverage - COVERAGE_FLOOR) / (1.0 - COVERAGE_FLOOR)))


def _normaliser(top: Sequence[float]) -> tuple[float, float]:
    return (min(top), max(top)) if top else (0.0, 0.0)


def _norm(value: float | None, bounds: tuple[float, float]) -> float:
    if value is None:
        return 0.0
    lo, hi = bounds
    if hi - lo <= 1e-12:
        return 1.0 if value >= lo else 0.0
    return max(0.0, (value - lo) / (hi - lo))


def fuse(
    dense_top: Sequence[tuple[int, float]],
    lexical_top: Sequence[tuple[int, float]],
    cosine: Mapping[int, float],
    bm25: Mapping[int, float],
    weight: float,
    k: int,
) -> list[Fused]:
    """The ``k`` best of the union of both sides' top lists, best first.

    ``dense_top`` / ``lexical_top``: each side's (rowid, score) top list (normalisation bounds
    and candidates); ``cosine`` / ``bm25``: each candidate's raw score on each side where known
    (a candidate the lexical side does not match has no bm25 and counts 0 there).
    """
    if not lexical_top:
        weight = 1.0
    elif not dense_top:
        weight = 0.0
    dense_bounds = _normaliser([s for _, s in dense_top])
    lexical_bounds = _normaliser([s for _, s in lexical_top])
    candidates = dict.fromkeys([r for r, _ in dense_top] + [r for r, _ in lexical_top])
    fused = []
    for rowid in candidates:
        c, b = cosine.get(rowid), bm25.get(rowid)
        score = weight * _norm(c, dense_bounds) + (1.0 - weight) * _norm(b, lexical_bounds)
        fused.append(Fused(rowid, score, c, b))
    fused.sort(key=lambda f: (-f.score, -(f.cosine if f.cosine is not None else -2.0), f.rowid))
    return fused[:k]
