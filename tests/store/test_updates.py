"""Index.add / delete / compact / verify through the library (fake encoder, real FAISS and SQLite)."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing

import faiss
import numpy as np
import pytest

from tests.fakes import FakeEncoder
from simsearch.store.index_types import builder
from simsearch.errors import IndexCorruptError, IndexNotFoundError, InputError, ModelError
from simsearch.index import Index, load_encoder
from simsearch.readers import Document
from simsearch.store.generation import Store
from simsearch.store.write.writer import StoreWriter
from simsearch.store.faiss_file import to_blob
from simsearch.store.verify import verify_index


class CountingEncoder(FakeEncoder):
    """Records every text it encodes, to prove unchanged documents skip the model."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode_counting(self, texts, **kwargs):
        self.seen.extend([texts] if isinstance(texts, str) else texts)
        return super().encode_counting(texts, **kwargs)


def docs(n: int, prefix: str = "doc") -> list[Document]:
    return [Document(f"{prefix}{i}", f"{prefix} number {i} about cats and bread", {"i": i}) for i in range(n)]


def contents(index: Index) -> dict[str, tuple[str, dict]]:
    return {doc.id: (doc.text, doc.metadata) for doc in index.get(index.ids())}


@pytest.fixture
def encoder() -> CountingEncoder:
    return CountingEncoder()


@pytest.fixture
def index(tmp_path, encoder) -> Index:
    built = Index.build(docs(20), tmp_path / "idx", encoder)
    encoder.seen.clear()
    return built


def test_add_counts_added_updated_unchanged_and_encodes_only_changes(index, encoder):
    batch = [
        Document("doc0", "doc number 0 about cats and bread", {"i": 0}),  # unchanged
        Document("doc1", "a completely new text for one", {"i": 1}),  # text changed
        Document("doc2", "doc number 2 about cats and bread", {"i": 99}),  # metadata only
        Document("fresh", "a fresh document about dogs", {}),  # new
    ]
    stats = index.add(batch)
    assert (stats.added, stats.updated, stats.unchanged, stats.encoded) == (1, 2, 1, 2)
    assert sorted(encoder.seen) == ["a completely new text for one", "a fresh document about dogs"]
    assert len(index) == stats.count == 21
    stored = contents(index)
    assert stored["doc1"][0] == "a completely new text for one"
    assert stored["doc2"][1] == {"i": 99}
    hit = index.search("a fresh document about dogs", k=1)[0]
    assert hit.id == "fresh" and hit.score == pytest.approx(1.0, abs=1e-5)
    assert index.search("completely new text for one", k=1)[0].id == "doc1"
    assert verify_index(index.path, encoder=encoder).ok


def test_add_of_unchanged_input_writes_no_generation(index, encoder):
    before = index.manifest
    files = sorted(os.listdir(index.path))
    stats = index.add(docs(20))
    assert (stats.added, stats.updated, stats.unchanged, stats.encoded) == (0, 0, 20, 0)
    assert encoder.seen == []
    assert index.manifest == before and sorted(os.listdir(index.path)) == files


def test_plain_strings_get_content_ids_and_are_idempotent(index):
    first = index.add(["a loose string about bread"])
    second = index.add(["a loose string about bread"])
    assert (first.added, second.added, second.unchanged) == (1, 0, 1)


def test_duplicate_ids_in_one_add_input_write_nothing(index):
    before = index.manifest
    with pytest.raises(InputError, match=r"b.jsonl:2: duplicate document id 'x'"):
        index.add([Document("x", "one", {}, "b.jsonl:1"), Document("x", "two", {}, "b.jsonl:2")])
    assert Index.open(index.path).manifest == before
    assert not [f for f in os.listdir(index.path) if f.endswith(".tmp")]


def test_empty_add_input_is_an_error(index):
    with pytest.raises(InputError, match="no documents"):
        index.add([])


def test_delete_reports_unknown_ids_and_searches_forget_them(index):
    stats = index.delete(["doc3", "doc4", "nope", "doc3"])
    assert stats.deleted == 2 and stats.unknown == ("nope",) and stats.count == 18
    assert {h.id for h in index.search("doc number 3 about cats", k=50)}.isdisjoint({"doc3", "doc4"})
    nothing = index.delete(["nope"])
    assert nothing.deleted == 0 and nothing.generation == stats.generation


