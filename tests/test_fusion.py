"""Rank fusion: min-max blend with a per-query dense weight; deterministic, stable ties."""

from __future__ import annotations

import random

from simsearch.search.fusion import DEPTH, candidates, dense_weight, fuse


def test_even_blend_of_normalised_sides() -> None:
    dense = [(1, 0.9), (2, 0.5), (3, 0.1)]
    lexical = [(3, 12.0), (1, 6.0), (4, 0.0)]
    cosine = {1: 0.9, 2: 0.5, 3: 0.1, 4: -0.3}
    bm25 = {3: 12.0, 1: 6.0, 4: 0.0}
    fused = fuse(dense, lexical, cosine, bm25, 0.5, 10)
    scores = {f.key: round(f.score, 6) for f in fused}
    # doc 4: cosine below the dense side's worst top score continues the line (-0.5); no
    # bm25 (doc 2) counts as BM25 0
    assert scores == {1: round(0.5 * 1 + 0.5 * 0.5, 6), 2: 0.25, 3: 0.5, 4: -0.25}
    assert [f.key for f in fused] == [1, 3, 2, 4]
    assert fused[0].cosine == 0.9 and fused[0].bm25 == 6.0


def test_weight_zero_is_the_lexical_ranking_and_one_the_dense() -> None:
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    lexical = [(3, 9.0), (2, 5.0), (1, 1.0)]
    both = {1: 0.9, 2: 0.8, 3: 0.7}, {3: 9.0, 2: 5.0, 1: 1.0}
    assert [f.key for f in fuse(dense, lexical, *both, 0.0, 3)] == [3, 2, 1]
    assert [f.key for f in fuse(dense, lexical, *both, 1.0, 3)] == [1, 2, 3]


def test_one_side_empty_ranks_by_the_other_alone() -> None:
    dense = [(5, 0.7), (6, 0.2)]
    fused = fuse(dense, [], {5: 0.7, 6: 0.2}, {}, 0.1, 5)
    assert [(f.key, f.score, f.bm25) for f in fused] == [(5, 1.0, None), (6, 0.0, None)]
    lexical_only = fuse([], [(8, 3.0), (9, 1.0)], {}, {8: 3.0, 9: 1.0}, 0.5, 5)
    assert [f.key for f in lexical_only] == [8, 9] and lexical_only[0].cosine is None


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
        assert [f.key for f in fuse(d, lx, cosine, bm25, 0.5, 4)] == expected


def test_fusion_is_deterministic() -> None:
    rng = random.Random(1)
    dense = sorted(((r, rng.random()) for r in range(50)), key=lambda x: -x[1])
    lexical = sorted(((r, rng.random() * 10) for r in range(25, 75)), key=lambda x: -x[1])
    cosine, bm25 = dict(dense), dict(lexical)
    runs = {tuple(fuse(dense, lexical, cosine, bm25, 0.4, 20)) for _ in range(5)}
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
    deep = {f.key: f.score for f in fuse(dense, lexical, cosine, bm25, 1.0, 10**6)}
    # dense alone (weight 1): the DEPTH-th scores 0 and the line goes on below it
    assert deep[0] == 1.0 and abs(deep[DEPTH - 1]) < 1e-9 and deep[2 * DEPTH - 1] < -0.9
    shallow = fuse(dense[:DEPTH], lexical[:DEPTH], cosine, bm25, 0.5, 10)
    assert shallow == fuse(dense, lexical, cosine, bm25, 0.5, 10)  # deeper candidates, same top
    lexical_only = {f.key: f.score for f in fuse(dense, lexical, cosine, bm25, 0.0, 10**6)}
    assert lexical_only[1] < lexical_only[2 * DEPTH]  # no match (BM25 0) ranks below a weak match


def test_candidates_grow_with_k() -> None:
    assert candidates(10) == DEPTH and candidates(DEPTH) == 2 * DEPTH and candidates(500) == 1000
