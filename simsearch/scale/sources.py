"""What a Ray build reads where: sources resolved on the driver, read by tasks on any node.

The driver turns each source into read tasks that carry everything a task on another machine
needs to read exactly that input: a local file or directory by its absolute path, with its size
and a hash of its first MiB (a directory: its listing), checked by the task before it reads, so
a node that sees another file, or none, under that path fails the build with one line instead of
indexing the wrong documents. Documents keep the names and ids a local read on the driver gives
(:func:`simsearch.readers.read_source_as`). URIs of pyarrow file systems (``s3://``, ``gs://``,
``hdfs://``, ...) and directories of Parquet files are read by the tasks as Ray Data reads them:
each node opens the object itself with its own credentials (for S3 the usual ``AWS_*`` settings).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from simsearch.errors import InputError
from simsearch.readers import Document, ReadOptions, read_source_as, source_label

PART_BYTES = 16 << 20  # a file larger than this is read by several tasks
PREFIX_BYTES = 1 << 20  # the part of a file hashed to tell two copies apart
PARQUET_SUFFIXES = (".parquet", ".pq")
TEXT_DIR_SUFFIXES = (".txt", ".md")  # what a directory source holds for the local reader


def read_plan(
    sources: Sequence[str], workers: int, options: ReadOptions = ReadOptions()
) -> list[dict[str, Any]]:
    """Read tasks: a file per task; a large file split into parts: row ranges of a Parquet file
    (only the overlapping row groups are read), every ``parts``-th document of other formats."""
    plan: list[dict[str, Any]] = []
    for source in sources:
        if is_uri(source):
            plan += _uri_tasks(source, workers, options, PART_BYTES)
        else:
            plan += _local_tasks(source, workers, options, PART_BYTES)
    return plan


def is_uri(source: str) -> bool:
    """Whether ``source`` names an object of a pyarrow file system (``s3://bucket/key``)."""
    scheme, sep, _ = source.partition("://")
    return bool(sep) and scheme.isidentifier()


def _local_tasks(source: str, workers: int, options: ReadOptions, part_bytes: int) -> list[dict[str, Any]]:
    path = Path(source)
    if not path.exists():
        raise InputError(f"{source}: no such file or directory")
    absolute = os.path.abspath(source)  # the driver's working directory, not the node's
    if path.is_dir():
        files = _parquet_files(Path(absolute), options)
        if files:
            return [
                task
                for file in files
                for task in _file_tasks(
                    str(file),
                    f"{source}/{file.relative_to(absolute).as_posix()}",
                    workers,
                    options,
                    part_bytes,
                )
            ]
        listing = {"listing": directory_listing(absolute)}
        return [
            {
                "path": absolute,
                "name": source,
                "label": source_label(source, options),
                **listing,
                "part": 0,
                "parts": 1,
            }
        ]
    if not path.is_file():  # a pipe or a device: what the driver read would be gone for the nodes
        raise InputError(
            f"{source}: --ray reads regular files and directories; write the input to a file first"
        )
    return _file_tasks(absolute, source, workers, options, part_bytes)


def _file_tasks(
    absolute: str, name: str, workers: int, options: ReadOptions, part_bytes: int
) -> list[dict[str, Any]]:
    base = {"path": absolute, "name": name, "label": source_label(name, options), **file_identity(absolute)}
    size = int(base["size"])
    # a part per part_bytes, up to 4 per worker (every part of a text file parses the whole
    # file); a read task costs a worker process, so a small file is one task (its output is
    # still cut into small blocks for the actors)
    parts = max(1, min(workers * 4, -(-size // part_bytes)))
    if parts > 1 and _is_parquet(name, options):
        import pyarrow.parquet as pq  # comes with ray[data]

        rows = pq.ParquetFile(absolute).metadata.num_rows
        return [{**base, "start": lo, "stop": hi} for lo, hi in _ranges(rows, parts)]
    return [{**base, "part": part, "parts": parts} for part in range(parts)]


def _uri_tasks(uri: str, workers: int, options: ReadOptions, part_bytes: int) -> list[dict[str, Any]]:
    """A task per Parquet object (row ranges of a large one) under ``uri``. pyarrow's URI options
    (``?endpoint_override=host:port&scheme=http``, ...) carry over to every object; documents are
    named without them (they may hold credentials)."""
    import pyarrow.fs as pafs

    base, _, query = uri.partition("?")
    scheme = base.partition("://")[0]
    suffix = f"?{query}" if query else ""
    try:
        fs, root = pafs.FileSystem.from_uri(uri)
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.Directory:
            infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
            found = sorted(
                (f"{scheme}://{i.path}", int(i.size), _mtime_ns(i))
                for i in infos
                if i.type == pafs.FileType.File and _is_data_file(i.path, options)
            )
            if not found:
                raise InputError(f"{base}: holds no Parquet files (*.parquet, *.pq)")
        elif info.type == pafs.FileType.File:
            found = [(base, int(info.size), _mtime_ns(info))]
        else:
            raise InputError(f"{base}: no such object or prefix")
        tasks: list[dict[str, Any]] = []
        for name, size, mtime in found:
            if not _is_parquet(name, options):
                raise InputError(
                    f"{name}: --ray reads Parquet from object storage; give *.parquet objects or --format parquet"
                )
            parts = max(1, min(workers * 4, -(-size // part_bytes)))
            rows = _parquet_rows(name + suffix) if parts > 1 else 0
            ranges = _ranges(rows, parts) if rows else [(0, None)]
            # size and mtime: the object's identity, for a resumed build (scale/resume.py)
            identity = {"size": size, "mtime_ns": mtime}
            tasks += [
                {"uri": name + suffix, "name": name, "start": lo, "stop": hi, **identity} for lo, hi in ranges
            ]
    except OSError as exc:  # pyarrow's errors: credentials, a missing bucket, an unreachable endpoint
        raise InputError(f"{base}: {_one_line(exc)}") from None
    return tasks


def read_part(task: dict[str, Any], options: ReadOptions) -> Iterator[dict[str, Any]]:
    """The documents of one read task, as Ray Data rows (metadata as JSON text); runs on any node."""
    docs: Iterator[Document]
    if "uri" in task:
        from simsearch.readers.parquet import read_parquet

        docs = read_parquet(task["uri"], options, start=task["start"], stop=task["stop"], name=task["name"])
    else:
        check_same_input(task)
        if "start" in task:
            from simsearch.readers.parquet import read_parquet

            docs = read_parquet(
                task["path"], options, start=task["start"], stop=task["stop"], name=task["name"]
            )
        else:
            every = read_source_as(task["path"], task["name"], task["label"], options)
            docs = (doc for number, doc in enumerate(every) if number % task["parts"] == task["part"])
    # Each row names its task and its place in it (a block's identity, whatever Ray retries); the
    # task's last row also carries how many rows the task has (0 on the others), so whoever counts
    # a task's rows knows when it has them all (rows are held back by one to know which is last).
    number, held, rows = int(task.get("task", -1)), None, 0
    for doc in docs:
        if doc.text.strip():
            if held is not None:
                yield held
            rows += 1
            held = {
                "id": doc.id,
                "text": doc.text,
                "where": doc.where,
                "metadata": json.dumps(doc.metadata, ensure_ascii=False),
                "task": number,
                "seq": rows - 1,
                "task_rows": 0,
            }
    if held is not None:
        yield {**held, "task_rows": rows}


def file_identity(path: str) -> dict[str, Any]:
    """Size and a hash of the first :data:`PREFIX_BYTES` of a file: equal on two nodes when they
    see the same file (a copy included), different when they see another one."""
    with open(path, "rb") as stream:
        digest = hashlib.blake2b(stream.read(PREFIX_BYTES), digest_size=16).hexdigest()
    return {"size": os.path.getsize(path), "digest": digest}


def directory_listing(path: str) -> str:
    """A hash of the names and sizes of the files a directory source is read from."""
    root = Path(path)
    entries = sorted(
        f"{p.relative_to(root).as_posix()}\0{p.stat().st_size}"
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in TEXT_DIR_SUFFIXES
    )
    return hashlib.blake2b("\n".join(entries).encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def check_same_input(task: dict[str, Any]) -> None:
    """Fail with one line unless this node sees the input the driver planned under that path."""
    path, name = task["path"], task["name"]
    where = f"on node {_node_ip()}"
    if not os.path.exists(path):
        raise InputError(
            f"{name}: {path} does not exist {where}; every node must see the input under the same "
            "path (a shared file system), or put it in object storage (s3://...)"
        )
    if "listing" in task:
        same = os.path.isdir(path) and directory_listing(path) == task["listing"]
        found = "another directory listing"
    else:
        seen = file_identity(path) if os.path.isfile(path) else {"size": -1, "digest": ""}
        same = seen == {"size": task["size"], "digest": task["digest"]}
        found = (
            f"{seen['size']} bytes (the driver's: {task['size']})"
            if seen["size"] != task["size"]
            else "other content"
        )
    if not same:
        raise InputError(
            f"{name}: {path} {where} is not the file the driver read ({found}); every node must see "
            "the same input under that path (a shared file system), or put it in object storage"
        )


def _node_ip() -> str:
    try:
        import ray

        util: Any = ray.util
        return str(util.get_node_ip_address())
    except Exception:  # noqa: BLE001 - only a name for the message
        return "(unknown)"


def _parquet_files(path: Path, options: ReadOptions) -> list[Path]:
    """The Parquet files of a directory read as a Parquet dataset: when --format parquet, or when
    it holds Parquet files and no text files (which the local directory reader reads)."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and _is_data_file(str(p), options))
    if options.format == "parquet":
        return files
    if files and not any(p.is_file() and p.suffix.lower() in TEXT_DIR_SUFFIXES for p in path.rglob("*")):
        return files
    return []


def _is_data_file(path: str, options: ReadOptions) -> bool:
    base = path.rsplit("/", 1)[-1]
    if base.startswith(("_", ".")):  # _SUCCESS, _metadata, .crc: written beside a dataset, not data
        return False
    return options.format == "parquet" or base.lower().endswith(PARQUET_SUFFIXES)


def _is_parquet(name: str, options: ReadOptions) -> bool:
    return options.format == "parquet" or (
        options.format == "auto" and name.lower().endswith(PARQUET_SUFFIXES)
    )


def _ranges(rows: int, parts: int) -> list[tuple[int, int | None]]:
    bounds = [rows * part // parts for part in range(parts + 1)]
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


def _mtime_ns(info: Any) -> int | None:
    return None if info.mtime_ns is None else int(info.mtime_ns)


def _parquet_rows(uri: str) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(uri).metadata.num_rows)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
