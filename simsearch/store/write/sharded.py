"""add / delete / compact / reindex-lexical / verify --repair on a sharded index, each one atomic over all shards.

Each operation routes its documents or ids to their shards, makes a new directory for every
shard it changes (:func:`~simsearch.store.shards.fork_part`), runs the ordinary single-index
operation there, and commits all changed shards with one top-manifest swap. Shards it does
not change keep their directories.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from simsearch import __version__
from simsearch.errors import IndexNotFoundError, InputError, SimsearchError
from simsearch.readers import Document
from simsearch.store.locking import write_lock
from simsearch.store.manifest import MANIFEST, read_manifest
from simsearch.store.shards import (
    commit_top,
    fork_part,
    part_entry,
    part_name,
    read_top_manifest,
    remove_stale_parts,
    shard_of,
)
from simsearch.store.manifest import Manifest
from simsearch.validate import document_ids
from simsearch.store.write.cuts import capped
from simsearch.store.write.updates import (
    AddStats,
    CompactStats,
    DeleteStats,
    documents_of,
    add_documents,
    compact_index,
    delete_documents,
    reindex_lexical,
)


class ShardTransaction:
    """Under the index's write lock: fork the shards to change, then commit them all at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = write_lock(path)
        self._forks: dict[int, str] = {}
        self._done = False

    def __enter__(self) -> ShardTransaction:
        if not (self.path / MANIFEST).is_file():
            raise IndexNotFoundError(
                f"index {self.path.name!r} not found in {self.path.parent}; "
                "run `simsearch list` to see the indexes there"
            )
        self._lock.__enter__()
        try:
            self.previous = read_top_manifest(self.path)
            remove_stale_parts(self.path, self.previous)  # left by a killed write
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        self.parts = [dict(part) for part in self.previous["shards"]["parts"]]
        self.generation = int(self.previous["generation"]) + 1
        return self

    @property
    def shards(self) -> int:
        return len(self.parts)

    def fork(self, shard: int) -> Path:
        """A new directory for ``shard``, starting as a copy of the committed one."""
        name = part_name(shard, self.generation)
        with self.in_shard(shard):
            fork_part(self.path, self.parts[shard]["dir"], name)
        self._forks[shard] = name
        return self.path / name

    @contextlib.contextmanager
    def in_shard(self, shard: int) -> Iterator[None]:
        """Errors of work on ``shard`` name the index the user typed, not a shard directory
        (a fork is removed when the write fails, so `simsearch verify <fork>` would lead nowhere)."""
        try:
            yield
        except SimsearchError as exc:
            exc.args = (self._rename(str(exc), shard),)
            raise

    def _rename(self, message: str, shard: int) -> str:
        index = self.path.name
        for directory in filter(
            None, (self._forks.get(shard), part_name(shard, self.generation), self.parts[shard].get("dir"))
        ):
            message = message.replace(str(self.path / directory), str(self.path))
            message = message.replace(f"{directory!r}", f"{index!r} (shard {shard})")
            message = message.replace(directory, index)
        return message

    def fork_path(self, shard: int) -> Path:
        """The directory of ``shard``'s fork (after :meth:`fork`)."""
        return self.path / self._forks[shard]

    def commit(
        self, truncated: Callable[[int], int] | None = None, changes: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Swap in the forks whose shard changed; None (and nothing written) when none did.
        ``changes``: top-manifest keys the operation sets (the others are carried over).

        ``truncated`` (default: unchanged) maps the new document count to the index's new count of stored documents
        that were cut (a shard's own manifest may count more: a sharded build gives every shard
        the index's count, since it does not know which shard holds the cut documents)."""
        changed = False
        for shard, name in self._forks.items():
            entry = part_entry(self.path, name)
            if (
                entry["generation"] != self.parts[shard].get("generation")
                or entry["manifest_sha256"] != self.parts[shard]["manifest_sha256"]
            ):
                self.parts[shard], changed = entry, True
        if not changed:
            return None
        fields = {
            key: value
            for key, value in self.previous.items()
            if key not in ("count", "generation", "shards", "format", "format_version")
        }
        fields.update(changes or {})
        fields["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        fields["simsearch_version"] = __version__
        documents = sum(int(part["count"]) for part in self.parts)
        previous = int(self.previous.get("truncated", 0))
        fields["truncated"] = capped(previous, documents) if truncated is None else truncated(documents)
        kinds = {part.get("index_type", "flat") for part in self.parts}
        fields["index_type"] = kinds.pop() if len(kinds) == 1 else "mixed"
        self._done = True
        return commit_top(self.path, fields, self.parts, self.generation)

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if not self._done:
                remove_stale_parts(self.path, self.previous)  # the forks, uncommitted
        finally:
            self._lock.__exit__(*exc_info)


def _after(txn: ShardTransaction, manifest: dict[str, Any] | None) -> tuple[int, int]:
    """Count and generation after a transaction (the previous ones when nothing changed)."""
    final = manifest or txn.previous
    return int(final["count"]), int(final["generation"])


def add_sharded(
    path: Path,
    documents: Iterable[Document | str],
    identity: Manifest,
    encoder: Callable[[], Any],
    *,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> AddStats:
    """Upsert by id, each document in the shard its id hashes to; see :meth:`Index.add`.

    The input is routed in memory first (texts, not vectors) so that each shard is written once;
    each shard refuses to be written if its model is no longer ``identity``'s.
    """
    started = time.perf_counter()
    with ShardTransaction(path) as txn:
        routed: list[list[Document]] = [[] for _ in range(txn.shards)]
        seen: set[str] = set()
        for doc in documents_of(documents):
            if doc.id in seen:
                raise InputError(
                    f"{doc.where or doc.id}: duplicate document id {doc.id!r} "
                    "in the input; ids must be unique"
                )
            seen.add(doc.id)
            routed[shard_of(doc.id, txn.shards)].append(doc)
        if not seen:
            raise InputError("the input holds no documents (only empty lines or records?)")
        totals = {"added": 0, "updated": 0, "unchanged": 0, "encoded": 0, "truncated": 0}
        removed = 0
        for shard, docs in enumerate(routed):
            if docs:
                with txn.in_shard(shard):
                    stats = add_documents(
                        txn.fork(shard), docs, identity, encoder, batch_size=batch_size, progress=progress
                    )
                for key in totals:
                    totals[key] += getattr(stats, key)
                removed += stats.truncated_removed
        now = int(txn.previous.get("truncated", 0)) - removed + totals["truncated"]
        count, generation = _after(txn, txn.commit(lambda documents: capped(now, documents)))
    return AddStats(**totals, count=count, seconds=time.perf_counter() - started, generation=generation)


def delete_sharded(path: Path, ids: Iterable[str], encoder: Callable[[], Any] | None = None) -> DeleteStats:
    """Delete by id, each id looked up only in its own shard."""
    started = time.perf_counter()
    wanted = list(dict.fromkeys(document_ids(ids)))  # checked as a plain index checks them
    if not wanted:
        raise InputError("no document ids given to delete")
    with ShardTransaction(path) as txn:
        routed: list[list[str]] = [[] for _ in range(txn.shards)]
        for doc_id in wanted:
            routed[shard_of(doc_id, txn.shards)].append(doc_id)
        deleted, unknown, removed = 0, set[str](), 0
        for shard, part in enumerate(routed):
            if part:
                with txn.in_shard(shard):
                    stats = delete_documents(txn.fork(shard), part, encoder)
                deleted += stats.deleted
                unknown.update(stats.unknown)
                removed += stats.truncated_removed
        now = int(txn.previous.get("truncated", 0)) - removed
        count, generation = _after(txn, txn.commit(lambda documents: capped(now, documents)))
    return DeleteStats(
        deleted, tuple(i for i in wanted if i in unknown), count, time.perf_counter() - started, generation
    )


def compact_sharded(path: Path, encoder: Callable[[], Any] | None = None) -> CompactStats:
    """Compact every shard (SQLite VACUUM, FAISS rebuilt), committed together."""
    started = time.perf_counter()
    before = after = 0
    with ShardTransaction(path) as txn:
        shard_counts = 0  # exact where the shards counted their texts afresh, else too many
        for shard in range(txn.shards):
            fork = txn.fork(shard)
            with txn.in_shard(shard):
                stats = compact_index(fork, encoder)
            before += stats.bytes_before
            after += stats.bytes_after
            shard_counts += read_manifest(fork).truncated
        now = min(int(txn.previous.get("truncated", 0)), shard_counts)
        manifest = txn.commit(lambda documents: capped(now, documents))
        count, generation = _after(txn, manifest)
    return CompactStats(before, after, count, time.perf_counter() - started, generation)


def reindex_lexical_sharded(path: Path, analyzer: str | None = None) -> int:
    """Rebuild every shard's lexical part from its stored texts, committed together; returns the
    new generation. ``analyzer`` as for :func:`~simsearch.store.write.updates.reindex_lexical`,
    chosen once for all shards (``auto`` looks at a sample of every shard)."""
    from simsearch.store.lexical import reindex_analyzer

    with ShardTransaction(path) as txn:
        forks = []
        for shard in range(txn.shards):
            with txn.in_shard(shard):
                forks.append(txn.fork(shard))
        chosen = reindex_analyzer(txn.previous, analyzer, lambda: _sample(forks))
        for shard, fork in enumerate(forks):
            with txn.in_shard(shard):
                reindex_lexical(fork, chosen)
        settings = read_manifest(txn.fork_path(0))["lexical"]  # every shard got the same
        manifest = txn.commit(changes={"lexical": settings})
        return _after(txn, manifest)[1]


def _sample(forks: list[Path]) -> list[str]:
    """The first stored texts of every shard, :data:`~simsearch.store.lexical.analyzer.SAMPLE` in all."""
    from contextlib import closing

    from simsearch.store.lexical.analyzer import SAMPLE
    from simsearch.store.lexical import stored_sample
    from simsearch.store.generation import connect_readonly

    texts: list[str] = []
    for fork in forks:
        with closing(connect_readonly(fork / read_manifest(fork).files["sqlite"].name)) as db:
            texts += stored_sample(db, max(1, SAMPLE // len(forks)))
    return texts
