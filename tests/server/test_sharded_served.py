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


def test_a_served_sharded_index_answers_concurrent_mixed_requests_like_the_plain_one(
    tmp_path: Path, bundled_encoder
) -> None:
    """200 requests at once, dense (batched on the model's thread), hybrid, lexical and filtered,
    on a served 3-shard index: none hangs (the model's thread never waits on a shard thread that
    waits on the model), and each answers with the plain index's hits."""
    import json
    import urllib.parse
    from concurrent.futures import ThreadPoolExecutor

    from tests.server.helpers import call, start_server

    home = tmp_path / "home"
    words = (
        "bread fresh stale oven garden water steak rest mulch train city river 서울 지하철 버스 김치".split()
    )
    docs = [
        Document(
            f"d{i:03d}",
            " ".join(words[(i * 7 + j * 3) % len(words)] for j in range(2 + i % 5)),
            {"lang": ["en", "ko"][i % 2], "i": i},
        )
        for i in range(90)
    ]
    Index.build(docs, "plain", bundled_encoder, index_dir=home)
    Index.build(docs, "sh", bundled_encoder, index_dir=home, shards=3)
    plain = Index.open("plain", index_dir=home)
    asks = []
    for n in range(200):
        query = " ".join(words[(n * 5 + j) % len(words)] for j in range(1 + n % 3))
        mode = ["dense", "hybrid", "lexical", "dense", "hybrid"][n % 5]
        where = [None, {"lang": "en"}, {"i": {">=": 30}}, None][n % 4]
        if mode == "lexical" and where is None:
            where = {"lang": "ko"}
        asks.append((query, mode, where, 1 + n % 12))
    server = start_server(home, ["sh"], log=tmp_path / "serve.log", timeout=300)
    try:

        def ask(item):
            query, mode, where, k = item
            params = {"query": query, "k": k, "mode": mode, **({"where": json.dumps(where)} if where else {})}
            return call(f"{server.url}/indexes/sh/search?" + urllib.parse.urlencode(params))

        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(ask, asks, timeout=600))
        for (query, mode, where, k), answer in zip(asks, answers):
            assert answer.status == 200, answer.body
            want = plain.search(query, k, mode=mode, where=where)
            got = answer.json()["hits"]
            assert len(got) == len(want), (query, mode, where)
            for g, w in zip(got, want):  # the server encodes in batches: cosines agree to ~1e-6
                assert abs(g["score"] - w.score) <= 1e-4, (query, mode, where)
                assert g["id"] in {x.id for x in want if abs(x.score - w.score) <= 1e-4}, (query, mode, where)
        assert call(f"{server.url}/health").status == 200
    finally:
        assert server.stop() == 0, server.stderr()
