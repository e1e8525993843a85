"""Records -> :class:`Document`: what a document is, the reader options, JSONL and CSV/TSV records
(text fields, id field, metadata, given ids checked), and splitting documents into parts.

Shared by the line-based readers (:mod:`simsearch.readers`) and the Parquet reader.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Literal, NoReturn, Sequence

from simsearch import config
from simsearch.errors import InputError
from simsearch.readers.splitting import SPLITTERS
from simsearch.validate import check_document

DEFAULT_TEXT_FIELD = "text"
config.allow_long_csv_fields()  # process-wide, documented in simsearch.config


#: The format ``--format auto`` reads a file in, by its suffix (readers and the progress count).
FORMAT_OF_SUFFIX = {
    ".txt": "txt",
    ".md": "txt",
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class Document:
    """One unit to index: a unique ``id``, its ``text`` and JSON-able ``metadata``.

    ``where`` ("file:line") is only for error messages and does not take part in equality.
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    where: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class ReadOptions:
    """How to turn sources into documents (mirrors the CLI's reader options)."""

    format: str = "auto"
    text_fields: tuple[str, ...] = ()
    id_field: str | None = None
    split: str = "none"
    derived_ids: str = "resolved"


def split_documents(docs: Iterable[Document], split: str) -> Iterator[Document]:
    """Each document, or its parts (``<id>#<k>``, metadata ``part``: k); empty texts are dropped."""
    if split == "none":
        yield from (doc for doc in docs if doc.text.strip())
        return
    splitter = SPLITTERS[split]
    for doc in docs:
        for k, part in enumerate(splitter(doc.text), 1):
            yield Document(f"{doc.id}#{k}", part, {**doc.metadata, "part": k}, doc.where)


def read_jsonl(
    lines: Iterable[tuple[int, str]], name: str, id_prefix: str, options: ReadOptions
) -> Iterator[Document]:
    """One document per non-blank JSON-object line, errors reported as ``name:line``."""
    fields = options.text_fields or (DEFAULT_TEXT_FIELD,)
    for number, line in lines:
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            record = json.loads(line, parse_constant=_no_constant, parse_float=_finite_float)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
        except _NotFinite as exc:
            raise InputError(f"{where}: {exc}") from None
        except RecursionError:
            raise InputError(f"{where}: JSON nested too deeply to be a document") from None
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            raise InputError(f"{where}: malformed JSON ({exc})") from None
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
        yield make_document(record, fields, options.id_field, f"{id_prefix}:{number}", where)


class _NotFinite(ValueError):
    """A JSON number that is not a finite float (NaN, Infinity, 1e999)."""


def _no_constant(name: str) -> NoReturn:
    raise _NotFinite(f"{name} is not a number JSON allows (no NaN or Infinity); use null or a string")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(
            f"the number {text[:40]} is too large (it would become Infinity); write it as a string"
        )
    return value


def read_table(
    lines: Iterable[tuple[int, str]], name: str, id_prefix: str, delimiter: str, options: ReadOptions
) -> Iterator[Document]:
    """One document per CSV/TSV row under a header row; a quoted record may span lines."""
    numbered = iter(lines)
    current = [0]

    def texts() -> Iterator[str]:
        for number, line in numbered:
            current[0] = number
            yield line + "\n"

    # TSV files do not quote (a cell may start with a quote mark); CSV files do.
    quoting: Literal[0, 1, 2, 3] = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(texts(), delimiter=delimiter, strict=True, quoting=quoting)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{name}: empty file, expected a header row") from None
    except csv.Error as exc:
        raise InputError(f"{name}:1: malformed header ({exc})") from None
    repeated = sorted({column for column in header if header.count(column) > 1})
    if repeated:  # a dict of the row would silently keep only the last of them
        raise InputError(
            f"{name}:1: duplicate column {repeated[0]!r} in the header; give every column a distinct name"
        )
    fields = options.text_fields or (DEFAULT_TEXT_FIELD,)
    for wanted in (*fields, *([options.id_field] if options.id_field else [])):
        if wanted not in header:
            raise InputError(
                f"{name}:1: no column {wanted!r} in the header ({', '.join(header)}); "
                "pass --text-field / --id-field with one of those"
            )
    while True:
        start = current[0] + 1  # a quoted record may span lines: report where it starts
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"{name}:{start}: malformed row ({exc})") from None
        if not row or not any(cell.strip() for cell in row):
            continue
        where = f"{name}:{start}"
        if len(row) != len(header):
            raise InputError(f"{where}: row has {len(row)} fields but the header has {len(header)}")
        record = dict(zip(header, row))
        yield make_document(record, fields, options.id_field, f"{id_prefix}:{start}", where)


def make_document(
    record: dict[str, Any], fields: Sequence[str], id_field: str | None, derived_id: str, where: str
) -> Document:
    parts = []
    for name in fields:
        if name not in record:
            raise InputError(f"{where}: no field {name!r}; pass --text-field with the text's field")
        value = record[name]
        if value is None:
            continue
        parts.append(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    text = " ".join(part.strip() for part in parts if part.strip())
    doc_id = derived_id if id_field is None else _given_id(record.get(id_field), id_field, where)
    skip = set(fields) | ({id_field} if id_field else set())
    metadata = {key: value for key, value in record.items() if key not in skip}
    doc = Document(doc_id, text, metadata, where)
    check_document(doc)
    return doc


_KINDS = {bool: "a boolean", float: "a number with a fraction or exponent", list: "a list", dict: "an object"}


def _given_id(value: Any, id_field: str, where: str) -> str:
    """Ids are strings; an integer becomes its decimal string. Anything else would collide or
    read as a Python repr (``1.0`` vs ``"1.0"``, ``True``), so it is refused."""
    if value is None or value == "":
        raise InputError(f"{where}: no value for the id field {id_field!r}")
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    shown = json.dumps(value, ensure_ascii=False)
    shown = shown if len(shown) <= 40 else shown[:39] + "…"
    hint = f' (write "{shown}" if that string is the id)' if isinstance(value, float) else ""
    raise InputError(
        f"{where}: the id field {id_field!r} holds {_KINDS.get(type(value), type(value).__name__)} "
        f"({shown}); ids must be strings or integers{hint}"
    )
