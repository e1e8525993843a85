"""Tests for simsearch.store.generation / index / locking: round trip, search, atomic writes, damage on open.

The fake encoder stands in for the model (the model is not the point here); FAISS, SQLite and the
files under tmp_path are real.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import tokenize
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pytest

import simsearch
from simsearch.store import locking
from simsearch.store import generation as store
from simsearch.store.files import file_sha256
from simsearch.store.manifest import MANIFEST
from simsearch.store.manifest_schema import FileEntry
from simsearch.errors import (
    IndexCorruptError,
    IndexExistsError,
    IndexNotFoundError,
    InputError,
    LockTimeoutError,
    ModelError,
    QueryError,
    SimsearchError,
)
from simsearch.index import Hit, Index
from simsearch.store.home import check_name, list_indexes
from simsearch.readers import Document, ReadOptions, read_documents

TEXTS = [
    "the cat sat on the mat",
    "a dog sat on the mat",
    "how to keep bread fresh",
    "stale bread is bad",
    "search engine for documents",
]
DOCS = [Document(f"d{n}", text, {"n": n, "tags": ["x"]}) for n, text in enumerate(TEXTS)]


@pytest.fixture
def built(index_dir: Path, fake_encoder) -> Iterator[Index]:
    index = Index.build(DOCS, "main", fake_encoder, index_dir=index_dir)
    yield index
    index.close()


def reopen(index_dir: Path, fake_encoder, name: str = "main") -> Index:
    return Index.open(name, index_dir=index_dir, encoder=fake_encoder)


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file of an index directory, by name, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def leftovers(home: Path) -> list[str]:
    """Staging directories and temporary files anywhere under the index home."""
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if ".tmp" in p.name)


def many(n: int, fail_after: int | None = None, error: BaseException | None = None) -> Iterator[Document]:
    for i in range(n):
        if fail_after is not None and i == fail_after:
            raise error or InputError(f"bad.jsonl:{i + 1}: malformed JSON")
        yield Document(f"id{i}", f"document {i} about topic {i % 13}", {"i": i})


# --- round trip -----------------------------------------------------------------------------------


def test_build_then_open_round_trip(built: Index, index_dir: Path, fake_encoder) -> None:
    assert len(built) == 5 and built.last_build is not None and built.last_build.documents == 5
    index = reopen(index_dir, fake_encoder)
    assert len(index) == 5
    m = index.manifest
    assert (m["format"], m["format_version"], m["generation"], m["count"]) == ("simsearch-index", 2, 1, 5)
    assert m["faiss_vectors"] == "sqlite"  # format 2: the FAISS file leaves its vectors to SQLite
    assert (m["model"], m["pooling"], m["dim"]) == ("fake/bag-of-words", "mean", 16)
    assert m["model_path"] == "/nonexistent/fake-model" and m["max_length"] == 64
    assert m["normalized"] is True and m["faiss"] == "IndexFlat"
    assert m["simsearch_version"] == simsearch.__version__ and m["created"] and m["updated"]
    assert set(m["files"]) == {"faiss", "sqlite"}
    for entry in m["files"].values():
        file = index.path / entry["name"]
        assert entry["size"] == file.stat().st_size
        assert entry["sha256"] == file_sha256(file)
        store.check_file(index.path, FileEntry(**entry), full=True)
    # The manifest on disk is readable JSON and is what the index reports.
    assert json.loads((index.path / MANIFEST).read_text(encoding="utf-8")) == m
    index.close()


def test_faiss_ids_are_sqlite_row_ids(built: Index, fake_encoder) -> None:
    import faiss

    m = built.manifest
    on_disk = faiss.read_index(str(built.path / m["files"]["faiss"]["name"]))
    assert type(on_disk).__name__ == "IndexIDMap2" and on_disk.ntotal == 0  # vectors: SQLite's only
    opened = store.Store.open(built.path)
    flat = opened.faiss.index
    assert type(flat).__name__ == "IndexIDMap2" and flat.ntotal == 5
    with sqlite3.connect(built.path / m["files"]["sqlite"]["name"]) as db:
        rows = db.execute("SELECT rowid, id, text, vector FROM documents ORDER BY rowid").fetchall()
    assert sorted(faiss.vector_to_array(flat.id_map).tolist()) == [r[0] for r in rows]  # type: ignore[attr-defined]  # faiss's stubs type every index as the base Index
    assert [(r[1], r[2]) for r in rows] == [(d.id, d.text) for d in DOCS]
    stored = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").reshape(5, 16)
    np.testing.assert_allclose(stored, fake_encoder.encode(TEXTS), atol=1e-6)
    np.testing.assert_array_equal(opened.vectors_of(np.array([r[0] for r in rows])), stored)
    opened.close()


def test_plain_strings_get_numbered_ids(index_dir: Path, fake_encoder) -> None:
    index = Index.build(["first text", "second text"], "plain", fake_encoder, index_dir=index_dir)
    assert [h.id for h in index.search("second text", k=2)] == ["2", "1"]
    index.close()


def test_build_from_read_documents(tmp_path: Path, index_dir: Path, fake_encoder) -> None:
    src = tmp_path / "c.jsonl"
    src.write_text('{"_id": "a", "text": "hello there", "year": 2020}\n{"_id": "b", "text": "bye"}\n')
    docs = read_documents([src], ReadOptions(id_field="_id"))
    index = Index.build(docs, "fromfile", fake_encoder, index_dir=index_dir)
    hit = index.search("hello there", k=1)[0]
    assert (hit.id, hit.text, hit.metadata) == ("a", "hello there", {"year": 2020})
    index.close()


# --- search -----------------------------------------------------------------------------------------


def test_search_hits_sorted_by_cosine(built: Index, fake_encoder) -> None:
    hits = built.search("the cat sat on the mat", k=3, mode="dense")
    assert [h.rank for h in hits] == [1, 2, 3]
    # pytest.approx stands in for a float (it compares equal to one): typed as one, it is not one
    assert hits[0] == Hit(
        1,
        "d0",
        pytest.approx(1.0, abs=1e-5),  # type: ignore[arg-type]
        TEXTS[0],
        {"n": 0, "tags": ["x"]},
        cosine=pytest.approx(1.0, abs=1e-5),  # type: ignore[arg-type]
    )
    assert all(isinstance(h, Hit) for h in hits)
    # Scores are the cosine of the encoder's unit vectors, best first.
    cosines = fake_encoder.encode(TEXTS) @ fake_encoder.encode(["the cat sat on the mat"])[0]
    expected = sorted(((float(c), DOCS[i].id) for i, c in enumerate(cosines)), reverse=True)[:3]
    assert [h.score for h in hits] == pytest.approx([c for c, _ in expected], abs=1e-5)
    assert hits[1].id == "d1"  # shares "sat on the mat"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hits[0].score = 0.0  # type: ignore[misc]


def test_k_larger_than_the_index_returns_all(built: Index) -> None:
    hits = built.search("bread", k=1000)
    assert sorted(h.id for h in hits) == sorted(d.id for d in DOCS)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]


def test_min_score_filters(built: Index) -> None:
    everything = built.search("fresh bread", k=5, mode="dense")
    threshold = (everything[1].score + everything[2].score) / 2
    kept = built.search("fresh bread", k=5, min_score=threshold, mode="dense")
    assert kept == everything[:2]
    assert all(h.score >= threshold for h in kept)
    assert built.search("fresh bread", k=5, min_score=1.01, mode="dense") == []


def test_many_queries_one_list_each(built: Index) -> None:
    queries = [TEXTS[4], "bread", TEXTS[0], TEXTS[3]]
    results = built.search(queries, k=2)
    assert len(results) == 4 and all(len(r) == 2 for r in results)
    assert results == [built.search(q, k=2) for q in queries]
    assert [results[i][0].id for i in (0, 2, 3)] == ["d4", "d0", "d3"]
    assert built.search(("cat",), k=1)[0][0].rank == 1  # any sequence of strings


@pytest.mark.parametrize("query", ["", "   ", "\n\t", [], ["fine", ""]])
def test_empty_query_is_an_error(built: Index, query) -> None:
    with pytest.raises(QueryError, match="query"):
        built.search(query)


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "3"])
def test_k_must_be_a_whole_number_of_at_least_one(built: Index, k) -> None:
    with pytest.raises(QueryError, match="k must be"):
        built.search("cat", k=k)


def test_open_with_another_models_encoder_is_refused(built: Index, index_dir: Path, fake_encoder) -> None:
    other = type("OtherEncoder", (type(fake_encoder),), {"model_id": "other/model"})()
    with pytest.raises(ModelError, match="other/model"):
        Index.open("main", index_dir=index_dir, encoder=other)


# --- existing indexes, --force, names -----------------------------------------------------------------


def test_open_missing_index(index_dir: Path) -> None:
    with pytest.raises(IndexNotFoundError) as caught:
        Index.open("nothing-here", index_dir=index_dir)
    assert "'nothing-here'" in str(caught.value) and "simsearch list" in str(caught.value)


def test_build_over_existing_without_force(built: Index, index_dir: Path, fake_encoder) -> None:
    before = snapshot(built.path)
    with pytest.raises(IndexExistsError, match="--force"):
        Index.build(["new text"], "main", fake_encoder, index_dir=index_dir)
    assert snapshot(built.path) == before
    assert reopen(index_dir, fake_encoder).search("cat", k=1)[0].id == "d0"


def test_force_replaces_the_index(built: Index, index_dir: Path, fake_encoder) -> None:
    old_files = {e["name"] for e in built.manifest["files"].values()}
    new = Index.build(
        ["brand new text", "another one"], "main", fake_encoder, index_dir=index_dir, force=True
    )
    assert new.manifest["generation"] == 2 and len(new) == 2
    names = {p.name for p in new.path.iterdir()}
    assert names == {"manifest.json", "docs-000002.sqlite", "index-000002.faiss"}
    assert not old_files & names
    assert leftovers(index_dir) == []
    assert reopen(index_dir, fake_encoder).search("brand new text", k=5)[0].text == "brand new text"
    # A reader that opened the old generation keeps reading it (files unlinked, not rewritten).
    assert built.search("the cat sat on the mat", k=1)[0].text == TEXTS[0]
    new.close()


def test_force_over_a_damaged_index(built: Index, index_dir: Path, fake_encoder) -> None:
    (built.path / MANIFEST).write_text("{ not json")
    Index.build(["fresh start"], "main", fake_encoder, index_dir=index_dir, force=True).close()
    index = reopen(index_dir, fake_encoder)
    assert len(index) == 1 and index.search("fresh start", k=1)[0].text == "fresh start"
    assert leftovers(index_dir) == []


def test_build_never_replaces_a_directory_that_is_not_an_index(index_dir: Path, fake_encoder) -> None:
    mine = index_dir / "photos"
    mine.mkdir(parents=True)
    (mine / "holiday.jpg").write_bytes(b"\xff\xd8 not really")
    for force in (False, True):
        with pytest.raises(IndexExistsError, match="not a simsearch index"):
            Index.build(["x"], "photos", fake_encoder, index_dir=index_dir, force=force)
    assert [p.name for p in mine.iterdir()] == ["holiday.jpg"]


@pytest.mark.parametrize("name", ["a/b", "..", "../up", ".hidden", "-dash", "", "a..b", "a b", "x" * 129])
def test_bad_index_names_are_rejected(name: str) -> None:
    with pytest.raises(SimsearchError, match="invalid index name"):
        check_name(name)


@pytest.mark.parametrize("name", ["news", "my-index.v2", "scifact_2024", "한국어", "x" * 128])
def test_plain_index_names_are_accepted(name: str) -> None:
    assert check_name(name) == name


def test_build_and_open_check_the_name(index_dir: Path, fake_encoder) -> None:
    with pytest.raises(SimsearchError, match="invalid index name"):
        Index.build(["x"], ".hidden", fake_encoder, index_dir=index_dir)
    with pytest.raises(SimsearchError, match="invalid index name"):
        Index.open("..", index_dir=index_dir)
    assert not index_dir.exists() or list(index_dir.iterdir()) == []


# --- failed builds leave nothing behind ----------------------------------------------------------------


def test_duplicate_ids_name_the_id_and_where(tmp_path: Path, index_dir: Path, fake_encoder) -> None:
    src = tmp_path / "dup.jsonl"
    src.write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n\n{"id": "a", "text": "three"}\n')
    docs = read_documents([src], ReadOptions(id_field="id"))
    with pytest.raises(InputError) as caught:
        Index.build(docs, "dup", fake_encoder, index_dir=index_dir)
    assert f"{src}:4" in str(caught.value) and "'a'" in str(caught.value)
    assert not (index_dir / "dup").exists() and leftovers(index_dir) == []


def test_duplicate_ids_across_chunks(index_dir: Path, fake_encoder) -> None:
    docs = [*many(2100), Document("id5", "late duplicate", {}, "late.jsonl:9")]
    with pytest.raises(InputError, match="late.jsonl:9: duplicate document id 'id5'"):
        Index.build(docs, "dup", fake_encoder, index_dir=index_dir)
    assert not (index_dir / "dup").exists() and leftovers(index_dir) == []


def test_duplicate_ids_with_force_keep_the_previous_index(
    built: Index, index_dir: Path, fake_encoder
) -> None:
    before = snapshot(built.path)
    with pytest.raises(InputError, match="duplicate"):
        Index.build(
            [Document("x", "a"), Document("x", "b")], "main", fake_encoder, index_dir=index_dir, force=True
        )
    assert snapshot(built.path) == before and leftovers(index_dir) == []


def test_no_documents_is_an_error(tmp_path: Path, index_dir: Path, fake_encoder) -> None:
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n\n")
    documents: Iterable[Document]
    for documents in ([], read_documents([blank])):
        with pytest.raises(InputError, match="no documents"):
            Index.build(documents, "empty", fake_encoder, index_dir=index_dir)
    assert not (index_dir / "empty").exists() and leftovers(index_dir) == []


def test_blank_strings_are_not_documents(index_dir: Path, fake_encoder) -> None:
    with pytest.raises(InputError, match="no documents"):
        Index.build(["", "   "], "blank", fake_encoder, index_dir=index_dir)


@pytest.mark.parametrize("error", [InputError("bad.jsonl:3001: malformed JSON"), KeyboardInterrupt()])
def test_failure_mid_build_leaves_no_index(index_dir: Path, fake_encoder, error: BaseException) -> None:
    # 3000 documents: the failure comes after a whole 2048-document chunk was stored.
    with pytest.raises(type(error)):
        Index.build(many(3500, fail_after=3000, error=error), "mid", fake_encoder, index_dir=index_dir)
    assert not (index_dir / "mid").exists() and leftovers(index_dir) == []
    with pytest.raises(IndexNotFoundError):
        Index.open("mid", index_dir=index_dir)


@pytest.mark.parametrize("error", [InputError("bad.jsonl:3001: malformed JSON"), KeyboardInterrupt()])
def test_failure_mid_force_build_keeps_the_previous_index(
    built: Index, index_dir: Path, fake_encoder, error: BaseException
) -> None:
    before = snapshot(built.path)
    with pytest.raises(type(error)):
        Index.build(
            many(3500, fail_after=3000, error=error), "main", fake_encoder, index_dir=index_dir, force=True
        )
    assert snapshot(built.path) == before and leftovers(index_dir) == []
    index = reopen(index_dir, fake_encoder)
    assert index.manifest["generation"] == 1 and len(index) == 5
    index.close()


def test_successful_big_build_leaves_no_temporaries(index_dir: Path, fake_encoder) -> None:
    index = Index.build(many(3000), "big", fake_encoder, index_dir=index_dir)
    assert len(index) == 3000 and leftovers(index_dir) == []
    assert index.search("document 2999 about topic 9", k=1)[0].id == "id2999"
    index.close()


# --- damage detected on open ---------------------------------------------------------------------------


def data_file(index: Index, role: str) -> Path:
    return index.path / index.manifest["files"][role]["name"]


def open_error(index_dir: Path, name: str = "main") -> str:
    with pytest.raises(IndexCorruptError) as caught:
        Index.open(name, index_dir=index_dir)
    return str(caught.value)


def test_missing_faiss_file(built: Index, index_dir: Path) -> None:
    faiss_file = data_file(built, "faiss")
    faiss_file.unlink()
    message = open_error(index_dir)
    assert str(faiss_file) in message and "missing" in message and "rebuild" in message


def test_missing_sqlite_file(built: Index, index_dir: Path) -> None:
    db = data_file(built, "sqlite")
    db.unlink()
    assert str(db) in open_error(index_dir)


def test_truncated_faiss_file(built: Index, index_dir: Path) -> None:
    faiss_file = data_file(built, "faiss")
    faiss_file.write_bytes(
        faiss_file.read_bytes()[:50]
    )  # (90 bytes: an empty IDMap2,Flat, the vectors being SQLite's)
    message = open_error(index_dir)
    assert str(faiss_file) in message and "50 bytes" in message and "truncated" in message


def test_garbage_faiss_file_of_the_right_size(built: Index, index_dir: Path) -> None:
    faiss_file = data_file(built, "faiss")
    entry = built.manifest["files"]["faiss"]
    faiss_file.write_bytes(np.random.default_rng(0).bytes(entry["size"]))
    message = open_error(index_dir)
    assert str(faiss_file) in message and "FAISS" in message
    store.check_file(built.path, FileEntry(**entry), full=False)  # the size alone cannot tell
    with pytest.raises(IndexCorruptError, match="checksum mismatch"):
        store.check_file(built.path, FileEntry(**entry), full=True)


def test_flipped_vector_bytes_show_in_the_checksum(built: Index) -> None:
    faiss_file = data_file(built, "faiss")
    data = bytearray(faiss_file.read_bytes())
    data[-70] ^= 0xFF  # inside the stored vectors; the header stays valid
    faiss_file.write_bytes(bytes(data))
    entry = built.manifest["files"]["faiss"]
    store.check_file(built.path, FileEntry(**entry), full=False)
    with pytest.raises(IndexCorruptError, match="checksum mismatch"):
        store.check_file(built.path, FileEntry(**entry), full=True)


def test_sqlite_with_a_damaged_header(built: Index, index_dir: Path) -> None:
    db = data_file(built, "sqlite")
    data = db.read_bytes()
    db.write_bytes(b"\x00garbage header!" * 8 + data[128:])
    assert db.stat().st_size == built.manifest["files"]["sqlite"]["size"]
    message = open_error(index_dir)
    assert str(db) in message and "SQLite" in message


def test_sqlite_with_damaged_data_pages(index_dir: Path, fake_encoder) -> None:
    index = Index.build(many(3000), "pages", fake_encoder, index_dir=index_dir)
    db = data_file(index, "sqlite")
    index.close()
    size = db.stat().st_size
    with db.open("r+b") as handle:  # same size, header intact: only the table's pages are hit
        handle.seek(size // 2)
        handle.write(b"\xff" * 16384)
    with pytest.raises(IndexCorruptError, match="SQLite"):
        Index.open("pages", index_dir=index_dir, encoder=fake_encoder).search(
            [f"document {i} about topic {i % 13}" for i in range(0, 3000, 7)], k=3000
        )


def rewrite_manifest(index: Index, **changes) -> None:
    manifest = {**index.manifest, **changes}
    (index.path / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


def test_manifest_from_a_newer_simsearch(built: Index, index_dir: Path) -> None:
    rewrite_manifest(built, format_version=99)
    message = open_error(index_dir)
    assert "newer simsearch" in message and "format 99" in message and "upgrade" in message


@pytest.mark.parametrize("content", ["{ not json", "", "\xff"])
def test_manifest_that_is_not_json(built: Index, index_dir: Path, content: str) -> None:
    (built.path / MANIFEST).write_text(content, encoding="latin-1")
    message = open_error(index_dir)
    assert "manifest" in message and "rebuild" in message


@pytest.mark.parametrize(
    "content",
    [
        '{"name": "something else", "version": 3}',
        "[1, 2, 3]",
        '"text"',
        '{"format": "other-tool", "format_version": 1}',
    ],
)
def test_foreign_json_manifest(built: Index, index_dir: Path, content: str) -> None:
    (built.path / MANIFEST).write_text(content)
    assert "not a simsearch manifest" in open_error(index_dir)


def test_directory_that_is_not_an_index(index_dir: Path) -> None:
    (index_dir / "stuff").mkdir(parents=True)
    (index_dir / "stuff" / "notes.txt").write_text("hello")
    assert "not a simsearch index" in open_error(index_dir, "stuff")


def test_path_that_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "file.faiss"
    file.write_bytes(b"x")
    with pytest.raises(IndexNotFoundError):
        Index.open(file)


def test_manifest_count_or_dim_disagreeing_with_the_files(built: Index, index_dir: Path) -> None:
    rewrite_manifest(built, count=99)
    assert "manifest says 99" in open_error(index_dir)
    rewrite_manifest(built, dim=8)
    assert "dim" in open_error(index_dir)


def test_manifest_missing_a_key(built: Index, index_dir: Path) -> None:
    manifest = built.manifest
    del manifest["dim"]
    (built.path / MANIFEST).write_text(json.dumps(manifest))
    message = open_error(index_dir)
    assert "incomplete manifest" in message and "dim" in message


@pytest.mark.parametrize("version", [0, "1"])
def test_manifest_with_an_unsupported_format_version(built: Index, index_dir: Path, version) -> None:
    rewrite_manifest(built, format_version=version)
    message = open_error(index_dir).replace(str(built.path), "<index>")
    assert "version" in message and repr(version) in message


@pytest.mark.parametrize("files", [{}, [], {"faiss": {"name": "index-000001.faiss"}, "sqlite": {}}])
def test_manifest_with_a_malformed_files_section(built: Index, index_dir: Path, files) -> None:
    rewrite_manifest(built, files=files)
    assert "manifest" in open_error(index_dir)


# --- no pickle ----------------------------------------------------------------------------------------


def test_index_files_are_not_pickles(built: Index) -> None:
    for file in built.path.iterdir():
        assert not file.read_bytes().startswith(b"\x80"), file
    assert (built.path / MANIFEST).read_bytes().startswith(b"{")
    assert data_file(built, "sqlite").read_bytes().startswith(b"SQLite format 3\x00")


def test_package_source_never_uses_pickle() -> None:
    # Names in the code (not comments or docstrings): pickle, cPickle, allow_pickle, and friends.
    banned = {"shelve", "dill", "joblib", "marshal"}
    package = Path(simsearch.__file__).parent
    sources = sorted(package.rglob("*.py"))
    assert len(sources) > 5
    for source in sources:
        with source.open("rb") as handle:
            for token in tokenize.tokenize(handle.readline):
                if token.type == tokenize.NAME:
                    assert "pickle" not in token.string.lower() and token.string not in banned, (
                        f"{source}:{token.start[0]}: {token.string}"
                    )
                if token.type == tokenize.STRING:
                    docstring = token.string.lstrip("rbfuRBFU").startswith(('"""', "'''"))
                    assert docstring or "pickle" not in token.string.lower(), (
                        f"{source}:{token.start[0]}: {token.string[:60]}"
                    )


