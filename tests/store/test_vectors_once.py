"""Each vector stored once (issue 26, item 3): FAISS files of exact and HNSW-over-flat indexes leave
their float32 vectors to SQLite, which refills them when the index is opened (format 2).

Every promise of the store still holds: searches answer as a self-contained FAISS file would
(the layout before format 2, which still opens), updates (incremental and rebuilt), compaction,
verify and ``verify --repair``, sharded indexes.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import faiss
import numpy as np
import pytest

from simsearch.errors import IndexCorruptError
from simsearch.index import Index
from simsearch.readers import Document
from simsearch.store.faiss_vectors import attach, detachable, serialize_detached
from simsearch.store.files import file_sha256
from simsearch.store.generation import SCHEMA, Store
from simsearch.store.manifest import read_manifest
from simsearch.store.verify import verify_index
from tests.fakes import FakeEncoder

DIM = FakeEncoder.dim
QUERIES = ["cats and bread", "number 7 about dogs", "rain on the roof", "bread number 123"]


def docs(n: int, prefix: str = "doc") -> list[Document]:
    words = ("cats", "bread", "dogs", "rain", "roof", "tea", "snow", "boats")
    return [
        Document(
            f"{prefix}{i}", f"{prefix} number {i} about {words[i % 8]} and {words[(i * 3) % 7]}", {"i": i}
        )
        for i in range(n)
    ]


def self_contained(path: Path) -> None:
    """Rewrite an index's current generation in the layout before format 2 (vectors in FAISS too)."""
    with closing(Store.open(path)) as store:
        manifest = store.manifest.to_dict()
        file = path / manifest["files"]["faiss"]["name"]
        faiss.write_index(store.faiss.index, str(file))
    manifest.pop("faiss_vectors")
    manifest["format_version"] = 1
    manifest["files"]["faiss"].update(size=file.stat().st_size, sha256=file_sha256(file))
    (path / "manifest.json").write_text(json.dumps(manifest))


def hits(index: Index, **kwargs) -> list[list[tuple[str, float]]]:
    return [[(h.id, h.score) for h in index.search(q, k=10, mode="dense", **kwargs)] for q in QUERIES]


def same_hits(a: list[list[tuple[str, float]]], b: list[list[tuple[str, float]]]) -> None:
    assert [[i for i, _ in row] for row in a] == [[i for i, _ in row] for row in b]
    np.testing.assert_allclose(
        [[s for _, s in row] for row in a], [[s for _, s in row] for row in b], atol=1e-6
    )


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_the_faiss_file_holds_no_vectors_and_searches_answer_as_before(tmp_path, index_type):
    encoder = FakeEncoder()
    index = Index.build(docs(300), tmp_path / "new", encoder, index_type=index_type)
    manifest = read_manifest(index.path)
    assert manifest["faiss_vectors"] == "sqlite" and manifest.format_version == 2
    raw = faiss.read_index(str(index.path / manifest.files["faiss"].name))
    assert raw.ntotal == (0 if index_type == "flat" else 300)
    new = hits(index)
    filtered = hits(index, where={"i": {"<": 40}})
    index.close()
    self_contained(index.path)  # the same generation, as the code before format 2 wrote it
    old = Index.open(index.path, encoder=encoder)
    assert old.manifest["format_version"] == 1 and "faiss_vectors" not in old.manifest
    grown = old.manifest["files"]["faiss"]["size"] - manifest.files["faiss"].size
    assert 300 * DIM * 4 <= grown <= 300 * DIM * 4 + 300 * 8 + 200  # the float32 copy (flat: + ids)
    same_hits(hits(old), new)
    same_hits(hits(old, where={"i": {"<": 40}}), filtered)
    with closing(Store.open(index.path)) as before, closing(Store.open(tmp_path / "new")) as after:
        rowids = np.array([5, 1, 300, 77], dtype=np.int64)
        np.testing.assert_array_equal(before.vectors_of(rowids), after.vectors_of(rowids))
    old.close()


