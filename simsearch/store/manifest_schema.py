"""The manifest's schema: what each key of ``manifest.json`` must hold.

The keys every manifest has, the data-file entries of its ``files`` section (:class:`FileEntry`),
the typed attributes of :class:`~simsearch.store.manifest.Manifest` with the defaults older
versions meant by a missing key, and the type checks of the known fields that are kept as
written. Each rule fails as one :class:`~simsearch.errors.IndexCorruptError` line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from simsearch.errors import IndexCorruptError

REQUIRED = ("format_version", "model", "pooling", "dim", "count", "generation", "files")
_ROLES = ("faiss", "sqlite")


@dataclass(frozen=True)
class FileEntry:
    """One data file of a generation: a plain name inside the index directory, size, sha256."""

    name: str
    size: int
    sha256: str


def typed_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The typed attributes; defaults are what older simsearch versions meant by a missing key."""
    max_length = data.get("max_length")
    ann = data.get("ann") or {}
    if not isinstance(ann, Mapping):
        raise TypeError("'ann' is not an object")
    return {
        "format_version": _int(data, "format_version"),
        "name": str(data.get("name", "")),
        "model": _str(data, "model"),
        "model_path": str(data.get("model_path", "")),
        "pooling": _str(data, "pooling"),
        "dim": _int(data, "dim", minimum=1),
        "max_length": None if max_length is None else _int(data, "max_length", minimum=1),
        "precision": str(data.get("precision", "fp32")),
        "index_type": str(data.get("index_type", "flat")),
        "count": _int(data, "count"),
        "generation": _int(data, "generation"),
        "truncated": _int({"truncated": data.get("truncated", 0)}, "truncated"),
        "ann": MappingProxyType(dict(ann)),
    }


def _int(data: Mapping[str, Any], key: str, minimum: int = 0) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key!r} must be a whole number >= {minimum}, got {value!r}")
    return value


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {value!r}")
    return value


def files_section(source: str, files: Any) -> Mapping[str, FileEntry]:
    """Each data file is a plain name inside the index directory with a size and a checksum."""
    ok = isinstance(files, dict) and all(
        isinstance(files.get(role), dict)
        and isinstance(files[role].get("name"), str)
        and "/" not in files[role]["name"]
        and files[role]["name"] not in ("", ".", "..")
        and isinstance(files[role].get("size"), int)
        and isinstance(files[role].get("sha256"), str)
        for role in _ROLES
    )
    if not ok:
        raise IndexCorruptError(f"{source}: malformed 'files' section in the manifest; rebuild the index")
    return MappingProxyType(
        {
            role: FileEntry(str(entry["name"]), int(entry["size"]), str(entry["sha256"]))
            for role, entry in files.items()
            if role in _ROLES
        }
    )


# Fields typed above by coercion (str(...)) or not at all, checked where a manifest is read:
# (field, accepted types, smallest value); bool is never an int here.
_TYPES: tuple[tuple[str, tuple[type, ...], int | None], ...] = (
    ("model_path", (str,), None),
    ("precision", (str,), None),
    ("index_type", (str,), None),
    ("name", (str,), None),
    ("normalized", (bool,), None),
    ("metric", (str,), None),
)
_KIND_WORDS: dict[tuple[type, ...], str] = {(str,): "a string", (bool,): "true or false"}


def check_types(file: Path, data: Mapping[str, Any]) -> None:
    """Known fields hold what the code expects (a damaged manifest fails here, in one line)."""
    for key, kinds, minimum in _TYPES:
        if key not in data:
            continue
        value = data[key]
        wrong = not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        if not wrong and minimum is not None and value < minimum:
            wrong = True
        if wrong:
            shown = json.dumps(value, ensure_ascii=False, default=str)[:40]
            raise IndexCorruptError(
                f"{file}: manifest field {key!r} is {shown}, not {_KIND_WORDS[kinds]}"
                "; the manifest is damaged: restore it or rebuild the index"
            )
    ann = data.get("ann") or {}
    params = ann.get("search_params")
    bad_params = params is not None and not (
        isinstance(params, dict)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in params.values())
    )
    if bad_params or not isinstance(ann.get("factory") or "", str):
        raise IndexCorruptError(
            f"{file}: malformed 'ann' section in the manifest; the manifest is "
            "damaged: restore it or rebuild the index"
        )
