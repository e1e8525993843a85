"""What a server keeps warm: indexes opened once, one model per kind, writes swapped in safely.

Every encode of one model runs on one thread (:class:`SerialEncoder`): a fast tokenizer is not
safe to drive from two threads at once, and queries that arrive together are encoded in one
batch, which costs little more than encoding one. Searches read whichever :class:`Index` object
was current when they started; a write builds a new generation on disk (under the index's file
lock) and then swaps in a freshly opened object, so no search ever sees half a write.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..errors import SimsearchError
from ..index import Hit, Index, locate

log = logging.getLogger("simsearch.serve")
_STOP = object()
MAX_ENCODE_BATCH = 64  # texts per forward pass when queries pile up


class SerialEncoder:
    """Wraps an :class:`~simsearch.encoder.Encoder` so that one thread runs all of its work.

    Query encodes that are waiting together are merged into one call; anything else (a write's
    ``encode_counting``) runs alone, in arrival order. Attributes (``model_id``, ``dim``...) are
    the wrapped encoder's, so an :class:`Index` accepts it as its encoder.
    """

    def __init__(self, encoder: Any, model_id: str | None = None, max_batch: int = MAX_ENCODE_BATCH) -> None:
        self.encoder = encoder
        # An encoder loaded from a manifest's model directory names itself by that path; it is the
        # model the manifest names, so it answers to that name (which Index.open checks).
        self.model_id = model_id or encoder.model_id
        self.max_batch = max_batch
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"encoder-{encoder.model_id}", daemon=True)
        self._thread.start()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)

    def encode(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        if kwargs:
            return self._call(self.encoder.encode, texts, **kwargs)
        future: Future[np.ndarray] = Future()
        self._jobs.put((list(texts), future))
        return future.result()

    def encode_counting(self, texts: Sequence[str], **kwargs: Any) -> tuple[np.ndarray, int]:
        return self._call(self.encoder.encode_counting, texts, **kwargs)

    def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        future: Future[Any] = Future()
        self._jobs.put((lambda: function(*args, **kwargs), future))
        return future.result()

    def close(self) -> None:
        self._jobs.put(_STOP)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        pending: Any = None
        while True:
            job, pending = (pending if pending is not None else self._jobs.get()), None
            if job is _STOP:
                return
            work, future = job
            if callable(work):
                _settle(future, work)
                continue
            batch, size = [job], len(work)
            while size < self.max_batch:  # gather the queries that queued up meanwhile
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP or callable(more[0]):
                    pending = more
                    break
                batch.append(more)
                size += len(more[0])
            self._encode_batch(batch)

    def _encode_batch(self, batch: list[tuple[list[str], Future[np.ndarray]]]) -> None:
        try:
            vectors = self.encoder.encode([text for texts, _ in batch for text in texts])
        except BaseException as exc:  # every waiting request gets the error, the thread lives on
            for _, future in batch:
                future.set_exception(exc)
            return
        start = 0
        for texts, future in batch:
            future.set_result(vectors[start : start + len(texts)])
            start += len(texts)


def _settle(future: Future[Any], work: Callable[[], Any]) -> None:
    try:
        future.set_result(work())
    except BaseException as exc:
        future.set_exception(exc)


class ServedIndex:
    """One index as a server holds it: searches lock-free, writes one at a time, then a swap."""

    def __init__(self, name: str, path: Path, encoder: SerialEncoder) -> None:
        self.name = name
        self.path = path
        self.encoder = encoder
        self._write = threading.Lock()
        self._index = Index.open(path, encoder=encoder)

    @property
    def manifest(self) -> dict[str, Any]:
        return self._index.manifest

    def search(self, queries: list[str], k: int, min_score: float | None) -> list[list[Hit]]:
        index = self._index  # one generation for the whole request, whatever a write does meanwhile
        return index.search(queries, k, min_score=min_score)

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
            # The old object is dropped, not closed: searches still holding it finish on its
            # (unlinked but open) files, and CPython frees it when the last of them returns.
            self._index = Index.open(self.path, encoder=self.encoder)
        return dataclasses.asdict(stats) if dataclasses.is_dataclass(stats) else dict(stats)

    def close(self) -> None:
        self._index.close()


class Served:
    """The indexes of one server, opened at startup; one encoder per (model, pooling, length)."""

    def __init__(self, names: Sequence[str], index_dir: str | None = None) -> None:
        self.indexes: dict[str, ServedIndex] = {}
        self.encoders: dict[tuple[Any, ...], SerialEncoder] = {}
        try:
            for name in names:
                self._load(name, index_dir)
        except BaseException:
            self.close()
            raise

    def _load(self, name: str, index_dir: str | None) -> None:
        path = locate(name, index_dir)
        if path.name in self.indexes:
            raise SimsearchError(f"index {path.name!r} is named twice; serve each index once")
        probe = Index.open(name, index_dir=index_dir)  # validates the files before any model loads
        try:
            m = probe.manifest
            key = (m["model"], m["model_path"], m["pooling"], m["max_length"])
            if key not in self.encoders:
                encoder = SerialEncoder(probe.encoder, model_id=m["model"])
                self.encoders[key] = encoder
                encoder.encode(["warm up"])  # the first real request should not pay for this
        finally:
            probe.close()
        self.indexes[path.name] = ServedIndex(path.name, probe.path, self.encoders[key])
        log.info("loaded index %r: %d documents, model %s", path.name, len(probe), m["model"])

    def close(self) -> None:
        for served in self.indexes.values():
            served.close()
        for encoder in self.encoders.values():
            encoder.close()
