"""Hybrid search benchmarks on the real corpus vectors: filters, query modes, lexical build cost.

    python -m benchmarks.hybrid [--n 131249] [--queries 200] [--modes-n 100000] [--build-n 20000]
                                [--sections filters,modes,lexical,build]

Vectors are the cached real fp32 embeddings of the shuffled 131k-sentence corpus
(:func:`benchmarks.corpus.vectors`, ``encode=False``: only what is cached is used, and the sizes
printed say how much that was). The last ``--queries`` cached sentences are held out as queries
(real sentences, real embeddings, not in the index). Sections:

* ``filters``: an ``auto`` (= HNSW at this size) index of the other sentences, every document
  with a random ``sel`` in [0, 1); ``where sel < share`` at 50%, 5%, 0.1%: recall@10 against
  exact filtered search (numpy over the allowed vectors), whether min(k, allowed) hits came back,
  p50 / p95 of ``search_vectors`` (no encode);
* ``modes``: a ``--modes-n`` ``auto`` index; warm p50 / p95 of dense, lexical and hybrid search
  with the query vectors looked up (search only), and of the query encode alone (the index's own
  query encoder), so the two add up to a query's latency; plus the cold read of the BM25
  postings (the first lexical query of a generation);
* ``lexical``: analyse + FTS5-index every text (``lexical.rebuild``), the lexical part of a build;
* ``build``: a default build (model encode, ``auto`` index) of ``--build-n`` sentences with and
  without the lexical part, side by side.

Every timing section runs where no other benchmark runs (``flock /tmp/work/bench.lock`` here).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.corpus import shuffled, vectors as corpus_vectors
from simsearch.store.lexical.analyzer import Analyzer
from simsearch.index import Index
from simsearch.readers import Document
from simsearch.store import lexical


class LookedUp:
    """The real encoder's identity and tokenizer, with the benchmark queries' vectors looked up,
    so search is timed without the encode (which is timed on its own)."""

    def __init__(self, real: Any, texts: list[str], vectors: np.ndarray) -> None:
        from simsearch.encode.coverage import backend_tokenizer

        self._real = real
        self._tokenizer = backend_tokenizer(real)  # coverage (the fusion weight) reads it
        self._vectors = dict(zip(texts, vectors))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def encode(self, texts: list[str], **_: Any) -> np.ndarray:
        return np.stack([self._vectors[t] for t in texts])


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def timed(fn: Any, items: list[Any]) -> list[float]:
    fn(items[0])  # warm
    out = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - started) * 1000)
    return out


def build(texts: list[str], vectors: np.ndarray, path: Path, encoder: Any, sel: np.ndarray) -> Index:
    docs = [Document(f"s{i}", t, {"sel": float(s)}) for i, (t, s) in enumerate(zip(texts, sel))]
    step = 4096
    batches = ((docs[i : i + step], vectors[i : i + step]) for i in range(0, len(docs), step))
    return Index.build_from_vectors(batches, path, encoder, index_type="auto")


def filters(index: Index, vectors: np.ndarray, sel: np.ndarray, queries: np.ndarray) -> None:
    print(
        f"\nfiltered dense search, {len(vectors)} documents ({kind(index)}), "
        f"{len(queries)} held-out queries, k=10"
    )
    print("| selectivity | allowed | recall@10 vs exact filtered | k returned | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|")
    for share in (0.5, 0.05, 0.001):
        where = {"sel": {"<": share}}
        allowed = np.flatnonzero(sel < share)
        exact = np.argsort(-(queries @ vectors[allowed].T), axis=1, kind="stable")[:, :10]
        results: list[Any] = []
        times = timed(
            lambda q: results.append(index.search_vectors(q[None, :], k=10, where=where)[0]), list(queries)
        )
        results = results[1:]  # the warm-up call
        recalls, full = [], 0
        for hits, top in zip(results, exact):
            want = {f"s{i}" for i in allowed[top].tolist()}
            recalls.append(len({h.id for h in hits} & want) / max(1, min(10, len(allowed))))
            full += len(hits) == min(10, len(allowed))
        print(
            f"| {share:.1%} | {len(allowed)} | {statistics.mean(recalls):.3f} | {full}/{len(results)} | "
            f"{percentile(times, 50):.2f} | {percentile(times, 95):.2f} |"
        )


def kind(index: Index) -> str:
    m = index.manifest
    return str((m.get("ann") or {}).get("factory") or m.get("index_type"))


def modes(index: Index, queries: list[str]) -> None:
    started = time.perf_counter()
    index.search(queries[0], k=10, mode="lexical")  # reads the BM25 postings of this generation
    print(
        f"\n{len(index)} documents ({kind(index)}): first lexical query of a generation (reads "
        f"the BM25 postings) {time.perf_counter() - started:.2f} s"
    )
    reopened = Index.open(index.path)
    query_encoder = reopened.encoder  # what the index encodes queries with
    times = timed(lambda q: query_encoder.encode([q]), queries)
    reopened.close()
    print(
        f"query encode ({type(query_encoder).__name__}): p50 {percentile(times, 50):.2f} ms, "
        f"p95 {percentile(times, 95):.2f} ms"
    )
    for mode in ("dense", "lexical", "hybrid"):
        times = timed(lambda q: index.search(q, k=10, mode=mode), queries)
        print(
            f"warm {mode} search (query vector looked up): p50 {percentile(times, 50):.2f} ms, "
            f"p95 {percentile(times, 95):.2f} ms over {len(queries)} queries"
        )


def lexical_build(texts: list[str]) -> None:
    scratch = sqlite3.connect(":memory:")
    scratch.execute("CREATE TABLE documents (rowid INTEGER PRIMARY KEY, text TEXT)")
    scratch.executemany("INSERT INTO documents VALUES (?, ?)", enumerate(texts, 1))
    started = time.perf_counter()
    lexical.rebuild(scratch, Analyzer())
    print(
        f"\nlexical part of {len(texts)} texts (analyse + FTS5 insert + optimize): "
        f"{time.perf_counter() - started:.1f} s"
    )


def build_side_by_side(texts: list[str], home: Path) -> None:
    from simsearch.encode.torch_encoder import Encoder

    encoder = Encoder()
    docs = [Document(f"s{i}", t, {}) for i, t in enumerate(texts)]
    walls: dict[bool, list[float]] = {}
    for lexical_part in (False, True, False, True):  # alternated, twice
        started = time.perf_counter()
        Index.build(docs, home / "b", encoder, force=True, lexical=lexical_part).close()
        walls.setdefault(lexical_part, []).append(time.perf_counter() - started)
    without, with_ = min(walls[False]), min(walls[True])
    print(
        f"\ndefault build of {len(texts)} sentences (fp32 encode, auto index), best of 2: "
        f"without lexical {without:.1f} s, with {with_:.1f} s: +{(with_ - without) / without:.1%} "
        f"(runs: {walls})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=131249)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--modes-n", type=int, default=100_000)
    parser.add_argument("--build-n", type=int, default=20_000)
    parser.add_argument("--sections", default="filters,modes,lexical,build")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    texts, vectors = corpus_vectors(args.n, encode=False)
    n = len(texts) - args.queries
    print(f"cached vectors: {len(texts)} (asked {args.n}); index {n}, held-out queries {args.queries}")
    query_texts, query_vectors = texts[n:], vectors[n:]
    sel = np.random.default_rng(1).random(n)
    with tempfile.TemporaryDirectory(prefix="simsearch-bench-") as tmp:
        home = Path(tmp)
        if sections & {"filters", "modes"}:
            from simsearch.encode.onnx_export import prepare
            from simsearch.encode.torch_encoder import Encoder

            real = Encoder()
            prepare(real)  # the ONNX query export a built index gets (build_from_vectors makes none)
            encoder = LookedUp(real, query_texts, query_vectors)
        m = min(n, args.modes_n)
        index = None
        if "filters" in sections:
            index = build(texts[:n], vectors[:n], home / "f", encoder, sel)
            filters(index, vectors[:n], sel, query_vectors)
        if "modes" in sections:
            if index is None or m < n:  # the filter index serves when it has the same documents
                if index is not None:
                    index.close()
                index = build(texts[:m], vectors[:m], home / "m", encoder, sel[:m])
            modes(index, query_texts)
        if index is not None:
            index.close()
        if "lexical" in sections:
            lexical_build(shuffled()[: args.n])  # texts only: no vectors needed
        if "build" in sections:
            build_side_by_side(texts[: args.build_n], home)


if __name__ == "__main__":
    main()
