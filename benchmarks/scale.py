"""``python -m benchmarks.scale``: the overhead of Ray and of sharding, side by side in one run.

    python -m benchmarks.scale --sentences 2000 --docs 100000 --shards 4

0. Encode rate (``--sections encode``): fp32 and int8 on one torch thread (per core) and on all
   threads, ``--sentences`` drawn at random, ``--rounds`` interleaved rounds (medians).
1. Build throughput: the same sentences (default model, fp32) built locally (one process, torch
   on every core) and with ``--ray`` (a local Ray cluster on the same cores, one encoder actor per
   core), alternating, ``--rounds`` times each. The cluster is started before timing (its start is
   reported apart); the Ray build's time includes loading the model in its actors.
2. Query latency: ``--docs`` random unit 384-d vectors (the sizes of the default model) written
   through the build seam (:func:`simsearch.store.write.bulk.open_sink`) as one plain exact index and as
   ``--shards`` exact shards; single-query ``search_vectors`` p50/p95, interleaved query by query.
   Random vectors cost an exact scan exactly what real ones do (no pruning in a flat index).
Results: ``benchmarks/results/scale.json`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import corpus
from .stats import machine_lines


class Phases:
    """When a build's documents came through (its progress callback): start-up (until the first
    documents are encoded), the steady encoding rate, and the tail (the commit: lexical part,
    FAISS, checksums, and the ONNX export)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: list[tuple[float, int]] = []

    def __call__(self, count: int) -> None:
        self.marks.append((time.perf_counter(), count))

    def report(self) -> dict[str, float]:
        end = time.perf_counter()
        first, last = self.marks[0], self.marks[-1]
        steady = sum(count for _, count in self.marks[1:])
        return {
            "total_s": end - self.start,
            "first_docs_s": first[0] - self.start,
            "steady_docs_per_s": steady / (last[0] - first[0]) if last[0] > first[0] else float("nan"),
            "tail_s": end - last[0],
        }


