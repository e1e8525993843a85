"""One writer at a time per index: an advisory ``flock`` beside the index directory.

Readers never take it (they read immutable generation files); a second writer waits up to
``SIMSEARCH_LOCK_TIMEOUT`` seconds (default 60) and then fails with a clear message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator

from simsearch import config
from simsearch.errors import LockTimeoutError

DEFAULT_TIMEOUT = config.DEFAULT_LOCK_TIMEOUT


def lock_path(index_path: Path) -> Path:
    return index_path.parent / f".{index_path.name}.lock"


@contextlib.contextmanager
def write_lock(index_path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the index's write lock for the duration of the block."""
    if timeout is None:
        timeout = config.lock_timeout()
    file = lock_path(index_path)
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(
                        f"index {index_path.name!r} is being written by another process "
                        f"(waited {timeout:g} s for {file}); try again when it has finished"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
