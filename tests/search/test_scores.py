"""What a hybrid score tells a user (issue 23 item 10): a relevance from 0 to 1, in the ranking's
order, comparable across queries, 1 only for a document that repeats the query, never negative,
and the same whatever the topology. The ranking itself is the fusion's (tests/test_fusion.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simsearch import Document, Index
from tests.fakes import FakeEncoder

TWO = [
    Document("bread", "how to keep bread fresh in a paper bag", {}),
    Document("subway", "the subway map of seoul at night", {}),
]


def test_a_two_document_index_shows_how_well_the_top_matches(tmp_path: Path) -> None:
    """The fused value is 1 for the top of any query; the score is not."""
    index = Index.build(TWO, tmp_path / "two", FakeEncoder())
    partial = index.search("keep bread fresh", k=2)
    assert [h.id for h in partial] == ["bread", "subway"]
    assert 0.0 <= partial[1].score < partial[0].score < 1.0
    exact = index.search("how to keep bread fresh in a paper bag", k=2)
    assert exact[0].id == "bread" and exact[0].score == pytest.approx(1.0, abs=1e-6)
    unrelated = index.search("zzz qqq", k=2)  # no word matches: the cosine alone, floored at 0
    assert all(0.0 <= h.score == max(0.0, h.cosine or 0.0) for h in unrelated)


def test_scores_follow_the_ranks_are_never_negative_and_compare_across_queries(tmp_path: Path) -> None:
    docs = [
        Document(f"d{i}", " ".join(words), {})
        for i, words in enumerate(
            [
                ("bread", "fresh", "oven", "kitchen"),
                ("bread", "stale", "garden"),
                ("train", "city", "river", "night"),
                ("coffee", "library", "school"),
                ("oven", "steak", "rest", "kitchen", "water"),
                ("garden", "mulch", "water", "dog"),
                ("search", "engine", "query", "vector"),
                ("cat", "dog", "river"),
            ]
        )
    ]
    index = Index.build(docs, tmp_path / "eight", FakeEncoder())
    queries = ["bread fresh oven kitchen", "stale bread", "river", "vector search engine", "dog mulch", "zzz"]
    for hits in index.search(queries, k=8):
        scores = [h.score for h in hits]
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    strong = index.search("bread fresh oven kitchen", k=1)[0]  # d0 holds every word
    weak = index.search("kitchen bread river engine zzz", k=1)[0]  # no document holds most of them
    assert strong.id == "d0" and strong.score == pytest.approx(1.0, abs=1e-6)
    assert weak.score < 0.75 * strong.score


@pytest.mark.parametrize("shards", [2, 3])
def test_the_scores_are_the_plain_indexs_in_a_sharded_one(tmp_path: Path, shards: int) -> None:
    docs = [Document(f"d{i}", f"bread {'fresh ' * (i % 3)}oven {i % 5} garden{i % 4}", {}) for i in range(40)]
    plain = Index.build(docs, tmp_path / "plain", FakeEncoder())
    sharded = Index.build(docs, tmp_path / "sharded", FakeEncoder(), shards=shards)
    for query in ("fresh bread", "oven garden1", "bread 3", "nothing here"):
        want, got = plain.search(query, k=15), sharded.search(query, k=15)
        assert [h.id for h in got] == [h.id for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-12)
        assert 0.0 <= want[-1].score <= want[0].score < 1.0  # no document repeats a query
