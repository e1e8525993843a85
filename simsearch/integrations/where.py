"""Shared by the integrations: boolean ``where`` building blocks and whole-index look-ups.

Each framework's filter language (Haystack's filter dicts, LlamaIndex's ``MetadataFilters``)
is translated into simsearch's agreed ``where`` dict (``{"$and": [...]}``, ``{"$or": [...]}``,
``{"$not": W}``, field operators ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``not in``,
``exists``). A condition that can match nothing (Haystack's ``> None``) is :data:`NOTHING`,
folded away here so the index never sees it.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from simsearch.errors import UnknownFieldError
from simsearch.search.hits import Hit
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


_TRUE_WHEN_MISSING = {"!=": True, "not in": True}  # the negations of = and in; the rest are false


def without_fields(where: dict[str, Any], missing: frozenset[str]) -> dict[str, Any]:
    """``where`` with every condition on a field in ``missing`` (a field no document has)
    replaced by what it is for a document without it: ``!=``/``not in`` true, ``exists`` its
    negation, the other comparisons false (the agreed missing-field semantics)."""
    parts: list[dict[str, Any]] = []
    for key, value in where.items():
        if key == "$and":
            parts.append(all_of(without_fields(w, missing) for w in value))
        elif key == "$or":
            parts.append(any_of(without_fields(w, missing) for w in value))
        elif key == "$not":
            parts.append(negate(without_fields(value, missing)))
        elif key not in missing:
            parts.append({key: value})
        else:
            ops = value if isinstance(value, dict) else {"=": value}
            held = all(
                not v if op == "exists" else _TRUE_WHEN_MISSING.get(op, False) for op, v in ops.items()
            )
            parts.append(EVERYTHING if held else NOTHING)
    return all_of(parts)


def run_where(
    where: dict[str, Any] | None, search: Callable[[dict[str, Any] | None], list[Hit]]
) -> list[Hit]:
    """``search(where)``, where a field no document has is missing from every document (see
    :func:`without_fields`), as the frameworks' own stores answer; when the error does not name
    the field, nothing matches."""
    missing: frozenset[str] = frozenset()
    while True:
        effective = without_fields(where, missing) if where else EVERYTHING
        if effective == NOTHING:
            return []
        try:
            return search(effective or None)
        except UnknownFieldError as error:
            field = getattr(error, "field", None)  # set by the boolean-where core
            if not field or field in missing:
                return []
            missing |= {field}


def search_where(index: Index, query: np.ndarray, k: int, where: dict[str, Any] | None) -> list[Hit]:
    """The ``k`` nearest documents to one query row that match ``where`` (see :func:`run_where`)."""
    if len(index) == 0:
        return []
    return run_where(where, lambda effective: index.search_vectors(query, k, where=effective)[0])


def matching_ids(index: Index, where: dict[str, Any] | None) -> list[str]:
    """Every id whose metadata match ``where``, in storage order (the order of :meth:`Index.ids`)."""
    ids = index.ids()
    if not where:
        return ids
    probe = np.zeros((1, int(index.manifest["dim"])), np.float32)
    probe[0, 0] = 1.0  # any unit row: every matching document comes back, the order is ours
    found = {hit.id for hit in search_where(index, probe, max(len(ids), 1), where)}
    return [doc_id for doc_id in ids if doc_id in found]
