"""What a server keeps warm: indexes opened once, one model per kind, writes swapped in safely.

All the work of one model runs on one thread (:class:`ModelWorker`): a fast tokenizer is not
safe to drive from two threads at once, and requests that arrive together are served as one
batch (one forward pass, one FAISS search per index), which costs little more than one request.
Searches use whichever :class:`Index` object was current when they started; a write builds a new
generation on disk (under the index's file lock) and then swaps in a freshly opened object, so
no search ever sees half a write.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from simsearch.errors import SimsearchError
from simsearch.hybrid import default_mode
from simsearch.index import Hit, Index, check_query
from simsearch.store.home import check_name, locate
from simsearch.store.manifest import MANIFEST

log = logging.getLogger("simsearch.serve")
_STOP = object()
MAX_ENCODE_BATCH = 64  # texts per forward pass when queries pile up
BLAS_THRESHOLD = 2
WRITE_SLICE = 64  # texts a write encodes at a time before letting waiting searches run
SHUTDOWN_WAIT = 30.0  # seconds a stopping server gives a cancelled write to clean up and unlock
# Manifest keys that change the vectors a model gives: indexes share an encoder only when all agree.
VECTOR_KEYS = (
    "model",
    "model_path",
    "pooling",
    "max_length",
    "precision",
    "dim",
    "normalized",
    "fingerprint",
)


class ShuttingDown(SimsearchError):
    """The server is stopping: work that has not reached the model is cancelled."""


@dataclass
class _Batched:
    """Texts waiting for the model; with an ``index``, a search to run on their vectors."""

    texts: list[str]
    future: Future[Any]
    index: Index | None = None
    k: int = 0
    min_score: float | None = None


@dataclass
class _Call:
    """Work that runs alone on the model's thread (a write's encode)."""

    work: Callable[[], Any]
    future: Future[Any]


class ModelWorker:
    """One thread that runs all the work of one model: encodes, and the searches that use them.

    Searches (and plain query encodes) waiting together are merged: one forward pass for all
    their texts, then one FAISS search per index for all their vectors, which reads the stored
    vectors once instead of once per request. Anything else (a write's ``encode_counting``) runs
    alone, in arrival order. Attributes (``model_id``, ``dim``...) are the wrapped encoder's, so
    an :class:`Index` accepts the worker as its encoder.
    """

    def __init__(self, encoder: Any, model_id: str | None = None, max_batch: int = MAX_ENCODE_BATCH) -> None:
        self.encoder = encoder
        # An encoder loaded from a manifest's model directory names itself by that path; it is the
        # model the manifest names, so it answers to that name (which Index.open checks).
        self.model_id = model_id or encoder.model_id
        self.max_batch = max_batch
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"model-{self.model_id}", daemon=True)
        self._thread.start()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)

    def search(self, index: Index, queries: list[str], k: int, min_score: float | None) -> list[list[Hit]]:
        return self._wait(_Batched(list(queries), Future(), index, k, min_score))

    def encode(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        if kwargs:
            return self._call(self.encoder.encode, texts, **kwargs)
        return self._wait(_Batched(list(texts), Future()))

    def encode_counting(self, texts: Sequence[str], **kwargs: Any) -> tuple[np.ndarray, int]:
        """A write's encode, in slices: searches queued meanwhile run between two slices."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        parts, truncated = [np.zeros((0, self.dim), dtype=np.float32)], 0
        for start in range(0, len(texts), WRITE_SLICE):
            vectors, cut = self._call(
                self.encoder.encode_counting, texts[start : start + WRITE_SLICE], **kwargs
            )
            parts.append(vectors)
            truncated += cut
        return np.vstack(parts), truncated

    def _wait(self, job: Any) -> Any:
        if self._closed.is_set():
            raise ShuttingDown("the server is shutting down; nothing was done")
        self._jobs.put(job)
        while True:
            try:
                return job.future.result(timeout=0.5)
            except FutureTimeout:
                # Queued behind the stop, the job would wait forever (and a write with it,
                # holding the index's lock): once the thread is gone, it is cancelled.
                if self._closed.is_set() and not self._thread.is_alive():
                    _cancel(job.future)

    def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self._wait(_Call(lambda: function(*args, **kwargs), Future()))

    def close(self) -> None:
        """Stop the thread after the job it is running; jobs still queued are cancelled."""
        self._closed.set()
        self._jobs.put(_STOP)
        self._thread.join(timeout=10)
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                _cancel(job.future)
        if self._thread.is_alive():  # still on a long job: it must find the stop when done
            self._jobs.put(_STOP)

    def _run(self) -> None:
        pending: Any = None
        while True:
            job, pending = (pending if pending is not None else self._jobs.get()), None
            if job is _STOP:
                return
            if isinstance(job, _Call):
                _settle(job.future, job.work)
                continue
            batch, size = [job], len(job.texts)
            while size < self.max_batch:  # gather what queued up meanwhile
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(more, _Batched):
                    pending = more
                    break
                batch.append(more)
                size += len(more.texts)
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Batched]) -> None:
        try:
            vectors = self.encoder.encode([text for job in batch for text in job.texts])
        except BaseException as exc:  # the thread lives on
            if len(batch) > 1:  # one request's bad text must not fail the others: each alone
                for job in batch:
                    self._run_batch([job])
                return
            batch[0].future.set_exception(exc)
            return
        by_index: dict[int, list[tuple[_Batched, np.ndarray]]] = {}
        start = 0
        for job in batch:
            rows, start = vectors[start : start + len(job.texts)], start + len(job.texts)
            if job.index is None:
                job.future.set_result(rows)
            else:
                by_index.setdefault(id(job.index), []).append((job, rows))
        for group in by_index.values():
            _search_group(group)


