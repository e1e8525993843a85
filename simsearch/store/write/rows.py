"""New documents into a store's SQLite file: ids checked unique, vectors finite, one statement."""

from __future__ import annotations

import sqlite3
from typing import Sequence

import numpy as np

from simsearch.errors import InputError
from simsearch.readers import Document
from simsearch.store.faiss_file import require_finite, to_blob
from simsearch.store.sql import select_in
from simsearch.store.write.updates import content_hash
from simsearch.validate import dumps


def insert_documents(db: sqlite3.Connection, docs: Sequence[Document], vectors: np.ndarray) -> None:
    """Insert new documents with their vectors; a duplicate id is an input error."""
    _check_unique(db, docs)
    require_finite(vectors, [d.where or repr(d.id) for d in docs])
    rows = [
        (d.id, d.text, dumps(d.metadata), content_hash(d.text), to_blob(v)) for d, v in zip(docs, vectors)
    ]
    db.executemany("INSERT INTO documents (id, text, metadata, hash, vector) VALUES (?, ?, ?, ?, ?)", rows)


def _check_unique(db: sqlite3.Connection, docs: Sequence[Document]) -> None:
    """Duplicate ids are an input error naming the second occurrence (before anything is written)."""
    seen: set[str] = set()
    stored: set[str] = set()
    ids = [d.id for d in docs]
    stored.update(r[0] for r in select_in(db, "SELECT id FROM documents WHERE id IN ({marks})", ids))
    for doc in docs:
        if doc.id in seen or doc.id in stored:
            raise InputError(f"{doc.where}: duplicate document id {doc.id!r}; ids must be unique")
        seen.add(doc.id)


def count_documents(db: sqlite3.Connection | None) -> int:
    """Documents stored in ``db`` (an open writer's connection)."""
    assert db is not None
    return int(db.execute("SELECT count(*) FROM documents").fetchone()[0])
