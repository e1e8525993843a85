"""The resume staging on disk, without Ray: what counts as finished, what is swept, the lock."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simsearch.errors import LockTimeoutError
from simsearch.readers import ReadOptions
from simsearch.scale.resume import Checkpoint, TaskCounter, plan_key, save_block


def block(checkpoint: Checkpoint, task: int, first: int, n: int) -> None:
    ids = [f"t{task}-{first + i}" for i in range(n)]
    vectors = np.arange(n * 4, dtype=np.float32).reshape(n, 4) / 7
    save_block(checkpoint.task_dir(task), first, ids, ids, ['{"k": 1}'] * n, ["f:1"] * n, vectors, 1)


def test_only_tasks_with_all_their_rows_count_as_finished(tmp_path: Path) -> None:
    first = Checkpoint(tmp_path / "idx", "k1")
    assert first.open(4) == set()
    block(first, 0, 0, 3)
    block(first, 0, 3, 2)
    first.finish(0, 5)
    block(first, 1, 0, 3)  # no done marker: killed mid-task
    block(first, 2, 0, 3)
    first.finish(2, 4)  # a marker claiming more rows than saved: not finished
    first.close(remove=False)

    again = Checkpoint(tmp_path / "idx", "k1")
    assert again.open(4) == {0}
    assert sorted(p.name for p in again.directory.iterdir()) == ["task-00000"]  # the rest removed
    replayed = list(again.replay([0]))
    assert [len(docs) for docs, _, _ in replayed] == [3, 2]
    docs, vectors, truncated = replayed[0]
    assert docs[0].id == "t0-0" and docs[0].metadata == {"k": 1} and docs[0].where == "f:1"
    assert vectors.dtype == np.float32 and np.array_equal(
        vectors, np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    )
    assert truncated == 1
    again.close(remove=False)
    assert Checkpoint(tmp_path / "idx", "k1").open(4, resume=False) == set()  # --no-resume


def test_a_build_holds_its_staging_and_another_plan_removes_a_stale_one(tmp_path: Path) -> None:
    running = Checkpoint(tmp_path / "idx", "k1")
    running.open(2)
    with pytest.raises(LockTimeoutError, match="being built by another process"):
        Checkpoint(tmp_path / "idx", "k1").open(2)
    other = Checkpoint(tmp_path / "idx", "k2")
    other.open(2)
    assert running.directory.is_dir()  # locked by a live build: left alone
    running.close(remove=False)
    other.close(remove=False)
    Checkpoint(tmp_path / "idx", "k2").open(2)
    assert not running.directory.exists()  # stale (its plan is not this one) and free: removed


def test_the_key_follows_the_input_and_the_options(tmp_path: Path) -> None:
    from simsearch.scale.sources import read_plan

    source = tmp_path / "docs.jsonl"
    source.write_text(json.dumps({"id": "a", "text": "x"}) + "\n", encoding="utf-8")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}", encoding="utf-8")
    options = ReadOptions(id_field="id")

    def key(encoding: tuple[object, ...] = ("auto", None, "fp32"), read: ReadOptions = options) -> str:
        return plan_key(read_plan([str(source)], 2, read), str(model), encoding, read)

    same = key()
    assert key() == same
    assert key(("auto", None, "int8")) != same and key(read=ReadOptions()) != same
    source.write_text(json.dumps({"id": "a", "text": "y"}) + "\n", encoding="utf-8")
    assert key() != same


def test_task_counter_says_when_a_task_is_whole() -> None:
    counter = TaskCounter()
    assert not counter.add(3, 10, 0)
    assert not counter.add(3, 5, 25)  # its last row came: 25 in all
    assert counter.add(3, 10, 0)
