"""ShardedIndex: an :class:`~simsearch.index.Index` over N shards, searched in parallel and merged.

:meth:`Index.open` returns one for a sharded directory and :meth:`Index.build` makes one when
given ``shards=N``; it has the same public methods. A query runs on every shard at once (threads:
FAISS and numpy release the GIL) and the shards' top-k lists are merged by score; on exact
shards the merged top-k is exactly an unsharded exact index's.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import numpy as np

from simsearch.index import Hit, Index
from simsearch.readers import Document
from simsearch.store.manifest import Manifest
from simsearch.store.reader import Store
from simsearch.store.shards import open_parts, plain_view

if TYPE_CHECKING:
    from simsearch.store.updates import AddStats, CompactStats, DeleteStats
    from simsearch.store.verify import VerifyReport


class ShardedIndex(Index):
    """A sharded index directory; see :mod:`simsearch.store.shards` for the layout."""

    def __init__(self, path: Path, manifest: Mapping[str, Any], stores: list[Store],
                 encoder: Any = None) -> None:
        self._path = path
        self._top = manifest
        self._stores = stores
        self._encoder = encoder
        self._exported = encoder is not None
        self.last_build = None
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def open_path(cls, path: Path, encoder: Any = None) -> ShardedIndex:
        manifest, stores = open_parts(path)
        return cls(path, manifest, stores, encoder)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(self._top)

    @property
    def shards(self) -> int:
        return len(self._stores)

    def __len__(self) -> int:
        return int(self._top["count"])

    def __repr__(self) -> str:
        m = self._top
        return (f"ShardedIndex({str(self.path)!r}, shards={self.shards}, count={m['count']}, "
                f"model={m['model']!r}, pooling={m['pooling']!r})")

    def _identity(self) -> Manifest:
        return plain_view(self._top, self._stores[0])

    def search_vectors(self, vectors: np.ndarray, k: int = 10, *,
                       min_score: float | None = None) -> list[list[Hit]]:
        """Every shard's top ``k`` at once, merged by score (ties: lower shard number first)."""
        stores = self._stores  # one generation of every shard for the whole request
        if self._pool is None:
            self._pool = ThreadPoolExecutor(min(len(stores), os.cpu_count() or 1),
                                            thread_name_prefix="shard-search")
        answers = list(self._pool.map(lambda store: store.faiss.search(vectors, k), stores))
        scores = np.hstack([s for s, _ in answers])
        rowids = np.hstack([r for _, r in answers])
        owner = np.hstack([np.full(r.shape, n) for n, (_, r) in enumerate(answers)])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        keep = [[(float(scores[q, c]), int(owner[q, c]), int(rowids[q, c])) for c in row
                 if rowids[q, c] >= 0 and np.isfinite(scores[q, c])
                 and (min_score is None or scores[q, c] >= min_score)]
                for q, row in enumerate(order)]
        wanted: list[list[int]] = [[] for _ in stores]
        for row in keep:
            for _, shard, rowid in row:
                wanted[shard].append(rowid)
        found = [store.fetch(rows) for store, rows in zip(stores, wanted)]
        return [[_hit(rank, score, found[shard][rowid]) for rank, (score, shard, rowid) in enumerate(row, 1)]
                for row in keep]

    def add(self, documents: Iterable[Document | str], *, batch_size: int | None = None,
            progress: Callable[[int], None] | None = None) -> AddStats:
        from simsearch.store.shard_updates import add_sharded

        stats = add_sharded(self.path, documents, self._identity(), lambda: self.encoder,
                            batch_size=batch_size, progress=progress)
        self._reopen(stats.generation)
        return stats

    def delete(self, ids: Iterable[str]) -> DeleteStats:
        from simsearch.store.shard_updates import delete_sharded

        stats = delete_sharded(self.path, ids)
        self._reopen(stats.generation)
        return stats

    def compact(self) -> CompactStats:
        from simsearch.store.shard_updates import compact_sharded

        stats = compact_sharded(self.path)
        self._reopen(stats.generation)
        return stats

    def verify(self, repair: bool = False) -> VerifyReport:
        from simsearch.index import load_encoder
        from simsearch.store.shard_verify import verify_sharded

        report = verify_sharded(self.path, encoder=self._encoder, repair=repair, load_encoder=load_encoder)
        if report.repaired and report.generation is not None:
            self._reopen(report.generation)
        return report

    def _reopen(self, generation: int) -> None:
        if generation != self._top["generation"]:
            self._top, self._stores = open_parts(self.path)  # old stores stay valid for searches holding them

    def close(self) -> None:
        for store in self._stores:
            store.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)


def _hit(rank: int, score: float, stored: tuple[str, str, dict[str, Any]]) -> Hit:
    doc_id, text, metadata = stored
    return Hit(rank, doc_id, score, text, metadata)
