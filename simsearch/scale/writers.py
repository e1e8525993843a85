"""Shard writers on the cluster: one Ray actor per shard writes its directory and builds its FAISS
file, so a sharded Ray build's SQLite writes, BM25 part and FAISS builds run on the nodes, not in
the driver (:class:`simsearch.store.write.lanes.ShardWriters`; ``build --ray --shard-writers cluster``).

Every node must see the index's directory under the same path (a shared file system): each actor
checks that it sees the staging directory the driver made before it writes. The encoded blocks go
straight from the encoders to the actors: a Ray Data stage after the encoders (:func:`deliver`)
saves each block for a resumed build, splits it by shard and calls the actors, and only counts
reach the driver. The driver commits the top manifest once, after every shard committed: a
failure anywhere leaves the previous index.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from simsearch.errors import SimsearchError
from simsearch.readers import Document
from simsearch.scale.cluster import first_line, unwrap


CLOSE_TIMEOUT = 60.0  # seconds to wait for the actors to drop what they staged


class ShardWriterActor:
    """Writes one shard directory (a :class:`~simsearch.store.write.writer.StoreWriter` held open)."""

    def __init__(self, directory: str) -> None:
        from simsearch.store.write.writer import StoreWriter

        staging = Path(directory).parent
        if not staging.is_dir():
            raise SimsearchError(
                f"{staging} is not visible on node {_node_ip()}; --shard-writers cluster needs the "
                "index directory on a file system every node shares (or use --shard-writers driver)"
            )
        self.writer = StoreWriter(Path(directory))
        self.writer.__enter__()
        self.closed = False
        self.blocks: set[str] = set()  # what :func:`deliver` sent, by key: a retried block is written once

    def write(self, docs: list[Document], vectors: np.ndarray, key: str | None = None) -> None:
        from simsearch.store.write.rows import insert_documents

        assert self.writer.db is not None
        if key is not None and key in self.blocks:
            return
        insert_documents(self.writer.db, docs, vectors)
        if key is not None:
            self.blocks.add(key)

    def count(self) -> int:
        assert self.writer.db is not None
        return int(self.writer.db.execute("SELECT count(*) FROM documents").fetchone()[0])

    def commit(
        self, fields: dict[str, Any], index_type: str, target_recall: float, tune_vectors: np.ndarray | None
    ) -> None:
        from simsearch.store.index_types import builder

        self.writer.commit(fields, builder(index_type, target_recall, tune_vectors))

    def drop(self) -> None:
        """Drop what was staged (a shard a resumed build takes as a failed run committed it)."""
        if not self.closed:
            self.closed = True
            self.writer.__exit__(None, None, None)

    def close(self) -> int:
        """Drop what was staged and not committed; the actor's pid (tests see where it ran)."""
        self.drop()
        return os.getpid()


class RayWriters:
    """:class:`~simsearch.store.write.lanes.ShardWriters` as Ray actors, spread over the nodes.

    The actors reserve no CPU: the encoder actors hold the cores while batches arrive, and a
    writer that waited for one would wait for the end of encoding (SQLite inserts are light;
    the FAISS builds run at the commit, when the encoders are done).
    """

    def __init__(self, ray: Any) -> None:
        self.ray = ray
        self.actors: list[Any] = []
        self.pids: list[int] = []

    def open(self, directories: Sequence[Path]) -> None:
        remote = self.ray.remote(num_cpus=0, scheduling_strategy="SPREAD")(ShardWriterActor)
        self.actors = [remote.remote(str(directory)) for directory in directories]
        self.ray.get([actor.count.remote() for actor in self.actors])  # constructed, or why not

    def write(self, batches: Sequence[tuple[Sequence[Document], np.ndarray] | None]) -> None:
        calls = [
            actor.write.remote(list(batch[0]), batch[1])
            for actor, batch in zip(self.actors, batches)
            if batch is not None
        ]
        self.ray.get(calls)

    def count(self) -> int:
        return sum(self.ray.get([actor.count.remote() for actor in self.actors]))

    def commit(
        self,
        fields: Sequence[dict[str, Any] | None],
        index_type: str,
        target_recall: float,
        tune_vectors: np.ndarray | None,
        committed: Callable[[int], None] | None = None,
    ) -> None:
        calls = {
            (
                actor.drop.remote()
                if f is None
                else actor.commit.remote(f, index_type, target_recall, tune_vectors)
            ): n
            for n, (actor, f) in enumerate(zip(self.actors, fields))
        }
        waiting = list(calls)
        while waiting:  # each shard as it commits (a later failure keeps the ones done)
            ready, waiting = self.ray.wait(waiting, num_returns=1)
            self.ray.get(ready)
            if committed is not None and fields[calls[ready[0]]] is not None:
                committed(calls[ready[0]])

    def close(self) -> None:
        """Drop what the actors staged and end them; the driver removes the staging directory
        in any case, so a dead actor (or a lost head: nothing is asked of Ray then) loses nothing."""
        from simsearch.scale.cluster import head_lost

        if head_lost():
            self.actors = []
            return
        try:
            self.pids = self.ray.get([actor.close.remote() for actor in self.actors], timeout=CLOSE_TIMEOUT)
        except Exception:  # noqa: BLE001 - see above
            pass
        finally:
            for actor in self.actors:
                self.ray.kill(actor)
            self.actors = []


