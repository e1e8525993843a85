"""Issue #10 (store half) through the CLI: each failure one ``Error: ...`` line, nothing changed on disk."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from simsearch.cli.main import main
from simsearch.index import Index
from simsearch.readers import Document


@pytest.fixture(scope="session")
def tiny_encoder(tiny_bert):
    from simsearch.encode.torch_encoder import Encoder

    return Encoder(str(tiny_bert))


@pytest.fixture
def notes(index_dir, tiny_encoder, monkeypatch) -> Path:
    monkeypatch.setenv("SIMSEARCH_QUERY_BACKEND", "torch")  # no ONNX export: not the point here
    docs = [
        Document(f"n{i}", text, {"i": i})
        for i, text in enumerate(
            ["the cat sat on the mat", "keep bread fresh", "the dog is good", "a fast search engine"]
        )
    ]
    return Index.build(docs, "notes", tiny_encoder, index_dir=index_dir).path


def run(*args: object, input: bytes | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_error(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    if code == 1:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_disk_full_during_add_is_one_line_and_leaves_nothing(notes, tmp_path, monkeypatch):
    source = tmp_path / "more.txt"
    source.write_text("a brand new line about cats\nanother new line\n")
    before = files(notes.parent)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    assert_error(
        run("add", "notes", source),
        1,
        "cannot write index 'notes'",
        "No space left on device",
        "free some disk space",
    )
    monkeypatch.undo()
    assert files(notes.parent) == before


def test_read_only_index_home_during_build_is_one_line(index_dir, tiny_bert, tmp_path, monkeypatch):
    source = tmp_path / "docs.txt"
    source.write_text("one line\nanother line\n")
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if ".tmp-" in self.name or ".new-" in self.name or self == index_dir:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert_error(
        run("build", source, "--name", "fresh", "--model", tiny_bert),
        1,
        "cannot write index 'fresh'",
        "Read-only file system",
    )
    assert not (index_dir / "fresh").exists()


def test_a_lock_timeout_that_is_not_a_number(notes, monkeypatch):
    monkeypatch.setenv("SIMSEARCH_LOCK_TIMEOUT", "abc")
    before = files(notes)
    assert_error(run("delete", "notes", "n1"), 1, "SIMSEARCH_LOCK_TIMEOUT='abc' is not a number")
    assert files(notes) == before


def test_a_name_too_long_for_the_file_system_is_a_usage_error(index_dir, tmp_path, tiny_bert):
    source = tmp_path / "docs.txt"
    source.write_text("one line\n")
    result = run("build", source, "--name", "한" * 100, "--model", tiny_bert)
    assert_error(result, 2, "300 bytes in UTF-8")
    assert not index_dir.exists() or list(index_dir.iterdir()) == []


def test_a_manifest_whose_ann_is_not_an_object(notes):
    manifest = json.loads((notes / "manifest.json").read_text())
    (notes / "manifest.json").write_text(json.dumps({**manifest, "ann": "HNSW"}))
    for args in (("query", "notes", "cat"), ("info", "notes"), ("add", "notes", "-"), ("compact", "notes")):
        assert_error(run(*args, input=b"new text\n"), 1, "'ann' is not an object")


def test_eval_ann_on_an_empty_index(notes):
    assert run("delete", "notes", "n0", "n1", "n2", "n3").exit_code == 0
    assert_error(run("eval", "ann", "notes"), 1, "holds no documents")


def test_list_shows_the_directory_name(notes):
    notes.rename(notes.with_name("renamed"))
    result = run("list", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["name"] == "renamed"


def test_verify_advises_repair_only_for_what_repair_fixes(notes):
    manifest = json.loads((notes / "manifest.json").read_text())
    sqlite_file = notes / manifest["files"]["sqlite"]["name"]
    data = bytearray(sqlite_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    sqlite_file.write_bytes(bytes(data))
    result = run("verify", "notes", "--repair")
    assert result.exit_code == 1 and "rebuild the index from its sources" in result.stdout
    assert "--repair" not in result.stdout + result.stderr
    assert_error(
        run("add", "notes", "-", input=b"new text\n"),
        1,
        "checksum mismatch",
        "simsearch verify notes",
        "nothing was written",
    )


def test_verify_reports_and_records_a_missing_fingerprint(notes):
    manifest = json.loads((notes / "manifest.json").read_text())
    del manifest["fingerprint"]
    (notes / "manifest.json").write_text(json.dumps(manifest))
    result = run("verify", "notes", "--json")
    assert result.exit_code == 0
    check = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "model fingerprint")
    assert "no fingerprint recorded" in check["detail"]
    assert run("verify", "notes", "--record-fingerprint").exit_code == 0
    assert json.loads((notes / "manifest.json").read_text())["fingerprint"]["model"]
    assert run("query", "notes", "cat").exit_code == 0
