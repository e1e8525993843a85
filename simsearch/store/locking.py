"""One writer at a time per index: an advisory ``flock`` on the index directory itself.

The lock belongs to the directory (its inode), not to the name it was reached by: a symlink
(``current -> life``), ``./life``, ``life/``, an absolute path or a second mount of the index home
all lock the same directory, so two writers through two spellings still queue. A new index is
staged in a private directory locked from its creation; the rename that commits it keeps the
inode, so the lock moves into place with it. No lock files: nothing piles up in the index home
for names that were never built (where a file system cannot lock directories, NFS for one, a
hidden lock file inside the index directory is used instead).

Readers never take it (they read immutable generation files); a second writer waits up to
``SIMSEARCH_LOCK_TIMEOUT`` seconds (default 60) and then fails with a clear message.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator

from simsearch import config
from simsearch.errors import LockTimeoutError, SimsearchError

DEFAULT_TIMEOUT = config.DEFAULT_LOCK_TIMEOUT
LOCK_FILE = ".simsearch.lock"


@contextlib.contextmanager
def write_lock(index_path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the write lock of the existing index directory ``index_path`` for the block."""
    if timeout is None:
        timeout = config.lock_timeout()
    fd = open_directory(index_path)
    try:
        deadline = time.monotonic() + timeout
        while not try_lock(fd):
            if time.monotonic() >= deadline:
                raise LockTimeoutError(
                    f"index {index_path.name!r} is being written by another process "
                    f"(waited {timeout:g} s for {index_path.resolve()}); try again when it has finished"
                )
            time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def open_directory(index_path: Path) -> int:
    """A descriptor to lock ``index_path`` by: the directory itself, else its lock file."""
    try:
        fd = os.open(index_path.resolve(), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _cannot_lock(index_path, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # probe: can this file system lock it?
        fcntl.flock(fd, fcntl.LOCK_UN)
        return fd
    except BlockingIOError:
        return fd  # a writer holds it: it can
    except OSError:
        os.close(fd)
    file = index_path.resolve() / LOCK_FILE
    try:
        return os.open(file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise _cannot_lock(index_path, exc) from None


def _cannot_lock(index_path: Path, exc: OSError) -> SimsearchError:
    reason = exc.strerror or str(exc)
    hint = (
        "the file system is read-only"
        if exc.errno == errno.EROFS
        else "check the directory's permissions"
        if exc.errno in (errno.EACCES, errno.EPERM)
        else "check the disk"
    )
    return SimsearchError(
        f"cannot lock index {index_path.name!r} for writing ({index_path}: {reason}); "
        f"{hint}; nothing was changed"
    )


def try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` if it is free (never waits)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
