"""Bytes in, text lines out: files, FIFOs and standard input opened for reading, binary files
named up front, UTF-8 decoded line by line (an optional BOM, CRLF or LF) with every bad byte
reported by file and line. Used by the readers and by the CLI's query and id files.
"""

from __future__ import annotations

import sys
from pathlib import PurePath
from typing import IO, Callable, Iterator

from simsearch.errors import InputError


def standard_input() -> IO[bytes]:
    """The process's standard input as bytes, or a clear error when it is closed."""
    stream = sys.stdin
    if stream is None or stream.closed or not hasattr(stream, "buffer"):
        raise InputError("<stdin>: standard input is closed; pipe the input in, or give a file instead of -")
    return stream.buffer


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


def sniff(stream: IO[bytes], name: str) -> None:
    """Name a binary file as such up front, rather than by the first odd byte of some line."""
    try:
        head = stream.read(8192)
        stream.seek(0)
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from None
    kind = document_kind(name, head)
    if kind:
        raise InputError(unreadable_document(name, kind))
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        line = head[: head.index(b"\x00")].count(b"\n") + 1
        raise InputError(
            f"{name}:{line}: contains NUL bytes, looks like a binary file; give a UTF-8 text file"
        )


# Office and print formats people point a build at; simsearch reads plain text only.
_DOCUMENT_SUFFIXES = {
    ".pdf": "PDF",
    ".doc": "Word",
    ".docx": "Word",
    ".odt": "OpenDocument",
    ".rtf": "RTF",
    ".epub": "EPUB",
    ".pptx": "PowerPoint",
    ".xlsx": "Excel",
}


def document_kind(name: str, head: bytes = b"") -> str | None:
    """``"PDF"``, ``"Word"``... for a file of a document format (by its first bytes or its suffix)."""
    if head.startswith(b"%PDF-"):
        return "PDF"
    return _DOCUMENT_SUFFIXES.get(PurePath(name).suffix.lower())


def unreadable_document(name: str, kind: str) -> str:
    """What to do with a PDF, Word, ... file: convert it to text (simsearch does not parse them)."""
    example = f" (for example `pdftotext {name} out.txt`)" if kind == "PDF" else ""
    return (
        f"{name}: {kind} files are not read (simsearch reads plain text, CSV, JSON lines and "
        f"Parquet); convert it to a UTF-8 text file first{example} and give that file"
    )


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
