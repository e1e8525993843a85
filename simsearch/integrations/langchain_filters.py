"""LangChain's ``filter=`` over a simsearch index: a dict becomes simsearch's metadata filter
(``where``), applied before ranking; a callable ``Document -> bool`` filters a widened set of
nearest candidates.

LangChain's rule for a document without the field: no comparison matches it, ``$ne`` and
``$nin`` included (so they map to "exists and !=" / "exists and not in"); ``$not`` is the
exact complement; ``$exists`` tests presence. A field no document has is such a field for
every document (``{"$or": [{"nope": 1}, {"lang": "en"}]}`` is ``{"lang": "en"}``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from langchain_core.documents import Document as LCDocument

from simsearch.errors import InputError, UnknownFieldError
from simsearch.index import Hit, Index

_OPS = {"$eq": "=", "$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">=", "$in": "in"}
# LangChain's stores: a document without the field never matches a comparison, $ne and $nin too
_PRESENT_AND = {"$ne": "!=", "$nin": "not in"}
_FIELD_OPS = (*_OPS, *_PRESENT_AND, "$exists")
Filter = dict[str, Any] | Callable[[LCDocument], bool] | None


def to_where(filter: dict[str, Any]) -> dict[str, Any]:
    """LangChain's ``filter`` dict as simsearch's ``where``: ``{field: value | {"$op": value}}``
    with ``$eq $ne $lt $lte $gt $gte $in $nin $exists``, nested in ``$and``/``$or`` (lists)
    and ``$not``. ``$ne``/``$nin`` also need the field (LangChain's missing-field rule)."""
    where = _where(filter, frozenset())
    return where if isinstance(where, dict) else {}


def _where(filter: Any, missing: frozenset[str]) -> dict[str, Any] | bool:
    """The ``where`` of ``filter``; True/False where it is decided by ``missing`` fields alone
    (fields no document has: every comparison on them is false)."""
    if not isinstance(filter, dict) or not filter:
        raise InputError(f"filter must be a non-empty dict of field -> condition, got {filter!r}")
    parts: list[dict[str, Any] | bool] = []
    for key, condition in filter.items():
        if not isinstance(key, str):
            raise InputError(f"filter keys must be field names or $and/$or/$not, got {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise InputError(f"filter {key} needs a non-empty list of filters, got {condition!r}")
            items = [_where(item, missing) for item in condition]
            parts.append(_all(items) if key == "$and" else _any(items))
        elif key == "$not":
            inner = _where(condition, missing)
            parts.append(not inner if isinstance(inner, bool) else {"$not": inner})
        elif key.startswith("$"):
            raise InputError(f"filter operator {key!r} is not supported; use $and, $or, $not or a field name")
        else:
            parts.append(_field(key, condition, key in missing))
    return _all(parts)


def _field(field: str, condition: Any, missing: bool) -> dict[str, Any] | bool:
    ops = condition if isinstance(condition, dict) else {"$eq": condition}
    parts: list[dict[str, Any] | bool] = []
    for op, value in ops.items():
        if op not in _FIELD_OPS:
            raise InputError(
                f"filter on {field!r}: unknown operator {op!r}; use one of {', '.join(_FIELD_OPS)}"
            )
        if op == "$exists":
            if not isinstance(value, bool):
                raise InputError(f"filter on {field!r}: $exists needs true or false, got {value!r}")
            parts.append(not value if missing else {field: {"exists": value}})
        elif missing:
            parts.append(False)
        elif op in _PRESENT_AND:
            parts.append({field: {"exists": True, _PRESENT_AND[op]: value}})
        else:
            parts.append({field: {_OPS[op]: value} if isinstance(condition, dict) else value})
    return _all(parts)


def _all(parts: list[dict[str, Any] | bool]) -> dict[str, Any] | bool:
    if any(part is False for part in parts):
        return False
    wheres = [part for part in parts if isinstance(part, dict)]
    if not wheres:
        return True
    merged: dict[str, Any] = {}
    for where in wheres:  # one dict where the fields and operators do not clash (as before)
        for key, spec in where.items():
            have = merged.get(key)
            if have is None:
                merged[key] = spec
            elif isinstance(have, dict) and isinstance(spec, dict) and not set(have) & set(spec):
                merged[key] = {**have, **spec}
            else:
                return wheres[0] if len(wheres) == 1 else {"$and": wheres}
    return merged


def _any(parts: list[dict[str, Any] | bool]) -> dict[str, Any] | bool:
    if any(part is True for part in parts):
        return True
    wheres = [part for part in parts if isinstance(part, dict)]
    if not wheres:
        return False
    return wheres[0] if len(wheres) == 1 else {"$or": wheres}


def filtered_search(index: Index, query: np.ndarray, k: int, filter: Filter) -> list[Hit]:
    """The ``k`` nearest documents that pass ``filter``.

    A dict filter is simsearch's metadata filter (``where``), applied before ranking, so ``k``
    hits come back whenever ``k`` documents match. A callable filter (LangChain's other form)
    sees each candidate ``Document``: a post-filter over a widened candidate set (4k, then 4x
    more until k match or the index is exhausted).
    """
    if filter is None:
        return index.search_vectors(query, k)[0]
    if not callable(filter):
        missing: frozenset[str] = frozenset()
        while True:  # LangChain's stores: a field no document has is missing from every document
            where = _where(filter, missing)
            if where is False:
                return []
            try:
                return index.search_vectors(query, k, where=None if where is True else where)[0]
            except UnknownFieldError as error:
                if not error.field or error.field in missing:
                    raise
                missing |= {error.field}
    total, wanted = len(index), max(4 * k, 32)
    while True:
        hits = index.search_vectors(query, min(wanted, max(total, 1)))[0]
        found = [hit for hit in hits if filter(hit_document(hit))]
        if len(found) >= k or wanted >= total:
            return found[:k]
        wanted *= 4


def hit_document(hit: Hit) -> LCDocument:
    """A hit as a LangChain ``Document`` (its id, text and metadata)."""
    return LCDocument(page_content=hit.text, metadata=hit.metadata, id=hit.id)
