"""LlamaIndex: a VectorStoreIndex over SimsearchVectorStore, retrieved through LlamaIndex's own
retriever and query engine (MockLLM, MockEmbedding); the same documents as `Index.search` for
the same query and filter; filters, deletes by document, get_nodes, both ways to embed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_index.core", reason="needs simsearch[llamaindex]")

from llama_index.core import Document, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.embeddings import MockEmbedding  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from simsearch.errors import QueryError  # noqa: E402
from simsearch.index import Index  # noqa: E402
from simsearch.integrations.llamaindex import SimsearchVectorStore  # noqa: E402
from simsearch.integrations.llamaindex_filters import to_where  # noqa: E402

TEXTS = [
    ("bread", "how to keep bread fresh and not stale", {"lang": "en", "year": 2021}),
    ("cat", "the cat sat on the mat", {"lang": "en", "year": 2019}),
    ("engine", "a fast search engine for long documents", {"lang": "en", "year": 2023}),
    ("subway", "서울 지하철은 편리하다", {"lang": "ko", "year": 2022}),
    ("stew", "김치찌개를 끓이는 법", {"lang": "ko", "year": 2018}),
]


def documents() -> list[Document]:
    return [Document(text=t, metadata=m, id_=i) for i, t, m in TEXTS]


def build(store: SimsearchVectorStore) -> VectorStoreIndex:
    context = StorageContext.from_defaults(vector_store=store)
    return VectorStoreIndex.from_documents(
        documents(), storage_context=context, embed_model=MockEmbedding(embed_dim=8)
    )


@pytest.fixture
def own(tmp_path: Path, bundled_encoder: Any) -> tuple[SimsearchVectorStore, VectorStoreIndex]:
    store = SimsearchVectorStore(tmp_path / "li", encoder=bundled_encoder)
    return store, build(store)


def ids_of(nodes: Any) -> list[str]:
    return [n.node.ref_doc_id for n in nodes]


def test_retriever_matches_index_search(own: tuple[SimsearchVectorStore, VectorStoreIndex]) -> None:
    store, index = own
    assert store.client is not None and not store.is_embedding_query
    filters = MetadataFilters(filters=[MetadataFilter(key="year", value=2019, operator=FilterOperator.GTE)])
    query = "keeping bread from going stale"
    got = index.as_retriever(similarity_top_k=3, filters=filters).retrieve(query)
    opened = Index.open(store.path)
    want = opened.search(query, 3, mode="dense", where={"year": {">=": 2019}})
    assert [n.node.node_id for n in got] == [h.id for h in want] and ids_of(got)[0] == "bread"
    assert [n.score for n in got] == pytest.approx(
        [h.score for h in want], abs=1e-5
    )  # torch vs ONNX query path

    hybrid = index.as_retriever(similarity_top_k=2, vector_store_query_mode="hybrid").retrieve("서울 지하철")
    assert [n.node.node_id for n in hybrid] == [h.id for h in opened.search("서울 지하철", 2, mode="hybrid")]
    assert ids_of(hybrid)[0] == "subway"

    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=2, filters=filters)
    response = engine.query(query)
    assert ids_of(response.source_nodes) == [ids_of(got)[0], ids_of(got)[1]] and str(response)


def test_nodes_with_their_own_embeddings(tmp_path: Path) -> None:
    store = SimsearchVectorStore(tmp_path / "ext")
    index = build(store)
    manifest = json.loads((tmp_path / "ext" / "manifest.json").read_text())
    assert manifest["embedding"]["kind"] == "llamaindex" and manifest["dim"] == 8
    ko = MetadataFilters(filters=[MetadataFilter(key="lang", value="ko")])
    got = index.as_retriever(similarity_top_k=5, filters=ko).retrieve("anything")
    assert sorted(ids_of(got)) == ["stew", "subway"]  # MockEmbedding: every vector alike

    again = SimsearchVectorStore(tmp_path / "ext")  # reopened: a new process would do the same
    assert again.is_embedding_query and len(again.get_nodes()) == 5
    again.delete("cat")
    assert sorted(str(n.ref_doc_id) for n in again.get_nodes()) == ["bread", "engine", "stew", "subway"]
    (node,) = again.get_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="year", value=2023)]))
    assert node.get_content() == "a fast search engine for long documents" and node.metadata["lang"] == "en"


def test_filters_map_and_refuse(own: tuple[SimsearchVectorStore, VectorStoreIndex]) -> None:
    store, _ = own
    both = MetadataFilters(
        filters=[
            MetadataFilter(key="lang", value="en"),
            MetadataFilter(key="year", value=[2019, 2023], operator=FilterOperator.IN),
        ]
    )
    assert to_where(both) == {"lang": {"=": "en"}, "year": {"in": [2019, 2023]}}
    assert sorted(str(n.ref_doc_id) for n in store.get_nodes(filters=both)) == ["cat", "engine"]
    either = MetadataFilters(
        filters=[MetadataFilter(key="lang", value="ko"), MetadataFilter(key="year", value=2023)],
        condition=FilterCondition.OR,
    )
    assert to_where(either) == {"$or": [{"lang": {"=": "ko"}}, {"year": {"=": 2023}}]}
    assert to_where(
        MetadataFilters(filters=[MetadataFilter(key="a", value=1)], condition=FilterCondition.NOT)
    ) == {"$not": {"a": {"=": 1}}}
    with pytest.raises(QueryError, match="'text_match' has no simsearch equivalent"):
        to_where(
            MetadataFilters(filters=[MetadataFilter(key="a", value="x", operator=FilterOperator.TEXT_MATCH)])
        )


def test_or_filter_through_the_retriever(own: tuple[SimsearchVectorStore, VectorStoreIndex]) -> None:
    _, index = own
    either = MetadataFilters(
        filters=[MetadataFilter(key="lang", value="ko"), MetadataFilter(key="year", value=2023)],
        condition=FilterCondition.OR,
    )
    got = index.as_retriever(similarity_top_k=5, filters=either).retrieve("search")
    assert sorted(ids_of(got)) == ["engine", "stew", "subway"]