def test_delete_everything_then_add_again(index):
    index.delete([f"doc{i}" for i in range(20)])
    assert len(index) == 0 and index.search("cats", k=5) == []
    assert Index.open(index.path, encoder=FakeEncoder()).search("cats") == []
    assert verify_index(index.path, encoder=FakeEncoder()).ok
    index.add(docs(3, "again"))
    assert len(index) == 3 and index.search("again number 1", k=1)[0].id == "again1"


def test_compact_reclaims_space_and_keeps_content(tmp_path, encoder):
    big = [Document(f"d{i}", f"text {i} " + "padding words " * 400, {}) for i in range(200)]
    index = Index.build(big, tmp_path / "big", encoder)
    index.delete([f"d{i}" for i in range(150)])
    before = dict(contents(index))
    stats = index.compact()
    assert stats.bytes_after < stats.bytes_before / 2
    assert contents(index) == before and len(index) == 50
    assert verify_index(index.path, encoder=encoder).ok


def test_old_index_objects_keep_reading_their_generation(index):
    reader = Index.open(index.path, encoder=FakeEncoder())
    index.delete(["doc5"])
    index.add([Document("late", "a late arrival", {})])
    assert len(reader) == 20 and "doc5" in {h.id for h in reader.search("doc number 5", k=20)}
    assert len(Index.open(index.path)) == 20  # 20 - 1 + 1, from the new generation


def test_add_refuses_an_index_rebuilt_with_another_model(index, tmp_path):
    class OtherEncoder(FakeEncoder):
        model_id = "fake/other"

    stale = Index.open(index.path, encoder=FakeEncoder())
    Index.build(docs(5), index.path, OtherEncoder(), force=True)
    with pytest.raises(ModelError, match="cannot be mixed"):
        stale.add([Document("x", "some text", {})])
    with pytest.raises(ModelError, match="cannot be mixed"):
        Index.open(index.path, encoder=FakeEncoder())


def test_writes_on_a_missing_index_create_nothing(tmp_path):
    from simsearch.store.write.updates import delete_documents

    with pytest.raises(IndexNotFoundError):
        delete_documents(tmp_path / "home" / "ghost", ["a"])
    assert not (tmp_path / "home").exists()


def test_update_refuses_a_newer_format_and_deletes_nothing(index):
    manifest = json.loads((index.path / "manifest.json").read_text())
    manifest["format_version"] = 99
    (index.path / "manifest.json").write_text(json.dumps(manifest))
    files = sorted(os.listdir(index.path))
    with pytest.raises(IndexCorruptError, match="newer simsearch"):
        index.delete(["doc1"])
    assert sorted(os.listdir(index.path)) == files


def test_incremental_faiss_matches_a_rebuild(index):
    index.add([Document("doc1", "rewritten text", {}), Document("n1", "new one", {})])
    index.delete(["doc7"])
    with closing(Store.open(index.path)) as store:  # the generation the add and delete committed
        incremental = store.faiss.index
    with StoreWriter(index.path, update=True, rebuild=True) as writer:
        assert writer.previous is not None
        writer.commit(dict(writer.previous), builder("flat"))
    with closing(Store.open(index.path)) as store:
        rebuilt = store.faiss.index
    ids = np.sort(faiss.vector_to_array(incremental.id_map))  # type: ignore[attr-defined]  # faiss's stubs type every index as the base Index
    assert np.array_equal(ids, np.sort(faiss.vector_to_array(rebuilt.id_map)))  # type: ignore[attr-defined]  # faiss's stubs type every index as the base Index
    for rowid in ids:
        assert np.allclose(incremental.reconstruct(int(rowid)), rebuilt.reconstruct(int(rowid)))


