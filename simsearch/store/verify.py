"""``verify``: is an index whole? Manifest, checksums, FAISS/SQLite agreement, model; and repair.

Repair never re-reads sources: the SQLite file holds every vector, so a missing, damaged or
disagreeing FAISS file is rebuilt from it and committed as a new generation. A damaged SQLite
file or manifest cannot be repaired that way; the report says to rebuild from the sources.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from simsearch.store.sql import select_in
from simsearch.errors import IndexNotFoundError, SimsearchError
from simsearch.store.fingerprint import fingerprint_fields, model_problem, recorded
from simsearch.store.index_types import rebuild_builder
from simsearch.store.manifest import (
    MANIFEST,
    Manifest,
    ModelIdentity,
    identity_mismatch,
    identity_of,
    read_manifest,
)
from simsearch.store.reader import check_file, connect_readonly
from simsearch.store.writer import StoreWriter
from simsearch.store.faiss_file import FaissFile, from_blobs
from simsearch.store.finite import nonfinite_rows, reencode_nonfinite

if TYPE_CHECKING:
    from simsearch.encode import Encoder

#: Loads an index's own encoder from its manifest (the store never builds one itself).
EncoderLoader = Callable[[Manifest], "Encoder"]
_SAMPLE = 256  # vectors compared between FAISS and SQLite (ids and counts are compared in full)


@dataclass(frozen=True)
class Check:
    """One verified property; ``repairable`` problems are fixed by ``verify --repair``."""

    name: str
    ok: bool
    detail: str
    repairable: bool = False


@dataclass
class VerifyReport:
    """All checks of one index; ``repaired`` lists the problems a repair fixed."""

    path: str
    checks: list[Check]
    repaired: list[Check] = field(default_factory=list)
    generation: int | None = None
    count: int | None = None

    @property
    def problems(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        name = Path(self.path).name
        fixed = (
            f"repaired {len(self.repaired)} problem(s), generation {self.generation}; "
            if self.repaired
            else ""
        )
        if self.ok:
            return (
                f"Index {name!r}: {fixed}ok ({self.count} documents, generation "
                f"{self.generation}, {len(self.checks)} checks passed)"
            )
        hint = (
            "run `simsearch verify --repair`"
            if all(p.repairable for p in self.problems)
            else "rebuild the index from its sources"
        )
        return f"Index {name!r}: {fixed}{len(self.problems)} problem(s) remain; {hint}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "generation": self.generation,
            "count": self.count,
            "checks": [asdict(c) for c in self.checks],
            "repaired": [asdict(c) for c in self.repaired],
        }


def verify_index(
    path: Path,
    *,
    encoder: Encoder | None = None,
    repair: bool = False,
    check_model: bool = True,
    load_encoder: EncoderLoader | None = None,
    record_fingerprint: bool = False,
) -> VerifyReport:
    """Check the index at ``path``; with ``repair``, re-encode stored vectors that are not finite
    (from their stored text, with the index's own model) and rebuild FAISS from the stored vectors.

    The model check uses ``encoder``, else ``load_encoder(manifest)`` (e.g.
    :func:`simsearch.index.load_encoder`, the way queries load it). ``record_fingerprint`` records
    the fingerprint of the model the index now loads, for an index built before fingerprints
    existed (only when every check passed).
    """
    if not os.path.isdir(path):
        raise IndexNotFoundError(
            f"index {path.name!r} not found in {path.parent}; run `simsearch list` to see the indexes there"
        )
    from simsearch.store.shards import is_sharded

    if is_sharded(path):
        from simsearch.store.shard_verify import verify_sharded

        return verify_sharded(
            path, encoder=encoder, repair=repair, check_model=check_model, load_encoder=load_encoder
        )
    report, encoder = _inspect(path, encoder, load_encoder, check_model)
    problems = report.problems
    if repair and problems and all(p.repairable for p in problems):
        _repair(path, encoder)
        report, _ = _inspect(path, encoder, load_encoder, check_model)
        report.repaired = problems
    if record_fingerprint and report.ok and recorded(read_manifest(path)) is None:
        if encoder is None:
            raise SimsearchError("--record-fingerprint needs the index's model, which was not checked")
        _record_fingerprint(path, encoder)
        report, _ = _inspect(path, encoder, load_encoder, check_model)
    return report


def _repair(path: Path, encoder: Encoder | None) -> None:
    """One new generation: non-finite vectors re-encoded, FAISS rebuilt from SQLite."""
    from simsearch.store.updates import _updated_fields

    with StoreWriter(path, update=True, rebuild=True, repair=True) as writer:
        assert writer.previous is not None and writer.db is not None
        if encoder is not None:  # (without one, non-finite vectors are not repairable)
            reencode_nonfinite(writer.db, writer.previous.dim, encoder)
        writer.commit(_updated_fields(writer.previous), rebuild_builder(writer.previous))


def _record_fingerprint(path: Path, encoder: Encoder) -> None:
    from simsearch.store.updates import _updated_fields

    with StoreWriter(path, update=True, rebuild=True) as writer:
        assert writer.previous is not None
        fields = _updated_fields(writer.previous)
        fields.update(fingerprint_fields(fields, _model_dir(encoder)))
        writer.commit(fields, rebuild_builder(writer.previous))


def _inspect(
    path: Path, encoder: Encoder | None, load_encoder: EncoderLoader | None, check_model: bool
) -> tuple[VerifyReport, Encoder | None]:
    report = VerifyReport(str(path), [])
    add = report.checks.append
    try:
        manifest = read_manifest(path)
    except SimsearchError as exc:
        add(Check("manifest", False, str(exc)))
        return report, encoder
    report.generation, report.count = manifest.generation, manifest.count
    add(
        Check(
            "manifest",
            True,
            f"format {manifest.format_version}, generation {manifest.generation}, {manifest.count} documents",
        )
    )
    files_ok = {}
    for role in ("sqlite", "faiss"):
        try:
            check_file(path, manifest.files[role], full=True)
            files_ok[role] = True
            add(Check(f"{role} checksum", True, manifest.files[role].name))
        except (SimsearchError, KeyError, TypeError) as exc:
            files_ok[role] = False
            add(Check(f"{role} checksum", False, str(exc), repairable=role == "faiss"))
    rowids = _check_sqlite(path, manifest, add) if files_ok["sqlite"] else None
    if rowids is not None:
        _check_lexical(path, manifest, add)
    bad = _nonfinite(path, manifest) if rowids is not None else []
    if files_ok["faiss"]:
        _check_faiss(path, manifest, rowids, add)
    stray = _stray_files(path, manifest)
    add(
        Check(
            "stray files",
            True,
            f"{len(stray)} left by interrupted writes (the next write removes them)" if stray else "none",
        )
    )
    model_ok = False
    if check_model:
        fingerprint_ok = _check_fingerprint(path, manifest, encoder, add)
        if fingerprint_ok:
            encoder = _check_model(manifest, encoder, load_encoder, add)
        else:
            add(
                Check(
                    "model",
                    False,
                    f"model {manifest.model!r} not loaded: its files are not the "
                    "build's (see the model fingerprint)",
                )
            )
        model_ok = encoder is not None and fingerprint_ok
    if rowids is not None:
        add(_finite_check(path, bad, model_ok))
    return report, encoder if model_ok else None


def _nonfinite(path: Path, manifest: Manifest) -> list[tuple[int, str]]:
    db = connect_readonly(path / manifest.files["sqlite"].name)
    try:
        return nonfinite_rows(db, manifest.dim)
    finally:
        db.close()


def _finite_check(path: Path, bad: list[tuple[int, str]], model_ok: bool) -> Check:
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


def _check_fingerprint(
    path: Path, manifest: Manifest, encoder: Encoder | None, add: Callable[[Check], None]
) -> bool:
    """The model files are those the index was built with (False: a mismatch)."""
    section = recorded(manifest)
    if section is None:
        add(
            Check(
                "model fingerprint",
                True,
                "no fingerprint recorded (index built before fingerprints); "
                f"`simsearch verify {path.name} --record-fingerprint` records one",
            )
        )
        return True
    if not section.get("model"):
        add(
            Check(
                "model fingerprint",
                True,
                "settings fingerprint matches; no model files were fingerprinted at build",
            )
        )
        return True
    directory = _model_dir(encoder) if encoder is not None else _model_dir(manifest)
    if directory is None:
        add(Check("model fingerprint", True, "settings fingerprint matches; model files not on disk"))
        return True
    problem = model_problem(manifest, directory)
    add(
        Check(
            "model fingerprint", problem is None, problem or f"{section['model'][:12]}... matches {directory}"
        )
    )
    return problem is None


def _model_dir(holder: Any) -> Path | None:
    """The model directory of an encoder or a manifest (None when there is none on disk)."""
    model_path = getattr(holder, "model_path", None)
    return Path(model_path) if model_path and Path(model_path).is_dir() else None


def _check_sqlite(path: Path, manifest: Manifest, add: Callable[[Check], None]) -> np.ndarray | None:
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


def _check_lexical(path: Path, manifest: Manifest, add: Callable[[Check], None]) -> None:
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


def _check_faiss(
    path: Path, manifest: Manifest, rowids: np.ndarray | None, add: Callable[[Check], None]
) -> None:
    try:
        faiss_file = FaissFile.read(path / manifest.files["faiss"].name)
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
    else:
        detail, ok = _compare_vectors(path, manifest, faiss_file, rowids)
    add(Check("faiss agrees with sqlite", ok, detail, repairable=True))


def faiss_ids(index: Any) -> np.ndarray | None:
    """The ids an ``IndexIDMap(2)`` maps to, or None for index types that keep them elsewhere."""
    if hasattr(index, "id_map"):
        import faiss

        return faiss.vector_to_array(index.id_map).astype(np.int64)
    return None


def _compare_vectors(
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


def _stray_files(path: Path, manifest: Manifest) -> list[str]:
    keep = {MANIFEST} | {entry.name for entry in manifest.files.values()}
    return sorted(
        f.name
        for f in path.iterdir()
        if f.name not in keep and (f.name.startswith(("docs-", "index-")) or f.suffix == ".tmp")
    )


def _check_model(
    manifest: Manifest,
    encoder: Encoder | None,
    load_encoder: EncoderLoader | None,
    add: Callable[[Check], None],
) -> Encoder | None:
    """The index's model loads (the way queries load it) and still writes into the index's space.

    The store builds no encoder: ``encoder`` (one checked at open) or ``load_encoder`` is given.
    """
    foreign = manifest.get("embedding")  # vectors from a LangChain embedding: no model of ours to load
    if isinstance(foreign, dict) and encoder is None:
        add(
            Check(
                "model",
                True,
                f"vectors from the {foreign.get('kind')} embedding "
                f"{foreign.get('class')!r} (dim {manifest.dim}); not loadable here",
            )
        )
        return None
    if encoder is None:
        if load_encoder is None:
            add(Check("model", False, "no encoder or model loader given: the model was not checked"))
            return None
        try:
            encoder = load_encoder(manifest)
        except SimsearchError as exc:
            add(Check("model", False, f"model {manifest.model!r} cannot be loaded: {exc}"))
            return None
    given = identity_of(encoder)
    problem = identity_mismatch(
        manifest.identity, ModelIdentity(manifest.model, given.pooling, given.dim, given.precision)
    )
    if problem:
        add(Check("model", False, f"model {manifest.model!r}: the index was {problem}"))
        return None
    add(Check("model", True, f"{manifest.model} ({encoder.pooling}, dim {encoder.dim}) loads"))
    return encoder
