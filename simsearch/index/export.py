"""Documents out: an index as Arrow record batches, a Parquet file or JSON lines.

Rows are read from the index's SQLite file in batches, so exporting a large index keeps memory
flat. A Parquet export records in its file metadata (key ``simsearch``) the model, pooling,
precision and dimension the vectors came from, so that ``simsearch build FILE.parquet
--vectors-field vector`` can rebuild the index without re-encoding and refuse another model's
vectors. Needs the ``parquet`` extra (pyarrow) for Arrow and Parquet; JSON lines need nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Mapping, Sequence

import numpy as np

from simsearch.errors import InputError, SimsearchError
from simsearch.store.faiss_file import from_blobs
from simsearch.store.manifest import MANIFEST, ModelIdentity
from simsearch.store.generation import Store

EXPORT_FORMATS = ("parquet", "jsonl")
METADATA_STYLES = ("json", "columns")  # one JSON column/object, or one column/key per metadata key
EXPORT_FORMAT = "simsearch-export"
EXPORT_VERSION = 1
_BATCH = 1024
_RESERVED = ("id", "text", "vector", "metadata")


Row = tuple[str, str, dict[str, Any]]


@dataclass(frozen=True)
class Source:
    """What is exported: the stores holding the documents (one, or a sharded index's shards, in
    shard order) and the manifest describing them (name, model identity, dim, count)."""

    stores: Sequence[Store]
    manifest: Mapping[str, Any]

    @classmethod
    def of(cls, store: Store) -> Source:
        return cls([store], store.manifest)


def rows(
    source: Source, *, vectors: bool, batch_size: int = _BATCH
) -> Iterator[tuple[list[Row], np.ndarray | None]]:
    """(id, text, metadata) rows in storage order (store by store), batch by batch, with their
    vectors if asked."""
    dim = int(source.manifest["dim"])
    column = ", vector" if vectors else ""
    for store in source.stores:
        last = -1
        while True:
            found = store.db.execute(
                f"SELECT rowid, id, text, metadata{column} FROM documents WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (last, batch_size),
            ).fetchall()
            if not found:
                break
            last = found[-1][0]
            docs = [(row[1], row[2], json.loads(row[3])) for row in found]
            yield docs, (from_blobs([row[4] for row in found], dim) if vectors else None)


def identity(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What an export records about its vectors' origin: the manifest's model identity keys
    (:attr:`ModelIdentity.MANIFEST_KEYS`), as the manifest wrote them."""
    return {key: manifest[key] for key in ModelIdentity.MANIFEST_KEYS if key in manifest}


def metadata_types(source: Source) -> dict[str, str]:
    """For ``columns`` style: each metadata key and the one Arrow type its values fit."""
    kinds: dict[str, set[str]] = {}
    for docs, _ in rows(source, vectors=False):
        for _, _, metadata in docs:
            for key, value in metadata.items():
                kinds.setdefault(key, set()).add(_kind(value))
    clash = [key for key in kinds if key in _RESERVED]
    if clash:
        raise SimsearchError(
            f"metadata key {clash[0]!r} would clash with the column of that name; export with --metadata json"
        )
    return {key: _merge(found - {"null"}) for key, found in kinds.items()}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "string" if isinstance(value, str) else "json"


def _merge(kinds: set[str]) -> str:
    if len(kinds) <= 1:
        return next(iter(kinds), "string")
    return "float" if kinds == {"int", "float"} else "json"  # mixed values keep their JSON text


def _schema(pa: Any, manifest: Mapping[str, Any], vectors: bool, style: str, types: dict[str, str]) -> Any:
    arrow = {
        "bool": pa.bool_(),
        "int": pa.int64(),
        "float": pa.float64(),
        "string": pa.string(),
        "json": pa.string(),
    }
    fields = [pa.field("id", pa.string(), nullable=False), pa.field("text", pa.string(), nullable=False)]
    if style == "json":
        fields.append(pa.field("metadata", pa.string()))
    else:
        fields += [pa.field(key, arrow[kind]) for key, kind in types.items()]
    if vectors:
        fields.append(pa.field("vector", pa.list_(pa.float32(), int(manifest["dim"]))))
    about = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "index": manifest.get("name"),
        **identity(manifest),
        "count": manifest.get("count"),
        "metadata_column": "metadata" if style == "json" else None,
        "vector_column": "vector" if vectors else None,
        "json_columns": [key for key, kind in types.items() if kind == "json"],
    }
    return pa.schema(fields, metadata={"simsearch": json.dumps(about, ensure_ascii=False)})


def record_batches(
    source: Source, *, vectors: bool = True, metadata: str = "json"
) -> tuple[Any, Iterator[Any]]:
    """The Arrow schema and a stream of record batches holding every document of ``source``."""
    from simsearch.readers.parquet import pyarrow_module

    pa = pyarrow_module()
    if metadata not in METADATA_STYLES:
        raise SimsearchError(f"unknown metadata style {metadata!r}; choose json or columns")
    types = metadata_types(source) if metadata == "columns" else {}
    schema = _schema(pa, source.manifest, vectors, metadata, types)

    def batches() -> Iterator[Any]:
        for docs, matrix in rows(source, vectors=vectors):
            columns: list[Any] = [[d[0] for d in docs], [d[1] for d in docs]]
            if metadata == "json":
                columns.append([json.dumps(d[2], ensure_ascii=False) for d in docs])
            else:
                columns += [[_cell(d[2].get(key), kind) for d in docs] for key, kind in types.items()]
            if matrix is not None:
                flat = pa.array(matrix.reshape(-1), type=pa.float32())
                columns.append(pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1]))
            yield pa.RecordBatch.from_arrays(
                [
                    c if isinstance(c, pa.Array) else pa.array(c, type=schema.field(i).type)
                    for i, c in enumerate(columns)
                ],
                schema=schema,
            )

    return schema, batches()


