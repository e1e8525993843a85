"""Where indexes live: the index home, plain index names, and listing what is there."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from simsearch import config
from simsearch.errors import IndexNotFoundError, SimsearchError

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


def require_index(name: str, index_dir: str | os.PathLike[str] | None = None) -> Path:
    """The path of the existing index ``name``; else an error suggesting the closest name there
    and the command that builds it."""
    path = locate(name, index_dir)
    if os.path.exists(path):  # (False, not OSError, for a name too long for the disk)
        return path
    home = path.parent
    try:
        names = [p.name for p in home.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        names = []
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise IndexNotFoundError(
        f"index {name!r} not found in {home}; {hint}run `simsearch list` to see the indexes there, "
        f"or build it: simsearch build SOURCE --name {path.name}"
    )


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
