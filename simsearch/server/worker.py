"""One thread per model: every encode of that model, and the searches that use them, run on it.

A fast tokenizer is not safe to drive from two threads at once, and requests that arrive together
are served as one batch (one forward pass, one FAISS search per index), which costs little more
than one request.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from simsearch.encode import Encoder, Progress
from simsearch.errors import SimsearchError
from simsearch.index import Hit, Index

_STOP = object()
MAX_ENCODE_BATCH = 64  # texts per forward pass when queries pile up
WRITE_SLICE = 64  # texts a write encodes at a time before letting waiting searches run


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

    def __init__(
        self, encoder: Encoder, model_id: str | None = None, max_batch: int = MAX_ENCODE_BATCH
    ) -> None:
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

    # The Encoder Protocol: the wrapped encoder's vector space (model_id above: the manifest's name).
    @property
    def model_path(self) -> Path:
        return self.encoder.model_path

    @property
    def pooling(self) -> str:
        return self.encoder.pooling

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def max_length(self) -> int | None:
        return self.encoder.max_length

    @property
    def precision(self) -> str:
        return self.encoder.precision

    @property
    def queued(self) -> int:
        """How many requests wait for the model's thread now (approximate): its load."""
        return self._jobs.qsize()

    def search(self, index: Index, queries: list[str], k: int, min_score: float | None) -> list[list[Hit]]:
        return self._wait(_Batched(list(queries), Future(), index, k, min_score))

    def encode(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: Progress | None = None
    ) -> np.ndarray:
        if batch_size is not None or progress is not None:
            return self._call(self.encoder.encode, texts, batch_size=batch_size, progress=progress)
        return self._wait(_Batched(list(texts), Future()))

    def encode_counting(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: Progress | None = None
    ) -> tuple[np.ndarray, int]:
        """A write's encode, in slices: searches queued meanwhile run between two slices."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        parts, truncated = [np.zeros((0, self.dim), dtype=np.float32)], 0
        for start in range(0, len(texts), WRITE_SLICE):
            vectors, cut = self._call(
                self.encoder.encode_counting,
                texts[start : start + WRITE_SLICE],
                batch_size=batch_size,
                progress=progress,
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
