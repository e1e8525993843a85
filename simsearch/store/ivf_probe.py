"""IVF searches that return every hit asked for: probe more lists until there are enough.

An IVF index only looks at the ``nprobe`` inverted lists nearest the query (tuned for recall@10),
so it can return fewer than ``k`` hits when ``k`` is large or a filter keeps a small share of
each list: 8 of 128 lists at 20,000 vectors hold ~1,250 vectors, ~310 of them when a filter keeps
a quarter. :func:`search_filled` searches with ``nprobe`` raised (by the caller for a filter's
selectivity, as HNSW's efSearch is), then 4x more lists until every query has its hits, and at
last every list, which is exhaustive. Works for plain IVF indexes and for ``ivfpq`` (``IDMap2``
over a refine stage over IVF-PQ), whose base index gets the probes and a translated selector.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

_GROWTH = 4


def ivf_of(index: faiss.Index) -> Any:
    """The IVF index inside ``index`` (plain, or under IDMap2/refine), or None."""
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def ivf_params(index: Any, nprobe: int, selector: Any = None) -> Any:
    """Search parameters probing ``nprobe`` lists, restricted to ``selector`` when given."""
    _FAISS: Any = faiss  # the search-parameter classes are not in faiss's type stubs
    inner = faiss.downcast_index(getattr(index, "index", index))
    if isinstance(inner, faiss.IndexRefine):
        # IDMap2 translates only the outer selector; the refine stage's base index holds
        # IDMap2's internal ids, so it gets a translated one (and the probes)
        translated = None if selector is None else _FAISS.IDSelectorTranslated(index.id_map, selector)
        base = _FAISS.SearchParametersIVF(sel=translated, nprobe=nprobe)
        return _FAISS.IndexRefineSearchParameters(
            sel=selector, k_factor=inner.k_factor, base_index_params=base
        )
    return _FAISS.SearchParametersIVF(sel=selector, nprobe=nprobe)


def search_filled(
    index: faiss.Index, queries: np.ndarray, k: int, wanted: int, nprobe: int, selector: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and ids of an IVF ``index``'s search, with at least ``wanted`` hits per query
    (ids >= 0) when the index (or ``selector``) holds that many."""
    nlist = int(ivf_of(index).nlist)
    nprobe = max(1, min(nlist, nprobe))
    while True:
        scores, ids = index.search(queries, k, params=ivf_params(index, nprobe, selector))
        if nprobe >= nlist or bool(((ids >= 0).sum(axis=1) >= wanted).all()):
            return scores, ids
        nprobe = min(nlist, nprobe * _GROWTH)
