"""Sharded indexes on disk: one top manifest committing N ordinary shard directories at once.

Layout of a sharded ``indexes/<name>/``::

    manifest.json              the commit point: the model fields, count, generation, and a
                               ``shards`` section listing each shard directory with the sha256 of
                               its own manifest (which holds the checksums of its data files)
    shard-000.g000001/         an ordinary index directory (manifest, SQLite, FAISS)
    shard-001.g000001/         ...

Documents go to shard ``blake2b-64(id) mod N``: stable across processes and machines, so an
add or a delete finds the shard holding an id without asking the others. A shard directory,
once referenced by a committed top manifest, is never modified: a write makes a new directory
for each shard it changes (hard links to the old files, then an ordinary update), commits them
all with one atomic replacement of the top manifest, and only then removes what it replaced.
A kill at any point leaves the previous top manifest and the directories it names.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from simsearch.errors import IndexCorruptError, IndexNotFoundError
from simsearch.store.files import file_sha256, write_json_atomic
from simsearch.store.manifest import FORMAT, MANIFEST, Manifest
from simsearch.store.generation import Store

#: Sharded indexes carry format version 2, so a simsearch that reads only plain indexes (version 1)
#: says "written by a newer simsearch; upgrade" instead of misreading the directory.
SHARDED_FORMAT_VERSION = 2
ROUTING = "blake2b64-mod"
MAX_SHARDS = 1024
_PART_PREFIX = "shard-"


def shard_of(doc_id: str, shards: int) -> int:
    """The shard of a document id: the same on every machine and Python (no ``hash()`` salt)."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def shard_section(manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The sharding keys of a manifest (``None`` for a plain index); the one reader of them."""
    section = manifest.get("shards")
    return section if isinstance(section, Mapping) else None


def part_dirs(manifest: Mapping[str, Any]) -> list[str]:
    section = shard_section(manifest)
    return [] if section is None else [str(part["dir"]) for part in section["parts"]]


def is_sharded(path: Path) -> bool:
    """Whether ``path`` holds a sharded index (a cheap look at the manifest, no validation)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT and "shards" in manifest


def read_any_manifest(path: Path) -> dict[str, Any]:
    """The checked manifest of a plain or a sharded index, as a plain dict (``info``, ``list``)."""
    from simsearch.store.manifest import read_manifest

    return read_top_manifest(path) if is_sharded(path) else read_manifest(path).to_dict()


def read_top_manifest(path: Path) -> dict[str, Any]:
    """Parse and check a sharded index's top manifest (not the shards themselves)."""
    if not path.is_dir():
        raise IndexNotFoundError(f"index {path} not found; run `simsearch list` to see indexes")
    file = path / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(f"{path} is not a simsearch index (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{file}: unreadable manifest ({exc}); rebuild the index") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexCorruptError(f"{file}: not a simsearch manifest (foreign file)")
    version = manifest.get("format_version")
    if isinstance(version, int) and version > SHARDED_FORMAT_VERSION:
        raise IndexCorruptError(
            f"{path} was written by a newer simsearch (index format {version}); upgrade simsearch"
        )
    missing = [
        key for key in ("model", "pooling", "dim", "count", "generation", "shards") if key not in manifest
    ]
    if version != SHARDED_FORMAT_VERSION or missing:
        raise IndexCorruptError(
            f"{file}: malformed sharded manifest (format version {version!r}, "
            f"missing {', '.join(missing) or 'nothing'}); rebuild the index"
        )
    _check_section(file, shard_section(manifest))
    return manifest


def _check_section(file: Path, section: Mapping[str, Any] | None) -> None:
    """``shards``: a count, the routing rule, and one plain sub-directory entry per shard."""

    def good_part(part: Any, number: int) -> bool:
        return (
            isinstance(part, dict)
            and isinstance(part.get("dir"), str)
            and part["dir"].startswith(f"{_PART_PREFIX}{number:03d}.")
            and "/" not in part["dir"]
            and isinstance(part.get("count"), int)
            and isinstance(part.get("manifest_sha256"), str)
        )

    ok = (
        section is not None
        and isinstance(section.get("count"), int)
        and 1 <= section["count"] <= MAX_SHARDS
        and section.get("routing") == ROUTING
        and isinstance(section.get("parts"), list)
        and len(section["parts"]) == section["count"]
        and all(good_part(part, n) for n, part in enumerate(section["parts"]))
    )
    if not ok:
        raise IndexCorruptError(f"{file}: malformed 'shards' section in the manifest; rebuild the index")


