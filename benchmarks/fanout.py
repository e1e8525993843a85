"""``python -m benchmarks.fanout``: what fanning a query out to shards costs, plain vs 4 shards.

    python -m benchmarks.fanout --sizes 20000,100000 --shards 4 --queries 100 --rounds 3

For each size, the same documents (the first ``size`` sentences of the shuffled 131k corpus,
ids ``s0``, ``s1``, ...) are built twice with :meth:`simsearch.Index.build_from_vectors` and
``index_type="flat"`` (exact search, so both answer the same): as one plain index and as
``--shards`` shards. Three searchers run over them:

- ``plain``: the plain index, as :meth:`Index.open` gives it;
- ``N shards``: the sharded index, as :meth:`Index.open` gives it (a thread pool of
  ``min(shards, cores)`` threads);
- ``N shards, 1 thread``: the same shards searched one after another on the caller's thread
  (``LocalSearcher(ShardSet.open(path), threads=1)``, the alternative default).

Two timings per query, both warm (every query is run once on every searcher first):

- ``end to end``: ``index.search(query, k=10, mode=...)``: encode (ONNX query encoder, the
  bundled default model), plan, search, fetch texts;
- ``search alone``: the same request planned once beforehand (``simsearch.index.plan.plan``),
  then only ``index.searcher.search(request)``: the fan-out, ranking and fetch.

Order: query by query, every searcher in turn (rotating which goes first), ``--rounds`` passes
over the queries; so load drifts on a shared machine hit all searchers alike. Reported: p50 and
p95 in ms, and the ratio of each sharded searcher's p50 to the plain one's.

Vectors: the cached real vectors of :mod:`benchmarks.corpus` (``--real`` of them are encoded if
missing; all cached ones are used). Sizes beyond them get synthetic vectors as in
:func:`benchmarks.prebuilt.extend` (neighbours of real ones), but every document keeps its own
real sentence as text, so the lexical side (postings, BM25 statistics) is that of real text.
An exact scan costs the same whatever the vectors hold.

``--profile N``: cProfile of one query repeated N times on each searcher (hybrid, search alone),
printed as the top functions by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import corpus, prebuilt
from .stats import machine_lines, percentile, table

MODES = ("dense", "hybrid")
_BATCH = 4096


def _vectors(size: int, real: int, log: Callable[[str], None]) -> tuple[list[str], np.ndarray, int]:
    """``size`` real sentences and a vector each (real where cached, else synthetic)."""
    if real:  # encode the first --real if missing (corpus.vectors(0) would mean all 131k)
        corpus.vectors(real, encode=True, log=lambda m, **_: log(m))
    cached_texts, cached = corpus.vectors(size, encode=False)
    texts = corpus.shuffled()[:size]
    if not cached_texts:
        raise SystemExit("no cached vectors: run with --real 4096 (or more) once")
    _, vectors = prebuilt.extend(cached_texts, cached, size)
    return texts, vectors, min(size, len(cached_texts))


def _build(home: Path, name: str, texts: list[str], vectors: np.ndarray, shards: int | None) -> None:
    from simsearch import Encoder, Index
    from simsearch.readers.records import Document

    if (home / name).exists():
        return  # --home: reuse an earlier run's build
    docs = [Document(f"s{i}", text) for i, text in enumerate(texts)]
    batches = ((docs[s : s + _BATCH], vectors[s : s + _BATCH]) for s in range(0, len(docs), _BATCH))
    Index.build_from_vectors(
        batches, name, Encoder(), index_dir=home, force=True, index_type="flat", shards=shards
    ).close()


def _searchers(home: Path, size: int, shards: int) -> dict[str, Any]:
    from simsearch import Index
    from simsearch.search.searcher import LocalSearcher
    from simsearch.store.shardset import ShardSet

    plain = Index.open(f"plain{size}", index_dir=home)
    fanned = Index.open(f"shards{size}", index_dir=home, encoder=plain.encoder)
    sequential = Index.open(f"shards{size}", index_dir=home, encoder=plain.encoder)
    sequential._searcher = LocalSearcher(ShardSet.open(sequential.path), threads=1)
    return {"plain": plain, f"{shards} shards": fanned, f"{shards} shards, 1 thread": sequential}


def _plans(index: Any, queries: list[str], mode: str) -> list[Any]:
    """The requests :meth:`Index.search` would hand its searcher, planned once, ahead of timing."""
    from simsearch.index.plan import plan

    return [
        plan(
            [q],
            10,
            mode=mode,
            identity=index._identity(),  # the index's model identity (no public accessor)
            encoder=lambda: index.encoder,
            field_types=index.searcher.field_types,
        )
        for q in queries
    ]


def _measure(
    indexes: dict[str, Any], queries: list[str], rounds: int
) -> dict[tuple[str, str, str], list[float]]:
    """Milliseconds per (searcher, mode, timing), query by query, searchers in rotating order."""
    labels = list(indexes)
    plans = {(label, mode): _plans(indexes[label], queries, mode) for label in labels for mode in MODES}
    times: dict[tuple[str, str, str], list[float]] = {}
    for number in range(rounds + 1):  # pass 0 warms up and is not recorded
        for i, query in enumerate(queries):
            turn = (number * len(queries) + i) % len(labels)
            for label in labels[turn:] + labels[:turn]:
                index = indexes[label]
                for mode in MODES:
                    start = time.perf_counter()
                    index.search(query, k=10, mode=mode)
                    middle = time.perf_counter()
                    index.searcher.search(plans[label, mode][i])
                    end = time.perf_counter()
                    if number:
                        times.setdefault((label, mode, "end to end"), []).append((middle - start) * 1e3)
                        times.setdefault((label, mode, "search alone"), []).append((end - middle) * 1e3)
    return times


def _rows(size: int, times: dict[tuple[str, str, str], list[float]]) -> list[list[str]]:
    rows = []
    for mode in MODES:
        for timing in ("end to end", "search alone"):
            base = percentile(times["plain", mode, timing], 50)
            for label in dict.fromkeys(k[0] for k in times):
                values = times[label, mode, timing]
                p50, p95 = percentile(values, 50), percentile(values, 95)
                ratio = "1.00" if label == "plain" else f"**{p50 / base:.2f}**"
                rows.append([f"{size:,}", mode, timing, label, f"{p50:.2f}", f"{p95:.2f}", ratio])
    return rows


def _profile(indexes: dict[str, Any], query: str, repeat: int) -> list[str]:
    out = []
    for label, index in indexes.items():
        (request,) = _plans(index, [query], "hybrid")
        index.searcher.search(request)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(repeat):
            index.searcher.search(request)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
        out += [f"### {label}: hybrid, search alone, {repeat} x one query (cumulative)", "", "```"]
        out += [line for line in text.getvalue().splitlines() if line.strip()] + ["```", ""]
    return out


def run(args: argparse.Namespace, log: Callable[[str], None]) -> list[str]:
    home = args.home or Path(tempfile.mkdtemp(prefix="simsearch-fanout-"))
    queries = corpus.sample(args.queries, seed=5)
    rows, notes, profiles = [], [], []
    for size in args.sizes:
        texts, vectors, real = _vectors(size, args.real, log)
        log(f"{size:,} documents ({real:,} real vectors): building plain and {args.shards} shards")
        _build(home, f"plain{size}", texts, vectors, None)
        _build(home, f"shards{size}", texts, vectors, args.shards)
        indexes = _searchers(home, size, args.shards)
        load = os.getloadavg()
        log(f"timing {size:,} (load {load[0]:.1f})")
        rows += _rows(size, _measure(indexes, queries, args.rounds))
        after = os.getloadavg()
        notes.append(
            f"- {size:,} documents, {real:,} of their vectors real: load average "
            f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} before the timings, "
            f"{after[0]:.1f} / {after[1]:.1f} / {after[2]:.1f} after"
        )
        if args.profile:
            profiles += [f"## Profile at {size:,} documents", ""] + _profile(
                indexes, queries[0], args.profile
            )
        for index in indexes.values():
            index.close()
    if args.home is None:
        shutil.rmtree(home, ignore_errors=True)
    header = ["docs", "mode", "timing", "searcher", "p50 ms", "p95 ms", "p50 vs plain"]
    return notes + [""] + table(header, rows) + [""] + profiles


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--queries", type=int, default=100, help="single queries, drawn from the corpus")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the queries")
    parser.add_argument("--real", type=int, default=4096, help="real vectors to encode if not cached")
    parser.add_argument("--profile", type=int, default=0, help="cProfile one query this many times")
    parser.add_argument("--home", type=Path, default=None, help="keep (and reuse) the indexes here")
    parser.add_argument("--out", type=Path, default=corpus.RESULTS / "fanout.md")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s]

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    out = ["# Fan-out: plain vs sharded, warm single queries", ""] + machine_lines() + [""]
    out += run(args, log)
    load = os.getloadavg()
    out += [f"Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(out), encoding="utf-8")
    print("\n".join(out))


if __name__ == "__main__":
    main()
