"""Atomicity: SIGKILL a writer (build, build --force, add, delete, compact) at random moments.

After every kill the index must open and hold exactly the old or the new content, with FAISS
and SQLite in agreement, and the next write must succeed and sweep what the killed one left.
Set SIMSEARCH_CRASH_SEED to replay a run; the seed is in every failure message.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.store.crash_driver import HashEncoder
from simsearch.index import Index
from simsearch.store.verify import verify_index

DRIVER = Path(__file__).with_name("crash_driver.py")
N = 3000  # documents: enough that a write spends a while in each of its phases
KILLS = {"build": 8, "rebuild": 8, "add": 8, "delete": 8, "compact": 8}
SEED = int(os.environ.get("SIMSEARCH_CRASH_SEED", time.time_ns() % 2**32))


def drive(op: str, path: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, str(DRIVER), op, str(path), str(N)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "ready", process.stderr.read() if process.stderr else line
    return process


def content(path: Path) -> tuple[int, dict[str, tuple[str, str]]] | None:
    """Generation and id -> (text, metadata) of a whole, self-consistent index, or None."""
    if not path.exists():
        assert not list(path.parent.glob(path.name + "*")), "a half-built index is visible"
        return None
    index = Index.open(path, encoder=HashEncoder())
    report = verify_index(path, encoder=index.encoder, check_model=False)
    assert report.ok, [(p.name, p.detail) for p in report.problems]
    rows = index._store.db.execute("SELECT id, text, metadata FROM documents").fetchall()
    for doc_id, text, _ in rows[:: max(1, len(rows) // 3)]:  # FAISS vectors belong to their rows
        assert index.search(text, k=1)[0].id == doc_id
    generation = index.manifest["generation"]
    index.close()
    return generation, {r[0]: (r[1], r[2]) for r in rows}


def prepare(home: Path, op: str) -> None:
    """The state before ``op``: no index for a fresh build, else a built one (deleted for compact)."""
    if op == "build":
        home.mkdir(parents=True)
        return
    for step in ("build", "delete") if op == "compact" else ("build",):
        subprocess.run([sys.executable, str(DRIVER), step, str(home / "x"), str(N)], check=True,
                       capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("op", list(KILLS))
def test_sigkill_leaves_old_or_new_content(op, tmp_path):
    rng = random.Random(f"{SEED}-{op}")
    template = tmp_path / "template"
    prepare(template, op)
    old = content(template / "x")
    finished = tmp_path / "finished"
    shutil.copytree(template, finished)
    process = drive(op, finished / "x")
    started = time.perf_counter()
    assert process.stdout is not None and process.stdout.readline().strip() == "done"
    duration = time.perf_counter() - started  # the write itself, without interpreter start and exit
    assert process.wait() == 0
    new = content(finished / "x")
    assert new != old
    outcomes = {"old": 0, "new": 0}
    for attempt in range(KILLS[op]):
        home = tmp_path / f"kill-{attempt}"
        shutil.copytree(template, home)
        process = drive(op, home / "x")
        # half the kills anywhere in the write, half near its end where the commit happens
        low = 0.0 if attempt % 2 == 0 else 0.6
        time.sleep(duration * rng.uniform(low, 1.2))
        process.send_signal(signal.SIGKILL)
        process.wait()
        where = f"(seed {SEED}, {op}, kill {attempt})"
        seen = content(home / "x")
        assert seen == old or seen == new, f"torn index after SIGKILL {where}"
        outcomes["new" if seen == new else "old"] += 1
        _next_write_succeeds(home / "x", where)
        shutil.rmtree(home)
    print(f"{op}: {outcomes} over {KILLS[op]} kills in {duration:.2f} s writes (seed {SEED})")


def _next_write_succeeds(path: Path, where: str) -> None:
    """The lock is free after a kill and the next writer sweeps staged leftovers."""
    if not path.exists():
        Index.build(["a document after the crash"], path, HashEncoder())
    else:
        Index.open(path, encoder=HashEncoder()).delete(["d1"])
    manifest = json.loads((path / "manifest.json").read_text())
    expected = {"manifest.json"} | {entry["name"] for entry in manifest["files"].values()}
    assert {p.name for p in path.iterdir()} == expected, f"leftovers after the next write {where}"
    assert not list(path.parent.glob(f".{path.name}.tmp-*")), f"staging dir left {where}"
