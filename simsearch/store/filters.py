"""Metadata filters: a ``where`` dict -> a parameterised SQL condition over ``documents``.

``where`` maps a top-level metadata field to a value (equality) or to ``{operator: value}``
with operators ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` (numbers and ISO dates) and ``in``
(a list); all conditions must hold (AND)::

    {"lang": "ko", "year": {">=": 2020}, "source": {"in": ["news", "wiki"]}}

Fields and types are checked against the metadata the index holds (one scan per committed
generation, cached): an unknown field, a bad operator or a value of the wrong type is a
:class:`~simsearch.errors.QueryError`. Text values given for a numeric field (as the CLI gives
them) are read as numbers. Field names travel as SQL parameters (JSON paths), never as SQL text.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections import OrderedDict
from typing import Any, Iterable, Mapping
from weakref import WeakKeyDictionary

import numpy as np

from simsearch.store.sql import marks
from simsearch.errors import QueryError, UnknownFieldError

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in")
_SQL_OP = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_NUMERIC = {"integer", "real"}
_BOOLEAN = {"true", "false"}
_CACHED: WeakKeyDictionary[Any, _Metadata] = WeakKeyDictionary()
_CACHED_LOCK = threading.Lock()
_ALLOWED_CACHE = 32  # allowed-rowid arrays kept per generation (the same filters come back)

#: A compiled ``where``: SQL over ``documents d`` and its parameters. Plain str/number tuples, so
#: it is hashable (the allowed-rowid cache key) and travels to Ray actors as it is.
Condition = tuple[str, tuple[Any, ...]]


def field_types(db: sqlite3.Connection) -> dict[str, set[str]]:
    """Top-level metadata field -> the JSON types it holds across the documents."""
    types: dict[str, set[str]] = {}
    for key, kind in db.execute("SELECT DISTINCT j.key, j.type FROM documents d, json_each(d.metadata) j"):
        types.setdefault(str(key), set()).add(str(kind))
    return types


class _Metadata:
    """One committed generation's metadata, copied once into an in-memory SQLite table.

    The documents table also holds the vectors, so a scan of it reads the whole file; the copy
    holds only row ids and metadata JSON, and the allowed row ids of recent filters are kept.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.execute("CREATE TABLE documents (rowid INTEGER PRIMARY KEY, metadata TEXT NOT NULL)")
        self.db.executemany(
            "INSERT INTO documents VALUES (?, ?)", db.execute("SELECT rowid, metadata FROM documents")
        )
        self.types = field_types(self.db)
        self.lock = threading.Lock()
        self.allowed: OrderedDict[Condition, np.ndarray] = OrderedDict()

    def rowids(self, condition: Condition) -> np.ndarray:
        key = condition
        with self.lock:
            found = self.allowed.get(key)
            if found is None:
                rows = self.db.execute(
                    f"SELECT d.rowid FROM documents d WHERE {condition[0]} ORDER BY d.rowid", condition[1]
                )
                found = np.fromiter((r[0] for r in rows), dtype=np.int64)
                self.allowed[key] = found
                if len(self.allowed) > _ALLOWED_CACHE:
                    self.allowed.popitem(last=False)
            else:
                self.allowed.move_to_end(key)
            return found


def _metadata(owner: Any, db: sqlite3.Connection) -> _Metadata:
    with _CACHED_LOCK:
        metadata = _CACHED.get(owner)
        if metadata is None:
            metadata = _CACHED[owner] = _Metadata(db)
    return metadata


def metadata_types(owner: Any, db: sqlite3.Connection) -> dict[str, set[str]]:
    """Field -> JSON types of the generation ``owner`` holds open through ``db`` (cached with
    its in-memory metadata copy; an empty generation has no fields)."""
    return {field: set(kinds) for field, kinds in _metadata(owner, db).types.items()}


def merge_types(parts: Iterable[dict[str, set[str]]]) -> dict[str, set[str]]:
    """The union of several generations' (shards') field types: what a ``where`` over all of
    them is compiled against, so every shard reads the filter the same way."""
    merged: dict[str, set[str]] = {}
    for part in parts:
        for field, kinds in part.items():
            merged.setdefault(field, set()).update(kinds)
    return merged


def allowed_rowids(owner: Any, db: sqlite3.Connection, condition: Condition) -> np.ndarray:
    """Sorted row ids of the documents a compiled ``condition`` (:func:`compile_where`) keeps, in
    the generation ``owner`` holds open through ``db`` (cached per generation and condition)."""
    if condition is None:
        raise QueryError("where: no condition given")
    return _metadata(owner, db).rowids(condition)


