"""Metadata filters: a ``where`` dict -> a parameterised SQL condition, compiled once.

``where`` maps a top-level metadata field to a value (equality) or to ``{operator: value}``;
fields are AND-ed, and ``$and``/``$or`` (lists of ``where``) and ``$not`` (one ``where``) nest::

    {"lang": "ko", "year": {">=": 2020}, "$or": [{"source": "wiki"}, {"$not": {"tag": "draft"}}]}

Operators: ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` (numbers and ISO dates), ``in`` and
``not in`` (a list), ``exists`` (true/false). A comparison (``=``, ``<`` ... , ``in``) is false
for a document without the field; ``!=`` and ``not in`` are their exact negations (true for it);
``$not`` is the exact complement; ``exists`` tests presence.

:func:`compile_where` checks a ``where`` against field types (:func:`metadata_types` of one
generation, or :func:`merge_types` over shards) and returns a hashable :data:`Condition`;
:func:`allowed_rowids` runs it on one generation's in-memory metadata copy, where every
top-level field is a row ``(rowid, key, type, value)``. Values are compared per JSON type, so a
field holding numbers and a stray text still matches its numbers; field names are compared as
keys (any name, quotes included), and every value is a bound parameter.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from typing import Any, Iterable, Mapping
from weakref import WeakKeyDictionary

import numpy as np

from simsearch.errors import QueryError, UnknownFieldError
from simsearch.search.where_values import Groups, check_text, range_groups, value_groups

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "not in", "exists")
LOGICAL = ("$and", "$or", "$not")
MAX_DEPTH = 32  # nesting of $and/$or/$not (SQLite's expression depth is limited too)
MAX_PARAMETERS = 30000  # bound values in one filter (SQLite's limit is 32766 on older builds)
_RANGE = ("<", "<=", ">", ">=")
# Keyed by whatever object stands for an open generation (a Store): its copy lives as long as it.
_CACHED: WeakKeyDictionary[object, _Metadata] = WeakKeyDictionary()
_CACHED_LOCK = threading.Lock()
_ALLOWED_CACHE = 32  # allowed-rowid arrays kept per generation (the same filters come back)
# Distinct filters on a generation before its field table is indexed: measured at 100k documents
# x 5 fields, the index takes 0.9 s to build (the copy itself 0.6 s) and cuts a filter from
# 60-210 ms to 1-130 ms, so a one-shot CLI query skips it and a served index builds it once.
_INDEX_AFTER = 2

#: A compiled ``where``: SQL over the metadata copy (``documents d`` and ``fields``) and its
#: parameters. Plain str/number tuples, so it is hashable (the allowed-rowid cache key) and
#: travels to Ray actors as it is.
Condition = tuple[str, tuple[Any, ...]]


def field_types(db: sqlite3.Connection) -> dict[str, set[str]]:
    """Top-level metadata field -> the JSON types it holds across the documents."""
    types: dict[str, set[str]] = {}
    for key, kind in db.execute("SELECT DISTINCT j.key, j.type FROM documents d, json_each(d.metadata) j"):
        types.setdefault(str(key), set()).add(str(kind))
    return types


class _Metadata:
    """One committed generation's metadata, copied once into an in-memory SQLite database.

    The documents table also holds the vectors, so a scan of it reads the whole file; the copy
    holds one row per document and field (indexed by field from the second distinct filter on),
    and the allowed row ids of recent filters are kept.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.executescript(
            "CREATE TABLE documents (rowid INTEGER PRIMARY KEY, metadata TEXT NOT NULL);"
            "CREATE TABLE fields (rowid INTEGER NOT NULL, key TEXT NOT NULL, type TEXT NOT NULL, value);"
        )
        self.db.executemany(
            "INSERT INTO documents VALUES (?, ?)", db.execute("SELECT rowid, metadata FROM documents")
        )
        self.db.execute(
            "INSERT INTO fields SELECT d.rowid, j.key, j.type, j.value FROM documents d, json_each(d.metadata) j"
        )
        self.db.execute("UPDATE documents SET metadata = ''")  # the fields hold all a filter reads
        self.misses = 0
        self.types: dict[str, set[str]] = {}
        for key, kind in self.db.execute("SELECT DISTINCT key, type FROM fields"):
            self.types.setdefault(str(key), set()).add(str(kind))
        self.lock = threading.Lock()
        self.allowed: OrderedDict[Condition, np.ndarray] = OrderedDict()

    def rowids(self, condition: Condition) -> np.ndarray:
        with self.lock:
            found = self.allowed.get(condition)
            if found is None:
                self.misses += 1
                if self.misses == _INDEX_AFTER:  # a long-lived process: filters come and go
                    self.db.execute("CREATE INDEX fields_by_key ON fields (key, type, value)")
                rows = self.db.execute(
                    f"SELECT d.rowid FROM documents d WHERE {condition[0]} ORDER BY d.rowid", condition[1]
                )
                found = np.fromiter((r[0] for r in rows), dtype=np.int64)
                self.allowed[condition] = found
                if len(self.allowed) > _ALLOWED_CACHE:
                    self.allowed.popitem(last=False)
            else:
                self.allowed.move_to_end(condition)
            return found


