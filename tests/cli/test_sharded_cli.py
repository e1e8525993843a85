"""Sharded indexes through the CLI: build --shards, query, info, list, add, delete, compact,
verify (--repair), eval retrieval --index; each compared with the same plain index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from simsearch.cli.main import main
from simsearch.store.manifest import read_manifest

TEXTS = [
    "the cat sat on the mat",
    "keep bread fresh",
    "the dog is good",
    "a fast search engine",
    "서울 지하철은 편리하다",
    "how to keep the dog",
    "stale bread is bad",
    "slow query of long word",
    "korean english model token",
    "the good cat and the bad dog",
]


def run(*args: object, input: bytes | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    file = tmp_path / "corpus.jsonl"
    file.write_text(
        "".join(
            json.dumps({"_id": f"c{i}", "title": f"t{i}", "text": text}, ensure_ascii=False) + "\n"
            for i, text in enumerate(TEXTS)
        ),
        encoding="utf-8",
    )
    return file


@pytest.fixture
def built(index_dir: Path, corpus: Path, tiny_bert: Path) -> Path:
    common = ["--model", tiny_bert, "--id-field", "_id", "--text-field", "text", "--index-dir", index_dir]
    plain = run("build", corpus, "--name", "plain", *common)
    assert plain.exit_code == 0, plain.output
    sharded = run("build", corpus, "--name", "sh", "--shards", "3", *common)
    assert sharded.exit_code == 0, sharded.output
    assert "3 shards routed by id hash" in sharded.output and "10 documents" in sharded.output
    return index_dir


def hits(index_dir: Path, name: str, *queries: str, k: int = 10) -> list[dict]:
    # dense: the mode whose merge over shards is exact (lexical and hybrid rank within each shard)
    result = run("query", name, *queries, "-k", k, "--json", "--mode", "dense", "--index-dir", index_dir)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def same(a: list[dict], b: list[dict]) -> None:
    assert [(h["query"], h["id"], h["rank"], h["text"], h["metadata"]) for h in a] == [
        (h["query"], h["id"], h["rank"], h["text"], h["metadata"]) for h in b
    ]
    assert all(abs(x["score"] - y["score"]) <= 1e-6 for x, y in zip(a, b))


def test_query_info_list_match_plain(built: Path) -> None:
    same(hits(built, "sh", "bread", "the cat", k=4), hits(built, "plain", "bread", "the cat", k=4))
    same(hits(built, "sh", "dog", k=50), hits(built, "plain", "dog", k=50))
    info = json.loads(run("info", "sh", "--json", "--index-dir", built).output)
    assert info["count"] == 10 and info["shards"]["count"] == 3 and info["format_version"] == 2
    assert len(info["shards"]["parts"]) == 3 and all("manifest_sha256" in p for p in info["shards"]["parts"])
    listed = {
        json.loads(line)["name"]: json.loads(line)
        for line in run("list", "--json", "--index-dir", built).output.splitlines()
    }
    assert listed["sh"]["count"] == 10 and "error" not in listed["sh"]
    table = run("list", "--index-dir", built).output
    assert "damaged" not in table and "sh" in table
    ann = run("eval", "ann", "sh", "--index-dir", built)  # one FAISS index at a time: said clearly
    assert ann.exit_code == 1 and "is sharded" in ann.output and "Traceback" not in ann.output


def test_add_delete_compact_verify(built: Path, tmp_path: Path) -> None:
    more = tmp_path / "more.jsonl"
    more.write_text(
        json.dumps({"_id": "c0", "title": "t0", "text": "the cat sat on the mat"})
        + "\n"
        + json.dumps({"_id": "n1", "text": "a new fast engine"})
        + "\n",
        encoding="utf-8",
    )
    for name in ("sh", "plain"):
        added = run("add", name, more, "--id-field", "_id", "--text-field", "text", "--index-dir", built)
        assert added.exit_code == 0, added.output
        assert "1 added, 0 updated, 1 unchanged" in added.output and "11 documents" in added.output
        deleted = run("delete", name, "c3", "zzz", "--index-dir", built)
        assert deleted.exit_code == 0 and "1 deleted, 1 unknown ('zzz')" in deleted.output
        compacted = run("compact", name, "--index-dir", built)
        assert compacted.exit_code == 0 and "10 documents" in compacted.output
    same(hits(built, "sh", "fast engine", "bread"), hits(built, "plain", "fast engine", "bread"))
    verified = run("verify", "sh", "--index-dir", built)
    assert verified.exit_code == 0 and "ok (10 documents" in verified.output
    top = json.loads((built / "sh" / "manifest.json").read_text())
    part = built / "sh" / top["shards"]["parts"][2]["dir"]
    (part / read_manifest(part)["files"]["faiss"]["name"]).unlink()
    broken = run("verify", "sh", "--json", "--index-dir", built)
    assert broken.exit_code == 1 and not json.loads(broken.output)["ok"]
    query = run("query", "sh", "bread", "--index-dir", built)
    assert query.exit_code == 1 and query.output.count("\n") == 1 and "missing" in query.output
    repaired = run("verify", "sh", "--repair", "--index-dir", built)
    assert repaired.exit_code == 0 and "repaired" in repaired.output, repaired.output
    same(hits(built, "sh", "fast engine", "bread"), hits(built, "plain", "fast engine", "bread"))


def test_eval_retrieval_on_a_sharded_index(built: Path, tmp_path: Path) -> None:
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        "".join(
            json.dumps({"_id": f"q{i}", "text": t}) + "\n"
            for i, t in enumerate(["bread", "cat on a mat", "dog", "engine"])
        )
    )
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq0\tc1\t1\nq1\tc0\t1\nq2\tc2\t1\nq3\tc3\t1\n")
    reports = {}
    for name in ("sh", "plain"):
        result = run(
            "eval",
            "retrieval",
            "--index",
            name,
            "--queries",
            queries,
            "--qrels",
            qrels,
            "--json",
            "--index-dir",
            built,
        )
        assert result.exit_code == 0, result.output
        reports[name] = json.loads(result.output)
    sh, plain = reports["sh"], reports["plain"]
    assert sh["documents"] == plain["documents"] == 10
    metrics = [key for key, value in plain.items() if isinstance(value, float)]
    assert "ndcg@10" in metrics and all(sh[key] == plain[key] for key in metrics)


def test_bad_shard_options(index_dir: Path, corpus: Path, tiny_bert: Path) -> None:
    result = run(
        "build", corpus, "--name", "x", "--shards", "0", "--model", tiny_bert, "--index-dir", index_dir
    )
    assert result.exit_code == 2 and "--shards" in result.output
    assert not (index_dir / "x").exists()
