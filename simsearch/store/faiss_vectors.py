"""Each vector stored once: FAISS files written without their exact float32 vectors.

SQLite's ``vector`` blobs are the source of truth (verify, rebuilds and repairs read them). For an
exact index (``IDMap2,Flat``) and HNSW over flat storage, FAISS's own storage would be a second,
byte-identical copy: 1,536 bytes per 384-d vector. Such a FAISS file is written without it and
the storage is refilled from SQLite when the file is read; the manifest says so
(:data:`simsearch.store.manifest.VECTORS_KEY`). What a detached file still holds:

- ``IDMap2,Flat``: an empty ``IDMap2,Flat`` of the right dimension; on reading, the vectors go in
  row id order and the id map is the row ids (the order of an exact index's storage means
  nothing).
- ``IDMap2,HNSW..`` over flat storage: the id map and the graph (FAISS writes the null storage
  itself); the storage is refilled in the graph's node order, which the id map gives.

Compressed storages (PQ, SQ, IVF lists) are not copies of the stored vectors and stay as they are.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any, Iterator

import faiss
import numpy as np

from simsearch.errors import IndexCorruptError
from simsearch.store.manifest import EXACT_FACTORY

_CHUNK = 8192


def _flat_ip(index: Any) -> bool:
    return isinstance(index, faiss.IndexFlat) and index.metric_type == faiss.METRIC_INNER_PRODUCT


def _parts(index: faiss.Index) -> tuple[Any, Any] | None:
    """(IDMap2 wrapper, inner index) when the inner index keeps exact inner-product vectors."""
    outer: Any = faiss.downcast_index(index)
    if not isinstance(outer, faiss.IndexIDMap2):
        return None
    inner: Any = faiss.downcast_index(outer.index)
    if _flat_ip(inner):
        return outer, inner
    if isinstance(inner, faiss.IndexHNSW) and inner.storage is not None:
        if _flat_ip(faiss.downcast_index(inner.storage)):
            return outer, inner
    return None


def detachable(index: faiss.Index) -> bool:
    """Whether ``index`` holds an exact copy of the stored vectors that a file can leave out."""
    return _parts(index) is not None


@contextlib.contextmanager
def without_vectors(index: faiss.Index) -> Iterator[faiss.Index]:
    """What to write for ``index`` so that its file leaves the vectors out (streamed by FAISS's
    own writer, no copy in memory); ``index`` is as it was afterwards."""
    parts = _parts(index)
    if parts is None:
        raise ValueError("this index keeps no exact vectors to leave out")
    outer, inner = parts
    if _flat_ip(inner):
        yield faiss.index_factory(int(outer.d), EXACT_FACTORY, inner.metric_type)
        return
    storage = inner.storage
    inner.storage = None  # FAISS writes a null storage (the IDMap wrapper passes no I/O flags down)
    try:
        yield outer
    finally:
        inner.storage = storage  # still owned by ``inner``: nothing was freed


def serialize_detached(index: faiss.Index) -> np.ndarray:
    """The bytes of ``index``'s FAISS file without its vectors."""
    with without_vectors(index) as written:
        return faiss.serialize_index(written)


def held_elsewhere(index: faiss.Index) -> bool:
    """Whether a read ``index`` lacks the storage its graph needs (HNSW written detached)."""
    outer: Any = faiss.downcast_index(index)
    inner: Any = faiss.downcast_index(outer.index) if isinstance(outer, faiss.IndexIDMap) else outer
    return isinstance(inner, faiss.IndexHNSW) and inner.storage is None


def attach(index: faiss.Index, db: sqlite3.Connection, where: str) -> None:
    """Refill a detached index's storage from the SQLite file's vectors, in place.

    ``where`` names the files in error messages. Reads the vectors once in row id order, chunk by
    chunk, straight into FAISS's buffer (no second full copy in memory). SQLite's own errors
    (a damaged file) are the caller's to word.
    """
    outer: Any = faiss.downcast_index(index)
    if not isinstance(outer, faiss.IndexIDMap2):
        raise IndexCorruptError(f"{where}: FAISS file of an unexpected type; run `simsearch verify --repair`")
    inner: Any = faiss.downcast_index(outer.index)
    dim = int(outer.d)
    if _flat_ip(inner) and inner.ntotal == 0 and outer.ntotal == 0:
        count = int(db.execute("SELECT count(*) FROM documents").fetchone()[0])
        rowids = _fill(inner, db, dim, count, None, where)
        faiss.copy_array_to_vector(rowids, outer.id_map)
        outer.ntotal = count
        outer.construct_rev_map()
    elif isinstance(inner, faiss.IndexHNSW) and inner.storage is None:
        storage = faiss.IndexFlat(dim, inner.metric_type)
        _fill(storage, db, dim, int(inner.ntotal), faiss.vector_to_array(outer.id_map), where)
        storage.this.disown()  # ``inner`` owns (and frees) it from now on
        inner.storage = storage
        inner.own_fields = True
    else:
        raise IndexCorruptError(
            f"{where}: the manifest says the FAISS file's vectors are in SQLite, but the FAISS "
            "file is not such a file; run `simsearch verify --repair`"
        )


def _fill(
    flat: Any, db: sqlite3.Connection, dim: int, count: int, node_ids: np.ndarray | None, where: str
) -> np.ndarray:
    """Fill the empty IndexFlat ``flat`` with ``count`` stored vectors; return the row ids read.

    ``node_ids`` (HNSW): the row id of each storage position; every stored row must be one of
    them. None (flat): the rows go in row id order.
    """
    disagree = IndexCorruptError(
        f"{where}: FAISS and SQLite disagree (their row ids differ); run `simsearch verify --repair`"
    )
    if node_ids is not None and len(node_ids) != count:
        raise disagree
    order = None
    expected = node_ids
    if node_ids is not None and count > 1 and not bool((np.diff(node_ids) > 0).all()):
        order = np.argsort(node_ids, kind="stable")  # position of the i-th smallest row id
        expected = node_ids[order]
    flat.codes.resize(count * dim * 4)
    flat.ntotal = count
    rowids = np.empty(count, dtype=np.int64)
    vectors = faiss.rev_swig_ptr(flat.get_xb(), count * dim).reshape(count, dim) if count else None
    done = 0
    cursor = db.execute("SELECT rowid, vector FROM documents ORDER BY rowid")
    while rows := cursor.fetchmany(_CHUNK):
        end = done + len(rows)
        if end > count:
            raise disagree
        rowids[done:end] = [r[0] for r in rows]
        data = b"".join([r[1] for r in rows])
        if len(data) != len(rows) * dim * 4:
            raise IndexCorruptError(
                f"{where}: stored vectors are not {dim}-dim; run `simsearch verify` and rebuild the index"
            )
        chunk = np.frombuffer(data, dtype="<f4").reshape(len(rows), dim)
        assert vectors is not None
        if order is None:
            vectors[done:end] = chunk
        else:
            vectors[order[done:end]] = chunk
        done = end
    if done != count or (expected is not None and not np.array_equal(rowids, expected)):
        raise disagree
    return rowids
