"""Atomicity: SIGKILL a writer (build, build --force, add, delete, compact) at random moments.

After every kill the index must open and hold exactly the old or the new content, with FAISS,
SQLite and the lexical (FTS5) part in agreement, and the next write must succeed and sweep what the killed one left.
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
from contextlib import closing
from pathlib import Path

import pytest

from tests.fakes import FakeEncoder
from simsearch.index import Index
from simsearch.store.generation import Store
from simsearch.store.verify import verify_index

DRIVER = Path(__file__).with_name("crash_driver.py")
N = 3000  # documents: enough that a write spends a while in each of its phases
KILLS = {"build": 8, "rebuild": 8, "add": 8, "delete": 8, "compact": 8}
SEED = int(os.environ.get("SIMSEARCH_CRASH_SEED", time.time_ns() % 2**32))


def drive(op: str, path: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, str(DRIVER), op, str(path), str(N)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "ready", process.stderr.read() if process.stderr else line
    return process


def content(path: Path) -> tuple[int, dict[str, tuple[str, str]]] | None:
    """Generation and id -> (text, metadata) of a whole, self-consistent index, or None."""
    if not path.exists():
        assert not list(path.parent.glob(path.name + "*")), "a half-built index is visible"
        return None
    index = Index.open(path, encoder=FakeEncoder())
    report = verify_index(path, encoder=index.encoder, check_model=False)
    assert report.ok, [(p.name, p.detail) for p in report.problems]
    with closing(Store.open(path)) as store:  # the generation the index opened (nothing writes now)
        rows = store.db.execute("SELECT id, text, metadata FROM documents").fetchall()
        # the lexical part is in step with the documents (verify's "lexical agrees with sqlite" too)
        assert "lexical" in index.manifest
        lexical_ids = store.db.execute("SELECT rowid FROM lexical ORDER BY rowid").fetchall()
        assert lexical_ids == store.db.execute("SELECT rowid FROM documents ORDER BY rowid").fetchall()
    assert any(c.name == "lexical agrees with sqlite" and c.ok for c in report.checks)
    for doc_id, text, _ in rows[:: max(1, len(rows) // 3)]:  # FAISS vectors belong to their rows
        hits = index.search(text, k=10, mode="dense")
        # the fake encoder maps some texts to the same vector ("a new document 0" and "... 156"):
        # those tie, and which one FAISS lists first depends on the CPU's arithmetic
        assert doc_id in [hit.id for hit in hits if hit.score >= hits[0].score - 1e-6]
    generation = index.manifest["generation"]
    index.close()
    return generation, {r[0]: (r[1], r[2]) for r in rows}


def prepare(home: Path, op: str) -> None:
    """The state before ``op``: no index for a fresh build, else a built one (deleted for compact)."""
    if op == "build":
        home.mkdir(parents=True)
        return
    for step in ("build", "delete") if op == "compact" else ("build",):
        subprocess.run(
            [sys.executable, str(DRIVER), step, str(home / "x"), str(N)], check=True, capture_output=True
        )


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
        Index.build(["a document after the crash"], path, FakeEncoder())
    else:
        Index.open(path, encoder=FakeEncoder()).delete(["d1"])
    manifest = json.loads((path / "manifest.json").read_text())
    expected = {"manifest.json"} | {entry["name"] for entry in manifest["files"].values()}
    assert {p.name for p in path.iterdir()} == expected, f"leftovers after the next write {where}"
    assert not list(path.parent.glob(f".{path.name}.tmp-*")), f"staging dir left {where}"


# -- issue #10: two names of one directory, force builds over unreadable indexes, damaged files ---------


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}


def _run(op: str, path: Path, n: int = N, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DRIVER), op, str(path), str(n), *extra], capture_output=True, text=True
    )


@pytest.mark.slow
def test_concurrent_writers_through_two_names_keep_every_document(tmp_path):
    """Bug 1: `current -> x` and `x` (or the home reached through a symlink) are one index, one lock."""
    for trial in range(3):
        home = tmp_path / f"trial-{trial}"
        assert _run("build", home / "x", 300).returncode == 0
        (home / "current").symlink_to("x")
        (tmp_path / f"home-alias-{trial}").symlink_to(home)
        alias = [home / "current", tmp_path / f"home-alias-{trial}" / "x", home / "current" / ".." / "x"][
            trial
        ]
        writers = [
            subprocess.Popen(
                [sys.executable, str(DRIVER), "churn", str(path), "12", tag],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for path, tag in ((home / "x", "a"), (alias, "b"))
        ]
        for writer in writers:
            _, err = writer.communicate(timeout=300)
            assert writer.returncode == 0, f"trial {trial}: {err}"
        seen = content(home / "x")
        assert seen is not None, f"trial {trial}: index lost"
        ids = set(seen[1])
        assert len(ids) == 324 and {f"{t}-{j}" for t in "ab" for j in range(12)} <= ids, f"trial {trial}"


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["newer", "garbage"])
def test_force_build_over_an_unreadable_index_keeps_it_until_commit(damage, tmp_path):
    """Bug 2: failing or killed, a force build leaves every file of the old index as it was."""
    rng = random.Random(f"{SEED}-unreadable-{damage}")
    template = tmp_path / "template"
    prepare(template, "rebuild")
    manifest = template / "x" / "manifest.json"
    text = manifest.read_text()
    manifest.write_text(
        json.dumps({**json.loads(text), "format_version": 99})
        if damage == "newer"
        else text[: len(text) // 3]
    )
    old = _files(template / "x")
    failed = tmp_path / "failed"
    shutil.copytree(template, failed)
    result = _run("rebuild-fail", failed / "x")
    assert result.returncode != 0 and _files(failed / "x") == old, result.stderr[-500:]
    finished = tmp_path / "finished"
    shutil.copytree(template, finished)
    started = time.perf_counter()
    assert _run("rebuild", finished / "x").returncode == 0
    duration = time.perf_counter() - started
    new = content(finished / "x")
    for attempt in range(6):
        home = tmp_path / f"kill-{attempt}"
        shutil.copytree(template, home)
        process = drive("rebuild", home / "x")
        time.sleep(duration * rng.uniform(0.2, 1.1))
        process.send_signal(signal.SIGKILL)
        process.wait()
        where = f"(seed {SEED}, {damage}, kill {attempt})"
        files = _files(home / "x")
        if files["manifest.json"] == old["manifest.json"]:
            assert {name: files.get(name) for name in old} == old, f"old index touched {where}"
        else:
            assert content(home / "x") == new, f"torn index {where}"
        Index.build(["a document after the crash"], home / "x", FakeEncoder(), force=True)
        manifest_now = json.loads((home / "x" / "manifest.json").read_text())
        expected = {"manifest.json"} | {entry["name"] for entry in manifest_now["files"].values()}
        assert {p.name for p in (home / "x").iterdir()} == expected, f"leftovers {where}"
        shutil.rmtree(home)


@pytest.mark.slow
@pytest.mark.parametrize("op", ["add", "delete", "compact"])
def test_writes_refuse_damaged_files_they_would_carry_forward(op, tmp_path):
    """Bug 3: a damaged SQLite or FAISS file is refused, never copied under a fresh checksum."""
    template = tmp_path / "template"
    prepare(template, "add")
    for role in ("sqlite", "faiss"):
        home = tmp_path / role
        shutil.copytree(template, home)
        entry = json.loads((home / "x" / "manifest.json").read_text())["files"][role]
        data = bytearray((home / "x" / entry["name"]).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (home / "x" / entry["name"]).write_bytes(bytes(data))
        before = _files(home / "x")
        result = _run(op, home / "x")
        assert result.returncode != 0, f"{op} over a damaged {role} file succeeded"
        last = result.stderr.strip().splitlines()[-1]  # opening may already see the damage
        assert ("checksum mismatch" in last or "damaged" in last) and "simsearch verify x" in last, last
        assert _files(home / "x") == before
        assert not verify_index(home / "x", check_model=False).ok
