"""Moving FAISS's buffers onto 2 MiB pages (Linux transparent huge pages), for
:class:`simsearch.store.faiss_file.FaissFile`: the exact index's vectors and an HNSW graph's
vectors and links, after a few searches (a one-shot query does not pay for the move)."""

from __future__ import annotations

import sys
from typing import Any

import faiss
import numpy as np

_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25  # linux/mman.h; MADV_COLLAPSE since Linux 6.1
_HUGE_PAGE = 2 << 20


def huge_pages(array: np.ndarray) -> bool:
    """Move the memory under ``array`` onto 2 MiB pages in place (Linux transparent huge pages).

    FAISS allocates its vectors with plain malloc, so they sit on 4 KiB pages, while numpy asks for
    huge pages on large arrays (``madvise``). An exact query streams every vector once, and over
    4 KiB pages the TLB misses cost ~10%: measured at 100k x 384, one thread, sgemv over FAISS's
    buffer 5.54 ms vs 4.98 ms over a numpy copy; after this call 4.94 vs 4.87 ms. Only the 2 MiB
    aligned middle of the buffer moves; where the kernel cannot (not Linux, THP disabled, a kernel
    before 6.1), nothing changes and False is returned.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    start = -(-array.ctypes.data // _HUGE_PAGE) * _HUGE_PAGE
    length = (array.ctypes.data + array.nbytes) // _HUGE_PAGE * _HUGE_PAGE - start
    if length <= 0:
        return False
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return False
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise(start, length, _MADV_HUGEPAGE)  # new pages of this range: huge from now on
    return madvise(start, length, _MADV_COLLAPSE) == 0  # the pages already there: now


def graph_huge_pages(index: faiss.Index) -> bool:
    """Move an HNSW index's vectors and links onto huge pages (:func:`huge_pages`); whether any
    part moved (never for other indexes). A graph search jumps between nodes all over both
    arrays, so on 4 KiB pages almost every vector it scores costs a TLB miss (measured at 1M
    vectors in benchmarks/README.md, "ANN at 1M"). Done after as many searches as the exact
    index's move, for the same reason: a one-shot query does not pay for it."""
    outer: Any = faiss.downcast_index(index)  # faiss's stubs type every index as the base Index
    inner: Any = faiss.downcast_index(outer.index) if isinstance(outer, faiss.IndexIDMap) else outer
    if not isinstance(inner, faiss.IndexHNSW) or inner.ntotal == 0:
        return False
    graph: Any = inner.hnsw  # the stubs lack HNSW's arrays
    links = graph.neighbors
    moved = huge_pages(faiss.rev_swig_ptr(links.data(), links.size()))
    storage = faiss.downcast_index(inner.storage)
    if isinstance(storage, faiss.IndexFlatCodes):
        moved = huge_pages(faiss.rev_swig_ptr(storage.codes.data(), storage.codes.size())) or moved
    return moved
