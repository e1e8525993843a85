"""`simsearch query --mode/--where`, the JSON keys, `reindex-lexical`, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from simsearch.cli.main import main
from simsearch.index import Index
from simsearch.readers import Document


@pytest.fixture
def run(index_dir: Path):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture
def notes(tmp_path: Path, tiny_bert: Path, run) -> str:
    file = tmp_path / "notes.jsonl"
    rows = [
        {"id": "a", "text": "the cat sat on the mat", "lang": "en", "year": 2019},
        {"id": "b", "text": "bread stale keep fresh", "lang": "en", "year": 2021},
        {"id": "c", "text": "서울 지하철은 편리하다", "lang": "ko", "year": 2023},
        {"id": "d", "text": "서울 날씨가 좋고", "lang": "ko", "year": 2020},
    ]
    file.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    built = run("build", file, "--name", "notes", "--model", tiny_bert, "--id-field", "id")
    assert built.exit_code == 0, built.output
    return "notes"


def test_modes_and_json_keys(run, notes: str) -> None:
    for mode in ("dense", "lexical", "hybrid"):
        out = run("query", notes, "서울 지하철", "--mode", mode, "--json", "-k", "4")
        assert out.exit_code == 0, out.output
        hits = [json.loads(line) for line in out.output.splitlines()]
        assert set(hits[0]) == {"query", "rank", "id", "score", "text", "metadata", "cosine", "bm25"}
        if mode == "dense":
            assert all(h["bm25"] is None and h["cosine"] == h["score"] for h in hits)
        if mode == "lexical":
            assert [h["id"] for h in hits] == ["c", "d"] and all(h["cosine"] is None for h in hits)
        if mode == "hybrid":
            assert hits[0]["id"] == "c" and hits[0]["bm25"] > 0 and hits[0]["cosine"] is not None
    table = run("query", notes, "bread", "--mode", "hybrid")
    assert table.output.splitlines()[0].split() == ["rank", "score", "cosine", "bm25", "id", "text"]
    dense = run("query", notes, "bread", "--mode", "dense")
    assert dense.output.splitlines()[0].split() == ["rank", "score", "id", "text"]


def test_where_filters(run, notes: str) -> None:
    out = run("query", notes, "서울", "--where", "lang=ko", "--where", "year>=2021", "--json")
    assert [json.loads(line)["id"] for line in out.output.splitlines()] == ["c"]
    out = run("query", notes, "cat", "--where", "lang in en,fr", "--mode", "dense", "--json")
    assert sorted(json.loads(line)["id"] for line in out.output.splitlines()) == ["a", "b"]
    none = run("query", notes, "cat", "--where", "lang=de")
    assert none.exit_code == 0 and "no results" in none.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--where", "colour=red"], "unknown metadata field 'colour'"),
        (["--where", "year>=soon"], "holds number values"),
        (["--where", "lang"], "--where 'lang': expected an operator"),
        (["--where", "lang == en"], "'==' is not an operator (use = for equality)"),
        (["--where", "lang=en and (year>2020"], "a parenthesis is not closed"),
        (["--where", "year<inf"], "not a finite number"),
        (["--where", "year<1e400"], "out of range"),
        (["--where", "year=99999999999999999999"], "out of range"),
        (["--mode", "lexical", "--min-score", "0.5"], "min_score filters by cosine"),
    ],
)
def test_bad_filters_and_options_are_one_line_errors(run, notes: str, args: list[str], message: str) -> None:
    out = run("query", notes, "cat", *args)
    assert out.exit_code == 1
    assert out.output.startswith("Error: ") and message in out.output and len(out.output.splitlines()) == 1


def test_boolean_where_expressions(run, notes: str) -> None:
    def ids(*where: str) -> list[str]:
        args = [arg for text in where for arg in ("--where", text)]
        out = run("query", notes, "cat", "--mode", "dense", "--json", "-k", "10", *args)
        assert out.exit_code == 0, out.output
        return sorted(json.loads(line)["id"] for line in out.output.splitlines())

    assert ids("lang=ko and (year>=2021 or not year=2020)") == ["c"]
    assert ids("lang=en or year=2020") == ["a", "b", "d"]
    assert ids("not lang in en, fr") == ["c", "d"]
    assert ids("lang not in (en)", "year>2020") == ["c"]
    assert ids("year exists", 'lang="ko"') == ["c", "d"]
    assert ids("not lang exists") == []


def test_help_lists_the_filter_syntax(run) -> None:
    out = run("query", "--help")
    text = " ".join(out.output.split())
    for part in (
        "FIELD=VALUE",
        "FIELD!=VALUE",
        "<=, >, >=",
        "'FIELD in a,b,c'",
        "not in",
        "exists",
        "and, or, not",
    ):
        assert part in text


def test_bad_mode_is_a_usage_error(run, notes: str) -> None:
    out = run("query", notes, "cat", "--mode", "sparse")
    assert out.exit_code == 2 and "sparse" in out.output


def test_old_index_needs_reindex_lexical(run, index_dir: Path, fake_encoder) -> None:
    Index.build(
        [Document("x", "plain old text", {})], "old", fake_encoder, index_dir=index_dir, lexical=False
    )
    refused = run("query", "old", "plain", "--mode", "hybrid")
    assert refused.exit_code == 1 and "simsearch reindex-lexical NAME" in refused.output
    done = run("reindex-lexical", "old")
    assert done.exit_code == 0 and "lexical part rebuilt from 1 stored texts" in done.output
    info = json.loads(run("info", "old", "--json").output)
    assert info["lexical"]["analyzer"]["name"] == "simsearch-standard"
    verify = run("verify", "old", "--json")
    checks = {c["name"]: c["ok"] for c in json.loads(verify.output)["checks"]}
    assert checks["lexical agrees with sqlite"] is True
