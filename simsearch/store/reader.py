"""One index directory on disk: a JSON manifest, a FAISS file and an SQLite file.

Layout of ``indexes/<name>/``::

    manifest.json        the commit point: format, model, pooling, dim, counts, files + checksums
    docs-<gen>.sqlite    ids, texts, metadata, content hashes and the float32 vectors themselves
    index-<gen>.faiss    FAISS index over the same vectors; FAISS ids are SQLite row ids

This module reads and checks them; :mod:`simsearch.store.writer` writes new generations atomically.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable

from simsearch.errors import IndexCorruptError, IndexNotFoundError
from simsearch.store.files import file_sha256
from simsearch.store.faiss_file import EXACT_FACTORY, FaissFile
from simsearch.store.fingerprint import check_identity

FORMAT = "simsearch-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
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
_REQUIRED = ("format_version", "model", "pooling", "dim", "count", "generation", "files")
# (field, accepted types, smallest value) of the fields the code reads; bool is never an int here
_TYPES: tuple[tuple[str, tuple[type, ...], int | None], ...] = (
    ("model", (str,), None), ("model_path", (str,), None), ("pooling", (str,), None),
    ("dim", (int,), 1), ("count", (int,), 0), ("generation", (int,), 0),
    ("max_length", (int,), 1), ("precision", (str,), None), ("index_type", (str,), None),
    ("truncated", (int,), 0), ("name", (str,), None), ("ann", (dict,), None),
    ("normalized", (bool,), None), ("metric", (str,), None),
)
_NULLABLE = {"ann"}
_KIND_WORDS: dict[tuple[type, ...], str] = {(str,): "a string", (int,): "a whole number in range", (dict,): "an object",
               (bool,): "true or false"}


def read_manifest(path: Path) -> dict[str, Any]:
    """Parse and check an index's manifest (not its data files)."""
    if not os.path.isdir(path):  # (never raises, not even for a name too long for the disk)
        raise IndexNotFoundError(f"index {path} not found; run `simsearch list` to see indexes")
    file = path / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        raise IndexCorruptError(f"{path} is not a simsearch index (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{file}: unreadable manifest ({exc}); rebuild the index") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexCorruptError(f"{file}: not a simsearch manifest (foreign file)")
    version = manifest.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise IndexCorruptError(
            f"{path} was written by a newer simsearch (index format {version}, this one reads "
            f"{FORMAT_VERSION}); upgrade simsearch"
        )
    if version != FORMAT_VERSION:
        raise IndexCorruptError(f"{file}: unsupported index format version {version!r} (this "
                                f"simsearch reads {FORMAT_VERSION}); rebuild the index")
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise IndexCorruptError(f"{file}: incomplete manifest (missing {', '.join(missing)})")
    _check_files_entry(file, manifest["files"])
    _check_types(file, manifest)
    check_identity(file, manifest)
    return manifest


def _check_types(file: Path, manifest: dict[str, Any]) -> None:
    """Known fields hold what the code expects (a damaged manifest fails here, in one line)."""
    for key, kinds, minimum in _TYPES:
        if key not in manifest or (key in _NULLABLE and manifest[key] is None):
            continue
        value = manifest[key]
        wrong = not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        if not wrong and minimum is not None and value < minimum:
            wrong = True
        if wrong:
            shown = json.dumps(value, ensure_ascii=False, default=str)[:40]
            raise IndexCorruptError(f"{file}: manifest field {key!r} is {shown}, not {_KIND_WORDS[kinds]}"
                                    "; the manifest is damaged: restore it or rebuild the index")
    ann = manifest.get("ann")
    if isinstance(ann, dict):
        params = ann.get("search_params")
        bad_params = params is not None and not (isinstance(params, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in params.values()))
        if bad_params or not isinstance(ann.get("factory", ""), str):
            raise IndexCorruptError(f"{file}: malformed 'ann' section in the manifest; the manifest is "
                                    "damaged: restore it or rebuild the index")


def factory_of(manifest: dict[str, Any]) -> str:
    """The FAISS factory string an index was built with (older manifests: the exact one)."""
    return str((manifest.get("ann") or {}).get("factory") or EXACT_FACTORY)


def _check_files_entry(file: Path, files: Any) -> None:
    """Each data file is a plain name inside the index directory with a size and a checksum."""
    ok = isinstance(files, dict) and all(
        isinstance(files.get(role), dict)
        and isinstance(files[role].get("name"), str)
        and "/" not in files[role]["name"] and files[role]["name"] not in ("", ".", "..")
        and isinstance(files[role].get("size"), int)
        and isinstance(files[role].get("sha256"), str)
        for role in ("faiss", "sqlite")
    )
    if not ok:
        raise IndexCorruptError(f"{file}: malformed 'files' section in the manifest; rebuild the index")


