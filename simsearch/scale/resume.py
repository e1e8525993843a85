"""Resuming a Ray build: each read task's encoded blocks kept on disk until the build commits.

Encoding is the expensive part of a build, and every read task feeds every shard (rows are
routed by id hash), so what a failed build keeps is the encoding, per read task: the blocks a
task's rows were encoded in, in a staging directory beside the index named by a hash of the read
plan (each input's path, size, mtime and first-MiB hash, or an object's size and mtime), the
model (its id and files) and the options that change the vectors or documents (pooling, maximum
length, precision, reader options)::

    .NAME.resume-<key>/task-00007/<block>.f32     the vectors: raw little-endian float32, rows x dim
                                  <block>.jsonl   a header line, then id, text, metadata, where
                                  done.json       {"rows": N}: written last, when all N are there
                        shards-<key>/shard-003.g000001/   a shard a failed commit had committed

A rerun with the same plan replays the finished tasks' blocks into the new build and encodes the
others (a task without ``done.json`` is encoded again from scratch); a different plan removes the
stale directory and starts afresh; a committed build removes its own. Block files are named by
their place in their task, so a block Ray retries overwrites itself. The shards are written
again on every run (SQLite rows: cheap next to encoding), but a shard whose commit (its FAISS
build) finished before the build failed is kept and taken back (:mod:`simsearch.store.write.keep`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Sequence

import numpy as np

from simsearch.errors import LockTimeoutError
from simsearch.readers import Document, ReadOptions
from simsearch.store.files import fsync_dir
from simsearch.store.locking import LOCK_FILE

FORMAT = 1  # of the staging directory; part of the key, so a new layout never reads an old one
DONE = "done.json"


def plan_key(
    plan: Sequence[dict[str, Any]], model: str | None, encoding: Sequence[Any], read_options: ReadOptions
) -> str:
    """What decides a build's encoded blocks, hashed: equal keys, equal blocks. ``encoding``: the
    encoder's options that change its vectors (pooling, maximum length, precision)."""
    from simsearch.encode.models import resolve_model

    source = resolve_model(model)
    facts = {
        "format": FORMAT,
        "plan": [{**task, **_mtime(task)} for task in plan],
        "model": [source.id, str(source.path), _listing(source.path)],
        "encoder": list(encoding),
        "read": asdict(read_options),
    }
    text = json.dumps(facts, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def _mtime(task: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"mtime_ns": os.stat(task["path"]).st_mtime_ns} if "path" in task else {}
    except OSError:
        return {}


def _listing(directory: Path) -> list[tuple[str, int, int]]:
    """The model directory's files by name, size and mtime (its weights change: a new key)."""
    try:
        return sorted(
            (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir() if p.is_file()
        )
    except OSError:
        return []


class Checkpoint:
    """The staging directory of one build plan, locked while the build runs."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.directory = path.parent / f".{path.name}.resume-{key}"
        self._fd: int | None = None

    def open(self, tasks: int, *, resume: bool = True) -> set[int]:
        """Lock the directory (made if new) and return the numbers of the finished tasks; without
        ``resume``, or for tasks left unfinished, what was there is removed first. The staging of
        other plans of this index (stale: its input or options changed) is removed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.directory.mkdir(exist_ok=True)
        self._lock()
        for stale in self.path.parent.glob(f".{self.path.name}.resume-*"):
            if stale != self.directory:
                _remove_unless_locked(stale)
        done: set[int] = set()
        for entry in self.directory.iterdir():
            number = _task_number(entry.name)
            if resume and number is not None and number < tasks and _finished(entry):
                done.add(number)
            elif (resume and entry.name.startswith("shards-")) or entry.name == LOCK_FILE:
                continue  # shards a failed commit kept (simsearch.store.write.keep); our lock
            elif entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        return done

    def _lock(self) -> None:
        from simsearch.store.locking import open_directory, try_lock

        fd = open_directory(self.directory)
        if not try_lock(fd):
            os.close(fd)
            raise LockTimeoutError(
                f"index {self.path.name!r} is being built by another process (it holds "
                f"{self.directory}); wait for it to finish"
            )
        self._fd = fd

    def task_dir(self, task: int) -> Path:
        return self.directory / f"task-{task:05d}"

    def finish(self, task: int, rows: int) -> None:
        """Mark ``task`` finished: all its ``rows`` are saved (written last, fsynced)."""
        folder = self.task_dir(task)
        folder.mkdir(exist_ok=True)
        marker = json.dumps({"rows": rows}).encode("utf-8")
        _write_file(folder / DONE, lambda stream: stream.write(marker))
        fsync_dir(folder)

    def blocks(self, tasks: Sequence[int]) -> list[tuple[int, Path]]:
        """The saved blocks of the finished ``tasks``: (task, its ``.jsonl`` file)."""
        return [
            (task, block) for task in sorted(tasks) for block in sorted(self.task_dir(task).glob("*.jsonl"))
        ]

    def replay(self, tasks: Sequence[int]) -> Iterator[tuple[list[Document], np.ndarray, int]]:
        """The saved blocks of the finished ``tasks``: (documents, vectors, truncated)."""
        for _, block in self.blocks(tasks):
            yield load_block(block)

    def close(self, *, remove: bool) -> None:
        """Release the lock; the staging is removed (a committed build) or kept (to resume)."""
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def save_block(
    folder: Path,
    first: int,
    ids: Sequence[str],
    texts: Sequence[str],
    metadata: Sequence[str],
    where: Sequence[str],
    vectors: np.ndarray,
    truncated: int,
) -> None:
    """One encoded block of a task, durable before this returns (``metadata``: JSON texts)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{first:012d}-{len(ids)}"  # the block's place in its task: a retried block overwrites itself
    array = np.ascontiguousarray(vectors, dtype="<f4")
    dim = int(array.shape[1]) if array.ndim == 2 else 0
    lines = [json.dumps({"rows": len(ids), "dim": dim, "truncated": truncated})]
    lines += [
        json.dumps({"id": i, "text": t, "metadata": json.loads(m), "where": w}, ensure_ascii=False)
        for i, t, m, w in zip(ids, texts, metadata, where)
    ]
    _write_file(folder / f"{name}.f32", lambda stream: stream.write(array.tobytes()))
    text = ("\n".join(lines) + "\n").encode("utf-8")
    _write_file(folder / f"{name}.jsonl", lambda stream: stream.write(text))  # last: the block is whole


def load_block(block: Path) -> tuple[list[Document], np.ndarray, int]:
    lines = block.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    docs = [
        Document(row["id"], row["text"], row["metadata"], row["where"]) for row in map(json.loads, lines[1:])
    ]
    raw = np.fromfile(block.with_suffix(".f32"), dtype="<f4")
    dim = int(header["dim"])
    if len(docs) != header["rows"] or raw.size != len(docs) * dim:
        raise ValueError(f"{block}: {len(docs)} rows, {raw.size} floats, header {header['rows']} x {dim}")
    return docs, raw.reshape(len(docs), dim).astype(np.float32), int(header["truncated"])


def _write_file(target: Path, write: Callable[[BinaryIO], object]) -> None:
    temporary = target.with_name(target.name + ".tmp")
    with open(temporary, "wb") as stream:
        write(stream)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, target)


def _finished(folder: Path) -> bool:
    """Whether a task's directory holds its done marker and exactly that many saved rows."""
    try:
        want = int(json.loads((folder / DONE).read_text(encoding="utf-8"))["rows"])
        have = 0
        for block in folder.glob("*.jsonl"):
            with open(block, encoding="utf-8") as stream:
                have += int(json.loads(stream.readline())["rows"])
            if not block.with_suffix(".f32").is_file():
                return False
        return have == want
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _task_number(name: str) -> int | None:
    prefix, _, number = name.partition("-")
    return int(number) if prefix == "task" and number.isdigit() else None


def _remove_unless_locked(directory: Path) -> None:
    from simsearch.store.locking import try_lock

    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if try_lock(fd):  # no build holds it
            shutil.rmtree(directory, ignore_errors=True)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_batch(directory: Path, batch: dict[str, np.ndarray]) -> None:
    """Save an encoded batch (Ray Data columns) as one block per read task under ``directory``
    (a :class:`Checkpoint`'s): run by the driver, or on the nodes with ``--shard-writers cluster``."""
    tasks = np.asarray(batch["task"])
    for task in np.unique(tasks):
        rows = np.flatnonzero(tasks == task)
        save_block(
            directory / f"task-{int(task):05d}",
            int(np.min(np.asarray(batch["seq"])[rows])),
            [str(batch["id"][r]) for r in rows],
            [str(batch["text"][r]) for r in rows],
            [str(batch["metadata"][r]) for r in rows],
            [str(batch["where"][r]) for r in rows],
            np.asarray(batch["vector"])[rows],
            int(np.sum(np.asarray(batch["truncated"])[rows])),  # a batch's count rides on one row
        )


class TaskCounter:
    """Counts the rows of each read task as they are saved; says which tasks have them all (a
    task's last row carries its row count: :func:`simsearch.scale.sources.read_part`)."""

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}
        self.want: dict[int, int] = {}

    def add(self, task: int, rows: int, total: int) -> bool:
        """``rows`` more of ``task`` saved (``total``: its row count if known here, else 0);
        whether the task is now complete (True once)."""
        self.seen[task] = self.seen.get(task, 0) + rows
        if total:
            self.want[task] = total
        return self.want.get(task) == self.seen[task]

    def add_batch(self, batch: dict[str, np.ndarray]) -> list[int]:
        tasks, totals = np.asarray(batch["task"]), np.asarray(batch["task_rows"])
        return [
            int(task)
            for task in np.unique(tasks)
            if self.add(int(task), int(np.sum(tasks == task)), int(np.max(totals[tasks == task])))
        ]
