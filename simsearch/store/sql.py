"""The SQL idioms of the documents file, in one place.

SQLite limits the number of bound parameters in one statement, so ``IN (...)`` over an
unbounded list of ids or row ids runs in chunks; every such query, the content hash that
change detection compares and the chunking of document streams live here. Values are always
bound parameters: only the ``?`` marks are formatted into the statement.
"""

from __future__ import annotations

import hashlib
import sqlite3
from itertools import islice
from typing import Any, Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")

#: Keys bound per ``IN (...)`` statement: well under SQLite's limit on bound parameters.
CHUNK = 500


def parts(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``values`` in slices of at most ``size``."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Any iterable as lists of at most ``size`` items (memory stays flat on long streams)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def marks(count: int) -> str:
    """``?, ?, ...``: the placeholders of an ``IN (...)`` list of ``count`` values."""
    return ",".join("?" * count)


def select_in(
    db: sqlite3.Connection, statement: str, keys: Sequence[Any], extra: Sequence[Any] = ()
) -> Iterator[Any]:
    """Rows of ``statement`` (with ``{marks}`` where the ``IN`` list goes) for every key, in
    chunks; ``extra`` parameters are bound after each chunk's keys."""
    for part in parts(keys):
        yield from db.execute(statement.format(marks=marks(len(part))), [*part, *extra])


def execute_in(db: sqlite3.Connection, statement: str, keys: Sequence[Any]) -> None:
    """Run ``statement`` (an UPDATE or DELETE with ``{marks}``) over every key, in chunks."""
    for part in parts(keys):
        db.execute(statement.format(marks=marks(len(part))), list(part))


def content_hash(text: str) -> str:
    """The hash of a document's text that change detection compares (the ``hash`` column)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
