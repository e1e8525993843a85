"""What an index says about itself: its manifest, model identity, shard count, count and
generation, read from the manifests without opening its data (for a Ray index the driver reads
only this; the searcher's actors hold the data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from simsearch.store.manifest import Manifest, read_manifest
from simsearch.store.shards import check_part, is_sharded, read_top_manifest


class Description:
    """What an index says about itself, read from its manifests without opening its data
    (a Ray index's searcher holds the data; the driver reads only this)."""

    def __init__(self, top: Mapping[str, Any], identity: Manifest, shard_count: int) -> None:
        self._top = dict(top)
        self.identity = identity
        self.shard_count = shard_count

    @classmethod
    def read(cls, path: Path) -> Description:
        if not is_sharded(path):
            manifest = read_manifest(path)
            return cls(manifest.to_dict(), manifest, 1)
        top = read_top_manifest(path)
        parts = top["shards"]["parts"]
        check_part(path, parts[0])
        identity = read_manifest(path / parts[0]["dir"]).replace(name=str(top.get("name", path.name)))
        return cls(top, identity, len(parts))

    def manifest(self) -> dict[str, Any]:
        return dict(self._top)

    @property
    def count(self) -> int:
        return int(self._top["count"])

    @property
    def generation(self) -> int:
        return int(self._top["generation"])
