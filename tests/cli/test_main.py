"""The CLI through click's CliRunner (exit codes, output) and as a real installed subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from simsearch.cli.main import main

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "sample.jsonl"


@pytest.fixture
def run(index_dir: Path):
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    file = tmp_path / "notes.txt"
    file.write_text(
        "the cat sat on the mat\n\nbread stale keep fresh\n서울 지하철은 편리하다\n", encoding="utf-8"
    )
    return file


def test_build_query_info_list(run, corpus: Path, tiny_bert: Path, index_dir: Path) -> None:
    built = run("build", corpus, "--name", "notes", "--model", tiny_bert)
    assert built.exit_code == 0, built.output
    assert "3 documents" in built.output and "0 truncated" in built.output and "documents/s" in built.output
    hits = run("query", "notes", "the cat sat on the mat", "-k", "2")
    assert hits.exit_code == 0
    lines = hits.output.splitlines()
    assert lines[0].split() == ["rank", "score", "cosine", "bm25", "id", "text"]  # hybrid: both sides
    assert "the cat sat on the mat" in lines[1] and len(lines) == 3
    info = run("info", "notes", "--json")
    manifest = json.loads(info.output)
    assert manifest["count"] == 3 and manifest["model"] == str(tiny_bert)
    assert (manifest["pooling"], manifest["dim"], manifest["index_type"]) == ("pooler", 32, "flat")
    listed = run("list", "--json")
    assert [json.loads(line)["name"] for line in listed.output.splitlines()] == ["notes"]
    assert "notes" in run("list").output


def test_query_json_many_queries_and_min_score(run, corpus: Path, tiny_bert: Path, tmp_path: Path) -> None:
    run("build", corpus, "--name", "notes", "--model", tiny_bert)
    queries = tmp_path / "queries.txt"
    queries.write_text("bread stale keep fresh\n\n서울 지하철은 편리하다\n", encoding="utf-8")
    out = run(
        "query",
        "notes",
        "the cat sat on the mat",
        "--queries-file",
        queries,
        "--json",
        "-k",
        "10",
        "--mode",
        "dense",
    )  # scores are cosines (hybrid's fused scores: tests/cli/test_query_modes.py)
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert {r["query"] for r in rows} == {
        "the cat sat on the mat",
        "bread stale keep fresh",
        "서울 지하철은 편리하다",
    }
    assert len(rows) == 9  # k larger than the index returns all 3 documents per query
    first = rows[0]
    assert set(first) >= {"query", "rank", "id", "score", "text", "metadata"}
    assert (
        first["rank"] == 1 and first["id"] == f"{corpus}:1" and first["score"] == pytest.approx(1.0, abs=1e-4)
    )
    korean = [r for r in rows if r["query"] == "서울 지하철은 편리하다" and r["rank"] == 1][0]
    assert korean["text"] == "서울 지하철은 편리하다"
    cat = [r["score"] for r in rows if r["query"] == "the cat sat on the mat"]
    threshold = (cat[0] + cat[1]) / 2  # a random tiny model gives close scores: cut between them
    strict = run(
        "query",
        "notes",
        "the cat sat on the mat",
        "--min-score",
        f"{threshold:.7f}",
        "--json",
        "--mode",
        "dense",
    )
    assert len(strict.output.splitlines()) == 1
    piped = run(
        "query", "notes", "--queries-file", "-", "--json", "-k", "1", input="bread stale keep fresh\n"
    )
    assert json.loads(piped.output)["text"] == "bread stale keep fresh"


def test_scifact_style_jsonl_with_fields(run, tiny_bert: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        '{"_id": "4983", "title": "Bread", "text": "keep it fresh", "metadata": {}}\n'
        '{"_id": "5836", "title": "Cats", "text": "the cat sat", "metadata": {"year": 1}}\n',
        encoding="utf-8",
    )
    built = run(
        "build",
        corpus,
        "--name",
        "sci",
        "--model",
        tiny_bert,
        "--pooling",
        "mean",
        "--text-field",
        "title",
        "--text-field",
        "text",
        "--id-field",
        "_id",
    )
    assert built.exit_code == 0, built.output
    hit = json.loads(run("query", "sci", "Cats the cat sat", "--json", "-k", "1").output)
    assert (hit["id"], hit["text"], hit["metadata"]) == (
        "5836",
        "Cats the cat sat",
        {"metadata": {"year": 1}},
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["query", "missing", "x"], "not found"),
        (["info", "nope"], "not found"),
        (["build", "nope.txt", "--name", "x"], "no such file"),
    ],
)
def test_user_errors_exit_1_without_traceback(run, args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert message in result.output


def test_usage_errors_exit_2(run, corpus: Path, tiny_bert: Path) -> None:
    run("build", corpus, "--name", "notes", "--model", tiny_bert)
    assert run("query", "notes", "x", "-k", "0").exit_code == 2
    assert run("query", "notes", "x", "-k", "-3").exit_code == 2
    assert run("query", "notes").exit_code == 2  # no query at all
    assert run("build", corpus).exit_code == 2  # --name missing
    assert run("build", corpus, "--name", "x", "--pooling", "max").exit_code == 2


def test_empty_query_and_bad_names(run, corpus: Path, tiny_bert: Path, index_dir: Path) -> None:
    run("build", corpus, "--name", "notes", "--model", tiny_bert)
    empty = run("query", "notes", "   ")
    assert empty.exit_code == 1 and "empty query" in empty.output
    for bad in ("a/b", "..", ".hidden", "x..y", "../etc"):
        for args in (
            ["build", corpus, "--name", bad, "--model", tiny_bert],
            ["query", bad, "x"],
            ["info", bad],
        ):
            result = run(*args)
            assert result.exit_code == 2 and "invalid index name" in result.output, (bad, args)
    assert sorted(p.name for p in index_dir.iterdir() if not p.name.startswith(".")) == ["notes"]


def test_existing_index_needs_force(run, corpus: Path, tiny_bert: Path, tmp_path: Path) -> None:
    run("build", corpus, "--name", "notes", "--model", tiny_bert)
    again = run("build", corpus, "--name", "notes", "--model", tiny_bert)
    assert again.exit_code == 1 and "--force" in again.output
    other = tmp_path / "other.txt"
    other.write_text("only one line\n", encoding="utf-8")
    assert run("build", other, "--name", "notes", "--model", tiny_bert, "--force").exit_code == 0
    assert json.loads(run("info", "notes", "--json").output)["count"] == 1


def test_bad_input_leaves_no_index(run, tmp_path: Path, tiny_bert: Path, index_dir: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": broken\n', encoding="utf-8")
    result = run("build", bad, "--name", "bad", "--model", tiny_bert)
    assert result.exit_code == 1 and f"{bad}:2" in result.output
    assert not index_dir.exists() or not [p for p in index_dir.iterdir() if p.is_dir()]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n", encoding="utf-8")
    result = run("build", empty, "--name", "empty", "--model", tiny_bert)
    assert result.exit_code == 1 and "no documents" in result.output


def test_stdin_source(run, tiny_bert: Path) -> None:
    result = run("build", "-", "--name", "piped", "--model", tiny_bert, input="one line\ntwo lines\n")
    assert result.exit_code == 0 and "2 documents" in result.output


def test_help_is_an_example() -> None:
    result = CliRunner().invoke(main, ["build", "--help"])
    assert result.exit_code == 0 and "--text-field" in result.output and "simsearch build" in result.output


def _installed_simsearch() -> list[str]:
    script = Path(sys.executable).with_name("simsearch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "simsearch"]


def test_real_subprocess_build_and_query(tmp_path: Path) -> None:
    """The installed command, in fresh processes, on the bundled model and the sample corpus."""
    env = {**os.environ, "SIMSEARCH_INDEX_DIR": str(tmp_path / "ix")}
    cmd = _installed_simsearch()
    built = subprocess.run(
        [*cmd, "build", str(SAMPLE), "--name", "sample", "--id-field", "id"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    assert "322 documents" in built.stdout and built.stderr == ""  # no progress bar off a terminal
    query = [*cmd, "query", "sample", "how do I keep bread from going stale?", "-k", "3", "--json"]
    first = subprocess.run(query, capture_output=True, text=True, env=env, timeout=300)
    second = subprocess.run(query, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0 and first.stdout == second.stdout
    top = json.loads(first.stdout.splitlines()[0])
    assert top["id"] == "en-013" and top["metadata"]["topic"] == "cooking"
    missing = subprocess.run(
        [*cmd, "query", "nope", "x"], capture_output=True, text=True, env=env, timeout=300
    )
    assert (
        missing.returncode == 1 and missing.stderr.startswith("Error: ") and "Traceback" not in missing.stderr
    )
    module = subprocess.run([sys.executable, "-m", "simsearch", "--version"], capture_output=True, text=True)
    assert module.returncode == 0 and "simsearch" in module.stdout
