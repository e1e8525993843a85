"""Rank fusion: min-max blend with a per-query dense weight; deterministic, stable ties; the scores
hits show: absolute 0-1, in the ranking's order."""

from __future__ import annotations

import random

import pytest

from simsearch.search.fusion import DEPTH, candidates, dense_weight, fuse, relevance

FULL = 20.0  # the query's own BM25 (a document repeating the query)


def test_even_blend_of_normalised_sides() -> None:
    dense = [(1, 0.9), (2, 0.5), (3, 0.1)]
    lexical = [(3, 12.0), (1, 6.0), (4, 0.0)]
    cosine = {1: 0.9, 2: 0.5, 3: 0.1, 4: -0.3}
    bm25 = {3: 12.0, 1: 6.0, 4: 0.0}
    fused = fuse(dense, lexical, cosine, bm25, 0.5, 10, FULL)
    scores = {f.key: round(f.fused, 6) for f in fused}
    # doc 4: cosine below the dense side's worst top score continues the line (-0.5); no
    # bm25 (doc 2) counts as BM25 0
    assert scores == {1: round(0.5 * 1 + 0.5 * 0.5, 6), 2: 0.25, 3: 0.5, 4: -0.25}
    assert [f.key for f in fused] == [1, 3, 2, 4]
    assert fused[0].cosine == 0.9 and fused[0].bm25 == 6.0


def test_weight_zero_is_the_lexical_ranking_and_one_the_dense() -> None:
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    lexical = [(3, 9.0), (2, 5.0), (1, 1.0)]
    both = {1: 0.9, 2: 0.8, 3: 0.7}, {3: 9.0, 2: 5.0, 1: 1.0}
    assert [f.key for f in fuse(dense, lexical, *both, 0.0, 3, FULL)] == [3, 2, 1]
    assert [f.key for f in fuse(dense, lexical, *both, 1.0, 3, FULL)] == [1, 2, 3]


def test_one_side_empty_ranks_by_the_other_alone() -> None:
    dense = [(5, 0.7), (6, 0.2)]
    fused = fuse(dense, [], {5: 0.7, 6: 0.2}, {}, 0.1, 5, FULL)
    assert [(f.key, f.fused, f.bm25) for f in fused] == [(5, 1.0, None), (6, 0.0, None)]
    assert [f.score for f in fused] == pytest.approx([0.7, 0.2])  # the dense side alone: the cosine
    lexical_only = fuse([], [(8, 3.0), (9, 1.0)], {}, {8: 3.0, 9: 1.0}, 0.5, 5, FULL)
    assert [f.key for f in lexical_only] == [8, 9] and lexical_only[0].cosine is None
    assert [f.score for f in lexical_only] == pytest.approx([3.0 / FULL, 1.0 / FULL])  # BM25 share


def test_ties_are_broken_by_cosine_then_rowid_whatever_the_input_order() -> None:
    dense = [(r, 0.5) for r in (7, 3, 9, 1)]
    lexical = [(r, 2.0) for r in (9, 1, 7, 3)]
    cosine = {7: 0.5, 3: 0.5, 9: 0.5, 1: 0.5}
    bm25 = {r: 2.0 for r in cosine}
    expected = [1, 3, 7, 9]
    rng = random.Random(0)
    for _ in range(20):
        d, lx = dense[:], lexical[:]
        rng.shuffle(d)
        rng.shuffle(lx)
        assert [f.key for f in fuse(d, lx, cosine, bm25, 0.5, 4, FULL)] == expected


def test_fusion_is_deterministic() -> None:
    rng = random.Random(1)
    dense = sorted(((r, rng.random()) for r in range(50)), key=lambda x: -x[1])
    lexical = sorted(((r, rng.random() * 10) for r in range(25, 75)), key=lambda x: -x[1])
    cosine, bm25 = dict(dense), dict(lexical)
    runs = {tuple(fuse(dense, lexical, cosine, bm25, 0.4, 20, FULL)) for _ in range(5)}
    assert len(runs) == 1


def test_dense_weight_follows_coverage() -> None:
    assert dense_weight(1.0) == 0.5
    assert dense_weight(0.75) == 0.25
    assert dense_weight(0.5) == dense_weight(0.1) == dense_weight(0.0) == 0.0
    assert dense_weight(2.0) == 0.5 and dense_weight(-1) == 0.0


