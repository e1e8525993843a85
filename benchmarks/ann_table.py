"""ANN on real embeddings: recall@10, QPS and memory of each index type; the auto break-even."""

from __future__ import annotations

import sqlite3
import tempfile
import time
from functools import partial
from pathlib import Path

import faiss
import numpy as np

from simsearch.store import index_types as ann
from simsearch.store.faiss_file import FaissFile

from .stats import percentile, table, timed


def vector_db(vectors: np.ndarray, directory: Path) -> sqlite3.Connection:
    """The part of the store schema the FAISS build reads: row ids and float32 blobs."""
    db = sqlite3.connect(directory / "vectors.sqlite")
    db.execute("CREATE TABLE documents (rowid INTEGER PRIMARY KEY, vector BLOB NOT NULL)")
    for start in range(0, len(vectors), 8192):
        chunk = np.asarray(vectors[start : start + 8192], dtype="<f4")
        db.executemany(
            "INSERT INTO documents VALUES (?, ?)",
            ((start + i + 1, row.tobytes()) for i, row in enumerate(chunk)),
        )
    db.commit()
    return db


def evaluate(db: sqlite3.Connection, dim: int, index: faiss.Index, queries: int = 1000) -> dict:
    """Recall@10 on held-out stored vectors not used for tuning, and single/batch QPS."""
    ids = ann.sample_rowids(db, queries, seed=2)
    vectors = ann.fetch_vectors(db, dim, ids)
    kth = ann.exact_kth_scores(db, dim, vectors, ids)
    recall = ann.recall_at_k(index, db, dim, vectors, ids, kth)
    file = FaissFile(index, "")
    single = [timed(partial(file.search, v[None, :], 11)) for v in vectors[:300]]
    batch = timed(lambda: file.search(vectors, 11))
    return {
        "recall": recall,
        "p50_ms": percentile(single, 50) * 1000,
        "qps_single": 1 / np.mean(single),
        "qps_batch": len(vectors) / batch,
    }


def run(vectors: np.ndarray, real: int, target: float = 0.95, log=print) -> list[str]:
    n, dim = vectors.shape
    rows = []
    exact_qps = None
    with tempfile.TemporaryDirectory() as tmp:
        db = vector_db(vectors, Path(tmp))
        for kind in ("flat", "hnsw", "ivf", "ivfpq"):
            started = time.perf_counter()
            built, fields = ann.build_index(db, dim, kind, target)
            seconds = time.perf_counter() - started
            size = len(faiss.serialize_index(built.index))
            result = evaluate(db, dim, built.index)
            exact_qps = exact_qps or result["qps_single"]
            info = fields["ann"]
            params = ", ".join(f"{k}={v}" for k, v in info["search_params"].items()) or "-"
            rows.append(
                [
                    kind,
                    info["factory"],
                    params,
                    f"{result['recall']:.3f}",
                    f"{result['p50_ms']:.2f}",
                    f"{result['qps_single']:.0f}",
                    f"{result['qps_single'] / exact_qps:.1f}x",
                    f"{result['qps_batch']:.0f}",
                    f"{size / n:.0f}",
                    f"{seconds:.0f}",
                ]
            )
            log(f"ann: {kind} done")
    head = (
        f"{n:,} vectors of dim {dim} ({real:,} real sentence embeddings"
        + (f", {n - real:,} synthetic neighbours, see benchmarks/prebuilt.py" if n > real else "")
        + f"); tuned to recall@10 >= {target} on 1,000 held-out stored vectors, measured on 1,000 "
        "other held-out ones; single queries on 1 thread, batch of 1,000 on all threads."
    )
    return [head, ""] + table(
        [
            "type",
            "FAISS factory",
            "tuned",
            "recall@10",
            "p50 ms",
            "QPS single",
            "vs exact",
            "QPS batch",
            "bytes/vector",
            "build+tune s",
        ],
        rows,
    )


def top10(data: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The ten best rows of ``data`` for ``query`` by inner product, unordered (numpy's way)."""
    return np.argpartition(-(data @ query), 10)[:10]


def break_even(vectors: np.ndarray, sizes: list[int], target: float = 0.95, log=print) -> list[str]:
    """Single-query latency of exact FAISS, numpy and tuned HNSW as the collection grows."""
    rows = []
    dim = vectors.shape[1]
    for n in [s for s in sizes if s <= len(vectors)]:
        with tempfile.TemporaryDirectory() as tmp:
            db = vector_db(vectors[:n], Path(tmp))
            flat, _ = ann.build_index(db, dim, "flat", target)
            hnsw, fields = ann.build_index(db, dim, "hnsw", target)
            exact = evaluate(db, dim, flat.index, queries=300)
            approx = evaluate(db, dim, hnsw.index, queries=300)
            data = np.asarray(vectors[:n], dtype=np.float32)
            qs = data[:200]
            numpy_ms = np.median([timed(partial(top10, data, q)) for q in qs]) * 1000
            rows.append(
                [
                    f"{n:,}",
                    f"{exact['p50_ms']:.2f}",
                    f"{numpy_ms:.2f}",
                    f"{approx['p50_ms']:.2f}",
                    str(fields["ann"]["search_params"]["efSearch"]),
                    f"{approx['recall']:.3f}",
                ]
            )
            log(f"break-even: {n} done")
    return [
        f"Single query p50 on 1 thread (ms). `auto` keeps exact search up to {ann.AUTO_EXACT_MAX:,} vectors.",
        "",
    ] + table(["vectors", "exact FAISS", "numpy exact", "HNSW (tuned)", "efSearch", "HNSW recall@10"], rows)
