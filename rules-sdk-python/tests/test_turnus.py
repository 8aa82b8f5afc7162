"""The Python turnus example, natively: the cases of the Rust turnus rule."""

import pytest
import turnus

from invalidator_rules import MissingColumn, Target, commit, evaluate


def test_a_child_moved_to_another_turnus_invalidates_both() -> None:
    moved = {
        "table": "kinder",
        "op": "update",
        "key": {"id": 3},
        "before": {"id": 3, "turnus_id": 1},
        "after": {"id": 3, "turnus_id": 2},
    }
    assert evaluate(turnus, commit([moved])) == {Target.key("turnus_data_1"), Target.key("turnus_data_2")}


def test_a_profile_is_keyed_by_its_user_not_its_own_id() -> None:
    themed = {
        "table": "user_profiles",
        "op": "update",
        "key": {"id": 1},
        "before": {"id": 1, "user_id": 2, "theme": "light"},
        "after": {"id": 1, "user_id": 2, "theme": "dark"},
    }
    assert evaluate(turnus, commit([themed])) == {Target.key("user_profile_2")}


def test_a_null_turnus_produces_nothing() -> None:
    paid = {"table": "geld", "op": "insert", "key": {"id": 3}, "after": {"id": 3, "turnus_id": None}}
    assert evaluate(turnus, commit([paid])) == set()


def test_a_location_invalidates_every_turnus() -> None:
    gone = {"table": "auslagerorte", "op": "delete", "key": {"id": 2}}
    assert evaluate(turnus, commit([gone])) == {Target.pattern("turnus_data_*")}


def test_a_missing_turnus_column_is_an_error() -> None:
    note = {"table": "notizen", "op": "insert", "key": {"id": 8}, "after": {"id": 8, "text": "x"}}
    with pytest.raises(MissingColumn):
        evaluate(turnus, commit([note]))


def test_fallback_covers_every_key_the_rule_writes() -> None:
    assert set(turnus.RULE.fallback) == {Target.pattern("turnus_data_*"), Target.pattern("user_profile_*")}
