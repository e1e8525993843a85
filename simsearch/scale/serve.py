"""Search on Ray: each shard held by a Ray actor, queries fanned out to all of them and merged.

``Index.open(name, ray="auto")`` (and ``simsearch serve NAME --ray``) returns a :class:`RayIndex`:
the same methods as a local index, but every shard's FAISS and SQLite files are opened by its
own actor, which may live on another machine of the cluster (the index directory must be
reachable there under the same path). A shard actor that dies is restarted by Ray (it reopens
its files); the queries it was answering fail with :class:`~simsearch.errors.ShardUnavailableError`
(HTTP 503), later ones are answered by the restarted actor.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from simsearch.errors import QueryError, ShardUnavailableError
from simsearch.index import Hit, check_queries
from simsearch.readers import Document
from simsearch.scale.cluster import LOCAL, first_line, import_ray
from simsearch.sharded import ShardedIndex
from simsearch.store.manifest import Manifest, read_manifest
from simsearch.store.shards import check_part, is_sharded, read_top_manifest

if TYPE_CHECKING:
    from simsearch.store.updates import AddStats, CompactStats, DeleteStats
    from simsearch.store.verify import VerifyReport

QUERY_TIMEOUT = 60.0  # seconds a query waits for its shards before it is answered with 503
_connected_here = False


class ShardActor:
    """Holds one shard (or a whole plain index) open and answers searches on it."""

    def __init__(self, directory: str) -> None:
        from simsearch.store.reader import Store

        self.store = Store.open(Path(directory))

    def pid(self) -> int:
        return os.getpid()

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[float, str, str, dict[str, Any]]]]:
        """Per query, the shard's top ``k`` as (score, id, text, metadata), best first."""
        scores, rowids = self.store.faiss.search(vectors, k)
        found = self.store.fetch(int(r) for r in rowids.ravel() if r >= 0)
        return [
            [(float(s), *found[int(r)]) for s, r in zip(srow, rrow) if r >= 0]
            for srow, rrow in zip(scores, rowids)
        ]


def connect(address: str | None) -> Any:
    """Ray, initialised once per process: ``auto`` / an address joins a cluster, ``local`` starts one."""
    global _connected_here
    ray = import_ray()
    if not ray.is_initialized():
        from simsearch.scale.cluster import connected

        context = connected(address)
        context.__enter__()  # held for the life of the process (a server, a notebook)
        _connected_here = True
    return ray


def open_on_ray(path: Path, address: str | None, encoder: Any = None) -> RayIndex:
    """Open the index at ``path`` with one Ray actor per shard."""
    ray = connect(None if address in (None, "", LOCAL) else address)
    top: Mapping[str, Any]
    if is_sharded(path):
        top = read_top_manifest(path)
        for part in top["shards"]["parts"]:
            check_part(path, part)
        dirs = [path / part["dir"] for part in top["shards"]["parts"]]
    else:
        top, dirs = read_manifest(path), [path]  # a plain index: one shard
    identity = read_manifest(dirs[0]).replace(name=str(top.get("name", path.name)))
    remote = ray.remote(ShardActor).options(max_restarts=-1, max_task_retries=0, num_cpus=0)
    actors = [remote.remote(str(directory)) for directory in dirs]
    try:
        ray.get([actor.pid.remote() for actor in actors], timeout=QUERY_TIMEOUT)  # opened, or why not
    except Exception as exc:
        for actor in actors:
            ray.kill(actor)
        inner = _cause(exc)
        raise (
            inner
            if isinstance(inner, Exception)
            else ShardUnavailableError(f"index {path.name!r}: shard actors did not start ({first_line(exc)})")
        ) from None
    return RayIndex(path, top, identity, actors, address, encoder)


def _cause(exc: BaseException) -> BaseException:
    from simsearch.errors import SimsearchError
    from simsearch.scale.cluster import unwrap

    inner = unwrap(exc)
    return inner if isinstance(inner, SimsearchError) else exc


