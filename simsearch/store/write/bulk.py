"""Writing a new index from documents and their precomputed vectors: plain or sharded.

The seam between making vectors and storing them: a local build (encoder in this process) and
a Ray build (encoders in actors) both open a sink, hand it ``(documents, vectors)`` batches in
any order, and commit it once. Duplicate ids are refused as they arrive; nothing is visible to
readers until :meth:`commit`, and leaving the block without committing removes what was staged.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from simsearch.store.sql import select_in
from simsearch.errors import IndexExistsError, InputError
from simsearch.readers import Document
from simsearch.store.faiss_file import require_finite, to_blob
from simsearch.store.files import fsync_dir
from simsearch.store.index_types import builder
from simsearch.store.locking import write_lock
from simsearch.store.manifest import MANIFEST
from simsearch.store.shards import (
    check_shard_count,
    commit_top,
    part_entry,
    part_name,
    remove_stale_parts,
    shard_of,
)
from simsearch.store.write.keep import KeptShards
from simsearch.store.write.updates import content_hash
from simsearch.store.write.writer import StoreWriter, remove_stale_files
from simsearch.validate import dumps


class Sink(Protocol):
    """Where a build puts its documents: :func:`open_sink` makes the right one."""

    def __enter__(self) -> Sink: ...
    def __exit__(self, *exc_info: Any) -> None: ...
    def write(self, docs: Sequence[Document], vectors: np.ndarray) -> None: ...
    def count(self) -> int: ...
    def commit(
        self,
        fields: dict[str, Any],
        index_type: str,
        target_recall: float,
        tune_vectors: np.ndarray | None = None,
    ) -> Mapping[str, Any]: ...


def open_sink(
    path: Path,
    *,
    shards: int | None = None,
    force: bool = False,
    writers: ShardWriters | None = None,
    keep: Path | None = None,
) -> Sink:
    """A plain index (``shards=None``, the historical layout) or one of ``shards`` shards, written
    in this process or by ``writers`` (a sharded index only). ``keep``: where a sharded build
    keeps the shards it committed if its commit fails part-way, and takes them back on a rerun
    (:mod:`simsearch.store.write.keep`)."""
    if shards is None:
        return PlainSink(path, force=force)
    return ShardedSink(path, check_shard_count(shards), force=force, writers=writers, keep=keep)


def insert_documents(db: sqlite3.Connection, docs: Sequence[Document], vectors: np.ndarray) -> None:
    """Insert new documents with their vectors; a duplicate id is an input error."""
    _check_unique(db, docs)
    require_finite(vectors, [d.where or repr(d.id) for d in docs])
    rows = [
        (d.id, d.text, dumps(d.metadata), content_hash(d.text), to_blob(v)) for d, v in zip(docs, vectors)
    ]
    db.executemany("INSERT INTO documents (id, text, metadata, hash, vector) VALUES (?, ?, ?, ?, ?)", rows)


def _check_unique(db: sqlite3.Connection, docs: Sequence[Document]) -> None:
    """Duplicate ids are an input error naming the second occurrence (before anything is written)."""
    seen: set[str] = set()
    stored: set[str] = set()
    ids = [d.id for d in docs]
    stored.update(r[0] for r in select_in(db, "SELECT id FROM documents WHERE id IN ({marks})", ids))
    for doc in docs:
        if doc.id in seen or doc.id in stored:
            raise InputError(f"{doc.where}: duplicate document id {doc.id!r}; ids must be unique")
        seen.add(doc.id)


def _count(db: sqlite3.Connection | None) -> int:
    assert db is not None
    return int(db.execute("SELECT count(*) FROM documents").fetchone()[0])


class PlainSink:
    """One ordinary index directory, written by a :class:`StoreWriter`."""

    def __init__(self, path: Path, *, force: bool = False) -> None:
        self._writer = StoreWriter(path, force=force)

    def __enter__(self) -> PlainSink:
        self._writer.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._writer.__exit__(*exc_info)

    def write(self, docs: Sequence[Document], vectors: np.ndarray) -> None:
        assert self._writer.db is not None
        insert_documents(self._writer.db, docs, vectors)

    def count(self) -> int:
        return _count(self._writer.db)

    def commit(
        self,
        fields: dict[str, Any],
        index_type: str,
        target_recall: float,
        tune_vectors: np.ndarray | None = None,
    ) -> Mapping[str, Any]:
        return self._writer.commit(fields, builder(index_type, target_recall, tune_vectors))


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


class ShardedSink:
    """N shard directories written side by side (:class:`LaneWriters`, or ``writers`` given),
    committed by one top manifest.

    A new index is staged in a hidden sibling directory and renamed into place; a ``force``
    rebuild of an existing one writes new shard directories beside the old files and swaps the
    top manifest, so a failure or a kill leaves the previous index (plain or sharded) whole.
    """

    def __init__(
        self,
        path: Path,
        shards: int,
        *,
        force: bool = False,
        writers: ShardWriters | None = None,
        keep: Path | None = None,
    ) -> None:
        self.path, self.shards, self.force, self.keep = path, shards, force, keep
        self._lock: Any = None  # the index directory's, or a new index's staging directory's
        self._writers = writers if writers is not None else LaneWriters(shards)
        self._staging: Path | None = None
        self._previous: dict[str, Any] | None = None

    def __enter__(self) -> ShardedSink:
        try:
            self._prepare()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _prepare(self) -> None:
        if self.path.exists():
            if not (self.path / MANIFEST).is_file():
                raise IndexExistsError(
                    f"{self.path} exists and is not a simsearch index; remove it or choose another name"
                )
            if not self.force:
                raise IndexExistsError(
                    f"index {self.path.name!r} already exists in "
                    f"{self.path.parent}; pass --force to replace it"
                )
            self._locked(self.path)
            self._previous = _raw_manifest(self.path)
            self._staging = self.path
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for stale in self.path.parent.glob(f".{self.path.name}.tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)  # left by a killed build
            staging = self.path.parent / f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}"
            staging.mkdir()
            self._staging = staging
            self._locked(staging)  # the lock is the directory's: it moves into place with the rename
        previous = (self._previous or {}).get("generation", 0)
        self.generation = (previous if isinstance(previous, int) else 0) + 1
        staging = self._staging
        self._writers.open([staging / part_name(n, self.generation) for n in range(self.shards)])

    def _locked(self, directory: Path) -> None:
        self._lock = write_lock(directory)
        self._lock.__enter__()

    def write(self, docs: Sequence[Document], vectors: np.ndarray) -> None:
        routed: list[list[int]] = [[] for _ in range(self.shards)]
        for row, doc in enumerate(docs):
            routed[shard_of(doc.id, self.shards)].append(row)
        self._writers.write([([docs[r] for r in rows], vectors[rows]) if rows else None for rows in routed])

    def count(self) -> int:
        return self._writers.count()

    def commit(
        self,
        fields: dict[str, Any],
        index_type: str,
        target_recall: float,
        tune_vectors: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Build each shard's FAISS file, commit the shards, then the top manifest."""
        assert self._staging is not None
        staging = self._staging
        names = [part_name(number, self.generation) for number in range(self.shards)]
        if self.keep is None:
            self._writers.commit(
                [{**fields, "name": name} for name in names], index_type, target_recall, tune_vectors
            )
        else:
            kept = KeptShards(
                self.keep, fields, index_type, target_recall, tune_vectors, self.shards, self.generation
            )
            kept.commit(self._writers, staging, names, fields, (index_type, target_recall, tune_vectors))
        parts = [part_entry(self._staging, name) for name in names]
        kinds = {part["index_type"] for part in parts}
        top = {
            **fields,
            "index_type": kinds.pop() if len(kinds) == 1 else "mixed",
            "requested_index_type": index_type,
        }
        manifest = commit_top(self._staging, top, parts, self.generation)
        if self._staging != self.path:
            os.rename(self._staging, self.path)
            fsync_dir(self.path.parent)
        else:
            remove_stale_files(self.path, None)  # a plain index's files, replaced by the shards
        self._staging = None
        return manifest

    def __exit__(self, *exc_info: Any) -> None:
        try:
            try:
                self._writers.close()  # the shard writers drop what they staged
            finally:
                if self._staging is not None:  # not committed
                    if self._staging == self.path:
                        remove_stale_parts(self.path, self._previous)
                    else:
                        shutil.rmtree(self._staging, ignore_errors=True)
                    self._staging = None
        finally:
            if self._lock is not None:
                self._lock.__exit__(None, None, None)
                self._lock = None


def _insert(writer: StoreWriter, docs: Sequence[Document], vectors: np.ndarray) -> None:
    assert writer.db is not None
    insert_documents(writer.db, docs, vectors)


def _count_of(writer: StoreWriter) -> int:
    return _count(writer.db)


def _raw_manifest(path: Path) -> dict[str, Any] | None:
    """Whatever manifest is there (plain, sharded, or None if unreadable): to keep its parts."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None
