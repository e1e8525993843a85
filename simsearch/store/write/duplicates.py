"""Stopping an add that would store texts a second time under new ids.

After ``simsearch build corpus.jsonl --id-field id``, ``simsearch add NAME corpus.jsonl`` without
``--id-field`` derives ids from file positions (``corpus.jsonl:1``...), which match none of the
index's ids, so every document would be added again and every hit would show up twice; a renamed
copy of a text file does the same. The check is cheap: it looks only at the first documents of
the add, with one read of the stored ids and text hashes (no lock: it only reads).
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

from simsearch.errors import InputError
from simsearch.readers import Document
from simsearch.store.manifest import read_manifest
from simsearch.store.generation import connect_readonly
from simsearch.store.shards import is_sharded, read_top_manifest
from simsearch.store.sql import content_hash

SAMPLE = 64  # documents looked at; a copied source repeats stored texts from its first line on


def refuse_copies(
    path: Path, documents: Iterable[Document], *, name: str | None = None
) -> Iterator[Document]:
    """``documents`` unchanged, after checking their first :data:`SAMPLE`: if at least half of them
    have ids the index does not hold but texts it already stores under other ids, raise
    :class:`InputError` naming ``--id-field`` and ``--allow-duplicates``.

    The check runs at once (not when the result is first iterated)."""
    stream = iter(documents)
    sample = list(itertools.islice(stream, SAMPLE))
    copies = copied(path, sample)
    if sample and len(copies) * 2 >= len(sample):
        doc, stored = copies[0]
        raise InputError(
            f"{len(copies)} of the first {len(sample)} documents repeat texts index "
            f"{name or path.name!r} already holds under other ids ({doc.where or doc.id} is stored as "
            f"{stored!r}): adding them would store every text twice. Pass --id-field with the field "
            "holding the ids the index was built with, or --allow-duplicates to add them anyway"
        )
    return itertools.chain(sample, stream)


def copied(path: Path, docs: list[Document]) -> list[tuple[Document, str]]:
    """Each document whose id the index lacks and whose text it stores under another id, with
    that id."""
    if not docs:
        return []
    ids: set[str] = set()
    by_hash: dict[str, str] = {}
    wanted_ids = [d.id for d in docs]
    wanted_hashes = list({content_hash(d.text) for d in docs})
    for file in _sqlite_files(path):
        with contextlib.closing(connect_readonly(file)) as db:
            ids.update(_column(db, "id", wanted_ids))
            marks = ", ".join("?" * len(wanted_hashes))
            for doc_id, digest in db.execute(
                f"SELECT id, hash FROM documents WHERE hash IN ({marks})", wanted_hashes
            ):
                by_hash.setdefault(digest, doc_id)
    found = []
    for doc in docs:
        stored = by_hash.get(content_hash(doc.text))
        if doc.id not in ids and stored is not None and stored != doc.id:
            found.append((doc, stored))
    return found


def _column(db: sqlite3.Connection, column: str, values: list[str]) -> list[str]:
    marks = ", ".join("?" * len(values))
    return [
        row[0] for row in db.execute(f"SELECT {column} FROM documents WHERE {column} IN ({marks})", values)
    ]


def _sqlite_files(path: Path) -> list[Path]:
    """The documents file of a plain index, or of every shard of a sharded one."""
    if is_sharded(path):
        dirs = [path / part["dir"] for part in read_top_manifest(path)["shards"]["parts"]]
    else:
        dirs = [path]
    return [directory / read_manifest(directory).files["sqlite"].name for directory in dirs]
