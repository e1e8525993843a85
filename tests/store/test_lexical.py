"""The lexical part: kept in step with the documents by build/add/delete/compact, verified,
repaired, added to old indexes; lexical and hybrid search agree with brute force."""

from __future__ import annotations

import math
import random
from contextlib import closing
from pathlib import Path

import pytest

from simsearch.store.lexical.analyzer import Analyzer
from simsearch.errors import QueryError
from simsearch.index import Index
from simsearch.readers import Document
from simsearch.store import lexical
from simsearch.store.generation import Store
from simsearch.store.verify import verify_index

WORDS = (
    "cat dog bread fresh stale keep search engine query vector model token korean english long "
    "word fast slow good bad house river mountain city train"
).split()
HANGUL = ["서울", "지하철", "김치", "찌개", "날씨", "내일", "검색", "엔진"]


def corpus(n: int, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 12))]
        if i % 4 == 0:
            words += rng.sample(HANGUL, 2)
        docs.append(Document(f"d{i}", " ".join(words), {"i": i}))
    return docs


def lexical_rows(index: Index) -> dict[str, str]:
    with closing(Store.open(index.path)) as store:  # the generation the index holds
        return dict(
            store.db.execute("SELECT d.id, l.tokens FROM documents d JOIN lexical l ON l.rowid = d.rowid")
        )


def in_step(index: Index) -> None:
    analyzer = lexical.analyzer_of(index.manifest)
    assert analyzer is not None
    texts = {doc.id: doc.text for doc in index.get(index.ids())}
    assert lexical_rows(index) == {i: " ".join(analyzer(t)) for i, t in texts.items()}
    with closing(Store.open(index.path)) as store:
        assert lexical.disagreement(store.db, analyzer) is None


def test_build_add_delete_compact_keep_lexical_in_step(index_dir: Path, fake_encoder) -> None:
    index = Index.build(corpus(40), "lex", fake_encoder, index_dir=index_dir, analyzer="standard")
    assert index.manifest["lexical"]["engine"] == "sqlite-fts5"
    assert index.manifest["lexical"]["analyzer"]["name"] == "simsearch-standard"
    in_step(index)
    index.add(
        [
            Document("d1", "a brand new zebra text", {"i": 1}),
            Document("n1", "another zebra", {}),
            Document("d2", corpus(40)[2].text, {"i": 99}),
        ]
    )  # changed text, new doc, metadata only
    in_step(index)
    assert {h.id for h in index.search("zebra", k=5, mode="lexical")} == {"d1", "n1"}
    index.delete(["d1", "d3"])
    in_step(index)
    assert [h.id for h in index.search("zebra", k=5, mode="lexical")] == ["n1"]
    index.compact()
    in_step(index)
    assert verify_index(index.path, encoder=fake_encoder).ok
    index.close()


def test_old_index_stays_dense_and_reindex_lexical_adds_the_part(index_dir: Path, fake_encoder) -> None:
    index = Index.build(corpus(20), "old", fake_encoder, index_dir=index_dir, lexical=False)
    assert "lexical" not in index.manifest
    assert index.search("cat dog", k=3)[0].bm25 is None  # default mode: dense
    with pytest.raises(QueryError, match="no lexical part.*reindex-lexical"):
        index.search("cat dog", k=3, mode="hybrid")
    index.add([Document("x", "still works", {})])  # updates of an old index stay dense-only
    assert "lexical" not in index.manifest
    assert verify_index(index.path, encoder=fake_encoder).ok
    generation = index.reindex_lexical()
    assert index.manifest["generation"] == generation and "lexical" in index.manifest
    in_step(index)
    assert index.search("still works", k=1, mode="lexical")[0].id == "x"
    index.close()


def test_verify_finds_a_disagreeing_lexical_part_and_repair_fixes_it(
    index_dir: Path, fake_encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = Index.build(corpus(30), "drift", fake_encoder, index_dir=index_dir)
    with monkeypatch.context() as patched:  # a writer that forgets the lexical side
        patched.setattr(lexical, "update", lambda db, analyzer, rowids: None)
        index.add([Document("late", "an unseen word platypus", {})])
    report = verify_index(index.path, encoder=fake_encoder)
    problems = {p.name: p for p in report.problems}
    assert (
        set(problems) == {"lexical agrees with sqlite"} and problems["lexical agrees with sqlite"].repairable
    )
    assert "1 documents missing" in problems["lexical agrees with sqlite"].detail
    repaired = index.verify(repair=True)
    assert repaired.ok and [p.name for p in repaired.repaired] == ["lexical agrees with sqlite"]
    in_step(index)
    assert index.search("platypus", k=1, mode="lexical")[0].id == "late"
    index.close()


# --- modes against brute force --------------------------------------------------------------------


def brute_bm25(docs: list[list[str]], query: list[str], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """FTS5's bm25(): idf = ln((N - n + 0.5) / (n + 0.5)), at least 1e-6."""
    n_docs = len(docs)
    avgdl = sum(len(d) for d in docs) / n_docs
    scores = [0.0] * n_docs
    for term in dict.fromkeys(query):
        having = sum(term in d for d in docs)
        if not having:
            continue
        idf = max(1e-6, math.log((n_docs - having + 0.5) / (having + 0.5)))
        for i, d in enumerate(docs):
            tf = d.count(term)
            if tf:
                scores[i] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
    return scores


def brute_full(docs: list[list[str]], query: list[str], k1: float = 1.2, b: float = 0.75) -> float:
    """BM25 of a document made of the query's tokens that some document holds."""
    known = [t for t in query if any(t in d for d in docs)]
    avgdl = sum(len(d) for d in docs) / len(docs)
    total = 0.0
    for term in dict.fromkeys(known):
        having = sum(term in d for d in docs)
        idf = max(1e-6, math.log((len(docs) - having + 0.5) / (having + 0.5)))
        tf = known.count(term)
        total += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(known) / avgdl))
    return total


