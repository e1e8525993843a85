"""`simsearch build --ray`: the same index a local build makes, and clear errors that change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from simsearch.cli.main import main
from simsearch.readers import ReadOptions, read_documents
from simsearch.scale import build as ray_build_module
from simsearch.scale.build import read_part, read_plan
from tests.scale.helpers import assert_same_index

WORDS = "the cat sat on mat dog is good bread fresh stale search engine query fast slow".split()


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def corpus(tmp_path: Path, n: int = 120) -> list[Path]:
    first = tmp_path / "a.jsonl"
    first.write_text("".join(json.dumps({"id": f"a{i}", "text": " ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 6)),
                                         "n": i}) + "\n" for i in range(n)), encoding="utf-8")
    second = tmp_path / "b.txt"
    second.write_text("".join(f"the {WORDS[i % len(WORDS)]} line {i}\n" for i in range(n // 2)), encoding="utf-8")
    return [first, second]


def test_read_plan_covers_every_document_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = corpus(tmp_path)
    monkeypatch.setattr(ray_build_module, "PART_BYTES", 1000)  # several parts per file
    plan = read_plan([str(f) for f in files], workers=2)
    assert len(plan) > 2 and {task["source"] for task in plan} == {str(f) for f in files}
    options = ReadOptions(id_field="id")
    got = [row["id"] for task in plan for row in read_part(task, options)]
    want = [doc.id for doc in read_documents([str(f) for f in files], options)]
    assert sorted(got) == sorted(want) and len(got) == len(set(got))


def test_ray_build_equals_local_build(ray_cluster, index_dir: Path, tmp_path: Path, tiny_model: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    files = corpus(tmp_path)
    monkeypatch.setattr(ray_build_module, "PART_BYTES", 2000)  # the big file is read by several tasks
    common = [*files, "--model", tiny_model, "--id-field", "id", "--index-dir", index_dir]
    local = run("build", *common, "--name", "local", "--shards", "3")
    assert local.exit_code == 0, local.output
    on_ray = run("build", *common, "--name", "onray", "--shards", "3", "--ray", "--workers", "2")
    assert on_ray.exit_code == 0, on_ray.output
    assert "180 documents" in on_ray.output and "3 shards" in on_ray.output
    assert_same_index(index_dir / "local", index_dir / "onray")
    plain = run("build", *common, "--name", "onray-plain", "--ray=local", "--workers", "1")
    assert plain.exit_code == 0, plain.output
    assert "shards" not in json.loads((index_dir / "onray-plain" / "manifest.json").read_text())
    assert_same_index(index_dir / "local", index_dir / "onray-plain")
    queried = [run("query", name, "the cat sat", "--json", "-k", 5, "--index-dir", index_dir).output
               for name in ("local", "onray")]
    # the corpus repeats texts, so tied hits may come in another order (row ids differ): compare scores
    scores = [[round(json.loads(line)["score"], 5) for line in out.splitlines()] for out in queried]
    assert scores[0] == scores[1] and len(scores[0]) == 5
    verified = run("verify", "onray", "--index-dir", index_dir)
    assert verified.exit_code == 0, verified.output


def test_ray_build_errors_change_nothing(ray_cluster, index_dir: Path, tmp_path: Path, tiny_model: str) -> None:
    files = corpus(tmp_path, 20)
    ok = run("build", files[0], "--name", "keep", "--shards", "2", "--model", tiny_model, "--id-field", "id",
             "--index-dir", index_dir)
    assert ok.exit_code == 0, ok.output
    before = (index_dir / "keep" / "manifest.json").read_bytes()
    twice = run("build", files[0], files[0], "--name", "keep", "--shards", "2", "--force", "--ray", "--workers", "1",
                "--model", tiny_model, "--id-field", "id", "--index-dir", index_dir)
    assert twice.exit_code == 1 and "duplicate document id" in twice.output, twice.output
    assert twice.output.count("\n") == 1 and "Traceback" not in twice.output
    assert (index_dir / "keep" / "manifest.json").read_bytes() == before
    missing = run("build", tmp_path / "nope.jsonl", "--name", "new", "--ray", "--model", tiny_model,
                  "--index-dir", index_dir)
    assert missing.exit_code == 1 and "no such file" in missing.output
    assert not (index_dir / "new").exists() and not list(index_dir.glob(".new*"))
