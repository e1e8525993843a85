"""`simsearch build --ray`: the same index a local build makes, and clear errors that change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from simsearch.cli.main import main
from simsearch.errors import InputError
from simsearch.readers import ReadOptions, read_documents
from simsearch.scale import sources as ray_sources
from simsearch.scale.build import read_part, read_plan
from tests.scale.helpers import assert_same_index

WORDS = "the cat sat on mat dog is good bread fresh stale search engine query fast slow".split()


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def corpus(tmp_path: Path, n: int = 120) -> list[Path]:
    first = tmp_path / "a.jsonl"
    first.write_text(
        "".join(
            json.dumps(
                {"id": f"a{i}", "text": " ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 6)), "n": i}
            )
            + "\n"
            for i in range(n)
        ),
        encoding="utf-8",
    )
    second = tmp_path / "b.txt"
    second.write_text(
        "".join(f"the {WORDS[i % len(WORDS)]} line {i}\n" for i in range(n // 2)), encoding="utf-8"
    )
    import pyarrow as pa
    import pyarrow.parquet as pq

    third = tmp_path / "c.parquet"
    pq.write_table(
        pa.table(
            {
                "id": [f"c{i}" for i in range(n // 2)],
                "n": list(range(n // 2)),
                "text": [f"parquet {WORDS[(3 * i) % len(WORDS)]} row {i}" for i in range(n // 2)],
            }
        ),
        third,
        row_group_size=16,
    )
    return [first, second, third]


def test_read_plan_covers_every_document_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = corpus(tmp_path)
    monkeypatch.setattr(ray_sources, "PART_BYTES", 1000)  # several parts per file
    plan = read_plan([str(f) for f in files], workers=2)
    assert len(plan) > 6 and {task["name"] for task in plan} == {str(f) for f in files}
    options = ReadOptions(id_field="id")
    got = [row["id"] for task in plan for row in read_part(task, options)]
    want = [doc.id for doc in read_documents([str(f) for f in files], options)]
    assert sorted(got) == sorted(want) and len(got) == len(set(got))


def test_read_plan_splits_parquet_by_row_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = tmp_path / "docs.parquet"
    pq.write_table(
        pa.table(
            {
                "id": [f"p{i}" for i in range(500)],
                "text": [f"text {i}" for i in range(500)],
                "n": list(range(500)),
            }
        ),
        file,
        row_group_size=64,
    )
    monkeypatch.setattr(ray_sources, "PART_BYTES", 1000)
    options = ReadOptions(id_field="id")
    assert len(read_plan([str(file)], workers=3, options=options)) == 12  # 4 per worker at most
    plan = read_plan([str(file)], workers=2, options=options)
    assert len(plan) == 8 and all("start" in task for task in plan)
    assert [t["start"] for t in plan[1:]] == [t["stop"] for t in plan[:-1]] and plan[-1]["stop"] == 500
    got = [(row["id"], row["text"], row["metadata"]) for task in plan for row in read_part(task, options)]
    want = [(d.id, d.text, json.dumps(d.metadata)) for d in read_documents([str(file)], options)]
    assert got == want and len(got) == 500


def test_read_plan_resolves_on_the_driver_and_reads_parquet_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative sources become absolute paths with the driver's identity of the file; a directory
    of Parquet files is read file by file (marker files skipped), named under the directory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from simsearch.scale.sources import check_same_input

    data = tmp_path / "data"
    (data / "year=2024").mkdir(parents=True)
    for n, where in enumerate(["p0.parquet", "year=2024/p1.parquet"]):
        pq.write_table(pa.table({"id": [f"r{n}-{i}" for i in range(5)], "text": ["t"] * 5}), data / where)
    (data / "_SUCCESS").write_bytes(b"")
    (data / "notes.jsonl").write_text('{"id": "j", "text": "jsonl"}\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    options = ReadOptions(id_field="id")
    plan = read_plan(["data", "data/notes.jsonl"], workers=1, options=options)
    assert [t["name"] for t in plan] == ["data/p0.parquet", "data/year=2024/p1.parquet", "data/notes.jsonl"]
    assert all(Path(t["path"]).is_absolute() and Path(t["path"]).is_file() for t in plan)
    rows = [row["id"] for task in plan for row in read_part(task, options)]
    assert sorted(rows) == sorted([f"r{n}-{i}" for n in range(2) for i in range(5)] + ["j"])
    (data / "notes.jsonl").write_text('{"id": "j", "text": "changed after planning"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="is not the file the driver read"):
        check_same_input(plan[-1])
    with pytest.raises(InputError, match="regular files"):
        read_plan(["/dev/null"], workers=1, options=options)


def test_ray_build_equals_local_build(
    ray_cluster, index_dir: Path, tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = corpus(tmp_path)
    monkeypatch.setattr(ray_sources, "PART_BYTES", 2000)  # the big file is read by several tasks
    common = [*files, "--model", tiny_model, "--id-field", "id", "--index-dir", index_dir]
    local = run("build", *common, "--name", "local", "--shards", "3")
    assert local.exit_code == 0, local.output
    on_ray = run("build", *common, "--name", "onray", "--shards", "3", "--ray", "--workers", "2")
    assert on_ray.exit_code == 0, on_ray.output
    assert "240 documents" in on_ray.output and "3 shards" in on_ray.output
    assert_same_index(index_dir / "local", index_dir / "onray")
    plain = run("build", *common, "--name", "onray-plain", "--ray=local", "--workers", "1")
    assert plain.exit_code == 0, plain.output
    assert "shards" not in json.loads((index_dir / "onray-plain" / "manifest.json").read_text())
    assert_same_index(index_dir / "local", index_dir / "onray-plain")
    queried = [
        run("query", name, "the cat sat", "--json", "-k", 5, "--index-dir", index_dir).output
        for name in ("local", "onray")
    ]
    # the corpus repeats texts, so tied hits may come in another order (row ids differ): compare scores
    scores = [[round(json.loads(line)["score"], 5) for line in out.splitlines()] for out in queried]
    assert scores[0] == scores[1] and len(scores[0]) == 5
    verified = run("verify", "onray", "--index-dir", index_dir)
    assert verified.exit_code == 0, verified.output


def test_ray_build_errors_change_nothing(
    ray_cluster, index_dir: Path, tmp_path: Path, tiny_model: str
) -> None:
    files = corpus(tmp_path, 20)
    ok = run(
        "build",
        files[0],
        "--name",
        "keep",
        "--shards",
        "2",
        "--model",
        tiny_model,
        "--id-field",
        "id",
        "--index-dir",
        index_dir,
    )
    assert ok.exit_code == 0, ok.output
    before = (index_dir / "keep" / "manifest.json").read_bytes()
    twice = run(
        "build",
        files[0],
        files[0],
        "--name",
        "keep",
        "--shards",
        "2",
        "--force",
        "--ray",
        "--workers",
        "1",
        "--model",
        tiny_model,
        "--id-field",
        "id",
        "--index-dir",
        index_dir,
    )
    assert twice.exit_code == 1 and "duplicate document id" in twice.output, twice.output
    assert twice.output.count("\n") == 1 and "Traceback" not in twice.output
    assert (index_dir / "keep" / "manifest.json").read_bytes() == before
    missing = run(
        "build",
        tmp_path / "nope.jsonl",
        "--name",
        "new",
        "--ray",
        "--model",
        tiny_model,
        "--index-dir",
        index_dir,
    )
    assert missing.exit_code == 1 and "no such file" in missing.output
    assert not (index_dir / "new").exists() and not list(index_dir.glob(".new*"))


def test_ray_build_with_a_broken_model_says_so_once(ray_cluster, index_dir: Path, tmp_path: Path) -> None:
    """The driver loads its copy of the model while the actors load theirs: a model that cannot be
    loaded fails the build with the driver's one-line error, and nothing is written."""
    files = corpus(tmp_path, 20)
    model = tmp_path / "broken-model"
    model.mkdir()
    (model / "config.json").write_text("{not json", encoding="utf-8")
    result = run(
        "build", files[1], "--name", "broken", "--ray", "--workers", "1", "--model", model,
        "--index-dir", index_dir,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert "broken-model" in result.output, result.output
    assert not (index_dir / "broken").exists() and not list(index_dir.glob(".broken*"))


def test_shard_writers_on_the_cluster_equal_a_local_build(
    ray_cluster, index_dir: Path, tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--shard-writers cluster: each shard written and its FAISS file built by a Ray actor (not
    this process), the top manifest committed here; the same index as a local build."""
    import os

    from simsearch.scale import writers

    files = corpus(tmp_path, 60)
    pids: list[int] = []
    close = writers.RayWriters.close

    def recording(self: writers.RayWriters) -> None:
        close(self)
        pids.extend(self.pids)

    monkeypatch.setattr(writers.RayWriters, "close", recording)
    common = [*files, "--model", tiny_model, "--id-field", "id", "--index-dir", index_dir, "--shards", "2"]
    assert run("build", *common, "--name", "local").exit_code == 0
    on_ray = run("build", *common, "--name", "w", "--ray", "--workers", "1", "--shard-writers", "cluster")
    assert on_ray.exit_code == 0, on_ray.output
    assert len(pids) == 2 and os.getpid() not in pids
    assert_same_index(index_dir / "local", index_dir / "w")
    assert run("verify", "w", "--index-dir", index_dir).exit_code == 0
    twice = run(
        "build", files[0], files[0], "--name", "w", "--force", "--model", tiny_model, "--id-field", "id",
        "--index-dir", index_dir, "--shards", "2", "--ray", "--workers", "1", "--shard-writers", "cluster",
    )  # fmt: skip
    assert twice.exit_code == 1 and "duplicate document id" in twice.output, twice.output
    assert twice.output.count("\n") == 1 and "Traceback" not in twice.output and "ray::" not in twice.output
    assert_same_index(index_dir / "local", index_dir / "w")  # the previous index, untouched
    assert not [
        p for p in (index_dir / "w").iterdir() if p.name.startswith("shard-") and p.name.endswith("2")
    ]
    no_ray = run("build", files[0], "--name", "x", "--shard-writers", "cluster", "--index-dir", index_dir)
    assert no_ray.exit_code == 2 and "add --ray" in no_ray.output
