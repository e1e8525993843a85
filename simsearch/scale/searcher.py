"""Searching on Ray: each shard held open by Ray actors, called through the one query algorithm.

:class:`RaySearcher` is a sibling of :class:`~simsearch.search.searcher.LocalSearcher` behind the
:class:`~simsearch.search.searcher.Searcher` interface: the same requests, the same shard
functions (:mod:`simsearch.search.shard`, run inside :class:`ShardActor`), the same ranking, so
the answers are the local index's. Every shard's FAISS and SQLite files are opened by its own
actor, which may live on another machine of the cluster (the index directory must be readable
there under the same path). A write reloads only the shards whose directory changed: new actors
open the new files, and the old ones answer until the new ones are ready.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from simsearch.errors import ShardUnavailableError, SimsearchError
from simsearch.search.hits import Hit
from simsearch.scale.cluster import LOCAL, connect, first_line, import_ray, unwrap
from simsearch.search import shard
from simsearch.search.request import SearchRequest
from simsearch.search.searcher import Searcher, Stored, run
from simsearch.store.lexical.bm25 import Statistics
from simsearch.search.where import merge_types
from simsearch.store.manifest import read_manifest
from simsearch.store.shards import check_part, is_sharded, read_top_manifest

QUERY_TIMEOUT = 60.0  # seconds a query waits for its shards before it is answered with 503


class ShardActor:
    """Holds one shard (or a whole plain index) open and runs the shard functions on it."""

    def __init__(self, directory: str) -> None:
        from simsearch.store.generation import Store

        self.store = Store.open(Path(directory))

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

    def fetch(self, rowids: Sequence[int]) -> Stored:
        return shard.fetch(self.store, rowids)


class RaySearcher(Searcher):
    """The shards of one index, each answered by a Ray actor."""

    def __init__(self, path: Path, address: str | None, dirs: list[str], actors: list[Any]) -> None:
        self._path = path
        self._address = address
        self._dirs = dirs
        self._actors = actors
        self._types: dict[str, set[str]] | None = None

    @classmethod
    def open(cls, path: Path, address: str | None, *, replicas: int = 1) -> RaySearcher:
        """Start one actor per shard of the index at ``path`` on the cluster at ``address``."""
        connect(None if address in (None, "", LOCAL) else address)
        dirs = _shard_dirs(path)
        return cls(path, address, dirs, _start(path, dirs))

    def __repr__(self) -> str:
        return f"RaySearcher({self._address or LOCAL!r}, shards={len(self._actors)})"

    @property
    def actors(self) -> list[Any]:
        return list(self._actors)

    def search(self, request: SearchRequest) -> list[list[Hit]]:
        return run(request, _RayShards(self._path.name, list(self._actors)))

    def field_types(self) -> dict[str, set[str]]:
        if self._types is None:
            answers = _RayShards(self._path.name, list(self._actors)).each(shard.field_types)
            self._types = merge_types(answers)
        return self._types

    def reload(self) -> None:
        """Follow the newest committed generation: new actors for the shards whose directory
        changed, started before the old ones are let go (no gap for searches)."""
        dirs = _shard_dirs(self._path)
        keep = {d: a for d, a in zip(self._dirs, self._actors)}
        changed = [d for d in dirs if d not in keep]
        fresh = dict(zip(changed, _start(self._path, changed))) if changed else {}
        actors = [keep[d] if d in keep else fresh[d] for d in dirs]
        old = [a for d, a in keep.items() if d not in dirs]
        self._dirs, self._actors, self._types = dirs, actors, None
        ray = import_ray()
        for actor in old:
            ray.kill(actor)

    def close(self) -> None:
        ray = import_ray()
        for actor in self._actors:
            ray.kill(actor)


class _RayShards:
    """One generation's shard actors, called with a deadline."""

    def __init__(self, name: str, actors: list[Any]) -> None:
        self.name = name
        self.actors = actors

    def each(self, work: Callable[..., Any], *args: Any) -> list[Any]:
        return self._ask([(actor, work.__name__, args) for actor in self.actors])

    def fetch(self, wanted: Mapping[int, Sequence[int]]) -> dict[int, Stored]:
        numbers = sorted(wanted)
        found = self._ask([(self.actors[n], "fetch", (list(wanted[n]),)) for n in numbers])
        return dict(zip(numbers, found))

    def _ask(self, calls: list[tuple[Any, str, tuple[Any, ...]]]) -> list[Any]:
        ray = import_ray()
        pending = [getattr(actor, method).remote(*args) for actor, method, args in calls]
        try:
            return list(ray.get(pending, timeout=QUERY_TIMEOUT))
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            dead = _which(ray, pending)
            raise ShardUnavailableError(
                f"index {self.name!r}: shard {dead} is unavailable ({type(exc).__name__}); Ray "
                "restarts its actor, retry the query"
            ) from None
        except ray.exceptions.RayTaskError as exc:
            inner = _cause(exc)  # a bad filter, a damaged shard: the actor's own one-line error
            if isinstance(inner, SimsearchError):
                raise type(inner)(str(inner)) from None
            raise SimsearchError(f"index {self.name!r}: a shard actor failed: {first_line(exc)}") from None


def _shard_dirs(path: Path) -> list[str]:
    """The directories holding the index's shards (the index itself when plain), checked."""
    if not is_sharded(path):
        read_manifest(path)
        return [str(path)]
    top = read_top_manifest(path)
    for part in top["shards"]["parts"]:
        check_part(path, part)
    return [str(path / part["dir"]) for part in top["shards"]["parts"]]


def _start(path: Path, dirs: Sequence[str]) -> list[Any]:
    """One actor per directory, each with its files open (or the reason it could not)."""
    ray = import_ray()
    remote = ray.remote(ShardActor).options(max_restarts=-1, max_task_retries=0, num_cpus=0)
    actors = [remote.remote(directory) for directory in dirs]
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
    return actors


def _cause(exc: BaseException) -> BaseException:
    inner = unwrap(exc)
    return inner if isinstance(inner, SimsearchError) else exc


def _which(ray: Any, calls: list[Any]) -> str:
    """The shard numbers whose calls failed or hang (for the message); healthy ones answer fast."""
    failed = []
    for number, call in enumerate(calls):
        try:
            ray.get(call, timeout=2.0)
        except Exception:
            failed.append(number)
    return ", ".join(map(str, failed)) or "?"
