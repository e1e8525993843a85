"""Queries on fp32, int8 and bf16 indexes: which encoder answers, how fast, how close its vectors are.

python -m benchmarks.precision_queries --docs 20000 --queries 100 --rounds 3

Three indexes of the same cached real vectors (the query path does not care where the stored
vectors came from), recorded as built at fp32, int8 and bf16, each with the export a real build of
that precision writes. Warm: single queries end to end (embed + exact search + fetch), the
backends taking turns on every query (rotating order) so a load spike slows all alike; the ratio
to the fp32 index is taken per query. Cold: fresh ``simsearch query`` processes. Agreement: cosine
of each query encoder's vectors to those of the torch encoder of the index's precision (what made
the index's document vectors) and to fp32.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from . import corpus, prebuilt
from .stats import percentile, summary, table, timed

PRECISIONS = ("fp32", "int8", "bf16")


def _indexes(home: Path, texts: list[str], vectors: np.ndarray, log) -> dict[str, Any]:
    """fp32 / int8 / bf16 indexes of the same vectors, with the exports their builds would write."""
    from simsearch import Index
    from simsearch.encode import onnx_export
    from simsearch.encode.torch_encoder import Encoder

    unique = list(dict.fromkeys(texts))
    torch_encoders = {}
    for precision in PRECISIONS:
        encoder = prebuilt.ReplayEncoder(texts, vectors)
        encoder.precision = precision
        Index.build(unique, precision, encoder, index_dir=home, force=True, index_type="flat")
        torch_encoders[precision] = Encoder(precision=precision)
        directory = onnx_export.prepare(torch_encoders[precision])
        log(f"{precision}: export {'kept' if directory else 'not used (see its meta.json)'}")
    return torch_encoders


def _warm(home: Path, asked: list[str], rounds: int, log) -> list[str]:
    from simsearch import Index

    runners = {}
    for precision in PRECISIONS:
        index = Index.open(precision, index_dir=home)
        runners[f"{precision} index, {type(index.encoder).__name__}"] = index
    os.environ["SIMSEARCH_QUERY_BACKEND"] = "torch"
    try:
        for precision in ("int8", "bf16"):
            index = Index.open(precision, index_dir=home)
            runners[f"{precision} index, torch Encoder (before)"] = index
            index.encoder  # noqa: B018 - loaded now, not inside the timing
    finally:
        del os.environ["SIMSEARCH_QUERY_BACKEND"]
    labels = list(runners)
    for label in labels:
        for q in asked[:10]:
            runners[label].search(q, k=10)
    p50s: dict[str, list[float]] = {label: [] for label in labels}
    ratios: dict[str, list[float]] = {label: [] for label in labels}
    for _ in range(rounds):
        times: dict[str, list[float]] = {label: [] for label in labels}
        for n, q in enumerate(asked):
            for label in labels[n % len(labels) :] + labels[: n % len(labels)]:

                def search(index: Any = runners[label], q: str = q) -> object:
                    return index.search(q, k=10)

                times[label].append(timed(search))
        for label in labels:
            p50s[label].append(percentile(times[label], 50))
            per_query = np.array(times[label]) / np.array(times[labels[0]])
            ratios[label].append(float(np.median(per_query)))
        log("warm round done")
    rows = [[label, summary(p50s[label], 1000, 2), summary(ratios[label], 1, 2)] for label in labels]
    return table(["single query, warm, exact index", "p50 ms", "time vs fp32 index (per query)"], rows)


def _cold(home: Path, query: str, rounds: int, log) -> list[str]:
    exe = shutil.which("simsearch") or str(Path(sys.executable).with_name("simsearch"))
    env = {**os.environ, "SIMSEARCH_INDEX_DIR": str(home)}
    cases = {f"simsearch query {p} (default path)": ([exe, "query", p, query], env) for p in PRECISIONS}
    cases["simsearch query int8 (torch, before)"] = (
        [exe, "query", "int8", query],
        {**env, "SIMSEARCH_QUERY_BACKEND": "torch"},
    )
    rows = []
    for label, (cmd, case_env) in cases.items():
        subprocess.run(cmd, env=case_env, capture_output=True, check=True)
        walls = [
            timed(lambda: subprocess.run(cmd, env=case_env, capture_output=True, check=True))
            for _ in range(rounds)
        ]
        rows.append([label, summary(walls, 1, 2)])
        log(f"cold: {label} done")
    return table(["fresh process", "wall s"], rows)


def _agreement(home: Path, asked: list[str], torch_encoders: dict) -> list[str]:
    from simsearch import Index

    reference = torch_encoders["fp32"].encode(asked)
    rows = []
    for precision in PRECISIONS:
        own = torch_encoders[precision].encode(asked)
        fast = Index.open(precision, index_dir=home).encoder
        got = fast.encode(asked)
        to_own, to_fp32 = np.sum(got * own, axis=1), np.sum(got * reference, axis=1)
        own_to_fp32 = np.sum(own * reference, axis=1)
        rows.append(
            [
                f"{precision}: {type(fast).__name__}",
                f"{to_own.mean():.5f} / {to_own.min():.5f}",
                f"{to_fp32.mean():.5f} / {to_fp32.min():.5f}",
                f"{own_to_fp32.mean():.5f} / {own_to_fp32.min():.5f}",
            ]
        )
    return table(
        [
            "index: query encoder",
            "cosine to torch of that precision (mean / min)",
            "to fp32",
            "torch of that precision to fp32",
        ],
        rows,
    )


@contextlib.contextmanager
def _locked(path: Path | None, log) -> Iterator[None]:
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        log(f"waiting for {path}")
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=corpus.RESULTS / "precision_queries.md")
    parser.add_argument("--lock", type=Path, default=None, help="flock this file around the timings")
    args = parser.parse_args()

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    texts, vectors = corpus.vectors(args.docs, encode=False, log=log)
    texts, vectors = prebuilt.extend(texts, vectors, args.docs)
    home = Path(tempfile.mkdtemp(prefix="simsearch-precision-"))
    asked = corpus.sample(args.queries, seed=5)
    load = os.getloadavg()
    out = [f"Load average at the start: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}", ""]
    torch_encoders = _indexes(home, texts, vectors, log)
    out += _agreement(home, asked, torch_encoders) + [""]
    del torch_encoders
    with _locked(args.lock, log):  # only the timings wait for (and hold) the shared lock
        load = os.getloadavg()
        out += [f"Load average when the timings start: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}", ""]
        out += _warm(home, asked, args.rounds, log) + [""]
        out += _cold(home, asked[0], args.rounds, log) + [""]
        load = os.getloadavg()
        out += [f"Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}", ""]
    shutil.rmtree(home, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(out), encoding="utf-8")
    print("\n".join(out))


if __name__ == "__main__":
    main()
