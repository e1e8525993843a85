"""The fingerprint of a model directory: which files decide what a model computes, hashed.

Neither the encoder's nor the store's: the store records and compares fingerprints
(:mod:`simsearch.store.fingerprint`) without importing the encoder, and the encoder re-exports
:func:`model_fingerprint` from here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

#: Files that decide what a model computes: weights, tokenizer, configs (code never: no remote code).
_FINGERPRINT_SUFFIXES = {".safetensors", ".bin", ".json", ".txt", ".model"}


def model_fingerprint(path: str | os.PathLike[str], *, remember: bool = False) -> str:
    """sha256 over the weight, tokenizer and config files at the top of a model directory.

    Hashing ~90 MB of weights takes a fraction of a second, too much for every query, so the
    result is cached under the simsearch cache, keyed by each file's name, size, mtime, ctime and
    inode: any replacement or rewrite of a file changes its ctime, so a stale entry is never used.
    Only ``remember=True`` (a build) writes the cache entry: opening and loading write nothing.
    """
    directory = Path(path).resolve()
    files = sorted(f for f in directory.iterdir() if f.is_file() and f.suffix in _FINGERPRINT_SUFFIXES)
    stamp = []
    for file in files:
        stat = file.stat()
        stamp.append([file.name, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino])
    key = hashlib.sha256(json.dumps([str(directory), stamp]).encode("utf-8")).hexdigest()
    cached = _fingerprint_cache(key)
    try:
        value = cached.read_text(encoding="ascii").strip()
        if re.fullmatch(r"[0-9a-f]{64}", value):
            return value
    except OSError:
        pass
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}\0".encode("utf-8"))
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    value = digest.hexdigest()
    from simsearch import config

    if remember and config.onnx_export():  # SIMSEARCH_ONNX_EXPORT=0 keeps the cache untouched
        _store_fingerprint(cached, value)
    return value


def _fingerprint_cache(key: str) -> Path:
    from simsearch import config

    return config.cache_home() / "fingerprints" / key


def _store_fingerprint(file: Path, value: str) -> None:
    """Best effort: a read-only or full cache only costs the next call a re-hash."""
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(value + "\n", encoding="ascii")
        os.replace(tmp, file)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
