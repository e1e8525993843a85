"""Writing an index: stage a new generation, then commit it with one atomic manifest swap.

Committed generation files are never modified, and nothing of the previous index is touched
before the new one is committed. A write stages new files under a generation number no file in
the directory has used, then atomically replaces ``manifest.json`` (or, for a new index, renames a
staged directory into place), so a process killed at any moment leaves the old index or the new
one, never a mix; readers that already opened the old files keep reading them. A write that fails
(bad input, a full or read-only disk) removes exactly what it staged. The staged files
themselves (staging directory, generation number, sealing, removal) are
:mod:`simsearch.store.write.staging`'s; this module decides when each step happens.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any, Iterator, Mapping

from simsearch.errors import IndexCorruptError, IndexExistsError, IndexNotFoundError, StoreWriteError
from simsearch.store.write.derive import faiss_for_commit, sync_lexical
from simsearch.store.files import describe_os_error, disk_hint, fsync_dir, stage_json
from simsearch.store.index_types import Builder
from simsearch.store.locking import write_lock
from simsearch.store.manifest import FORMAT, MANIFEST, VECTORS_KEY, Manifest, format_version_of, read_manifest
from simsearch.store.generation import SCHEMA, check_file
from simsearch.store.write.staging import discard, new_staging_dir, next_generation, rename_into_place, seal
from simsearch.store.write.sweep import remove_stale_files, remove_stale_staging

# Re-exported: the sweeping of stale files lives in simsearch.store.write.sweep.
__all__ = ["StoreWriter", "remove_stale_files", "remove_stale_staging"]

#: SQLite page size of new files (and of compacted ones). A document's row (its 1,536-byte vector
#: blob, text, id, hash) is ~1.7 KB: a 4 KiB page holds two and leaves ~20% of the file empty;
#: a 16 KiB page holds nine (measured on 20k real sentences: 2,194 -> 1,969 bytes per document).
PAGE_SIZE = 16384


class StoreWriter:
    """Stages a new generation of an index and commits it atomically.

    Use as a context manager: rows go in through :attr:`db`, :meth:`commit` writes the FAISS
    file, fsyncs and swaps the manifest; leaving the block without committing (an error,
    Ctrl-C) removes what was staged. With ``update=True`` (add, delete, compact, repair) the
    writer starts from a copy of the *current* generation's SQLite file, read under the lock so
    that two writers never lose each other's changes, after checking the checksums of the files
    it starts from (``repair=True``: the SQLite file only, the FAISS file being what is repaired);
    :attr:`changed` collects the row ids whose vectors were removed or replaced so that
    :meth:`commit` can update FAISS incrementally, and ``rebuild=True`` builds the FAISS file
    from every stored vector instead.
    """

    def __init__(
        self,
        path: Path,
        *,
        force: bool = False,
        update: bool = False,
        rebuild: bool = False,
        repair: bool = False,
    ) -> None:
        self.path = path
        self.force = force
        self.update = update
        self.repair = repair
        self.rebuild = rebuild or not update
        self._locks = contextlib.ExitStack()
        self._staging: Path | None = None
        self.db: sqlite3.Connection | None = None
        self.previous: Manifest | None = None
        self.changed: set[int] = set()
        self.rebuild_lexical = False  # set to rebuild the lexical table in full (reindex-lexical)

    def __enter__(self) -> StoreWriter:
        if self.update and not (self.path / MANIFEST).is_file():
            # checked before the lock so that a typo creates nothing on disk
            raise IndexNotFoundError(
                f"index {self.path.name!r} not found in {self.path.parent}; "
                "run `simsearch list` to see the indexes there"
            )
        try:
            with self._disk_errors():
                self._prepare()
        except BaseException:
            self._abort()
            self._locks.close()
            raise
        return self

    def _prepare(self) -> None:
        base = None
        if self.update:
            self._locks.enter_context(write_lock(self.path))
            # an update never touches a damaged or newer-format index: read_manifest raises
            self.previous = read_manifest(self.path)
            self._check_carried(self.previous)
            base = self.path / self.previous.files["sqlite"].name
            remove_stale_files(self.path, self.previous)
            self._staging = self.path
        elif self.path.exists():
            if not (self.path / MANIFEST).is_file():
                raise IndexExistsError(
                    f"{self.path} exists and is not a simsearch index; remove it or choose another name"
                )
            if not self.force:
                raise IndexExistsError(
                    f"index {self.path.name!r} already exists in "
                    f"{self.path.parent}; pass --force to replace it"
                )
            self._locks.enter_context(write_lock(self.path))
            try:
                self.previous = read_manifest(self.path)
                remove_stale_files(self.path, self.previous)
            except IndexCorruptError:
                # --force over a damaged or newer index replaces it, but only once the new one is
                # committed: until then not one of its files is touched
                self.previous = None
            self._staging = self.path
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_staging(self.path)
            self._staging = new_staging_dir(self.path, self._locks)
        self.generation = next_generation(self.path, self.previous, in_place=self._staging == self.path)
        self.sqlite_name = f"docs-{self.generation:06d}.sqlite"
        self.faiss_name = f"index-{self.generation:06d}.faiss"
        staged = self._staging / (self.sqlite_name + ".tmp")
        if base is not None:
            shutil.copyfile(base, staged)
        self.db = sqlite3.connect(staged)
        self.db.execute("PRAGMA journal_mode=OFF")  # a staged file: the manifest is the journal
        self.db.execute("PRAGMA synchronous=OFF")
        if base is None:
            self.db.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # before the first table: fixed then
            self.db.executescript(SCHEMA)

    def _check_carried(self, manifest: Manifest) -> None:
        """Full checksums of what this write starts from: damage is refused, never laundered."""
        name = self.path.name
        check_file(self.path, manifest.files["sqlite"], full=True, index=name, writing=True)
        if not self.repair:
            check_file(self.path, manifest.files["faiss"], full=True, index=name, writing=True)

    def vacuum(self) -> None:
        """Rewrite the staged SQLite file without free pages (compaction), in today's page size."""
        assert self.db is not None
        self.db.commit()
        self.db.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # takes effect through the VACUUM
        self.db.execute("VACUUM")

    def commit(self, manifest: Mapping[str, Any], builder: Builder) -> Manifest:
        """Write the FAISS file for the staged rows, fsync everything, swap the manifest.

        ``builder`` builds the FAISS index from the staged vectors, ``(db, dim) -> (FaissFile,
        fields)`` (see :func:`simsearch.store.index_types.builder`); its fields are merged into the manifest.
        """
        assert self.db is not None and self._staging is not None
        with self._disk_errors():
            return self._commit(manifest, builder)

    def _commit(self, manifest: Mapping[str, Any], builder: Builder) -> Manifest:
        assert self.db is not None and self._staging is not None
        sync_lexical(
            self.db, manifest, self.previous, self.changed, full=self.rebuild or self.rebuild_lexical
        )
        self.db.commit()
        count = self.db.execute("SELECT count(*) FROM documents").fetchone()[0]
        faiss_tmp = self._staging / (self.faiss_name + ".tmp")
        faiss_file, fields = faiss_for_commit(
            self.db,
            self.path,
            self.previous,
            self.changed,
            int(manifest["dim"]),
            builder,
            count,
            rebuild=self.rebuild,
        )
        fields = {**manifest, **fields}
        fields.pop(VECTORS_KEY, None)
        if faiss_file.write(faiss_tmp, detach=True):  # each vector stored once: SQLite's blob
            fields[VECTORS_KEY] = "sqlite"
        self.db.close()
        self.db = None
        sqlite_tmp = self._staging / (self.sqlite_name + ".tmp")
        files = seal(
            self._staging, [("sqlite", sqlite_tmp, self.sqlite_name), ("faiss", faiss_tmp, self.faiss_name)]
        )
        written = Manifest.from_dict(
            {
                **fields,
                "format": FORMAT,
                "format_version": format_version_of(fields),
                "count": count,
                "generation": self.generation,
                "files": files,
                "faiss": faiss_file.description,
            },
            str(self.path / MANIFEST),
        )
        staged_manifest = stage_json(self._staging / MANIFEST, written.to_dict())
        if self._staging == self.path:
            os.replace(staged_manifest, self.path / MANIFEST)  # the commit point
        else:
            os.replace(staged_manifest, self._staging / MANIFEST)
            fsync_dir(self._staging)
            rename_into_place(self._staging, self.path)  # the commit point
        self._staging = None
        try:
            fsync_dir(self.path)
            fsync_dir(self.path.parent)
        except OSError as exc:
            raise StoreWriteError(
                f"index {self.path.name!r} was written (generation {self.generation}) but could not "
                f"be synced to disk ({describe_os_error(exc)}); it may not survive a power loss; "
                f"{disk_hint(exc)}"
            ) from None
        remove_stale_files(self.path, written)
        if self.force:
            from simsearch.store.shards import remove_stale_parts

            remove_stale_parts(self.path, written)  # a sharded index this plain one replaced
        return written

    @contextlib.contextmanager
    def _disk_errors(self) -> Iterator[None]:
        """A refused write (full, read-only, no permission, FAISS I/O) as one line, not a traceback."""
        try:
            yield
        except OSError as exc:
            raise StoreWriteError(
                f"cannot write index {self.path.name!r} ({describe_os_error(exc)}); "
                f"{disk_hint(exc)}; the index was left as it was"
            ) from None
        except sqlite3.Error as exc:
            raise self._sqlite_error(exc) from None

    def _sqlite_error(self, exc: sqlite3.Error) -> StoreWriteError:
        return StoreWriteError(
            f"cannot write index {self.path.name!r} (SQLite: {exc}); free some "
            "disk space or check the disk and permissions; the index was left as it was"
        )

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self._abort()
        finally:
            self._locks.close()
        if isinstance(exc_info[1], sqlite3.Error):  # a staged insert refused by the disk
            raise self._sqlite_error(exc_info[1]) from None

    def _abort(self) -> None:
        """Close the staged database; if not committed, remove exactly what this writer staged."""
        if self.db is not None:
            with contextlib.suppress(sqlite3.Error):
                self.db.close()
            self.db = None
        staging, self._staging = self._staging, None
        if staging is not None:
            names = (getattr(self, "sqlite_name", None), getattr(self, "faiss_name", None))
            discard(self.path, staging, [name for name in names if name])
