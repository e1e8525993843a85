"""Stored vectors must be finite: finding the ones that are not, and re-encoding them (repair).

A NaN or infinite vector scores NaN against every query and, in an exact index, sorts first;
writers refuse them (:func:`simsearch.store.faiss_file.require_finite`), but an index written by
an older version may hold some. ``verify`` finds them and ``verify --repair`` re-encodes them from
their stored text with the index's own model.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import numpy as np

from simsearch.store.sql import select_in
from simsearch.store.faiss_file import from_blobs, require_finite, to_blob

if TYPE_CHECKING:
    from simsearch.encode import Encoder


def nonfinite_rows(db: sqlite3.Connection, dim: int) -> list[tuple[int, str]]:
    """(rowid, id) of every stored vector holding NaN or infinity (one pass over SQLite)."""
    bad: list[tuple[int, str]] = []
    cursor = db.execute("SELECT rowid, id, vector FROM documents ORDER BY rowid")
    while rows := cursor.fetchmany(4096):
        vectors = from_blobs([r[2] for r in rows], dim)
        for index in np.flatnonzero(~np.isfinite(vectors).all(axis=1)):
            bad.append((int(rows[index][0]), str(rows[index][1])))
    return bad


def reencode_nonfinite(db: sqlite3.Connection, dim: int, encoder: Encoder) -> int:
    """Replace each non-finite stored vector by its text's vector from ``encoder``; the count."""
    bad = nonfinite_rows(db, dim)
    for start in range(0, len(bad), 256):
        part = bad[start : start + 256]
        texts = dict(
            select_in(
                db, "SELECT rowid, text FROM documents WHERE rowid IN ({marks})", [rowid for rowid, _ in part]
            )
        )
        vectors = encoder.encode([texts[rowid] for rowid, _ in part])
        require_finite(vectors, [f"document {doc_id!r}" for _, doc_id in part])
        db.executemany(
            "UPDATE documents SET vector = ? WHERE rowid = ?",
            [(to_blob(v), rowid) for v, (rowid, _) in zip(vectors, part)],
        )
    return len(bad)
