"""``simsearch build`` with and without the heap freeze (simsearch.config), side by side in one run.

python -m benchmarks.heap --sentences 30000 --precisions int8,bf16 --rounds 3 --lock /tmp/bench.lock

Each case is a fresh process running the build command: ``frozen`` through
:func:`simsearch.cli.main.run` (what the ``simsearch`` command runs: an encoder freezes the heap
once it is set up), ``live`` through the click group :func:`simsearch.cli.main.main` alone
(nothing frozen: the command before session 14). The cases alternate within each round, order
rotating. Reported: the build's own documents/s line, the process's wall seconds, and the full
(generation 2) passes of the garbage collector with their total seconds, timed in the process
by a ``gc.callbacks`` hook.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import corpus
from .precision_queries import _locked
from .stats import machine_lines, summary, table

_PROBE = """
import atexit, gc, importlib, json, sys, time
passes = {"count": 0, "seconds": 0.0}
started = {}
def watch(phase, info):
    if info["generation"] != 2:
        return
    if phase == "start":
        started["t"] = time.perf_counter()
    else:
        passes["count"] += 1
        passes["seconds"] += time.perf_counter() - started["t"]
gc.callbacks.append(watch)
atexit.register(lambda: print("GC " + json.dumps(passes), file=sys.stderr))
cli = importlib.import_module("simsearch.cli.main")
entry = sys.argv.pop(1)
sys.argv[0] = "simsearch"
getattr(cli, entry)()
"""

CASES = {"frozen (simsearch command)": "run", "live (nothing frozen)": "main"}
_RATE = re.compile(r"([0-9.]+) documents/s")


def _once(entry: str, argv: list[str], env: dict[str, str]) -> tuple[float, float, int, float]:
    """documents/s, wall seconds, generation-2 passes and their seconds of one build process."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, entry, *argv], env=env, capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - start
    rate = _RATE.search(done.stdout)
    passes = json.loads(done.stderr.strip().splitlines()[-1].removeprefix("GC "))
    if rate is None:
        raise RuntimeError(f"no rate in the build's output: {done.stdout!r}")
    return float(rate.group(1)), wall, int(passes["count"]), float(passes["seconds"])


def run(sentences: int, precisions: list[str], rounds: int, log, lock: Path | None = None) -> list[str]:
    work = Path(tempfile.mkdtemp(prefix="simsearch-heap-"))
    source = work / "corpus.txt"
    source.write_text("\n".join(corpus.sample(sentences, seed=7)) + "\n", encoding="utf-8")
    env = {**os.environ, "SIMSEARCH_INDEX_DIR": str(work / "home")}
    labels = list(CASES)
    results: dict[tuple[str, str], list[tuple[float, float, int, float]]] = {
        (p, label): [] for p in precisions for label in labels
    }
    try:
        with _locked(lock, log):
            lines = machine_lines()
            for number in range(rounds):
                for precision in precisions:
                    argv = ["build", str(source), "--name", "heap", "--force", "--precision", precision]
                    order = labels[number % 2 :] + labels[: number % 2]
                    for label in order:
                        results[precision, label].append(_once(CASES[label], argv, env))
                log(f"heap: round {number + 1}/{rounds} done")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for precision in precisions:
        live = results[precision, labels[1]]
        for label in labels:
            got = results[precision, label]
            ratio = [g[0] / b[0] for g, b in zip(got, live)]  # same-round ratio: load cancels out
            rows.append(
                [
                    precision,
                    label,
                    summary([g[0] for g in got], digits=0),
                    summary(ratio, 1, 2),
                    summary([g[1] for g in got], 1, 1),
                    summary([float(g[2]) for g in got], digits=0),
                    summary([g[3] for g in got], 1, 2),
                ]
            )
    head = [
        f"`simsearch build` of {sentences} corpus sentences, default model and threads, {rounds} rounds "
        "(median, min-max); each row a fresh process.",
        "",
        *lines,
        "",
    ]
    return head + table(
        [
            "precision",
            "process",
            "documents/s (the build's line)",
            "vs live",
            "wall s (process)",
            "full GC passes",
            "their seconds",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sentences", type=int, default=30_000)
    parser.add_argument("--precisions", default="int8,bf16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=corpus.RESULTS / "heap.md")
    parser.add_argument("--lock", type=Path, default=None, help="flock this file around the timings")
    args = parser.parse_args()

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    out = run(args.sentences, args.precisions.split(","), args.rounds, log, args.lock)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(out) + "\n", encoding="utf-8")
    print("\n".join(out))


if __name__ == "__main__":
    main()
