"""Where indexes live: the index home, plain index names, and listing what is there."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from simsearch import config
from simsearch.errors import SimsearchError

DEFAULT_INDEX_DIR = config.DEFAULT_INDEX_DIR
_NAME = re.compile(r"[\w][\w.-]{0,127}")


def index_home(index_dir: str | os.PathLike[str] | None = None) -> Path:
    """``index_dir``, else ``$SIMSEARCH_INDEX_DIR``, else ``./indexes``."""
    return config.index_dir(index_dir)


#: File systems allow 255 bytes a name; a build stages ``.NAME.tmp-12345678`` beside the index.
MAX_NAME_BYTES = 255 - len(".") - len(".tmp-12345678")


def check_name(name: str) -> str:
    """Index names are plain names: letters, digits, ``_ . -``; no ``/``, no ``..``."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise SimsearchError(
            f"invalid index name {name!r}: use letters, digits, '_', '.', '-' (no '/' or '..', "
            "at most 128 characters, not starting with '.' or '-')"
        )
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise SimsearchError(
            f"invalid index name {name[:20]!r}...: {size} bytes in UTF-8, file "
            f"systems allow names of at most {MAX_NAME_BYTES} here; choose a shorter name"
        )
    return name


def locate(name_or_path: str | os.PathLike[str], index_dir: str | os.PathLike[str] | None = None) -> Path:
    """A plain name lives under the index home; anything with a path separator is a path."""
    text = os.fspath(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or os.sep in text:
        return Path(text)
    return index_home(index_dir) / check_name(text)


def list_indexes(index_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Manifests of the indexes under the index home (damaged ones carry an ``error`` key)."""
    from simsearch.store.shards import read_any_manifest  # plain or sharded, as a dict

    home = index_home(index_dir)
    if not home.is_dir():
        return []
    found = []
    for path in sorted(p for p in home.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            # the directory's name is what users type; a manifest's stored one may be stale
            found.append({**read_any_manifest(path), "name": path.name})
        except SimsearchError as exc:
            found.append({"name": path.name, "error": str(exc)})
    return found
