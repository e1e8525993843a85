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
import uuid
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from simsearch.errors import IndexExistsError
from simsearch.readers import Document
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
from simsearch.store.write.lanes import LaneWriters, ShardWriters
from simsearch.store.write.rows import count_documents, insert_documents
from simsearch.store.write.writer import StoreWriter, remove_stale_files


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
        return count_documents(self._writer.db)

    def commit(
        self,
        fields: dict[str, Any],
        index_type: str,
        target_recall: float,
        tune_vectors: np.ndarray | None = None,
    ) -> Mapping[str, Any]:
        return self._writer.commit(fields, builder(index_type, target_recall, tune_vectors))


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


def _raw_manifest(path: Path) -> dict[str, Any] | None:
    """Whatever manifest is there (plain, sharded, or None if unreadable): to keep its parts."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None