def _search_group(group: list[tuple[_Batched, np.ndarray]]) -> None:
    """One FAISS search for the queries of several requests on one index, then each its share."""
    index, k = group[0][0].index, max(job.k for job, _ in group)
    try:
        results = index.search_vectors(np.vstack([rows for _, rows in group]), k)  # type: ignore[union-attr]
    except BaseException as exc:
        if len(group) > 1:  # as for the encode: only the culprit fails
            for one in group:
                _search_group([one])
            return
        group[0][0].future.set_exception(exc)
        return
    start = 0
    for job, rows in group:
        mine, start = results[start : start + len(rows)], start + len(rows)
        # Ranks run 1, 2, ... in score order, so cutting to k and dropping low scores keeps them right.
        job.future.set_result(
            [
                [hit for hit in hits[: job.k] if job.min_score is None or hit.score >= job.min_score]
                for hits in mine
            ]
        )


def _cancel(future: Future[Any]) -> None:
    try:
        future.set_exception(
            ShuttingDown("the server is shutting down; the request was cancelled and nothing was changed")
        )
    except InvalidStateError:
        pass  # it was answered meanwhile


def _settle(future: Future[Any], work: Callable[[], Any]) -> None:
    try:
        future.set_result(work())
    except BaseException as exc:
        future.set_exception(exc)


class ServedIndex:
    """One index as a server holds it: searches lock-free, writes one at a time, then a swap.

    A new generation committed by another process (``simsearch add``, ``build --force``) is
    picked up by the next search: the manifest is replaced atomically on every commit, so a
    changed inode or mtime is the cue to reopen.
    """

    def __init__(self, name: str, path: Path, encoder: ModelWorker, ray: str | None = None) -> None:
        self.name = name
        self.path = path
        self.encoder = encoder
        self.ray = ray  # searched by Ray shard actors (simsearch.scale.serve) when set
        self._write = threading.Lock()
        self._mark = self._manifest_mark()
        self._index = Index.open(path, encoder=encoder, ray=ray)

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
        if where or (mode or default_mode(index.manifest)) != "dense":
            # lexical, hybrid and filtered searches run in the request's thread; their query
            # encodes still go through the model's worker, batched with everyone else's
            return index.search(queries, k, min_score=min_score, mode=mode, where=where)
        return self.encoder.search(index, queries, k, min_score)

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
        self._index = Index.open(self.path, encoder=self.encoder, ray=self.ray)

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
    """The indexes of one server, opened at startup; one encoder per (model, pooling, length)."""

    def __init__(self, names: Sequence[str], index_dir: str | None = None, ray: str | None = None) -> None:
        import faiss

        # FAISS scans a flat index once per query unless a batch reaches this many queries, when
        # it uses one matrix product: at 100k x 384, 16 queries took 216 ms one by one, 26 ms so.
        faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD
        self.indexes: dict[str, ServedIndex] = {}
        self.encoders: dict[str, ModelWorker] = {}
        self.ray = ray
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
            # fp32 and int8 of one model differ; so do two weights of one path (the fingerprint)
            key = json.dumps([m.get(name) for name in VECTOR_KEYS], sort_keys=True, default=str)
            if key not in self.encoders:
                encoder = ModelWorker(probe.encoder, model_id=m["model"])
                self.encoders[key] = encoder
                encoder.encode(["warm up"])  # the first real request should not pay for this
        finally:
            probe.close()
        self.indexes[path.name] = ServedIndex(path.name, probe.path, self.encoders[key], self.ray)
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
