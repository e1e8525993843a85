"""``verify`` on a sharded index: the top manifest, each shard as an index, and the routing.

Every shard is checked like a plain index (checksums, FAISS/SQLite agreement); on top of that
the top manifest must name each shard's current manifest by checksum, the counts must add up,
and every stored id must sit in the shard its hash routes it to (else ``add``/``delete`` would
miss it). ``--repair`` rebuilds the FAISS file of each shard whose problems are all repairable,
in new shard directories committed together.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from simsearch.errors import SimsearchError
from simsearch.store.manifest import read_manifest
from simsearch.store.generation import connect_readonly
from simsearch.store.write.sharded import ShardTransaction
from simsearch.store.shards import check_part, read_top_manifest, shard_of
from simsearch.store.verify.model import EncoderLoader
from simsearch.store.verify.plain import verify_plain
from simsearch.store.verify.report import Check, VerifyReport
from simsearch.store.verify.model import check_loaded_model

if TYPE_CHECKING:
    from simsearch.encode import Encoder


def verify_sharded(
    path: Path,
    *,
    encoder: Encoder | None = None,
    repair: bool = False,
    check_model: bool = True,
    load_encoder: EncoderLoader | None = None,
) -> VerifyReport:
    """Check the sharded index at ``path``; with ``repair``, rebuild damaged shards' FAISS files."""
    report, encoder, fixable = _inspect(path, encoder, check_model, load_encoder)
    problems = report.problems
    if repair and problems and all(p.repairable for p in problems) and fixable:
        with ShardTransaction(path) as txn:
            for shard in fixable:
                with txn.in_shard(shard):
                    verify_plain(txn.fork(shard), repair=True, check_model=False)
            txn.commit()
        report, _, _ = _inspect(path, encoder, check_model, load_encoder)
        report.repaired = problems
    return report


def _inspect(
    path: Path, encoder: Encoder | None, check_model: bool, load_encoder: EncoderLoader | None
) -> tuple[VerifyReport, Encoder | None, list[int]]:
    report = VerifyReport(str(path), [])
    add = report.checks.append
    try:
        manifest = read_top_manifest(path)
    except SimsearchError as exc:
        add(Check("manifest", False, str(exc)))
        return report, encoder, []
    parts = manifest["shards"]["parts"]
    report.generation, report.count = manifest["generation"], manifest["count"]
    add(
        Check(
            "manifest",
            True,
            f"sharded, {len(parts)} shards, generation {manifest['generation']}, "
            f"{manifest['count']} documents",
        )
    )
    fixable, total = [], 0
    for number, part in enumerate(parts):
        label = f"shard {number}"
        try:
            check_part(path, part)
        except SimsearchError as exc:
            add(Check(f"{label} manifest", False, str(exc)))
            continue
        sub = verify_plain(path / part["dir"], check_model=False)
        for check in sub.checks:
            add(Check(f"{label} {check.name}", check.ok, check.detail, check.repairable))
        if sub.problems and all(p.repairable for p in sub.problems):
            fixable.append(number)
        total += int(sub.count or 0)
        add(
            Check(
                f"{label} count",
                sub.count == part["count"],
                f"top manifest {part['count']}, shard {sub.count}",
            )
        )
        _check_routing(path / part["dir"], number, len(parts), label, add)
    add(Check("count", total == manifest["count"], f"top manifest {manifest['count']}, shards {total}"))
    if check_model:
        try:
            identity = read_manifest(path / parts[0]["dir"]).replace(name=manifest.get("name", path.name))
        except SimsearchError as exc:
            add(Check("model", False, f"no readable shard manifest to check the model against ({exc})"))
        else:
            encoder = check_loaded_model(identity, encoder, load_encoder, add)
    return report, encoder, fixable


def _check_routing(part: Path, number: int, shards: int, label: str, add: Callable[[Check], None]) -> None:
    """Every id in the shard its hash names; checked in full (ids only, no texts or vectors)."""
    try:
        db = connect_readonly(part / read_manifest(part).files["sqlite"].name)
        try:
            misplaced = sum(
                1
                for (doc_id,) in db.execute("SELECT id FROM documents")
                if shard_of(doc_id, shards) != number
            )
        finally:
            db.close()
    except (SimsearchError, sqlite3.DatabaseError) as exc:
        add(Check(f"{label} routing", False, f"ids unreadable ({exc})"))
        return
    add(
        Check(
            f"{label} routing",
            not misplaced,
            f"{misplaced} ids stored in the wrong shard" if misplaced else "every id in its shard",
        )
    )