def _cell(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "json":
        return json.dumps(value, ensure_ascii=False)
    return float(value) if kind == "float" else value


def to_arrow(source: Source, *, vectors: bool = True, metadata: str = "json") -> Any:
    """Every document of ``source`` as one ``pyarrow.Table`` (see :meth:`Index.to_arrow`)."""
    from simsearch.readers.parquet import pyarrow_module

    schema, batches = record_batches(source, vectors=vectors, metadata=metadata)
    return pyarrow_module().Table.from_batches(list(batches), schema=schema)


def export(
    source: Source,
    output: str | os.PathLike[str],
    *,
    fmt: str = "parquet",
    vectors: bool = False,
    metadata: str = "json",
    force: bool = False,
    stdout: IO[bytes] | None = None,
) -> int:
    """Write every document to ``output`` (``-``: standard output, JSON lines only).

    A file is written beside its destination and renamed into place when complete, so a failed
    export leaves no half-written file; an existing file is replaced only when ``force``.
    Returns the number of documents written.
    """
    if fmt not in EXPORT_FORMATS:
        raise SimsearchError(f"unknown export format {fmt!r}; choose parquet or jsonl")
    if str(output) == "-":
        if fmt == "parquet":
            raise InputError("Parquet is not written to standard output; give --output FILE.parquet")
        return _write_jsonl(source, stdout or sys.stdout.buffer, vectors, metadata)
    target = Path(output)
    check_destination(target, source)
    if fmt == "parquet":
        from simsearch.readers.parquet import pyarrow_module

        pyarrow_module()  # one line saying what to install, before anything touches the disk
    if target.is_dir():
        raise SimsearchError(f"{target} is a directory; give --output a file name")
    if target.exists() and not force:
        raise SimsearchError(f"{target} already exists; pass --force to replace it")
    staged = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        if fmt == "parquet":
            count = _write_parquet(source, staged, vectors, metadata)
        else:
            with staged.open("wb") as stream:
                count = _write_jsonl(source, stream, vectors, metadata)
        os.replace(staged, target)
    except OSError as exc:
        raise SimsearchError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):  # e.g. ENOTDIR: the parent is a file, nothing was staged
            staged.unlink(missing_ok=True)
    return count


def check_destination(target: Path, source: Source) -> None:
    """Refuse an export written inside an index: it could replace the commit point or a data file,
    and the next write's sweep deletes files it does not know. That covers every index directory
    (any directory holding a manifest, shards included) and, in the index home of the exported
    index, the names of its index directories and its hidden staging files and directories."""
    where = target.absolute().parent.resolve()
    for folder in (where, *where.parents):
        if (folder / MANIFEST).is_file():
            _refuse(target, f"inside the index directory {folder}")
    homes = {_home_of(Path(store.path)) for store in source.stores}
    for home in homes:
        if where == home and target.name.startswith("."):
            _refuse(target, f"a hidden file of the index home {home}")
        if where == home and (home / target.name).is_dir():
            _refuse(target, f"the index directory {home / target.name}")
        if home in where.parents and where.relative_to(home).parts[0].startswith("."):
            _refuse(target, f"inside a staging directory of the index home {home}")


def _home_of(store_path: Path) -> Path:
    """The index home holding a store: the parent of its outermost index directory."""
    top = store_path.resolve()
    for folder in top.parents:
        if not (folder / MANIFEST).is_file():
            break
        top = folder
    return top.parent


def _refuse(target: Path, where: str) -> None:
    raise SimsearchError(
        f"refusing to export to {target}: it is {where}, and an export there could overwrite "
        "or lose the index's files; give --output a path outside the index home"
    )


def _write_parquet(source: Source, file: Path, vectors: bool, metadata: str) -> int:
    import pyarrow.parquet as pq

    schema, batches = record_batches(source, vectors=vectors, metadata=metadata)
    count = 0
    with pq.ParquetWriter(str(file), schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
            count += batch.num_rows
    return count


def _write_jsonl(source: Source, stream: IO[bytes], vectors: bool, metadata: str) -> int:
    if metadata == "columns":
        clash = sorted(
            {key for docs, _ in rows(source, vectors=False) for d in docs for key in d[2]} & set(_RESERVED)
        )
        if clash:
            raise SimsearchError(
                f"metadata key {clash[0]!r} would clash with the field of that name; "
                "export with --metadata json"
            )
    count = 0
    for docs, matrix in rows(source, vectors=vectors):
        for n, (doc_id, text, meta) in enumerate(docs):
            record: dict[str, Any] = {"id": doc_id, "text": text}
            record.update({"metadata": meta} if metadata == "json" else meta)
            if matrix is not None:
                record["vector"] = [float(x) for x in matrix[n]]
            stream.write(json.dumps(record, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n")
        count += len(docs)
    stream.flush()
    return count
