"""CLI: add / delete / compact / verify, and the bad-input list of issue 4, each through CliRunner.

Every failure must be one ``Error: ...`` line, exit 1 (2 for usage), and leave the disk as it was.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from simsearch.cli.main import main
from simsearch.index import Index
from simsearch.store.locking import write_lock
from simsearch.readers import Document


@pytest.fixture(scope="session")
def tiny_encoder(tiny_bert):
    from simsearch.encode.torch_encoder import Encoder

    return Encoder(str(tiny_bert))


@pytest.fixture
def notes(index_dir, tiny_encoder) -> Path:
    """Index 'notes' built with the tiny BERT, so the CLI can load the index's own model."""
    docs = [
        Document(f"n{i}", text, {"i": i})
        for i, text in enumerate(
            [
                "the cat sat on the mat",
                "keep bread fresh",
                "the dog is good",
                "a fast search engine",
                "서울 지하철은 편리하다",
                "how to keep the dog",
            ]
        )
    ]
    return Index.build(docs, "notes", tiny_encoder, index_dir=index_dir).path


def run(*args: str | Path, input: bytes | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with size and mtime (lock files are not content)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(".lock")
    }


def assert_error(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    if code == 1:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


# -- the commands ---------------------------------------------------------------------------------


def test_add_update_unchanged_through_the_cli(notes, tmp_path):
    source = write(
        tmp_path / "more.jsonl",
        "\n".join(
            json.dumps(r)
            for r in [
                {"id": "n0", "text": "the cat sat on the mat", "i": 0},
                {"id": "n1", "text": "bread goes stale", "i": 1},
                {"id": "x1", "text": "a brand new note", "i": 9},
            ]
        )
        + "\n",
    )
    result = run("add", "notes", source, "--id-field", "id")
    assert result.exit_code == 0, result.output
    assert "1 added, 1 updated, 1 unchanged (2 encoded, 0 truncated); 7 documents" in result.stdout
    again = run("add", "notes", source, "--id-field", "id")
    assert "0 added, 0 updated, 3 unchanged" in again.stdout
    hits = [
        json.loads(line)
        for line in run("query", "notes", "a new note", "--json", "-k", "10").stdout.splitlines()
    ]
    by_id = {hit["id"]: hit for hit in hits}
    assert (
        len(hits) == 7 and by_id["x1"]["metadata"] == {"i": 9} and by_id["n1"]["text"] == "bread goes stale"
    )


def test_add_reads_stdin_and_csv_options(notes, tmp_path):
    result = run("add", "notes", "-", input="one more line\nand another\n".encode())
    assert result.exit_code == 0 and "2 added" in result.stdout
    csv_file = write(tmp_path / "t.csv", "key,body\nk1,from a csv row\n")
    result = run("add", "notes", csv_file, "--text-field", "body", "--id-field", "key")
    assert result.exit_code == 0 and "1 added" in result.stdout and "9 documents" in result.stdout


def test_delete_with_ids_and_ids_file(notes, tmp_path):
    ids = write(tmp_path / "ids.txt", "\ufeffn2\r\n\r\nn3\nghost\n")
    result = run("delete", "notes", "n1", "--ids-file", ids)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Index 'notes': 3 deleted, 1 unknown ('ghost'); 3 documents left"
    result = run("delete", "notes", "nothing-here")
    assert result.exit_code == 0 and "0 deleted, 1 unknown" in result.stdout


def test_delete_ids_file_mistakes(notes, tmp_path):
    bad = write(tmp_path / "ids.txt", b"n1\n\xff\xfe oops\n")
    before = snapshot(notes.parent)
    assert_error(run("delete", "notes", "--ids-file", bad), 1, "ids.txt:2: invalid UTF-8")
    assert_error(run("delete", "notes", "--ids-file", tmp_path / "missing.txt"), 2, "--ids-file")
    assert snapshot(notes.parent) == before
    result = run("delete", "notes", "--ids-file", "-", input=b"n4\nn5\n")
    assert result.exit_code == 0 and "2 deleted" in result.stdout


def test_delete_needs_ids(notes):
    assert_error(run("delete", "notes"), 2)
    assert run("delete", "notes").stderr.count("give at least one ID") == 1


def test_compact_and_verify(notes):
    run("delete", "notes", "n0", "n1")
    result = run("compact", "notes")
    assert result.exit_code == 0 and "compacted" in result.stdout and "4 documents" in result.stdout
    result = run("verify", "notes")
    assert result.exit_code == 0 and result.stdout.startswith("Index 'notes': ok (4 documents")
    report = json.loads(run("verify", "notes", "--json").stdout)
    assert report["ok"] and {c["name"] for c in report["checks"]} >= {
        "manifest",
        "model",
        "faiss agrees with sqlite",
    }


def test_verify_exits_1_until_repaired(notes):
    manifest = json.loads((notes / "manifest.json").read_text())
    (notes / manifest["files"]["faiss"]["name"]).unlink()
    assert_error(run("query", "notes", "cat"), 1, "is missing")
    result = run("verify", "notes")
    assert result.exit_code == 1 and "problem: faiss checksum" in result.stderr
    assert "run `simsearch verify --repair`" in result.stdout
    result = run("verify", "notes", "--repair")
    assert result.exit_code == 0 and "repaired 1 problem(s)" in result.stdout
    assert run("query", "notes", "cat").exit_code == 0


def test_verify_json_reports_unrepairable_damage(notes):
    manifest = json.loads((notes / "manifest.json").read_text())
    write(notes / manifest["files"]["sqlite"]["name"], b"not a database" * 100)
    result = run("verify", "notes", "--repair", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert not report["ok"] and report["repaired"] == []


def test_second_writer_times_out_with_a_clear_message(notes, tmp_path, monkeypatch):
    monkeypatch.setenv("SIMSEARCH_LOCK_TIMEOUT", "0.3")
    before = snapshot(notes)
    with write_lock(notes):
        assert_error(run("delete", "notes", "n1"), 1, "is being written by another process")
        assert_error(run("add", "notes", "-", input=b"x y\n"), 1, "try again when it has finished")
    assert snapshot(notes) == before


# -- bad input: each one line, exit 1 (2 for usage), nothing written ----------------------------------

BAD_SOURCES = {
    "empty.txt": (b"", "empty.txt: empty file"),
    "blank.txt": (b"\n  \n\t\n\r\n", "blank.txt: no documents (only blank lines"),
    "binary.txt": (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "binary.txt:3: contains NUL bytes, looks like a binary file",
    ),
    "latin1.txt": ("fine line\ncaf\u00e9 au lait\n".encode("latin-1"), "latin1.txt:2: invalid UTF-8"),
    "utf16.txt": ("hello\n".encode("utf-16"), "utf16.txt:1: UTF-16"),
    "nocol.csv": (b"title,body\na,b\n", "nocol.csv:1: no column 'text'"),
    "ragged.csv": (b"id,text\n1,fine\n2\n", "ragged.csv:3: row has 1 fields but the header has 2"),
    "bad.jsonl": (b'{"id": "1", "text": "ok"}\n{"id": "2", "text": \n', "bad.jsonl:2: malformed JSON"),
    "dups.jsonl": (
        b'{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n{"id": "a", "text": "z"}\n',
        "dups.jsonl:3: duplicate document id 'a'",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_SOURCES))
def test_bad_sources_fail_cleanly_in_build(name, index_dir, tmp_path, tiny_bert):
    data, message = BAD_SOURCES[name]
    source = write(tmp_path / name, data)
    result = (
        run("build", source, "--name", "fresh", "--model", tiny_bert, "--id-field", "id")
        if name == "dups.jsonl"
        else run("build", source, "--name", "fresh", "--model", tiny_bert)
    )
    assert_error(result, 1, message)
    assert not (index_dir / "fresh").exists()
    assert [p.name for p in index_dir.iterdir()] in ([], [".fresh.lock"])


@pytest.mark.parametrize("name", sorted(BAD_SOURCES))
def test_bad_sources_fail_cleanly_in_add(name, notes, tmp_path):
    data, message = BAD_SOURCES[name]
    source = write(tmp_path / name, data)
    before = snapshot(notes.parent)
    extra = ["--id-field", "id"] if name == "dups.jsonl" else []
    assert_error(run("add", "notes", source, *extra), 1, message)
    assert snapshot(notes.parent) == before


def test_bom_and_crlf_are_read_cleanly(index_dir, tmp_path, tiny_bert):
    source = write(tmp_path / "bom.csv", "\ufefftext,tag\r\nfirst row,a\r\nsecond row,b\r\n".encode())
    result = run("build", source, "--name", "bom", "--model", tiny_bert)
    assert result.exit_code == 0, result.output
    index = Index.open("bom")
    rows = [(doc.text, doc.metadata) for doc in index.get(index.ids())]
    assert rows == [("first row", {"tag": "a"}), ("second row", {"tag": "b"})]


def test_a_10mb_single_line_is_one_truncated_document(index_dir, tmp_path, tiny_bert):
    source = write(tmp_path / "huge.txt", ("the cat sat on the mat " * 440_000)[:10_000_000] + "\n")
    result = run("build", source, "--name", "huge", "--model", tiny_bert)
    assert result.exit_code == 0, result.output
    assert "1 documents, 1 truncated" in result.stdout
    assert run("add", "huge", source).stdout.startswith("Index 'huge': 0 added, 0 updated, 1 unchanged")


def test_query_mistakes(notes):
    assert_error(run("query", "notes", "  "), 1, "empty query")
    assert_error(run("query", "notes", "cat", "-k", "0"), 2, "-k")
    assert_error(run("query", "notes", "cat", "-k", "-3"), 2)
    assert_error(run("query", "notes"), 2, "give at least one QUERY")


@pytest.mark.parametrize(
    "command",
    [
        ["query", "{}", "cat"],
        ["add", "{}", "x.txt"],
        ["delete", "{}", "a"],
        ["compact", "{}"],
        ["verify", "{}"],
        ["info", "{}"],
    ],
)
def test_unknown_index(command, index_dir):
    assert_error(run(*[c.format("ghost") for c in command]), 1, "'ghost' not found")
    assert not (index_dir / "ghost").exists()


@pytest.mark.parametrize("name", ["a/b", "../evil", "..", "/abs/path", ".hidden"])
@pytest.mark.parametrize(
    "command",
    [
        ["build", "x.txt", "--name", "{}"],
        ["query", "{}", "cat"],
        ["add", "{}", "x.txt"],
        ["delete", "{}", "a"],
        ["verify", "{}"],
    ],
)
def test_index_names_with_slash_or_dots_are_usage_errors(command, name, index_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(*[c.format(name) for c in command])
    assert_error(result, 2, "invalid index name")
    assert snapshot(tmp_path) == {}


def _damage(notes: Path, how: str) -> None:
    manifest = json.loads((notes / "manifest.json").read_text())
    faiss_file = notes / manifest["files"]["faiss"]["name"]
    sqlite_file = notes / manifest["files"]["sqlite"]["name"]
    if how == "faiss missing":
        faiss_file.unlink()
    elif how == "faiss truncated":
        write(faiss_file, faiss_file.read_bytes()[:50])
    elif how == "sqlite garbage":
        write(sqlite_file, os.urandom(sqlite_file.stat().st_size))
    elif how == "sqlite pages damaged":
        data = bytearray(sqlite_file.read_bytes())
        data[100:] = b"\xee" * (len(data) - 100)
        write(sqlite_file, bytes(data))
    elif how == "newer format":
        manifest["format_version"] = 7
        write(notes / "manifest.json", json.dumps(manifest))
    elif how == "manifest garbage":
        write(notes / "manifest.json", b"{not json")


DAMAGE = {
    "faiss missing": "is missing",
    "faiss truncated": "truncated or replaced",
    "sqlite garbage": "damaged SQLite file",
    "sqlite pages damaged": "damaged SQLite file",
    "newer format": "written by a newer simsearch (index format 7",
    "manifest garbage": "unreadable manifest",
}


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_damaged_indexes_give_one_line_errors_and_writes_touch_nothing(how, notes):
    _damage(notes, how)
    before = snapshot(notes.parent)
    assert_error(run("query", "notes", "cat"), 1, DAMAGE[how])
    assert_error(run("add", "notes", "-", input=b"new text\n"), 1, DAMAGE[how])
    assert_error(run("delete", "notes", "n1"), 1, DAMAGE[how])
    assert_error(run("compact", "notes"), 1, DAMAGE[how])
    assert snapshot(notes.parent) == before
    assert run("verify", "notes").exit_code == 1


def test_model_directory_that_is_not_a_model(index_dir, tmp_path):
    (tmp_path / "not-a-model").mkdir()
    write(tmp_path / "not-a-model" / "README.md", "hello")
    source = write(tmp_path / "a.txt", "some text\n")
    assert_error(
        run("build", source, "--name", "m", "--model", tmp_path / "not-a-model"),
        1,
        "is not a model directory",
    )
    assert not (index_dir / "m").exists()


def test_sqlite_row_damage_after_open_is_an_error_not_a_traceback(notes):
    manifest = json.loads((notes / "manifest.json").read_text())
    db = sqlite3.connect(notes / manifest["files"]["sqlite"]["name"])
    db.execute("DELETE FROM documents WHERE id = 'n0'")
    db.execute(
        "INSERT INTO documents (id, text, metadata, hash, vector) SELECT 'extra', text, metadata, hash, "
        "vector FROM documents WHERE id = 'n1'"
    )
    db.commit()
    db.close()
    result = run("query", "notes", "the cat sat on the mat", "-k", "6")
    assert result.exit_code == 1 and result.stderr.startswith("Error: ")


# -- end to end with the bundled model (one step through the installed command) ------------------


def test_add_delete_verify_with_the_default_model(index_dir, tmp_path):
    import shutil
    import subprocess

    first = write(tmp_path / "a.txt", "The cat sat on the mat.\nStock markets fell sharply today.\n")
    assert run("build", first, "--name", "live").exit_code == 0
    second = write(tmp_path / "b.txt", "How to bake sourdough bread at home.\n서울 지하철은 편리하다.\n")
    exe = shutil.which("simsearch") or str(Path(__import__("sys").executable).with_name("simsearch"))
    added = subprocess.run(
        [exe, "add", "live", str(second)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SIMSEARCH_INDEX_DIR": str(index_dir)},
    )
    assert added.returncode == 0 and "2 added, 0 updated, 0 unchanged" in added.stdout, added.stderr
    hit = json.loads(run("query", "live", "baking a loaf of bread", "--json", "-k", "1").stdout)
    assert hit["id"] == f"{second}:1"
    deleted = run("delete", "live", f"{second}:1", "nope")
    assert "1 deleted, 1 unknown ('nope'); 3 documents left" in deleted.stdout
    hit = json.loads(run("query", "live", "baking a loaf of bread", "--json", "-k", "1").stdout)
    assert hit["id"] != f"{second}:1"
    assert run("compact", "live").exit_code == 0
    verified = run("verify", "live")
    assert verified.exit_code == 0 and "ok (3 documents" in verified.stdout, verified.output
