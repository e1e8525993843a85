"""ANN at 1M vectors: the 131k real embeddings plus a synthetic extension, built as ``simsearch build``.

Synthetic vectors (why this construction): each one is a random real vector ``x`` turned by an
angle drawn from the real data's own nearest-neighbour similarities, in a direction drawn from
the real data's spread:

    v = c * x + sqrt(1 - c^2) * u,   c ~ the real 1-NN cosines (below 0.999),
    u = (x_a - x_b) with its component along x removed, normalised (a, b random real vectors)

so ``cos(v, x) = c`` exactly: a synthetic vector sits as close to its source as a real sentence
sits to its nearest real neighbour, and it moves along the directions real embeddings vary in (the
difference of two real vectors has twice the data's covariance), not isotropic noise, which in 384
dimensions spreads over directions real embeddings hardly use. Exact repeats (cosine >= 0.999,
12% of the real vectors have one) are left out of the draw: a copy adds a tie, not a neighbourhood;
the real part keeps its own repeats. Tried and dropped: moving toward one of ``x``'s real nearest
neighbours (v then lands almost on that neighbour: synthetic 1-NN median 0.80-0.84 against 0.70-0.72
real). The report checks the result: 1-NN and 10-NN cosine percentiles of real vectors among the
real ones, and of real and synthetic vectors in the full set (real ones there have their
synthetic offspring close by, as a denser collection would).

Queries are 2,000 real sentence embeddings held out of the index (no synthetic vector derives from
them), split in two halves: 1,000 *tuning* queries (what ``simsearch build --tune-queries`` gets)
and 1,000 *evaluation* queries (the workload every recall figure is measured on). Each index is
built and tuned by ``simsearch.store.index_types.build_index`` exactly as ``simsearch build`` does
(tuned on stored vectors), then re-tuned on the tuning half (``tune_search`` over the kept
``tune_queries`` table, as ``build --tune-queries`` does) and measured again: one build, two
tunings, so the comparison is not blurred by two builds. Each index type is built in a fresh
process, so its peak RSS is its own.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import resource
import sqlite3
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from .stats import percentile, table, timed

HELD_OUT = 2000  # the first half tunes (--tune-queries), the second half evaluates
KINDS = ("flat", "auto", "ivf")


def top_similarities(
    queries: np.ndarray, data: np.ndarray, k: int, skip: np.ndarray | None = None, chunk: int = 65536
) -> np.ndarray:
    """Per query, its k best cosines over ``data`` (best first), row ``skip[i]`` excluded."""
    best = np.full((len(queries), k), -np.inf, dtype=np.float32)
    for start in range(0, len(data), chunk):
        scores = queries @ data[start : start + chunk].T
        if skip is not None:
            rows = skip - start
            inside = (rows >= 0) & (rows < scores.shape[1])
            scores[np.nonzero(inside)[0], rows[inside]] = -np.inf
        merged = np.concatenate([best, scores], axis=1)
        best = -np.partition(-merged, k - 1, axis=1)[:, :k]
    return -np.sort(-best, axis=1)


def synthesize(real: np.ndarray, count: int, seed: int = 0, log=print) -> np.ndarray:
    """``count`` synthetic unit vectors, made as the module docstring says."""
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(real), 2000, replace=False)
    nn_real = top_similarities(real[sample], real, 1, skip=sample)[:, 0]
    nn_real = nn_real[nn_real < 0.999]
    out = np.empty((count, real.shape[1]), dtype=np.float32)
    for start in range(0, count, 65536):
        m = min(65536, count - start)
        x = real[rng.integers(0, len(real), m)]
        c = rng.choice(nn_real, m)[:, None]
        u = real[rng.integers(0, len(real), m)] - real[rng.integers(0, len(real), m)]
        u -= np.sum(u * x, axis=1, keepdims=True) * x
        u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
        v = c * x + np.sqrt(np.maximum(0.0, 1.0 - c * c)) * u
        out[start : start + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    log(f"ann1m: {count:,} synthetic vectors made")
    return out


def neighbourhood_rows(
    data: np.ndarray, real_count: int, real_only: np.ndarray, seed: int = 3
) -> list[list[str]]:
    """1-NN / 10-NN cosine percentiles: real among real, real in the full set, synthetic in it."""
    rng = np.random.default_rng(seed)
    real_rows = rng.choice(real_count, 1000, replace=False)
    synth_rows = real_count + rng.choice(len(data) - real_count, 1000, replace=False)
    groups = {
        "real, among the real vectors only": top_similarities(
            real_only[real_rows], real_only, 10, skip=real_rows
        ),
        "real, in the full set": top_similarities(data[real_rows], data, 10, skip=real_rows),
        "synthetic, in the full set": top_similarities(data[synth_rows], data, 10, skip=synth_rows),
    }
    rows = []
    for name, sims in groups.items():
        for k in (1, 10):
            column = sims[:, k - 1]
            rows.append(
                [name, f"{k}-NN"]
                + [f"{np.percentile(column, p):.3f}" for p in (10, 25, 50, 75, 90)]
                + [f"{np.mean(column >= 0.999):.1%}"]
            )
    return rows


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM; ``ru_maxrss`` would include the parent's, inherited)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sweep(
    index,
    db: sqlite3.Connection,
    dim: int,
    real: int,
    queries: np.ndarray,
    kth: np.ndarray,
    param: str,
    values: tuple[int, ...] = (64, 128, 256, 512, 1024),
) -> list[dict]:
    """Recall@10 per search-parameter value for three kinds of query, and the single-query p50.

    Held-out real sentences are the workload; stored vectors (own row excluded) are what the tuner
    samples, and here most of them are synthetic.
    """
    from simsearch.store import index_types as ann
    from simsearch.store.faiss_file import apply_search_params

    rng = np.random.default_rng(11)
    count = db.execute("SELECT max(rowid) FROM documents").fetchone()[0]
    groups = {"held_out": (queries[:500], np.full(500, -1, dtype=np.int64), kth[:500])}  # evaluation half
    for name, low, high in (("stored_real", 1, real + 1), ("stored_synthetic", real + 1, count + 1)):
        ids = np.sort(rng.choice(np.arange(low, high), 500, replace=False)).astype(np.int64)
        vectors = ann.fetch_vectors(db, dim, ids)
        groups[name] = (vectors, ids, ann.exact_kth_scores(db, dim, vectors, ids))
    rows = []
    for value in values:
        apply_search_params(index, {param: value})
        row = {
            param: value,
            **{name: ann.recall_at_k(index, db, dim, *group) for name, group in groups.items()},
        }
        times = [timed(partial(index.search, q[None, :], 10)) for q in queries[:200]]
        rows.append({**row, "p50_ms": percentile(times, 50) * 1000})
    return rows


def measure_tuned(index, db: sqlite3.Connection, dim: int, queries: np.ndarray, kth: np.ndarray) -> dict:
    """Recall@10 on the evaluation queries and single-query p50 / QPS at the index's current setting."""
    from simsearch.store import index_types as ann
    from simsearch.store.faiss_file import FaissFile, describe

    no_ids = np.full(len(queries), -1, dtype=np.int64)  # held out: none of them is stored
    recall = ann.recall_at_k(index, db, dim, queries, no_ids, kth)
    file = FaissFile(index, describe(index))
    for q in queries[:40]:  # warm-up (an exact index moves its vectors to huge pages at query 32)
        file.search(q[None, :], 10)

    def one(q: np.ndarray) -> float:
        return timed(lambda: file.search(q[None, :], 10))

    single = [one(q) for q in queries[:300]]
    return {
        "recall": recall,
        "p50_ms": percentile(single, 50) * 1000,
        "qps_single": 1 / float(np.mean(single)),
    }


