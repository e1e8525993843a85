"""Parquet -> :class:`~simsearch.readers.Document` streams, read in record batches.

Needs the ``parquet`` extra (pyarrow); :func:`read_documents` comes here for ``.parquet`` files.
A row range (``start``/``stop``) lets several workers split one file between them.
"""

from __future__ import annotations

import json
from pathlib import Path
import os
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from simsearch.errors import InputError, ModelError, SimsearchError, install_hint
from simsearch.readers.records import (
    DEFAULT_TEXT_FIELD,
    Document,
    ReadOptions,
    make_document,
    split_documents,
)

if TYPE_CHECKING:
    from simsearch.encode import Encoder

PARQUET_BATCH = 1024  # rows decoded at a time: memory stays flat whatever the file's size


def pyarrow_module() -> Any:
    """``pyarrow``, or a one-line error saying which extra to install."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ModuleNotFoundError:
        raise SimsearchError(
            f"Parquet and Arrow need pyarrow, which is not installed: {install_hint('parquet')}"
        ) from None
    return pyarrow


def read_parquet(
    path: str | Path,
    options: ReadOptions = ReadOptions(),
    *,
    start: int = 0,
    stop: int | None = None,
    name: str | None = None,
) -> Iterator[Document]:
    """The documents of rows ``start`` (0-based, included) to ``stop`` (excluded) of a Parquet file.

    Text and id columns as for JSONL (``text_fields`` joined with a space); every other column of
    a scalar type (strings, numbers, booleans, dates) becomes metadata, list and struct columns
    (vectors, say) are left out. Derived ids and error positions use the 1-based row number, so
    a file split into row ranges gives the same documents as the whole file. ``path`` may be a
    URI of a pyarrow file system (``s3://...``); ``name`` (default: ``path``) names the rows.
    """
    for docs, _ in parquet_batches(path, options, start=start, stop=stop, name=name):
        yield from split_documents(docs, options.split)


def parquet_batches(
    path: str | Path,
    options: ReadOptions,
    *,
    start: int = 0,
    stop: int | None = None,
    extra_columns: Sequence[str] = (),
    name: str | None = None,
) -> Iterator[tuple[list[Document], dict[str, Any]]]:
    """Record batches as documents, with the batch's ``extra_columns`` as Arrow arrays."""
    pa = pyarrow_module()
    name = str(path) if name is None else name
    try:
        file = pa.parquet.ParquetFile(str(path))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{name}: not a readable Parquet file ({exc})") from None
    schema = file.schema_arrow
    fields = options.text_fields or (DEFAULT_TEXT_FIELD,)
    for wanted in (*fields, *([options.id_field] if options.id_field else []), *extra_columns):
        if schema.get_field_index(wanted) < 0:
            raise InputError(
                f"{name}: no column {wanted!r} (columns: {', '.join(schema.names)}); "
                "pass --text-field / --id-field with one of those"
            )
    skip = {*fields, *extra_columns, *([options.id_field] if options.id_field else [])}
    meta_columns = [f.name for f in schema if f.name not in skip and _is_scalar(pa, f.type)]
    spread, json_columns = _export_marks(schema)  # a simsearch export's metadata as JSON text
    if start < 0 or (stop is not None and stop < start):
        raise InputError(f"{name}: bad row range {start}..{stop}; give 0 <= start <= stop")
    stop = file.metadata.num_rows if stop is None else min(stop, file.metadata.num_rows)
    columns = list(
        dict.fromkeys(
            [*fields, *([options.id_field] if options.id_field else []), *meta_columns, *extra_columns]
        )
    )
    groups, row = _row_groups(file, start, stop)
    if not groups:
        return
    try:
        for batch in file.iter_batches(batch_size=PARQUET_BATCH, row_groups=groups, columns=columns):
            first, row = row, row + batch.num_rows
            lo, hi = max(start - first, 0), min(stop - first, batch.num_rows)
            if hi <= lo:
                continue
            batch = batch.slice(lo, hi - lo)
            records = batch.select([c for c in columns if c not in extra_columns]).to_pylist()
            docs = []
            for offset, record in enumerate(records):
                number = first + lo + offset + 1
                for key in json_columns.intersection(record):
                    record[key] = _json_value(record[key], f"{name}:row {number}", key)
                doc = make_document(
                    _jsonable(record), fields, options.id_field, f"{name}:{number}", f"{name}:row {number}"
                )
                if spread in doc.metadata:
                    doc = _spread(doc, spread)
                docs.append(doc)
            yield docs, {column: batch.column(column) for column in extra_columns}
    except pa.ArrowException as exc:
        raise InputError(f"{name}: damaged Parquet file ({exc})") from None


def _row_groups(file: Any, start: int, stop: int) -> tuple[list[int], int]:
    """The row groups overlapping rows [start, stop), and the first row of the first of them."""
    groups, first, row = [], None, 0
    for group in range(file.metadata.num_row_groups):
        rows = file.metadata.row_group(group).num_rows
        if row < stop and row + rows > start:
            groups.append(group)
            first = row if first is None else first
        row += rows
    return groups, first or 0


def _is_scalar(pa: Any, kind: Any) -> bool:
    t = pa.types
    return bool(
        t.is_string(kind)
        or t.is_large_string(kind)
        or t.is_integer(kind)
        or t.is_floating(kind)
        or t.is_boolean(kind)
        or t.is_null(kind)
        or t.is_temporal(kind)
        or t.is_decimal(kind)
        or t.is_dictionary(kind)
    )


def _export_marks(schema: Any) -> tuple[str | None, set[str]]:
    """What a simsearch export marked: the column holding each row's metadata as one JSON
    object, and the metadata columns holding JSON text (nested or mixed values)."""
    raw = (schema.metadata or {}).get(b"simsearch")
    try:
        about = json.loads(raw) if raw else {}
    except ValueError:
        about = {}
    if not isinstance(about, dict):
        return None, set()
    column = about.get("metadata_column")
    marked = about.get("json_columns")
    return (
        column if isinstance(column, str) else None,
        {str(c) for c in marked} if isinstance(marked, list) else set(),
    )


def _json_value(value: Any, where: str, column: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: column {column!r} does not hold JSON text") from None


def _spread(doc: Document, column: str) -> Document:
    """Merge the JSON object of ``column`` into the document's metadata, as it was exported."""
    metadata = dict(doc.metadata)
    value = metadata.pop(column)
    if value is None:
        return Document(doc.id, doc.text, metadata, doc.where)
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        parsed = None
    if not isinstance(parsed, dict):
        raise InputError(f"{doc.where}: column {column!r} does not hold a JSON object")
    return Document(doc.id, doc.text, {**metadata, **parsed}, doc.where)


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    """Dates as ISO text, decimals as text, NaN as null: metadata must stay valid JSON."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, float) and value != value:
            value = None
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        elif value is not None and not isinstance(value, (str, int, float, bool, dict, list)):
            value = str(value)
        out[key] = value
    return out


def export_identity(path: str | Path) -> dict[str, Any]:
    """The model identity a simsearch export recorded in a Parquet file's metadata ({} if none)."""
    pa = pyarrow_module()
    try:
        raw = (pa.parquet.read_schema(str(path)).metadata or {}).get(b"simsearch")
        about = json.loads(raw) if raw else {}
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    return about if isinstance(about, dict) else {}


def check_identity(path: str | Path, expected: dict[str, Any]) -> None:
    """Refuse a file whose recorded model, pooling, precision, dim or model files (fingerprint)
    differ from ``expected``."""
    about = export_identity(path)
    if "model" not in about or "dim" not in about:
        raise ModelError(
            f"{path}: no simsearch metadata says which model made its vectors; "
            "only files written by `simsearch export --vectors` can be built without re-encoding"
        )
    keys = ("model", "pooling", "precision", "dim")
    differ = [k for k in keys if k in about and k in expected and about[k] != expected[k]]
    if differ:
        theirs = ", ".join(f"{k} {about[k]!r}" for k in differ)
        ours = ", ".join(f"{k} {expected[k]!r}" for k in differ)
        raise ModelError(
            f"{path}: its vectors come from {theirs} but this build uses {ours}; "
            f"pass --model/--pooling/--precision to match, or build without --vectors-field"
        )
    # the export's manifest section {"model": sha256 of the weights, ...}: same model id, other files
    section = about.get("fingerprint")
    theirs_files = section.get("model") if isinstance(section, dict) else None
    ours_files = expected.get("model_fingerprint")
    if isinstance(theirs_files, str) and isinstance(ours_files, str) and theirs_files != ours_files:
        raise ModelError(
            f"{path}: its vectors come from other files of model {about['model']!r} than the ones "
            f"this build loads (weights, tokenizer or config differ: fingerprint {theirs_files[:12]} "
            f"vs {ours_files[:12]}); build from the texts without --vectors-field"
        )


def vector_batches(
    path: str | Path,
    options: ReadOptions,
    vectors_field: str,
    dim: int,
    *,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[tuple[list[Document], Any]]:
    """Documents with their precomputed vectors (float32 ``(n, dim)``), blank texts dropped."""
    import numpy as np

    if options.split != "none":
        raise InputError("--split cannot be used with --vectors-field: each vector belongs to one whole row")
    for docs, extra in parquet_batches(path, options, start=start, stop=stop, extra_columns=(vectors_field,)):
        column = extra[vectors_field]
        if column.null_count:
            row = next(n for n, v in enumerate(column.is_null().to_pylist()) if v)
            raise InputError(f"{docs[row].where}: no vector in column {vectors_field!r}")
        try:
            matrix = np.asarray(column.to_pylist(), dtype=np.float32)
        except (ValueError, TypeError):
            raise InputError(
                f"{path}: column {vectors_field!r} does not hold vectors of one length"
            ) from None
        if matrix.ndim != 2 or matrix.shape[1] != dim:
            raise InputError(
                f"{path}: column {vectors_field!r} holds vectors of shape {matrix.shape[1:]} "
                f"but the model gives {dim}-dim ones"
            )
        keep = [n for n, doc in enumerate(docs) if doc.text.strip()]
        yield [docs[n] for n in keep], matrix[keep]


def precomputed(
    sources: Sequence[str | Path], options: ReadOptions, vectors_field: str, encoder: Encoder
) -> Iterator[tuple[list[Document], Any]]:
    """Documents and vectors of simsearch Parquet exports, each file checked against ``encoder``
    (model, pooling, precision, dim) before any row is read; for :meth:`Index.build_from_vectors`."""
    expected = {
        "model": encoder.model_id,
        "pooling": encoder.pooling,
        "dim": int(encoder.dim),
        "precision": encoder.precision,
        "model_fingerprint": _files_fingerprint(encoder.model_path),
    }
    for source in sources:
        if (
            str(source) == "-"
            or Path(source).suffix.lower() not in (".parquet", ".pq")
            and options.format != "parquet"
        ):
            raise InputError(
                f"{source}: --vectors-field reads Parquet files (a simsearch export); give .parquet files"
            )
        if not Path(source).is_file():
            raise InputError(f"{source}: no such file")
        check_identity(source, expected)
    for source in sources:
        yield from vector_batches(source, options, vectors_field, int(encoder.dim))


def _files_fingerprint(model_path: str | os.PathLike[str] | None) -> str | None:
    """The fingerprint of the encoder's model directory (None for an encoder without one)."""
    from simsearch.model_files import model_fingerprint

    if model_path is None or not Path(model_path).is_dir():
        return None
    return model_fingerprint(model_path)
