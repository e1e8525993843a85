"""Writing an index: stage a new generation, then commit it with one atomic manifest swap.

Committed generation files are never modified. A write stages new files and then atomically
replaces ``manifest.json`` (or, for a new index, renames a staged directory into place), so a
process killed at any moment leaves the old index or the new one, never a mix; readers that
already opened the old files keep reading them.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any, Mapping

from simsearch.store.index_types import Builder, keeps_kind
from simsearch.errors import IndexCorruptError, IndexExistsError, IndexNotFoundError
from simsearch.store.files import file_sha256, fsync_dir, fsync_file
from simsearch.store.locking import write_lock
from simsearch.store.manifest import FORMAT, FORMAT_VERSION, MANIFEST, Manifest, read_manifest, write_manifest
from simsearch.store.reader import SCHEMA, check_file
from simsearch.store.faiss_file import FaissFile, apply_changes


class StoreWriter:
    """Stages a new generation of an index and commits it atomically.

    Use as a context manager: rows go in through :attr:`db`, :meth:`commit` writes the FAISS
    file, fsyncs and swaps the manifest; leaving the block without committing (an error,
    Ctrl-C) removes what was staged. With ``update=True`` (add, delete, compact, repair) the
    writer starts from a copy of the *current* generation's SQLite file, read under the lock so
    that two writers never lose each other's changes; :attr:`changed` collects the row ids whose
    vectors were removed or replaced so that :meth:`commit` can update FAISS incrementally, and
    ``rebuild=True`` builds the FAISS file from every stored vector instead.
    """

    def __init__(self, path: Path, *, force: bool = False, update: bool = False,
                 rebuild: bool = False) -> None:
        self.path = path
        self.force = force
        self.update = update
        self.rebuild = rebuild or not update
        self._lock = write_lock(path)
        self._staging: Path | None = None
        self.db: sqlite3.Connection | None = None
        self.previous: Manifest | None = None
        self.changed: set[int] = set()

    def __enter__(self) -> StoreWriter:
        if self.update and not (self.path / MANIFEST).is_file():
            # checked before the lock so that a typo creates nothing on disk
            raise IndexNotFoundError(f"index {self.path.name!r} not found in {self.path.parent}; "
                                     "run `simsearch list` to see the indexes there")
        self._lock.__enter__()
        try:
            self._prepare()
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def _prepare(self) -> None:
        base = None
        if self.update:
            # an update never touches a damaged or newer-format index: read_manifest raises
            self.previous = read_manifest(self.path)
            entry = self.previous.files["sqlite"]
            check_file(self.path, entry, full=False)
            base = self.path / entry.name
            remove_stale_files(self.path, self.previous)
            self._staging = self.path
        elif self.path.exists():
            if not (self.path / MANIFEST).is_file():
                raise IndexExistsError(f"{self.path} exists and is not a simsearch index; "
                                       "remove it or choose another name")
            if not self.force:
                raise IndexExistsError(f"index {self.path.name!r} already exists in "
                                       f"{self.path.parent}; pass --force to replace it")
            try:
                self.previous = read_manifest(self.path)
            except IndexCorruptError:
                self.previous = None  # --force over a damaged index replaces it
            remove_stale_files(self.path, self.previous)
            self._staging = self.path
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for stale in self.path.parent.glob(f".{self.path.name}.tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)  # left by a killed build
            self._staging = self.path.parent / f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}"
            self._staging.mkdir()
        self.generation = (self.previous.generation if self.previous is not None else 0) + 1
        self.sqlite_name = f"docs-{self.generation:06d}.sqlite"
        self.faiss_name = f"index-{self.generation:06d}.faiss"
        staged = self._staging / (self.sqlite_name + ".tmp")
        if base is not None:
            shutil.copyfile(base, staged)
        self.db = sqlite3.connect(staged)
        self.db.execute("PRAGMA journal_mode=OFF")  # a staged file: the manifest is the journal
        self.db.execute("PRAGMA synchronous=OFF")
        if base is None:
            self.db.executescript(SCHEMA)

    def vacuum(self) -> None:
        """Rewrite the staged SQLite file without free pages (compaction)."""
        assert self.db is not None
        self.db.commit()
        self.db.execute("VACUUM")

    def commit(self, manifest: Mapping[str, Any], builder: Builder) -> Manifest:
        """Write the FAISS file for the staged rows, fsync everything, swap the manifest.

        ``builder`` builds the FAISS index from the staged vectors, ``(db, dim) -> (FaissFile,
        fields)`` (see :func:`simsearch.store.index_types.builder`); its fields are merged into the manifest.
        """
        assert self.db is not None and self._staging is not None
        self.db.commit()
        count = self.db.execute("SELECT count(*) FROM documents").fetchone()[0]
        faiss_tmp = self._staging / (self.faiss_name + ".tmp")
        faiss_file, fields = self._faiss(int(manifest["dim"]), builder, count)
        fields = {**manifest, **fields}
        faiss_file.write(faiss_tmp)
        self.db.close()
        self.db = None
        sqlite_tmp = self._staging / (self.sqlite_name + ".tmp")
        files = {}
        for role, tmp, name in (("sqlite", sqlite_tmp, self.sqlite_name),
                                ("faiss", faiss_tmp, self.faiss_name)):
            fsync_file(tmp)
            files[role] = {"name": name, "size": tmp.stat().st_size, "sha256": file_sha256(tmp)}
            os.replace(tmp, self._staging / name)
        written = write_manifest(self._staging, {
            **fields, "format": FORMAT, "format_version": FORMAT_VERSION, "count": count,
            "generation": self.generation, "files": files, "faiss": faiss_file.description})
        if self._staging != self.path:
            os.rename(self._staging, self.path)
        fsync_dir(self.path.parent)
        self._staging = None
        remove_stale_files(self.path, written)
        return written

    def _faiss(self, dim: int, builder: Builder, count: int) -> tuple[FaissFile, dict[str, Any]]:
        """The previous FAISS index with the changed rows swapped, or a rebuild from SQLite.

        Incremental is the cheaper path for small changes; index types that cannot remove
        vectors (HNSW) and any disagreement fall back to rebuilding from the stored vectors.
        The previous file must match its checksum: a damaged one would otherwise be carried
        into the new generation under a fresh, valid checksum.
        """
        assert self.db is not None
        if not self.rebuild and self.previous is not None and keeps_kind(self.previous, count):
            try:
                entry = self.previous.files["faiss"]
                old = FaissFile.read_checked(self.path / entry.name, entry.sha256)
                if old is not None and old.ntotal == self.previous.count and old.dim == dim:
                    updated = apply_changes(old, self.db, sorted(self.changed), dim)
                    if updated.ntotal == count:
                        kept = {k: self.previous[k] for k in ("index_type", "ann") if k in self.previous}
                        return updated, kept
            except (IndexCorruptError, RuntimeError, OSError):
                pass  # fall through to a full rebuild, which is always correct
        return builder(self.db, dim)

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if self.db is not None:
                self.db.close()
            if self._staging is not None:  # not committed: drop what was staged
                if self._staging == self.path:
                    remove_stale_files(self.path, self.previous)
                else:
                    shutil.rmtree(self._staging, ignore_errors=True)
        finally:
            self._lock.__exit__(*exc_info)


def remove_stale_files(path: Path, manifest: Manifest | None) -> None:
    """Delete generation files and temporaries the manifest does not reference (writers only)."""
    keep = {MANIFEST}
    if manifest is not None:
        keep |= {entry.name for entry in manifest.files.values()}
    for file in path.iterdir():
        if file.name not in keep and file.is_file() and (
            file.name.startswith(("docs-", "index-", MANIFEST)) or file.suffix == ".tmp"
        ):
            file.unlink(missing_ok=True)
    for staging in path.parent.glob(f".{path.name}.tmp-*"):
        shutil.rmtree(staging, ignore_errors=True)
