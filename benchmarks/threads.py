"""OpenMP / OpenBLAS thread settings for the CLI build and query paths, side by side in one run.

python -m benchmarks.threads --sentences 1000 --docs 20000 --queries 200 --rounds 3

Every case is a fresh ``simsearch`` process with one environment: the settings simsearch applies
itself (``simsearch.config.THREAD_DEFAULTS``, the baseline), then the same with one variable
changed. The cases take turns within each round (rotating order), so load drifts hit all alike;
the ratio to the baseline is taken per round. Measured: ``simsearch build`` of ``--sentences``
corpus sentences (torch encoder), one cold ``simsearch query`` (ONNX Runtime encoder + exact scan
of a ``--docs`` index), and ``simsearch query --queries-file`` with ``--queries`` queries (one
batch: encoder, then a multithreaded BLAS scan).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import corpus, prebuilt
from .precision_queries import _locked
from .stats import summary, table, timed

THREAD_VARIABLES = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _cases() -> dict[str, dict[str, str]]:
    """Environment overrides per case; the empty one is the baseline."""
    return {
        "unset (libraries' defaults: OpenMP ACTIVE-ish spin, all cores)": {"_clear": "1"},
        "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
        "OMP_WAIT_POLICY=ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
        "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
        "OPENBLAS_NUM_THREADS=1": {"OPENBLAS_NUM_THREADS": "1"},
        "PASSIVE + OPENBLAS_NUM_THREADS=1": {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1"},
    }


def _env(base: dict[str, str], overrides: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in THREAD_VARIABLES}
    env["SIMSEARCH_THREAD_DEFAULTS"] = "0"  # measure the raw settings, not simsearch's own choice
    env.update({k: v for k, v in overrides.items() if not k.startswith("_")})
    return env


def run(sentences: int, docs: int, queries: int, rounds: int, log, lock: Path | None = None) -> list[str]:
    exe = shutil.which("simsearch") or str(Path(sys.executable).with_name("simsearch"))
    work = Path(tempfile.mkdtemp(prefix="simsearch-threads-"))
    source = work / "corpus.txt"
    source.write_text("\n".join(corpus.sample(sentences, seed=3)) + "\n", encoding="utf-8")
    asked = work / "queries.txt"
    asked.write_text("\n".join(corpus.sample(queries, seed=5)) + "\n", encoding="utf-8")
    texts, vectors = corpus.vectors(docs, encode=False, log=log)
    prebuilt.build("scan", work / "home", *prebuilt.extend(texts, vectors, docs), index_type="flat")
    base = {**os.environ, "SIMSEARCH_INDEX_DIR": str(work / "home")}
    commands = {
        f"build {sentences} sentences": [exe, "build", str(source), "--name", "b", "--force"],
        "query, 1 query (cold process)": [exe, "query", "scan", "how do I keep bread fresh"],
        f"query --queries-file, {queries} queries": [exe, "query", "scan", "--queries-file", str(asked)],
    }
    cases = _cases()
    labels = list(cases)
    walls: dict[tuple[str, str], list[float]] = {(c, k): [] for c in commands for k in labels}
    with _locked(lock, log):  # only the timings wait for (and hold) the shared lock
        load = os.getloadavg()
        log(f"load average when the timings start: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
        for number in range(rounds):
            for command, argv in commands.items():
                order = labels[number % len(labels) :] + labels[: number % len(labels)]
                for label in order:
                    env = _env(base, cases[label])
                    walls[command, label].append(
                        timed(lambda: subprocess.run(argv, env=env, capture_output=True, check=True))
                    )
            log(f"round {number + 1} done")
    rows = []
    for command in commands:
        baseline = walls[command, labels[0]]
        for label in labels:
            ratio = [w / b for w, b in zip(walls[command, label], baseline)]
            rows.append([command, label, summary(walls[command, label], 1, 2), summary(ratio, 1, 2)])
    shutil.rmtree(work, ignore_errors=True)
    return table(["path", "settings", "wall s", "vs unset"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=corpus.RESULTS / "threads.md")
    parser.add_argument("--lock", type=Path, default=None, help="flock this file around the timings")
    args = parser.parse_args()

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    load = os.getloadavg()
    out = [f"Load average at the start: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}", ""]
    out += run(args.sentences, args.docs, args.queries, args.rounds, log, args.lock)
    load = os.getloadavg()
    out += ["", f"Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(out), encoding="utf-8")
    print("\n".join(out))


if __name__ == "__main__":
    main()