def test_an_old_layout_index_takes_updates_into_the_new_layout(tmp_path):
    encoder = FakeEncoder()
    index = Index.build(docs(50), tmp_path / "idx", encoder, index_type="flat")
    index.close()
    self_contained(index.path)
    old = Index.open(index.path, encoder=encoder)
    old.add(docs(5, prefix="new"))  # the incremental path starts from the self-contained file
    assert old.manifest["faiss_vectors"] == "sqlite" and old.manifest["format_version"] == 2
    assert verify_index(old.path, encoder=encoder).ok
    assert old.search("new number 3 about rain and rain", k=1, mode="dense")[0].id == "new3"


def test_hnsw_add_delete_compact_verify_repair(tmp_path):
    encoder = FakeEncoder()
    index = Index.build(docs(200), tmp_path / "idx", encoder, index_type="hnsw")
    index.add(docs(20, prefix="more"))  # pure additions: the graph grows in place (previous vectors refilled)
    assert index.manifest["faiss_vectors"] == "sqlite" and len(index) == 220
    assert verify_index(index.path, encoder=encoder).ok
    index.delete(["doc3", "more4"])  # HNSW cannot remove: rebuilt from the stored vectors
    index.add([Document("doc5", "rewritten: snow and boats", {})])  # a replaced vector
    index.compact()
    assert len(index) == 218 and verify_index(index.path, encoder=encoder).ok
    expected = hits(index)
    assert "doc3" not in {i for row in expected for i, _ in row}
    file = index.path / index.manifest["files"]["faiss"]["name"]
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    report = verify_index(index.path, encoder=encoder)
    assert not report.ok and all(p.repairable for p in report.problems)
    repaired = verify_index(index.path, encoder=encoder, repair=True)
    assert repaired.ok and repaired.repaired
    reopened = Index.open(index.path, encoder=encoder)
    assert reopened.manifest["faiss_vectors"] == "sqlite"
    assert [[i for i, _ in row] for row in hits(reopened)] == [[i for i, _ in row] for row in expected]


def test_a_sharded_index_keeps_each_shards_vectors_once(tmp_path):
    encoder = FakeEncoder()
    index = Index.build(docs(120), tmp_path / "sh", encoder, index_type="flat", shards=3)
    shards = sorted(p for p in index.path.iterdir() if p.is_dir())
    assert len(shards) == 3
    for shard in shards:
        assert read_manifest(shard)["faiss_vectors"] == "sqlite"
    plain = Index.build(docs(120), tmp_path / "plain", encoder, index_type="flat")
    same_hits(hits(index), hits(plain))
    index.delete(["doc1", "doc2"])
    index.add(docs(3, prefix="x"))
    assert len(index) == 121 and verify_index(index.path, encoder=encoder).ok


def _table(path: Path, rows: list[tuple[int, np.ndarray]]) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    db.executemany(
        "INSERT INTO documents (rowid, id, text, metadata, hash, vector) VALUES (?, ?, '', '{}', '', ?)",
        [(r, f"d{r}", v.astype("<f4").tobytes()) for r, v in rows],
    )
    db.commit()
    return db


def test_hnsw_storage_is_refilled_in_the_graphs_node_order(tmp_path):
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((500, DIM)).astype(np.float32)
    rowids = rng.permutation(np.arange(10, 1010, 2))  # node i holds row rowids[i]: not sorted
    index = faiss.index_factory(DIM, "IDMap2,HNSW16", faiss.METRIC_INNER_PRODUCT)
    index.add_with_ids(vectors, rowids)
    assert detachable(index)
    data = serialize_detached(index)
    assert len(data) < len(faiss.serialize_index(index)) - 500 * DIM * 4 + 100
    db = _table(tmp_path / "d.sqlite", list(zip(rowids.tolist(), vectors)))
    read = faiss.deserialize_index(data)
    attach(read, db, "test")
    queries = rng.standard_normal((20, DIM)).astype(np.float32)
    want, got = index.search(queries, 10), read.search(queries, 10)
    np.testing.assert_array_equal(want[1], got[1])
    np.testing.assert_allclose(want[0], got[0], atol=1e-6)
    np.testing.assert_array_equal(read.reconstruct(int(rowids[7])), vectors[7])
    db.execute("DELETE FROM documents WHERE rowid = ?", (int(rowids[0]),))
    db.execute(
        "INSERT INTO documents VALUES (5, 'extra', '', '{}', '', ?)", (vectors[0].astype("<f4").tobytes(),)
    )
    db.commit()
    with pytest.raises(IndexCorruptError, match="disagree.*verify --repair"):
        attach(faiss.deserialize_index(data), db, "test")


