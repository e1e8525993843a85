"""The FAISS side of an index: build from stored vectors, read, write, search.

Vectors live in SQLite as little-endian float32 blobs; the FAISS file is derived from them, so it
can always be rebuilt (repair, compaction, a different index type) without re-encoding. The exact
scans a search may take instead of FAISS's own are in :mod:`simsearch.store.exact_scan`.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Iterator, Sequence

import faiss
import numpy as np

from simsearch.store.huge_pages import graph_huge_pages, huge_pages
from simsearch.store.faiss_vectors import attach, detachable, held_elsewhere, without_vectors
from simsearch.store.exact_scan import exact_parts, exact_small, exhaustive, flat_view
from simsearch.store.ivf_probe import ivf_of, search_filled
from simsearch.store.sql import marks, parts
from simsearch.errors import IndexCorruptError, ModelError
from simsearch.store.manifest import EXACT_FACTORY as EXACT_FACTORY  # re-exported (its old home)

_CHUNK = 8192
_THREADS = faiss.omp_get_max_threads()
_BATCH = 8  # queries from which a search uses every thread
#: Exact single queries a process makes before the stored vectors move onto huge pages: the move
#: costs about one scan of the whole matrix per 7 (35 ms at 100k x 384) and saves ~10% of each scan,
#: so a one-shot CLI query skips it and a long-lived process (serve, a library loop) pays it once.
_HUGE_PAGES_AFTER = 32


def _write_errno(file: Path) -> int:
    """The likely reason FAISS failed to write ``file``: no space, a read-only disk, or I/O."""
    try:
        stats = os.statvfs(file.parent)
    except OSError:
        return errno.EIO
    if stats.f_flag & os.ST_RDONLY:
        return errno.EROFS
    if stats.f_bavail * stats.f_frsize < (1 << 20):
        return errno.ENOSPC
    if not os.access(file.parent, os.W_OK):
        return errno.EACCES
    return errno.EIO


def require_finite(vectors: np.ndarray, labels: Sequence[str]) -> None:
    """Refuse vectors holding NaN or infinity before they are stored (they would poison search)."""
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        first = labels[int(np.flatnonzero(bad)[0])]
        raise ModelError(
            f"{first}: the model produced a vector with NaN or infinity "
            f"({int(bad.sum())} of {len(labels)} in this batch); nothing was written; "
            "check the model's weights (or its precision) and try again"
        )


def to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def from_blobs(blobs: list[bytes], dim: int) -> np.ndarray:
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim).astype(np.float32)


class FaissFile:
    """A FAISS index whose ids are SQLite row ids; inner product on unit vectors = cosine."""

    def __init__(self, index: faiss.Index, description: str) -> None:
        self.index = index
        self.description = description
        self._parts = exact_parts(index)
        self._flat: tuple[np.ndarray, np.ndarray] | None = None
        self._flat_key: tuple[int, int, int] | None = None
        self._flat_queries = 0
        self._order: tuple[tuple[int, int], np.ndarray] | None = None  # exact view's id order
        self._reconstructs: bool | None = None  # vectors exact through FAISS's reconstruct
        self._ann_queries = 0  # searches before an HNSW graph moves onto huge pages

    @classmethod
    def read(
        cls,
        file: Path,
        search_params: dict[str, float] | None = None,
        vectors: sqlite3.Connection | None = None,
    ) -> FaissFile:
        """Read ``file``; ``vectors``: the generation's SQLite file, when the manifest says the
        FAISS file's vectors are kept there (they are put back into the index)."""
        try:
            index = faiss.read_index(str(file))
            if search_params:  # efSearch / nprobe are not stored in the FAISS file
                apply_search_params(index, search_params)
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
            raise IndexCorruptError(
                f"{file}: damaged FAISS file ({reason}); run `simsearch verify {file.parent.name} --repair` "
                "(it rebuilds the FAISS file from the stored vectors)"
            ) from None
        return cls._complete(index, file, vectors)

    @classmethod
    def read_checked(
        cls, file: Path, sha256: str, vectors: sqlite3.Connection | None = None
    ) -> FaissFile | None:
        """Read ``file`` if its bytes have this sha256 (one read for both), else None."""
        import hashlib

        data = file.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            return None
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        return cls._complete(index, file, vectors)

    @classmethod
    def _complete(cls, index: faiss.Index, file: Path, vectors: sqlite3.Connection | None) -> FaissFile:
        if vectors is not None:
            attach(index, vectors, str(file))
        elif held_elsewhere(index):  # searching it would read freed memory: refuse
            raise IndexCorruptError(
                f"{file}: the FAISS file holds no vectors and the manifest does not say where they "
                "are; run `simsearch verify --repair`"
            )
        return cls(index, describe(index))

    def write(self, file: Path, *, detach: bool = False) -> bool:
        """Write the index to ``file``; FAISS's own I/O failures come out as :class:`OSError`.

        ``detach``: leave out the exact vectors where the index keeps them (they are SQLite's);
        returns whether it did (the manifest must then say so).
        """
        detached = detach and detachable(self.index)
        try:
            if detached:
                with without_vectors(self.index) as written:
                    faiss.write_index(written, str(file))
            else:
                faiss.write_index(self.index, str(file))
        except RuntimeError:
            # FAISS reports a full disk as a failed fwrite/fopen, without errno; say what it was
            code = _write_errno(file)
            raise OSError(code, f"FAISS could not write the file ({os.strerror(code)})", str(file)) from None
        return detached

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and row ids, best first; rows padded with id -1 when k > ntotal."""
        k = max(1, min(k, self.ntotal))
        if len(queries) < _BATCH:
            flat = self._exact_view()
            if flat is not None:
                return exact_small(flat, np.asarray(queries, dtype=np.float32), k)
        if self._ann_queries < _HUGE_PAGES_AFTER:
            self._ann_queries += 1
            if self._ann_queries == _HUGE_PAGES_AFTER:
                graph_huge_pages(self.index)
        # One query is memory-bound: more OpenMP threads only add synchronisation (measured 8.6 ms
        # with 1 thread vs 37 ms with 2 at 100k exact); batches split across all threads.
        # Scoped: the caller's (process-wide) OpenMP setting is restored afterwards.
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1 if len(queries) < _BATCH else _THREADS)
        try:
            queries = np.ascontiguousarray(queries, dtype=np.float32)
            scores, ids = self.index.search(queries, k)
            if not bool((ids >= 0).all()):  # a large k: an ANN search can come up short
                if (ivf := ivf_of(self.index)) is not None:  # the tuned lists hold fewer than k
                    scores, ids = search_filled(self.index, queries, k, k, int(ivf.nprobe) * 4)
                elif (every := exhaustive(self.index, queries, k)) is not None:
                    scores, ids = every  # HNSW: the graph walk found fewer than k (~800 of 2,500)
            return scores, ids
        finally:
            faiss.omp_set_num_threads(before)

    def exact_vectors(self, rowids: np.ndarray) -> np.ndarray | None:
        """The float32 vectors of ``rowids`` (all held) exactly as stored, when this index keeps
        them uncompressed (flat, HNSW over flat storage); None for compressed indexes (IVF-PQ,
        scalar quantisers), whose vectors live exactly only in SQLite."""
        rowids = np.asarray(rowids, dtype=np.int64)
        view = self._exact_view()
        if view is not None:
            vectors, ids = view
            key = (len(ids), int(ids.ctypes.data))
            if self._order is None or self._order[0] != key or len(self._order[1]) != len(ids):
                self._order = (key, np.argsort(ids, kind="stable"))
            order = self._order[1]
            where = order[np.minimum(np.searchsorted(ids, rowids, sorter=order), len(ids) - 1)]
            if not np.array_equal(ids[where], rowids):  # ids changed in place: sort them again
                self._order = (key, np.argsort(ids, kind="stable"))
                order = self._order[1]
                where = order[np.minimum(np.searchsorted(ids, rowids, sorter=order), len(ids) - 1)]
            return vectors[where]
        if self._reconstructs is None:
            inner = faiss.downcast_index(getattr(self.index, "index", self.index))
            storage = faiss.downcast_index(inner.storage) if isinstance(inner, faiss.IndexHNSW) else None
            self._reconstructs = isinstance(self.index, faiss.IndexIDMap2) and isinstance(
                storage, faiss.IndexFlat
            )
        if self._reconstructs and len(rowids):
            return self.index.reconstruct_batch(rowids)
        return None

    def _exact_view(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Zero-copy views of an exact index's vectors and row ids (None for other index types).

        Remade whenever FAISS's count or buffers change (an add may reallocate them); ids are a
        view too, so a removal plus an add that keep the count still show the current ids.
        """
        if self._parts is None:
            return None
        inner, id_map = self._parts
        if inner.ntotal == 0:  # no buffers at all (null pointers): FAISS answers with -1 ids
            return None
        key = (inner.ntotal, int(inner.get_xb()), int(id_map.data()))
        if key != self._flat_key:
            self._flat, self._flat_key, self._flat_queries = flat_view(inner, id_map), key, 0
        self._flat_queries += 1
        if self._flat is not None and self._flat_queries == _HUGE_PAGES_AFTER:
            huge_pages(self._flat[0])
        return self._flat


