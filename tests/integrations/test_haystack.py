"""Haystack beyond its standard suite: persistence, retrievers as pipeline components with
to_dict/from_dict, a pipeline end to end, filters mapped onto `where`, the manifest's origin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("haystack", reason="needs simsearch[haystack]")

from haystack import Document, Pipeline, component  # noqa: E402
from haystack.errors import FilterError  # noqa: E402

from simsearch.integrations.haystack import SimsearchDocumentStore  # noqa: E402
from simsearch.integrations.haystack_filters import to_where  # noqa: E402
from simsearch.integrations.haystack_retrievers import (  # noqa: E402
    SimsearchBM25Retriever,
    SimsearchEmbeddingRetriever,
    SimsearchHybridRetriever,
)
from tests.fakes import FakeEncoder  # noqa: E402

TEXTS = {
    "bread": ("how to keep bread fresh and not stale", {"lang": "en", "year": 2021}),
    "cat": ("the cat sat on the mat", {"lang": "en", "year": 2019}),
    "subway": ("서울 지하철 타는 방법", {"lang": "ko", "year": 2022}),
    "kimchi": ("김치찌개를 끓이는 법", {"lang": "ko", "year": 2018}),
}


@component
class FakeTextEmbedder:
    """Stands in for a Haystack text embedder (the model is not the point here)."""

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, list[float]]:
        return {"embedding": FakeEncoder().encode([text])[0].tolist()}


@pytest.fixture
def store(tmp_path: Path) -> SimsearchDocumentStore:
    store = SimsearchDocumentStore(tmp_path / "hs", embedding_dim=16)
    encoder = FakeEncoder()
    docs = [
        Document(id=i, content=t, meta=m, embedding=encoder.encode([t])[0].tolist())
        for i, (t, m) in TEXTS.items()
    ]
    assert store.write_documents(docs) == 4
    return store


def test_store_persists_and_records_the_origin(store: SimsearchDocumentStore, tmp_path: Path) -> None:
    store.write_documents([Document(id="bare", content="a document without embedding")])
    manifest = json.loads((tmp_path / "hs" / "manifest.json").read_text())
    assert manifest["embedding"]["kind"] == "haystack" and manifest["dim"] == 16
    again = SimsearchDocumentStore.from_dict(store.to_dict())
    assert again.count_documents() == 5
    bare = again.filter_documents({"field": "meta.lang", "operator": "==", "value": "ko"})
    assert [d.id for d in bare] == ["subway", "kimchi"]
    (doc,) = [d for d in again.filter_documents() if d.id == "bare"]
    assert doc.embedding is None and doc.meta == {}
    # embedding retrieval skips the document without an embedding; BM25 finds it
    query = FakeEncoder().encode(["a document without embedding"])[0].tolist()
    assert "bare" not in [d.id for d in again.embedding_retrieval(query, top_k=10)]
    assert [d.id for d in again.bm25_retrieval("document without embedding", top_k=1)] == ["bare"]


def test_pipeline_end_to_end_and_serialisation(store: SimsearchDocumentStore) -> None:
    pipe = Pipeline()
    pipe.add_component("embedder", FakeTextEmbedder())
    pipe.add_component("retriever", SimsearchEmbeddingRetriever(store, top_k=2))
    pipe.connect("embedder.embedding", "retriever.query_embedding")
    out = pipe.run({"embedder": {"text": "서울 지하철 타는 방법"}})
    docs = out["retriever"]["documents"]
    assert docs[0].id == "subway" and docs[0].score == pytest.approx(1.0, abs=1e-5) and len(docs) == 2

    # Haystack deserialises only classes from modules the caller trusts
    trusted = ["simsearch.integrations", __name__]
    again = Pipeline.from_dict(pipe.to_dict(), allowed_modules=trusted)
    retriever = again.get_component("retriever")
    assert isinstance(retriever, SimsearchEmbeddingRetriever) and retriever.top_k == 2
    assert retriever.document_store.path == store.path
    same = again.run({"embedder": {"text": "서울 지하철 타는 방법"}})["retriever"]["documents"]
    assert [d.id for d in same] == [d.id for d in docs]


def test_bm25_and_hybrid_retrievers(store: SimsearchDocumentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    bm25 = SimsearchBM25Retriever(store, filters={"field": "meta.lang", "operator": "==", "value": "en"})
    got = bm25.run(query="stale bread")["documents"]
    assert [d.id for d in got] == ["bread"]
    pipe = Pipeline()
    pipe.add_component("embedder", FakeTextEmbedder())
    pipe.add_component("retriever", SimsearchHybridRetriever(store, top_k=3))
    pipe.connect("embedder.embedding", "retriever.query_embedding")
    query = "the cat sat on the mat"
    out = pipe.run({"embedder": {"text": query}, "retriever": {"query": query}})["retriever"]["documents"]
    assert out[0].id == "cat" and len(out) == 3
    monkeypatch.setenv("HAYSTACK_DESERIALIZATION_ALLOWLIST", "simsearch.integrations")
    again = SimsearchHybridRetriever.from_dict(SimsearchHybridRetriever(store, top_k=3).to_dict())
    assert again.top_k == 3 and again.filter_policy == SimsearchHybridRetriever(store).filter_policy


def test_filters_map_onto_where(store: SimsearchDocumentStore) -> None:
    assert to_where(
        {
            "operator": "AND",
            "conditions": [
                {"field": "meta.lang", "operator": "==", "value": "ko"},
                {"field": "meta.year", "operator": ">=", "value": 2020},
            ],
        }
    ) == {"lang": {"=": "ko"}, "year": {">=": 2020}}
    assert to_where({"field": "meta.year", "operator": ">", "value": None}) == {"$or": []}
    ids = store.filter_documents(
        {
            "operator": "AND",
            "conditions": [
                {"field": "meta.lang", "operator": "==", "value": "ko"},
                {"field": "meta.year", "operator": ">=", "value": 2020},
            ],
        }
    )
    assert [d.id for d in ids] == ["subway"]
    with pytest.raises(FilterError, match="only metadata fields"):
        store.filter_documents({"field": "content", "operator": "==", "value": "x"})
    assert store.filter_documents({"field": "meta.nobody", "operator": "==", "value": 1}) == []


def test_cli_names_the_haystack_store_for_queries(store: SimsearchDocumentStore) -> None:
    from click.testing import CliRunner

    from simsearch.cli.main import main

    refused = CliRunner().invoke(main, ["query", "hs", "bread", "--index-dir", str(store.path.parent)])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "holds vectors from the haystack embedding" in refused.output
    assert refused.output.strip().endswith("simsearch.integrations.haystack.SimsearchDocumentStore(path)")
    listed = CliRunner().invoke(main, ["list", "--index-dir", str(store.path.parent)])
    assert listed.exit_code == 0 and "hs" in listed.output
