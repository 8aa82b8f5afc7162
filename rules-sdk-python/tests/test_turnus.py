"""The Python turnus example, natively: the cases of the Rust turnus rule."""

import pytest
from turnus import Turnus

from invalidator_rules import CommitBuilder, MissingColumn, Target, evaluate


def test_a_child_moved_to_another_turnus_invalidates_both() -> None:
    commit = CommitBuilder().update("kinder", {"id": 3}, {"id": 3, "turnus_id": 1}, {"id": 3, "turnus_id": 2})
    assert evaluate(Turnus, commit) == {Target.key("turnus_data_1"), Target.key("turnus_data_2")}


def test_a_profile_is_keyed_by_its_user_not_its_own_id() -> None:
    commit = CommitBuilder().update(
        "user_profiles", {"id": 1}, {"id": 1, "user_id": 2, "theme": "light"}, {"id": 1, "user_id": 2, "theme": "dark"}
    )
    assert evaluate(Turnus, commit) == {Target.key("user_profile_2")}


def test_a_null_turnus_produces_nothing() -> None:
    commit = CommitBuilder().insert("geld", {"id": 3}, {"id": 3, "turnus_id": None})
    assert evaluate(Turnus, commit) == set()


def test_a_location_invalidates_every_turnus() -> None:
    assert evaluate(Turnus, CommitBuilder().delete("auslagerorte", {"id": 2})) == {Target.pattern("turnus_data_*")}


def test_a_missing_turnus_column_is_an_error() -> None:
    with pytest.raises(MissingColumn):
        evaluate(Turnus, CommitBuilder().insert("notizen", {"id": 8}, {"id": 8, "text": "x"}))


def test_fallback_covers_every_key_the_rule_writes() -> None:
    info = Turnus.describe()
    assert set(info.fallback) == {Target.pattern("turnus_data_*"), Target.pattern("user_profile_*")}
