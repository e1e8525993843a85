"""What LangChain's standard suite leaves out: persistence, a real index on disk and the CLI,
foreign-embedding manifests, filters, MMR, retrievers, async, and the documented RAG example."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from simsearch.cli.main import main
from simsearch.errors import InputError, ModelError, QueryError
from simsearch.index import Index
from simsearch.integrations.langchain import SimsearchEmbeddings, SimsearchVectorStore, to_where

REPO = Path(__file__).resolve().parents[2]
FAKE_CLASS = "langchain_core.embeddings.fake.DeterministicFakeEmbedding"


def fake() -> DeterministicFakeEmbedding:
    return DeterministicFakeEmbedding(size=8)


def cli(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tiny_embeddings(tiny_bert: Path) -> SimsearchEmbeddings:
    return SimsearchEmbeddings(str(tiny_bert))


def test_embeddings_are_the_encoders(tiny_embeddings: SimsearchEmbeddings) -> None:
    texts = ["the cat sat", "서울 지하철"]
    got = np.asarray(tiny_embeddings.embed_documents(texts), dtype=np.float32)
    assert np.allclose(got, tiny_embeddings.encoder.encode(texts), atol=1e-6)
    assert np.allclose(tiny_embeddings.embed_query("the cat sat"), got[0], atol=1e-6)
    assert tiny_embeddings.embed_documents([]) == []


async def test_async_embeddings(tiny_embeddings: SimsearchEmbeddings) -> None:
    assert np.allclose(await tiny_embeddings.aembed_query("cat"), tiny_embeddings.embed_query("cat"))
    assert len(await tiny_embeddings.aembed_documents(["a", "b"])) == 2


def test_foreign_embedding_is_recorded_normalised_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "lc"
    store = SimsearchVectorStore(fake(), path)
    ids = store.add_texts(
        ["alpha", "beta", "gamma"], [{"n": 1, "tags": ["x"]}, {"ü": "ñ"}, {}], ids=["a", "b", None]
    )
    assert ids[:2] == ["a", "b"] and re.fullmatch(r"[0-9a-f-]{36}", ids[2])
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["embedding"] == {"kind": "langchain", "class": FAKE_CLASS, "dim": 8}
    assert store.index is not None
    _, vectors = store.index.get_vectors(ids)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    before = store.similarity_search_with_score("beta", k=3)

    again = SimsearchVectorStore(fake(), path)  # a new process would do the same
    assert again.get_by_ids(["b", "a", "missing"]) == [
        Document(id="b", page_content="beta", metadata={"ü": "ñ"}),
        Document(id="a", page_content="alpha", metadata={"n": 1, "tags": ["x"]}),
    ]
    assert again.similarity_search_with_score("beta", k=3) == before
    assert before[0][0].id == "b" and before[0][1] == pytest.approx(1.0, abs=1e-5)


def test_reopening_with_another_embedding_is_refused(tmp_path: Path, tiny_embeddings) -> None:
    SimsearchVectorStore.from_texts(["alpha"], fake(), path=tmp_path / "lc")
    with pytest.raises(ModelError, match="vectors from different models cannot be mixed"):
        SimsearchVectorStore(tiny_embeddings, tmp_path / "lc")
    wider = SimsearchVectorStore(DeterministicFakeEmbedding(size=12), tmp_path / "lc")
    with pytest.raises(InputError, match="12-dim vectors; the index holds 8-dim ones"):
        wider.similarity_search("alpha")


def test_cli_opens_a_foreign_index_read_only(tmp_path: Path) -> None:
    home = tmp_path / "indexes"
    SimsearchVectorStore.from_texts(["alpha", "beta"], fake(), ids=["a", "b"], path=home / "lc")
    refused = cli("query", "lc", "alpha", "--index-dir", home)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert refused.output == (
        f"Error: index 'lc' holds vectors from the langchain embedding '{FAKE_CLASS}' (dim 8): queries "
        "and additions need that embedding; open it with "
        "simsearch.integrations.langchain.SimsearchVectorStore(embedding, path)\n"
    )
    source = tmp_path / "more.txt"
    source.write_text("gamma\n")
    added = cli("add", "lc", source, "--index-dir", home)
    assert added.exit_code == 1 and "need that embedding" in added.output
    info = cli("info", "lc", "--json", "--index-dir", home)
    assert info.exit_code == 0 and json.loads(info.output)["count"] == 2
    exported = cli("export", "lc", "--format", "jsonl", "--index-dir", home)
    assert [json.loads(line)["id"] for line in exported.output.splitlines()] == ["a", "b"]
    checked = cli("verify", "lc", "--index-dir", home)
    assert checked.exit_code == 0, checked.output
    from simsearch.server.state import Served

    with pytest.raises(ModelError, match="need that embedding"):  # `simsearch serve lc` stops at startup
        Served(["lc"], str(home))
    assert cli("delete", "lc", "a", "--index-dir", home).exit_code == 0
    assert SimsearchVectorStore(fake(), home / "lc").get_by_ids(["a", "b"])[0].id == "b"


def test_simsearch_embeddings_make_an_ordinary_index(
    tmp_path: Path, tiny_embeddings, tiny_bert: Path
) -> None:
    home = tmp_path / "indexes"
    store = SimsearchVectorStore.from_documents(
        [
            Document(page_content="the cat sat on the mat", metadata={"k": 1}, id="cat"),
            Document(page_content="서울 지하철은 편리하다", metadata={"k": 2}, id="subway"),
        ],
        tiny_embeddings,
        path=home / "plain",
    )
    manifest = store.index.manifest
    assert "embedding" not in manifest and manifest["model"] == str(tiny_bert)
    found = cli("query", "plain", "the cat sat on the mat", "-k", "1", "--json", "--index-dir", home)
    assert found.exit_code == 0 and json.loads(found.output)["id"] == "cat"
    # ... and an index built by the CLI opens as a store
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "x", "text": "a fast search engine", "lang": "en"}\n')
    assert (
        cli(
            "build", corpus, "--name", "cli", "--model", tiny_bert, "--id-field", "id", "--index-dir", home
        ).exit_code
        == 0
    )
    opened = SimsearchVectorStore(tiny_embeddings, home / "cli")
    assert opened.similarity_search("fast search", k=1) == [
        Document(id="x", page_content="a fast search engine", metadata={"lang": "en"})
    ]
    with pytest.raises(ModelError):
        SimsearchVectorStore(fake(), home / "cli")


def test_upsert_and_delete_semantics(tmp_path: Path) -> None:
    store = SimsearchVectorStore(fake(), tmp_path / "lc")
    assert store.similarity_search("x") == [] and store.get_by_ids(["x"]) == [] and store.delete(["x"])
    store.add_texts(["one", "two", "three"], ids=["1", "2", "3"])
    store.add_texts(["two again", "four"], [{"v": 2}, {}], ids=["2", "4"])
    assert store.index is not None and len(store.index) == 4
    assert store.get_by_ids(["2"]) == [Document(id="2", page_content="two again", metadata={"v": 2})]
    assert store.delete(["1", "nope"]) is True
    assert [d.id for d in store.similarity_search("one", k=10)] and "1" not in {
        d.id for d in store.similarity_search("one", k=10)
    }
    store.add_texts(["dup first", "dup last"], ids=["d", "d"])  # the later text wins
    assert store.get_by_ids(["d"])[0].page_content == "dup last"
    assert store.delete() is True
    assert store.similarity_search("two again") == [] and store.index is not None and len(store.index) == 0
    store.add_texts(["back"], ids=["b"])
    assert [d.id for d in store.similarity_search("back", k=5)] == ["b"]
    with pytest.raises(InputError, match="texts\\[0\\] is empty"):
        store.add_texts([" "])
    with pytest.raises(InputError, match="texts\\[1\\] must be a str, got bytes"):  # issue 23 item 6
        store.add_texts(["fine", b"x"])  # type: ignore[list-item]
    with pytest.raises(InputError, match="2 texts, 1 metadatas"):
        store.add_texts(["a", "b"], [{}])


def test_filters_find_the_k_nearest_matching(tmp_path: Path) -> None:
    embedding = fake()
    texts = [f"document number {n}" for n in range(300)]
    store = SimsearchVectorStore.from_texts(
        texts,
        embedding,
        [{"n": n, "even": n % 2 == 0} for n in range(300)],
        ids=[str(n) for n in range(300)],
        path=tmp_path / "lc",
    )
    query = np.asarray(embedding.embed_query("document number 5"))
    matrix = np.asarray(embedding.embed_documents(texts))
    cos = matrix @ query / np.linalg.norm(matrix, axis=1) / np.linalg.norm(query)

    def best(keep, k=3):
        return [str(n) for n in sorted((n for n in range(300) if keep(n)), key=lambda n: -cos[n])[:k]]

    got = store.similarity_search("document number 5", k=3, filter={"n": {"$gte": 290}})
    assert [d.id for d in got] == best(lambda n: n >= 290)  # the 3 nearest of the 10 that match
    assert [d.id for d in store.similarity_search("document number 5", k=3, filter={"even": False})] == best(
        lambda n: n % 2 == 1
    )
    both = store.similarity_search("document number 5", k=5, filter={"n": {"$in": [7, 8, 9]}, "even": True})
    assert [d.id for d in both] == ["8"]
    called = store.similarity_search("document number 5", k=2, filter=lambda doc: doc.metadata["n"] < 4)
    assert [d.id for d in called] == best(lambda n: n < 4, 2)
    assert store.similarity_search("document number 5", filter={"missing": 1}) == []
    with pytest.raises(
        QueryError, match="holds number values"
    ):  # simsearch's filters: a type mismatch is an error
        store.similarity_search("document number 5", filter={"n": {"$gt": "text"}})
    assert to_where({"a": 1, "b": {"$ne": 2, "$lte": 5}}) == {"a": 1, "b": {"exists": True, "!=": 2, "<=": 5}}
    with pytest.raises(InputError, match="unknown operator '\\$regex'"):
        store.similarity_search("x", filter={"n": {"$regex": "1"}})
    with pytest.raises(InputError, match="operator '\\$nor' is not supported"):
        store.similarity_search("x", filter={"$nor": [{"n": 1}]})
    with pytest.raises(InputError, match="filter keys must be field names"):  # not AttributeError
        store.similarity_search("x", filter={1: 2})  # type: ignore[dict-item]


def test_boolean_filters_and_missing_fields(tmp_path: Path) -> None:
    """$and/$or/$not/$nin/$exists map onto simsearch's where; a document without the field
    matches no comparison ($ne and $nin included), as LangChain's stores behave."""
    metas = [{"n": n, "tag": "odd" if n % 2 else "even"} for n in range(8)] + [{"n": 8}, {"other": 1}]
    store = SimsearchVectorStore.from_texts(
        [f"document number {n}" for n in range(10)],
        fake(),
        metas,
        ids=[str(n) for n in range(10)],
        path=tmp_path / "b",
    )

    def ids(filter: dict) -> list[str]:
        return sorted(str(d.id) for d in store.similarity_search("document", k=10, filter=filter))

    assert ids({"tag": {"$ne": "odd"}}) == ["0", "2", "4", "6"]  # not 8 and 9 (no tag)
    assert ids({"tag": {"$nin": ["odd"]}}) == ["0", "2", "4", "6"]
    assert ids({"$or": [{"n": {"$lt": 2}}, {"n": {"$gte": 7}}]}) == ["0", "1", "7", "8"]
    assert ids({"$and": [{"n": {"$gt": 1}}, {"tag": "odd"}]}) == ["3", "5", "7"]
    assert ids({"$not": {"tag": "odd"}}) == ["0", "2", "4", "6", "8", "9"]  # the exact complement
    assert ids({"tag": {"$exists": False}}) == ["8", "9"]
    assert ids({"other": {"$exists": True}}) == ["9"]
    # a field no document has: missing everywhere, not an error
    assert ids({"$or": [{"nope": 1}, {"n": 0}]}) == ["0"]
    assert ids({"nope": {"$exists": False}, "n": {"$lte": 1}}) == ["0", "1"]
    assert ids({"$not": {"nope": 1}}) == [str(n) for n in range(10)]
    assert ids({"nope": {"$ne": 1}}) == []
    # the mapping, spelled out
    where = to_where({"$or": [{"n": {"$in": [1, 2]}}, {"$not": {"tag": {"$exists": True}}}]})
    assert where == {"$or": [{"n": {"in": [1, 2]}}, {"$not": {"tag": {"exists": True}}}]}
    assert ids({"$or": [{"n": {"$in": [1, 2]}}, {"$not": {"tag": {"$exists": True}}}]}) == [
        "1",
        "2",
        "8",
        "9",
    ]