SAMPLE_TEXTS = 8  # texts of each block returned to the driver, for the analyzer's ``auto``


def deliver(batch: dict[str, np.ndarray], actors: Sequence[Any], staging: str) -> dict[str, np.ndarray]:
    """The pipeline stage after the encoders: save ``batch`` for a resumed build (under
    ``staging``; "" saves nothing), send each shard's rows to its writer actor and wait for them;
    returns counts per read task (``task``, ``rows``, ``task_rows``), the block's ``truncated``
    count, a ``sample`` of its texts and a writer's ``error`` (JSON ``[class name, message]``, or
    ""), all the driver gets. Runs on any node."""
    import json

    from simsearch.scale.resume import save_batch

    if staging:
        save_batch(Path(staging), batch)
    error = ""
    try:
        _send(batch, actors)
    except Exception as exc:  # noqa: BLE001 - a writer's own error (a duplicate id) goes to the driver
        inner = unwrap(exc)
        if not isinstance(inner, SimsearchError):
            raise
        # returned, not raised: raised here, Ray Data's UserCodeException loses it on the way
        error = json.dumps([type(inner).__name__, first_line(inner)])
    tasks, totals = np.asarray(batch["task"]), np.asarray(batch["task_rows"])
    numbers = np.unique(tasks)
    sample = np.array([""] * len(numbers), dtype=object)
    truncated = np.zeros(len(numbers), dtype=np.int64)
    if len(numbers):
        sample[0] = json.dumps([str(t) for t in batch["text"][:SAMPLE_TEXTS]])
        truncated[0] = int(np.sum(batch["truncated"]))
    return {
        "task": numbers,
        "rows": np.array([np.sum(tasks == n) for n in numbers], dtype=np.int64),
        "task_rows": np.array([np.max(totals[tasks == n]) for n in numbers], dtype=np.int64),
        "truncated": truncated,
        "sample": sample,
        "error": np.array([error] * len(numbers), dtype=object),
    }


def _send(batch: dict[str, np.ndarray], actors: Sequence[Any]) -> None:
    """Each shard's rows of ``batch`` to its writer actor (routed by id hash), waited for."""
    import hashlib
    import json

    import ray

    from simsearch.store.shards import shard_of

    ids = [str(i) for i in batch["id"]]
    routed: list[list[int]] = [[] for _ in actors]
    for row, doc_id in enumerate(ids):
        routed[shard_of(doc_id, len(actors))].append(row)
    # the block's identity: its rows' tasks and places in them (ids may repeat: an input error
    # the writer reports; a block Ray retries has the same key and is written once)
    places = "\0".join(f"{t}:{q}" for t, q in zip(batch["task"], batch["seq"]))
    key = hashlib.blake2b(places.encode("ascii"), digest_size=16).hexdigest()
    vectors = np.asarray(batch["vector"], dtype=np.float32)
    calls = [
        actor.write.remote(
            [
                Document(
                    ids[r],
                    str(batch["text"][r]),
                    json.loads(str(batch["metadata"][r])),
                    str(batch["where"][r]),
                )
                for r in rows
            ],
            vectors[rows],
            key,
        )
        for actor, rows in zip(actors, routed)
        if rows
    ]
    ray.get(calls)


def replay(batch: dict[str, np.ndarray], actors: Sequence[Any]) -> dict[str, np.ndarray]:
    """A resumed build's saved blocks (``batch["block"]``: their files, ``batch["task"]``: their
    read tasks) read and sent to the writer actors where this runs, as :func:`deliver` sends
    encoded ones; returns what it returns, for every block together."""
    import json

    from simsearch.scale.resume import load_block

    results = []
    for path, task in zip(batch["block"], batch["task"]):
        docs, vectors, truncated = load_block(Path(str(path)))
        first = int(Path(str(path)).name.split("-")[0])  # the block's place in its task
        counts = np.zeros(len(docs), dtype=np.int64)
        counts[:1] = truncated
        columns = {
            "id": np.array([d.id for d in docs], dtype=object),
            "text": np.array([d.text for d in docs], dtype=object),
            "metadata": np.array([json.dumps(d.metadata, ensure_ascii=False) for d in docs], dtype=object),
            "where": np.array([d.where for d in docs], dtype=object),
            "vector": vectors,
            "truncated": counts,
            "task": np.full(len(docs), int(task), dtype=np.int64),
            "seq": np.arange(first, first + len(docs), dtype=np.int64),
            "task_rows": np.zeros(len(docs), dtype=np.int64),
        }
        results.append(deliver(columns, actors, ""))
    return {key: np.concatenate([r[key] for r in results]) for key in results[0]} if results else {}


def _node_ip() -> str:
    try:
        import ray

        util: Any = ray.util
        return str(util.get_node_ip_address())
    except Exception:  # noqa: BLE001 - only a name for the message
        return "(unknown)"