def _metadata(owner: object, db: sqlite3.Connection) -> _Metadata:
    with _CACHED_LOCK:
        metadata = _CACHED.get(owner)
        if metadata is None:
            metadata = _CACHED[owner] = _Metadata(db)
    return metadata


def metadata_types(owner: object, db: sqlite3.Connection) -> dict[str, set[str]]:
    """Field -> JSON types of the generation ``owner`` holds open through ``db`` (cached with
    its in-memory metadata copy; an empty generation has no fields)."""
    return {field: set(kinds) for field, kinds in _metadata(owner, db).types.items()}


def merge_types(parts: Iterable[dict[str, set[str]]]) -> dict[str, set[str]]:
    """The union of several generations' (shards') field types: what a ``where`` over all of
    them is compiled against, so every shard reads the filter the same way and a field held by
    some shards only is known (it matches nothing on the others)."""
    merged: dict[str, set[str]] = {}
    for part in parts:
        for field, kinds in part.items():
            merged.setdefault(field, set()).update(kinds)
    return merged


def allowed_rowids(owner: object, db: sqlite3.Connection, condition: Condition) -> np.ndarray:
    """Sorted row ids of the documents a compiled ``condition`` (:func:`compile_where`) keeps, in
    the generation ``owner`` holds open through ``db`` (cached per generation and condition)."""
    if condition is None:
        raise QueryError("where: no condition given")
    return _metadata(owner, db).rowids(condition)


def compile_where(where: Mapping[str, Any] | None, types: dict[str, set[str]]) -> Condition | None:
    """The SQL condition of ``where`` and its parameters, or None for no filter (None or {}).

    ``types``: field -> JSON types (:func:`metadata_types`, :func:`merge_types`). Raises
    :class:`~simsearch.errors.UnknownFieldError` for a field no document holds and
    :class:`~simsearch.errors.QueryError` for any other mistake, in one line."""
    if where is None:
        return None
    if not isinstance(where, Mapping):
        raise QueryError(
            f"where must be a dict of field -> value or {{operator: value}}, got {type(where).__name__}"
        )
    if not where:
        return None
    sql, params = _compile(where, types, 0)
    if len(params) > MAX_PARAMETERS:
        raise QueryError(f"where: {len(params)} values in one filter; the limit is {MAX_PARAMETERS}")
    return sql, tuple(params)