def test_mmr_prefers_diverse_documents(tmp_path: Path) -> None:
    store = SimsearchVectorStore.from_texts(
        ["apple", "apple", "apple", "banana"],
        fake(),
        [{"fruit": "apple"}] * 3 + [{"fruit": "banana"}],
        ids=["a1", "a2", "a3", "b"],
        path=tmp_path / "lc",
    )
    plain = [d.id for d in store.similarity_search("apple", k=2)]
    assert set(plain) <= {"a1", "a2", "a3"}
    diverse = [d.id for d in store.max_marginal_relevance_search("apple", k=2, fetch_k=4, lambda_mult=0.3)]
    assert diverse[0] in {"a1", "a2", "a3"} and diverse[1] == "b"
    apples = store.max_marginal_relevance_search("apple", k=2, lambda_mult=0.3, filter={"fruit": "apple"})
    assert len(apples) == 2 and {d.metadata["fruit"] for d in apples} == {"apple"}


def test_retrievers(tmp_path: Path) -> None:
    store = SimsearchVectorStore.from_texts(
        ["red", "green", "blue"],
        fake(),
        [{"c": 1}, {"c": 2}, {"c": 3}],
        ids=["r", "g", "b"],
        path=tmp_path / "lc",
    )
    assert [d.id for d in store.as_retriever(search_kwargs={"k": 1}).invoke("green")] == ["g"]
    narrowed = store.as_retriever(search_kwargs={"k": 2, "filter": {"c": {"$gt": 1}}}).invoke("red")
    assert {d.id for d in narrowed} == {"g", "b"}
    assert len(store.as_retriever(search_type="mmr", search_kwargs={"k": 2}).invoke("red")) == 2
    scored = store.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.999}
    ).invoke("blue")
    assert [d.id for d in scored] == ["b"]
    relevance = store.similarity_search_with_relevance_scores("blue", k=3)
    assert all(0.0 <= score <= 1.0 for _, score in relevance)  # cosine, clipped to [0, 1]


