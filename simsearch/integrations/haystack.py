"""Haystack adapter: :class:`SimsearchDocumentStore` (``pip install 'simsearch[haystack]'``).

A Haystack ``DocumentStore`` over a simsearch index directory the caller names: created on the
first write, reopened when it exists. Haystack documents carry their own embeddings (an
embedder component makes them), so the index records that its vectors come from outside
(manifest ``"embedding": {"kind": "haystack", ...}``); they are stored as unit float32 rows
(cosine), and ``filter_documents`` returns them so. A document without an embedding is stored
too (with a placeholder vector and ``"_embedded": false`` in its stored metadata, hidden from
Haystack): BM25 finds it, embedding and hybrid retrieval skip it. Retrievers for pipelines are
in :mod:`simsearch.integrations.haystack_retrievers`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.integrations import missing_extra

try:
    from haystack import Document as HDocument
    from haystack import default_from_dict, default_to_dict
    from haystack.document_stores.errors import DocumentStoreError, DuplicateDocumentError
    from haystack.document_stores.types import DuplicatePolicy
    from haystack.errors import FilterError
except ImportError as exc:  # pragma: no cover - depends on the extras installed
    raise missing_extra("haystack", exc) from None

from simsearch.errors import SimsearchError
from simsearch.search.hits import Hit
from simsearch.index import Index
from simsearch.integrations.external import GivenVectors, unit_rows
from simsearch.integrations.haystack_filters import to_where
from simsearch.integrations.where import all_of, matching_ids, run_where, search_where
from simsearch.readers.records import Document
from simsearch.store.manifest import MANIFEST, read_manifest


EMBEDDED = "_embedded"  # stored metadata key: False for a document written without an embedding
_ORIGIN = "haystack.dataclasses.Document.embedding"


class SimsearchDocumentStore:
    """A Haystack ``DocumentStore`` in the simsearch index directory ``path``.

    ``embedding_dim`` is the length of the documents' embeddings (768 by default, as Haystack's
    other stores); ``index_type`` as for :meth:`Index.build`. Ids are Haystack's; writes are
    atomic per call (``OVERWRITE`` deletes the old versions first, then writes).
    """

    def __init__(
        self, path: str | os.PathLike[str], embedding_dim: int = 768, index_type: str = "auto"
    ) -> None:
        self.path = Path(path)
        self.index_type = index_type
        self._lock = threading.RLock()
        self._index: Index | None = None
        if (self.path / MANIFEST).is_file():
            embedding_dim = int(read_manifest(self.path)["dim"])
        self.embedding_dim = embedding_dim
        self._vectors = GivenVectors("haystack", _ORIGIN, embedding_dim)
        if (self.path / MANIFEST).is_file():
            self._index = Index.open(self.path, encoder=self._vectors)

    def to_dict(self) -> dict[str, Any]:
        """Haystack serialisation: the directory and settings (the documents stay on disk)."""
        return default_to_dict(
            self, path=str(self.path), embedding_dim=self.embedding_dim, index_type=self.index_type
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimsearchDocumentStore:
        return default_from_dict(cls, data)

    @property
    def index(self) -> Index | None:
        """The underlying :class:`Index` (None until the first write)."""
        return self._index

    def count_documents(self) -> int:
        return 0 if self._index is None else len(self._index)

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[HDocument]:
        """The documents matching Haystack ``filters`` (all of them for none), in write order."""
        where = to_where(filters)
        index = self._index
        if index is None:
            return []
        try:
            ids = matching_ids(index, where)
        except SimsearchError as exc:
            raise FilterError(str(exc)) from exc
        return self._documents(index, ids)

    def write_documents(
        self, documents: list[HDocument], policy: DuplicatePolicy = DuplicatePolicy.NONE
    ) -> int:
        """Write ``documents``; an id already stored fails (``NONE``/``FAIL``), is kept (``SKIP``)
        or is replaced (``OVERWRITE``). Returns how many were written."""
        if not isinstance(documents, list) or not all(isinstance(d, HDocument) for d in documents):
            raise ValueError("write_documents expects a list of haystack Document objects")
        with self._lock:
            stored = (
                set() if self._index is None else {d.id for d in self._index.get([d.id for d in documents])}
            )
            batch: dict[str, HDocument] = {}
            for doc in documents:
                if doc.id in stored or doc.id in batch:
                    if policy in (DuplicatePolicy.NONE, DuplicatePolicy.FAIL):
                        raise DuplicateDocumentError(f"document {doc.id!r} is already in the store")
                    if policy == DuplicatePolicy.SKIP:
                        continue
                batch[doc.id] = doc
            if not batch:
                return 0
            replaced = [i for i in batch if i in stored]
            if replaced and self._index is not None:
                self._index.delete(replaced)
            self._write(list(batch.values()))
            return len(batch)

    def delete_documents(self, document_ids: list[str]) -> None:
        """Delete the documents of ``document_ids`` (ids not stored are ignored)."""
        with self._lock:
            if self._index is not None and document_ids:
                self._index.delete(list(document_ids))

    def embedding_retrieval(
        self, query_embedding: list[float], filters: dict[str, Any] | None = None, top_k: int = 10
    ) -> list[HDocument]:
        """The ``top_k`` documents nearest ``query_embedding`` (cosine in ``score``)."""
        index = self._index
        if index is None:
            return []
        where = all_of([to_where(filters) or {}, {EMBEDDED: True}])
        hits = self._searching(lambda: search_where(index, self._row(query_embedding), top_k, where))
        return self._scored(index, hits)

    def bm25_retrieval(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int = 10
    ) -> list[HDocument]:
        """The ``top_k`` best documents for ``query`` by BM25 (simsearch's lexical part)."""
        return self._text_search(query, None, filters, top_k, "lexical")

    def hybrid_retrieval(
        self, query: str, query_embedding: list[float], filters: dict[str, Any] | None = None, top_k: int = 10
    ) -> list[HDocument]:
        """BM25 and cosine fused (simsearch's hybrid mode) over the documents with embeddings."""
        extra = {EMBEDDED: True}
        return self._text_search(query, query_embedding, filters, top_k, "hybrid", extra)

    def _text_search(
        self,
        query: str,
        embedding: list[float] | None,
        filters: dict[str, Any] | None,
        top_k: int,
        mode: str,
        extra: dict[str, Any] | None = None,
    ) -> list[HDocument]:
        index = self._index
        if index is None:
            return []
        where = all_of([to_where(filters) or {}, extra or {}])
        vectors = [] if embedding is None else [self._row(embedding)[0]]

        def run() -> list[Hit]:
            with self._vectors.giving([query], vectors):
                return run_where(
                    where, lambda effective: list(index.search(query, top_k, mode=mode, where=effective))
                )

        return self._scored(index, self._searching(run))

    def _searching(self, run: Any) -> list[Hit]:
        try:
            return list(run())
        except FilterError:
            raise
        except SimsearchError as exc:
            raise DocumentStoreError(str(exc)) from exc

    def _row(self, embedding: list[float]) -> np.ndarray:
        return unit_rows([list(embedding)], 1, self._vectors)

    def _write(self, docs: list[HDocument]) -> None:
        records, vectors = [], []
        for doc in docs:
            if not isinstance(doc.content, str) or not doc.content.strip():
                raise DocumentStoreError(f"document {doc.id!r} has no text content; simsearch indexes text")
            embedded = doc.embedding is not None
            if embedded and len(doc.embedding or []) != self.embedding_dim:
                raise DocumentStoreError(
                    f"document {doc.id!r} has a {len(doc.embedding or [])}-dim embedding; "
                    f"this store holds {self.embedding_dim}-dim ones"
                )
            records.append(Document(doc.id, doc.content, {**doc.meta, EMBEDDED: embedded}))
            vectors.append(doc.embedding if embedded else _placeholder(self.embedding_dim))
        try:
            with self._vectors.giving([r.text for r in records], vectors):
                if self._index is None:
                    self._index = Index.build(records, self.path, self._vectors, index_type=self.index_type)
                else:
                    self._index.add(records)
        except SimsearchError as exc:
            raise DocumentStoreError(str(exc)) from exc

    def _documents(self, index: Index, ids: list[str]) -> list[HDocument]:
        found, matrix = index.get_vectors(ids)
        vectors = dict(zip(found, matrix))
        return [to_haystack(doc.id, doc.text, doc.metadata, vectors.get(doc.id)) for doc in index.get(ids)]

    def _scored(self, index: Index, hits: list[Hit]) -> list[HDocument]:
        found, matrix = index.get_vectors([h.id for h in hits])
        vectors = dict(zip(found, matrix))
        return [to_haystack(h.id, h.text, h.metadata, vectors.get(h.id), h.score) for h in hits]


def to_haystack(
    doc_id: str, text: str, metadata: dict[str, Any], vector: Any, score: float | None = None
) -> HDocument:
    """A stored document as a Haystack ``Document`` (its embedding only if it was given one)."""
    meta = dict(metadata)
    embedded = meta.pop(EMBEDDED, True)
    embedding = [float(x) for x in vector] if embedded and vector is not None else None
    return HDocument(id=doc_id, content=text, meta=meta, embedding=embedding, score=score)


def _placeholder(dim: int) -> list[float]:
    row = [0.0] * dim
    row[0] = 1.0
    return row
