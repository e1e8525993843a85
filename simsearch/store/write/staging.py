"""The files a write stages, from first to last: the private directory a new index is staged in,
the next generation number no file in the directory has used, sealing staged ``.tmp`` files under
their final names (fsynced, with their sizes and checksums), the rename that commits a new
index, and removing exactly what a write staged when it does not commit.

:class:`~simsearch.store.write.writer.StoreWriter` decides when each happens.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterable

from simsearch.errors import IndexExistsError
from simsearch.store.files import file_sha256, fsync_file
from simsearch.store.locking import open_directory, try_lock
from simsearch.store.manifest import MANIFEST, Manifest

_GENERATION_FILE = re.compile(r"(?:docs|index)-(\d+)\.")


def new_staging_dir(path: Path, locks: contextlib.ExitStack) -> Path:
    """A private directory beside the index ``path``, locked (the lock held until ``locks``
    closes) before it gets the name sweepers look for."""
    token = uuid.uuid4().hex[:8]
    newborn = path.parent / f".{path.name}.new-{token}"
    newborn.mkdir()
    try:
        fd = open_directory(newborn)
        locks.callback(os.close, fd)
        try_lock(fd)  # nobody else knows this directory yet: always free
        staging = path.parent / f".{path.name}.tmp-{token}"
        os.rename(newborn, staging)  # same inode: the lock comes along
    except BaseException:
        shutil.rmtree(newborn, ignore_errors=True)
        raise
    return staging


def next_generation(path: Path, previous: Manifest | None, *, in_place: bool) -> int:
    """One past the manifest's generation and (staging ``in_place``, in the index directory)
    past every generation file in the directory, so staged files never collide with (or
    replace) files of an index we could not read."""
    highest = previous.generation if previous is not None else 0
    if in_place:
        for file in path.iterdir():
            match = _GENERATION_FILE.match(file.name)
            if match:
                highest = max(highest, int(match.group(1)))
    return highest + 1


def seal(staging: Path, staged: Iterable[tuple[str, Path, str]]) -> dict[str, dict[str, Any]]:
    """Each staged ``(role, tmp, name)`` file fsynced, measured and renamed to ``name`` in
    ``staging``: the manifest's ``files`` entries, by role."""
    files = {}
    for role, tmp, name in staged:
        fsync_file(tmp)
        files[role] = {"name": name, "size": tmp.stat().st_size, "sha256": file_sha256(tmp)}
        os.replace(tmp, staging / name)
    return files


def rename_into_place(staging: Path, path: Path) -> None:
    """Commit a new index staged in its own directory: rename it to ``path``."""
    try:
        os.rename(staging, path)
    except OSError as exc:
        if path.exists():  # another build of this name committed while this one ran
            raise IndexExistsError(
                f"index {path.name!r} was created by another process while this build ran; "
                "nothing was replaced; build again with --force to replace it"
            ) from None
        raise exc


def discard(path: Path, staging: Path, names: Iterable[str]) -> None:
    """Remove what a write that did not commit staged: its own staging directory, or (staged in
    the index directory ``path`` itself) its generation files ``names``, their temporaries and
    staged manifests; nothing else."""
    if staging != path:
        shutil.rmtree(staging, ignore_errors=True)
        return
    for name in [f"{name}{suffix}" for name in names for suffix in ("", ".tmp")]:
        with contextlib.suppress(OSError):
            (path / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        for tmp in path.glob(glob.escape(MANIFEST) + ".*.tmp"):
            tmp.unlink(missing_ok=True)
