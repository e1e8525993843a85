"""LangChain adapters: :class:`SimsearchEmbeddings` and :class:`SimsearchVectorStore`.

Thin adapters over the library (``pip install -e '.[langchain]'`` in the checkout): the embeddings are
simsearch's :class:`~simsearch.encode.torch_encoder.Encoder`, the store is an :class:`Index`
directory on disk. The store takes any LangChain ``Embeddings``; with another embedding than
:class:`SimsearchEmbeddings` its vectors are L2-normalised (cosine) and the index's manifest
records the embedding (``"embedding": {"kind": "langchain", "class": ..., "dim": ...}``), so the
CLI can list, export or verify it but refuses queries, which need that embedding.

``filter=`` takes ``{"field": value}`` (equality) or ``{"field": {"$op": value}}`` with ``$eq``,
``$ne``, ``$lt``, ``$lte``, ``$gt``, ``$gte``, ``$in``, ``$nin``, ``$exists``, several fields
meaning all of them, nested in ``$and``/``$or``/``$not`` (simsearch's ``where``, applied before
ranking); or a callable ``Document -> bool``, applied to a widened set of nearest candidates
(see :func:`filtered_search`). Either way the k results are the k nearest documents that match.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from simsearch.integrations import missing_extra

try:
    from langchain_core.documents import Document as LCDocument
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
    from langchain_core.vectorstores.utils import maximal_marginal_relevance
except ImportError as exc:  # pragma: no cover - depends on the extras installed
    raise missing_extra("langchain", exc) from None

from simsearch.errors import InputError
from simsearch.index import Index
from simsearch.integrations.langchain_embeddings import EmbeddingEncoder, SimsearchEmbeddings, unit_rows
from simsearch.integrations.langchain_filters import Filter, filtered_search, hit_document, to_where
from simsearch.readers import Document
from simsearch.store.manifest import MANIFEST, read_manifest

if TYPE_CHECKING:
    from simsearch.encode import Encoder

# Re-exported: the embeddings and the filters live in their own modules.
__all__ = ["SimsearchEmbeddings", "SimsearchVectorStore", "filtered_search", "to_where", "unit_rows"]


class SimsearchVectorStore(VectorStore):
    """A LangChain ``VectorStore`` over a simsearch index directory.

    ``path`` is the index directory: opened if it holds an index (whose model or recorded
    embedding must match ``embedding``), created on the first ``add_*`` otherwise; with no
    ``path`` the store lives in a temporary directory removed with the object. Documents are
    upserted by id (generated ``uuid4`` ids when none are given); scores are cosine similarities.
    """

    def __init__(
        self,
        embedding: Embeddings,
        path: str | os.PathLike[str] | None = None,
        *,
        index_type: str = "auto",
        target_recall: float = 0.95,
    ) -> None:
        self._embedding = embedding
        self._tmp = None
        if path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="simsearch-langchain-")
            path = Path(self._tmp.name) / "index"
        self.path = Path(path)
        self.index_type, self.target_recall = index_type, target_recall
        self._lock = threading.RLock()
        self._encoder: Encoder
        if isinstance(embedding, SimsearchEmbeddings):
            self._encoder = embedding.encoder
        else:
            external = EmbeddingEncoder(embedding)
            if (self.path / MANIFEST).is_file():
                external.dim = read_manifest(self.path).dim
            self._encoder = external
        self._index: Index | None = None
        if (self.path / MANIFEST).is_file():
            self._index = Index.open(self.path, encoder=self._encoder)  # refuses another model

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @property
    def index(self) -> Index | None:
        """The underlying :class:`Index` (None while the store is empty and never written)."""
        return self._index

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        texts = list(texts)
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        # LangChain's add_documents passes None for documents without an id
        given: list[str | None] = list(ids) if ids is not None else [None] * len(texts)
        if not len(texts) == len(metadatas) == len(given):
            raise InputError(
                f"{len(texts)} texts, {len(metadatas)} metadatas and {len(given)} ids: "
                "give one of each per text"
            )
        out = [str(i) if i is not None else str(uuid.uuid4()) for i in given]
        if not texts:
            return []
        docs: dict[str, Document] = {}  # an id given twice: the later text wins, as two calls would
        for number, (doc_id, text, metadata) in enumerate(zip(out, texts, metadatas)):
            if not isinstance(text, str):
                raise InputError(
                    f"texts[{number}] must be a str, got {type(text).__name__}; decode bytes first"
                )
            if not text.strip():
                raise InputError(f"texts[{number}] is empty; simsearch does not index empty texts")
            docs.pop(doc_id, None)
            docs[doc_id] = Document(doc_id, text, dict(metadata or {}), f"texts[{number}]")
        with self._lock:
            if self._index is None:
                self._index = Index.build(
                    list(docs.values()),
                    self.path,
                    self._encoder,
                    index_type=self.index_type,
                    target_recall=self.target_recall,
                )
            else:
                self._index.add(list(docs.values()))
        return out

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete ``ids`` (ids not stored are ignored); ``None`` deletes every document."""
        with self._lock:
            if self._index is None:
                return True
            if ids is None:
                ids = self._index.ids()
            if ids:
                self._index.delete(ids)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[LCDocument]:
        if self._index is None:
            return []
        return [_to_langchain(doc) for doc in self._index.get(ids)]

    def similarity_search(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[LCDocument]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter=filter)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[LCDocument, float]]:
        if self._index is None:
            return []
        return self.similarity_search_with_score_by_vector(self._embedding.embed_query(query), k, filter)

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[LCDocument]:
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, filter)]

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter = None
    ) -> list[tuple[LCDocument, float]]:
        index = self._index
        if index is None:
            return []
        hits = filtered_search(index, self._query_row(embedding), k, filter)
        return [(hit_document(hit), hit.score) for hit in hits]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> list[LCDocument]:
        if self._index is None:
            return []
        return self.max_marginal_relevance_search_by_vector(
            self._embedding.embed_query(query), k, fetch_k, lambda_mult, filter=filter
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> list[LCDocument]:
        index = self._index
        if index is None:
            return []
        query = self._query_row(embedding)
        hits = filtered_search(index, query, max(fetch_k, k), filter)
        if not hits:
            return []
        ids, vectors = index.get_vectors([hit.id for hit in hits])
        by_id = {hit.id: hit for hit in hits}
        chosen = maximal_marginal_relevance(query[0], vectors.tolist(), lambda_mult=lambda_mult, k=k)
        return [hit_document(by_id[ids[n]]) for n in chosen]

    def _query_row(self, embedding: Sequence[float]) -> np.ndarray:
        return unit_rows([list(embedding)], 1, self._encoder)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # LangChain's relevance for cosine is the similarity itself, which it wants in [0, 1]
        return lambda score: min(1.0, max(0.0, score))

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> SimsearchVectorStore:
        store = cls(embedding, path, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store


def _to_langchain(doc: Document) -> LCDocument:
    return LCDocument(page_content=doc.text, metadata=doc.metadata, id=doc.id)
