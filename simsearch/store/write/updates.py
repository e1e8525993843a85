"""Living indexes: add (upsert by id), delete and compact, each committed as one new generation.

Every operation runs inside a :class:`~simsearch.store.write.writer.StoreWriter`: it starts from a copy of the
current SQLite file (read under the write lock), changes the copy, writes the FAISS file and
swaps the manifest. A failure or a kill at any point leaves the previous generation in place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from simsearch.store.lexical.analyzer import Analyzer
from simsearch.store import sql
from simsearch import __version__
from simsearch.errors import InputError, ModelError
from simsearch.readers import Document
from simsearch.store.index_types import rebuild_builder
from simsearch.store.manifest import Manifest, identity_mismatch
from simsearch.store.write.cuts import StoredCuts
from simsearch.store.write.writer import StoreWriter

if TYPE_CHECKING:
    from simsearch.encode import Encoder
from simsearch.store.faiss_file import require_finite, to_blob
from simsearch.store.fingerprint import recorded
from simsearch.validate import check_document, document_ids, dumps, unicode_problem

_CHUNK = 2048  # documents looked up, encoded and written per step: memory stays flat


@dataclass(frozen=True)
class AddStats:
    """What :meth:`Index.add` did. ``encoded`` counts the documents that went through the model."""

    added: int
    updated: int
    unchanged: int
    encoded: int
    truncated: int
    count: int
    seconds: float
    generation: int
    #: Stored documents that had been cut and were replaced (their count leaves the manifest's).
    truncated_removed: int = 0


@dataclass(frozen=True)
class DeleteStats:
    """What :meth:`Index.delete` did; ``unknown`` lists the ids the index did not hold."""

    deleted: int
    unknown: tuple[str, ...]
    count: int
    seconds: float
    generation: int
    #: Deleted documents that had been cut (their count leaves the manifest's ``truncated``).
    truncated_removed: int = 0


@dataclass(frozen=True)
class CompactStats:
    """Bytes on disk (SQLite + FAISS of the live generation) before and after compaction."""

    bytes_before: int
    bytes_after: int
    count: int
    seconds: float
    generation: int


content_hash = sql.content_hash  # re-exported: the hash change detection compares


def add_documents(
    path: Path,
    documents: Iterable[Document | str],
    identity: Manifest,
    encoder: Callable[[], Encoder],
    *,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> AddStats:
    """Upsert ``documents`` into the index at ``path``; see :meth:`Index.add`.

    ``identity`` is the manifest the caller opened (its model must still be the index's);
    ``encoder`` returns the index's encoder and is only called when something needs encoding.
    """
    started = time.perf_counter()
    counts = {"added": 0, "updated": 0, "unchanged": 0, "encoded": 0, "truncated": 0}
    seen: set[str] = set()
    with StoreWriter(path, update=True) as writer:
        assert writer.db is not None and writer.previous is not None
        check_same_model(writer.previous, identity, path.name)
        cuts = StoredCuts(writer.previous, encoder)
        for chunk in sql.batches(documents_of(documents), _CHUNK):
            for doc in chunk:
                if doc.id in seen:
                    raise InputError(
                        f"{doc.where or doc.id}: duplicate document id {doc.id!r} "
                        "in the input; ids must be unique"
                    )
                seen.add(doc.id)
            _upsert(writer, chunk, encoder, counts, batch_size, progress, cuts)
        if not seen:
            raise InputError("the input holds no documents (only empty lines or records?)")
        count, generation = writer.previous.count, writer.previous.generation
        if counts["added"] or counts["updated"]:
            fields = updated_fields(writer.previous, truncated=cuts.total(writer.db, counts["truncated"]))
            manifest = writer.commit(fields, rebuild_builder(writer.previous))
            count, generation = manifest.count, manifest.generation
    return AddStats(
        **counts,
        count=count,
        seconds=time.perf_counter() - started,
        generation=generation,
        truncated_removed=cuts.gone,
    )


def _upsert(
    writer: StoreWriter,
    docs: list[Document],
    encoder: Callable[[], Encoder],
    counts: dict[str, int],
    batch_size: int | None,
    progress: Callable[[int], None] | None,
    cuts: StoredCuts,
) -> None:
    """Sort one chunk into new / changed text / changed metadata / unchanged, and write it."""
    db = writer.db
    assert db is not None
    stored = {}
    for rowid, doc_id, digest, meta in sql.select_in(
        db, "SELECT rowid, id, hash, metadata FROM documents WHERE id IN ({marks})", [d.id for d in docs]
    ):
        stored[doc_id] = (rowid, digest, meta)
    to_encode: list[tuple[Document, int | None, str, str]] = []
    for doc in docs:
        digest, meta = content_hash(doc.text), dumps(doc.metadata)
        old = stored.get(doc.id)
        if old is None or old[1] != digest:
            to_encode.append((doc, None if old is None else old[0], digest, meta))
        elif old[2] != meta:  # same text, new metadata: no need to run the model
            db.execute("UPDATE documents SET metadata = ? WHERE rowid = ?", (meta, old[0]))
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    if not to_encode:
        return
    cuts.leaving(db, [rowid for _, rowid, *_ in to_encode if rowid is not None])  # texts replaced
    vectors, cut = encoder().encode_counting(
        [d.text for d, *_ in to_encode], batch_size=batch_size, progress=progress
    )
    require_finite(vectors, [d.where or repr(d.id) for d, *_ in to_encode])
    counts["encoded"] += len(to_encode)
    counts["truncated"] += cut
    for (doc, rowid, digest, meta), vector in zip(to_encode, vectors):
        if rowid is None:
            cursor = db.execute(
                "INSERT INTO documents (id, text, metadata, hash, vector) VALUES (?, ?, ?, ?, ?)",
                (doc.id, doc.text, meta, digest, to_blob(vector)),
            )
            assert cursor.lastrowid is not None  # an INSERT sets it
            writer.changed.add(cursor.lastrowid)
            counts["added"] += 1
        else:
            db.execute(
                "UPDATE documents SET text = ?, metadata = ?, hash = ?, vector = ? WHERE rowid = ?",
                (doc.text, meta, digest, to_blob(vector), rowid),
            )
            writer.changed.add(rowid)
            counts["updated"] += 1


def delete_documents(
    path: Path, ids: Iterable[str], encoder: Callable[[], Encoder] | None = None
) -> DeleteStats:
    """Delete documents by id; ids the index does not hold are reported, not an error.

    ``encoder`` (the index's) tells which deleted documents were cut, to keep the manifest's
    ``truncated`` count right; it is only loaded when the index holds cut documents.
    """
    started = time.perf_counter()
    wanted = list(dict.fromkeys(document_ids(ids)))
    if not wanted:
        raise InputError("no document ids given to delete")
    with StoreWriter(path, update=True) as writer:
        assert writer.db is not None and writer.previous is not None
        found: dict[str, int] = dict(
            sql.select_in(writer.db, "SELECT id, rowid FROM documents WHERE id IN ({marks})", wanted)
        )
        rowids = sorted(found.values())
        cuts = StoredCuts(writer.previous, encoder)
        cuts.leaving(writer.db, rowids)
        sql.execute_in(writer.db, "DELETE FROM documents WHERE rowid IN ({marks})", rowids)
        writer.changed.update(rowids)
        count, generation = writer.previous.count, writer.previous.generation
        if rowids:
            fields = updated_fields(writer.previous, truncated=cuts.total(writer.db, 0))
            manifest = writer.commit(fields, rebuild_builder(writer.previous))
            count, generation = manifest.count, manifest.generation
    unknown = tuple(i for i in wanted if i not in found)
    return DeleteStats(len(rowids), unknown, count, time.perf_counter() - started, generation, cuts.gone)


def compact_index(path: Path, encoder: Callable[[], Encoder] | None = None) -> CompactStats:
    """Rewrite the live generation: SQLite without free pages, FAISS rebuilt from the vectors.

    With ``encoder``, an index that counts cut documents has them counted again from the stored
    texts (older indexes counted the cut texts of every add, replaced and deleted ones included).
    """
    started = time.perf_counter()
    with StoreWriter(path, update=True, rebuild=True) as writer:
        assert writer.previous is not None and writer.db is not None
        before = sum(entry.size for entry in writer.previous.files.values())
        truncated = StoredCuts(writer.previous, encoder).recount(writer.db)
        writer.vacuum()
        manifest = writer.commit(
            updated_fields(writer.previous, truncated=truncated), rebuild_builder(writer.previous)
        )
    after = sum(entry.size for entry in manifest.files.values())
    return CompactStats(before, after, manifest.count, time.perf_counter() - started, manifest.generation)


def check_same_model(current: Manifest, opened: Manifest, name: str | None = None) -> None:
    """Refuse to write when the index was rebuilt with another model since it was opened
    (``name``: the index's directory, what the user typed; the manifest's name may be stale)."""
    problem = identity_mismatch(current.identity, opened.identity)
    if not problem and recorded(current) != recorded(opened):
        problem = "built again (its model fingerprint changed)"
    if problem:
        raise ModelError(f"index {name or current.name!r} is now {problem}; reopen the index")


def updated_fields(previous: Manifest, *, truncated: int | None = None) -> dict[str, Any]:
    """The previous manifest's keys (unknown ones too) for the next generation of a write;
    ``truncated`` is the new count of stored documents that were cut (None: unchanged)."""
    fields = {
        key: value for key, value in previous.items() if key not in ("files", "count", "generation", "faiss")
    }
    fields["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    fields["simsearch_version"] = __version__
    fields["truncated"] = previous.truncated if truncated is None else truncated
    return fields


def documents_of(items: Iterable[Document | str]) -> Iterator[Document]:
    """Plain strings get their content hash as id, so adding the same text twice is a no-op;
    blank texts are not documents (as in :meth:`Index.build`)."""
    for number, item in enumerate(items, 1):
        if not isinstance(item, Document):
            if unicode_problem(str(item)):  # before hashing: the hash needs UTF-8
                raise InputError(f"item {number}: text: {unicode_problem(str(item))}")
            item = Document(content_hash(str(item))[:16], str(item), {}, f"item {number}")
        check_document(item)
        if item.text.strip():
            yield item


def reindex_lexical(path: Path, analyzer: str | Analyzer | None = None) -> int:
    """(Re)build the lexical part of the index at ``path`` from its stored texts, as a new
    generation; an index built before simsearch had one gains it (FAISS is carried over).
    ``analyzer``: an :class:`~simsearch.store.lexical.analyzer.Analyzer`, or a choice for
    :func:`~simsearch.store.lexical.reindex_analyzer` (None keeps the index's kind)."""
    from simsearch.store.lexical import new_settings, reindex_analyzer, stored_sample

    with StoreWriter(path, update=True) as writer:
        assert writer.previous is not None and writer.db is not None
        db = writer.db
        if not isinstance(analyzer, Analyzer):
            analyzer = reindex_analyzer(writer.previous, analyzer, lambda: stored_sample(db))
        fields = {**updated_fields(writer.previous), "lexical": new_settings(analyzer)}
        writer.rebuild_lexical = True
        manifest = writer.commit(fields, rebuild_builder(writer.previous))
    return int(manifest["generation"])
