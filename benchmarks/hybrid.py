"""Hybrid search benchmarks: filtered-search recall and latency, lexical build cost, hybrid p50.

    python -m benchmarks.hybrid [--n 131249] [--queries 200]

What it measures, on the 131k-sentence corpus (real texts) with *synthetic* 384-dim vectors
(a 256-centre Gaussian mixture, unit rows; the real vectors take 30+ min to encode on a shared
2-core machine, see docs/hybrid.md for what is still to be measured on real vectors):

* lexical part: seconds to analyse and index every text into FTS5 (``lexical.rebuild``);
* filtered search on an HNSW index at selectivities 50%, 5%, 0.1%: recall@10 against exact
  filtered search, whether k hits came back, and the p50 / p95 latency;
* warm hybrid / lexical / dense query p50 (search only; the query encode is stubbed, as the
  vectors are synthetic: add the ONNX encode time measured in the README).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from benchmarks.corpus import sentences
from simsearch.analysis import Analyzer
from simsearch.index import Index
from simsearch.readers import Document
from simsearch.store import lexical

DIM = 384


class SyntheticEncoder:
    """Clustered unit vectors, a fixed one per text (hash-seeded): stands in for the model."""

    model_id, model_path, pooling, max_length, dim = "bench/synthetic", Path("/nonexistent"), "mean", 256, DIM
    precision = "fp32"

    def __init__(self, seed: int = 0) -> None:
        self.centres = np.random.default_rng(seed).standard_normal((256, DIM)).astype(np.float32)

    def encode(self, texts, **kwargs):
        return self.encode_counting(texts)[0]

    def encode_counting(self, texts, *, batch_size=None, progress=None):
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            rng = np.random.default_rng(zlib.crc32(text.encode("utf-8")))
            out[i] = self.centres[rng.integers(256)] + 0.6 * rng.standard_normal(DIM)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out, 0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=131249)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    texts = sentences(args.n)
    encoder = SyntheticEncoder()
    rng = np.random.default_rng(1)
    buckets = rng.random(len(texts))  # selectivity buckets: sel < share keeps that share
    docs = [Document(f"s{i}", t, {"sel": float(b)}) for i, (t, b) in enumerate(zip(texts, buckets))]
    with tempfile.TemporaryDirectory(prefix="simsearch-bench-") as home:
        started = time.perf_counter()
        index = Index.build(docs, Path(home) / "h", encoder, index_type="hnsw", lexical=False)
        dense_build = time.perf_counter() - started
        db = index._store.db
        started = time.perf_counter()
        import sqlite3

        scratch = sqlite3.connect(":memory:")
        scratch.execute("CREATE TABLE documents (rowid INTEGER PRIMARY KEY, text TEXT)")
        scratch.executemany(
            "INSERT INTO documents VALUES (?, ?)", db.execute("SELECT rowid, text FROM documents")
        )
        copy = time.perf_counter() - started
        started = time.perf_counter()
        lexical.rebuild(scratch, Analyzer())
        lexical_seconds = time.perf_counter() - started
        print(
            f"{len(docs)} documents; HNSW build (synthetic vectors, no model) {dense_build:.1f} s; "
            f"lexical analyse + FTS5 index {lexical_seconds:.1f} s (copy {copy:.1f} s)"
        )
        index.reindex_lexical()
        queries = [texts[i] for i in rng.choice(len(texts), args.queries, replace=False)]
        vectors = encoder.encode(queries)
        _filtered(index, queries, vectors)
        _modes(index, queries)
        index.close()


def _filtered(index: Index, queries: list[str], vectors: np.ndarray) -> None:
    store = index._store
    print("| selectivity | allowed | recall@10 vs exact filtered | k returned | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|")
    for share in (0.5, 0.05, 0.001):
        where = {"sel": {"<": share}}
        allowed = np.fromiter(
            (
                r
                for (r,) in store.db.execute(
                    "SELECT rowid FROM documents WHERE json_extract(metadata, '$.sel') < ?", (share,)
                )
            ),
            dtype=np.int64,
        )
        allowed_vectors = np.vstack(
            [
                np.frombuffer(b, dtype=np.float32)
                for (b,) in store.db.execute(
                    f"SELECT vector FROM documents WHERE rowid IN ({','.join(map(str, allowed.tolist()))}) ORDER BY rowid"
                )
            ]
        )
        recalls, full, times = [], 0, []
        for query, vector in zip(queries, vectors):
            started = time.perf_counter()
            hits = index.search(query, k=10, mode="dense", where=where)
            times.append((time.perf_counter() - started) * 1000)
            exact = set(allowed[np.argsort(-(allowed_vectors @ vector), kind="stable")[:10]].tolist())
            got = {int(h.id[1:]) + 1 for h in hits}  # ids s<i> are rowid i+1 (built in order)
            recalls.append(len(got & exact) / max(1, min(10, len(allowed))))
            full += len(hits) == min(10, len(allowed))
        print(
            f"| {share:.1%} | {len(allowed)} | {statistics.mean(recalls):.3f} | {full}/{len(queries)} | "
            f"{percentile(times, 50):.2f} | {percentile(times, 95):.2f} |"
        )


def _modes(index: Index, queries: list[str]) -> None:
    for mode in ("dense", "lexical", "hybrid"):
        index.search(queries[:5], k=10, mode=mode)  # warm
        times = []
        for query in queries:
            started = time.perf_counter()
            index.search(query, k=10, mode=mode)
            times.append((time.perf_counter() - started) * 1000)
        print(
            f"warm {mode} query (search, synthetic query vector): p50 {percentile(times, 50):.2f} ms, "
            f"p95 {percentile(times, 95):.2f} ms over {len(times)} queries"
        )


if __name__ == "__main__":
    main()
