"""Haystack retrievers over :class:`~simsearch.integrations.haystack.SimsearchDocumentStore`:
embedding (cosine), BM25 (simsearch's lexical part) and hybrid (both, fused), as pipeline
components with Haystack's conventions (``filters``, ``top_k``, ``filter_policy``,
``to_dict``/``from_dict``; output ``{"documents": [...]}``)."""

from __future__ import annotations

from typing import Any

from simsearch.integrations import missing_extra

try:
    from haystack import Document, component, default_from_dict, default_to_dict
    from haystack.document_stores.types import FilterPolicy, apply_filter_policy
except ImportError as exc:  # pragma: no cover - depends on the extras installed
    raise missing_extra("haystack", exc) from None

from simsearch.integrations.haystack import SimsearchDocumentStore


class _Retriever:
    """What the three retrievers share: settings, filter policy and serialisation."""

    def __init__(
        self,
        document_store: SimsearchDocumentStore,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        filter_policy: FilterPolicy | str = FilterPolicy.REPLACE,
    ) -> None:
        if not isinstance(document_store, SimsearchDocumentStore):
            raise TypeError("document_store must be a SimsearchDocumentStore")
        if top_k <= 0:
            raise ValueError(f"top_k must be greater than 0, got {top_k}")
        self.document_store, self.filters, self.top_k = document_store, filters, top_k
        self.filter_policy = (
            filter_policy if isinstance(filter_policy, FilterPolicy) else FilterPolicy.from_str(filter_policy)
        )

    def _settings(
        self, filters: dict[str, Any] | None, top_k: int | None
    ) -> tuple[dict[str, Any] | None, int]:
        return apply_filter_policy(self.filter_policy, self.filters, filters), top_k or self.top_k

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            document_store=self.document_store,
            filters=self.filters,
            top_k=self.top_k,
            filter_policy=self.filter_policy.value,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        return default_from_dict(cls, data)


@component
class SimsearchEmbeddingRetriever(_Retriever):
    """The documents nearest a query embedding (``score`` is the cosine)."""

    @component.output_types(documents=list[Document])
    def run(
        self, query_embedding: list[float], filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, list[Document]]:
        filters, k = self._settings(filters, top_k)
        return {"documents": self.document_store.embedding_retrieval(query_embedding, filters, k)}


@component
class SimsearchBM25Retriever(_Retriever):
    """The best documents for a query text by BM25 (``score`` is the BM25 score)."""

    @component.output_types(documents=list[Document])
    def run(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, list[Document]]:
        filters, k = self._settings(filters, top_k)
        return {"documents": self.document_store.bm25_retrieval(query, filters, k)}


@component
class SimsearchHybridRetriever(_Retriever):
    """BM25 and cosine fused by simsearch's hybrid mode: give the query text and its embedding."""

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str,
        query_embedding: list[float],
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
    ) -> dict[str, list[Document]]:
        filters, k = self._settings(filters, top_k)
        return {"documents": self.document_store.hybrid_retrieval(query, query_embedding, filters, k)}