# --- listing -------------------------------------------------------------------------------------------


def test_list_indexes_shows_good_and_damaged(built: Index, index_dir: Path, fake_encoder) -> None:
    Index.build(["other index"], "zeta", fake_encoder, index_dir=index_dir).close()
    (index_dir / "broken").mkdir()
    (index_dir / "broken" / MANIFEST).write_text("{ nope")
    (index_dir / "folder").mkdir()
    (index_dir / ".main.tmp-deadbeef").mkdir()  # a killed build's staging directory is not listed
    (index_dir / "stray.txt").write_text("not a directory")
    entries = {e["name"]: e for e in list_indexes(index_dir)}
    assert list(entries) == ["broken", "folder", "main", "zeta"]
    assert entries["main"]["count"] == 5 and "error" not in entries["main"]
    assert entries["zeta"]["count"] == 1 and entries["zeta"]["model"] == "fake/bag-of-words"
    assert "manifest" in entries["broken"]["error"]
    assert "not a simsearch index" in entries["folder"]["error"]


def test_list_indexes_of_a_missing_home(tmp_path: Path) -> None:
    assert list_indexes(tmp_path / "nowhere") == []


# --- write lock -------------------------------------------------------------------------------------


def hold_lock(path: Path) -> tuple[threading.Thread, threading.Event]:
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with locking.write_lock(path):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    assert held.wait(5)
    return thread, release


def test_second_writer_times_out(index_dir: Path) -> None:
    path = index_dir / "locked"
    path.mkdir(parents=True)  # the lock is the directory's own (issue #10)
    thread, release = hold_lock(path)
    try:
        with pytest.raises(LockTimeoutError) as caught:
            with locking.write_lock(path, timeout=0.2):
                pass
        message = str(caught.value)
        assert "'locked'" in message and "another process" in message and "0.2 s" in message
    finally:
        release.set()
        thread.join(5)
    with locking.write_lock(path, timeout=0.2):  # released: free again
        pass


def test_build_waits_for_the_lock_then_fails_cleanly(
    built: Index, index_dir: Path, fake_encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIMSEARCH_LOCK_TIMEOUT", "0.2")
    before = snapshot(built.path)
    thread, release = hold_lock(built.path)
    try:
        with pytest.raises(LockTimeoutError):
            Index.build(["x"], "main", fake_encoder, index_dir=index_dir, force=True)
    finally:
        release.set()
        thread.join(5)
    assert snapshot(built.path) == before and leftovers(index_dir) == []
