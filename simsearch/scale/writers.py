"""Shard writers on the cluster: one Ray actor per shard writes its directory and builds its FAISS
file, so a sharded Ray build's SQLite writes, BM25 part and FAISS builds run on the nodes, not in
the driver (:class:`simsearch.store.write.bulk.ShardWriters`; ``build --ray --shard-writers cluster``).

Every node must see the index's directory under the same path (a shared file system): each actor
checks that it sees the staging directory the driver made before it writes. The driver still
routes the encoded batches to the actors and commits the top manifest once, after every shard
committed: a failure anywhere leaves the previous index.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from simsearch.errors import SimsearchError
from simsearch.readers import Document


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

    def write(self, docs: list[Document], vectors: np.ndarray) -> None:
        from simsearch.store.write.bulk import insert_documents

        assert self.writer.db is not None
        insert_documents(self.writer.db, docs, vectors)

    def count(self) -> int:
        assert self.writer.db is not None
        return int(self.writer.db.execute("SELECT count(*) FROM documents").fetchone()[0])

    def commit(
        self, fields: dict[str, Any], index_type: str, target_recall: float, tune_vectors: np.ndarray | None
    ) -> None:
        from simsearch.store.index_types import builder

        self.writer.commit(fields, builder(index_type, target_recall, tune_vectors))

    def close(self) -> int:
        """Drop what was staged and not committed; the actor's pid (tests see where it ran)."""
        self.writer.__exit__(None, None, None)
        return os.getpid()


class RayWriters:
    """:class:`~simsearch.store.write.bulk.ShardWriters` as Ray actors, spread over the nodes.

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
        fields: Sequence[dict[str, Any]],
        index_type: str,
        target_recall: float,
        tune_vectors: np.ndarray | None,
    ) -> None:
        calls = [
            actor.commit.remote(f, index_type, target_recall, tune_vectors)
            for actor, f in zip(self.actors, fields)
        ]
        self.ray.get(calls)

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


def _node_ip() -> str:
    try:
        import ray

        util: Any = ray.util
        return str(util.get_node_ip_address())
    except Exception:  # noqa: BLE001 - only a name for the message
        return "(unknown)"
