"""Reading the stored documents of an index, whatever its topology: ids, documents, vectors,
Arrow and file exports. :class:`~simsearch.index.api.Index` inherits these; they read the
generation opened in this process (:meth:`_shard_set`; a Ray index opens it on first need)."""

from __future__ import annotations

import os
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from simsearch.readers import Document
from simsearch.store.faiss_file import from_blobs
from simsearch.store.generation import Row, Store
from simsearch.store.manifest import Manifest
from simsearch.store.shardset import ShardSet
from simsearch.validate import lookup_ids

if TYPE_CHECKING:
    from simsearch.index.export import Source


class DocumentAccess:
    """The document-reading methods of :class:`~simsearch.index.api.Index`."""

    @abstractmethod
    def _shard_set(self) -> ShardSet:
        """The current generation opened in this process."""

    @abstractmethod
    def _identity(self) -> Manifest:
        """The manifest naming the index's model."""

    def local_stores(self) -> list[Store]:
        """The current generation's stores opened in this process, in shard order (a Ray index
        opens them on first need): for tools that read the files themselves (``eval ann``)."""
        return list(self._shard_set().stores)

    def ids(self) -> list[str]:
        """Every document id, in storage order (shard by shard)."""
        return self._shard_set().ids()

    def get(self, ids: Iterable[str]) -> list[Document]:
        """The stored documents of ``ids``, in the order given; ids not in the index are skipped."""
        return [Document(doc_id, text, metadata) for doc_id, text, metadata, _ in self._rows(ids, False)]

    def get_vectors(self, ids: Iterable[str]) -> tuple[list[str], np.ndarray]:
        """The stored vectors of ``ids`` that exist (float32 unit rows), with those ids in order."""
        rows = self._rows(ids, True)
        dim = self._identity().dim
        blobs = [r[3] for r in rows if r[3] is not None]  # asked for: every row has its vector
        matrix = from_blobs(blobs, dim) if blobs else np.zeros((0, dim), np.float32)
        return [r[0] for r in rows], matrix

    def to_arrow(self, *, vectors: bool = True, metadata: str = "json") -> Any:
        """Every document as a ``pyarrow.Table``: ``id``, ``text``, ``metadata`` (JSON text, or
        one column per key with ``metadata="columns"``) and ``vector`` (fixed-size list of
        float32); the schema metadata records the model. Needs the ``parquet`` extra."""
        from simsearch.index.export import to_arrow

        return to_arrow(self._export_source(), vectors=vectors, metadata=metadata)

    def export(
        self,
        output: str | os.PathLike[str],
        *,
        format: str = "parquet",
        vectors: bool = False,
        metadata: str = "json",
        force: bool = False,
        stdout: Any = None,
    ) -> int:
        """Write every document to a Parquet or JSON-lines file (``-``: ``stdout``, JSON lines);
        see :meth:`to_arrow`. A file appears complete or not at all. Returns the count written."""
        from simsearch.index.export import export

        return export(
            self._export_source(),
            output,
            fmt=format,
            vectors=vectors,
            metadata=metadata,
            force=force,
            stdout=stdout,
        )

    def _rows(self, ids: Iterable[str], vectors: bool) -> list[Row]:
        wanted = lookup_ids(ids)
        found = self._shard_set().rows_by_id(wanted, vectors)
        return [found[i] for i in wanted if i in found]

    def _export_source(self) -> Source:
        """Every shard, in shard order, described as one index (its name and total count)."""
        from simsearch.index.export import Source

        shards = self._shard_set()  # one generation, even if a write reopens meanwhile
        return Source(list(shards.stores), shards.identity.replace(count=shards.count))
