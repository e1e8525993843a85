"""HNSW graph layout: stored vectors renumbered in breadth-first order of the graph.

FAISS stores an HNSW index's vectors and neighbour lists in the order they were added, so a
search, which walks from a node to its neighbours, reads memory scattered over the whole index.
Renumbering the nodes in breadth-first order of the bottom layer, starting at the entry point,
puts most neighbours of a node a few rows apart, so one search touches fewer pages and cache
lines (measured at 1M vectors in benchmarks/README.md, "ANN at 1M"). The graph and every search
result stay the same; only the positions change, and the id map (row ids) follows them.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np


def breadth_first(hnsw: Any, count: int) -> np.ndarray:
    """Node numbers of ``hnsw``'s bottom layer in breadth-first order from its entry point
    (neighbours in list order, so the closest come first); nodes it cannot reach come last."""
    # views of FAISS's arrays (no copy); a node's bottom-layer links are the first slots of its
    # range, -1 padding short lists
    offsets = faiss.rev_swig_ptr(hnsw.offsets.data(), count).view(np.int64)
    links = faiss.rev_swig_ptr(hnsw.neighbors.data(), hnsw.neighbors.size())
    slots = np.arange(hnsw.nb_neighbors(0))
    seen = np.zeros(count, dtype=bool)
    frontier = np.array([max(int(hnsw.entry_point), 0)], dtype=np.int64)
    seen[frontier] = True
    order = [frontier]
    while len(frontier):
        found = links[offsets[frontier][:, None] + slots].ravel()
        found = found[found >= 0]
        found = found[~seen[found]]
        unique, first = np.unique(found, return_index=True)
        frontier = unique[np.argsort(first, kind="stable")].astype(np.int64)  # first seen, first
        seen[frontier] = True
        order.append(frontier)
    order.append(np.flatnonzero(~seen))
    return np.concatenate(order)


def reorder(index: faiss.Index) -> bool:
    """Renumber an HNSW index's nodes in breadth-first order (inside an IDMap too), in place.

    Returns False, changing nothing, for other indexes, fewer than two vectors, or storage FAISS
    cannot permute. Transiently needs a second copy of the vectors and links (FAISS permutes
    into new buffers).
    """
    outer: Any = faiss.downcast_index(index)
    wrapped = isinstance(outer, faiss.IndexIDMap)
    inner = faiss.downcast_index(outer.index) if wrapped else outer
    if not isinstance(inner, faiss.IndexHNSW) or inner.ntotal < 2:
        return False
    if not isinstance(faiss.downcast_index(inner.storage), faiss.IndexFlatCodes):
        return False  # FAISS permutes flat-coded storage only (flat, SQ, PQ)
    order = breadth_first(inner.hnsw, int(inner.ntotal))
    inner.permute_entries(order)  # position i now holds the node that was at order[i]
    if wrapped:
        rowids = faiss.vector_to_array(outer.id_map)[order]
        faiss.copy_array_to_vector(rowids, outer.id_map)
        if isinstance(outer, faiss.IndexIDMap2):
            outer.construct_rev_map()
    return True
