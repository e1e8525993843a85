"""Searching on Ray: each shard held open by Ray actors, called through the one query algorithm.

:class:`RaySearcher` is a sibling of :class:`~simsearch.search.searcher.LocalSearcher` behind the
:class:`~simsearch.search.searcher.Searcher` interface: the same requests, the same shard
functions (:mod:`simsearch.search.shard`, run inside :class:`ShardActor`), the same ranking, so
the answers are the local index's. Every shard's FAISS and SQLite files are opened by its own
actor, which may live on another machine of the cluster (the index directory must be readable
there under the same path; each actor checks the shard's manifest against the top manifest's
checksum before it serves). A write reloads only the shards whose directory changed: new actors
open the new files, and the old ones answer until the new ones are ready.

Each shard has ``replicas`` actors (:mod:`simsearch.scale.replicas`). Every call of the query
algorithm goes to one healthy replica per shard and must be answered within ``deadline``
seconds; a late or dead replica is marked unhealthy, replaced in the background and never
waited on again, and the call is retried on another replica. When a shard has none left, the
search fails with :class:`~simsearch.errors.ShardUnavailableError` (HTTP 503), or, inside
:func:`allow_partial`, answers from the other shards and names the missing ones.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from simsearch.errors import ShardUnavailableError, SimsearchError
from simsearch.search.hits import Hit
from simsearch.scale.cluster import (
    LOCAL,
    connect,
    first_line,
    gcs_address,
    head_lost,
    import_ray,
    unwrap,
)
from simsearch.scale.head import HeadMonitor
from simsearch.scale.replicas import ACTOR_CPUS, ShardGroup, ShardSpec, start_groups
from simsearch.scale.shard_actor import ShardActor
from simsearch.search import shard
from simsearch.search.request import SearchRequest
from simsearch.search.searcher import Searcher, Stored, run
from simsearch.store.lexical.bm25 import Statistics
from simsearch.search.where import merge_types
from simsearch.store.manifest import read_manifest
from simsearch.store.shards import check_part, is_sharded, read_top_manifest

__all__ = ["DEADLINE", "RaySearcher", "ShardActor", "allow_partial", "connect", "disconnect", "watch_cluster"]

DEADLINE = 2.0  # seconds a replica has to answer one call before the call goes to another replica
# The missing shards of the searches run inside `allow_partial()` (None: a missing shard fails the search).
_partial: contextvars.ContextVar[set[int] | None] = contextvars.ContextVar("partial", default=None)


def disconnect(timeout: float = 10.0) -> None:
    """Let go of the process's Ray connection now (after a lost head: while Python can still
    run Ray's shutdown, not at interpreter exit), waiting at most ``timeout`` seconds for it."""
    ray = import_ray()
    if not ray.is_initialized():
        return

    def close() -> None:
        try:
            ray.shutdown()
        except Exception:  # the cluster is gone: nothing left to close cleanly
            pass

    closing = threading.Thread(target=close, name="ray-disconnect", daemon=True)
    closing.start()
    closing.join(timeout)


@contextlib.contextmanager
def allow_partial() -> Iterator[set[int]]:
    """Within this block, a Ray-served search whose shard has no healthy replica left answers
    with the other shards' hits instead of failing; the set it yields collects the numbers of
    the shards that did not answer (empty: the answer is complete)::

        with allow_partial() as missing:
            hits = index.search("bread")
        if missing: ...  # hits lack the documents of those shards
    """
    missing: set[int] = set()
    token = _partial.set(missing)
    try:
        yield missing
    finally:
        _partial.reset(token)