def test_normalisation_is_set_by_each_sides_top_depth_whatever_the_candidates() -> None:
    dense = [(r, 1.0 - r / 1000) for r in range(3 * DEPTH)]  # cosine falls by 0.001 a rank
    lexical = [(r, 50.0 - r / 10) for r in range(0, 6 * DEPTH, 2)]  # even rows only
    cosine, bm25 = dict(dense), dict(lexical)
    deep = {f.key: f.fused for f in fuse(dense, lexical, cosine, bm25, 1.0, 10**6, FULL)}
    # dense alone (weight 1): the DEPTH-th scores 0 and the line goes on below it
    assert deep[0] == 1.0 and abs(deep[DEPTH - 1]) < 1e-9 and deep[2 * DEPTH - 1] < -0.9
    shallow = fuse(dense[:DEPTH], lexical[:DEPTH], cosine, bm25, 0.5, 10, FULL)
    assert shallow == fuse(dense, lexical, cosine, bm25, 0.5, 10, FULL)  # deeper candidates, same top
    lexical_only = {f.key: f.fused for f in fuse(dense, lexical, cosine, bm25, 0.0, 10**6, FULL)}
    assert lexical_only[1] < lexical_only[2 * DEPTH]  # no match (BM25 0) ranks below a weak match


def test_candidates_grow_with_k() -> None:
    assert candidates(10) == DEPTH and candidates(DEPTH) == 2 * DEPTH and candidates(500) == 1000


def test_scores_keep_the_ranking_order_are_never_negative_and_the_top_shows_its_relevance() -> None:
    rng = random.Random(2)
    dense = sorted(((r, rng.uniform(-0.2, 0.9)) for r in range(150)), key=lambda x: -x[1])
    lexical = sorted(((r, rng.uniform(0.5, 15.0)) for r in range(60, 260)), key=lambda x: -x[1])
    cosine = {r: rng.uniform(-0.2, 0.9) for r in range(150, 260)} | dict(dense)
    bm25 = dict(lexical)
    for weight in (0.0, 0.3, 0.5, 1.0):
        fused = fuse(dense, lexical, cosine, bm25, weight, 300, FULL)
        scores = [f.score for f in fused]
        assert scores == sorted(scores, reverse=True) and min(scores) >= 0.0 and max(scores) <= 1.0
        top = fused[0]
        assert top.score == relevance(top.cosine, top.bm25, weight, FULL) < 1.0
        # a positive affine map of the fused value (above the floor at 0)
        above = [f for f in fused if f.score > 0.0]
        slopes = {
            round((f.score - top.score) / (f.fused - top.fused), 9) for f in above if f.fused < top.fused
        }
        assert len(slopes) == 1 and slopes.pop() > 0


def test_a_full_match_scores_1_and_a_partial_one_less() -> None:
    full = fuse(
        [(1, 1.0), (2, 0.4)], [(1, FULL), (2, 5.0)], {1: 1.0, 2: 0.4}, {1: FULL, 2: 5.0}, 0.5, 2, FULL
    )
    assert full[0].score == pytest.approx(1.0) and full[1].score < 1.0
    # one candidate per side: the top is 1 on the fused scale, not in the score
    (only,) = fuse([(1, 0.6)], [(1, 4.0)], {1: 0.6}, {1: 4.0}, 0.5, 5, FULL)
    assert only.fused == 1.0 and only.score == pytest.approx(0.5 * 0.6 + 0.5 * 4.0 / FULL)
    # longer or repeating documents can outscore the query itself on BM25: still at most 1
    assert relevance(1.0, 3 * FULL, 0.5, FULL) == 1.0 and relevance(-0.3, None, 0.5, FULL) == 0.0


def test_scores_compare_across_queries() -> None:
    """A clearly good match for one query scores higher than a weak match for another, although
    each is its own query's top (the fused value, 1 for both, cannot tell them apart)."""
    good = fuse(
        [(1, 0.85), (2, 0.3)], [(1, 14.0), (2, 2.0)], {1: 0.85, 2: 0.3}, {1: 14.0, 2: 2.0}, 0.5, 2, 16.0
    )
    weak = fuse([(3, 0.35), (4, 0.1)], [(3, 3.0)], {3: 0.35, 4: 0.1}, {3: 3.0}, 0.5, 2, 16.0)
    assert good[0].fused == weak[0].fused == 1.0
    assert good[0].score > 0.8 > 0.3 > weak[0].score > weak[1].score >= 0.0
