"""Where a Ray build's encoded rows go, block by block: the index's sink and the resume staging.

With ``--shard-writers driver`` the encoded blocks reach the driver, which saves each read task's
rows (:mod:`simsearch.scale.resume`) and writes them to the sink. With ``--shard-writers cluster``
a pipeline stage after the encoders (:func:`simsearch.scale.writers.deliver`) saves them and sends
each shard's rows to its writer actor on the nodes, so only counts reach the driver. Either way the
driver counts each task's rows and marks a task finished once all of them are saved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from simsearch.readers import Document
from simsearch.scale.resume import Checkpoint, TaskCounter, save_batch

if TYPE_CHECKING:
    from simsearch.store.write.bulk import Sink


class Feed:
    """Where a Ray build's encoded rows go: the sink (or, with ``--shard-writers cluster``, the
    writer actors, straight from the pipeline) and the resume checkpoint, task by task."""

    def __init__(
        self,
        sink: Sink,
        checkpoint: Checkpoint,
        progress: Callable[[int], None] | None,
        sample: list[str],
        writers: Any = None,
    ) -> None:
        self.sink, self.checkpoint, self.progress, self.sample = sink, checkpoint, progress, sample
        self.writers = writers
        self.counter = TaskCounter()
        self.encoded = 0  # rows encoded by this run (not replayed)

    def replay(self, tasks: set[int]) -> int:
        """Write the saved blocks of finished ``tasks``; returns their truncated count."""
        truncated = 0
        for docs, vectors, cut in self.checkpoint.replay(sorted(tasks)):
            self._write(docs, vectors)
            truncated += cut
        return truncated

    def stage(self) -> tuple[Callable[..., Any], dict[str, Any]] | None:
        """The pipeline stage that routes encoded blocks to the writer actors (None: they
        come here)."""
        if self.writers is None:
            return None
        from simsearch.scale.writers import deliver

        kwargs = {"actors": list(self.writers.actors), "staging": str(self.checkpoint.directory)}
        return deliver, kwargs

    def take(self, batch: dict[str, np.ndarray]) -> int:
        """One batch from the pipeline: encoded rows (saved here, then written), or the counts
        the writers' stage returns; returns its truncated count."""
        from simsearch.store.lexical.analyzer import extend_sample

        if "vector" in batch:
            save_batch(self.checkpoint.directory, batch)
            docs = [
                Document(str(i), str(t), json.loads(str(m)), str(w))
                for i, t, m, w in zip(batch["id"], batch["text"], batch["metadata"], batch["where"])
            ]
            self._write(docs, np.asarray(batch["vector"], dtype=np.float32))
            finished = self.counter.add_batch(batch)
            rows = len(docs)
        else:  # counts per task from :func:`simsearch.scale.writers.deliver`
            _raise_error(batch)
            finished = [
                int(task)
                for task, n, total in zip(batch["task"], batch["rows"], batch["task_rows"])
                if self.counter.add(int(task), int(n), int(total))
            ]
            texts = [text for block in batch["sample"] if str(block) for text in json.loads(str(block))]
            extend_sample(self.sample, [_Text(text) for text in texts])
            rows = int(np.sum(batch["rows"]))
            if self.progress is not None:
                self.progress(rows)
        for task in finished:
            self.checkpoint.finish(task, self.counter.seen[task])
        self.encoded += rows
        return int(np.sum(batch["truncated"]))

    def finish(self, tasks: Sequence[int]) -> None:
        """The pipeline ended: every task is whole (those with no rows too)."""
        for task in tasks:
            seen = self.counter.seen.get(task, 0)
            if self.counter.want.get(task) != seen:  # not marked yet: a task with no rows
                self.checkpoint.finish(task, seen)

    def _write(self, docs: list[Document], vectors: np.ndarray) -> None:
        from simsearch.store.lexical.analyzer import extend_sample

        self.sink.write(docs, vectors)
        extend_sample(self.sample, docs)
        if self.progress is not None:
            self.progress(len(docs))


@dataclass(frozen=True)
class _Text:
    text: str


def _raise_error(batch: dict[str, np.ndarray]) -> None:
    """A writer actor's error, as the writers' stage returned it (one line, its own class)."""
    from simsearch import errors

    for text in batch.get("error", ()):
        if str(text):
            name, message = json.loads(str(text))
            kind = getattr(errors, name, errors.SimsearchError)
            raise kind(message) if issubclass(kind, errors.SimsearchError) else errors.SimsearchError(message)
