"""Dense search restricted to the documents a metadata filter allows.

Few allowed documents (at most :data:`EXACT_UP_TO`, or under :data:`EXACT_SHARE` of the index):
exact inner products over just their vectors, which is both exact and cheap. Otherwise FAISS
searches with an ``IDSelectorBatch`` in its search parameters (the ``IDMap2`` wrapper translates
the selector to its internal ids); for HNSW ``efSearch`` is raised in proportion to how much of
the graph the filter removes, so the top k among the allowed documents is still found (exact
search over the allowed vectors when the walk still finds fewer than k); for IVF
``nprobe`` is raised the same way, then until ``k`` allowed documents are found
(:mod:`simsearch.store.ivf_probe`).
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

import numpy as np

from simsearch.store.ivf_probe import ivf_of, search_filled
from simsearch.store.sql import select_in
from simsearch.store.faiss_file import FaissFile, from_blobs

EXACT_UP_TO = 4096
EXACT_SHARE = 0.02
MAX_EF = 2048


def search_allowed(
    faiss_file: FaissFile, db: sqlite3.Connection, queries: np.ndarray, k: int, allowed: np.ndarray, dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and row ids (padded with -1) of the top ``k`` among ``allowed``, best first."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = max(1, min(k, len(allowed))) if len(allowed) else 1
    if len(allowed) == 0:
        return np.full((len(queries), 1), -np.inf, np.float32), np.full((len(queries), 1), -1, np.int64)
    if len(allowed) <= EXACT_UP_TO or len(allowed) < EXACT_SHARE * faiss_file.ntotal:
        return _exact(_vectors(faiss_file, db, allowed, dim), allowed, queries, k)
    import faiss

    _FAISS: Any = faiss  # the search-parameter classes are not in faiss's type stubs
    selector = faiss.IDSelectorBatch(allowed)
    share = len(allowed) / max(1, faiss_file.ntotal)
    ivf = ivf_of(faiss_file.index)
    if ivf is not None:  # probes raised by 1 / selectivity, then until k allowed are found
        nprobe = math.ceil(int(ivf.nprobe) / share)
        return search_filled(faiss_file.index, queries, k, k, nprobe, selector)
    inner = faiss.downcast_index(getattr(faiss_file.index, "index", faiss_file.index))
    if isinstance(inner, faiss.IndexHNSW):
        ef = int(min(MAX_EF, max(inner.hnsw.efSearch, k) / share))
        params: Any = _FAISS.SearchParametersHNSW(sel=selector, efSearch=max(ef, k))
        scores, ids = faiss_file.index.search(queries, k, params=params)
        if bool(((ids >= 0).sum(axis=1) >= k).all()):
            return scores, ids
        # a large k: the graph walk found fewer than k allowed (787 of 816 wanted, measured)
        return _exact(_vectors(faiss_file, db, allowed, dim), allowed, queries, k)
    elif isinstance(inner, faiss.IndexRefine) and hasattr(faiss_file.index, "id_map"):
        # a refine stage over a non-IVF base: the base holds IDMap2's internal ids
        translated = _FAISS.IDSelectorTranslated(faiss_file.index.id_map, selector)
        params = _FAISS.IndexRefineSearchParameters(
            sel=selector, k_factor=inner.k_factor, base_index_params=_FAISS.SearchParameters(sel=translated)
        )
    else:
        params = _FAISS.SearchParameters(sel=selector)
    return faiss_file.index.search(queries, k, params=params)


def _vectors(faiss_file: FaissFile, db: sqlite3.Connection, rowids: np.ndarray, dim: int) -> np.ndarray:
    """The allowed vectors: from the FAISS index where it keeps them exactly (flat, HNSW over flat
    storage: :meth:`FaissFile.exact_vectors`), else the stored float32 rows."""
    found = faiss_file.exact_vectors(rowids)
    if found is not None:
        return found
    values = rowids.tolist()
    blobs: dict[int, bytes] = dict(
        select_in(db, "SELECT rowid, vector FROM documents WHERE rowid IN ({marks})", values)
    )
    return from_blobs([blobs[r] for r in values], dim)


def _exact(
    vectors: np.ndarray, rowids: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ vectors.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, top, axis=1), rowids[top]
