"""In-memory BM25 (simsearch.store.lexical.bm25) against SQLite FTS5's own bm25() on the same table."""

from __future__ import annotations

import random
import sqlite3

import numpy as np
import pytest

from simsearch.store.lexical.analyzer import Analyzer
from simsearch.store import lexical
from simsearch.store.lexical import bm25

WORDS = "cat dog bread fresh stale keep search engine query vector 서울 지하철 김치 a1 x9 zebra".split()


def table(texts: list[str]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE documents (rowid INTEGER PRIMARY KEY, text TEXT)")
    db.executemany("INSERT INTO documents VALUES (?, ?)", [(i * 3 + 1, t) for i, t in enumerate(texts)])
    lexical.rebuild(db, Analyzer())
    return db


def fts5(db: sqlite3.Connection, tokens: list[str]) -> dict[int, float]:
    """FTS5's bm25() of every row matching any token (as the store ranked before)."""
    unique = list(dict.fromkeys(tokens))
    if not unique:
        return {}
    expression = " OR ".join('"' + t.replace('"', '""') + '"' for t in unique)
    rows = db.execute("SELECT rowid, bm25(lexical) FROM lexical WHERE lexical MATCH ?", (expression,))
    return {int(r): -float(s) for r, s in rows}


def random_texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 14))) for _ in range(n)]
    texts[0] = ""  # a row with no token at all
    texts[1] = "the of and"  # only stop words: analyses to nothing
    return texts


@pytest.mark.parametrize("seed", range(5))
def test_scores_equal_fts5_bm25(seed: int) -> None:
    texts = random_texts(seed, 200)
    db = table(texts)
    postings = bm25.read(db, "lexical", lexical.RANKING)
    assert len(postings) == 200
    analyze = Analyzer()
    rng = random.Random(seed + 100)
    for _ in range(20):
        tokens = analyze(" ".join(rng.choice(WORDS + ["unknownword"]) for _ in range(rng.randint(1, 6))))
        expected = fts5(db, tokens)
        rowids, scores = postings.match(tokens)
        assert rowids.tolist() == sorted(expected)
        assert scores.tolist() == pytest.approx([expected[r] for r in rowids.tolist()], rel=1e-12)
        ranked = sorted(expected.items(), key=lambda t: (-t[1], t[0]))
        top = postings.top(tokens, 7)
        assert [r for r, _ in top] == [r for r, _ in ranked[:7]]
        assert [s for _, s in top] == pytest.approx([s for _, s in ranked[:7]], rel=1e-12)


def test_ties_at_the_cut_are_ordered_by_rowid() -> None:
    db = table(["zebra"] * 10 + ["cat dog"] * 5)
    postings = bm25.read(db, "lexical", lexical.RANKING)
    top = postings.top(["zebra"], 4)
    assert [r for r, _ in top] == [1, 4, 7, 10]  # rowids i * 3 + 1, the four smallest
    assert len({s for _, s in top}) == 1


def test_filter_and_lookup() -> None:
    texts = random_texts(7, 120)
    db = table(texts)
    postings = bm25.read(db, "lexical", lexical.RANKING)
    tokens = Analyzer()("fresh bread zebra")
    expected = fts5(db, tokens)
    allowed = np.array(sorted(r for r in expected if r % 2 == 0)[:9] + [2, 5], dtype=np.int64)
    allowed.sort()
    ranked = sorted(expected.items(), key=lambda t: (-t[1], t[0]))
    kept = [(r, s) for r, s in ranked if r in set(allowed.tolist())][:5]
    got = bm25.best(*postings.match(tokens), 5, allowed)
    assert [r for r, _ in got] == [r for r, _ in kept]
    assert [s for _, s in got] == pytest.approx([s for _, s in kept])
    wanted = [1, 2, 4, 7, 10_000, *list(expected)[:3]]
    found = bm25.lookup(*postings.match(tokens), wanted)
    assert found == pytest.approx({r: expected[r] for r in wanted if r in expected})


def test_nothing_to_match() -> None:
    empty = bm25.Postings([])
    assert len(empty) == 0 and empty.top(["cat"], 3) == []
    postings = bm25.Postings([(1, "cat dog"), (2, "")])
    assert postings.top([], 3) == [] and postings.top(["nope"], 3) == []
    assert bm25.lookup(*postings.match(["cat"]), []) == {}


def test_ranking_parameters_come_from_the_manifest() -> None:
    texts = [(1, "cat cat cat dog"), (2, "cat dog dog dog dog dog dog"), (3, "bird")]
    default = dict(bm25.Postings(texts).top(["cat"], 2))
    flatter = dict(bm25.Postings(texts, k1=0.5, b=0.0).top(["cat"], 2))
    assert default.keys() == flatter.keys() == {1, 2}
    assert default[1] / default[2] != pytest.approx(flatter[1] / flatter[2])
