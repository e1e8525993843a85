"""What a commit derives from the staged rows: the lexical table brought in step, and the FAISS
index (the previous one with the changed rows swapped, or rebuilt from every stored vector).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Collection, Mapping

from simsearch.errors import IndexCorruptError
from simsearch.store import lexical
from simsearch.store.faiss_file import FaissFile, apply_changes
from simsearch.store.index_types import Builder, keeps_kind
from simsearch.store.generation import connect_readonly
from simsearch.store.manifest import Manifest, vectors_in_sqlite


def sync_lexical(
    db: sqlite3.Connection,
    manifest: Mapping[str, Any],
    previous: Manifest | None,
    changed: Collection[int],
    *,
    full: bool,
) -> None:
    """Bring the lexical table (same staged file) in step with the documents being committed:
    the ``changed`` rows only when the previous generation's table is carried over, else all
    (always with ``full``)."""
    analyzer = lexical.analyzer_of(manifest)
    if analyzer is None:
        return  # an index without a lexical part (older ones) stays dense-only
    carried = (
        not full
        and previous is not None
        and lexical.has_table(db)
        and lexical.lexical_settings(previous) == lexical.lexical_settings(manifest)
    )
    if carried:
        lexical.update(db, analyzer, changed)
    else:
        lexical.rebuild(db, analyzer)


def faiss_for_commit(
    db: sqlite3.Connection,
    path: Path,
    previous: Manifest | None,
    changed: Collection[int],
    dim: int,
    builder: Builder,
    count: int,
    *,
    rebuild: bool,
) -> tuple[FaissFile, dict[str, Any]]:
    """The previous FAISS index with the changed rows swapped, or a rebuild from SQLite.

    Incremental is the cheaper path for small changes; index types that cannot remove
    vectors (HNSW) and any disagreement fall back to rebuilding from the stored vectors.
    The previous file must match its checksum: a damaged one would otherwise be carried
    into the new generation under a fresh, valid checksum.
    """
    if not rebuild and previous is not None and keeps_kind(previous, count):
        try:
            old = previous_faiss(path, previous)
            if old is not None and old.ntotal == previous.count and old.dim == dim:
                updated = apply_changes(old, db, sorted(changed), dim)
                if updated.ntotal == count:
                    kept: dict[str, Any] = {k: previous[k] for k in ("index_type", "ann") if k in previous}
                    return updated, kept
        except (IndexCorruptError, RuntimeError, OSError, sqlite3.Error):
            pass  # fall through to a full rebuild, which is always correct
    return builder(db, dim)


def previous_faiss(path: Path, previous: Manifest) -> FaissFile | None:
    """The previous generation's FAISS index, its vectors refilled from the previous generation's
    SQLite file where they are kept there (that file is intact: the writer checked it)."""
    entry = previous.files["faiss"]
    if not vectors_in_sqlite(previous):
        return FaissFile.read_checked(path / entry.name, entry.sha256)
    db = connect_readonly(path / previous.files["sqlite"].name)
    try:
        return FaissFile.read_checked(path / entry.name, entry.sha256, db)
    finally:
        db.close()