def _compile(where: Any, types: dict[str, set[str]], depth: int) -> tuple[str, list[Any]]:
    if depth > MAX_DEPTH:
        raise QueryError(f"where: nested more than {MAX_DEPTH} levels deep")
    if not isinstance(where, Mapping) or not where:
        raise QueryError(f"where: $and/$or items and $not need a non-empty dict, got {where!r}")
    parts: list[str] = []
    params: list[Any] = []
    for key, spec in where.items():
        if not isinstance(key, str) or not key:
            raise QueryError(f"where: field names must be non-empty strings, got {key!r}")
        check_text(key, "field name")
        if key in ("$and", "$or") and key not in types:
            if not isinstance(spec, (list, tuple)) or not spec:
                raise QueryError(f"where: {key} needs a non-empty list of conditions, got {spec!r}")
            inner = [_compile(item, types, depth + 1) for item in spec]
            parts.append("(" + (" AND " if key == "$and" else " OR ").join(s for s, _ in inner) + ")")
            params.extend(p for _, values in inner for p in values)
        elif key == "$not" and key not in types:
            sql, values = _compile(spec, types, depth + 1)
            parts.append(f"NOT ({sql})")
            params.extend(values)
        else:
            sql, values = _field(key, spec, types)
            parts.append(sql)
            params.extend(values)
    return " AND ".join(parts), params


def _field(field: str, spec: Any, types: dict[str, set[str]]) -> tuple[str, list[Any]]:
    if field not in types:
        if field.startswith("$"):
            raise QueryError(f"where: unknown operator {field!r}; use one of {' '.join(LOGICAL)}")
        known = ", ".join(sorted(types)[:10]) or "none"
        raise UnknownFieldError(
            f"where: unknown metadata field {field!r} (fields in this index: {known})", field
        )
    conditions = spec if isinstance(spec, Mapping) else {"=": spec}
    if not conditions:
        raise QueryError(f"where: no condition given for field {field!r}")
    parts: list[str] = []
    params: list[Any] = []
    for op, value in conditions.items():
        sql, values = _condition(field, op, value, types[field])
        parts.append(sql)
        params.extend(values)
    return " AND ".join(parts), params


def _condition(field: str, op: Any, value: Any, held: set[str]) -> tuple[str, list[Any]]:
    if not isinstance(op, str) or op not in OPERATORS:
        raise QueryError(f"where: bad operator {op!r} for field {field!r}; use one of {', '.join(OPERATORS)}")
    if op == "exists":
        if not isinstance(value, bool):
            raise QueryError(f"where: 'exists' for field {field!r} needs true or false, got {value!r}")
        sql = "d.rowid IN (SELECT rowid FROM fields WHERE key = ?)"
        return (sql if value else f"NOT {sql}"), [field]
    if op in ("in", "not in"):
        if isinstance(value, str):  # the CLI's a,b,c
            value = [v.strip() for v in value.split(",")]
        if not isinstance(value, (list, tuple)) or not value:
            raise QueryError(f"where: '{op}' for field {field!r} needs a non-empty list of values")
        groups = value_groups(field, op, list(value), held)
    elif op in _RANGE:
        groups = range_groups(field, op, value, held)
    else:
        groups = value_groups(field, op, [value], held)
    sql, params = _matching(field, "=" if op in ("!=", "in", "not in") else op, groups)
    return (f"NOT {sql}" if op in ("!=", "not in") else sql), params


def _matching(field: str, op: str, groups: Groups) -> tuple[str, list[Any]]:
    """``d.rowid IN (rows whose field compares true with a value of its own JSON type)``."""
    branches: list[str] = []
    params: list[Any] = [field]
    for kinds, values in groups:
        test = "type = ?" if len(kinds) == 1 else f"type IN ({','.join('?' * len(kinds))})"
        params.extend(kinds)
        if values is None:  # booleans: the type is the value
            branches.append(f"({test})")
        elif len(values) == 1:
            branches.append(f"({test} AND value {op} ?)")
            params.append(values[0])
        else:
            branches.append(f"({test} AND value IN ({','.join('?' * len(values))}))")
            params.extend(values)
    return f"d.rowid IN (SELECT rowid FROM fields WHERE key = ? AND ({' OR '.join(branches)}))", params