QUERIES = ["fresh bread keep", "서울 지하철 검색", "search engine vector model", "zzz nothing", "the a of"]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):
    from tests.fakes import FakeEncoder

    docs = corpus(60, seed=3)
    index = Index.build(docs, tmp_path_factory.mktemp("modes") / "small", FakeEncoder(), analyzer="standard")
    yield index, docs
    index.close()


@pytest.mark.parametrize("query", QUERIES)
def test_lexical_mode_is_brute_force_bm25(small, query: str) -> None:
    index, docs = small
    analyze = Analyzer()
    expected = brute_bm25([analyze(d.text) for d in docs], analyze(query))
    hits = index.search(query, k=10, mode="lexical")
    matching = sorted(
        ((s, d.id) for s, d in zip(expected, docs) if s > 0), key=lambda x: (-x[0], int(x[1][1:]))
    )
    assert [round(h.score, 4) for h in hits] == [round(s, 4) for s, _ in matching[:10]]
    scores = dict((i, s) for s, i in matching)
    assert all(h.score == pytest.approx(scores[h.id], abs=1e-4) for h in hits)  # each hit its own BM25
    assert all(h.bm25 == h.score and h.cosine is None for h in hits)


@pytest.mark.parametrize("query", QUERIES)
def test_dense_and_hybrid_modes_are_brute_force(small, fake_encoder, query: str) -> None:
    index, docs = small
    analyze = Analyzer()
    cosine = fake_encoder.encode([d.text for d in docs]) @ fake_encoder.encode([query])[0]
    dense = index.search(query, k=10, mode="dense")
    assert [round(h.score, 5) for h in dense] == [
        round(float(c), 5) for c in sorted(cosine, reverse=True)[:10]
    ]
    bm25 = brute_bm25([analyze(d.text) for d in docs], analyze(query))
    matched = [s for s in bm25 if s > 0]

    def norm(value: float, values: list[float]) -> float:  # min-max over all: 60 docs < DEPTH
        lo, hi = min(values), max(values)
        if hi - lo <= 1e-12:
            return 1.0 if value >= lo else 0.0
        return (value - lo) / (hi - lo)  # not clipped: a non-match (BM25 0) falls below 0

    weight = 0.5 if matched else 1.0  # the fake encoder has no tokenizer: full coverage
    fused = [
        weight * norm(float(c), list(map(float, cosine)))
        + (1 - weight) * (norm(s, matched) if matched else 0.0)
        for c, s in zip(cosine, bm25)
    ]
    hybrid = index.search(query, k=10, mode="hybrid")
    order = sorted(range(len(docs)), key=lambda i: (-fused[i], -float(cosine[i]), docs[i].id))[:10]
    assert [h.id for h in hybrid] == [docs[i].id for i in order]
    # the scores shown: the top's absolute relevance, the rest along the fused line, floored at 0
    full = brute_full([analyze(d.text) for d in docs], analyze(query))
    top = order[0]
    anchor = weight * min(1.0, max(0.0, float(cosine[top]))) + (1 - weight) * (
        min(1.0, bm25[top] / full) if bm25[top] > 0 else 0.0
    )

    def span(values: list[float]) -> float:
        return max(values) - min(values) if max(values) - min(values) > 1e-12 else max(max(values), 0.0)

    slope = weight * span(list(map(float, cosine))) + (1 - weight) * (
        span(matched) / full if matched else 0.0
    )
    shown = [max(0.0, anchor + slope * (fused[i] - fused[top])) for i in order]
    assert [round(h.score, 5) for h in hybrid] == [round(s, 5) for s in shown]
    assert 0.0 <= hybrid[-1].score <= hybrid[0].score < 1.0  # no document repeats a query here
    by_id = {d.id: i for i, d in enumerate(docs)}
    for hit in hybrid:
        assert hit.cosine == pytest.approx(float(cosine[by_id[hit.id]]), abs=1e-5)
        assert (hit.bm25 is None) == (bm25[by_id[hit.id]] == 0)
    assert index.search(query, k=10) == hybrid  # hybrid is the default with a lexical part


def test_min_score_filters_by_cosine_and_is_refused_in_lexical_mode(small) -> None:
    index, _ = small
    hits = index.search("fresh bread keep", k=20, mode="hybrid", min_score=0.5)
    assert hits and all(h.cosine is not None and h.cosine >= 0.5 for h in hits)
    with pytest.raises(QueryError, match="min_score"):
        index.search("fresh bread", mode="lexical", min_score=0.1)
    with pytest.raises(QueryError, match="unknown search mode"):
        index.search("fresh bread", mode="sparse")
