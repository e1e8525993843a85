"""Search on Ray: each shard held by a Ray actor, queries fanned out to all of them and merged.

``Index.open(name, ray="auto")`` (and ``simsearch serve NAME --ray``) returns a :class:`RayIndex`:
the same methods and answers as a local sharded index (every search mode, metadata filters; the
shards' answers are merged by the same rule, :mod:`simsearch.merging`), but every shard's FAISS
and SQLite files are opened by its own actor, which may live on another machine of the cluster
(the index directory must be reachable there under the same path). A shard actor that dies is restarted by Ray (it reopens
its files); the queries it was answering fail with :class:`~simsearch.errors.ShardUnavailableError`
(HTTP 503), later ones are answered by the restarted actor.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from simsearch.errors import ShardUnavailableError, SimsearchError
from simsearch.hits import Hit
from simsearch.merging import as_faiss, dense_hit, fused_hits, merge_dense, merge_ranked
from simsearch.readers import Document
from simsearch.scale.cluster import LOCAL, first_line, import_ray, loopback_only
from simsearch.sharded import ShardedIndex
from simsearch.store.manifest import Manifest, read_manifest
from simsearch.store.shards import check_part, is_sharded, read_top_manifest

if TYPE_CHECKING:
    from simsearch.fusion import Fused
    from simsearch.store.updates import AddStats, CompactStats, DeleteStats
    from simsearch.store.verify import VerifyReport

    Stored = dict[int, tuple[str, str, dict[str, Any]]]  # a shard's rows: id, text, metadata
    DenseAnswer = tuple[np.ndarray, np.ndarray, Stored]
    RankedAnswer = tuple[list[list[Fused]], Stored]

QUERY_TIMEOUT = 60.0  # seconds a query waits for its shards before it is answered with 503
_connected_here = False


class ShardActor:
    """Holds one shard (or a whole plain index) open and answers searches on it."""

    def __init__(self, directory: str) -> None:
        from simsearch.store.reader import Store

        self.store = Store.open(Path(directory))

    def pid(self) -> int:
        return os.getpid()

    def search(self, vectors: np.ndarray, k: int, where: Mapping[str, Any] | None = None) -> DenseAnswer:
        """The shard's top ``k`` per query vector among the rows ``where`` allows, as FAISS answers
        ``(scores, rowids)``, with those rows' (id, text, metadata)."""
        if where:
            from simsearch.hybrid import dense_rows

            scores, rowids = as_faiss(dense_rows(self.store, vectors, k, where), k)
        else:
            scores, rowids = self.store.faiss.search(vectors, k)
        return scores, rowids, self.store.fetch(int(r) for r in rowids.ravel() if r >= 0)

    def rank(
        self,
        queries: list[str],
        k: int,
        mode: str,
        where: Mapping[str, Any] | None,
        vectors: np.ndarray | None,
        weights: list[float] | None,
    ) -> RankedAnswer:
        """The shard's ranked rows per query in ``mode`` (:func:`simsearch.hybrid.search_store`),
        from the query vectors and dense weights the caller computed, with those rows' documents."""
        from simsearch.hybrid import search_store

        given = _Encoded(vectors)
        ranked = search_store(
            self.store, queries, k, mode=mode, where=where, encoder=lambda: given, weights=weights
        )
        return ranked, self.store.fetch(f.rowid for row in ranked for f in row)


class _Encoded:
    """The queries' vectors, encoded by the caller, in the place of a model (actors load none)."""

    def __init__(self, vectors: np.ndarray | None) -> None:
        self.vectors = vectors

    def encode(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        assert self.vectors is not None and len(self.vectors) == len(texts)
        return self.vectors


def connect(address: str | None) -> Any:
    """Ray, initialised once per process: ``auto`` / an address joins a cluster, ``local`` starts one."""
    global _connected_here
    if address is None:
        loopback_only()  # before Ray is imported: a local cluster listens on 127.0.0.1 only
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

    def _ranked(
        self, queries: list[str], k: int, mode: str, where: Mapping[str, Any] | None, min_score: float | None
    ) -> list[list[Hit]]:
        """Lexical, hybrid and filtered dense search: the queries are encoded (and their hybrid
        weights measured) here once, every actor ranks its shard, the merge is the local one."""
        vectors = weights = None
        if mode != "lexical":
            model = self.encoder
            vectors = np.ascontiguousarray(model.encode(queries), dtype=np.float32)
            if mode == "hybrid":
                from simsearch.encode.coverage import coverage
                from simsearch.fusion import dense_weight

                weights = [dense_weight(c) for c in coverage(model, queries)]
        answers: list[RankedAnswer] = self._ask("rank", queries, k, mode, where, vectors, weights)
        merged = merge_ranked([ranked for ranked, _ in answers], k, min_score)
        return [fused_hits(row, [found for _, found in answers]) for row in merged]

    def search_vectors(
        self,
        vectors: np.ndarray,
        k: int = 10,
        *,
        min_score: float | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[list[Hit]]:
        answers: list[DenseAnswer] = self._ask(
            "search", np.ascontiguousarray(vectors, dtype=np.float32), k, where or None
        )
        keep = merge_dense([(scores, rowids) for scores, rowids, _ in answers], k, min_score)
        return [
            [
                dense_hit(rank, score, answers[shard][2][rowid])
                for rank, (score, shard, rowid) in enumerate(row, 1)
            ]
            for row in keep
        ]

    def _ask(self, method: str, *args: Any) -> list[Any]:
        """Every shard actor's answer to ``method(*args)``, in shard order (one generation of actors)."""
        ray = import_ray()
        calls = [getattr(actor, method).remote(*args) for actor in self.actors]
        try:
            return list(ray.get(calls, timeout=QUERY_TIMEOUT))
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            dead = _which(ray, calls)
            raise ShardUnavailableError(
                f"index {self.path.name!r}: shard {dead} is unavailable ({type(exc).__name__}); Ray "
                "restarts its actor, retry the query"
            ) from None
        except ray.exceptions.RayTaskError as exc:
            inner = _cause(exc)  # a bad filter, a damaged shard: the actor's own one-line error
            if isinstance(inner, SimsearchError):
                raise type(inner)(str(inner)) from None
            raise SimsearchError(
                f"index {self.path.name!r}: a shard actor failed: {first_line(exc)}"
            ) from None

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
