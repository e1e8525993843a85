"""One index, one answer: the plain index, 2, 3 and 8 shards (over threads or not) return the same
top-k in every mode, with and without filters, for any k: same ids, same order (ties by score,
then id), the same scores.

Random corpora mix English and Korean words, exact duplicate texts (ties), metadata fields that
only some documents (so only some shards) hold, and shards left with no documents at all."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from simsearch import Document, Index
from simsearch.errors import UnknownFieldError
from simsearch.search.searcher import LocalSearcher
from simsearch.store.shardset import ShardSet
from tests.fakes import FakeEncoder

WORDS = (
    "bread fresh stale keep kitchen oven garden water steak rest mulch cat dog train city river search "
    "engine query vector model 서울 지하철 교통카드 김치 맛있다 버스 환승 날씨 학교 도서관 커피"
).split()
WHERES = [
    None,
    {"lang": "ko"},
    {"lang": {"!=": "ko"}},
    {"year": {">=": 2015}},
    {"rare": "yes"},  # a field only a few documents (so only some shards) hold
    {"$or": [{"lang": "en"}, {"rare": "yes"}]},
    {"$not": {"year": {"<": 2012}}},
    {"lang": {"in": ["en", "de"]}, "year": {"<=": 2020}},
]


def corpus(seed: int, n: int) -> list[Document]:
    rng = random.Random(seed)
    docs: list[Document] = []
    for i in range(n):
        if docs and rng.random() < 0.15:  # an exact duplicate text: equal scores on both sides
            text = rng.choice(docs).text
        else:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 9)))
        metadata: dict = {}
        if rng.random() < 0.8:
            metadata["lang"] = (
                "ko" if any("\uac00" <= ch <= "\ud7a3" for ch in text) else rng.choice(["en", "de"])
            )
        if rng.random() < 0.7:
            metadata["year"] = rng.randint(2005, 2025)
        if rng.random() < 0.05:
            metadata["rare"] = "yes"
        docs.append(Document(f"doc-{rng.randrange(10**6):06d}-{i}", text, metadata))
    return docs


def same(got, want) -> None:
    assert [(h.rank, h.id) for h in got] == [(h.rank, h.id) for h in want]
    for g, w in zip(got, want):
        assert g.score == pytest.approx(w.score, abs=1e-9)
        assert (g.cosine is None) == (w.cosine is None) and (g.bm25 is None) == (w.bm25 is None)
        assert (g.cosine or 0.0) == pytest.approx(w.cosine or 0.0, abs=1e-9)
        assert (g.bm25 or 0.0) == pytest.approx(w.bm25 or 0.0, abs=1e-9)
        assert (g.text, g.metadata) == (w.text, w.metadata)


@pytest.mark.parametrize("n, seed", [(3, 1), (40, 2), (40, 3), (250, 4), (250, 5), (600, 6)])
def test_every_topology_answers_like_the_plain_index(tmp_path: Path, n: int, seed: int) -> None:
    docs = corpus(seed, n)
    home = tmp_path
    encoder = FakeEncoder()
    plain = Index.build(docs, home / "plain", encoder, index_type="flat")
    others = [Index.build(docs, home / f"s{s}", encoder, index_type="flat", shards=s) for s in (2, 3, 8)]
    sequential = Index.open(others[1].path, encoder=encoder)  # the same shards, one after another
    sequential._searcher = LocalSearcher(ShardSet.open(others[1].path), threads=1)
    rng = random.Random(seed)
    for _ in range(8):
        query = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
        k = rng.choice([1, 3, 10, 37, 100])
        where = rng.choice(WHERES)
        for mode in ("dense", "lexical", "hybrid"):
            try:
                want = plain.search(query, k, mode=mode, where=where)
            except UnknownFieldError:  # no document at all holds the field: every topology says so
                for index in (*others, sequential):
                    with pytest.raises(UnknownFieldError):
                        index.search(query, k, mode=mode, where=where)
                continue
            assert len(want) <= k
            for index in (*others, sequential):
                same(index.search(query, k, mode=mode, where=where), want)
    for index in (plain, *others):
        index.close()


def test_a_field_some_shards_lack_and_empty_shards_filter_like_plain(tmp_path: Path) -> None:
    """A filter on a field only one document holds, on 8 shards of 3 documents (5 shards empty)."""
    docs = [
        Document("a", "keep bread fresh", {"only_here": 1}),
        Document("b", "bread in the oven", {"lang": "en"}),
        Document("c", "서울 지하철 교통카드", {"lang": "ko"}),
    ]
    plain = Index.build(docs, tmp_path / "plain", FakeEncoder())
    sharded = Index.build(docs, tmp_path / "sharded", FakeEncoder(), shards=8)
    assert sum(1 for store in sharded.local_stores() if len(store) == 0) >= 5
    for where in ({"only_here": 1}, {"lang": "ko"}, {"only_here": {"exists": False}}):
        for mode in ("dense", "lexical", "hybrid"):
            same(
                sharded.search("bread", 5, mode=mode, where=where),
                plain.search("bread", 5, mode=mode, where=where),
            )
    assert [h.id for h in sharded.search("bread", 5, where={"only_here": 1})] == ["a"]
    sharded.delete(["a", "b", "c"])  # every shard empty: filters and searches answer nothing
    assert sharded.search("bread", 5, where={"lang": "ko"}) == [] and sharded.search("bread", 5) == []


def test_bm25_scores_use_the_whole_index_statistics(tmp_path: Path) -> None:
    """A term rare in one shard and common in another scores as in the plain index (not per shard)."""
    docs = [
        Document(f"d{i}", "bread " * (i % 3 + 1) + ("oven" if i % 4 == 0 else "garden"), {})
        for i in range(60)
    ]
    plain = Index.build(docs, tmp_path / "plain", FakeEncoder())
    sharded = Index.build(docs, tmp_path / "sharded", FakeEncoder(), shards=3)
    want = plain.search("oven bread", 20, mode="lexical")
    same(sharded.search("oven bread", 20, mode="lexical"), want)
    hybrid = sharded.search("how do I keep bread in the oven", 10)
    assert hybrid[0].score < 1.0 or hybrid[0].id == plain.search("how do I keep bread in the oven", 10)[0].id
