"""Shared by the integrations: boolean ``where`` building blocks and whole-index look-ups.

Each framework's filter language (Haystack's filter dicts, LlamaIndex's ``MetadataFilters``)
is translated into simsearch's agreed ``where`` dict (``{"$and": [...]}``, ``{"$or": [...]}``,
``{"$not": W}``, field operators ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``not in``,
``exists``). A condition that can match nothing (Haystack's ``> None``) is :data:`NOTHING`,
folded away here so the index never sees it.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from simsearch.errors import UnknownFieldError
from simsearch.hits import Hit
from simsearch.index import Index

NOTHING: dict[str, Any] = {"$or": []}  # matches no document (an empty disjunction)
EVERYTHING: dict[str, Any] = {}  # matches every document (no condition)


def all_of(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The conjunction of ``parts``: NOTHING if one is NOTHING, a single part as itself."""
    kept = [p for p in parts if p != EVERYTHING]
    if any(p is NOTHING or p == NOTHING for p in kept):
        return NOTHING
    if not kept:
        return EVERYTHING
    merged: dict[str, Any] = {}
    for part in kept:  # field conditions on distinct fields AND together as one plain dict
        if any(key.startswith("$") or key in merged for key in part):
            return kept[0] if len(kept) == 1 else {"$and": kept}
        merged.update(part)
    return merged


def any_of(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The disjunction of ``parts``: EVERYTHING if one is, NOTHING parts dropped."""
    kept = [p for p in parts if p != NOTHING]
    if any(p == EVERYTHING for p in kept):
        return EVERYTHING
    if not kept:
        return NOTHING
    return kept[0] if len(kept) == 1 else {"$or": kept}


def negate(part: dict[str, Any]) -> dict[str, Any]:
    """The complement of ``part``."""
    if part == NOTHING:
        return EVERYTHING
    if part == EVERYTHING:
        return NOTHING
    return {"$not": part}


def search_where(index: Index, query: np.ndarray, k: int, where: dict[str, Any] | None) -> list[Hit]:
    """The ``k`` nearest documents to one query row that match ``where`` (none for NOTHING, and
    none for a field no document has, as the frameworks' own stores answer)."""
    if where == NOTHING or len(index) == 0:
        return []
    try:
        return index.search_vectors(query, k, where=where or None)[0]
    except UnknownFieldError:
        return []


def matching_ids(index: Index, where: dict[str, Any] | None) -> list[str]:
    """Every id whose metadata match ``where``, in storage order (the order of :meth:`Index.ids`)."""
    ids = index.ids()
    if not where:
        return ids
    probe = np.zeros((1, int(index.manifest["dim"])), np.float32)
    probe[0, 0] = 1.0  # any unit row: every matching document comes back, the order is ours
    found = {hit.id for hit in search_where(index, probe, max(len(ids), 1), where)}
    return [doc_id for doc_id in ids if doc_id in found]
