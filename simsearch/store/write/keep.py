"""Shards a failed sharded build had committed, kept for the build that resumes it.

The commit of a sharded build builds each shard's FAISS file (minutes per million HNSW vectors)
before the top manifest commits them all. When it fails part-way (a shard's build runs out of
memory, a writer's node is lost, the driver is killed), the shards that did commit are copied
(hard links: committed generation files are never modified) into ``keep/shards-<key>/``, where
``keep`` is a directory the caller owns (a resumed Ray build's staging) and ``key`` a hash of
everything the commit was given except its timestamps. A rerun that reaches the commit with the
same key links them back instead of building them again; the caller removes ``keep`` when its
build has committed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from simsearch.store.manifest import MANIFEST

_UNKEYED = ("created", "updated")  # the commit's time: not what the shard holds


class KeptShards:
    """The kept shards of one commit (its inputs hashed), under ``keep``."""

    def __init__(
        self,
        keep: Path,
        fields: Mapping[str, Any],
        index_type: str,
        target_recall: float,
        tune_vectors: np.ndarray | None,
        shards: int,
        generation: int,
    ) -> None:
        facts = {
            "fields": {k: v for k, v in fields.items() if k not in _UNKEYED},
            "index": [index_type, target_recall, shards, generation],
            "tune": None if tune_vectors is None else hashlib.sha256(tune_vectors.tobytes()).hexdigest(),
        }
        text = json.dumps(facts, sort_keys=True, default=str)
        self.directory = keep / f"shards-{hashlib.blake2b(text.encode(), digest_size=12).hexdigest()}"

    def commit(
        self,
        writers: Any,
        staging: Path,
        names: Sequence[str],
        fields: Mapping[str, Any],
        options: tuple[str, float, np.ndarray | None],
    ) -> None:
        """Commit the shards ``names`` with ``writers`` (a
        :class:`~simsearch.store.write.lanes.ShardWriters`; ``options``: index type, target recall,
        tuning vectors): the kept ones are linked back and their writers drop what they staged;
        each other one is kept as soon as it has committed."""
        reused = [self.has(name) for name in names]
        writers.commit(
            [None if reuse else {**fields, "name": name} for name, reuse in zip(names, reused)],
            *options,
            lambda number: self.save(staging, names[number]),
        )
        for name in itertools.compress(names, reused):
            self.restore(staging, name)

    def has(self, name: str) -> bool:
        """Whether shard directory ``name`` was kept whole (its manifest is copied last)."""
        return (self.directory / name / MANIFEST).is_file()

    def save(self, staging: Path, name: str) -> None:
        """Keep the committed shard ``staging/name`` (linked into a temporary, then renamed)."""
        target = self.directory / name
        if target.exists():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f".{name}.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        _link_tree(staging / name, temporary)
        os.rename(temporary, target)

    def restore(self, staging: Path, name: str) -> None:
        """Put the kept shard ``name`` into ``staging`` (as its commit would have)."""
        target = staging / name
        shutil.rmtree(target, ignore_errors=True)
        temporary = staging / f".{name}.kept"
        shutil.rmtree(temporary, ignore_errors=True)
        _link_tree(self.directory / name, temporary)
        os.rename(temporary, target)


def _link_tree(source: Path, target: Path) -> None:
    """Copy ``source`` as hard links, its manifest last (a copy without one is not whole)."""
    target.mkdir()
    files = sorted(p for p in source.iterdir() if p.is_file() and p.name != ".simsearch.lock")
    for file in sorted(files, key=lambda p: p.name == MANIFEST):
        try:
            os.link(file, target / file.name)
        except OSError:  # a file system without hard links
            shutil.copy2(file, target / file.name)
