"""LangChain's ``filter=`` over a simsearch index: a dict becomes simsearch's metadata filter
(``where``), applied before ranking; a callable ``Document -> bool`` filters a widened set of
nearest candidates.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from langchain_core.documents import Document as LCDocument

from simsearch.errors import InputError
from simsearch.index import Hit, Index
from simsearch.integrations.where import search_where

_OPS = {"$eq": "=", "$ne": "!=", "$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">=", "$in": "in"}
Filter = dict[str, Any] | Callable[[LCDocument], bool] | None


def to_where(filter: dict[str, Any]) -> dict[str, Any]:
    """LangChain's ``filter`` dict as simsearch's ``where`` ({field: value | {op: value}})."""
    where: dict[str, Any] = {}
    for field, condition in filter.items():
        if field.startswith("$"):
            raise InputError(f"filter operator {field!r} is not supported; give {{field: condition}} pairs")
        if isinstance(condition, dict):
            unknown = [op for op in condition if op not in _OPS]
            if unknown:
                raise InputError(
                    f"filter on {field!r}: unknown operator {unknown[0]!r}; use one of {', '.join(_OPS)}"
                )
            where[field] = {_OPS[op]: value for op, value in condition.items()}
        else:
            where[field] = condition
    return where


def filtered_search(index: Index, query: np.ndarray, k: int, filter: Filter) -> list[Hit]:
    """The ``k`` nearest documents that pass ``filter``.

    A dict filter is simsearch's metadata filter (``where``), applied before ranking, so ``k``
    hits come back whenever ``k`` documents match. A callable filter (LangChain's other form)
    sees each candidate ``Document``: a post-filter over a widened candidate set (4k, then 4x
    more until k match or the index is exhausted).
    """
    if filter is None:
        return index.search_vectors(query, k)[0]
    if not callable(filter):  # (a field no document has matches nothing, as in LangChain's stores)
        return search_where(index, query, k, to_where(filter))
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
