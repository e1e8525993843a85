"""A Ray build that died resumes: rerun unchanged, it encodes only the read tasks it had not
finished and gives exactly the index a clean build gives; a changed input starts afresh."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from click.testing import CliRunner

from simsearch import SimsearchError
from simsearch.cli.main import main
from simsearch.readers import ReadOptions
from simsearch.scale import pipeline as ray_pipeline
from simsearch.scale import sources as ray_sources
from simsearch.scale.build import EncoderSpec, RayOptions, ray_build
from tests.scale.helpers import stored_rows

WORDS = "the cat sat on mat dog is good bread fresh stale search engine query fast slow".split()
OPTIONS = ReadOptions(id_field="id")


def write_corpus(path: Path, n: int, tag: str = "") -> Path:
    path.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"d{i}",
                    "text": f"{tag}" + " ".join(WORDS[(i * k + i) % len(WORDS)] for k in range(1, 7)),
                }
            )
            + "\n"
            for i in range(n)
        ),
        encoding="utf-8",
    )
    return path


class Pipeline:
    """Wraps the build's view of the Ray pipeline: counts the rows that come out of it (encoded
    by this run, not replayed) and, when told, fails the driver after some batches (a driver
    killed or interrupted mid-build)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows = 0
        self.batches = 0
        self.fail_after: int | None = None
        real = ray_pipeline.batches_of

        def counted(encoded: Any) -> Iterator[dict[str, np.ndarray]]:
            for batch in real(encoded):
                if self.fail_after is not None and self.batches >= self.fail_after:
                    raise RuntimeError("the driver was interrupted")
                self.batches += 1
                self.rows += int(np.sum(batch["rows"])) if "rows" in batch else len(batch["id"])
                yield batch

        monkeypatch.setattr(ray_pipeline, "batches_of", counted)

    def reset(self, fail_after: int | None = None) -> None:
        self.rows, self.batches, self.fail_after = 0, 0, fail_after


