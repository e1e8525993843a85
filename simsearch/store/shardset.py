"""One committed generation of an index as a typed set of shards: a plain index is one shard.

:class:`ShardSet` is what the rest of the library holds open: the stores, the typed top
manifest of a sharded index (:class:`TopManifest`), the model identity, and the id routing
(which shard holds an id), so nothing above the store needs to know the layout on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from simsearch.store.manifest import Manifest
from simsearch.store.generation import Row, Store
from simsearch.store.shards import is_sharded, open_parts, plain_view, read_top_manifest, shard_of


@dataclass(frozen=True)
class ShardPart:
    """One shard directory committed by a top manifest."""

    dir: str
    count: int
    generation: int
    index_type: str
    manifest_sha256: str


@dataclass(frozen=True)
class TopManifest:
    """A sharded index's top manifest, typed (checked by :func:`~simsearch.store.shards.read_top_manifest`);
    keys it does not name are kept in ``raw`` and written back unchanged."""

    name: str
    model: str
    pooling: str
    dim: int
    count: int
    generation: int
    parts: tuple[ShardPart, ...]
    raw: Mapping[str, Any]

    @classmethod
    def from_dict(cls, manifest: Mapping[str, Any]) -> TopManifest:
        parts = tuple(
            ShardPart(
                str(p["dir"]),
                int(p["count"]),
                int(p.get("generation", 0)),
                str(p.get("index_type", "flat")),
                str(p["manifest_sha256"]),
            )
            for p in manifest["shards"]["parts"]
        )
        return cls(
            str(manifest.get("name", "")),
            str(manifest["model"]),
            str(manifest["pooling"]),
            int(manifest["dim"]),
            int(manifest["count"]),
            int(manifest["generation"]),
            parts,
            dict(manifest),
        )

    @classmethod
    def read(cls, path: Path) -> TopManifest:
        return cls.from_dict(read_top_manifest(path))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)


class ShardSet:
    """The stores of one committed generation, in shard order (one for a plain index)."""

    def __init__(self, path: Path, top: TopManifest | None, stores: Sequence[Store]) -> None:
        self.path = path
        self.top = top
        self.stores = tuple(stores)

    @classmethod
    def open(cls, path: Path) -> ShardSet:
        """Open and validate every shard of the index at ``path`` (plain or sharded)."""
        if is_sharded(path):
            manifest, stores = open_parts(path)
            return cls(path, TopManifest.from_dict(manifest), stores)
        return cls(path, None, [Store.open(path)])

    @staticmethod
    def generation_on_disk(path: Path) -> int:
        """The generation the index at ``path`` has committed now (a manifest read, no data)."""
        from simsearch.store.manifest import read_manifest

        return (
            int(read_top_manifest(path)["generation"]) if is_sharded(path) else read_manifest(path).generation
        )

    @property
    def sharded(self) -> bool:
        return self.top is not None

    @property
    def identity(self) -> Manifest:
        """The model identity (a shard's own manifest, under the index's name)."""
        if self.top is None:
            return self.stores[0].manifest
        return plain_view(self.top.raw, self.stores[0])

    @property
    def shard_count(self) -> int:
        return len(self.stores)

    @property
    def generation(self) -> int:
        return self.top.generation if self.top is not None else self.stores[0].manifest.generation

    @property
    def count(self) -> int:
        return self.top.count if self.top is not None else self.stores[0].manifest.count

    def manifest(self) -> dict[str, Any]:
        """The index's manifest as a plain dict (the top manifest of a sharded index)."""
        return self.top.to_dict() if self.top is not None else self.stores[0].manifest.to_dict()

    def shard_of(self, doc_id: str) -> int:
        """The shard that holds (or would hold) ``doc_id``."""
        return shard_of(doc_id, len(self.stores)) if self.top is not None else 0

    def ids(self) -> list[str]:
        """Every document id: shard by shard, in storage order within each."""
        return [doc_id for store in self.stores for doc_id in store.ids()]

    def rows_by_id(self, ids: Iterable[str], vectors: bool) -> dict[str, Row]:
        """The rows of those ``ids`` the index holds, each looked up in the one shard it routes to."""
        by_shard: dict[int, list[str]] = {}
        for doc_id in ids:
            by_shard.setdefault(self.shard_of(doc_id), []).append(doc_id)
        found: dict[str, Row] = {}
        for number, part in by_shard.items():
            found.update(self.stores[number].rows_by_id(part, vectors))
        return found

    def close(self) -> None:
        for store in self.stores:
            store.close()
