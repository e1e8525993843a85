"""The build seam's shard writers run side by side (one lane per core), and a failure in any of
them still leaves the previous index whole and nothing staged behind."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from simsearch import Document, Index
from simsearch.errors import StoreWriteError
from simsearch.store.write.lanes import Lanes
from simsearch.store.write.writer import StoreWriter


def test_lanes_run_shards_side_by_side() -> None:
    lanes = Lanes(4, cores=2)
    meet = threading.Barrier(2, timeout=60)  # shards 0 and 1 are on different lanes: they meet
    names: list[str] = []

    def job() -> int:
        names.append(threading.current_thread().name)
        return meet.wait()

    try:
        assert lanes.count == 2
        assert sorted(lanes.run([job, job, None, None])[:2]) == [0, 1]
        assert len(set(names)) == 2
        # shard n always on lane n % lanes: shards 0 and 2 share a thread (a SQLite connection's)
        where = lanes.run([lambda: threading.current_thread().name for _ in range(4)])
        assert where[0] == where[2] != where[1] == where[3]
    finally:
        lanes.close()


def test_lanes_wait_for_every_shard_then_raise_the_first_failure() -> None:
    lanes = Lanes(3, cores=3)
    finished = []

    def fails(message: str) -> None:
        raise ValueError(message)

    def slow() -> None:
        time.sleep(0.3)
        finished.append("slow")

    try:
        with pytest.raises(ValueError, match="shard 1"):
            lanes.run([slow, lambda: fails("shard 1"), lambda: fails("shard 2")])
        assert finished == ["slow"]  # nothing still running when the caller cleans up
    finally:
        lanes.close()


def docs(n: int) -> list[Document]:
    return [Document(f"d{i}", f"document number {i} about bread", {"n": i}) for i in range(n)]


def test_a_shard_failing_its_commit_leaves_the_previous_index(
    index_dir: Path, fake_encoder, monkeypatch
) -> None:
    before = Index.build(docs(12), "sh", fake_encoder, index_dir=index_dir, shards=3)
    manifest = (index_dir / "sh" / "manifest.json").read_bytes()
    entries = sorted(p.name for p in (index_dir / "sh").iterdir())
    commit = StoreWriter.commit

    def third_fails(self: StoreWriter, fields, builder):
        if self.path.name.startswith("shard-002."):
            raise StoreWriteError("disk full (simulated)")
        return commit(self, fields, builder)

    monkeypatch.setattr(StoreWriter, "commit", third_fails)
    with pytest.raises(StoreWriteError, match="simulated"):
        Index.build(docs(30), "sh", fake_encoder, index_dir=index_dir, shards=3, force=True)
    assert (index_dir / "sh" / "manifest.json").read_bytes() == manifest
    assert sorted(p.name for p in (index_dir / "sh").iterdir()) == entries  # shards 0, 1 removed again
    assert not list(index_dir.glob(".sh*"))
    monkeypatch.undo()
    again = Index.open("sh", index_dir=index_dir, encoder=fake_encoder)
    assert len(again) == 12 and again.verify().ok
    assert [h.id for h in again.search("bread", k=3, mode="dense")] == [
        h.id for h in before.search("bread", k=3, mode="dense")
    ]


def test_shards_committed_before_a_failed_commit_are_kept_for_the_rerun(
    index_dir: Path, fake_encoder, monkeypatch, tmp_path: Path
) -> None:
    """With ``keep`` (a resumed Ray build's staging), the shards that committed before another
    shard's commit failed are kept, and the rerun links them back instead of building them again:
    the same index as a build that never failed."""
    from simsearch.store.write.bulk import open_sink
    from simsearch.store.write.commit import commit_build
    from tests.scale.helpers import stored_rows

    Index.build(docs(12), "sh", fake_encoder, index_dir=index_dir, shards=3)
    Index.build(docs(30), "clean", fake_encoder, index_dir=index_dir, shards=3)
    target, keep = index_dir / "sh", tmp_path / "keep"
    commit = StoreWriter.commit
    built: list[str] = []
    fail = {"on": True}

    def counting(self: StoreWriter, fields, builder):
        if fail["on"] and self.path.name.startswith("shard-002."):
            raise StoreWriteError("out of memory (simulated)")
        built.append(self.path.name)
        return commit(self, fields, builder)

    monkeypatch.setattr(StoreWriter, "commit", counting)

    def build() -> None:
        batch = docs(30)
        with open_sink(target, shards=3, force=True, keep=keep) as sink:
            sink.write(batch, fake_encoder.encode([d.text for d in batch]))
            commit_build(sink, fake_encoder, target, 0, "flat", 0.95)

    with pytest.raises(StoreWriteError, match="simulated"):
        build()
    assert sorted(built) == ["shard-000.g000002", "shard-001.g000002"]
    assert len(Index.open(target)) == 12  # the previous index, as it was
    built.clear()
    fail["on"] = False
    build()
    assert built == ["shard-002.g000002"]  # shards 0 and 1 taken as the failed run committed them
    index = Index.open(target, encoder=fake_encoder)
    assert len(index) == 30 and index.verify().ok
    assert not list(target.glob(".*.kept")) and not list(target.glob(".shard-*"))
    rows, clean = stored_rows(target), stored_rows(index_dir / "clean")
    assert sorted(rows) == sorted(clean)
    assert all(rows[i][:2] == clean[i][:2] and (rows[i][2] == clean[i][2]).all() for i in rows)
