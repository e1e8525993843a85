"""``verify`` of one plain index directory (a shard too): manifest, checksums, FAISS/SQLite
agreement, model; and repair.

Repair never re-reads sources: the SQLite file holds every vector, so a missing, damaged or
disagreeing FAISS file is rebuilt from it and committed as a new generation. A damaged SQLite
file or manifest cannot be repaired that way; the report says to rebuild from the sources.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from simsearch.errors import IndexNotFoundError, SimsearchError
from simsearch.store.fingerprint import fingerprint_fields, recorded
from simsearch.store.verify.finite import reencode_nonfinite
from simsearch.store.index_types import rebuild_builder
from simsearch.store.manifest import Manifest, read_manifest
from simsearch.store.generation import check_file
from simsearch.store.verify.checks import (
    check_faiss,
    check_lexical,
    check_sqlite,
    finite_check,
    stored_nonfinite,
    stray_files,
)
from simsearch.store.verify.model import EncoderLoader, check_fingerprint, check_loaded_model, model_dir
from simsearch.store.verify.report import Check, VerifyReport
from simsearch.store.write.writer import StoreWriter

if TYPE_CHECKING:
    from simsearch.encode import Encoder


def verify_plain(
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
    from simsearch.store.write.updates import updated_fields

    with StoreWriter(path, update=True, rebuild=True, repair=True) as writer:
        assert writer.previous is not None and writer.db is not None
        if encoder is not None:  # (without one, non-finite vectors are not repairable)
            reencode_nonfinite(writer.db, writer.previous.dim, encoder)
        writer.commit(updated_fields(writer.previous), rebuild_builder(writer.previous))


def _record_fingerprint(path: Path, encoder: Encoder) -> None:
    from simsearch.store.write.updates import updated_fields

    with StoreWriter(path, update=True, rebuild=True) as writer:
        assert writer.previous is not None
        fields = updated_fields(writer.previous)
        fields.update(fingerprint_fields(fields, model_dir(encoder)))
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
    rowids = check_sqlite(path, manifest, add) if files_ok["sqlite"] else None
    if rowids is not None:
        check_lexical(path, manifest, add)
    bad = stored_nonfinite(path, manifest) if rowids is not None else []
    if files_ok["faiss"]:
        check_faiss(path, manifest, rowids, add)
    stray = stray_files(path, manifest)
    add(
        Check(
            "stray files",
            True,
            f"{len(stray)} left by interrupted writes (the next write removes them)" if stray else "none",
        )
    )
    model_ok = False
    if check_model:
        encoder = _check_model(path, manifest, encoder, load_encoder, add)
        model_ok = encoder is not None
    if rowids is not None:
        add(finite_check(path, bad, model_ok))
    return report, encoder if model_ok else None


def _check_model(
    path: Path,
    manifest: Manifest,
    encoder: Encoder | None,
    load_encoder: EncoderLoader | None,
    add: Callable[[Check], None],
) -> Encoder | None:
    """The model files are the build's, then the model loads into the index's space (None: not)."""
    if not check_fingerprint(path, manifest, encoder, add):
        add(
            Check(
                "model",
                False,
                f"model {manifest.model!r} not loaded: its files are not the build's (see the model fingerprint)",
            )
        )
        return None
    return check_loaded_model(manifest, encoder, load_encoder, add)
