"""What runs inside a shard replica's Ray process: :class:`ShardActor` opens one shard (or a whole
plain index) on its node, checks that its manifest is the one the index committed, reads ahead
what the first search needs, and answers the shard functions of :mod:`simsearch.search.shard`.

Where replicas are placed, what they reserve, and how they are watched and replaced is the
driver's side, :mod:`simsearch.scale.replicas`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from simsearch.errors import IndexCorruptError
from simsearch.search import shard
from simsearch.search.request import SearchRequest
from simsearch.store.files import file_sha256
from simsearch.store.lexical.bm25 import Statistics
from simsearch.store.manifest import MANIFEST


class ShardActor:
    """Holds one shard (or a whole plain index) open and runs the shard functions on it."""

    def __init__(self, directory: str, checksum: str | None) -> None:
        from simsearch.store.generation import Store

        if checksum is not None and manifest_sha256(Path(directory)) != checksum:
            raise IndexCorruptError(
                f"{directory}: the shard's manifest on node {_node_ip()} differs from the one the "
                "index committed (another copy, or damaged); every node must read the same index files"
            )
        self.store = Store.open(Path(directory))
        self._warm()

    def _warm(self) -> None:
        """Read what the first search would otherwise read (the BM25 postings, the ids): a new
        replica answers its first query within the deadline, and a reload or replacement only
        swaps it in once it is ready (measured: 1.5-2.6 s for the postings of 131k-524k
        documents, more than the default deadline)."""
        from simsearch.store import lexical

        self.store.ids_of([])
        if lexical.lexical_settings(dict(self.store.manifest)) is not None:
            shard.statistics(self.store, [])

    def where(self) -> tuple[int, str, str]:
        """This process: pid, node IP and node id (for /health)."""
        import ray

        return os.getpid(), _node_ip(), ray.get_runtime_context().get_node_id()

    def pid(self) -> int:
        return os.getpid()

    def field_types(self) -> dict[str, set[str]]:
        return shard.field_types(self.store)

    def statistics(self, terms: Sequence[str]) -> Statistics:
        return shard.statistics(self.store, terms)

    def candidates(
        self, request: SearchRequest, collection: Statistics | None
    ) -> list[list[shard.Candidate]]:
        return shard.candidates(self.store, request, collection)

    def fetch(self, rowids: Sequence[int]) -> dict[int, tuple[str, str, dict[str, Any]]]:
        return shard.fetch(self.store, rowids)


def manifest_sha256(directory: Path) -> str | None:
    """The checksum of the manifest in ``directory``, or None where it cannot be read here
    (reported as a mismatch naming the node)."""
    try:
        return file_sha256(directory / MANIFEST)
    except OSError:
        return None


def _node_ip() -> str:
    import ray

    return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]
