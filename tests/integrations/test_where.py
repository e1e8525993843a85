"""The integrations' shared where helpers: boolean building blocks and missing-field rewriting."""

from __future__ import annotations

from simsearch.integrations.where import EVERYTHING, NOTHING, all_of, any_of, negate, without_fields


def test_building_blocks_fold_constants() -> None:
    assert all_of([{"a": 1}, {"b": {">": 2}}]) == {"a": 1, "b": {">": 2}}  # AND-ed fields, as today
    assert all_of([{"a": 1}, {"a": 2}]) == {"$and": [{"a": 1}, {"a": 2}]}
    assert all_of([{"a": 1}, NOTHING]) == NOTHING and all_of([]) == EVERYTHING
    assert any_of([{"a": 1}, NOTHING]) == {"a": 1} and any_of([{"a": 1}, EVERYTHING]) == EVERYTHING
    assert negate(NOTHING) == EVERYTHING and negate({"a": 1}) == {"$not": {"a": 1}}


def test_a_field_no_document_has_is_missing_everywhere() -> None:
    gone = frozenset({"gone"})
    assert without_fields({"gone": 1, "a": 1}, gone) == NOTHING
    assert without_fields({"gone": {"!=": 1}, "a": 1}, gone) == {"a": 1}
    assert without_fields({"gone": {"not in": [1]}}, gone) == EVERYTHING
    assert without_fields({"gone": {"exists": False}}, gone) == EVERYTHING
    assert without_fields({"gone": {"exists": True}}, gone) == NOTHING
    assert without_fields({"$or": [{"gone": {">": 1}}, {"a": 1}]}, gone) == {"a": 1}
    assert without_fields({"$not": {"gone": 1}}, gone) == EVERYTHING
    assert without_fields({"$and": [{"gone": {"!=": 2}}, {"$not": {"a": 1}}]}, gone) == {"$not": {"a": 1}}