def retuned_on_queries(index, db: sqlite3.Connection, dim: int, tuning: np.ndarray, queries, kth) -> dict:
    """``build --tune-queries``'s tuning of the same built index, measured on the evaluation queries."""
    from simsearch.store import index_types as ann
    from simsearch.store import tuning as tuner

    tuner.store_queries(db, tuning)
    try:
        tuned = ann.tune_search(db, dim, index, ann.DEFAULT_TARGET_RECALL)
    finally:
        db.execute(f"DROP TABLE {tuner.TABLE}")  # the next index type starts from stored vectors again
        db.commit()
    faiss = __import__("faiss")
    faiss.omp_set_num_threads(1)
    measured = measure_tuned(index, db, dim, queries, kth)
    return {
        "params": tuned.params,
        "tuned_recall": tuned.recall,
        **measured,
        "avx2": on_avx2(index, db, dim, queries, kth),
    }


def on_avx2(index, db: sqlite3.Connection, dim: int, queries: np.ndarray, kth: np.ndarray) -> dict | None:
    """The same search with FAISS's AVX2 code (what ``FAISS_SIMD_LEVEL=AVX2`` selects in this
    dynamic-dispatch build; ``FAISS_OPT_LEVEL`` only picks among separately built libraries,
    which this wheel does not ship): an AVX2 proxy on this CPU, not an AVX2-only machine (its
    caches and memory stay). The exact path of single queries is numpy over OpenBLAS, whose
    kernel here is already ``Haswell`` (AVX2), so its figure stands for both."""
    import faiss

    config = faiss.SIMDConfig
    if not config.is_simd_level_available(faiss.SIMDLevel_AVX2):
        return None
    before = config.get_level()
    config.set_level(faiss.SIMDLevel_AVX2)
    try:
        return {"level": config.get_level_name(), **measure_tuned(index, db, dim, queries, kth)}
    finally:
        config.set_level(before)