def test_a_damaged_faiss_file_is_not_carried_into_the_next_generation(index, encoder):
    file = index.path / index.manifest["files"]["faiss"]["name"]
    data = bytearray(file.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = b"\x44" * 16  # same size: only the checksum can tell
    file.write_bytes(bytes(data))
    assert not verify_index(index.path, encoder=encoder).ok
    # issue #10: a write refuses damage it starts from (never patches it, never hides it) ...
    with pytest.raises(IndexCorruptError, match="verify idx --repair"):
        index.add([Document("late", "a late arrival", {})])
    assert not verify_index(index.path, encoder=encoder).ok
    # ... and the FAISS file is derived data: repair rebuilds it, then writes go on
    assert verify_index(index.path, encoder=encoder, repair=True).ok
    index.add([Document("late", "a late arrival", {})])
    report = verify_index(index.path, encoder=encoder)
    assert report.ok, report.problems


def test_index_types_that_cannot_remove_fall_back_to_a_rebuild(tmp_path, encoder):
    path = tmp_path / "hnsw"
    with StoreWriter(path) as writer:
        assert writer.db is not None
        vectors = encoder.encode([d.text for d in docs(30)])
        writer.db.executemany(
            "INSERT INTO documents (id, text, metadata, hash, vector) VALUES (?, ?, '{}', ?, ?)",
            [(d.id, d.text, "h", to_blob(v)) for d, v in zip(docs(30), vectors)],
        )
        fields = {
            "model": encoder.model_id,
            "pooling": encoder.pooling,
            "dim": encoder.dim,
            "model_path": "/nonexistent",
            "max_length": 64,
            "name": "hnsw",
        }
        writer.commit(fields, builder("HNSW8"))
    index = Index.open(path, encoder=encoder)
    index.delete(["doc1", "doc2"])
    index.add([Document("doc3", "changed", {}), Document("z", "zebra crossing", {})])
    assert len(index) == 29 and index.manifest["ann"]["factory"] == "IDMap2,HNSW8"
    assert index.search("zebra crossing", k=1)[0].id == "z"
    assert verify_index(path, encoder=encoder).ok


# -- verify and repair ---------------------------------------------------------------------------


def _faiss_file(index: Index):
    return index.path / index.manifest["files"]["faiss"]["name"]


def _self_contained(index: Index) -> faiss.Index:
    """The opened FAISS index, its file rewritten self-contained (the layout before format 2)."""
    with closing(Store.open(index.path)) as store:
        opened = store.faiss.index
    faiss.write_index(opened, str(_faiss_file(index)))
    manifest = json.loads((index.path / "manifest.json").read_text())
    manifest.pop("faiss_vectors", None)
    manifest["format_version"] = 1
    (index.path / "manifest.json").write_text(json.dumps(manifest))
    _rewrite_manifest_entry(index, "faiss")
    return opened


def _rewrite_manifest_entry(index: Index, role: str) -> None:
    """Make the manifest vouch for the current bytes of a file (damage that checksums miss)."""
    from simsearch.store.files import file_sha256

    manifest = json.loads((index.path / "manifest.json").read_text())
    file = index.path / manifest["files"][role]["name"]
    manifest["files"][role].update(size=file.stat().st_size, sha256=file_sha256(file))
    (index.path / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("damage", ["missing", "truncated", "flipped", "wrong-ids"])
def test_verify_finds_and_repair_fixes_faiss_damage(index, encoder, damage):
    file = _faiss_file(index)
    if damage == "missing":
        file.unlink()
    elif damage == "truncated":
        file.write_bytes(file.read_bytes()[:50])
    elif damage == "flipped":
        data = bytearray(file.read_bytes())
        data[-10] ^= 0xFF
        file.write_bytes(bytes(data))
    else:  # a well-formed FAISS file whose ids are not SQLite's
        other = _self_contained(index)
        other.remove_ids(np.array([1, 2], dtype=np.int64))  # type: ignore[arg-type]  # faiss's stubs leave out remove_ids(id array)
        other.add_with_ids(np.eye(1, 16, dtype=np.float32), np.array([999], dtype=np.int64))
        faiss.write_index(other, str(file))
        _rewrite_manifest_entry(index, "faiss")
    report = verify_index(index.path, encoder=encoder)
    assert not report.ok and all(p.repairable for p in report.problems)
    repaired = verify_index(index.path, encoder=encoder, repair=True)
    assert repaired.ok and repaired.repaired and repaired.generation == 2
    reopened = Index.open(index.path, encoder=encoder)
    assert len(reopened) == 20 and reopened.search("doc number 4 about cats and bread", k=1)[0].id == "doc4"


def test_verify_reports_sqlite_damage_as_not_repairable(index, encoder):
    file = index.path / index.manifest["files"]["sqlite"]["name"]
    data = bytearray(file.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    file.write_bytes(bytes(data))
    report = verify_index(index.path, encoder=encoder, repair=True)
    assert not report.ok and not report.repaired
    assert "rebuild the index from its sources" in report.summary()


def test_verify_catches_a_row_missing_from_faiss_even_with_good_checksums(index, encoder):
    # (an exact index written since format 2 holds no ids to lose: its file is the self-contained kind)
    file = _faiss_file(index)
    other = _self_contained(index)
    other.remove_ids(np.array([3], dtype=np.int64))  # type: ignore[arg-type]  # faiss's stubs leave out remove_ids(id array)
    faiss.write_index(other, str(file))
    _rewrite_manifest_entry(index, "faiss")
    report = verify_index(index.path, encoder=encoder)
    assert [p.name for p in report.problems] == ["faiss agrees with sqlite"]
    with pytest.raises(IndexCorruptError, match="verify --repair"):
        Index.open(index.path)


def test_verify_reports_an_unloadable_model(index):
    report = verify_index(index.path, load_encoder=load_encoder)  # the fake model cannot load
    assert [p.name for p in report.problems] == ["model"] and not report.problems[0].repairable


def test_verify_of_a_foreign_directory(tmp_path):
    (tmp_path / "x").mkdir()
    report = verify_index(tmp_path / "x")
    assert [p.name for p in report.problems] == ["manifest"]


def test_index_verify_reopens_after_repair(index, encoder):
    file = _faiss_file(index)
    data = bytearray(file.read_bytes())
    data[-4] ^= 0x01
    file.write_bytes(bytes(data))
    report = index.verify(repair=True)
    assert report.ok and index.manifest["generation"] == 2 and len(index) == 20


def test_fetch_maps_sqlite_damage_to_an_index_error(index):
    store = index.local_stores()[0]
    store.db.close()
    store.db = sqlite3.connect(":memory:")
    with pytest.raises(IndexCorruptError, match="damaged SQLite"):
        index.search("cats")


def test_a_reopened_index_keeps_its_hub_model_id(tmp_path, tiny_bert, monkeypatch):
    """An index built from a hub id (here: a local snapshot under that id) reopens its model by
    the stored path but must still call it by the id it was built with, or add/query refuse it."""
    from simsearch.encode.torch_encoder import Encoder
    from simsearch.encode.models import ModelSource

    monkeypatch.setenv("SIMSEARCH_QUERY_BACKEND", "torch")  # the torch path reloads the model
    encoder = Encoder(ModelSource("org/tiny-bert", tiny_bert), "mean")
    index = Index.build(["red apples", "green pears"], tmp_path / "hub", encoder=encoder)
    assert index.manifest["model"] == "org/tiny-bert"
    reopened = Index.open(tmp_path / "hub")
    assert reopened.encoder.model_id == "org/tiny-bert"
    stats = reopened.add([Document("3", "yellow bananas", {})])
    assert stats.added == 1 and len(Index.open(tmp_path / "hub")) == 3


def test_additions_grow_an_hnsw_index_in_place(tmp_path, encoder, monkeypatch):
    """Adding documents to HNSW (which cannot remove vectors) inserts them, without a rebuild."""
    import simsearch.store.index_types

    index = Index.build(docs(40), tmp_path / "grow", encoder, index_type="hnsw")

    def no_rebuild(*args, **kwargs):
        raise AssertionError("an addition rebuilt the HNSW index")

    monkeypatch.setattr(simsearch.store.index_types, "build_index", no_rebuild)
    stats = index.add([Document("z", "zebra crossing", {})])
    assert stats.added == 1 and len(index) == 41
    assert index.search("zebra crossing", k=1)[0].id == "z"
    assert verify_index(index.path, encoder=encoder).ok
    monkeypatch.undo()
    index.delete(["z"])  # a removal still needs (and gets) the rebuild
    assert len(index) == 40 and verify_index(index.path, encoder=encoder).ok


def test_an_auto_index_growing_past_the_exact_limit_becomes_ann(tmp_path, encoder, monkeypatch):
    import simsearch.store.index_types

    monkeypatch.setattr(simsearch.store.index_types, "AUTO_EXACT_MAX", 40)
    index = Index.build(docs(40), tmp_path / "auto", encoder)
    assert index.manifest["index_type"] == "flat"
    index.add([Document("late", "one too many", {})])
    assert index.manifest["index_type"] == "hnsw" and index.manifest["ann"]["requested"] == "auto"
    assert index.manifest["ann"]["search_params"]  # tuned again
