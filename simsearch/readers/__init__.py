"""Readers: text files, CSV/TSV, JSONL, Parquet, directories and stdin -> :class:`Document` streams.

Files are read as bytes line by line so that a bad byte or a malformed record is reported with
its file and line, and so that a huge input streams instead of being loaded whole; Parquet is
read in record batches for the same reason (needs the ``parquet`` extra: pyarrow).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

from simsearch.errors import InputError
from simsearch.readers.records import (
    FORMAT_OF_SUFFIX,
    Document,
    ReadOptions,
    read_jsonl,
    read_table,
    split_documents,
)
from simsearch.readers.splitting import SPLITTERS
from simsearch.readers.text_input import (
    decoded_lines,
    document_kind,
    open_source,
    read_ids,
    read_lines_from,
    read_queries,
    sniff,
    standard_input,
    unreadable_document,
)

# Re-exported: callers import these from here.
__all__ = [
    "DERIVED_IDS",
    "FORMATS",
    "SPLITS",
    "Document",
    "ReadOptions",
    "canonical_path",
    "decoded_lines",
    "open_source",
    "read_documents",
    "read_source_as",
    "read_ids",
    "read_lines_from",
    "read_queries",
    "standard_input",
]

FORMATS = ("auto", "txt", "csv", "tsv", "jsonl", "parquet")
SPLITS = ("none", *SPLITTERS)
# How ids are derived from a file's path: "resolved" (the same file gives the same ids however
# its path was spelled) or "as-given" (the path as typed: indexes built before the rule existed).
DERIVED_IDS = ("resolved", "as-given")
_DIR_SUFFIXES = (".txt", ".md")


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


def read_source_as(path: str, name: str, label: str, options: ReadOptions) -> Iterator[Document]:
    """The documents of the file or directory at ``path``, as a read of ``name`` in the process
    that resolved it gives them: positions name ``name``, derived ids start with ``label`` (that
    process's :func:`source_label`). A Ray read task on another node reads a source this way."""
    found = False
    for doc in _read_source(path, options, None, name=name, label=label):
        found = True
        yield doc
    if not found:
        raise InputError(f"{name}: {_why_empty(path)}; nothing to index")


def source_label(source: str, options: ReadOptions) -> str:
    """The path part of the ids derived for a file or directory ``source`` read here."""
    if options.derived_ids != "as-given" and Path(source).is_dir():
        return canonical_path(source)
    return _label(source, options)


def _display(source: str | Path) -> str:
    return "<stdin>" if str(source) == "-" else str(source)


def _why_empty(source: str) -> str:
    path = Path(source)
    if source != "-" and path.is_file() and path.stat().st_size == 0:
        return "empty file"
    if source == "-":
        return "no documents on standard input"
    return "no documents (only blank lines or empty texts)"


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


def _read_source(
    source: str,
    options: ReadOptions,
    stdin: IO[bytes] | None,
    *,
    name: str | None = None,
    label: str | None = None,
) -> Iterator[Document]:
    if source == "-":
        stream = stdin if stdin is not None else standard_input()
        fmt = "txt" if options.format == "auto" else options.format
        if fmt == "parquet":
            raise InputError("<stdin>: Parquet cannot be read from standard input; give the file's path")
        yield from _read_stream(stream, "<stdin>", "stdin", fmt, options)
        return
    path = Path(source)
    shown = source if name is None else name
    if path.is_dir():
        yield from _read_directory(path, shown, options, label)
        return
    if not path.exists():
        raise InputError(f"{shown}: no such file or directory")
    regular = path.is_file()  # else a FIFO, /dev/fd/N of a process substitution, a device
    kind = options.format if options.format != "auto" else FORMAT_OF_SUFFIX.get(path.suffix.lower())
    if kind is None and not regular:
        kind = "txt"  # like standard input
    if kind is None and document_kind(source):
        raise InputError(unreadable_document(source, str(document_kind(source))))
    if kind is None:
        raise InputError(
            f"{shown}: cannot tell the format from the suffix {path.suffix or '(none)'!r}; "
            "pass --format txt|csv|tsv|jsonl|parquet"
        )
    if kind == "parquet":
        from simsearch.readers.parquet import read_parquet  # pyarrow only when asked for

        yield from read_parquet(path, options, name=name)
        return
    with open_source(source) as stream:
        if regular:
            sniff(stream, shown)
        yield from _read_stream(stream, shown, label or _label(source, options), kind, options)


def _read_stream(
    stream: IO[bytes], name: str, id_prefix: str, fmt: str, options: ReadOptions
) -> Iterator[Document]:
    lines = decoded_lines(stream, name)
    if fmt == "txt":
        label = name if name == "<stdin>" else id_prefix
        yield from _split_txt(lines, name, id_prefix, options.split, label)
    elif fmt == "jsonl":
        yield from split_documents(read_jsonl(lines, name, id_prefix, options), options.split)
    else:
        delimiter = "," if fmt == "csv" else "\t"
        yield from split_documents(read_table(lines, name, id_prefix, delimiter, options), options.split)


def _split_txt(
    lines: Iterable[tuple[int, str]], name: str, id_prefix: str, split: str, label: str
) -> Iterator[Document]:
    if split == "paragraphs":  # paragraphs span lines: the whole file is the unit
        text = "\n".join(line for _, line in lines)
        yield from split_documents([Document(id_prefix, text, {"source": label}, name)], split)
        return
    docs = (
        Document(f"{id_prefix}:{n}", line.strip(), {"source": label, "line": n}, f"{name}:{n}")
        for n, line in lines
        if line.strip()
    )
    yield from split_documents(docs, "none" if split == "lines" else split)


def _read_directory(
    root: Path, source: str, options: ReadOptions, label: str | None = None
) -> Iterator[Document]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in _DIR_SUFFIXES)
    if not files:
        raise InputError(f"{source}: directory holds no .txt or .md files")
    as_given = options.derived_ids == "as-given"
    base = Path(label) if label is not None else Path(source) if as_given else Path(canonical_path(root))
    for path in files:
        # Prefixed with the directory, like txt ids: unique across several directories.
        rel = (base / path.relative_to(root)).as_posix()
        with open_source(str(path)) as stream:
            text = "\n".join(line for _, line in decoded_lines(stream, str(path)))
        doc = Document(rel, text.strip(), {"source": str(path) if as_given else rel}, str(path))
        yield from split_documents([doc], options.split)