def staging(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.resume-*"))


def done_tasks(target: Path) -> int:
    return sum(1 for d in staging(target) for _ in d.glob("task-*/done.json"))


def build(source: Path, target: Path, model: str, writers: str = "driver", **kwargs: Any) -> list[str]:
    said: list[str] = []
    ray_build(
        [str(source)],
        target,
        EncoderSpec(model, batch_size=16),
        RayOptions("auto", workers=2, shard_writers=writers),
        read_options=OPTIONS,
        shards=3,
        say=said.append,
        **kwargs,
    )
    return said


def assert_identical(a: Path, b: Path) -> None:
    """The same ids, texts, metadata and vectors, bit for bit."""
    rows_a, rows_b = stored_rows(a), stored_rows(b)
    assert sorted(rows_a) == sorted(rows_b)
    for doc_id, (text, meta, vector) in rows_a.items():
        assert (text, meta) == rows_b[doc_id][:2], doc_id
        assert np.array_equal(vector, rows_b[doc_id][2]), doc_id


@pytest.mark.parametrize("writers", ["driver", "cluster"])
def test_a_failed_build_resumes_where_it_stopped(
    ray_cluster, tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch, writers: str
) -> None:
    monkeypatch.setattr(ray_sources, "PART_BYTES", 3000)  # 8 read tasks (4 per worker)
    monkeypatch.setattr(ray_pipeline, "BLOCK_BYTES", 64 << 10)  # a block per task here
    source = write_corpus(tmp_path / "docs.jsonl", 800)
    pipeline = Pipeline(monkeypatch)
    build(source, tmp_path / "clean", tiny_model, writers)
    assert pipeline.rows == 800 and not staging(tmp_path / "clean")  # a committed build leaves none

    target = tmp_path / "resumed"
    pipeline.reset(fail_after=3)
    with pytest.raises(SimsearchError, match="interrupted"):
        build(source, target, tiny_model, writers)
    assert not target.exists() and len(staging(target)) == 1
    finished = done_tasks(target)
    assert 1 <= finished <= 3, finished  # what was saved before the driver stopped

    pipeline.reset()
    from simsearch.scale.feed import Feed

    here: list[int] = []  # saved rows this process wrote (with cluster writers, tasks there do)
    through_driver = Feed.replay

    def recorded(self: Feed, tasks: set[int]) -> int:
        here.append(len(tasks))
        return through_driver(self, tasks)

    monkeypatch.setattr(Feed, "replay", recorded)
    said = build(source, target, tiny_model, writers)
    assert said == [f"resuming: {finished} of 8 input parts already encoded (--no-resume starts afresh)"]
    assert here == ([] if writers == "cluster" else [finished])
    assert pipeline.rows == 800 - finished * 100  # each task holds every 8th document: 100
    assert_identical(tmp_path / "clean", target)
    assert not staging(target)


def test_a_failed_commit_resumes_with_the_shards_it_committed(
    ray_cluster, tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encoding done, one shard's commit (its FAISS build) fails: the rerun encodes nothing and
    builds only that shard again."""
    from simsearch.errors import StoreWriteError
    from simsearch.store.write.writer import StoreWriter

    monkeypatch.setattr(ray_sources, "PART_BYTES", 3000)
    source = write_corpus(tmp_path / "docs.jsonl", 400)
    pipeline = Pipeline(monkeypatch)
    build(source, tmp_path / "clean", tiny_model)
    commit = StoreWriter.commit
    built: list[str] = []
    fail = {"on": True}

    def shard_2_fails(self: StoreWriter, fields: Any, builder: Any) -> Any:
        if fail["on"] and self.path.name.startswith("shard-002."):
            raise StoreWriteError("out of memory (simulated)")
        built.append(self.path.name)
        return commit(self, fields, builder)

    monkeypatch.setattr(StoreWriter, "commit", shard_2_fails)
    target = tmp_path / "resumed"
    with pytest.raises(StoreWriteError, match="simulated"):
        build(source, target, tiny_model)
    assert sorted(built) == ["shard-000.g000001", "shard-001.g000001"] and not target.exists()
    built.clear()
    fail["on"] = False
    pipeline.reset()
    said = build(source, target, tiny_model)
    tasks = len(ray_sources.read_plan([str(source)], 2, OPTIONS))
    assert said == [f"resuming: {tasks} of {tasks} input parts already encoded (--no-resume starts afresh)"]
    assert pipeline.rows == 0 and built == ["shard-002.g000001"]
    assert_identical(tmp_path / "clean", target)
    assert not staging(target)


def test_a_killed_driver_resumes(
    ray_cluster, tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`simsearch build --ray` SIGKILLed once two of its eight input files are encoded and saved
    (no cleanup runs), rerun: it encodes only the files it had not finished."""
    import os
    import signal
    import subprocess
    import sys
    import time

    files = [write_corpus(tmp_path / f"part{n}.jsonl", 1000, tag=f"p{n} ") for n in range(8)]
    for n, file in enumerate(files):  # distinct ids per file
        file.write_text(
            file.read_text(encoding="utf-8").replace('"id": "d', f'"id": "p{n}-'), encoding="utf-8"
        )
    index_dir = tmp_path / "indexes"
    target = index_dir / "killed"
    command = [
        sys.executable, "-m", "simsearch", "build", *map(str, files), "--name", "killed",
        f"--ray={ray_cluster.get_runtime_context().gcs_address}", "--workers", "2", "--shards", "3",
        "--model", tiny_model, "--id-field", "id", "--index-dir", str(index_dir), "--batch-size", "16",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while driver.poll() is None and done_tasks(target) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert driver.poll() is None, f"the build ended before it could be killed: {driver.stderr.read()!r}"  # type: ignore[union-attr]
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(60)
    finished = done_tasks(target)
    assert 2 <= finished < 8 and not target.exists()

    pipeline = Pipeline(monkeypatch)
    said: list[str] = []
    ray_build(
        [str(f) for f in files], target, EncoderSpec(tiny_model, batch_size=16),
        RayOptions("auto", workers=2), read_options=OPTIONS, shards=3, say=said.append,
    )  # fmt: skip
    assert said == [f"resuming: {finished} of 8 input parts already encoded (--no-resume starts afresh)"]
    assert pipeline.rows == (8 - finished) * 1000
    pipeline.reset()
    ray_build(
        [str(f) for f in files], tmp_path / "clean", EncoderSpec(tiny_model, batch_size=16),
        RayOptions("auto", workers=2), read_options=OPTIONS, shards=3,
    )  # fmt: skip
    assert pipeline.rows == 8000
    assert_identical(tmp_path / "clean", target)
    assert not staging(target) and not list(index_dir.glob(".killed.tmp-*"))


def test_a_changed_input_or_no_resume_starts_afresh(
    ray_cluster, tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch, index_dir: Path
) -> None:
    monkeypatch.setattr(ray_sources, "PART_BYTES", 3000)
    monkeypatch.setattr(ray_pipeline, "BLOCK_BYTES", 64 << 10)
    source = write_corpus(tmp_path / "docs.jsonl", 400)
    target = index_dir / "news"
    pipeline = Pipeline(monkeypatch)
    pipeline.reset(fail_after=2)
    with pytest.raises(SimsearchError):
        build(source, target, tiny_model)
    [old] = staging(target)
    assert done_tasks(target) >= 1

    write_corpus(source, 400, tag="changed ")  # the same size class, other texts: another plan
    pipeline.reset(fail_after=2)
    with pytest.raises(SimsearchError):
        build(source, target, tiny_model)
    [new] = staging(target)
    assert new != old and not old.exists()  # the stale staging went

    pipeline.reset()
    result = CliRunner().invoke(
        main,
        ["build", str(source), "--name", "news", "--ray", "--workers", "2", "--shards", "3", "--no-resume",
         "--model", tiny_model, "--id-field", "id", "--index-dir", str(index_dir), "--batch-size", "16"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "resuming" not in result.output and pipeline.rows == 400  # everything encoded again
    rows = stored_rows(target)
    assert len(rows) == 400 and all(text.startswith("changed ") for text, _, _ in rows.values())
    assert not staging(target)


def test_no_resume_needs_ray(tmp_path: Path) -> None:
    source = write_corpus(tmp_path / "docs.jsonl", 3)
    result = CliRunner().invoke(main, ["build", str(source), "--name", "x", "--no-resume"])
    assert result.exit_code == 2 and "--no-resume" in result.output