class Store:
    """A committed index generation opened read-only: FAISS for search, SQLite for texts."""

    def __init__(self, path: Path, manifest: dict[str, Any], faiss_file: FaissFile,
                 db: sqlite3.Connection) -> None:
        self.path = path
        self.manifest = manifest
        self.faiss = faiss_file
        self.db = db

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open and validate; retries once if a writer swapped generations under our feet."""
        for attempt in range(3):
            manifest = read_manifest(path)
            try:
                return cls._open_generation(path, manifest)
            except IndexCorruptError:
                if attempt == 2 or read_manifest(path).get("generation") == manifest["generation"]:
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _open_generation(cls, path: Path, manifest: dict[str, Any]) -> Store:
        files = manifest["files"]
        for role in ("faiss", "sqlite"):
            check_file(path, files[role], full=False)
        faiss_file = FaissFile.read(path / files["faiss"]["name"],
                                    (manifest.get("ann") or {}).get("search_params"))
        db = connect_readonly(path / files["sqlite"]["name"])
        try:
            count = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            db.close()
            raise IndexCorruptError(f"{path / files['sqlite']['name']}: damaged SQLite file "
                                    f"({exc}); run `simsearch verify {path.name}` and rebuild the "
                                    "index from its sources") from None
        if not count == faiss_file.ntotal == manifest["count"]:
            db.close()
            raise IndexCorruptError(
                f"{path}: manifest says {manifest['count']} documents, SQLite holds {count}, "
                f"FAISS {faiss_file.ntotal}; run `simsearch verify --repair`"
            )
        if faiss_file.dim != manifest["dim"]:
            db.close()
            raise IndexCorruptError(f"{path}: FAISS dim {faiss_file.dim} != manifest dim {manifest['dim']}")
        return cls(path, manifest, faiss_file, db)

    def __len__(self) -> int:
        return int(self.manifest["count"])

    def fetch(self, rowids: Iterable[int]) -> dict[int, tuple[str, str, dict[str, Any]]]:
        """id, text and metadata of the given row ids (only those rows are read)."""
        wanted = sorted({int(r) for r in rowids})
        found: dict[int, tuple[str, str, dict[str, Any]]] = {}
        try:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for rowid, doc_id, text, meta in self.db.execute(
                    f"SELECT rowid, id, text, metadata FROM documents WHERE rowid IN ({marks})", chunk
                ).fetchall():
                    found[rowid] = (doc_id, text, json.loads(meta))
        except (sqlite3.DatabaseError, ValueError) as exc:
            # open() only checks sizes; damage deeper in the file surfaces here
            raise IndexCorruptError(f"{self.path}: damaged SQLite file ({exc}); run "
                                    "`simsearch verify` and rebuild the index") from None
        if len(found) != len(wanted):
            raise IndexCorruptError(f"{self.path}: FAISS and SQLite disagree (rows missing); "
                                    "run `simsearch verify --repair`")
        return found

    def close(self) -> None:
        self.db.close()


def connect_readonly(file: Path) -> sqlite3.Connection:
    """Committed generation files never change, so SQLite may skip locking (immutable=1)."""
    try:
        return sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro&immutable=1", uri=True,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        raise IndexCorruptError(f"{file}: cannot open SQLite file ({exc})") from None


def check_file(path: Path, entry: dict[str, Any], *, full: bool, index: str | None = None,
               writing: bool = False) -> None:
    """Existence and size always; the sha256 too when ``full`` (verify, and every write for the
    files it starts from). The advice fits the file: only the FAISS file is repairable."""
    file = path / entry["name"]
    name = index or path.name
    if entry["name"].startswith("index-"):
        hint = f"run `simsearch verify {name} --repair` (it rebuilds the FAISS file from the stored vectors)"
    else:
        hint = (f"the SQLite file holds the documents and cannot be repaired: run `simsearch verify "
                f"{name}` for details and rebuild the index from its sources")
    if writing:
        hint = "nothing was written; " + hint
    if not file.is_file():
        raise IndexCorruptError(f"{file} is missing; {hint}")
    size = file.stat().st_size
    if size != entry["size"]:
        raise IndexCorruptError(f"{file} has {size} bytes, the manifest says {entry['size']} "
                                f"(truncated or replaced); {hint}")
    if full and file_sha256(file) != entry["sha256"]:
        raise IndexCorruptError(f"{file}: checksum mismatch (file damaged); {hint}")
