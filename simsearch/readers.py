"""Readers: text files, CSV/TSV, JSONL, directories and stdin -> :class:`Document` streams.

Files are read as bytes line by line so that a bad byte or a malformed record is reported with
its file and line, and so that a huge input streams instead of being loaded whole.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Literal, Sequence

from simsearch import config
from simsearch.errors import InputError
from simsearch.splitting import SPLITTERS

FORMATS = ("auto", "txt", "csv", "tsv", "jsonl")
SPLITS = ("none", *SPLITTERS)
_SUFFIXES = {".txt": "txt", ".md": "txt", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl",
             ".ndjson": "jsonl"}
_DIR_SUFFIXES = (".txt", ".md")
_DEFAULT_TEXT_FIELD = "text"
config.allow_long_csv_fields()  # process-wide, documented in simsearch.config


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


def read_documents(
    sources: Sequence[str | Path], options: ReadOptions = ReadOptions(), stdin: IO[bytes] | None = None
) -> Iterator[Document]:
    """Yield the documents of every source in order; ``-`` reads standard input."""
    if options.format not in FORMATS:
        raise InputError(f"unknown format {options.format!r}; choose one of {', '.join(FORMATS)}")
    if options.split not in SPLITS:
        raise InputError(f"unknown split {options.split!r}; choose one of {', '.join(SPLITS)}")
    for source in sources:
        found = False
        for doc in _read_source(str(source), options, stdin):
            found = True
            yield doc
        if not found:  # an empty source is a mistake (wrong file, wrong --split), say which
            raise InputError(f"{_display(source)}: {_why_empty(str(source))}; nothing to index")


def _display(source: str | Path) -> str:
    return "<stdin>" if str(source) == "-" else str(source)


def _why_empty(source: str) -> str:
    path = Path(source)
    if source != "-" and path.is_file() and path.stat().st_size == 0:
        return "empty file"
    if source == "-":
        return "no documents on standard input"
    return "no documents (only blank lines or empty texts)"


def _read_source(source: str, options: ReadOptions, stdin: IO[bytes] | None) -> Iterator[Document]:
    if source == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        fmt = "txt" if options.format == "auto" else options.format
        yield from _read_stream(stream, "<stdin>", "stdin", fmt, options)
        return
    path = Path(source)
    if path.is_dir():
        yield from _read_directory(path, source, options)
        return
    if not path.is_file():
        raise InputError(f"{source}: no such file or directory")
    fmt = options.format if options.format != "auto" else _SUFFIXES.get(path.suffix.lower(), "")
    if not fmt:
        raise InputError(
            f"{source}: cannot tell the format from the suffix {path.suffix or '(none)'!r}; "
            "pass --format txt|csv|tsv|jsonl"
        )
    with path.open("rb") as stream:
        _sniff(stream, source)
        yield from _read_stream(stream, source, source, fmt, options)


def _sniff(stream: IO[bytes], name: str) -> None:
    """Name a binary file as such up front, rather than by the first odd byte of some line."""
    head = stream.read(8192)
    stream.seek(0)
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        line = head[: head.index(b"\x00")].count(b"\n") + 1
        raise InputError(f"{name}:{line}: contains NUL bytes, looks like a binary file; "
                         "give a UTF-8 text file")


def _read_stream(
    stream: IO[bytes], name: str, id_prefix: str, fmt: str, options: ReadOptions
) -> Iterator[Document]:
    lines = decoded_lines(stream, name)
    if fmt == "txt":
        yield from _split_txt(lines, name, id_prefix, options.split)
    elif fmt == "jsonl":
        yield from _split(_read_jsonl(lines, name, id_prefix, options), options.split)
    else:
        delimiter = "," if fmt == "csv" else "\t"
        yield from _split(_read_table(lines, name, id_prefix, delimiter, options), options.split)


def read_queries(stream: IO[bytes], name: str) -> list[str]:
    """The non-empty lines of a queries file, stripped (same decoding rules as documents)."""
    return [line.strip() for _, line in decoded_lines(stream, name) if line.strip()]


def decoded_lines(stream: IO[bytes], name: str) -> Iterator[tuple[int, str]]:
    """(line number, text) pairs: UTF-8 with an optional BOM, CRLF or LF, bad bytes reported."""
    for number, raw in enumerate(stream, 1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        elif number == 1 and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise InputError(f"{name}:1: UTF-16 text (byte order mark); convert the file to UTF-8")
        if b"\x00" in raw:
            raise InputError(f"{name}:{number}: contains NUL bytes, looks like a binary file; "
                             "give a UTF-8 text file")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{name}:{number}: invalid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                f"{exc.start + 1}); convert the file to UTF-8"
            ) from None
        yield number, text.rstrip("\r\n")


def _split_txt(
    lines: Iterable[tuple[int, str]], name: str, id_prefix: str, split: str
) -> Iterator[Document]:
    if split == "paragraphs":  # paragraphs span lines: the whole file is the unit
        text = "\n".join(line for _, line in lines)
        yield from _split([Document(id_prefix, text, {"source": name}, name)], split)
        return
    docs = (
        Document(f"{id_prefix}:{n}", line.strip(), {"source": name, "line": n}, f"{name}:{n}")
        for n, line in lines
        if line.strip()
    )
    yield from _split(docs, "none" if split == "lines" else split)


def _split(docs: Iterable[Document], split: str) -> Iterator[Document]:
    if split == "none":
        yield from (doc for doc in docs if doc.text.strip())
        return
    splitter = SPLITTERS[split]
    for doc in docs:
        for k, part in enumerate(splitter(doc.text), 1):
            yield Document(f"{doc.id}#{k}", part, {**doc.metadata, "part": k}, doc.where)


def _read_directory(root: Path, source: str, options: ReadOptions) -> Iterator[Document]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in _DIR_SUFFIXES)
    if not files:
        raise InputError(f"{source}: directory holds no .txt or .md files")
    for path in files:
        # Prefixed with the directory as given, like txt ids: unique across several directories.
        rel = (Path(source) / path.relative_to(root)).as_posix()
        with path.open("rb") as stream:
            text = "\n".join(line for _, line in decoded_lines(stream, str(path)))
        doc = Document(rel, text.strip(), {"source": str(path)}, str(path))
        yield from _split([doc], options.split)


def _read_jsonl(
    lines: Iterable[tuple[int, str]], name: str, id_prefix: str, options: ReadOptions
) -> Iterator[Document]:
    fields = options.text_fields or (_DEFAULT_TEXT_FIELD,)
    for number, line in lines:
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
        yield _make_document(record, fields, options.id_field, f"{id_prefix}:{number}", where)


def _read_table(
    lines: Iterable[tuple[int, str]], name: str, id_prefix: str, delimiter: str, options: ReadOptions
) -> Iterator[Document]:
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
    fields = options.text_fields or (_DEFAULT_TEXT_FIELD,)
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
        yield _make_document(record, fields, options.id_field, f"{id_prefix}:{start}", where)


def _make_document(
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
    if id_field is not None:
        if record.get(id_field) in (None, ""):
            raise InputError(f"{where}: no value for the id field {id_field!r}")
        doc_id = str(record[id_field])
    else:
        doc_id = derived_id
    skip = set(fields) | ({id_field} if id_field else set())
    metadata = {key: value for key, value in record.items() if key not in skip}
    return Document(doc_id, text, metadata, where)
