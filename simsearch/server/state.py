"""What a server keeps warm: indexes opened once, one model per kind, writes swapped in safely.

All the work of one model runs on one thread (:class:`~simsearch.server.worker.ModelWorker`).
Searches use whichever :class:`Index` object was current when they started; a write builds a new
generation on disk (under the index's file lock) and then swaps in a freshly opened object, so
no search ever sees half a write.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Sequence

from simsearch.errors import SimsearchError
from simsearch.search.modes import default_mode
from simsearch.index import Hit, Index, check_query
from simsearch.server.worker import MAX_ENCODE_BATCH, WRITE_SLICE, ModelWorker, ShuttingDown
from simsearch.store.home import check_name, locate
from simsearch.store.manifest import MANIFEST, ModelIdentity

# Re-exported: the model's worker lives in simsearch.server.worker.
__all__ = [
    "MAX_ENCODE_BATCH",
    "WRITE_SLICE",
    "ModelWorker",
    "RayServing",
    "Served",
    "ServedIndex",
    "ShuttingDown",
]

log = logging.getLogger("simsearch.serve")
BLAS_THRESHOLD = 2
SHUTDOWN_WAIT = 30.0  # seconds a stopping server gives a cancelled write to clean up and unlock


@dataclasses.dataclass(frozen=True)
class RayServing:
    """How a Ray-served index is searched: replicas per shard, each call's deadline in seconds,
    and whether a shard without a healthy replica may be left out of an answer (named in it)."""

    replicas: int = 1
    deadline: float = 2.0
    allow_partial: bool = False


class ServedIndex:
    """One index as a server holds it: searches lock-free, writes one at a time, then a swap.

    A new generation committed by another process (``simsearch add``, ``build --force``) is
    picked up by the next search: the manifest is replaced atomically on every commit, so a
    changed inode or mtime is the cue to reopen.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        encoder: ModelWorker,
        ray: str | None = None,
        serving: RayServing | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.encoder = encoder
        self.ray = ray  # searched by Ray shard actors (simsearch.scale.searcher) when set
        self.serving = serving or RayServing()
        self._write = threading.Lock()
        self._mark = self._manifest_mark()
        self._index = Index.open(path, encoder=encoder, ray=ray, replicas=self.serving.replicas)
        if ray is not None:
            self._ray_searcher().deadline = self.serving.deadline

    @property
    def manifest(self) -> dict[str, Any]:
        return self._current().manifest

    def search(
        self,
        queries: list[str],
        k: int,
        min_score: float | None,
        *,
        mode: str | None = None,
        where: dict[str, Any] | None = None,
    ) -> list[list[Hit]]:
        check_query(queries, k, min_score)  # before the batch: a bad text fails only its request
        # The index is read once: one generation for the whole request, whatever a write does.
        index = self._current()
        if self.ray is not None or where or (mode or default_mode(index.manifest)) != "dense":
            # (Ray: in the request's thread too, where allow_partial() collects missing shards)
            # lexical, hybrid and filtered searches run in the request's thread; their query
            # encodes still go through the model's worker, batched with everyone else's
            return index.search(queries, k, min_score=min_score, mode=mode, where=where)
        return self.encoder.search(index, queries, k, min_score)

    def partial(self) -> ContextManager[set[int]]:
        """Searches inside answer without a shard that has no healthy replica (Ray, when
        ``allow_partial`` was asked for); the set collects the missing shards' numbers."""
        if self.ray is None or not self.serving.allow_partial:
            return contextlib.nullcontext(set())
        from simsearch.scale.searcher import allow_partial

        return allow_partial()

    def placement(self) -> list[dict[str, Any]] | None:
        """Each shard's Ray replicas (node, pid, state); None when not served on Ray."""
        return self._ray_searcher().placement() if self.ray is not None else None

    def _ray_searcher(self) -> Any:
        return self._index.searcher

    def add(self, documents: Iterable[Any]) -> dict[str, Any]:
        return self._write_with(lambda index: index.add(documents))

    def delete(self, ids: Iterable[str]) -> dict[str, Any]:
        return self._write_with(lambda index: index.delete(ids))

    def _write_with(self, change: Callable[[Index], Any]) -> dict[str, Any]:
        with self._write:
            # A separate object does the write, so searches on the current one are never disturbed
            # by whatever the write does to its own state.
            writer = Index.open(self.path, encoder=self.encoder)
            try:
                stats = change(writer)
            finally:
                writer.close()
            self._swap()
        if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
            return dataclasses.asdict(stats)
        return dict(stats)

    def _current(self) -> Index:
        """The index to search, reopened first if another process committed a new generation."""
        if self._manifest_mark() != self._mark and self._write.acquire(blocking=False):
            try:  # (a write of ours in progress swaps in its result itself)
                self._swap()
            except SimsearchError as exc:
                log.warning(
                    "index %r changed on disk and cannot be reopened (%s); still serving "
                    "the version loaded before",
                    self.name,
                    exc,
                )
            finally:
                self._write.release()
        return self._index

    def _swap(self) -> None:
        # The old object is dropped, not closed: searches still holding it finish on its
        # (unlinked but open) files, and CPython frees it when the last of them returns.
        self._mark = self._manifest_mark()  # taken first: a commit racing the open is seen next time
        if self.ray is not None:
            self._index.reload()  # only the changed shards' actors restart; the old ones answer meanwhile
        else:
            self._index = Index.open(self.path, encoder=self.encoder)

    def _manifest_mark(self) -> tuple[int, int, int] | None:
        try:
            stat = (self.path / MANIFEST).stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def finish_writes(self, timeout: float) -> bool:
        """Wait for a write in progress to end (committed or cancelled); False on timeout."""
        if not self._write.acquire(timeout=timeout):
            return False
        self._write.release()
        return True

    def close(self) -> None:
        self._index.close()


