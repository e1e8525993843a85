"""Shard replicas on Ray: where each goes, what it reserves, whether it is healthy, replacement.

Every shard of a served index is held open by ``replicas``
:class:`~simsearch.scale.shard_actor.ShardActor` processes (what runs inside them lives there), each
placed with a soft node-affinity scheduling strategy on a different node where the cluster has
enough (replica ``i`` of shard ``s`` on node ``(s + i) mod nodes``; a replacement avoids the nodes
of its shard's other replicas), and each reserving CPU and memory from Ray's scheduler (the
shard's FAISS file and SQLite store, whose size bounds the in-memory BM25 postings, the
vectors FAISS reads from SQLite when its file leaves them there, plus a margin for the process), so Ray never packs more shards on a node than its memory holds.

A replica that dies or misses a call's deadline is marked unhealthy, is not asked again, and is
replaced in the background: killed (a paused process too) and started afresh, opening and
checking its shard's files before it is used.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from simsearch.errors import ShardUnavailableError, SimsearchError
from simsearch.scale.cluster import first_line, import_ray, unwrap
from simsearch.scale.shard_actor import ShardActor, manifest_sha256
from simsearch.store.manifest import MANIFEST, vectors_in_sqlite

START_TIMEOUT = 120.0  # seconds shard actors get to open their files
ACTOR_CPUS = 0.25  # a shard actor's CPU reservation: searches are short, several share a core
# bytes a shard actor's process needs besides its data: Python, Ray, numpy, FAISS and SQLite
# loaded (measured: 150 MiB RSS for an actor holding a 0.3 MB shard, Ray 2.60), with room to spare
MARGIN = 192 << 20
REPLACE_TRIES = 3
log = logging.getLogger("simsearch")


def _refilled_bytes(directory: Path) -> int:
    """The float32 vectors an open shard holds in FAISS beyond its FAISS file: all of them when
    the file leaves them to SQLite (each vector stored once on disk, but held in memory too)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        return int(manifest["count"]) * int(manifest["dim"]) * 4 if vectors_in_sqlite(manifest) else 0
    except (OSError, ValueError, KeyError, TypeError):
        return 0  # opening the shard reports what is wrong with its manifest


@dataclass(frozen=True)
class ShardSpec:
    """One shard to serve: its number, directory, committed manifest checksum, reservation."""

    number: int
    directory: str
    checksum: str | None
    memory: int
    version: str = ""  # what changes with every commit of this shard (reload compares it)

    @classmethod
    def of(cls, number: int, directory: str, checksum: str | None) -> ShardSpec:
        data = sum(f.stat().st_size for f in Path(directory).iterdir() if f.is_file())
        data += _refilled_bytes(Path(directory))
        # a shard directory is never written again once committed; a plain index's directory is,
        # so its manifest's checksum tells its generations apart
        version = checksum or manifest_sha256(Path(directory)) or ""
        return cls(number, directory, checksum, data + MARGIN, version)

    @property
    def key(self) -> tuple[str, str]:
        return self.directory, self.version


@dataclass(eq=False)
class Replica:
    """One shard actor: its handle, where it runs, and whether queries may go to it."""

    handle: Any
    pid: int
    node: str
    node_id: str
    state: str = "healthy"  # healthy | unhealthy (being replaced) | down (could not be replaced)
    reason: str = ""

    def describe(self) -> dict[str, Any]:
        out = {"node": self.node, "node_id": self.node_id, "pid": self.pid, "state": self.state}
        return {**out, "reason": self.reason} if self.reason else out


@dataclass(eq=False)
class ShardGroup:
    """The replicas of one shard; queries go round-robin to the healthy ones."""

    name: str
    spec: ShardSpec
    replicas: list[Replica]
    cpus: float
    closed: bool = False
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pick(self, tried: set[int]) -> Replica | None:
        """A healthy replica not yet tried by this call, or None."""
        with self._lock:
            healthy = [r for r in self.replicas if r.state == "healthy" and id(r) not in tried]
            if not healthy:
                return None
            self._next += 1
            return healthy[self._next % len(healthy)]

    def failed(self, replica: Replica, reason: str) -> None:
        """``replica`` died or missed a deadline: never asked again, replaced in the background."""
        with self._lock:
            if replica.state != "healthy" or self.closed:
                return
            replica.state, replica.reason = "unhealthy", reason
        log.warning(
            "index %r shard %d: the replica on %s %s; replacing it",
            self.name,
            self.spec.number,
            replica.node,
            reason,
        )
        threading.Thread(target=self._replace, args=(replica,), daemon=True).start()

    def states(self) -> str:
        with self._lock:
            return ", ".join(f"{r.node} {r.state}" for r in self.replicas)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            replicas = [r.describe() for r in self.replicas]
        return {"shard": self.spec.number, "dir": Path(self.spec.directory).name, "replicas": replicas}

    def close(self) -> None:
        with self._lock:
            self.closed, replicas = True, list(self.replicas)
        _kill(replica.handle for replica in replicas)

    def _replace(self, old: Replica) -> None:
        try:
            self._start_instead(old)
        except BaseException as exc:  # Ray shutting down under this thread: nothing to replace
            log.debug("index %r shard %d: replacement stopped: %r", self.name, self.spec.number, exc)

    def _start_instead(self, old: Replica) -> None:
        _kill([old.handle])
        for attempt in range(REPLACE_TRIES):
            with self._lock:
                avoid = {r.node_id for r in self.replicas if r is not old and r.state == "healthy"}
            try:
                handle = _launch(self.spec, self.cpus, _nodes_avoiding(avoid))
                fresh = Replica(handle, *_ready([handle], self.name, [self.spec])[0])
            except SimsearchError as exc:
                log.warning("index %r shard %d: replacement failed: %s", self.name, self.spec.number, exc)
                time.sleep(2.0 * (attempt + 1))
                continue
            with self._lock:
                if not self.closed:
                    self.replicas[self.replicas.index(old)] = fresh
                    log.info("index %r shard %d: new replica on %s", self.name, self.spec.number, fresh.node)
                    return
            _kill([handle])
            return
        with self._lock:
            old.state = "down"


