"""Sharded indexes through the library: layout, routing, add/delete/compact/verify, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simsearch import Document, Index, IndexCorruptError, IndexExistsError, InputError
from simsearch.store import shards as layout
from simsearch.store.manifest import read_manifest

TEXTS = [
    "the cat sat on the mat",
    "fresh bread keeps",
    "a fast search engine",
    "korean english model",
    "the dog is good",
    "slow vector query",
    "stale bread is bad",
    "long document token",
]


def docs(n: int = 40, prefix: str = "d") -> list[Document]:
    return [Document(f"{prefix}{i}", f"{TEXTS[i % len(TEXTS)]} {i}", {"n": i}) for i in range(n)]


@pytest.fixture
def sharded(index_dir: Path, fake_encoder) -> Index:
    index = Index.build(docs(), "sh", fake_encoder, index_dir=index_dir, shards=3)
    assert index.shards > 1
    return index


def top(index_dir: Path, name: str = "sh") -> dict:
    return json.loads((index_dir / name / "manifest.json").read_text())


def shard_ids(path: Path, part: dict) -> set[str]:
    index = Index.open(path / part["dir"])
    try:
        return set(index.ids())
    finally:
        index.close()


def test_layout_and_routing(sharded: Index, index_dir: Path) -> None:
    manifest = top(index_dir)
    assert manifest["format_version"] == layout.SHARDED_FORMAT_VERSION and manifest["count"] == 40
    parts = manifest["shards"]["parts"]
    assert [p["dir"] for p in parts] == [f"shard-00{i}.g000001" for i in range(3)]
    assert sum(p["count"] for p in parts) == 40
    for number, part in enumerate(parts):
        ids = shard_ids(index_dir / "sh", part)
        assert ids and all(layout.shard_of(i, 3) == number for i in ids)
        assert read_manifest(index_dir / "sh" / part["dir"])["count"] == part["count"]
    assert sorted(p.name for p in (index_dir / "sh").iterdir()) == ["manifest.json"] + [
        p["dir"] for p in parts
    ]
    assert not list(index_dir.glob(".sh.tmp-*"))


def test_shard_of_is_stable() -> None:
    # fixed values: the routing must never change between versions, processes or machines
    assert [layout.shard_of(i, 7) for i in ("a", "b", "doc-1", "서울")] == [
        layout.shard_of(i, 7) for i in ("a", "b", "doc-1", "서울")
    ]
    assert layout.shard_of("a", 1) == 0
    assert {layout.shard_of(f"id{i}", 4) for i in range(200)} == {0, 1, 2, 3}
    assert (
        layout.shard_of("doc-1", 1000)
        == int.from_bytes(__import__("hashlib").blake2b(b"doc-1", digest_size=8).digest(), "big") % 1000
    )


def test_search_and_reopen(sharded: Index, index_dir: Path) -> None:
    hits = sharded.search("fresh bread", k=5)
    assert len(hits) == 5 and [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert hits[0].text.startswith("fresh bread")
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    again = Index.open("sh", index_dir=index_dir, encoder=sharded.encoder)
    assert [h.id for h in again.search("fresh bread", k=5)] == [h.id for h in hits]
    both = sharded.search(["fresh bread", "the cat sat on the mat"], k=100, min_score=0.5)
    assert both[1][0].text.startswith("the cat sat") and all(
        h.cosine is not None and h.cosine >= 0.5 for h in both[1]
    )


def test_add_routes_and_touches_only_changed_shards(sharded: Index, index_dir: Path) -> None:
    before = top(index_dir)["shards"]["parts"]
    target = layout.shard_of("new-1", 3)
    stats = sharded.add([Document("new-1", "a brand new slow engine", {}), docs(1)[0]])
    assert (stats.added, stats.unchanged, stats.count, stats.generation) == (1, 1, 41, 2)
    after = top(index_dir)["shards"]["parts"]
    for number, (old, new) in enumerate(zip(before, after)):
        if number == target:
            assert new["dir"] == f"shard-00{number}.g000002" and new["count"] == old["count"] + 1
            assert "new-1" in shard_ids(index_dir / "sh", new)
        else:
            assert new == old  # untouched shards keep their directory
    assert not (index_dir / "sh" / before[target]["dir"]).exists()  # replaced, then removed
    assert sharded.search("brand new slow engine", k=1)[0].id == "new-1"
    upd = sharded.add([Document("new-1", "now about cats", {"v": 2})])
    assert (upd.updated, upd.count) == (1, 41)
    assert Index.open("sh", index_dir=index_dir, encoder=sharded.encoder).search("now about cats", k=1)[
        0
    ].metadata == {"v": 2}


def test_add_duplicate_in_input_writes_nothing(sharded: Index, index_dir: Path) -> None:
    before = top(index_dir)
    with pytest.raises(InputError, match="duplicate document id 'x'"):
        sharded.add([Document("x", "one", {}), Document("y", "two", {}), Document("x", "three", {})])
    assert top(index_dir) == before
    assert sorted(p.name for p in (index_dir / "sh").iterdir()) == ["manifest.json"] + [
        p["dir"] for p in before["shards"]["parts"]
    ]


def test_delete_and_unknown(sharded: Index, index_dir: Path) -> None:
    stats = sharded.delete(["d1", "d2", "nope", "d1"])
    assert (stats.deleted, stats.unknown, stats.count) == (2, ("nope",), 38)
    assert "d1" not in {h.id for h in sharded.search("fresh bread keeps", k=40)}
    nothing = sharded.delete(["nope"])
    assert (nothing.deleted, nothing.generation) == (0, stats.generation)
    for bad in (["\ud800"], [1.5]):  # refused as a plain index refuses them, nothing written
        with pytest.raises(InputError, match="id 1"):
            sharded.delete(bad)  # what a caller may pass anyway
    assert sharded.delete([7]).unknown == ("7",)  # an int id: its decimal string
    assert len(sharded) == 38


def test_compact_and_verify_repair(sharded: Index, index_dir: Path) -> None:
    sharded.delete([f"d{i}" for i in range(10)])
    stats = sharded.compact()
    assert stats.count == 30 and stats.bytes_after <= stats.bytes_before
    assert sharded.verify().ok
    part = top(index_dir)["shards"]["parts"][1]
    faiss_file = (
        index_dir
        / "sh"
        / part["dir"]
        / read_manifest(index_dir / "sh" / part["dir"])["files"]["faiss"]["name"]
    )
    data = bytearray(faiss_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # damaged, same size (its last bytes are an empty id map's zeros)
    faiss_file.write_bytes(bytes(data))
    report = sharded.verify()
    assert not report.ok and all(p.repairable for p in report.problems)
    assert any(p.name.startswith("shard 1 ") for p in report.problems)
    fixed = sharded.verify(repair=True)
    assert fixed.ok and fixed.repaired and fixed.count == 30
    assert len(Index.open("sh", index_dir=index_dir, encoder=sharded.encoder).search("cat", k=50)) == 30


def test_verify_finds_a_replaced_shard_and_missing_dir(sharded: Index, index_dir: Path) -> None:
    part = top(index_dir)["shards"]["parts"][0]
    manifest_file = index_dir / "sh" / part["dir"] / "manifest.json"
    data = json.loads(manifest_file.read_text())
    manifest_file.write_text(json.dumps({**data, "updated": "tampered"}))
    report = sharded.verify()
    assert not report.ok and report.problems[0].name == "shard 0 manifest"
    with pytest.raises(IndexCorruptError, match="checksum differs from the top manifest"):
        Index.open("sh", index_dir=index_dir, encoder=sharded.encoder)
    assert not sharded.verify(repair=True).repaired  # not repairable: rebuild


def test_failed_write_leaves_previous_state(sharded: Index, index_dir: Path, monkeypatch) -> None:
    before = top(index_dir)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process died between the shard commits and the top swap

    monkeypatch.setattr("simsearch.store.write.sharded.commit_top", killed)
    with pytest.raises(KeyboardInterrupt):
        sharded.add([Document(f"k{i}", f"killed write {i}", {}) for i in range(20)])
    assert top(index_dir) == before
    monkeypatch.undo()
    assert Index.open("sh", index_dir=index_dir, encoder=sharded.encoder).verify().ok
    assert (
        len(Index.open("sh", index_dir=index_dir, encoder=sharded.encoder).search("killed write", k=100))
        == 40
    )


def test_force_rebuild_between_plain_and_sharded(sharded: Index, index_dir: Path, fake_encoder) -> None:
    with pytest.raises(IndexExistsError):
        Index.build(docs(5), "sh", fake_encoder, index_dir=index_dir, shards=2)
    with pytest.raises(InputError, match="duplicate"):
        Index.build(docs(5) + docs(1), "sh", fake_encoder, index_dir=index_dir, shards=2, force=True)
    assert (
        top(index_dir)["count"] == 40
        and Index.open("sh", index_dir=index_dir, encoder=sharded.encoder).verify().ok
    )
    plain = Index.build(docs(7), "sh", fake_encoder, index_dir=index_dir, force=True)
    assert type(plain) is Index and "shards" not in top(index_dir)
    assert not [p for p in (index_dir / "sh").iterdir() if p.name.startswith(("shard-", ".shard-"))]
    again = Index.build(docs(9), "sh", fake_encoder, index_dir=index_dir, shards=4, force=True)
    assert (again.shards > 1) and len(again) == 9 and top(index_dir)["shards"]["count"] == 4
    assert not [p for p in (index_dir / "sh").iterdir() if p.name.startswith(("docs-", "index-"))]
    assert again.verify().ok


def test_bad_shard_counts_and_old_indexes(index_dir: Path, fake_encoder) -> None:
    for bad in (0, -1, 5000, True):
        with pytest.raises(InputError, match="shards must be"):
            Index.build(docs(3), "bad", fake_encoder, index_dir=index_dir, shards=bad)
    assert not (index_dir / "bad").exists()
    plain = Index.build(docs(3), "plain", fake_encoder, index_dir=index_dir)
    assert read_manifest(index_dir / "plain")["format_version"] == 2 and "shards" not in top(
        index_dir, "plain"
    )
    assert type(Index.open("plain", index_dir=index_dir)) is Index and len(plain) == 3


def test_empty_shards_are_fine(index_dir: Path, fake_encoder) -> None:
    index = Index.build(docs(2), "few", fake_encoder, index_dir=index_dir, shards=8)
    assert sorted(p["count"] for p in top(index_dir, "few")["shards"]["parts"])[-2:] != [0, 0]
    assert len(index.search("cat", k=10)) == 2 and index.verify().ok
    index.delete(["d0", "d1"])
    assert index.search("cat", k=10) == [] and len(index) == 0


def test_ids_get_and_vectors_match_a_plain_index(sharded: Index, index_dir: Path, fake_encoder) -> None:
    plain = Index.build(docs(), "plain", fake_encoder, index_dir=index_dir)
    assert sorted(sharded.ids()) == sorted(plain.ids()) and len(sharded.ids()) == 40
    wanted = ["d7", "nope", "d0", "d33", "d7", "\ud800"]  # order kept, repeats once, unknowns skipped
    assert sharded.get(wanted) == plain.get(wanted)
    assert [doc.id for doc in sharded.get(wanted)] == ["d7", "d0", "d33"]
    assert sharded.get(wanted)[0].metadata == {"n": 7}
    found, vectors = sharded.get_vectors(wanted)
    plain_found, plain_vectors = plain.get_vectors(wanted)
    assert found == plain_found == ["d7", "d0", "d33"]
    assert vectors.dtype == "float32" and vectors.shape == (3, fake_encoder.dim)
    assert vectors.tobytes() == plain_vectors.tobytes()
    assert sharded.get_vectors([])[1].shape == (0, fake_encoder.dim)
    sharded.delete(["d0"])
    assert "d0" not in sharded.ids() and [doc.id for doc in sharded.get(wanted)] == ["d7", "d33"]


def test_reindex_lexical_adds_the_part_to_every_shard(index_dir: Path, fake_encoder) -> None:
    from simsearch import QueryError

    index = Index.build(docs(), "old", fake_encoder, index_dir=index_dir, shards=3, lexical=False)
    assert "lexical" not in index.manifest
    with pytest.raises(QueryError, match="reindex-lexical"):
        index.search("bread", k=3, mode="lexical")
    generation = index.reindex_lexical()
    reopened = Index.open("old", index_dir=index_dir, encoder=fake_encoder)
    assert reopened.manifest["generation"] == generation == 2 and "lexical" in reopened.manifest
    for part in reopened.manifest["shards"]["parts"]:
        assert "lexical" in read_manifest(index_dir / "old" / part["dir"])
    found = reopened.search("stale bread", k=40, mode="lexical")
    assert {hit.id for hit in found} == {f"d{i}" for i in range(40) if i % len(TEXTS) in (1, 6)}
    assert reopened.verify().ok