def check_shard_count(shards: int) -> int:
    from simsearch.errors import InputError

    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise InputError(f"shards must be a whole number from 1 to {MAX_SHARDS}, got {shards!r}")
    return shards


def part_name(number: int, generation: int) -> str:
    return f"{_PART_PREFIX}{number:03d}.g{generation:06d}"


def part_entry(path: Path, name: str) -> dict[str, Any]:
    """The top manifest's entry for a committed shard directory: its count and manifest checksum."""
    manifest = json.loads((path / name / MANIFEST).read_text(encoding="utf-8"))
    return {
        "dir": name,
        "count": int(manifest["count"]),
        "generation": int(manifest["generation"]),
        "index_type": manifest.get("index_type", "flat"),
        "manifest_sha256": file_sha256(path / name / MANIFEST),
    }


def check_part(path: Path, part: dict[str, Any]) -> None:
    """A shard directory is the one the top manifest committed (its manifest's checksum)."""
    file = path / part["dir"] / MANIFEST
    if not file.is_file():
        raise IndexCorruptError(f"{file} is missing (shard directory gone); rebuild the index")
    if file_sha256(file) != part["manifest_sha256"]:
        raise IndexCorruptError(
            f"{file}: checksum differs from the top manifest's (shard replaced "
            "or damaged); run `simsearch verify` and rebuild the index"
        )


def open_parts(path: Path) -> tuple[dict[str, Any], list[Store]]:
    """The top manifest and every shard's store; retried if a writer commits meanwhile."""
    for attempt in range(3):
        manifest = read_top_manifest(path)
        stores: list[Store] = []
        try:
            for part in manifest["shards"]["parts"]:
                check_part(path, part)
                stores.append(Store.open(path / part["dir"]))
            return manifest, stores
        except IndexCorruptError:
            for store in stores:
                store.close()
            if attempt == 2 or read_top_manifest(path)["generation"] == manifest["generation"]:
                raise
    raise AssertionError("unreachable")


def fork_part(path: Path, old: str, new: str) -> Path:
    """A new shard directory holding hard links to ``old``'s files, ready for an in-place update.

    The update replaces files by rename, so the old directory's files are never written to.
    """
    target = path / new
    if target.exists():
        shutil.rmtree(target)  # left by a write that was killed before its commit
    target.mkdir()
    for file in (path / old).iterdir():
        if file.is_file():
            try:
                os.link(file, target / file.name)
            except OSError:  # a file system without hard links: copy
                shutil.copy2(file, target / file.name)
    return target


def commit_top(
    path: Path, fields: dict[str, Any], parts: Sequence[dict[str, Any]], generation: int
) -> dict[str, Any]:
    """Swap in a top manifest naming ``parts``; then remove shard directories no longer named."""
    manifest = {
        **fields,
        "format": FORMAT,
        "format_version": SHARDED_FORMAT_VERSION,
        "count": sum(int(part["count"]) for part in parts),
        "generation": generation,
        "shards": {"count": len(parts), "routing": ROUTING, "parts": list(parts)},
    }
    write_json_atomic(path / MANIFEST, manifest)
    remove_stale_parts(path, manifest)
    return manifest


def remove_stale_parts(path: Path, manifest: Mapping[str, Any] | None) -> None:
    """Delete shard directories (and their lock files) that ``manifest`` does not name (writers only)."""
    keep = set(part_dirs(manifest or {}))
    for entry in list(_shard_entries(path)):
        name = entry.name.lstrip(".").removesuffix(".lock")
        if entry.name.startswith(".") and entry.name.endswith(".lock"):
            entry.unlink(missing_ok=True)  # shard locks: only ever taken under the index's own lock
        elif entry.is_dir() and name not in keep:
            shutil.rmtree(entry, ignore_errors=True)


def _shard_entries(path: Path) -> Iterator[Path]:
    if not path.is_dir():
        return iter(())
    return (entry for entry in path.iterdir() if entry.name.startswith((_PART_PREFIX, f".{_PART_PREFIX}")))


def plain_view(manifest: Mapping[str, Any], part: Store) -> Manifest:
    """The model identity of a sharded index (for loading and checking encoders): a shard's own
    manifest, under the index's name."""
    return part.manifest.replace(name=str(manifest.get("name", part.manifest.name)))