def compile_where(where: Mapping[str, Any] | None, types: dict[str, set[str]]) -> Condition | None:
    """SQL condition over ``documents d`` and its parameters, or None for no filter."""
    if where is None or not where:
        return None
    if not isinstance(where, Mapping):
        raise QueryError(
            f"where must be a dict of field -> value or {{operator: value}}, got {type(where).__name__}"
        )
    parts: list[str] = []
    params: list[Any] = []
    for field, spec in where.items():
        if not isinstance(field, str) or not field:
            raise QueryError(f"where: field names must be non-empty strings, got {field!r}")
        if field not in types:
            known = ", ".join(sorted(types)[:10]) or "none"
            raise UnknownFieldError(
                f"where: unknown metadata field {field!r} (fields in this index: {known})"
            )
        conditions = spec if isinstance(spec, Mapping) else {"=": spec}
        if not conditions:
            raise QueryError(f"where: no condition given for field {field!r}")
        for op, value in conditions.items():
            sql, values = _condition(field, op, value, types[field])
            parts.append(sql)
            params.extend(values)
    return " AND ".join(parts), tuple(params)


def _condition(field: str, op: Any, value: Any, held: set[str]) -> tuple[str, list[Any]]:
    path = '$."' + field.replace('"', '\\"') + '"'
    if op not in OPERATORS:
        raise QueryError(f"where: bad operator {op!r} for field {field!r}; use one of {' '.join(OPERATORS)}")
    if op == "in":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        if not isinstance(value, (list, tuple)) or not value:
            raise QueryError(f"where: 'in' for field {field!r} needs a non-empty list of values")
        values = [_coerce(field, "in", v, held) for v in value]
        return f"json_extract(d.metadata, ?) IN ({marks(len(values))})", [path, *values]
    coerced = _coerce(field, op, value, held)
    if op in ("<", "<=", ">", ">=") and not (
        isinstance(coerced, (int, float))
        and not isinstance(value, bool)
        or isinstance(coerced, str)
        and _ISO_DATE.match(coerced)
    ):
        raise QueryError(
            f"where: {op} on field {field!r} needs a number or an ISO date (YYYY-MM-DD), got {value!r}"
        )
    if op == "!=":  # documents without the field are "not equal" too
        return "(json_extract(d.metadata, ?) IS NULL OR json_extract(d.metadata, ?) != ?)", [
            path,
            path,
            coerced,
        ]
    return f"json_extract(d.metadata, ?) {_SQL_OP[op]} ?", [path, coerced]


def _coerce(field: str, op: str, value: Any, held: set[str]) -> Any:
    """``value`` as SQLite compares it with what ``json_extract`` returns for ``field``."""
    if isinstance(value, bool):
        if not held & _BOOLEAN:
            raise _mismatch(field, op, value, held)
        return int(value)
    if isinstance(value, (int, float)):
        if not held & _NUMERIC:
            raise _mismatch(field, op, value, held)
        return value
    if isinstance(value, str):
        if "text" in held:
            return value
        if held & _NUMERIC:
            try:
                number = float(value)
            except ValueError:
                raise _mismatch(field, op, value, held) from None
            return int(number) if number.is_integer() and "." not in value else number
        if held & _BOOLEAN and value.lower() in ("true", "false"):
            return int(value.lower() == "true")
        raise _mismatch(field, op, value, held)
    raise QueryError(f"where: value {value!r} for field {field!r} must be a string, number or boolean")


def _mismatch(field: str, op: str, value: Any, held: set[str]) -> QueryError:
    kinds = ", ".join(
        sorted({"number" if t in _NUMERIC else "boolean" if t in _BOOLEAN else t for t in held})
    )
    return QueryError(f"where: field {field!r} holds {kinds} values; {op} {value!r} does not match that type")


def parse_cli(expressions: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]]:
    """``FIELD=VALUE``, ``FIELD!=VALUE``, ``FIELD<=VALUE`` ..., ``FIELD in a,b,c`` -> a where dict."""
    where: dict[str, dict[str, Any]] = {}
    for text in expressions:
        match = re.match(r"^\s*([^\s=!<>]+)\s*(!=|<=|>=|=|<|>|\s+in\s+)\s*(.*?)\s*$", text)
        if not match or not match.group(3):
            raise QueryError(
                f"--where {text!r}: write FIELD=VALUE, FIELD!=VALUE, FIELD<VALUE, "
                "FIELD<=VALUE, FIELD>VALUE, FIELD>=VALUE or 'FIELD in a,b,c'"
            )
        field, op, value = match.group(1), match.group(2).strip(), match.group(3)
        where.setdefault(field, {})[op] = value
    return where
