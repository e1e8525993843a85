"""Issue 10, entry points through the CLI: one-line errors, valid JSON, a safe terminal.

Each test here failed on the code before the fix (base commit 9411138).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from simsearch import Index
from simsearch.cli.main import main


@pytest.fixture
def run(index_dir: Path):
    runner = CliRunner()

    def invoke(*args: str, input: str | bytes | None = None):
        return runner.invoke(main, [str(a) for a in args], input=input)

    return invoke


def one_line_error(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert "Traceback" not in result.output
    assert lines[-1].startswith("Error:") and len(lines) <= (1 if code == 1 else 3), result.output
    return lines[-1]


@pytest.fixture
def built(run, tmp_path: Path, tiny_bert: Path, index_dir: Path) -> str:
    source = tmp_path / "docs.jsonl"
    source.write_text(
        '{"id": "a", "text": "the cat sat on the mat"}\n'
        '{"id": "  spaced id  ", "text": "bread stale keep fresh"}\n'
        '{"id": "c", "text": "search engine for documents"}\n',
        encoding="utf-8",
    )
    assert run("build", source, "--name", "notes", "--model", tiny_bert, "--id-field", "id").exit_code == 0
    return "notes"


# --- Bug 6: invalid Unicode in argv and documents -----------------------------------------------


def test_invalid_utf8_query_in_argv_is_a_one_line_error(run, built: str) -> None:
    # Python hands an undecodable argv byte over as a lone surrogate (surrogateescape).
    message = one_line_error(run("query", built, "caf\udcff"))
    assert "invalid Unicode" in message and "0xff" in message


def test_invalid_utf8_query_in_a_real_process(built: str, index_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simsearch", "query", built, b"caf\xff".decode("utf-8", "surrogateescape")],
        capture_output=True,
        env={**os.environ, "SIMSEARCH_INDEX_DIR": str(index_dir)},
    )
    assert result.returncode == 1
    assert (
        result.stderr.decode().startswith("Error: query: invalid Unicode")
        and b"Traceback" not in result.stderr
    )


def test_surrogate_in_a_jsonl_document_names_file_and_line(run, built: str, tmp_path: Path) -> None:
    source = tmp_path / "more.jsonl"
    source.write_text('{"text": "fine"}\n{"text": "bad \\ud800 one"}\n', encoding="utf-8")
    message = one_line_error(run("add", built, source))
    assert f"{source}:2: text: invalid Unicode" in message
    assert "3 documents" in run("info", built).output.replace("count: 3", "3 documents")


# --- Bug 7: NaN in metadata -----------------------------------------------------------------------


def test_nan_in_jsonl_metadata_is_refused_naming_file_and_line(run, built: str, tmp_path: Path) -> None:
    source = tmp_path / "more.jsonl"
    source.write_text('{"text": "fine"}\n{"text": "x", "score": NaN}\n', encoding="utf-8")
    message = one_line_error(run("add", built, source))
    assert f"{source}:2:" in message and "NaN" in message


def test_query_json_stays_valid_over_old_nan_metadata(
    run, tiny_bert: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """An index written before the check (NaN stored) answers null, with a warning."""
    import simsearch.index.build as index_module
    import simsearch.store.write.rows as rows_module
    from simsearch.encode.torch_encoder import Encoder
    from simsearch.readers import Document

    with monkeypatch.context() as old_version:  # write the NaN as the old code did
        old_version.setattr(index_module, "check_document", lambda doc: None)
        old_version.setattr(rows_module, "dumps", lambda value: json.dumps(value, ensure_ascii=False))
        Index.build(
            [Document("nan-doc", "the cat sat", {"x": float("nan"), "y": [float("inf")]})],
            "old",
            Encoder(str(tiny_bert)),
        )
    result = CliRunner().invoke(main, ["query", "old", "the cat", "--json"])
    assert result.exit_code == 0, result.output
    assert "warning: document 'nan-doc'" in caplog.text  # on stderr, outside pytest
    lines = [line for line in result.output.splitlines() if line.startswith("{")]
    hit = json.loads(lines[0], parse_constant=lambda name: pytest.fail(f"invalid JSON constant {name}"))
    assert hit["metadata"] == {"x": None, "y": [None]}


# --- Bug 10: closed standard input ------------------------------------------------------------------


def closed_stdin(*args: str, index_dir: Path) -> subprocess.CompletedProcess[bytes]:
    command = " ".join(f"'{a}'" for a in (sys.executable, "-m", "simsearch", *args))
    return subprocess.run(
        ["bash", "-c", command + " <&-"],
        capture_output=True,
        env={**os.environ, "SIMSEARCH_INDEX_DIR": str(index_dir)},
    )


@pytest.mark.parametrize(
    "args",
    [
        ("build", "-", "--name", "fresh", "--model", "{model}"),
        ("add", "notes", "-"),
        ("query", "notes", "--queries-file", "-"),
        ("delete", "notes", "--ids-file", "-"),
    ],
)
def test_closed_stdin_is_a_one_line_error(built: str, index_dir: Path, tiny_bert: Path, args) -> None:
    result = closed_stdin(*(a.format(model=tiny_bert) for a in args), index_dir=index_dir)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert err.startswith("Error: <stdin>: standard input is closed") and err.count("\n") == 1, err


# --- weaknesses -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["2", "nan", "NaN", "inf", "-inf", "-1.5", "abc"])
def test_min_score_must_be_a_finite_cosine(run, built: str, value: str) -> None:
    result = run("query", built, "cat", "--min-score", value)
    assert result.exit_code == 2 and "--min-score" in result.output


def test_min_score_bounds_are_allowed(run, built: str) -> None:
    assert run("query", built, "cat", "--min-score", "-1").exit_code == 0
    assert "no results with cosine >= 1.0" in run("query", built, "cat", "--min-score", "1").output


def test_table_output_neutralises_terminal_escapes(run, tmp_path: Path, tiny_bert: Path) -> None:
    source = tmp_path / "evil.jsonl"
    source.write_text(
        json.dumps({"id": "\x1b]0;pwned\x07id", "text": "the cat \x1b[2J\x1b[31mred\x9b1m \u202eevil"})
        + "\n",
        encoding="utf-8",
    )
    assert run("build", source, "--name", "evil", "--model", tiny_bert, "--id-field", "id").exit_code == 0
    table = run("query", "evil", "the cat \x1b[2J")
    assert table.exit_code == 0
    for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert raw not in table.output
    assert "\\x1b[2J" in table.output and "\\u202e" in table.output
    exact = json.loads(run("query", "evil", "the cat", "--json").output.splitlines()[0])
    assert exact["id"] == "\x1b]0;pwned\x07id" and "\x1b[2J" in exact["text"]


def test_ids_file_deletes_ids_with_surrounding_spaces(run, built: str, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_bytes(b"  spaced id  \r\n\nc\n")
    result = run("delete", built, "--ids-file", ids)
    assert result.exit_code == 0 and "2 deleted" in result.output, result.output


def test_ids_file_from_a_fifo(run, built: str, tmp_path: Path) -> None:
    import threading

    fifo = tmp_path / "ids"
    os.mkfifo(fifo)
    feeder = threading.Thread(target=lambda: fifo.write_text("a\n", encoding="utf-8"))
    feeder.start()
    result = run("delete", built, "--ids-file", fifo)
    feeder.join(10)
    assert result.exit_code == 0 and "1 deleted" in result.output, result.output


def test_re_adding_a_file_under_another_spelling_changes_nothing(
    run, tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("the cat sat\nbread keep fresh\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert run("build", "./data/a.txt", "--name", "paths", "--model", tiny_bert).exit_code == 0
    for spelling in ("data/a.txt", str(tmp_path / "data" / "a.txt"), "data/../data/a.txt"):
        result = run("add", "paths", spelling)
        assert "0 added, 0 updated, 2 unchanged" in result.output, (spelling, result.output)


def test_an_index_from_before_the_rule_keeps_its_ids(
    run, tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("the cat sat\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    import simsearch.store.manifest_fields as manifest_fields

    monkeypatch.setattr(manifest_fields, "INPUTS", {})  # as an older simsearch wrote it: no rule recorded
    from simsearch.readers import ReadOptions, read_documents

    docs = read_documents(["./data/a.txt"], ReadOptions(derived_ids="as-given"))
    from simsearch.encode.torch_encoder import Encoder

    Index.build(docs, "old", Encoder(str(tiny_bert)))
    assert "0 added, 0 updated, 1 unchanged" in run("add", "old", "./data/a.txt").output


def test_csv_with_a_duplicate_header_is_refused(run, built: str, tmp_path: Path) -> None:
    source = tmp_path / "dup.csv"
    source.write_text("text,text\nhello,world\n", encoding="utf-8")
    assert "duplicate column 'text'" in one_line_error(run("add", built, source))


def test_error_messages_neutralise_escapes_in_file_names(run, built: str, tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "evil\x1b]0;pwned\x07.txt").write_bytes(b"bad \xff byte\n")
    message = one_line_error(run("add", built, folder))
    assert "\x1b" not in message and "\x07" not in message and "\\x1b]0;pwned\\x07" in message


def test_undecodable_option_values_are_one_line_errors(
    run, built: str, tiny_bert: Path, tmp_path: Path
) -> None:
    source = tmp_path / "a.txt"
    source.write_text("hello\n", encoding="utf-8")
    message = one_line_error(
        run("build", source, "--name", "x", "--model", tiny_bert, "--index-type", "caf\udcff")
    )
    assert "unknown index type" in message
    assert "invalid Unicode" in one_line_error(run("delete", built, "caf\udcff"))