class RayIndex(ShardedIndex):
    """An index whose shards are searched by Ray actors; writes go to the files, then actors reload."""

    def __init__(
        self,
        path: Path,
        top: Mapping[str, Any],
        identity: Manifest,
        actors: list[Any],
        address: str | None,
        encoder: Any = None,
    ) -> None:
        super().__init__(path, top, [], encoder)
        self._identity_manifest = identity
        self.actors = actors
        self._address = address

    @property
    def shards(self) -> int:
        return len(self.actors)

    def __repr__(self) -> str:
        return f"RayIndex({str(self.path)!r}, shards={self.shards}, count={self._top['count']})"

    def _identity(self) -> Manifest:
        return self._identity_manifest

    def search(  # type: ignore[override]
        self,
        query: str | Sequence[str],
        k: int = 10,
        *,
        min_score: float | None = None,
        mode: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[Hit] | list[list[Hit]]:
        """Dense search by the shard actors (the default here); lexical and hybrid modes and
        metadata filters are answered by indexes opened without Ray."""
        if mode not in (None, "dense") or where:
            raise QueryError(
                "indexes served on Ray answer dense queries without filters; "
                "use --mode dense, or open the index without --ray"
            )
        single = isinstance(query, str)
        queries = check_queries(query, k, min_score)
        results = self.search_vectors(self.encoder.encode(queries), k, min_score=min_score)
        return results[0] if single else results

    def search_vectors(
        self,
        vectors: np.ndarray,
        k: int = 10,
        *,
        min_score: float | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[list[Hit]]:
        if where:
            raise QueryError("indexes served on Ray do not filter by metadata; open the index without --ray")
        ray = import_ray()
        actors = self.actors  # one generation for the whole request
        calls = [actor.search.remote(np.ascontiguousarray(vectors, dtype=np.float32), k) for actor in actors]
        try:
            answers = ray.get(calls, timeout=QUERY_TIMEOUT)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            dead = _which(ray, calls)
            raise ShardUnavailableError(
                f"index {self.path.name!r}: shard {dead} is unavailable ({type(exc).__name__}); Ray "
                "restarts its actor, retry the query"
            ) from None
        merged = []
        for per_query in zip(*answers):
            rows = sorted((row for shard in per_query for row in shard), key=lambda row: -row[0])
            rows = [row for row in rows[:k] if min_score is None or row[0] >= min_score]
            merged.append(
                [
                    Hit(rank, doc_id, score, text, meta)
                    for rank, (score, doc_id, text, meta) in enumerate(rows, 1)
                ]
            )
        return merged

    def add(
        self,
        documents: Iterable[Document | str],
        *,
        batch_size: int | None = None,
        progress: Callable[[int], None] | None = None,
        device: str = "cpu",
    ) -> AddStats:
        if self.sharded:
            return super().add(documents, batch_size=batch_size, progress=progress, device=device)
        from simsearch.store.updates import add_documents

        stats = add_documents(
            self.path,
            documents,
            self._identity(),
            self._encoder_on(device),
            batch_size=batch_size,
            progress=progress,
        )
        self._reopen(stats.generation)
        return stats

    def delete(self, ids: Iterable[str]) -> DeleteStats:
        if self.sharded:
            return super().delete(ids)
        from simsearch.store.updates import delete_documents

        stats = delete_documents(self.path, ids, lambda: self.encoder)
        self._reopen(stats.generation)
        return stats

    def compact(self) -> CompactStats:
        if self.sharded:
            return super().compact()
        from simsearch.store.updates import compact_index

        stats = compact_index(self.path, lambda: self.encoder)
        self._reopen(stats.generation)
        return stats

    def verify(self, repair: bool = False) -> VerifyReport:
        from simsearch.index import load_encoder
        from simsearch.store.verify import verify_index

        report = verify_index(self.path, encoder=self._encoder, repair=repair, load_encoder=load_encoder)
        if report.repaired and report.generation is not None:
            self._reopen(report.generation)
        return report

    @property
    def sharded(self) -> bool:
        return "shards" in self._top

    def _reopen(self, generation: int) -> None:
        if generation != self._top["generation"]:
            fresh = open_on_ray(self.path, self._address, self._encoder)
            self._top, self._identity_manifest, self.actors = (
                fresh._top,
                fresh._identity_manifest,
                fresh.actors,
            )

    def close(self) -> None:
        ray = import_ray()
        for actor in self.actors:
            ray.kill(actor)


def _which(ray: Any, calls: list[Any]) -> str:
    """The shard numbers whose calls failed or hang (for the message); healthy ones answer fast."""
    failed = []
    for number, call in enumerate(calls):
        try:
            ray.get(call, timeout=2.0)
        except Exception:
            failed.append(number)
    return ", ".join(map(str, failed)) or "?"
