"""Readers: text files, CSV/TSV, JSONL, Parquet, directories and stdin -> :class:`Document` streams.

Files are read as bytes line by line so that a bad byte or a malformed record is reported with
its file and line, and so that a huge input streams instead of being loaded whole; Parquet is
read in record batches for the same reason (needs the ``parquet`` extra: pyarrow).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Literal, NoReturn, Sequence

from simsearch import config
from simsearch.errors import InputError
from simsearch.splitting import SPLITTERS
from simsearch.validate import check_document

FORMATS = ("auto", "txt", "csv", "tsv", "jsonl", "parquet")
SPLITS = ("none", *SPLITTERS)
# How ids are derived from a file's path: "resolved" (the same file gives the same ids however
# its path was spelled) or "as-given" (the path as typed: indexes built before the rule existed).
DERIVED_IDS = ("resolved", "as-given")
_SUFFIXES = {
    ".txt": "txt",
    ".md": "txt",
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
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
    derived_ids: str = "resolved"


def read_documents(
    sources: Sequence[str | Path], options: ReadOptions = ReadOptions(), stdin: IO[bytes] | None = None
) -> Iterator[Document]:
    """Yield the documents of every source in order; ``-`` reads standard input."""
    if options.format not in FORMATS:
        raise InputError(f"unknown format {options.format!r}; choose one of {', '.join(FORMATS)}")
    if options.split not in SPLITS:
        raise InputError(f"unknown split {options.split!r}; choose one of {', '.join(SPLITS)}")
    if options.derived_ids not in DERIVED_IDS:
        raise InputError(f"unknown id rule {options.derived_ids!r}; choose one of {', '.join(DERIVED_IDS)}")
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


def standard_input() -> IO[bytes]:
    """The process's standard input as bytes, or a clear error when it is closed."""
    stream = sys.stdin
    if stream is None or stream.closed or not hasattr(stream, "buffer"):
        raise InputError("<stdin>: standard input is closed; pipe the input in, or give a file instead of -")
    return stream.buffer


def canonical_path(source: str | Path) -> str:
    """How a file names its documents, whatever the spelling of its path.

    The resolved path (symlinks followed, ``.``/``..`` gone), relative to the resolved working
    directory when the file is inside it (``data/a.txt``), else absolute (``/srv/data/a.txt``).
    """
    resolved = Path(source).resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):  # outside the working directory (or it was deleted)
        return resolved.as_posix()


def _label(source: str, options: ReadOptions) -> str:
    """The path part of derived ids (and of the ``source`` metadata of text files)."""
    if options.derived_ids == "as-given" or not Path(source).is_file():
        return source  # a pipe's resolved name (/proc/.../pipe:[123]) changes every run
    return canonical_path(source)


def _read_source(source: str, options: ReadOptions, stdin: IO[bytes] | None) -> Iterator[Document]:
    if source == "-":
        stream = stdin if stdin is not None else standard_input()
        fmt = "txt" if options.format == "auto" else options.format
        if fmt == "parquet":
            raise InputError("<stdin>: Parquet cannot be read from standard input; give the file's path")
        yield from _read_stream(stream, "<stdin>", "stdin", fmt, options)
        return
    path = Path(source)
    if path.is_dir():
        yield from _read_directory(path, source, options)
        return
    if not path.exists():
        raise InputError(f"{source}: no such file or directory")
    regular = path.is_file()  # else a FIFO, /dev/fd/N of a process substitution, a device
    kind = options.format if options.format != "auto" else _SUFFIXES.get(path.suffix.lower())
    if kind is None and not regular:
        kind = "txt"  # like standard input
    if kind is None:
        raise InputError(
            f"{source}: cannot tell the format from the suffix {path.suffix or '(none)'!r}; "
            "pass --format txt|csv|tsv|jsonl|parquet"
        )
    if kind == "parquet":
        from simsearch.parquet_reader import read_parquet  # pyarrow only when asked for

        yield from read_parquet(path, options)
        return
    with open_source(source) as stream:
        if regular:
            _sniff(stream, source)
        yield from _read_stream(stream, source, _label(source, options), kind, options)


def open_source(source: str) -> IO[bytes]:
    """A file (or FIFO) opened for reading bytes; what stops it is a one-line :class:`InputError`."""
    try:
        return open(source, "rb")  # noqa: SIM115 (the caller closes it)
    except IsADirectoryError:
        raise InputError(f"{source}: is a directory; give a file") from None
    except FileNotFoundError:
        raise InputError(f"{source}: no such file or directory") from None
    except OSError as exc:
        raise InputError(
            f"{source}: cannot read ({exc.strerror or exc}); check the path and its permissions"
        ) from None


