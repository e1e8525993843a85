"""LlamaIndex adapter: :class:`SimsearchVectorStore` on ``BasePydanticVectorStore``
(``pip install 'simsearch[llamaindex]'``).

The store is a simsearch index directory (created on the first ``add``, reopened when it
exists). Two ways to embed, fixed when the index is created:

- ``encoder=None`` (default): nodes carry their own embeddings (LlamaIndex's ``embed_model``
  made them); the manifest records that the vectors come from outside
  (``"embedding": {"kind": "llamaindex", ...}``) and queries need a query embedding.
- ``encoder=...`` (a simsearch encoder, e.g. ``simsearch.encode.torch_encoder.Encoder()``):
  simsearch embeds node texts and query strings with its own model (a node's embedding is not
  used); ``is_embedding_query`` is then False, so LlamaIndex sends the query text.

Nodes are stored as LlamaIndex's other stores store them (``node_to_metadata_dict``: the node
as JSON under ``_node_content``, ``ref_doc_id`` at the top of the metadata for deletes).
Query modes: ``default`` (cosine), ``hybrid`` (BM25 and cosine fused), ``text_search`` and
``sparse`` (BM25); filters: see :mod:`simsearch.integrations.llamaindex_filters`.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any, Sequence

from simsearch.integrations import missing_extra

try:
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode, MetadataMode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
except ImportError as exc:  # pragma: no cover - depends on the extras installed
    raise missing_extra("llamaindex", exc) from None

from simsearch.encode import Encoder  # (a Protocol: loads no model; pydantic resolves the field's type)
from simsearch.errors import InputError, QueryError
from simsearch.search.hits import Hit
from simsearch.index import Index
from simsearch.integrations.external import GivenVectors, unit_rows
from simsearch.integrations.llamaindex_filters import to_where
from simsearch.integrations.where import all_of, matching_ids, run_where, search_where
from simsearch.readers.records import Document
from simsearch.store.manifest import MANIFEST, read_manifest

_ORIGIN = "llama_index.core.schema.BaseNode.embedding"
_MODES = {
    VectorStoreQueryMode.DEFAULT: "dense",
    VectorStoreQueryMode.HYBRID: "hybrid",
    VectorStoreQueryMode.TEXT_SEARCH: "lexical",
    VectorStoreQueryMode.SPARSE: "lexical",
}


class SimsearchVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store in the simsearch index directory ``path``."""

    stores_text: bool = True
    flat_metadata: bool = False
    path: str
    index_type: str = "auto"

    _index: Index | None = PrivateAttr(default=None)
    _vectors: GivenVectors | None = PrivateAttr(default=None)
    _encoder: Encoder | None = PrivateAttr(default=None)

    def __init__(self, path: str | Path, *, encoder: Encoder | None = None, index_type: str = "auto") -> None:
        super().__init__(path=str(path), index_type=index_type)  # type: ignore[call-arg]  # pydantic fields
        own = encoder is not None
        if (Path(path) / MANIFEST).is_file():
            own = "embedding" not in read_manifest(Path(path))
            if own and encoder is None:
                from simsearch.encode.torch_encoder import Encoder as TorchEncoder

                encoder = TorchEncoder(str(read_manifest(Path(path))["model_path"]))
        if own:
            self._encoder = encoder
        else:
            dim = int(read_manifest(Path(path))["dim"]) if (Path(path) / MANIFEST).is_file() else None
            self._vectors = GivenVectors("llamaindex", _ORIGIN, dim)
        self.is_embedding_query = not own
        if (Path(path) / MANIFEST).is_file():
            self._index = Index.open(path, encoder=self._embedder())

    @classmethod
    def class_name(cls) -> str:
        return "SimsearchVectorStore"

    def _embedder(self) -> Encoder:
        """What turns texts into this store's vectors: simsearch's encoder, or the nodes' own."""
        if self._encoder is not None:
            return self._encoder
        if self._vectors is not None:
            return self._vectors
        raise RuntimeError("the store was not initialised")  # __init__ sets one of the two

    @property
    def client(self) -> Index | None:
        """The underlying :class:`Index` (None until the first ``add``)."""
        return self._index

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upsert ``nodes`` by node id; returns their ids."""
        if not nodes:
            return []
        records, vectors = [], []
        for node in nodes:
            text = node.get_content(metadata_mode=MetadataMode.NONE)
            metadata = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
            records.append(Document(node.node_id, text, metadata, f"node {node.node_id}"))
            if self._vectors is not None:
                if node.embedding is None:
                    raise InputError(
                        f"node {node.node_id!r} has no embedding; this store holds the nodes' own "
                        "embeddings (give it encoder=... to let simsearch embed)"
                    )
                vectors.append(node.embedding)
        encoder = self._embedder()
        texts = [r.text for r in records]
        with self._vectors.giving(texts, vectors) if self._vectors is not None else nullcontext():
            if self._index is None:
                self._index = Index.build(records, self.path, encoder, index_type=self.index_type)
            else:
                self._index.add(records)
        return [r.id for r in records]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the document ``ref_doc_id``."""
        if self._index is not None:
            ids = matching_ids(self._index, {"ref_doc_id": ref_doc_id})
            if ids:
                self._index.delete(ids)

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        """Delete the nodes of ``node_ids`` that match ``filters`` (either may be left out)."""
        if self._index is not None:
            ids = [n.node_id for n in self.get_nodes(node_ids, filters)]
            if ids:
                self._index.delete(ids)

    def clear(self) -> None:
        """Delete every node."""
        if self._index is not None and len(self._index):
            self._index.delete(self._index.ids())

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """The stored nodes of ``node_ids`` (all for None) that match ``filters``."""
        index = self._index
        if index is None:
            return []
        ids = matching_ids(index, to_where(filters))
        if node_ids is not None:
            wanted = set(node_ids)
            ids = [i for i in ids if i in wanted]
        return [_node(doc.text, doc.metadata) for doc in index.get(ids)]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` best nodes for ``query`` in its mode, within its filters."""
        index = self._index
        if query.mode not in _MODES:
            raise QueryError(
                f"query mode {query.mode.value!r} is not supported; use default, hybrid, text_search or sparse"
            )
        if query.node_ids:
            raise QueryError("querying within node_ids is not supported; filter by metadata or doc_ids")
        if index is None:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        where = all_of([to_where(query.filters) or {}, _doc_ids(query.doc_ids)])
        hits = self._search(index, query, _MODES[query.mode], where)
        return VectorStoreQueryResult(
            nodes=[_node(h.text, h.metadata) for h in hits],
            similarities=[h.score for h in hits],
            ids=[h.id for h in hits],
        )

    def _search(self, index: Index, query: VectorStoreQuery, mode: str, where: dict[str, Any]) -> list[Hit]:
        k = query.similarity_top_k
        if mode == "dense" and self._vectors is not None:
            if query.query_embedding is None:
                raise QueryError(
                    "this store holds the nodes' own embeddings: the query needs query_embedding"
                )
            return search_where(index, unit_rows([query.query_embedding], 1, self._vectors), k, where)
        if not query.query_str:
            raise QueryError(f"{mode} search needs the query text (query_str)")
        vectors = [query.query_embedding] if query.query_embedding is not None else []
        if mode == "hybrid" and self._vectors is not None and not vectors:
            raise QueryError("hybrid search in this store needs both query_str and query_embedding")
        with self._vectors.giving([query.query_str], vectors) if self._vectors is not None else nullcontext():
            text = query.query_str
            return run_where(where, lambda effective: list(index.search(text, k, mode=mode, where=effective)))


def _doc_ids(doc_ids: list[str] | None) -> dict[str, Any]:
    return {} if not doc_ids else {"ref_doc_id": {"in": list(doc_ids)}}


def _node(text: str, metadata: dict[str, Any]) -> BaseNode:
    return metadata_dict_to_node(metadata, text)
