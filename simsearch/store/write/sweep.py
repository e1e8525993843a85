"""Housekeeping after writes: generation files the manifest no longer references, temporaries, and
staging directories of builds that were killed (their lock is free). Writers only; never fails a
committed write.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import time
from pathlib import Path

from simsearch.store.locking import try_lock
from simsearch.store.manifest import MANIFEST, Manifest

_ABANDONED_AFTER = 600.0  # seconds: a staging dir killed before it was locked and renamed


def remove_stale_files(path: Path, manifest: Manifest | None) -> None:
    """Delete generation files and temporaries the manifest does not reference (writers only)."""
    keep = {MANIFEST}
    if manifest is not None:
        keep |= {entry.name for entry in manifest.files.values()}
    try:
        for file in path.iterdir():
            if (
                file.name not in keep
                and file.is_file()
                and (file.name.startswith(("docs-", "index-", MANIFEST)) or file.suffix == ".tmp")
            ):
                file.unlink(missing_ok=True)
        remove_stale_staging(path.resolve())
    except OSError:
        pass  # sweeping is housekeeping: a read-only disk must not fail a committed write


def remove_stale_staging(path: Path) -> None:
    """Remove staging directories of builds of ``path`` that were killed (their lock is free)."""
    parent, name = path.parent, glob.escape(path.name)
    for newborn in parent.glob(f".{name}.new-*"):  # killed between mkdir and rename: tiny, empty
        with contextlib.suppress(OSError):
            if time.time() - newborn.stat().st_mtime > _ABANDONED_AFTER:
                shutil.rmtree(newborn, ignore_errors=True)
    for staging in parent.glob(f".{name}.tmp-*"):
        try:
            fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if try_lock(fd):  # its builder is gone (a live one holds this lock)
                shutil.rmtree(staging, ignore_errors=True)
        except OSError:
            pass  # a file system that cannot lock directories: leave it to the user
        finally:
            os.close(fd)
