"""Tests for simsearch.eval.metrics: hand-computed cases with the arithmetic in comments."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simsearch.eval.metrics import (
    REPORT_METRICS,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    per_query_metrics,
    rank_documents,
    recall_at_k,
    retrieval_metrics,
    spearman,
)

LOG2_3 = math.log2(3)  # discount at rank 2
LOG2_6 = math.log2(6)  # discount at rank 5

# Graded judgements; x is judged but not relevant (rel 0 counts as not relevant).
GRADED_QRELS = {"q": {"a": 3, "b": 2, "c": 1, "x": 0}}
# Ranking by score: b (rel 2), x (0), a (3), d (unjudged), c (1).
GRADED_RUN = {"q": {"b": 0.9, "x": 0.8, "a": 0.7, "d": 0.6, "c": 0.5}}


def test_graded_ndcg_uses_linear_gain() -> None:
    # DCG@5  = 2/log2(2) + 0/log2(3) + 3/log2(4) + 0/log2(5) + 1/log2(6) = 2 + 1.5 + 1/log2(6)
    # IDCG@5 = 3/log2(2) + 2/log2(3) + 1/log2(4)                          = 3 + 2/log2(3) + 0.5
    # = 3.886853 / 4.761860 = 0.816247 (exponential gains 2**rel - 1 would give 0.733206)
    expected = (2 + 1.5 + 1 / LOG2_6) / (3 + 2 / LOG2_3 + 0.5)
    assert expected == pytest.approx(0.816247, abs=1e-6)
    assert ndcg_at_k(GRADED_RUN, GRADED_QRELS, 5) == pytest.approx(expected)
    # @2: DCG = 2/1 + 0, IDCG = 3/1 + 2/log2(3)
    assert ndcg_at_k(GRADED_RUN, GRADED_QRELS, 2) == pytest.approx(2 / (3 + 2 / LOG2_3))


def test_graded_recall_mrr_map() -> None:
    # Relevant: a, b, c (3 docs); found at ranks 1 (b), 3 (a), 5 (c).
    assert recall_at_k(GRADED_RUN, GRADED_QRELS, 2) == pytest.approx(1 / 3)
    assert recall_at_k(GRADED_RUN, GRADED_QRELS, 5) == pytest.approx(1.0)
    assert mrr_at_k(GRADED_RUN, GRADED_QRELS, 10) == pytest.approx(1.0)  # b at rank 1
    # AP@5 = (P@1 + P@3 + P@5) / 3 = (1/1 + 2/3 + 3/5) / 3
    assert map_at_k(GRADED_RUN, GRADED_QRELS, 5) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # AP@2 = P@1 / 3: the denominator is all relevant docs, not those within the cut.
    assert map_at_k(GRADED_RUN, GRADED_QRELS, 2) == pytest.approx(1 / 3)


def test_ties_broken_by_doc_id_descending() -> None:
    run = {"q": {"a": 1.0, "b": 1.0, "c": 1.0, "z": 0.5}}
    # trec_eval order for equal scores: c, b, a; then z (lower score) despite its id.
    assert rank_documents(run["q"]) == ["c", "b", "a", "z"]
    qrels = {"q": {"a": 1}}
    assert mrr_at_k(run, qrels, 10) == pytest.approx(1 / 3)  # a at rank 3
    assert ndcg_at_k(run, qrels, 3) == pytest.approx(0.5)  # (1/log2(4)) / (1/log2(2))
    assert recall_at_k(run, qrels, 2) == 0.0
    assert mrr_at_k(run, {"q": {"c": 1}}, 1) == 1.0  # c wins the tie


def test_query_without_relevant_document_is_skipped() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 0}}  # q2 has only a non-relevant judgement
    run = {"q1": {"a": 1.0}, "q2": {"b": 1.0}}
    report = retrieval_metrics(run, qrels)
    assert report["queries"] == 1
    assert report["ndcg@10"] == 1.0  # q1 only; q2 would otherwise drag the mean to 0.5
    assert set(per_query_metrics(run, qrels)) == {"q1"}
    with pytest.raises(ValueError, match="no query with a relevant document"):
        retrieval_metrics(run, {"q2": {"b": 0}})


def test_relevant_but_unretrieved_query_scores_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}
    # q2 is absent from the run, q3 retrieved nothing; q9 is not judged and is ignored.
    run = {"q1": {"a": 1.0}, "q3": {}, "q9": {"zz": 1.0}}
    report = retrieval_metrics(run, qrels)
    assert report["queries"] == 3
    for name in REPORT_METRICS:
        assert report[name] == pytest.approx(1 / 3)  # (1 + 0 + 0) / 3
    assert per_query_metrics(run, qrels)["q2"] == dict.fromkeys(REPORT_METRICS, 0.0)


def test_k_larger_than_retrieved_list() -> None:
    qrels = {"q": {"a": 1, "b": 1, "z": 1}}  # z is never retrieved
    run = {"q": {"a": 0.9, "c": 0.8, "b": 0.7}}  # only three docs retrieved
    assert recall_at_k(run, qrels, 100) == pytest.approx(2 / 3)
    # AP = (P@1 + P@3) / 3 = (1 + 2/3) / 3
    assert map_at_k(run, qrels, 100) == pytest.approx((1 + 2 / 3) / 3)
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) + 1/log2(4)
    assert ndcg_at_k(run, qrels, 100) == pytest.approx(1.5 / (1 + 1 / LOG2_3 + 0.5))


def test_perfect_ranking_scores_one() -> None:
    qrels = {"q1": {"a": 2, "b": 1}, "q2": {"c": 1}}
    run = {"q1": {"a": 0.9, "b": 0.8, "n": 0.1}, "q2": {"c": 0.5, "n": 0.4}}
    report = retrieval_metrics(run, qrels)
    assert report == {**dict.fromkeys(REPORT_METRICS, 1.0), "queries": 2}


def test_report_keys_and_bad_metric_names() -> None:
    report = retrieval_metrics({"q": {"a": 1.0}}, {"q": {"a": 1}})
    assert list(report) == ["ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100", "queries"]
    assert retrieval_metrics({"q": {"a": 1.0}}, {"q": {"a": 1}}, ("ndcg@3",)) == {
        "ndcg@3": 1.0,
        "queries": 1,
    }
    for bad in ("ndcg", "ndcg@0", "precision@10", "mrr@x"):
        with pytest.raises(ValueError, match="unknown metric"):
            retrieval_metrics({}, {"q": {"a": 1}}, (bad,))


def test_spearman_with_ties_matches_hand_computation() -> None:
    # Average ranks: x=[1,2,2,3] -> [1, 2.5, 2.5, 4]; y=[1,3,2,4] -> [1, 3, 2, 4]; means 2.5.
    # Deviations dx=[-1.5, 0, 0, 1.5], dy=[-1.5, .5, -.5, 1.5]
    # sum(dx*dy)=4.5, sum(dx^2)=4.5, sum(dy^2)=5 -> rho = 4.5/sqrt(4.5*5) = sqrt(0.9) = 0.94868
    # (the no-ties shortcut 1 - 6*sum(d^2)/(n(n^2-1)) would give 0.95, which is wrong here).
    rho = spearman([1, 2, 2, 3], [1, 3, 2, 4])
    assert isinstance(rho, float)
    assert rho == pytest.approx(math.sqrt(0.9))


def test_spearman_monotonic_and_degenerate() -> None:
    assert spearman([1, 2, 3, 4], [10, 100, 1000, 10_000]) == 1.0
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))  # undefined, as scipy
    with pytest.raises(ValueError, match="equal lengths"):
        spearman([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 2"):
        spearman([1], [1])
    with pytest.raises(ValueError, match="nan"):
        spearman([1, math.nan], [1, 2])


# --- properties -----------------------------------------------------------------------------

DOC_IDS = st.sampled_from([f"d{i}" for i in range(8)])
# A few repeated values so that ties are common.
SCORES = st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(-10, 10, allow_nan=False)
RUNS = st.dictionaries(st.sampled_from(["q1", "q2", "q3"]), st.dictionaries(DOC_IDS, SCORES))
QRELS = st.dictionaries(
    st.sampled_from(["q1", "q2", "q3"]),
    st.dictionaries(DOC_IDS, st.integers(-1, 3), min_size=1),
    min_size=1,
)


@settings(max_examples=150, deadline=None)
@given(run=RUNS, qrels=QRELS, k=st.integers(1, 12))
def test_all_metrics_lie_in_unit_interval(
    run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]], k: int
) -> None:
    metrics = (f"ndcg@{k}", f"recall@{k}", f"mrr@{k}", f"map@{k}")
    for scores in per_query_metrics(run, qrels, metrics).values():
        for value in scores.values():
            assert 0.0 <= value <= 1.0 + 1e-12


@settings(max_examples=150, deadline=None)
@given(
    rels=st.dictionaries(DOC_IDS, st.integers(-1, 3), min_size=1).filter(
        lambda r: any(v > 0 for v in r.values())
    ),
    k=st.integers(1, 12),
)
def test_ndcg_of_ideal_ordering_is_one(rels: dict[str, int], k: int) -> None:
    run = {"q": {doc: float(rel) for doc, rel in rels.items()}}  # sorted by relevance
    assert ndcg_at_k(run, {"q": rels}, k) == pytest.approx(1.0)


@settings(max_examples=150, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(0, 5), st.floats(-100, 100, allow_nan=False)), min_size=2))
def test_spearman_symmetric_and_rank_invariant(pairs: list[tuple[int, float]]) -> None:
    x = [float(a) for a, _ in pairs]
    y = [b for _, b in pairs]
    rho = spearman(x, y)
    if math.isnan(rho):
        return  # a constant side: undefined, nothing more to check
    assert -1.0 <= rho <= 1.0
    assert spearman(y, x) == pytest.approx(rho, abs=1e-12)
    # Only ranks matter: a strictly increasing transform leaves rho unchanged.
    assert spearman([a**3 + 7 * a for a in x], y) == pytest.approx(rho, abs=1e-12)
