"""``verify``: is an index whole? Manifest, checksums, FAISS/SQLite agreement, model; and repair.

Repair never re-reads sources: the SQLite file holds every vector, so a missing, damaged or
disagreeing FAISS file is rebuilt from it and committed as a new generation. A damaged SQLite
file or manifest cannot be repaired that way; the report says to rebuild from the sources.
:func:`verify_index` is the one entry, plain or sharded (:mod:`simsearch.store.verify.plain`,
:mod:`simsearch.store.verify.sharded`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from simsearch.store.verify.checks import faiss_ids
from simsearch.store.verify.model import EncoderLoader
from simsearch.store.verify.report import Check, VerifyReport

if TYPE_CHECKING:
    from simsearch.encode import Encoder

__all__ = ["Check", "EncoderLoader", "VerifyReport", "faiss_ids", "verify_index"]


def verify_index(
    path: Path,
    *,
    encoder: Encoder | None = None,
    repair: bool = False,
    check_model: bool = True,
    load_encoder: EncoderLoader | None = None,
    record_fingerprint: bool = False,
) -> VerifyReport:
    """Check the index at ``path`` (plain or sharded); ``repair`` rebuilds what the stored vectors
    can rebuild. See :func:`simsearch.store.verify.plain.verify_plain` for the options."""
    from simsearch.store.shards import is_sharded

    if is_sharded(path):
        from simsearch.store.verify.sharded import verify_sharded

        return verify_sharded(
            path, encoder=encoder, repair=repair, check_model=check_model, load_encoder=load_encoder
        )
    from simsearch.store.verify.plain import verify_plain

    return verify_plain(
        path,
        encoder=encoder,
        repair=repair,
        check_model=check_model,
        load_encoder=load_encoder,
        record_fingerprint=record_fingerprint,
    )
