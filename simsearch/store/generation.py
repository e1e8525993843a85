"""One index directory on disk: a JSON manifest, a FAISS file and an SQLite file.

Layout of ``indexes/<name>/``::

    manifest.json        the commit point: format, model, pooling, dim, counts, files + checksums
    docs-<gen>.sqlite    ids, texts, metadata, content hashes and the float32 vectors themselves
    index-<gen>.faiss    FAISS index over the same vectors; FAISS ids are SQLite row ids. Where
                         FAISS would keep an exact copy of the vectors (flat, HNSW over flat
                         storage), the file leaves it out and opening refills it from SQLite
                         (:mod:`simsearch.store.faiss_vectors`): each vector is stored once

This module reads and checks them; :mod:`simsearch.store.write.writer` writes new generations atomically.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from simsearch.store.sql import select_in
from simsearch.errors import IndexCorruptError
from simsearch.store.faiss_file import FaissFile, from_blobs
from simsearch.store.files import file_sha256
from simsearch.store.manifest import (  # noqa: F401  (re-exported: read_manifest's old home)
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    Manifest,
    read_manifest,
    vectors_in_sqlite,
)
from simsearch.store.manifest_schema import FileEntry

SCHEMA = """
CREATE TABLE documents (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    hash TEXT NOT NULL,
    vector BLOB NOT NULL
);
"""


Row = tuple[str, str, dict[str, Any], "bytes | None"]  # id, text, metadata, vector blob (if asked)


def factory_of(manifest: Manifest) -> str:
    """The FAISS factory string an index was built with (older manifests: the exact one)."""
    return manifest.factory


class Store:
    """A committed index generation opened read-only: FAISS for search, SQLite for texts."""

    def __init__(self, path: Path, manifest: Manifest, faiss_file: FaissFile, db: sqlite3.Connection) -> None:
        self.path = path
        self.manifest = manifest
        self.faiss = faiss_file
        self.db = db
        self._ids: tuple[np.ndarray, list[str]] | None = None  # every row id and its id, once read

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open and validate; retries once if a writer swapped generations under our feet."""
        for attempt in range(3):
            manifest = read_manifest(path)
            try:
                return cls._open_generation(path, manifest)
            except IndexCorruptError:
                if attempt == 2 or read_manifest(path).generation == manifest.generation:
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _open_generation(cls, path: Path, manifest: Manifest) -> Store:
        files = manifest.files
        for role in ("faiss", "sqlite"):
            check_file(path, files[role], full=False)
        db = connect_readonly(path / files["sqlite"].name)
        try:
            count = db.execute("SELECT count(*) FROM documents").fetchone()[0]
            faiss_file = FaissFile.read(
                path / files["faiss"].name,
                manifest.ann.get("search_params"),
                db if vectors_in_sqlite(manifest) else None,
            )
        except sqlite3.DatabaseError as exc:
            db.close()
            raise IndexCorruptError(
                f"{path / files['sqlite'].name}: damaged SQLite file "
                f"({exc}); run `simsearch verify {path.name}` and rebuild the "
                "index from its sources"
            ) from None
        except BaseException:
            db.close()
            raise
        if not count == faiss_file.ntotal == manifest.count:
            db.close()
            raise IndexCorruptError(
                f"{path}: manifest says {manifest.count} documents, SQLite holds {count}, "
                f"FAISS {faiss_file.ntotal}; run `simsearch verify --repair`"
            )
        if faiss_file.dim != manifest.dim:
            db.close()
            raise IndexCorruptError(f"{path}: FAISS dim {faiss_file.dim} != manifest dim {manifest.dim}")
        return cls(path, manifest, faiss_file, db)

    def __len__(self) -> int:
        return self.manifest.count

    def fetch(self, rowids: Iterable[int]) -> dict[int, tuple[str, str, dict[str, Any]]]:
        """id, text and metadata of the given row ids (only those rows are read)."""
        wanted = sorted({int(r) for r in rowids})
        found: dict[int, tuple[str, str, dict[str, Any]]] = {}
        try:
            for rowid, doc_id, text, meta in select_in(
                self.db, "SELECT rowid, id, text, metadata FROM documents WHERE rowid IN ({marks})", wanted
            ):
                found[rowid] = (doc_id, text, json.loads(meta))
        except (sqlite3.DatabaseError, ValueError) as exc:
            # open() only checks sizes; damage deeper in the file surfaces here
            raise IndexCorruptError(
                f"{self.path}: damaged SQLite file ({exc}); run `simsearch verify` and rebuild the index"
            ) from None
        if len(found) != len(wanted):
            raise IndexCorruptError(
                f"{self.path}: FAISS and SQLite disagree (rows missing); run `simsearch verify --repair`"
            )
        return found

    def ids_of(self, rowids: Iterable[int]) -> dict[int, str]:
        """The document ids of some row ids (all held). Searches ask for the ids of every
        candidate (ties are broken by id), so one generation's ids are read once into memory."""
        if self._ids is None:
            try:
                rows = self.db.execute("SELECT rowid, id FROM documents ORDER BY rowid").fetchall()
            except sqlite3.DatabaseError as exc:
                raise IndexCorruptError(
                    f"{self.path}: damaged SQLite file ({exc}); run `simsearch verify` and rebuild the index"
                ) from None
            self._ids = (np.fromiter((r for r, _ in rows), np.int64, len(rows)), [i for _, i in rows])
        held, ids = self._ids
        wanted = np.unique(np.fromiter((int(r) for r in rowids), np.int64))
        where = np.minimum(np.searchsorted(held, wanted), max(len(held) - 1, 0))
        if len(wanted) and (not len(held) or not np.array_equal(held[where], wanted)):
            raise IndexCorruptError(
                f"{self.path}: FAISS and SQLite disagree (rows missing); run `simsearch verify --repair`"
            )
        return {int(r): ids[int(w)] for r, w in zip(wanted, where)}

    def vectors_of(self, rowids: np.ndarray) -> np.ndarray:
        """The stored float32 vectors of some row ids (all held), in that order: from the FAISS
        index where it keeps them uncompressed, else from SQLite (the exact copy)."""
        rowids = np.asarray(rowids, dtype=np.int64)
        found = self.faiss.exact_vectors(rowids) if len(rowids) else None
        if found is not None:
            return found
        values = rowids.tolist()
        statement = "SELECT rowid, vector FROM documents WHERE rowid IN ({marks})"
        blobs: dict[int, bytes] = dict(self._select(statement, sorted(set(values))))
        if len(blobs) != len(set(values)):
            raise IndexCorruptError(
                f"{self.path}: FAISS and SQLite disagree (rows missing); run `simsearch verify --repair`"
            )
        return (
            from_blobs([blobs[r] for r in values], self.manifest.dim)
            if values
            else np.zeros((0, self.manifest.dim), np.float32)
        )

    def _select(self, statement: str, keys: Sequence[Any]) -> list[Any]:
        try:
            return list(select_in(self.db, statement, keys))
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(
                f"{self.path}: damaged SQLite file ({exc}); run `simsearch verify` and rebuild the index"
            ) from None

    def ids(self) -> list[str]:
        """Every document id, in storage order."""
        return [row[0] for row in self.db.execute("SELECT id FROM documents ORDER BY rowid")]

    def rows_by_id(self, ids: Sequence[str], vectors: bool) -> dict[str, Row]:
        """The rows of those of ``ids`` this store holds, by id (vector blobs only if ``vectors``)."""
        column = "vector" if vectors else "NULL"
        statement = f"SELECT id, text, metadata, {column} FROM documents WHERE id IN ({{marks}})"
        return {
            doc_id: (doc_id, text, json.loads(meta), blob)
            for doc_id, text, meta, blob in select_in(self.db, statement, list(ids))
        }

    def close(self) -> None:
        self.db.close()