class Served:
    """The indexes of one server, opened at startup; one encoder per model identity."""

    def __init__(
        self,
        names: Sequence[str],
        index_dir: str | None = None,
        ray: str | None = None,
        serving: RayServing | None = None,
    ) -> None:
        import faiss

        # FAISS scans a flat index once per query unless a batch reaches this many queries, when
        # it uses one matrix product: at 100k x 384, 16 queries took 216 ms one by one, 26 ms so.
        faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD
        self.indexes: dict[str, ServedIndex] = {}
        # One model worker per vector space: indexes share one when their model identity (files
        # fingerprint included: fp32 and int8 of one model differ, so do two weights of one id)
        # and the directory their model loads from agree.
        self.encoders: dict[tuple[ModelIdentity, str], ModelWorker] = {}
        self.ray = ray
        self.serving = serving or RayServing()
        self.cluster_lost: str | None = None  # set when the Ray cluster's head is found gone
        try:
            for name in names:
                self._load(name, index_dir)
        except BaseException:
            self.close()
            raise

    def _load(self, name: str, index_dir: str | None) -> None:
        path = locate(name, index_dir)
        if path.name != name:  # a path: it is served (and addressed in URLs) by its directory's name
            try:
                check_name(path.name)
            except SimsearchError:
                raise SimsearchError(
                    f"index path {name!r}: its directory name {path.name!r} cannot be an "
                    "index name in URLs; rename the directory or serve it by name"
                ) from None
        if path.name in self.indexes:
            raise SimsearchError(f"index {path.name!r} is named twice; serve each index once")
        probe = Index.open(name, index_dir=index_dir)  # validates the files before any model loads
        try:
            m = probe.manifest
            identity = ModelIdentity.of_manifest(m)
            key = (identity, str(m.get("model_path", "")))
            if key not in self.encoders:
                encoder = ModelWorker(probe.encoder, model_id=identity.model)
                self.encoders[key] = encoder
                encoder.encode(["warm up"])  # the first real request should not pay for this
        finally:
            probe.close()
        self.indexes[path.name] = ServedIndex(
            path.name, probe.path, self.encoders[key], self.ray, self.serving
        )
        log.info("loaded index %r: %d documents, model %s", path.name, len(probe), m["model"])

    def close(self) -> None:
        """Stop: the models first, so a write still encoding is cancelled (its staged files
        removed, the index's lock released), then wait for writes to end, then close."""
        for encoder in self.encoders.values():
            encoder.close()
        for served in self.indexes.values():
            if not served.finish_writes(SHUTDOWN_WAIT):
                log.error(
                    "a write to index %r did not end within %.0f s of shutdown", served.name, SHUTDOWN_WAIT
                )
        for served in self.indexes.values():
            served.close()
