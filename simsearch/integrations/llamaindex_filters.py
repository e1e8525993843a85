"""LlamaIndex's ``MetadataFilters`` as simsearch's ``where``.

Each ``FilterOperator`` that has an exact counterpart maps (``==``, ``!=``, ``>``, ``>=``, ``<``,
``<=``, ``in``, ``nin`` -> ``not in``, ``is_empty`` -> the field is absent); ``and``/``or``/``not``
conditions nest (``not``: none of the filters holds, as LlamaIndex's simple store reads it).
``any``, ``all``, ``contains``, ``text_match`` and ``text_match_insensitive`` have no exact
counterpart in ``where`` and are refused with an error naming them.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from simsearch.errors import QueryError
from simsearch.integrations.where import all_of, any_of, negate

_OPS = {
    FilterOperator.EQ: "=",
    FilterOperator.NE: "!=",
    FilterOperator.GT: ">",
    FilterOperator.GTE: ">=",
    FilterOperator.LT: "<",
    FilterOperator.LTE: "<=",
    FilterOperator.IN: "in",
    FilterOperator.NIN: "not in",
}


def to_where(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """``filters`` as a ``where`` dict (None for no filter)."""
    if filters is None or not filters.filters:
        return None
    return _node(filters)


def _node(filters: MetadataFilters) -> dict[str, Any]:
    parts = [_node(f) if isinstance(f, MetadataFilters) else _leaf(f) for f in filters.filters]
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return all_of(parts)
    if condition == FilterCondition.OR:
        return any_of(parts)
    return negate(any_of(parts))  # NOT: none of them


def _leaf(leaf: MetadataFilter) -> dict[str, Any]:
    if leaf.operator == FilterOperator.IS_EMPTY:
        return {leaf.key: {"exists": False}}
    if leaf.operator not in _OPS:
        mapped = ", ".join(op.value for op in [*_OPS, FilterOperator.IS_EMPTY])
        raise QueryError(
            f"filter on {leaf.key!r}: operator {leaf.operator.value!r} has no simsearch equivalent; "
            f"use one of {mapped}"
        )
    op = _OPS[leaf.operator]
    if op in ("in", "not in") and not isinstance(leaf.value, list):
        raise QueryError(f"filter on {leaf.key!r}: {leaf.operator.value!r} needs a list value")
    return {leaf.key: {op: leaf.value}}