def connect_readonly(file: Path) -> sqlite3.Connection:
    """Committed generation files never change, so SQLite may skip locking (immutable=1)."""
    try:
        return sqlite3.connect(
            f"{file.resolve().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise IndexCorruptError(f"{file}: cannot open SQLite file ({exc})") from None


def check_file(
    path: Path, entry: FileEntry, *, full: bool, index: str | None = None, writing: bool = False
) -> None:
    """Existence and size always; the sha256 too when ``full`` (verify, and every write for the
    files it starts from). The advice fits the file: only the FAISS file is repairable."""
    file = path / entry.name
    name = index or path.name
    if entry.name.startswith("index-"):
        hint = f"run `simsearch verify {name} --repair` (it rebuilds the FAISS file from the stored vectors)"
    else:
        hint = (
            f"the SQLite file holds the documents and cannot be repaired: run `simsearch verify "
            f"{name}` for details and rebuild the index from its sources"
        )
    if writing:
        hint = "nothing was written; " + hint
    if not file.is_file():
        raise IndexCorruptError(f"{file} is missing; {hint}")
    size = file.stat().st_size
    if size != entry.size:
        raise IndexCorruptError(
            f"{file} has {size} bytes, the manifest says {entry.size} (truncated or replaced); {hint}"
        )
    if full and file_sha256(file) != entry.sha256:
        raise IndexCorruptError(f"{file}: checksum mismatch (file damaged); {hint}")
