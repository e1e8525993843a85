"""Durable file operations: checksums, fsync, atomic JSON replacement, and disk errors in words."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any


def file_sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stage_json(file: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` to a fsynced temporary beside ``file`` (removed again if that fails)."""
    tmp = file.with_name(file.name + f".{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_json_atomic(file: Path, data: dict[str, Any]) -> None:
    tmp = stage_json(file, data)
    try:
        os.replace(tmp, file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(file.parent)


def fsync_file(file: Path) -> None:
    with file.open("rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_hint(exc: OSError) -> str:
    """What a user can do about a failed write, from its errno."""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "free some disk space and try again"
    if code == errno.EROFS:
        return "the file system is read-only; write the index somewhere writable (--index-dir)"
    if code in (errno.EACCES, errno.EPERM):
        return "check the permissions of the index directory"
    if code == errno.ENAMETOOLONG:
        return "choose a shorter index name or path"
    return "check the disk"


def describe_os_error(exc: OSError) -> str:
    """``file: reason`` in one line (no errno numbers, no traceback)."""
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
    where = exc.filename if exc.filename is not None else None
    return f"{where}: {reason}" if where else reason