def build_and_measure(
    db_path: str,
    kind: str,
    queries_path: str,
    kth_path: str,
    index_path: str,
    real: int,
    ef_construction: int | None = None,
) -> dict:
    """In a fresh process: build + tune ``kind`` as ``simsearch build`` would, then measure it
    (``ef_construction`` replaces the library's HNSW default, for comparison runs)."""
    import faiss

    from simsearch.store import index_types as ann
    from simsearch.store.faiss_file import FaissFile

    if ef_construction is not None:
        ann.HNSW_EF_CONSTRUCTION = ef_construction
    base_rss = _peak_rss_mb()
    db = sqlite3.connect(db_path)
    dim = len(db.execute("SELECT vector FROM documents LIMIT 1").fetchone()[0]) // 4
    started = time.perf_counter()
    built, fields = ann.build_index(db, dim, kind, ann.DEFAULT_TARGET_RECALL)
    seconds = time.perf_counter() - started
    faiss.write_index(built.index, index_path)
    queries, kth = np.load(queries_path), np.load(kth_path)
    tuning, queries, kth = queries[: HELD_OUT // 2], queries[HELD_OUT // 2 :], kth[HELD_OUT // 2 :]
    no_ids = np.full(len(queries), -1, dtype=np.int64)  # held out: none of them is stored
    recall = ann.recall_at_k(built.index, db, dim, queries, no_ids, kth)
    file = FaissFile(built.index, built.description)
    for q in queries[:40]:  # warm-up (an exact index moves its vectors to huge pages at query 32)
        file.search(q[None, :], 10)
    single = [timed(partial(file.search, q[None, :], 10)) for q in queries[:300]]
    batch = timed(lambda: file.search(queries, 10))
    size = Path(index_path).stat().st_size
    Path(index_path).unlink()  # 1.5-1.8 GB each: only its size is needed
    param = ann.search_parameter(built.index)
    faiss.omp_set_num_threads(1)
    values = (64, 72, 80, 88, 96, 128, 256, 1024) if param == "efSearch" else (64, 128, 256, 512, 1024, 2048)
    swept = sweep(built.index, db, dim, real, queries, kth, param, values) if param else []
    on_queries = retuned_on_queries(built.index, db, dim, tuning, queries, kth) if param else None
    return {
        "on_queries": on_queries,
        "kind": kind if kind == fields["index_type"] else f"{kind} ({fields['index_type']})",
        "factory": fields["ann"]["factory"],
        "ef_construction": fields["ann"].get("ef_construction"),
        "params": fields["ann"]["search_params"],
        "tuned_recall": fields["ann"]["recall_at_10"],
        "recall": recall,
        "seconds": seconds,
        "p50_ms": percentile(single, 50) * 1000,
        "qps_single": 1 / float(np.mean(single)),
        "qps_batch": len(queries) / batch,
        "bytes": size,
        "count": built.ntotal,
        "peak_rss_mb": _peak_rss_mb(),
        "base_rss_mb": base_rss,
        "sweep": swept,
    }


def run(
    vectors: np.ndarray,
    size: int,
    log=print,
    kinds: tuple[str, ...] = KINDS,
    ef_construction: int | None = None,
) -> list[str]:
    from simsearch.store import index_types as ann

    from .ann_table import vector_db

    real, queries = np.asarray(vectors[:-HELD_OUT], np.float32), np.asarray(vectors[-HELD_OUT:], np.float32)
    real = real[: min(len(real), size)]
    synthetic = synthesize(real, size - len(real), log=log)
    data = np.concatenate([real, synthetic])
    del synthetic
    checks = neighbourhood_rows(data, len(real), real)
    log("ann1m: neighbourhood check done")
    results = []
    with tempfile.TemporaryDirectory(prefix="simsearch-ann1m-") as tmp:
        db = vector_db(data, Path(tmp))
        dim = data.shape[1]
        del data
        kth = ann.exact_kth_scores(db, dim, queries, np.full(len(queries), -1, dtype=np.int64))
        db.close()
        np.save(Path(tmp) / "queries.npy", queries)
        np.save(Path(tmp) / "kth.npy", kth)
        log("ann1m: SQLite store written, exact answers of the held-out queries computed")
        for kind in kinds:
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
                result = pool.submit(
                    build_and_measure,
                    str(Path(tmp) / "vectors.sqlite"),
                    kind,
                    str(Path(tmp) / "queries.npy"),
                    str(Path(tmp) / "kth.npy"),
                    str(Path(tmp) / f"{kind}.faiss"),
                    len(real),
                    ef_construction,
                ).result()
            results.append(result)
            log(f"ann1m: {kind} done: " + json.dumps(result))
    return _report(results, len(real), size, checks)


def _report(results: list[dict], real: int, size: int, checks: list[list[str]]) -> list[str]:
    exact_qps = results[0]["qps_single"]
    swept = []
    for r in results:
        for row in r["sweep"]:
            param = next(iter(row))
            swept.append(
                [
                    r["factory"],
                    f"{param}={row[param]}",
                    f"{row['held_out']:.3f}",
                    f"{row['stored_real']:.3f}",
                    f"{row['stored_synthetic']:.3f}",
                    f"{row['p50_ms']:.2f}",
                    f"{1000 / row['p50_ms'] / exact_qps:.0f}x",
                ]
            )
    rows = []
    for r in results:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
        if r.get("ef_construction"):
            params += f" (efConstruction {r['ef_construction']})"
        rows.append(
            [
                r["kind"],
                r["factory"],
                params,
                f"{r['tuned_recall']:.3f}",
                f"{r['recall']:.3f}",
                f"{r['p50_ms']:.2f}",
                f"{r['qps_single']:.0f}",
                f"{r['qps_single'] / exact_qps:.1f}x",
                f"{r['qps_batch']:.0f}",
                f"{r['bytes'] / r['count']:.0f}",
                f"{r['seconds']:.0f}",
                f"{r['peak_rss_mb']:.0f}",
            ]
        )
        q = r.get("on_queries")
        if q:
            rows.append(
                [
                    f"{r['kind']}, --tune-queries",
                    r["factory"],
                    ", ".join(f"{k}={v}" for k, v in q["params"].items()),
                    f"{q['tuned_recall']:.3f}",
                    f"{q['recall']:.3f}",
                    f"{q['p50_ms']:.2f}",
                    f"{q['qps_single']:.0f}",
                    f"{q['qps_single'] / exact_qps:.1f}x",
                    "-",
                    f"{r['bytes'] / r['count']:.0f}",
                    "same build",
                    "-",
                ]
            )
        a = q.get("avx2") if q else None
        if q and a:
            rows.append(
                [
                    f"{r['kind']}, --tune-queries, FAISS {a['level']} code",
                    r["factory"],
                    ", ".join(f"{k}={v}" for k, v in q["params"].items()),
                    "-",
                    f"{a['recall']:.3f}",
                    f"{a['p50_ms']:.2f}",
                    f"{a['qps_single']:.0f}",
                    f"{a['qps_single'] / exact_qps:.1f}x",
                    "-",
                    f"{r['bytes'] / r['count']:.0f}",
                    "same build",
                    "-",
                ]
            )
    head = (
        f"{size:,} vectors of dim 384: {real:,} real sentence embeddings and {size - real:,} "
        "synthetic ones (benchmarks/ann_large.py); built and tuned to recall@10 >= 0.95 by "
        "`simsearch.store.index_types.build_index` (as `simsearch build`: on 1,000 stored vectors), "
        "and re-tuned on 1,000 held-out real sentence embeddings (as `simsearch build --tune-queries`); "
        f"recall measured on {HELD_OUT // 2:,} other real sentence embeddings held out of the index; "
        "single queries (300) on "
        "1 thread for FAISS, numpy's default threads for the exact path; batch of 1,000 on all threads. "
        "Peak RSS is that of a fresh process building, tuning and searching the one index."
    )
    return (
        [head, ""]
        + table(
            [
                "type",
                "FAISS factory",
                "tuned",
                "recall@10 (tuning)",
                "recall@10 (held out)",
                "p50 ms",
                "QPS single",
                "vs exact",
                "QPS batch",
                "bytes/vector",
                "build+tune s",
                "peak RSS MB",
            ],
            rows,
        )
        + [
            "",
            "Cosine similarity to the k-th nearest neighbour (own row excluded), percentiles over "
            "1,000 vectors of each group; last column: share at >= 0.999 (repeats).",
            "",
        ]
        + table(["vectors", "k", "p10", "p25", "p50", "p75", "p90", ">= 0.999"], checks)
        + [
            "",
            "Recall@10 by search parameter: 500 held-out real sentences (the workload), 500 stored "
            "real and 500 stored synthetic vectors (own row excluded; what the tuner samples); p50 of "
            "held-out single queries on 1 thread, and 1/p50 against the exact QPS.",
            "",
        ]
        + table(
            ["index", "parameter", "held-out real", "stored real", "stored synthetic", "p50 ms", "vs exact"],
            swept,
        )
    )