def build_section(sentences: int, rounds: int, workers: int) -> dict[str, Any]:
    from simsearch.scale.cluster import loopback_only

    loopback_only()
    import ray

    from simsearch.encode.torch_encoder import Encoder
    from simsearch.index import Index
    from simsearch.readers import ReadOptions, read_documents
    from simsearch.scale.build import EncoderSpec, RayOptions, ray_build

    from simsearch.encode.onnx_export import prepare

    texts = corpus.sentences(sentences)
    prepare(Encoder())  # both builds end by exporting the model for queries: done once, before timing
    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    cluster_start = time.perf_counter() - started
    runs: dict[str, list[dict[str, float]]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as home:
        source = Path(home) / "sentences.txt"
        source.write_text("".join(t.replace("\n", " ") + "\n" for t in texts), encoding="utf-8")
        for _ in range(rounds):
            # both read the same file; each build's time includes loading its model(s)
            phases = Phases()
            Index.build(
                read_documents([str(source)]), Path(home) / "local", Encoder(), force=True, progress=phases
            )
            runs["local"].append(phases.report())
            phases = Phases()
            ray_build(
                [str(source)],
                Path(home) / "ray",
                EncoderSpec(None),
                RayOptions("auto", workers),
                read_options=ReadOptions(),
                force=True,
                progress=phases,
            )
            runs["ray"].append(phases.report())
            print(json.dumps({"round": len(runs["ray"]), **runs, "load": os.getloadavg()[0]}), flush=True)
    ray.shutdown()
    local = float(np.median([run["total_s"] for run in runs["local"]]))
    on_ray = float(np.median([run["total_s"] for run in runs["ray"]]))
    steady = [float(np.median([run["steady_docs_per_s"] for run in runs[kind]])) for kind in ("local", "ray")]
    return {
        "sentences": sentences,
        "rounds": rounds,
        "workers": workers,
        "cluster_start_s": cluster_start,
        "runs": runs,
        "local_docs_per_s": sentences / local,
        "ray_docs_per_s": sentences / on_ray,
        "ray_vs_local": local / on_ray,
        "ray_vs_local_steady": steady[1] / steady[0],
    }


def encode_section(sentences: int, rounds: int) -> dict[str, Any]:
    """Encoding rate per core (torch on 1 thread) and per machine (all threads), fp32 and int8,
    rounds interleaved: the capacity plan's figures for this machine."""
    import torch

    from simsearch.encode.torch_encoder import Encoder

    texts = corpus.sample(sentences)
    cores = os.cpu_count() or 1
    encoders = {precision: Encoder(precision=precision) for precision in ("fp32", "int8")}
    rates: dict[str, list[float]] = {}
    for encoder in encoders.values():
        encoder.encode(texts[:64])  # warm-up
    for _ in range(rounds):
        for threads in (1, cores):
            torch.set_num_threads(threads)
            for precision, encoder in encoders.items():
                started = time.perf_counter()
                encoder.encode(texts)
                rate = len(texts) / (time.perf_counter() - started)
                rates.setdefault(f"{precision}, {threads} thread(s)", []).append(rate)
        print(json.dumps({"encode_round": rates, "load": os.getloadavg()[0]}), flush=True)
    torch.set_num_threads(cores)
    return {
        "sentences": sentences,
        "rounds": rounds,
        "cores": cores,
        "sentences_per_s": {name: float(np.median(values)) for name, values in rates.items()},
        "all": rates,
    }


def query_section(docs: int, shards: int, queries: int) -> dict[str, Any]:
    from simsearch.index import Index
    from simsearch.readers import Document
    from simsearch.store.write.bulk import open_sink

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((docs, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    fields = {
        "name": "bench",
        "model": "bench/random",
        "model_path": "/nonexistent",
        "pooling": "mean",
        "dim": 384,
        "normalized": True,
        "max_length": 128,
        "precision": "fp32",
        "metric": "inner_product",
        "index_type": "flat",
        "truncated": 0,
        "created": "",
        "updated": "",
    }
    timings: dict[str, list[float]] = {"plain": [], "sharded": []}
    write_s: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as home:
        opened = {}
        for kind, count in (("plain", None), ("sharded", shards)):
            path = Path(home) / kind
            started = time.perf_counter()
            with open_sink(path, shards=count) as sink:
                for start in range(0, docs, 4096):
                    rows = range(start, min(docs, start + 4096))
                    sink.write(
                        [Document(f"d{i}", f"doc {i}", {}) for i in rows], vectors[start : start + len(rows)]
                    )
                sink.commit(fields, "flat", 0.95)
            write_s[kind] = time.perf_counter() - started
            opened[kind] = Index.open(path)
        probes = rng.standard_normal((queries + 20, 384)).astype(np.float32)
        probes /= np.linalg.norm(probes, axis=1, keepdims=True)
        for number, probe in enumerate(probes):
            for kind in ("plain", "sharded") if number % 2 else ("sharded", "plain"):
                started = time.perf_counter()
                hits = opened[kind].search_vectors(probe[None, :], 10)
                elapsed = time.perf_counter() - started
                if number >= 20:  # the first queries warm caches and huge pages
                    timings[kind].append(elapsed)
            assert len(hits[0]) == 10
        same = all(
            [h.id for h in opened["plain"].search_vectors(p[None, :], 10)[0]]
            == [h.id for h in opened["sharded"].search_vectors(p[None, :], 10)[0]]
            for p in probes[:20]
        )
    p50 = {kind: float(np.percentile(values, 50)) * 1000 for kind, values in timings.items()}
    p95 = {kind: float(np.percentile(values, 95)) * 1000 for kind, values in timings.items()}
    return {
        "docs": docs,
        "shards": shards,
        "queries": queries,
        "p50_ms": p50,
        "p95_ms": p95,
        "sharded_vs_plain_p50": p50["sharded"] / p50["plain"],
        "same_top10": same,
        "write_s": write_s,
        "write_docs_per_s": {k: docs / v for k, v in write_s.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sections", default="build,query")
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    report: dict[str, Any] = {"machine": machine_lines()}
    sections = args.sections.split(",")
    if "query" in sections:
        report["query"] = query_section(args.docs, args.shards, args.queries)
        print(json.dumps(report["query"]), flush=True)
    if "encode" in sections:
        report["encode"] = encode_section(args.sentences, args.rounds)
        print(json.dumps(report["encode"]), flush=True)
    if "build" in sections:
        report["build"] = build_section(args.sentences, args.rounds, args.workers)
        print(json.dumps(report["build"]), flush=True)
    corpus.RESULTS.mkdir(parents=True, exist_ok=True)
    (corpus.RESULTS / "scale.json").write_text(json.dumps(report, indent=2) + "\n")
    print("\n".join(report["machine"]))


if __name__ == "__main__":
    main()
