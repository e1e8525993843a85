"""The where compiler against a pure-Python evaluator of the same semantics (hypothesis), on
random metadata with missing fields, mixed types and awkward field names; boolean nesting;
the text syntax; one-line errors for values SQLite cannot compare exactly; shards' types."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simsearch.errors import QueryError, UnknownFieldError
from simsearch.search import where as filters
from simsearch.search.where_text import parse_cli, parse_text

QUOTED = 'say "hi"'  # SQLite's JSON path has no escape for this name: compared as a key instead
FIELDS = ("lang", "year", "ok", QUOTED)
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

field_values = {
    "lang": st.sampled_from(["en", "ko", "2020", "a and b"]),
    "year": st.one_of(st.integers(2018, 2022), st.sampled_from([2020.0, 2020.5, "unknown", "2020"])),
    "ok": st.booleans(),
    QUOTED: st.sampled_from(["x", "y"]),
}
metadata = st.fixed_dictionaries({}, optional=field_values)  # any field may be missing


class Owner:
    """Stands for an open generation (the cache key of its metadata copy)."""


def database(metas: list[dict[str, Any]]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE documents (rowid INTEGER PRIMARY KEY, metadata TEXT NOT NULL)")
    db.executemany(
        "INSERT INTO documents VALUES (?, ?)", [(i + 1, json.dumps(m)) for i, m in enumerate(metas)]
    )
    return db


def equal(have: Any, value: Any) -> bool:
    """``=`` per JSON type: text with text, numbers with numbers (text read as a number),
    booleans with booleans (text "true"/"false" too)."""
    if isinstance(have, bool):
        return have == value if isinstance(value, bool) else str(value).lower() == str(have).lower()
    if isinstance(have, (int, float)):
        if isinstance(value, str):
            return bool(NUMBER.match(value)) and float(value) == have
        return not isinstance(value, bool) and have == value
    return isinstance(value, str) and have == value


def holds(meta: dict[str, Any], where: dict[str, Any]) -> bool:
    """The documented semantics, written out plainly."""
    for key, spec in where.items():
        if key == "$and":
            ok = all(holds(meta, w) for w in spec)
        elif key == "$or":
            ok = any(holds(meta, w) for w in spec)
        elif key == "$not":
            ok = not holds(meta, spec)
        else:
            ok = all(
                leaf(meta, key, op, v) for op, v in (spec if isinstance(spec, dict) else {"=": spec}).items()
            )
        if not ok:
            return False
    return True


def leaf(meta: dict[str, Any], field: str, op: str, value: Any) -> bool:
    if op == "exists":
        return (field in meta) == value
    if op in ("!=", "not in"):
        return not leaf(meta, field, {"!=": "=", "not in": "in"}[op], value)
    if field not in meta:
        return False
    have = meta[field]
    if op == "=":
        return equal(have, value)
    if op == "in":
        return any(equal(have, v) for v in value)
    if isinstance(have, bool) or not isinstance(have, (int, float)):
        return False  # ranges here compare numbers only (no ISO dates in this data)
    number = float(value)
    return {"<": have < number, "<=": have <= number, ">": have > number, ">=": have >= number}[op]


def leaves(field: str) -> st.SearchStrategy[dict[str, Any]]:
    value: st.SearchStrategy[Any] = field_values[field]
    if field == "year":
        value = st.one_of(st.integers(2018, 2022), st.sampled_from(["2020", "2021"]))
    ops: list[st.SearchStrategy[Any]] = [
        value,  # a bare value: equality
        st.sampled_from(["=", "!="]).flatmap(lambda op: value.map(lambda v: {op: v})),
        st.sampled_from(["in", "not in"]).flatmap(
            lambda op: st.lists(value, min_size=1, max_size=3).map(lambda vs: {op: vs})
        ),
        st.booleans().map(lambda b: {"exists": b}),
    ]
    if field == "year":
        ranges = st.sampled_from(["<", "<=", ">", ">="])
        ops.append(ranges.flatmap(lambda op: st.integers(2017, 2023).map(lambda v: {op: v})))
    return st.one_of(ops).map(lambda spec: {field: spec})


atoms = st.sampled_from(FIELDS).flatmap(leaves)
wheres = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda ws: {"$and": ws}),
        st.lists(inner, min_size=1, max_size=3).map(lambda ws: {"$or": ws}),
        inner.map(lambda w: {"$not": w}),
        st.tuples(inner, atoms).map(lambda pair: {**pair[1], "$or": [pair[0]]}),
    ),
    max_leaves=8,
)
# every field holds every type the leaves compare with, so a where never mismatches its field
ANCHORS = [{"lang": "en", "year": 2020, "ok": True, QUOTED: "x"}, {"year": "unknown", "ok": False}]


@settings(max_examples=300, deadline=None)
@given(metas=st.lists(metadata, max_size=12), where=wheres)
def test_compiled_sql_agrees_with_the_python_evaluator(metas: list[dict[str, Any]], where: dict) -> None:
    metas = ANCHORS + metas
    db, owner = database(metas), Owner()
    condition = filters.compile_where(where, filters.metadata_types(owner, db))
    assert condition is not None
    hash(condition)  # a cache key, and shipped to Ray actors as plain data
    expected = [i + 1 for i, meta in enumerate(metas) if holds(meta, where)]
    assert filters.allowed_rowids(owner, db, condition).tolist() == expected
    indexed = Owner()  # the field table gets its index at the second distinct filter
    other = filters.compile_where({"$not": where}, filters.metadata_types(indexed, db))
    assert other is not None
    assert filters.allowed_rowids(indexed, db, other).tolist() == [
        i + 1 for i in range(len(metas)) if i + 1 not in expected
    ]
    assert filters.allowed_rowids(indexed, db, condition).tolist() == expected


def test_mixed_types_and_quoted_names_match_exactly() -> None:
    metas: list[dict[str, Any]] = [
        {"year": 2020},
        {"year": "unknown"},
        {"year": 2020.0},
        {"year": "2020"},
        {QUOTED: "x"},
        {},
    ]
    db, owner = database(metas), Owner()
    types = filters.metadata_types(owner, db)

    def rows(where: dict) -> list[int]:
        condition = filters.compile_where(where, types)
        assert condition is not None
        return filters.allowed_rowids(owner, db, condition).tolist()

    assert rows({"year": "2020"}) == [1, 3, 4]  # the CLI's text finds the numbers and the text
    assert rows({"year": 2020}) == [1, 3]
    assert rows({"year": {"<": "2021"}}) == [1, 3]
    assert rows({QUOTED: "x"}) == [5]
    assert rows({QUOTED: {"!=": "x"}}) == [1, 2, 3, 4, 6]


@pytest.mark.parametrize(
    "where, message",
    [
        ({"year": 2**64}, "out of range"),
        ({"year": {"<": -(2**63) - 1}}, "out of range"),
        ({"year": float("nan")}, "not a finite number"),
        ({"year": {"<": float("inf")}}, "not a finite number"),
        ({"year": {"<": "inf"}}, "not a finite number"),
        ({"year": {">": "-Infinity"}}, "not a finite number"),
        ({"year": {"<": "1e400"}}, "out of range"),
        ({"lang": "\ud800"}, "lone surrogate"),
        ({"lang": {"in": ["en", "\udfff"]}}, "lone surrogate"),
        ({"\ud800": 1}, "lone surrogate"),
        ({"$nor": [{"lang": "en"}]}, "unknown operator '\\$nor'"),
        ({"$and": []}, "non-empty list"),
        ({"$or": {"lang": "en"}}, "non-empty list"),
        ({"$not": {}}, "non-empty dict"),
        ({"lang": {"exists": "yes"}}, "true or false"),
        ({"lang": {"not in": []}}, "non-empty list"),
    ],
)
def test_values_sqlite_cannot_compare_are_one_line_errors(where: dict, message: str) -> None:
    types = {"lang": {"text"}, "year": {"integer"}}
    with pytest.raises(QueryError, match=message) as error:
        filters.compile_where(where, types)
    assert "\n" not in str(error.value) and not isinstance(error.value, OverflowError)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    where: dict[str, Any] = {"lang": "en"}
    for _ in range(200):
        where = {"$not": where}
    with pytest.raises(QueryError, match="nested more than"):
        filters.compile_where(where, {"lang": {"text"}})


def test_shards_compile_against_the_union_of_their_types() -> None:
    shards = [database([{"lang": "en", "year": 2020}]), database([{"year": "unknown"}]), database([])]
    owners = [Owner() for _ in shards]
    parts = [filters.metadata_types(owner, db) for owner, db in zip(owners, shards)]
    assert parts[2] == {}  # an empty shard has no types and is no error
    types = filters.merge_types(parts)
    assert types == {"lang": {"text"}, "year": {"integer", "text"}}
    condition = filters.compile_where({"lang": "en", "year": "2020"}, types)
    assert condition is not None  # lang is known although shard 2 and 3 lack it
    found = [filters.allowed_rowids(o, db, condition).tolist() for o, db in zip(owners, shards)]
    assert found == [[1], [], []]
    with pytest.raises(UnknownFieldError, match="unknown metadata field 'nope'"):
        filters.compile_where({"nope": 1}, types)


def test_text_syntax() -> None:
    assert parse_text("lang=ko and (year>=2020 or not source=wiki)") == {
        "$and": [
            {"lang": {"=": "ko"}},
            {"$or": [{"year": {">=": "2020"}}, {"$not": {"source": {"=": "wiki"}}}]},
        ]
    }
    assert parse_text('title="a and b"') == {"title": {"=": "a and b"}}
    assert parse_text("title=don't stop") == {"title": {"=": "don't stop"}}  # unquoted words joined
    assert parse_text("tag not in (x, y) or summary exists") == {
        "$or": [{"tag": {"not in": ["x", "y"]}}, {"summary": {"exists": True}}]
    }
    assert parse_text("a=1 OR b=2 AND NOT c=3") == {
        "$or": [{"a": {"=": "1"}}, {"$and": [{"b": {"=": "2"}}, {"$not": {"c": {"=": "3"}}}]}]
    }
    assert parse_text(r"'say \"hi\"'!=x") == {QUOTED: {"!=": "x"}}
    assert parse_cli(["lang=ko", "lang=en"]) == {"$and": [{"lang": {"=": "ko"}}, {"lang": {"=": "en"}}]}


@pytest.mark.parametrize(
    "text, problem",
    [
        ("lang == en", "'==' is not an operator"),
        ("lang", "expected an operator"),
        ("(lang=en", "parenthesis is not closed"),
        ("lang=en)", "unexpected ')'"),
        ("lang='en", "quote is not closed"),
        ("lang=en and", "expected a field name"),
        ("title=a and b", "expected an operator after field 'b'"),
        ("x not y", "expected 'in'"),
        ("", "no filter given"),
        ("(" * 5000 + "a=1" + ")" * 5000, "nested more than 32 levels"),
        ("not " * 5000 + "a=1", "nested more than 32 levels"),
    ],
)
def test_text_syntax_mistakes_are_errors(text: str, problem: str) -> None:
    with pytest.raises(QueryError, match=re.escape(problem)) as error:
        parse_cli([text])
    message = str(error.value)
    assert "\n" not in message and message.startswith("--where") and "FIELD=VALUE" in message


def test_finite_floats_pass() -> None:
    condition = filters.compile_where({"year": {"<": 1e300, ">": "-1.5e3"}}, {"year": {"real"}})
    assert condition is not None and all(math.isfinite(p) for p in condition[1] if isinstance(p, float))
