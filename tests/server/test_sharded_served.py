"""`simsearch serve` over a sharded index (no Ray): the server's state answers like the library,
and a write through the server lands in the right shard and is searched at once."""

from __future__ import annotations

from pathlib import Path

from simsearch import Document, Index
from simsearch.server.state import Served
from simsearch.store.shards import read_top_manifest, shard_of


def test_served_sharded_index_searches_and_writes(index_dir: Path, tiny_bert: Path) -> None:
    from simsearch.encode.torch_encoder import Encoder

    encoder = Encoder(str(tiny_bert))
    texts = ["the cat sat on the mat", "keep bread fresh", "the dog is good", "a fast search engine"]
    docs = [Document(f"d{i}", f"{texts[i % 4]} {i}", {"i": i}) for i in range(24)]
    Index.build(docs, "sh", encoder, index_dir=index_dir, shards=3)
    served = Served(["sh"], str(index_dir))
    try:
        target = served.indexes["sh"]
        assert target.manifest["shards"]["count"] == 3
        local = Index.open("sh", index_dir=index_dir, encoder=encoder)
        got = target.search(["keep bread fresh", "the dog"], 5, None)
        want = local.search(["keep bread fresh", "the dog"], k=5)
        assert [[h.id for h in hits] for hits in got] == [[h.id for h in hits] for hits in want]
        stats = target.add([Document("new", "a brand new fast engine", {})])
        assert stats["added"] == 1 and target.manifest["count"] == 25
        top = read_top_manifest(index_dir / "sh")
        assert (
            top["shards"]["parts"][shard_of("new", 3)]["count"]
            == sum(1 for d in docs if shard_of(d.id, 3) == shard_of("new", 3)) + 1
        )
        assert "new" in [h.id for h in target.search(["a brand new fast engine"], 3, None)[0]]
        assert target.delete(["new", "d0"])["deleted"] == 2 and target.manifest["count"] == 23
    finally:
        served.close()
