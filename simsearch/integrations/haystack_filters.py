"""Haystack's filter dicts as simsearch's ``where``.

Haystack writes ``{"field": "meta.year", "operator": ">=", "value": 2020}`` and nests
``{"operator": "AND" | "OR" | "NOT", "conditions": [...]}`` (``NOT`` negates the conjunction of
its conditions). Only ``meta.*`` fields can be filtered. ``== None`` means the field is absent,
``!= None`` that it is present, an ordering against None matches nothing; an ordering against
text that is not an ISO date, a list, or ``in`` without a list is a ``FilterError``, as
Haystack's own stores answer.
"""

from __future__ import annotations

import re
from typing import Any

from haystack.errors import FilterError

from simsearch.integrations.where import NOTHING, all_of, any_of, negate

_COMPARE = {"==": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<=", "in": "in", "not in": "not in"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def to_where(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Haystack ``filters`` as a ``where`` dict (None for no filter)."""
    if not filters:
        return None
    if not isinstance(filters, dict):
        raise FilterError(f"filters must be a dict, got {type(filters).__name__}")
    return _node(filters)


def _node(node: Any) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise FilterError(f"a filter condition must be a dict, got {node!r}")
    if "field" in node:
        return _comparison(node)
    if "operator" not in node:
        raise FilterError(f"filter {node!r} has no 'operator' key")
    if "conditions" not in node:
        raise FilterError(f"filter {node!r} has no 'conditions' key")
    operator, conditions = node["operator"], node["conditions"]
    if not isinstance(conditions, list):
        raise FilterError(f"'conditions' must be a list, got {conditions!r}")
    parts = [_node(c) for c in conditions]
    if operator == "AND":
        return all_of(parts)
    if operator == "OR":
        return any_of(parts)
    if operator == "NOT":
        return negate(all_of(parts))
    raise FilterError(f"unknown logical operator {operator!r}; use AND, OR or NOT")


def _comparison(node: dict[str, Any]) -> dict[str, Any]:
    for key in ("operator", "value"):
        if key not in node:
            raise FilterError(f"filter condition {node!r} has no {key!r} key")
    field, operator, value = node["field"], node["operator"], node["value"]
    if not isinstance(field, str) or not field.startswith("meta.") or len(field) <= 5:
        raise FilterError(f"cannot filter on {field!r}: only metadata fields ('meta.NAME') can be filtered")
    name = field[5:]
    if operator not in _COMPARE:
        raise FilterError(f"unknown comparison operator {operator!r}; use one of {', '.join(_COMPARE)}")
    if operator in ("in", "not in"):
        if not isinstance(value, list):
            raise FilterError(f"{field} {operator}: the value must be a list, got {value!r}")
        return {name: {_COMPARE[operator]: value}}
    if value is None:
        if operator in ("==", "!="):
            return {name: {"exists": operator == "!="}}
        return NOTHING  # an ordering against None holds for no document
    if operator in (">", ">=", "<", "<="):
        ordered = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ordered and not (isinstance(value, str) and _ISO_DATE.match(value)):
            raise FilterError(f"{field} {operator} {value!r}: compare with a number or an ISO date")
    return {name: {_COMPARE[operator]: value}}
