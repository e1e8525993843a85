"""The Searcher interface, the one query algorithm every searcher runs, and the local searcher.

A :class:`Searcher` answers a typed :class:`~simsearch.search.request.SearchRequest` with hits.
Its siblings differ only in *how a shard is called*: :class:`LocalSearcher` calls the functions of
:mod:`simsearch.search.shard` on stores it holds (one store, or shards over threads), and
:class:`simsearch.scale.searcher.RaySearcher` calls the same functions inside shard actors. The
algorithm is :func:`run`, shared by all of them:

1. lexical and hybrid requests: every shard's collection statistics, summed (exact BM25);
2. every shard's candidates (:func:`simsearch.search.shard.candidates`);
3. one ranking over all of them, and the hits' scores (:func:`simsearch.search.ranking.rank`);
4. the texts and metadata of the hits, from the shards that hold them.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Protocol, Sequence

from simsearch.search.hits import Hit
from simsearch.search import shard
from simsearch.search.ranking import Ranked, rank
from simsearch.search.request import SearchRequest
from simsearch.store.lexical.bm25 import combine
from simsearch.search.where import merge_types
from simsearch.store.generation import Store
from simsearch.store.shardset import ShardSet

Stored = Mapping[int, tuple[str, str, dict[str, Any]]]  # a shard's fetched rows: id, text, metadata
BATCH = 8  # queries in one request from which a sharded index searches its shards side by side


class Searcher(ABC):
    """Runs search requests on one index's shards, wherever they are held."""

    @abstractmethod
    def search(self, request: SearchRequest) -> list[list[Hit]]:
        """The hits of each query of ``request``, best first."""

    @abstractmethod
    def field_types(self) -> dict[str, set[str]]:
        """The metadata fields of the whole index (the union over shards) and their JSON types:
        what a ``where`` is compiled against, once per request."""

    @abstractmethod
    def reload(self) -> None:
        """Search the index's newest committed generation from now on; requests already
        running finish on the generation they started with."""

    @abstractmethod
    def close(self) -> None:
        """Release what the searcher holds (files, threads, actors)."""


class Shards(Protocol):
    """How :func:`run` reaches the shards of one generation."""

    def each(self, work: Callable[..., Any], *args: Any) -> list[Any]:
        """``work(shard, *args)`` on every shard, in shard order (``work`` is a function of
        :mod:`simsearch.search.shard`)."""
        ...

    def fetch(self, wanted: Mapping[int, Sequence[int]]) -> dict[int, Stored]:
        """The stored rows of ``wanted`` (shard -> row ids), from the shards holding them."""
        ...


def run(request: SearchRequest, shards: Shards) -> list[list[Hit]]:
    """The query algorithm (see the module docstring), on any searcher's shards."""
    collection = None
    if request.mode != "dense":
        collection = combine(shards.each(shard.statistics, request.terms))
    answers = shards.each(shard.candidates, request, collection)
    ranked = rank(request, answers, collection)
    wanted: dict[int, list[int]] = {}
    for row in ranked:
        for hit in row:
            wanted.setdefault(hit.shard, []).append(hit.rowid)
    found = shards.fetch(wanted) if wanted else {}
    return [[_hit(rank_, r, found[r.shard]) for rank_, r in enumerate(row, 1)] for row in ranked]


def _hit(rank_: int, ranked: Ranked, found: Stored) -> Hit:
    doc_id, text, metadata = found[ranked.rowid]
    return Hit(rank_, doc_id, ranked.score, text, metadata, ranked.cosine, ranked.bm25)


class _LocalShards:
    """One generation's stores, called in this process (threads for several shards)."""

    def __init__(self, stores: Sequence[Store], pool: ThreadPoolExecutor | None) -> None:
        self.stores = stores
        self.pool = pool

    def each(self, work: Callable[..., Any], *args: Any) -> list[Any]:
        if self.pool is None or len(self.stores) == 1:
            return [work(store, *args) for store in self.stores]
        return list(self.pool.map(lambda store: work(store, *args), self.stores))

    def fetch(self, wanted: Mapping[int, Sequence[int]]) -> dict[int, Stored]:
        return {n: shard.fetch(self.stores[n], rows) for n, rows in wanted.items()}


class LocalSearcher(Searcher):
    """Searches stores opened in this process: a plain index (one store) or a sharded one.

    Several shards are searched by a thread pool when ``threads`` > 1 (FAISS, numpy and SQLite
    release the GIL), else one after another on the caller's thread. No shard thread ever
    waits on a model: requests arrive encoded.
    """

    def __init__(self, shards: ShardSet, threads: int | None = None) -> None:
        self._shards = shards
        self._threads = threads if threads is not None else default_threads(len(shards.stores))
        self._pool: ThreadPoolExecutor | None = None

    @property
    def shards(self) -> ShardSet:
        return self._shards

    def search(self, request: SearchRequest) -> list[list[Hit]]:
        stores = self._shards.stores  # one generation for every step, even if a write reloads meanwhile
        # A few queries: shards one after another (each scan is memory-bound and short, and a
        # pool's hand-offs cost more than they save on few cores: benchmarks/README.md, fan-out);
        # a batch: shards side by side.
        pool = self._thread_pool(len(stores)) if len(request.queries) >= BATCH else None
        return run(request, _LocalShards(stores, pool))

    def field_types(self) -> dict[str, set[str]]:
        return merge_types(shard.field_types(store) for store in self._shards.stores)

    def reload(self) -> None:
        if ShardSet.generation_on_disk(self._shards.path) != self._shards.generation:
            self._shards = ShardSet.open(self._shards.path)  # old stores stay open for searches holding them

    def close(self) -> None:
        self._shards.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    def _thread_pool(self, shards: int) -> ThreadPoolExecutor | None:
        if shards <= 1 or self._threads <= 1:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="shard-search")
        return self._pool


def default_threads(shards: int) -> int:
    """Shard threads for a local sharded index: one per core, at most one per shard."""
    return max(1, min(shards, os.cpu_count() or 1))