class RaySearcher(Searcher):
    """The shards of one index, each answered by ``replicas`` Ray actors, every call with a deadline."""

    def __init__(self, path: Path, address: str | None, groups: list[ShardGroup], deadline: float) -> None:
        self._path = path
        self._address = address
        self._groups = groups
        self._types: dict[str, set[str]] | None = None
        self._replicas = len(groups[0].replicas) if groups else 1
        self.deadline = deadline

    @classmethod
    def open(
        cls, path: Path, address: str | None, *, replicas: int = 1, deadline: float = DEADLINE
    ) -> RaySearcher:
        """Start ``replicas`` actors per shard of the index at ``path`` on the cluster at
        ``address`` (see :mod:`simsearch.scale.replicas` for placement and reservations)."""
        if deadline <= 0:
            raise SimsearchError(f"the deadline must be more than 0 seconds, not {deadline}")
        connect(None if address in (None, "", LOCAL) else address)
        groups = start_groups(path.name, _shard_specs(path), replicas, ACTOR_CPUS)
        return cls(path, address, groups, deadline)

    def __repr__(self) -> str:
        return (
            f"RaySearcher({self._address or LOCAL!r}, shards={len(self._groups)}, replicas={self._replicas})"
        )

    @property
    def actors(self) -> list[Any]:
        """Each shard's first healthy replica (the only one with ``replicas=1``)."""
        return [
            next((r.handle for r in g.replicas if r.state == "healthy"), g.replicas[0].handle)
            for g in self._groups
        ]

    def placement(self) -> list[dict[str, Any]]:
        """Each shard's replicas: node, pid and state (healthy, unhealthy: being replaced, down)."""
        return [group.describe() for group in self._groups]

    def search(self, request: SearchRequest) -> list[list[Hit]]:
        groups = list(self._groups)  # one generation for every step, even if a write reloads meanwhile
        collect = _partial.get()
        excluded: set[int] = set()
        while True:
            shards = _RayShards(self._path.name, groups, self.deadline, collect is not None, excluded)
            try:
                hits = run(request, shards)
            except _Lost as lost:  # a shard that proposed hits cannot fetch them: search without it
                excluded.add(lost.number)
                continue
            if collect is not None:
                collect.update(shards.missing)
            return hits

    def field_types(self) -> dict[str, set[str]]:
        if self._types is None:
            shards = _RayShards(self._path.name, list(self._groups), self.deadline, False, set())
            self._types = merge_types(shards.each(shard.field_types))
        return self._types

    def reload(self) -> None:
        """Follow the newest committed generation: new actors for the shards that changed (their
        directory, or a plain index's manifest), started (files open and checked) before the old
        ones are let go."""
        specs = _shard_specs(self._path)
        keep = {g.spec.key: g for g in self._groups}
        changed = [spec for spec in specs if spec.key not in keep]
        fresh = {g.spec.key: g for g in start_groups(self._path.name, changed, self._replicas, ACTOR_CPUS)}
        groups = []
        for spec in specs:
            group = keep.get(spec.key) or fresh[spec.key]
            group.spec = spec  # (its number may have moved)
            groups.append(group)
        old = [g for g in self._groups if g not in groups]
        self._groups, self._types = groups, None
        # searches already running hold the old groups: their actors answer until those finish
        # (a retry may take a few deadlines), then go
        grace = threading.Timer(max(5.0, 3 * self.deadline), _close_all, args=(old,))
        grace.daemon = True
        grace.start()

    def close(self) -> None:
        if head_lost():
            return  # the cluster is gone and its actors with it: asking Ray would only hang
        for group in self._groups:
            group.close()


