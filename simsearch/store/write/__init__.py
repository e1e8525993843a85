"""Every write of an existing index, plain or sharded: the one place that chooses the layout's
writer (as :func:`simsearch.store.write.bulk.open_sink` chooses a build's sink), so the library face
calls one function per write whatever the topology."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from simsearch.store.manifest import Manifest
from simsearch.store.shards import is_sharded

if TYPE_CHECKING:
    from simsearch.encode import Encoder
    from simsearch.readers.records import Document
    from simsearch.store.write.updates import AddStats, CompactStats, DeleteStats


def add(
    path: Path,
    documents: Iterable[Document | str],
    identity: Manifest,
    encoder: Callable[[], Encoder],
    *,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> AddStats:
    """Upsert ``documents`` by id as one atomic write (see :meth:`simsearch.Index.add`)."""
    if is_sharded(path):
        from simsearch.store.write.sharded import add_sharded

        return add_sharded(path, documents, identity, encoder, batch_size=batch_size, progress=progress)
    from simsearch.store.write.updates import add_documents

    return add_documents(path, documents, identity, encoder, batch_size=batch_size, progress=progress)


def delete(path: Path, ids: Iterable[str], encoder: Callable[[], Encoder]) -> DeleteStats:
    """Delete documents by id as one atomic write."""
    if is_sharded(path):
        from simsearch.store.write.sharded import delete_sharded

        return delete_sharded(path, ids, encoder)
    from simsearch.store.write.updates import delete_documents

    return delete_documents(path, ids, encoder)


def compact(path: Path, encoder: Callable[[], Encoder]) -> CompactStats:
    """Reclaim the space of deleted and replaced documents as one atomic write."""
    if is_sharded(path):
        from simsearch.store.write.sharded import compact_sharded

        return compact_sharded(path, encoder)
    from simsearch.store.write.updates import compact_index

    return compact_index(path, encoder)


def reindex_lexical(path: Path, analyzer: str | None = None) -> int:
    """(Re)build the lexical part of every shard as one atomic write (``analyzer``: a new one, or
    None to keep the index's); the new generation."""
    if is_sharded(path):
        from simsearch.store.write.sharded import reindex_lexical_sharded

        return reindex_lexical_sharded(path, analyzer)
    from simsearch.store.write.updates import reindex_lexical as reindex_plain

    return reindex_plain(path, analyzer)
