"""ShardedIndex: an :class:`~simsearch.index.Index` over N shards, searched in parallel and merged.

:meth:`Index.open` returns one for a sharded directory and :meth:`Index.build` makes one when
given ``shards=N``; it has the same public methods. A query runs on every shard at once (threads:
FAISS and numpy release the GIL) and the shards' top-k lists are merged by score; on exact
shards the merged top-k is exactly an unsharded exact index's.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence, overload

import numpy as np

from simsearch.errors import QueryError
from simsearch.index import Hit, Index, check_queries
from simsearch.readers import Document
from simsearch.store.manifest import Manifest
from simsearch.store.reader import Row, Store
from simsearch.validate import lookup_ids
from simsearch.store.shards import open_parts, plain_view, shard_of
from simsearch.merging import as_faiss, dense_hit, fused_hits, merge_dense, merge_ranked

if TYPE_CHECKING:
    from simsearch.export import Source
    from simsearch.store.updates import AddStats, CompactStats, DeleteStats
    from simsearch.store.verify import VerifyReport


class ShardedIndex(Index):
    """A sharded index directory; see :mod:`simsearch.store.shards` for the layout."""

    def __init__(
        self, path: Path, manifest: Mapping[str, Any], stores: list[Store], encoder: Any = None
    ) -> None:
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
        return (
            f"ShardedIndex({str(self.path)!r}, shards={self.shards}, count={m['count']}, "
            f"model={m['model']!r}, pooling={m['pooling']!r})"
        )

    def _identity(self) -> Manifest:
        return plain_view(self._top, self._stores[0])

    # The overloads of Index.search: a str gives one list of hits, a list of queries one per query.
    @overload
    def search(  # type: ignore[overload-overlap]
        self,
        query: str,
        k: int = 10,
        *,
        min_score: float | None = None,
        mode: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[Hit]: ...
    @overload
    def search(
        self,
        query: Sequence[str],
        k: int = 10,
        *,
        min_score: float | None = None,
        mode: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[list[Hit]]: ...

    def search(
        self,
        query: str | Sequence[str],
        k: int = 10,
        *,
        min_score: float | None = None,
        mode: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[Hit] | list[list[Hit]]:
        """:meth:`Index.search` over every shard, merged by score.

        Dense search (filtered or not) merges exactly: the result is an unsharded index's. In
        lexical and hybrid modes each shard ranks with its own BM25 statistics and its own
        normalisation, so the merged order approximates an unsharded index's (see docs/scale.md).
        """
        from simsearch.hybrid import check_mode

        single = isinstance(query, str)
        queries = check_queries(query, k, min_score)
        mode = check_mode(mode, self._identity())
        if min_score is not None and mode == "lexical":
            raise QueryError(
                "min_score filters by cosine, which lexical mode does not compute; "
                "drop it or use --mode dense or hybrid"
            )
        if mode == "dense" and not where:
            results = self.search_vectors(self.encoder.encode(queries), k, min_score=min_score)
            return results[0] if single else results
        hits = self._ranked(queries, k, mode, where, min_score)
        return hits[0] if single else hits

    def _ranked(
        self, queries: list[str], k: int, mode: str, where: Mapping[str, Any] | None, min_score: float | None
    ) -> list[list[Hit]]:
        """Every shard ranks in ``mode`` (threads), then :func:`~simsearch.merging.merge_ranked`."""
        from simsearch.hybrid import search_store

        model = _EncodeOnce(self.encoder) if mode != "lexical" else None
        stores = self._stores
        ranked = list(
            self._threads().map(
                lambda store: search_store(store, queries, k, mode=mode, where=where, encoder=lambda: model),
                stores,
            )
        )
        merged = merge_ranked(ranked, k, min_score)
        wanted: list[list[int]] = [[] for _ in stores]
        for row in merged:
            for n, f in row:
                wanted[n].append(f.rowid)
        found = [store.fetch(rows) for store, rows in zip(stores, wanted)]
        return [fused_hits(row, found) for row in merged]

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                min(len(self._stores), os.cpu_count() or 1), thread_name_prefix="shard-search"
            )
        return self._pool

    def search_vectors(
        self,
        vectors: np.ndarray,
        k: int = 10,
        *,
        min_score: float | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[list[Hit]]:
        """Every shard's top ``k`` at once, merged by score (ties: lower shard number first);
        ``where`` filters each shard before ranking, so the merge stays exact."""
        stores = self._stores  # one generation of every shard for the whole request
        if where:
            from simsearch.hybrid import dense_rows

            answers = list(
                self._threads().map(lambda store: as_faiss(dense_rows(store, vectors, k, where), k), stores)
            )
        else:
            answers = list(self._threads().map(lambda store: store.faiss.search(vectors, k), stores))
        keep = merge_dense(answers, k, min_score)
        wanted: list[list[int]] = [[] for _ in stores]
        for row in keep:
            for _, shard, rowid in row:
                wanted[shard].append(rowid)
        found = [store.fetch(rows) for store, rows in zip(stores, wanted)]
        return [
            [dense_hit(rank, score, found[shard][rowid]) for rank, (score, shard, rowid) in enumerate(row, 1)]
            for row in keep
        ]

    def add(
        self,
        documents: Iterable[Document | str],
        *,
        batch_size: int | None = None,
        progress: Callable[[int], None] | None = None,
        device: str = "cpu",
    ) -> AddStats:
        from simsearch.store.shard_updates import add_sharded

        stats = add_sharded(
            self.path,
            documents,
            self._identity(),
            self._encoder_on(device),
            batch_size=batch_size,
            progress=progress,
        )
        self._reopen(stats.generation)
        return stats

    def delete(self, ids: Iterable[str]) -> DeleteStats:
        from simsearch.store.shard_updates import delete_sharded

        stats = delete_sharded(self.path, ids, lambda: self.encoder)
        self._reopen(stats.generation)
        return stats

    def compact(self) -> CompactStats:
        from simsearch.store.shard_updates import compact_sharded

        stats = compact_sharded(self.path, lambda: self.encoder)
        self._reopen(stats.generation)
        return stats

    def verify(self, repair: bool = False) -> VerifyReport:
        from simsearch.index import load_encoder
        from simsearch.store.shard_verify import verify_sharded

        report = verify_sharded(self.path, encoder=self._encoder, repair=repair, load_encoder=load_encoder)
        if report.repaired and report.generation is not None:
            self._reopen(report.generation)
        return report

    def reindex_lexical(self, analyzer: str | None = None) -> int:
        from simsearch.store.shard_updates import reindex_lexical_sharded

        generation = reindex_lexical_sharded(self.path, analyzer)
        self._reopen(generation)
        return generation

    def ids(self) -> list[str]:
        """Every document id: shard by shard, in storage order within each."""
        return [doc_id for store in self._stores for doc_id in store.ids()]

    def _rows(self, ids: Iterable[str], vectors: bool) -> list[Row]:
        """Each id is looked up in the one shard it routes to; the order given is kept."""
        wanted = lookup_ids(ids)
        by_shard: dict[int, list[str]] = {}
        for doc_id in wanted:
            by_shard.setdefault(shard_of(doc_id, len(self._stores)), []).append(doc_id)
        found: dict[str, Row] = {}
        for shard, part in by_shard.items():
            found.update(self._stores[shard].rows_by_id(part, vectors))
        return [found[i] for i in wanted if i in found]

    def _export_source(self) -> Source:
        """Every shard, in shard order, described as one index (its name and total count)."""
        from simsearch.export import Source

        top, stores = self._top, list(self._stores)  # one generation, even if a write reopens meanwhile
        return Source(stores, plain_view(top, stores[0]).replace(count=int(top["count"])))

    def _reopen(self, generation: int) -> None:
        if generation != self._top["generation"]:
            self._top, self._stores = open_parts(self.path)  # old stores stay valid for searches holding them

    def close(self) -> None:
        for store in self._stores:
            store.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)


class _EncodeOnce:
    """The index's encoder, encoding one request's queries once for all shards."""

    def __init__(self, encoder: Any) -> None:
        self._encoder = encoder
        self._done: tuple[list[str], np.ndarray] | None = None
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        with self._lock:
            if self._done is None or self._done[0] != list(texts):
                self._done = (list(texts), self._encoder.encode(list(texts), **kwargs))
            return self._done[1]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)