def start_groups(
    name: str, specs: Sequence[ShardSpec], replicas: int, cpus: float = ACTOR_CPUS
) -> list[ShardGroup]:
    """``replicas`` actors for each shard, placed and started, each with its files opened and
    checked; a shard that fits on no node is refused before anything starts."""
    if replicas < 1:
        raise SimsearchError(f"replicas must be at least 1, not {replicas}")
    nodes = _alive_nodes()
    for spec in specs:
        check_fits(name, spec, cpus, nodes)
    order = [node["NodeID"] for node in nodes]
    handles = [
        _launch(spec, cpus, [order[(spec.number + i) % len(order)]] if order else [])
        for spec in specs
        for i in range(replicas)
    ]
    placed = _ready(handles, name, [spec for spec in specs for _ in range(replicas)])
    groups = []
    for n, spec in enumerate(specs):
        mine = range(n * replicas, (n + 1) * replicas)
        groups.append(ShardGroup(name, spec, [Replica(handles[i], *placed[i]) for i in mine], cpus))
    return groups


def check_fits(name: str, spec: ShardSpec, cpus: float, nodes: Sequence[dict[str, Any]]) -> None:
    """One line naming the shard when no node of the cluster has the CPU and memory it reserves."""
    room = [(float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("memory", 0))) for n in nodes]
    if any(cpu >= cpus and memory >= spec.memory for cpu, memory in room):
        return
    largest = max((memory for _, memory in room), default=0.0)
    raise SimsearchError(
        f"index {name!r}: shard {spec.number} ({Path(spec.directory).name}) needs {_mib(spec.memory)} of "
        f"memory and {cpus:g} CPU, more than any node of the Ray cluster has (largest: "
        f"{_mib(largest)}); add a larger node, or rebuild the index with more shards"
    )


def _mib(size: float) -> str:
    return f"{size / 2**20:,.0f} MiB"


def _alive_nodes() -> list[dict[str, Any]]:
    ray = import_ray()
    return sorted((n for n in ray.nodes() if n.get("Alive")), key=lambda n: str(n["NodeID"]))


def _nodes_avoiding(avoid: set[str]) -> list[str]:
    order = [str(node["NodeID"]) for node in _alive_nodes()]
    preferred = [n for n in order if n not in avoid]
    return preferred + [n for n in order if n in avoid]


def _launch(spec: ShardSpec, cpus: float, nodes: Sequence[str]) -> Any:
    """One shard actor, on the first of ``nodes`` if it has room (soft: else where Ray finds room)."""
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    options: dict[str, Any] = dict(max_restarts=0, max_task_retries=0, num_cpus=cpus, memory=spec.memory)
    if nodes:
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(nodes[0], soft=True)
    return ray.remote(ShardActor).options(**options).remote(spec.directory, spec.checksum)


def _ready(handles: list[Any], name: str, specs: list[ShardSpec]) -> list[tuple[int, str, str]]:
    """Where each started actor runs, once it has opened its files (or one line saying why not)."""
    ray = import_ray()
    calls = [handle.where.remote() for handle in handles]
    try:
        ready, late = ray.wait(calls, num_returns=len(calls), timeout=START_TIMEOUT)
        if late:
            spec = specs[calls.index(late[0])]
            raise ShardUnavailableError(
                f"index {name!r}: shard {spec.number}'s actor did not start within {START_TIMEOUT:.0f} s "
                f"(it reserves {_mib(spec.memory)} of memory: is the cluster full?)"
            )
        return [tuple(answer) for answer in ray.get(calls)]
    except SimsearchError:
        _kill(handles)
        raise
    except Exception as exc:
        _kill(handles)
        inner = unwrap(exc)
        if isinstance(inner, SimsearchError):
            raise type(inner)(str(inner)) from None
        raise ShardUnavailableError(
            f"index {name!r}: shard actors did not start ({first_line(exc)})"
        ) from None


def _kill(handles: Any) -> None:
    ray = import_ray()
    for handle in handles:
        try:
            ray.kill(handle, no_restart=True)
        except Exception:  # gone already, or the cluster is: nothing left to stop
            pass
