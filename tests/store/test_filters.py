"""Metadata filters: compiled to parameterised SQL, applied before ranking, on flat and HNSW,
in every mode; equal to brute-force filtering (hypothesis); kept right by add and delete."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simsearch.errors import QueryError
from simsearch.index import Index
from simsearch.readers import Document
from simsearch.search import dense_filtered as filtered
from simsearch.search.where import compile_where
from simsearch.search.where_text import parse_cli

LANGS = ["en", "ko", "fr"]
WORDS = "cat dog bread fresh stale keep search engine query vector model token river city train".split()


def make_docs(n: int, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        meta: dict = {
            "lang": rng.choice(LANGS),
            "year": rng.randint(2000, 2024),
            "date": f"20{rng.randint(10, 24)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
        }
        if i % 5 == 0:
            del meta["lang"]  # some documents lack a field
        docs.append(
            Document(f"d{i}", " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8))) + f" n{i}", meta)
        )
    return docs


def matches(meta: dict, where: dict) -> bool:
    for field, spec in where.items():
        conditions = spec if isinstance(spec, dict) else {"=": spec}
        for op, value in conditions.items():
            have = meta.get(field)
            if op == "!=":
                ok = have != value
            elif have is None:
                ok = False
            elif op == "=":
                ok = have == value
            elif op == "in":
                ok = have in value
            else:
                ok = {"<": have < value, "<=": have <= value, ">": have > value, ">=": have >= value}[op]
            if not ok:
                return False
    return True


wheres = st.fixed_dictionaries(
    {},
    optional={
        "lang": st.one_of(
            st.sampled_from(LANGS),
            st.fixed_dictionaries({"!=": st.sampled_from(LANGS)}),
            st.fixed_dictionaries({"in": st.lists(st.sampled_from(LANGS), min_size=1, max_size=2)}),
        ),
        "year": st.fixed_dictionaries(
            {}, optional={op: st.integers(1999, 2025) for op in ("<", "<=", ">", ">=")}
        ),
        "date": st.fixed_dictionaries(
            {}, optional={">=": st.sampled_from(["2012-01-01", "2020-05-10", "2030-01-01"])}
        ),
    },
).filter(lambda w: all(w.values()) if w else True)


@pytest.fixture(scope="module", params=["flat", "hnsw"])
def built(request, tmp_path_factory: pytest.TempPathFactory):
    from tests.fakes import FakeEncoder

    docs = make_docs(400, seed=1)
    index = Index.build(
        docs, tmp_path_factory.mktemp("filters") / request.param, FakeEncoder(), index_type=request.param
    )
    yield index, docs
    index.close()


def check_filtered(
    index: Index, docs: list[Document], where: dict, query: str, k: int, mode: str, exact: bool = True
) -> None:
    from tests.fakes import FakeEncoder

    allowed = [d for d in docs if matches(d.metadata, where)]
    hits = index.search(query, k=k, mode=mode, where=where)
    assert all(matches(h.metadata, where) for h in hits)
    if mode == "lexical":
        assert {h.id for h in hits} <= {d.id for d in allowed}
        return
    assert len(hits) == min(k, len(allowed))  # never fewer than k when k match
    if mode == "dense":
        vectors = FakeEncoder().encode([d.text for d in allowed]) if allowed else np.zeros((0, 16))
        expected = sorted((vectors @ FakeEncoder().encode([query])[0]).tolist(), reverse=True)[:k]
        got = [round(h.score, 5) for h in hits]
        if exact:
            assert got == [round(s, 5) for s in expected]
        else:  # an ANN walk: never better than the exact i-th best, found or not
            assert all(g <= round(e, 5) for g, e in zip(got, expected))


@pytest.mark.parametrize("selector", [False, True], ids=["exact-fallback", "faiss-selector"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=wheres,
    query=st.sampled_from(["fresh bread", "search engine query", "river city n7"]),
    k=st.integers(1, 30),
    mode=st.sampled_from(["dense", "hybrid", "lexical"]),
)
def test_filtered_search_is_brute_force_filtering(
    built, selector: bool, monkeypatch: pytest.MonkeyPatch, where: dict, query: str, k: int, mode: str
) -> None:
    index, docs = built
    with monkeypatch.context() as patched:
        if selector:  # force the FAISS IDSelector path even for few allowed documents
            patched.setattr(filtered, "EXACT_UP_TO", 0)
            patched.setattr(filtered, "EXACT_SHARE", 0.0)
        # HNSW's walk is approximate unfiltered and through its selector (exact search serves a
        # filter keeping at most 4096 documents, as all do here unless the selector is forced)
        approximate = index.manifest["index_type"] == "hnsw" and (selector or not where)
        check_filtered(index, docs, where, query, k, mode, exact=not approximate)


def test_add_and_delete_keep_filters_right(index_dir: Path, fake_encoder) -> None:
    docs = make_docs(60, seed=2)
    index = Index.build(docs, "living", fake_encoder, index_dir=index_dir)
    assert [h.id for h in index.search("fresh", k=5, where={"lang": "de"})] == []
    index.add(
        [
            Document("new-de", "fresh bread from berlin", {"lang": "de", "year": 2030, "tier": "gold"}),
            Document("d1", docs[1].text, {"lang": "de", "year": 1990}),
        ]
    )  # metadata-only change
    assert {h.id for h in index.search("fresh", k=5, where={"lang": "de"})} == {"new-de", "d1"}
    assert [h.id for h in index.search("bread", k=5, where={"tier": "gold"})] == ["new-de"]  # a new field
    assert [h.id for h in index.search("bread", k=5, where={"year": {"<": 2000}})] == ["d1"]
    index.delete(["new-de"])
    assert [h.id for h in index.search("fresh", k=5, where={"lang": "de"})] == ["d1"]
    with pytest.raises(QueryError, match="unknown metadata field 'tier'"):
        index.search("bread", where={"tier": "gold"})
    index.close()


TYPES = {
    "lang": {"text"},
    "year": {"integer"},
    "score": {"real", "integer"},
    "ok": {"true", "false"},
    "date": {"text"},
}


@pytest.mark.parametrize(
    "where, message",
    [
        ({"nope": 1}, "unknown metadata field 'nope'"),
        ({"year": {"~": 3}}, "bad operator '~'"),
        ({"year": "recent"}, "holds number values; = 'recent' does not match"),
        ({"lang": 5}, "holds text values"),
        ({"lang": {">": "en"}}, "needs a number or an ISO date"),
        ({"year": {"in": []}}, "non-empty list"),
        ({"year": {}}, "no condition given"),
        ({"ok": 3}, "holds boolean values"),
        ({"year": {"=": [1, 2]}}, "must be a string, number or boolean"),
    ],
)
def test_bad_filters_are_one_line_errors(where: dict, message: str) -> None:
    with pytest.raises(QueryError, match=message) as error:
        compile_where(where, TYPES)
    assert "\n" not in str(error.value)


def test_values_are_parameters_and_cli_text_is_coerced() -> None:
    condition = compile_where(
        {
            "lang": "en'; DROP TABLE documents; --",
            "year": {">=": "2020"},
            "score": {"<": "0.5"},
            "ok": "true",
            "date": {"<=": "2024-01-31"},
        },
        TYPES,
    )
    assert condition is not None
    sql, params = condition
    assert "DROP" not in sql and "en'; DROP TABLE documents; --" in params
    assert 2020 in params and 0.5 in params and "true" in params and "2024-01-31" in params


def test_cli_filters_parse() -> None:
    assert parse_cli(["lang=ko", "year>=2020", "year<2024", "source in news, wiki", "tag!=x"]) == {
        "lang": {"=": "ko"},
        "year": {">=": "2020", "<": "2024"},
        "source": {"in": ["news", "wiki"]},
        "tag": {"!=": "x"},
    }
    for bad in ["lang", "=ko", "year>=", "a b c"]:
        with pytest.raises(QueryError, match="--where"):
            parse_cli([bad])


@pytest.mark.parametrize("index_type", ["ivf", "ivfpq", "hnsw"])
def test_ann_returns_k_hits_filtered_and_at_large_k(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index_type: str
) -> None:
    from tests.fakes import FakeEncoder

    docs = make_docs(3000, seed=3)
    index = Index.build(docs, tmp_path / index_type, FakeEncoder(), index_type=index_type)
    monkeypatch.setattr(filtered, "EXACT_UP_TO", 0)  # the FAISS selector path, as past 4096 allowed
    monkeypatch.setattr(filtered, "EXACT_SHARE", 0.0)
    matching = sum(1 for d in docs if d.metadata.get("lang") == "ko")
    for k in (300, 700, 2000):
        hits = index.search("fresh bread river", k=k, mode="dense", where={"lang": "ko"})
        assert len(hits) == min(k, matching) and all(h.metadata["lang"] == "ko" for h in hits)
        assert len({h.id for h in hits}) == len(hits)
    assert len(index.search("fresh bread river", k=2500, mode="dense")) == 2500  # unfiltered
    index.close()


def test_quoted_field_names_and_mixed_types_through_the_index(index_dir: Path, fake_encoder) -> None:
    docs = [
        Document("a", "fresh bread", {'say "hi"': "x", "year": 2020}),
        Document("b", "stale bread", {'say "hi"': "y", "year": "unknown"}),
        Document("c", "river city", {"year": 2021}),
    ]
    index = Index.build(docs, "quoted", fake_encoder, index_dir=index_dir)

    def ids(where: dict) -> list[str]:
        return sorted(h.id for h in index.search("bread", k=5, mode="dense", where=where))

    assert ids({'say "hi"': "x"}) == ["a"]  # was nothing: SQLite's JSON path has no escape for "
    assert ids({'say "hi"': {"!=": "x"}}) == ["b", "c"]  # was everything
    assert ids(parse_cli(["year=2020"])) == ["a"]  # was nothing: a stray text made it a text field
    assert ids(parse_cli(["year>2020 or year=unknown"])) == ["b", "c"]
    index.close()