def apply_search_params(index: faiss.Index, params: dict[str, float]) -> None:
    """Set efSearch / nprobe; one that does not apply to this index type is skipped."""
    space = faiss.ParameterSpace()
    for name, value in params.items():
        try:
            space.set_index_parameter(index, name, float(value))
        except RuntimeError:
            pass  # e.g. a flat index rebuilt by a writer that kept an older manifest's params


def describe(index: faiss.Index) -> str:
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    return type(inner).__name__


def iter_vectors(db: sqlite3.Connection, dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(row ids, vectors) chunks in row id order, so memory stays bounded; a stored vector that
    is not finite stops the build (a FAISS file must never index one)."""
    cursor = db.execute("SELECT rowid, vector FROM documents ORDER BY rowid")
    while rows := cursor.fetchmany(_CHUNK):
        rowids, vectors = (
            np.array([r[0] for r in rows], dtype=np.int64),
            from_blobs([r[1] for r in rows], dim),
        )
        _stored_finite(db, rowids, vectors)
        yield rowids, vectors


def _stored_finite(db: sqlite3.Connection, rowids: np.ndarray, vectors: np.ndarray) -> None:
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        rowid = int(rowids[np.flatnonzero(bad)[0]])
        doc = db.execute("SELECT id FROM documents WHERE rowid = ?", (rowid,)).fetchone()
        raise IndexCorruptError(
            f"document {doc[0] if doc else rowid!r} (and {int(bad.sum()) - 1} more in this chunk) has "
            "a stored vector with NaN or infinity; nothing was written; run `simsearch verify "
            "--repair` to re-encode it from its stored text, or delete it"
        )


def apply_changes(faiss_file: FaissFile, db: sqlite3.Connection, rowids: list[int], dim: int) -> FaissFile:
    """Remove ``rowids`` from the FAISS index, then add back the ones still stored in ``db``."""
    if not rowids:
        return faiss_file
    held = _held(faiss_file.index, np.array(rowids, dtype=np.int64))
    if held.size:  # pure additions skip this, so indexes that cannot remove (HNSW) still grow in place
        faiss_file.index.remove_ids(held)  # type: ignore[arg-type]  # the SWIG wrapper takes arrays
    for chunk in parts(rowids):
        rows = db.execute(
            f"SELECT rowid, vector FROM documents WHERE rowid IN ({marks(len(chunk))})", list(chunk)
        ).fetchall()
        if rows:
            ids, vectors = (
                np.array([r[0] for r in rows], dtype=np.int64),
                from_blobs([r[1] for r in rows], dim),
            )
            _stored_finite(db, ids, vectors)
            faiss_file.index.add_with_ids(vectors, ids)
    return faiss_file


def _held(index: faiss.Index, rowids: np.ndarray) -> np.ndarray:
    """Those of ``rowids`` that ``index`` holds (all of them where it cannot tell cheaply)."""
    if hasattr(index, "id_map"):
        return np.intersect1d(faiss.vector_to_array(index.id_map), rowids)
    return rowids
