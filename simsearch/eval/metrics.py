"""Evaluation metrics: Spearman correlation for STS, ranking metrics for retrieval.

Pure functions over plain dicts and sequences, following the definitions the field publishes
with, so our figures can be compared with BEIR (pytrec_eval) and MTEB:

* ``run``: query id -> doc id -> score (higher is better), as a retriever returns it.
* ``qrels``: query id -> doc id -> graded relevance; relevance <= 0 means not relevant.

Ranking within a query is by score descending, ties broken by doc id *descending*: trec_eval
(and so pytrec_eval) sorts by score then docno, both descending, and we copy it so that tied
scores land in the same order as in published figures.

Which queries count: every query in ``qrels`` with at least one relevant document. A query
without a relevant document is skipped (its metrics are undefined: no ideal DCG, no recall
denominator). A judged query missing from ``run`` scores 0 on every metric, as ``trec_eval -c``
does; plain pytrec_eval would leave it out of the mean, which flatters an incomplete run.
Queries in ``run`` but not in ``qrels`` are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]

#: The metrics :func:`retrieval_metrics` reports by default (BEIR's headline figures).
REPORT_METRICS: tuple[str, ...] = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100")


# --- Spearman -------------------------------------------------------------------------------


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks where tied values share the mean of the ranks they span."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], len(values)]
    # A run occupying 0-based positions start..end-1 holds ranks start+1..end; their mean:
    mean_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = mean_rank[group]
    return ranks


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation of ``x`` and ``y`` in [-1, 1], ties given average ranks.

    Same value as ``scipy.stats.spearmanr(x, y).statistic``: Pearson correlation of the
    average ranks. Like scipy it returns ``nan`` when either input is constant (the
    correlation is undefined). Raises ``ValueError`` for unequal lengths, fewer than two
    items, or non-finite values.
    """
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"spearman needs equal lengths, got {a.size} and {b.size}")
    if a.size < 2:
        raise ValueError(f"spearman needs at least 2 pairs, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("spearman got nan or inf; check the scores passed in")
    ra = _average_ranks(a)
    rb = _average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denominator = math.sqrt(float(ra @ ra) * float(rb @ rb))
    if denominator == 0.0:
        return math.nan
    # Rounding can push a perfect correlation a hair past 1.
    return float(min(1.0, max(-1.0, float(ra @ rb) / denominator)))


# --- ranking metrics for one query ----------------------------------------------------------


def rank_documents(doc_scores: Mapping[str, float]) -> list[str]:
    """Doc ids by score descending, ties by doc id descending (trec_eval's order)."""
    ordered = sorted(doc_scores.items(), key=lambda item: (item[1], item[0]), reverse=True)
    return [doc for doc, _ in ordered]


def _ndcg(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    # Linear gain (gain = relevance), as trec_eval's ndcg_cut; not 2**rel - 1.
    dcg = sum(max(rels.get(doc, 0), 0) / math.log2(i + 2) for i, doc in enumerate(ranking[:k]))
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def _recall(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    n_relevant = sum(1 for r in rels.values() if r > 0)
    found = sum(1 for doc in ranking[:k] if rels.get(doc, 0) > 0)
    return found / n_relevant if n_relevant else 0.0


def _mrr(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    for i, doc in enumerate(ranking[:k]):
        if rels.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def _map(ranking: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    # trec_eval's map_cut: precision summed at each relevant rank within k, divided by ALL
    # relevant documents (not just those retrievable within k).
    n_relevant = sum(1 for r in rels.values() if r > 0)
    found = 0
    total = 0.0
    for i, doc in enumerate(ranking[:k]):
        if rels.get(doc, 0) > 0:
            found += 1
            total += found / (i + 1)
    return total / n_relevant if n_relevant else 0.0


_METRICS: dict[str, Callable[[Sequence[str], Mapping[str, int], int], float]] = {
    "ndcg": _ndcg,
    "recall": _recall,
    "mrr": _mrr,
    "map": _map,
}


def _parse_metric(name: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; ValueError naming the choices otherwise."""
    base, _, cut = name.partition("@")
    if base not in _METRICS or not cut.isdigit() or int(cut) < 1:
        choices = ", ".join(f"{m}@K" for m in _METRICS)
        raise ValueError(f"unknown metric {name!r}; use one of {choices} with K >= 1")
    return base, int(cut)


def judged_queries(qrels: Qrels) -> list[str]:
    """Query ids that count: those with at least one relevant (> 0) document, sorted."""
    return sorted(q for q, rels in qrels.items() if any(r > 0 for r in rels.values()))


# --- over a whole run -----------------------------------------------------------------------


def per_query_metrics(
    run: Run, qrels: Qrels, metrics: Sequence[str] = REPORT_METRICS
) -> dict[str, dict[str, float]]:
    """Query id -> metric name -> value, for every judged query (see module doc)."""
    parsed = [(name, *_parse_metric(name)) for name in metrics]
    report: dict[str, dict[str, float]] = {}
    for query in judged_queries(qrels):
        ranking = rank_documents(run.get(query, {}))
        rels = qrels[query]
        report[query] = {name: _METRICS[base](ranking, rels, k) for name, base, k in parsed}
    return report


def retrieval_metrics(run: Run, qrels: Qrels, metrics: Sequence[str] = REPORT_METRICS) -> dict[str, float]:
    """Mean of each metric over judged queries, plus ``"queries"``: how many were averaged.

    By default the keys are ``ndcg@10, recall@10, recall@100, mrr@10, map@100, queries``.
    Raises ``ValueError`` when no query in ``qrels`` has a relevant document.
    """
    report = per_query_metrics(run, qrels, metrics)
    if not report:
        raise ValueError("qrels hold no query with a relevant document; nothing to evaluate")
    means: dict[str, float] = {
        name: float(np.mean([scores[name] for scores in report.values()])) for name in metrics
    }
    means["queries"] = len(report)
    return means


def _mean_at_k(run: Run, qrels: Qrels, name: str, k: int) -> float:
    metric = f"{name}@{k}"
    return retrieval_metrics(run, qrels, (metric,))[metric]


def ndcg_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean nDCG@k (linear gain, log2(rank+1) discount), as pytrec_eval's ``ndcg_cut``."""
    return _mean_at_k(run, qrels, "ndcg", k)


def recall_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean Recall@k: relevant documents in the top k / all relevant documents."""
    return _mean_at_k(run, qrels, "recall", k)


def mrr_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean reciprocal rank of the first relevant document in the top k (0 if none)."""
    return _mean_at_k(run, qrels, "mrr", k)


def map_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean average precision cut at k, as pytrec_eval's ``map_cut``."""
    return _mean_at_k(run, qrels, "map", k)
