"""The data checks of ``verify``: SQLite content, the lexical table, FAISS against SQLite, finite
vectors, stray files. Each adds :class:`Check` results; none loads a model.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable

import numpy as np

from simsearch.errors import IndexCorruptError, SimsearchError
from simsearch.store.faiss_file import FaissFile, from_blobs
from simsearch.store.verify.finite import nonfinite_rows
from simsearch.store.manifest import MANIFEST, Manifest, vectors_in_sqlite
from simsearch.store.generation import connect_readonly
from simsearch.store.sql import select_in
from simsearch.store.verify.report import Check

_SAMPLE = 256  # vectors compared between FAISS and SQLite (ids and counts are compared in full)


def check_sqlite(path: Path, manifest: Manifest, add: Callable[[Check], None]) -> np.ndarray | None:
    file = path / manifest.files["sqlite"].name
    try:
        db = connect_readonly(file)
        try:
            result = db.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise sqlite3.DatabaseError(result)
            rowids = np.fromiter(
                (r[0] for r in db.execute("SELECT rowid FROM documents ORDER BY rowid")), dtype=np.int64
            )
            bad = db.execute(
                "SELECT count(*) FROM documents WHERE length(vector) != ?", (4 * manifest.dim,)
            ).fetchone()[0]
        finally:
            db.close()
    except (sqlite3.DatabaseError, SimsearchError) as exc:
        add(Check("sqlite content", False, f"{file}: damaged SQLite file ({exc})"))
        return None
    if bad:
        add(Check("sqlite content", False, f"{file}: {bad} stored vectors are not {manifest.dim}-dim"))
        return None
    add(Check("sqlite content", True, f"{len(rowids)} documents"))
    add(
        Check(
            "count",
            len(rowids) == manifest.count,
            f"manifest {manifest.count}, SQLite {len(rowids)}",
            repairable=True,
        )
    )
    return rowids


def check_lexical(path: Path, manifest: Manifest, add: Callable[[Check], None]) -> None:
    """The lexical table (when the index has one) holds exactly the documents, tokens up to date."""
    from simsearch.store import lexical

    try:
        analyzer = lexical.analyzer_of(manifest)
    except SimsearchError as exc:
        add(Check("lexical agrees with sqlite", False, str(exc)))
        return
    if analyzer is None:
        add(Check("lexical", True, "no lexical part (dense only; `simsearch reindex-lexical` adds one)"))
        return
    db = connect_readonly(path / manifest.files["sqlite"].name)
    try:
        problem = lexical.disagreement(db, analyzer)
    except sqlite3.DatabaseError as exc:
        problem = f"lexical table unreadable ({exc})"
    finally:
        db.close()
    add(
        Check(
            "lexical agrees with sqlite",
            problem is None,
            problem or "every document indexed",
            repairable=True,
        )
    )


def check_faiss(
    path: Path, manifest: Manifest, rowids: np.ndarray | None, add: Callable[[Check], None]
) -> None:
    if rowids is None and vectors_in_sqlite(manifest):  # its vectors are in the unreadable file
        add(Check("faiss agrees with sqlite", False, "SQLite unreadable, nothing to compare"))
        return
    try:
        faiss_file = _read_faiss(path, manifest)
    except SimsearchError as exc:
        add(Check("faiss agrees with sqlite", False, str(exc), repairable=True))
        return
    if faiss_file.dim != manifest.dim:
        add(
            Check(
                "faiss agrees with sqlite",
                False,
                f"FAISS dim {faiss_file.dim}, manifest {manifest.dim}",
                repairable=True,
            )
        )
        return
    if rowids is None:
        add(Check("faiss agrees with sqlite", False, "SQLite unreadable, nothing to compare"))
        return
    ids = faiss_ids(faiss_file.index)
    if faiss_file.ntotal != len(rowids):
        detail, ok = f"FAISS holds {faiss_file.ntotal} vectors, SQLite {len(rowids)} documents", False
    elif ids is not None and not np.array_equal(np.sort(ids), rowids):
        detail, ok = f"{len(np.setxor1d(ids, rowids))} ids in only one of FAISS and SQLite", False
    elif vectors_in_sqlite(manifest):  # FAISS searches SQLite's own vectors: the ids are the check
        detail, ok = f"{len(rowids)} ids agree (the vectors are SQLite's, read into FAISS)", True
    else:
        detail, ok = compare_vectors(path, manifest, faiss_file, rowids)
    add(Check("faiss agrees with sqlite", ok, detail, repairable=True))


def _read_faiss(path: Path, manifest: Manifest) -> FaissFile:
    """The FAISS file as a search opens it: with the vectors SQLite keeps for it put back."""
    file = path / manifest.files["faiss"].name
    if not vectors_in_sqlite(manifest):
        return FaissFile.read(file)
    db = connect_readonly(path / manifest.files["sqlite"].name)
    try:
        return FaissFile.read(file, vectors=db)
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(
            f"{path / manifest.files['sqlite'].name}: damaged SQLite file ({exc})"
        ) from None
    finally:
        db.close()


def faiss_ids(index: Any) -> np.ndarray | None:
    """The ids an ``IndexIDMap(2)`` maps to, or None for index types that keep them elsewhere."""
    if hasattr(index, "id_map"):
        import faiss

        return faiss.vector_to_array(index.id_map).astype(np.int64)
    return None


def compare_vectors(
    path: Path, manifest: Manifest, faiss_file: FaissFile, rowids: np.ndarray
) -> tuple[str, bool]:
    """A sample of FAISS vectors must match the stored ones (cosine >= 0.99: fp16 and SQ8 pass).

    Product quantisation reconstructs too coarsely for that test; ids and counts still count.
    """
    if "PQ" in manifest.factory:
        return f"{len(rowids)} ids and counts agree", True
    sample = (
        rowids[np.linspace(0, len(rowids) - 1, min(_SAMPLE, len(rowids))).astype(int)]
        if len(rowids)
        else rowids
    )
    db = connect_readonly(path / manifest.files["sqlite"].name)
    try:
        rows = list(
            select_in(
                db, "SELECT rowid, vector FROM documents WHERE rowid IN ({marks})", [int(r) for r in sample]
            )
        )
    finally:
        db.close()
    try:
        for rowid, blob in rows:
            stored = from_blobs([blob], manifest.dim)[0]
            # unit vectors: distance <= 0.14 is cosine >= 0.99, and a scaled or NaN vector fails
            if not float(np.linalg.norm(faiss_file.index.reconstruct(int(rowid)) - stored)) <= 0.14:
                return f"row {rowid}: the FAISS vector differs from the stored one", False
    except RuntimeError:  # index types that cannot reconstruct: ids and counts were compared
        return f"{len(rowids)} ids and counts agree", True
    return f"{len(rowids)} ids agree, {len(rows)} sampled vectors match", True


def stored_nonfinite(path: Path, manifest: Manifest) -> list[tuple[int, str]]:
    db = connect_readonly(path / manifest.files["sqlite"].name)
    try:
        return nonfinite_rows(db, manifest.dim)
    finally:
        db.close()


def finite_check(path: Path, bad: list[tuple[int, str]], model_ok: bool) -> Check:
    """Stored vectors hold no NaN or infinity; repairable only with the index's own model."""
    if not bad:
        return Check("stored vectors finite", True, "no NaN or infinity")
    shown = ", ".join(repr(doc_id) for _, doc_id in bad[:5]) + (", ..." if len(bad) > 5 else "")
    detail = f"{len(bad)} stored vectors hold NaN or infinity (documents {shown})"
    if model_ok:
        return Check(
            "stored vectors finite",
            False,
            detail + "; `simsearch verify --repair` re-encodes them from their stored text",
            repairable=True,
        )
    return Check(
        "stored vectors finite",
        False,
        detail + f"; the index's model is not available to re-encode them: delete those documents "
        f"(`simsearch delete {path.name} ID...`) and add them again, or rebuild the index",
    )


def stray_files(path: Path, manifest: Manifest) -> list[str]:
    keep = {MANIFEST} | {entry.name for entry in manifest.files.values()}
    return sorted(
        f.name
        for f in path.iterdir()
        if f.name not in keep and (f.name.startswith(("docs-", "index-")) or f.suffix == ".tmp")
    )
