"""Filter values, checked and grouped by the JSON type of the metadata they compare with.

A metadata field may hold several JSON types (numbers and one stray text), and the CLI gives
every value as text; so a value is compared with each type of the field it can mean: ``"2020"``
with the field's texts as a text and with its numbers as a number. A value that can mean none
of the field's types, a number SQLite cannot hold exactly (an integer beyond 64 bits, NaN,
infinity) and a string that is not valid Unicode (a lone surrogate) are one-line
:class:`~simsearch.errors.QueryError`\\ s.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

from simsearch.errors import QueryError

#: (JSON types of the field's values, values to compare with them; None: the type is the value)
Groups = list[tuple[tuple[str, ...], list[Any] | None]]

NUMERIC = ("integer", "real")
BOOLEAN = ("false", "true")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_NOT_FINITE = {"nan", "inf", "infinity"}
_INT64 = 2**63


def check_text(text: str, what: str) -> None:
    """Refuse a string SQLite cannot take: one holding a lone surrogate (not valid Unicode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise QueryError(f"where: {what} {text!r} is not valid Unicode (it holds a lone surrogate)") from None


def value_groups(field: str, op: str, values: list[Any], held: set[str]) -> Groups:
    """The values of ``=``/``in`` (and their negations), grouped by the types they compare with."""
    texts: list[str] = []
    numbers_: list[int | float] = []
    booleans: set[str] = set()
    for value in values:
        matched = False  # with at least one of the field's types
        if isinstance(value, bool):
            if matched := bool(held.intersection(BOOLEAN)):
                booleans.add("true" if value else "false")
        elif isinstance(value, numbers.Real):
            number = _finite(field, op, value)
            if matched := bool(held.intersection(NUMERIC)):
                numbers_.append(number)
        elif isinstance(value, str):
            check_text(value, "value")
            if "text" in held:
                texts.append(value)
                matched = True
            number_ = _parse(field, op, value) if held.intersection(NUMERIC) else None
            if number_ is not None:
                numbers_.append(number_)
                matched = True
            if held.intersection(BOOLEAN) and value.strip().lower() in BOOLEAN:
                booleans.add(value.strip().lower())
                matched = True
        else:
            raise QueryError(
                f"where: value {value!r} for field {field!r} must be a string, number or boolean"
            )
        if not matched:
            raise _mismatch(field, op, value, held)
    groups: Groups = []
    if texts:
        groups.append((("text",), texts))
    if numbers_:
        groups.append((NUMERIC, numbers_))
    if booleans:
        groups.append((tuple(sorted(booleans)), None))
    return groups


def range_groups(field: str, op: str, value: Any, held: set[str]) -> Groups:
    """The value of ``<``, ``<=``, ``>``, ``>=``: a number (for the field's numbers) or an ISO
    date (for its texts)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = _finite(field, op, value)
        if not held.intersection(NUMERIC):
            raise _mismatch(field, op, value, held)
        return [(NUMERIC, [number])]
    if not isinstance(value, str):
        raise _not_ordered(field, op, value)
    check_text(value, "value")
    number_ = _parse(field, op, value)
    is_date = bool(ISO_DATE.match(value))
    groups: Groups = []
    if number_ is not None and held.intersection(NUMERIC):
        groups.append((NUMERIC, [number_]))
    if is_date and "text" in held:
        groups.append((("text",), [value]))
    if groups:
        return groups
    if number_ is not None or is_date or "text" not in held:
        raise _mismatch(field, op, value, held)
    raise _not_ordered(field, op, value)


def _parse(field: str, op: str, text: str) -> int | float | None:
    """A number written as text (strictly: digits, a point, an exponent), or None."""
    stripped = text.strip()
    if stripped.lower().lstrip("+-") in _NOT_FINITE:
        raise QueryError(f"where: {op} {text!r} for field {field!r} is not a finite number")
    if _INTEGER.match(stripped):
        return _finite(field, op, int(stripped))
    if _NUMBER.match(stripped):
        number = float(stripped)
        if not math.isfinite(number):  # 1e400
            raise QueryError(f"where: {op} {text!r} for field {field!r} is out of range for a number")
        return number
    return None


def _finite(field: str, op: str, value: Any) -> int | float:
    """A number SQLite compares exactly: a 64-bit integer or a finite float."""
    if isinstance(value, numbers.Integral):
        if not -_INT64 <= int(value) < _INT64:
            raise QueryError(
                f"where: {op} {value} for field {field!r} is out of range (integers must fit in 64 bits)"
            )
        return int(value)
    number = float(value)
    if not math.isfinite(number):
        raise QueryError(f"where: {op} {value!r} for field {field!r} is not a finite number")
    return number


def _not_ordered(field: str, op: str, value: Any) -> QueryError:
    return QueryError(
        f"where: {op} on field {field!r} needs a number or an ISO date (YYYY-MM-DD), got {value!r}"
    )


def _mismatch(field: str, op: str, value: Any, held: set[str]) -> QueryError:
    kinds = ", ".join(sorted({"number" if t in NUMERIC else "boolean" if t in BOOLEAN else t for t in held}))
    return QueryError(f"where: field {field!r} holds {kinds} values; {op} {value!r} does not match that type")
