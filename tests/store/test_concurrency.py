"""Concurrency: readers never block or break while writers commit; writers queue on the lock."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fakes import FakeEncoder
from tests.store.crash_driver import corpus
from simsearch.errors import LockTimeoutError
from simsearch.index import Index
from simsearch.store.locking import write_lock
from simsearch.readers import Document

DRIVER = Path(__file__).with_name("crash_driver.py")


@pytest.fixture
def index(tmp_path) -> Index:
    return Index.build(corpus(300, 0), tmp_path / "x", FakeEncoder())


def churn(path: Path, count: int, tag: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), "churn", str(path), str(count), tag],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_queries_keep_working_while_a_writer_adds(index):
    probe = corpus(300, 0)[7]
    writer = churn(index.path, 15, "w")
    queries, generations = 0, set()
    while writer.poll() is None or queries < 5:
        fresh = Index.open(index.path, encoder=FakeEncoder())  # opens whatever is live now
        generations.add(fresh.manifest["generation"])
        for reader in (index, fresh):  # `index` stays on the generation it opened
            assert reader.search(probe.text, k=1)[0].id == probe.id
            queries += 1
        assert len(fresh) == fresh.manifest["count"] >= 300
    assert writer.wait() == 0, writer.communicate()[1]
    assert len(index) == 300 and len(Index.open(index.path)) == 315
    assert len(generations) > 1, "the reader never saw the writer commit"


def test_two_writer_processes_lose_nothing(index):
    writers = [churn(index.path, 8, tag) for tag in ("a", "b")]
    for writer in writers:
        assert writer.wait() == 0, writer.communicate()[1]
    ids = set(Index.open(index.path).ids())
    assert {f"{t}-{j}" for t in "ab" for j in range(8)} <= ids and len(ids) == 316


def test_a_stale_index_object_does_not_undo_another_writer(index):
    other = Index.open(index.path, encoder=FakeEncoder())
    index.add([Document("mine", "my document", {})])
    other.delete(["d2"])  # opened before the add: must start from the add's generation
    reopened = Index.open(index.path)
    ids = set(reopened.ids())
    assert "mine" in ids and "d2" not in ids and len(reopened) == 300  # 300 + 1 - 1


def test_a_second_writer_waits_for_the_lock(index, monkeypatch):
    monkeypatch.setenv("SIMSEARCH_LOCK_TIMEOUT", "20")
    held, releasing = threading.Event(), threading.Event()

    def hold() -> None:
        with write_lock(index.path):
            held.set()
            time.sleep(0.5)
            releasing.set()  # set while the lock is still held

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait()
    stats = index.delete(["d1"])
    waited = releasing.is_set()  # the delete could only finish after the holder let go
    thread.join()
    assert stats.deleted == 1 and waited


def test_a_second_writer_times_out_with_a_clear_message(index, monkeypatch):
    monkeypatch.setenv("SIMSEARCH_LOCK_TIMEOUT", "0.2")
    before = index.manifest
    with write_lock(index.path):
        with pytest.raises(
            LockTimeoutError,
            match=r"index 'x' is being written by another process "
            r"\(waited 0.2 s",
        ):
            index.add(["something new"])
    assert Index.open(index.path).manifest == before
