"""HNSW graph settings at 1M vectors: recall@10 and single-query p50 per efSearch, per graph.

    python -m benchmarks.hnsw_graphs HNSW32@128 HNSW48@128 HNSW64@128   # FACTORY@efConstruction

The same 1M set as ``--sections ann1m`` (the cached real vectors plus the synthetic extension of
:mod:`benchmarks.ann_large`, same seeds) and the same 2,000 held-out real queries: the first
1,000 are the tuning half (mean recall and the tuner's lower bound, mean - 2 standard errors),
the other 1,000 the evaluation half. Each graph is built on 2 threads with plain FAISS (as
``build_index`` does, without the tuning), then searched on 1 thread, one query at a time (30
warm-up queries, p50 over 300). Recall counts a hit when its score reaches the exact 10th best
score (float32 indexes only: lossy codes shift scores and would count as misses). About 8-10
minutes per graph on 2 cores and ~8 GB of RAM.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np


def main(specs: list[str]) -> None:
    import faiss

    from benchmarks import corpus
    from benchmarks.ann_large import HELD_OUT, synthesize, top_similarities

    _, vectors = corpus.vectors(encode=False)
    vectors = np.asarray(vectors, np.float32)
    real, queries = vectors[:-HELD_OUT], vectors[-HELD_OUT:]
    data = np.concatenate([real, synthesize(real, 1_000_000 - len(real), log=lambda _: None)])
    kth = top_similarities(queries, data, 10)[:, 9]
    tune_q, eval_q, tune_k, eval_k = queries[:1000], queries[1000:], kth[:1000], kth[1000:]

    def recalls(index, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        scores, _ = index.search(q, 10)
        return np.sum(scores >= k[:, None] - 1e-6, axis=1) / 10

    print(
        "| graph | efConstruction | build s | efSearch | tuning mean | tuning bound | eval recall | p50 ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for spec in specs:
        factory, ef_construction = spec.split("@")
        faiss.omp_set_num_threads(2)
        index: Any = faiss.index_factory(data.shape[1], factory, faiss.METRIC_INNER_PRODUCT)  # an IndexHNSW
        index.hnsw.efConstruction = int(ef_construction)
        started = time.perf_counter()
        index.add(data)
        build = time.perf_counter() - started
        faiss.omp_set_num_threads(1)
        for ef in (64, 80, 96, 112, 128, 160):
            index.hnsw.efSearch = ef
            tuning, evaluation = recalls(index, tune_q, tune_k), recalls(index, eval_q, eval_k)
            bound = tuning.mean() - 2 * tuning.std(ddof=1) / np.sqrt(len(tuning))
            for q in eval_q[:30]:
                index.search(q[None], 10)
            times = []
            for q in eval_q[:300]:
                started = time.perf_counter()
                index.search(q[None], 10)
                times.append(time.perf_counter() - started)
            print(
                f"| {factory} | {ef_construction} | {build:.0f} | {ef} | {tuning.mean():.3f} | "
                f"{bound:.3f} | {evaluation.mean():.3f} | {np.median(times) * 1000:.3f} |",
                flush=True,
            )
        del index


if __name__ == "__main__":
    main(sys.argv[1:] or ["HNSW32@128", "HNSW48@128"])