def test_a_compressed_index_keeps_its_own_codes(tmp_path):
    encoder = FakeEncoder()
    index = Index.build(docs(300), tmp_path / "sq", encoder, index_type="IDMap2,SQ8")
    assert "faiss_vectors" not in index.manifest and index.manifest["format_version"] == 1
    assert not detachable(faiss.read_index(str(index.path / index.manifest["files"]["faiss"]["name"])))


def test_a_manifest_whose_format_does_not_match_its_layout_is_refused(tmp_path):
    index = Index.build(docs(10), tmp_path / "idx", FakeEncoder(), index_type="flat")
    manifest = json.loads((index.path / "manifest.json").read_text())
    (index.path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1}))
    with pytest.raises(IndexCorruptError, match="does not match faiss_vectors"):
        read_manifest(index.path)


def test_a_detached_hnsw_file_is_never_searched_without_its_vectors(tmp_path):
    index = Index.build(docs(100), tmp_path / "idx", FakeEncoder(), index_type="hnsw")
    manifest = json.loads((index.path / "manifest.json").read_text())
    manifest.pop("faiss_vectors")
    (index.path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1}))
    with pytest.raises(IndexCorruptError, match="holds no vectors"):
        Store.open(index.path)


def test_sqlite_pages_hold_several_documents_and_compaction_moves_old_files_to_them(tmp_path):
    from simsearch.store.write.writer import PAGE_SIZE

    def page_size(path: Path) -> int:
        with closing(sqlite3.connect(path / read_manifest(path).files["sqlite"].name)) as db:
            return int(db.execute("PRAGMA page_size").fetchone()[0])

    index = Index.build(docs(30), tmp_path / "idx", FakeEncoder(), index_type="flat")
    assert page_size(index.path) == PAGE_SIZE
    index.close()
    with closing(Store.open(index.path)) as store:  # an older file: 4 KiB pages
        file = index.path / store.manifest.files["sqlite"].name
    with closing(sqlite3.connect(file)) as db:
        db.execute("PRAGMA page_size = 4096")
        db.execute("VACUUM")
    manifest = json.loads((index.path / "manifest.json").read_text())
    manifest["files"]["sqlite"].update(size=file.stat().st_size, sha256=file_sha256(file))
    (index.path / "manifest.json").write_text(json.dumps(manifest))
    old = Index.open(index.path, encoder=FakeEncoder())
    assert page_size(old.path) == 4096
    old.delete(["doc1"])
    assert page_size(old.path) == 4096  # an update copies the file as it is
    old.compact()
    assert page_size(old.path) == PAGE_SIZE and verify_index(old.path, encoder=FakeEncoder()).ok


def test_a_shard_actors_memory_reservation_counts_the_vectors_it_puts_back(tmp_path):
    from simsearch.scale.replicas import MARGIN, ShardSpec

    index = Index.build(docs(40), tmp_path / "idx", FakeEncoder(), index_type="flat")
    on_disk = sum(f.stat().st_size for f in index.path.iterdir() if f.is_file())
    assert ShardSpec.of(0, str(index.path), None).memory == on_disk + 40 * DIM * 4 + MARGIN
    index.close()
    self_contained(index.path)  # the vectors are in the FAISS file, counted with it
    on_disk = sum(f.stat().st_size for f in index.path.iterdir() if f.is_file())
    assert ShardSpec.of(0, str(index.path), None).memory == on_disk + MARGIN