async def test_async_variants(tmp_path: Path) -> None:
    store = SimsearchVectorStore(fake(), tmp_path / "lc")
    assert await store.aadd_texts(["one", "two"], ids=["1", "2"]) == ["1", "2"]
    assert [d.id for d in await store.asimilarity_search("two", k=1)] == ["2"]
    assert (await store.asimilarity_search_with_score("one", k=1))[0][0].id == "1"
    assert len(await store.amax_marginal_relevance_search("one", k=2)) == 2
    assert [d.id for d in await store.aget_by_ids(["2"])] == ["2"]
    assert await store.adelete(["1"]) is True
    assert [d.id for d in await store.asimilarity_search("one", k=5)] == ["2"]
    made = await SimsearchVectorStore.afrom_texts(["x"], fake(), ids=["x"], path=tmp_path / "other")
    assert [d.id for d in await made.aget_by_ids(["x"])] == ["x"]


def test_the_documented_rag_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    page = (REPO / "docs" / "integrations.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    example = next(block for block in blocks if "as_retriever" in block)
    assert len(example.strip().splitlines()) <= 12
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # ids make a rerun an idempotent upsert
        exec(compile(example, "docs/integrations.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "only this context:\nBread keeps longer in a paper bag than in plastic.\n\nQuestion" in printed
    assert len(Index.open(tmp_path / "indexes" / "notes-rag")) == 3