def _sniff(stream: IO[bytes], name: str) -> None:
    """Name a binary file as such up front, rather than by the first odd byte of some line."""
    try:
        head = stream.read(8192)
        stream.seek(0)
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        line = head[: head.index(b"\x00")].count(b"\n") + 1
        raise InputError(
            f"{name}:{line}: contains NUL bytes, looks like a binary file; give a UTF-8 text file"
        )


def _read_stream(
    stream: IO[bytes], name: str, id_prefix: str, fmt: str, options: ReadOptions
) -> Iterator[Document]:
    lines = decoded_lines(stream, name)
    if fmt == "txt":
        label = name if name == "<stdin>" else id_prefix
        yield from _split_txt(lines, name, id_prefix, options.split, label)
    elif fmt == "jsonl":
        yield from _split(_read_jsonl(lines, name, id_prefix, options), options.split)
    else:
        delimiter = "," if fmt == "csv" else "\t"
        yield from _split(_read_table(lines, name, id_prefix, delimiter, options), options.split)


def read_queries(stream: IO[bytes], name: str) -> list[str]:
    """The non-empty lines of a queries file, stripped (same decoding rules as documents)."""
    return [line.strip() for _, line in decoded_lines(stream, name) if line.strip()]


def read_ids(stream: IO[bytes], name: str) -> list[str]:
    """One id per line, exactly as written less the line ending (spaces are part of an id);
    empty lines are skipped (no id is empty)."""
    return [line for _, line in decoded_lines(stream, name) if line]


def read_lines_from(source: str, reader: Callable[[IO[bytes], str], list[str]]) -> list[str]:
    """``reader`` over a file, a FIFO or ``-`` (standard input; a closed one is an error)."""
    if source == "-":
        return reader(standard_input(), "<stdin>")
    with open_source(source) as stream:
        return reader(stream, source)


def decoded_lines(stream: IO[bytes], name: str) -> Iterator[tuple[int, str]]:
    """(line number, text) pairs: UTF-8 with an optional BOM, CRLF or LF, bad bytes reported."""
    for number, raw in enumerate(_raw_lines(stream, name), 1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        elif number == 1 and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise InputError(f"{name}:1: UTF-16 text (byte order mark); convert the file to UTF-8")
        if b"\x00" in raw:
            raise InputError(
                f"{name}:{number}: contains NUL bytes, looks like a binary file; give a UTF-8 text file"
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{name}:{number}: invalid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                f"{exc.start + 1}); convert the file to UTF-8"
            ) from None
        yield number, text.rstrip("\r\n")


def _raw_lines(stream: IO[bytes], name: str) -> Iterator[bytes]:
    """The stream's lines; a read that fails (EIO, a closed descriptor) is a one-line error."""
    iterator = iter(stream)
    while True:
        try:
            raw = next(iterator)
        except StopIteration:
            return
        except (OSError, ValueError) as exc:  # ValueError: I/O on a closed file
            raise InputError(f"{name}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
        yield raw


def _split_txt(
    lines: Iterable[tuple[int, str]], name: str, id_prefix: str, split: str, label: str
) -> Iterator[Document]:
    if split == "paragraphs":  # paragraphs span lines: the whole file is the unit
        text = "\n".join(line for _, line in lines)
        yield from _split([Document(id_prefix, text, {"source": label}, name)], split)
        return
    docs = (
        Document(f"{id_prefix}:{n}", line.strip(), {"source": label, "line": n}, f"{name}:{n}")
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
    as_given = options.derived_ids == "as-given"
    base = Path(source) if as_given else Path(canonical_path(root))
    for path in files:
        # Prefixed with the directory, like txt ids: unique across several directories.
        rel = (base / path.relative_to(root)).as_posix()
        with open_source(str(path)) as stream:
            text = "\n".join(line for _, line in decoded_lines(stream, str(path)))
        doc = Document(rel, text.strip(), {"source": str(path) if as_given else rel}, str(path))
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
        yield _make_document(record, fields, options.id_field, f"{id_prefix}:{number}", where)


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
    repeated = sorted({column for column in header if header.count(column) > 1})
    if repeated:  # a dict of the row would silently keep only the last of them
        raise InputError(
            f"{name}:1: duplicate column {repeated[0]!r} in the header; give every column a distinct name"
        )
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
