"""A sharded build's shard writers in this process: a thread lane per shard, side by side.

:class:`ShardWriters` is what a sharded sink (:class:`simsearch.store.write.bulk.ShardedSink`)
hands its batches to: :class:`LaneWriters` here, or Ray actors on a cluster
(:mod:`simsearch.scale.writers`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from simsearch.readers import Document
from simsearch.store.index_types import builder
from simsearch.store.write.rows import count_documents, insert_documents
from simsearch.store.write.writer import StoreWriter


class Lanes:
    """Threads that write shards side by side: shard ``n`` always runs on lane ``n % lanes``.

    A SQLite connection belongs to the thread that opened it, so each shard writer is opened,
    fed, committed and closed on its own lane. SQLite, FAISS (its OpenMP threads shared out:
    each lane gets ``cores // lanes``), hashing and fsync release the GIL, so the lanes' work
    overlaps; one lane per core, at most.
    """

    def __init__(self, shards: int, cores: int | None = None) -> None:
        cores = cores or os.cpu_count() or 1
        self.count = max(1, min(shards, cores))
        share = max(1, cores // self.count)
        self._pools = [
            ThreadPoolExecutor(1, f"shard-writer-{n}", initializer=_omp_threads, initargs=(share,))
            for n in range(self.count)
        ]

    def run(self, jobs: Sequence[Callable[[], Any] | None]) -> list[Any]:
        """Run job ``n`` on shard ``n``'s lane (None: nothing to do); wait for all of them, then
        raise the first failure in shard order (so no lane still works when the caller cleans up)."""
        futures = [
            None if job is None else self._pools[n % self.count].submit(job) for n, job in enumerate(jobs)
        ]
        wait([f for f in futures if f is not None])
        return [None if f is None else f.result() for f in futures]

    def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(wait=True)


def _omp_threads(count: int) -> None:
    import faiss

    faiss.omp_set_num_threads(count)  # this thread's OpenMP setting only (an OpenMP ICV per thread)


class ShardWriters(Protocol):
    """The writers of a sharded build's shard directories: in this process (:class:`LaneWriters`)
    or elsewhere (Ray actors: :mod:`simsearch.scale.writers`). Shard ``n`` gets entry ``n``."""

    def open(self, directories: Sequence[Path]) -> None: ...
    def write(self, batches: Sequence[tuple[Sequence[Document], np.ndarray] | None]) -> None: ...
    def count(self) -> int: ...
    def commit(
        self,
        fields: Sequence[dict[str, Any] | None],
        index_type: str,
        target_recall: float,
        tune_vectors: np.ndarray | None,
        committed: Callable[[int], None] | None = None,
    ) -> None:
        """Commit shard ``n`` with ``fields[n]`` (None: drop what it staged instead), calling
        ``committed(n)`` as each one has committed."""
        ...

    def close(self) -> None: ...


class LaneWriters:
    """Shard writers in this process, side by side on :class:`Lanes`."""

    def __init__(self, shards: int) -> None:
        self._lanes = Lanes(shards)
        self._writers: list[StoreWriter] = []
        self._open: set[int] = set()  # shard writers entered (on their lanes), to be exited there

    def open(self, directories: Sequence[Path]) -> None:
        self._writers = [StoreWriter(directory) for directory in directories]
        self._lanes.run([partial(self._enter, n) for n in range(len(directories))])

    def _enter(self, number: int) -> None:
        self._writers[number].__enter__()
        self._open.add(number)

    def write(self, batches: Sequence[tuple[Sequence[Document], np.ndarray] | None]) -> None:
        self._lanes.run(
            [
                None if batch is None else partial(_insert, writer, *batch)
                for writer, batch in zip(self._writers, batches)
            ]
        )

    def count(self) -> int:
        return sum(self._lanes.run([partial(_count_of, writer) for writer in self._writers]))

    def commit(
        self,
        fields: Sequence[dict[str, Any] | None],
        index_type: str,
        target_recall: float,
        tune_vectors: np.ndarray | None,
        committed: Callable[[int], None] | None = None,
    ) -> None:
        make = builder(index_type, target_recall, tune_vectors)
        self._lanes.run(
            [
                partial(self._exit, n) if f is None else partial(self._commit, n, f, make, committed)
                for n, f in enumerate(fields)
            ]
        )

    def _commit(
        self, number: int, fields: dict[str, Any], make: Any, committed: Callable[[int], None] | None
    ) -> None:
        self._writers[number].commit(fields, make)
        if committed is not None:
            committed(number)

    def close(self) -> None:
        """Drop what was staged and not committed (each writer on its lane)."""
        try:
            self._lanes.run(
                [partial(self._exit, n) if n in self._open else None for n in range(len(self._writers))]
            )
        finally:
            self._lanes.close()

    def _exit(self, number: int) -> None:
        self._open.discard(number)
        self._writers[number].__exit__(None, None, None)


def _insert(writer: StoreWriter, docs: Sequence[Document], vectors: np.ndarray) -> None:
    assert writer.db is not None
    insert_documents(writer.db, docs, vectors)


def _count_of(writer: StoreWriter) -> int:
    return count_documents(writer.db)