class _Lost(Exception):
    """A shard could not fetch the hits it proposed (partial searches rerun without it)."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.number = number


class _RayShards:
    """One generation's shard replicas, each call answered by one healthy replica per shard
    within the deadline, else retried on another."""

    def __init__(
        self, name: str, groups: list[ShardGroup], deadline: float, partial: bool, excluded: set[int]
    ) -> None:
        self.name = name
        self.groups = groups
        self.deadline = deadline
        self.partial = partial
        self.missing = set(excluded)

    def each(self, work: Callable[..., Any], *args: Any) -> list[Any]:
        numbers = [n for n in range(len(self.groups)) if n not in self.missing]
        found = self._ask(work.__name__, lambda n: args, numbers)
        return [found[n] if n in found else _nothing(work.__name__, args) for n in range(len(self.groups))]

    def fetch(self, wanted: Mapping[int, Sequence[int]]) -> dict[int, Stored]:
        numbers = sorted(wanted)
        found = self._ask("fetch", lambda n: (list(wanted[n]),), numbers)
        for n in numbers:
            if n not in found:
                raise _Lost(n)
        return found

    def _ask(self, method: str, args: Callable[[int], tuple[Any, ...]], numbers: list[int]) -> dict[int, Any]:
        ray = import_ray()
        answers: dict[int, Any] = {}
        tried: dict[int, set[int]] = {n: set() for n in numbers}
        todo = list(numbers)
        while todo:
            flight: dict[Any, tuple[int, Any]] = {}
            for n in todo:
                replica = self.groups[n].pick(tried[n])
                if replica is None:
                    self._missing(n)
                    continue
                tried[n].add(id(replica))
                flight[getattr(replica.handle, method).remote(*args(n))] = (n, replica)
            if not flight:
                break
            ready, late = ray.wait(list(flight), num_returns=len(flight), timeout=self.deadline)
            todo = []
            for ref in ready:
                n, replica = flight[ref]
                try:
                    answers[n] = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    _raise_own(self.name, exc)  # a bad filter, a damaged shard: not the replica's fault
                except ray.exceptions.RayError as exc:  # the replica died (its node, a kill)
                    self.groups[n].failed(replica, f"failed ({type(exc).__name__})")
                    todo.append(n)
            for ref in late:
                n, replica = flight[ref]
                self.groups[n].failed(replica, f"missed the {self.deadline:g} s deadline")
                todo.append(n)
        return answers

    def _missing(self, n: int) -> None:
        if not self.partial:
            raise ShardUnavailableError(
                f"index {self.name!r}: shard {n} is unavailable (no healthy replica answered within "
                f"{self.deadline:g} s; replicas: {self.groups[n].states()}); replacements are starting, "
                "retry the query"
            )
        self.missing.add(n)


def _nothing(method: str, args: tuple[Any, ...]) -> Any:
    """What a missing shard contributes to a partial answer: no rows, no candidates, no fields."""
    if method == "statistics":
        return Statistics(0, 0, {})
    if method == "candidates":
        request: SearchRequest = args[0]
        return [[] for _ in request.queries]
    return {}


def _raise_own(name: str, exc: BaseException) -> None:
    inner = _cause(exc)
    if isinstance(inner, SimsearchError):
        raise type(inner)(str(inner)) from None
    raise SimsearchError(f"index {name!r}: a shard actor failed: {first_line(exc)}") from None


def _close_all(groups: list[ShardGroup]) -> None:
    for group in groups:
        group.close()


def _shard_specs(path: Path) -> list[ShardSpec]:
    """The index's shards (the index itself when plain), checked, with what each reserves."""
    if not is_sharded(path):
        read_manifest(path)
        return [ShardSpec.of(0, str(path), None)]
    top = read_top_manifest(path)
    specs = []
    for number, part in enumerate(top["shards"]["parts"]):
        check_part(path, part)
        specs.append(ShardSpec.of(number, str(path / part["dir"]), part["manifest_sha256"]))
    return specs


def _cause(exc: BaseException) -> BaseException:
    inner = unwrap(exc)
    return inner if isinstance(inner, SimsearchError) else exc


WATCH_GRACE = 3.0  # seconds without an answer from the head that mean it is gone


def watch_cluster(on_lost: Callable[[str], None]) -> HeadMonitor:
    """Check every second that the cluster's head (its GCS port) still accepts connections;
    after :data:`WATCH_GRACE` seconds without, call ``on_lost`` once with a one-line message.
    (Ray itself ends a driver whose head is gone only after a minute, with no word of why.)"""
    address = gcs_address(import_ray())

    def lost(_: str) -> None:
        on_lost(f"the Ray cluster's head at {address} went away; searches cannot be answered")

    return HeadMonitor(address, lost, grace=WATCH_GRACE).start()


def cluster_lost() -> bool:
    """Whether :func:`watch_cluster` found the cluster's head gone."""
    return head_lost()
