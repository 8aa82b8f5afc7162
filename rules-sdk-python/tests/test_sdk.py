"""The SDK's accessors, natively: the same cases as the Rust SDK's tests."""

from array import array

import pytest

from invalidator_rules import (
    Commit,
    CommitBuilder,
    MissingColumn,
    Op,
    Rule,
    RuleInfo,
    Target,
    Targets,
    WrongType,
    evaluate,
    export,
)


def one_write(builder: CommitBuilder):
    [write] = builder.finish().writes()
    return write


def test_each_gives_new_and_old_when_a_row_moves() -> None:
    w = one_write(CommitBuilder().update("kinder", {"id": 3}, {"id": 3, "turnus_id": 1}, {"id": 3, "turnus_id": 2}))
    assert w.each("turnus_id") == [2, 1]
    assert w.changed("turnus_id")
    assert not w.changed("id")


def test_each_gives_one_value_when_unchanged() -> None:
    w = one_write(CommitBuilder().update("kinder", {"id": 3}, {"id": 3, "turnus_id": 1}, {"id": 3, "turnus_id": 1}))
    assert w.each("turnus_id") == [1]
    assert not w.changed("turnus_id")


def test_each_skips_nulls() -> None:
    w = one_write(CommitBuilder().update("geld", {"id": 3}, {"id": 3, "turnus_id": None}, {"id": 3, "turnus_id": 7}))
    assert w.each("turnus_id") == [7]
    w = one_write(CommitBuilder().insert("geld", {"id": 3}, {"id": 3, "turnus_id": None}))
    assert w.each("turnus_id") == []


def test_each_falls_back_to_the_key_then_raises_naming_the_column() -> None:
    w = one_write(CommitBuilder().delete("user_profiles", {"id": 9}))
    assert w.each("id") == [9]
    with pytest.raises(MissingColumn) as e:
        w.each("turnus_id")
    assert (e.value.table, e.value.column) == ("user_profiles", "turnus_id")
    assert "turnus_id" in str(e.value)


def test_get_reads_after_then_before_then_key() -> None:
    w = one_write(CommitBuilder().delete("bills", {"id": "B-1"}, {"id": "B-1", "shop_id": 12}))
    assert w.op == Op.DELETE
    assert w.get("shop_id") == 12
    assert w.after is None
    assert w.before is not None and "shop_id" in w.before
    assert w.get("absent") is None


def test_an_update_without_a_before_image_changes_everything() -> None:
    w = one_write(CommitBuilder().update("kinder", {"id": 3}, None, {"id": 3, "turnus_id": 1}))
    assert w.changed("turnus_id")
    assert w.changed_any(["name"])


def test_typed_getters_raise_wrong_type_naming_the_column() -> None:
    row = {"id": 1, "name": "Mia", "price": 19.5, "big": -(2**63), "ok": True, "none": None}
    w = one_write(CommitBuilder().insert("t", {"id": 1}, row))
    assert w.text("name") == "Mia"
    assert w.integer("big") == -(2**63)
    assert w.float("price") == 19.5
    assert w.float("id") == 1.0
    assert w.boolean("ok") is True
    assert w.text("none") is None
    for getter, column in [(w.integer, "name"), (w.integer, "ok"), (w.text, "id"), (w.boolean, "id")]:
        with pytest.raises(WrongType) as e:
            getter(column)
        assert e.value.column == column
    with pytest.raises(MissingColumn):
        w.text("absent")


def test_non_ascii_text_is_sliced_by_utf8_byte_offsets() -> None:
    w = one_write(CommitBuilder().insert("schwerpunkte", {"id": 1}, {"id": 1, "titel": "Grüße 🦀", "größe": "ß"}))
    assert w.text("titel") == "Grüße 🦀"
    assert w.get("größe") == "ß"
    assert w.after is not None and w.after.items() == [("id", 1), ("titel", "Grüße 🦀"), ("größe", "ß")]


def test_a_boolean_and_an_integer_are_different_values() -> None:
    w = one_write(CommitBuilder().update("t", {"id": 1}, {"id": 1, "flag": 1}, {"id": 1, "flag": True}))
    assert w.changed("flag")
    assert w.each("flag") == [True, 1]


def test_targets_are_a_set() -> None:
    out = Targets().key("a").key("a").tag("t").pattern("p*")
    assert out == {Target.key("a"), Target.tag("t"), Target.pattern("p*")}
    assert len(out) == 3 and Target.tag("t") in out and Target.key("t") not in out
    out.add(Target.tag("u"))
    out.discard(Target.key("a"))
    assert set(out) == {Target.tag("t"), Target.tag("u"), Target.pattern("p*")}
    with pytest.raises(ValueError, match="'cookie'"):
        out.add(Target("cookie", "x"))


class _Raw:
    """A commit in the WIT layout, by hand: what another producer than the
    host may send."""

    def __init__(self, text: str, names: list[int], kinds: bytes, values: list[int], rows: list[int]) -> None:
        self.txn, self.source, self.text = "t", None, text
        self.column_names = array("Q", names).tobytes()
        self.column_kinds = kinds
        self.column_values = array("Q", values).tobytes()
        self.write_tables = array("Q", [6]).tobytes()
        self.write_ops = bytes([1])
        key, before, after = rows
        self.write_keys = array("Q", [key]).tobytes()
        self.write_befores = array("Q", [before]).tobytes()
        self.write_afters = array("Q", [after]).tobytes()


def test_columns_are_found_when_a_name_is_laid_out_more_than_once() -> None:
    # The host lays out each distinct name once; the SDK looks columns up by
    # span, and must still find them when a producer repeats a name.
    text = "kinderidturnus_ididturnus_id"
    span = lambda start, size: start << 32 | size  # noqa: E731
    names = [span(6, 2), span(8, 9), span(17, 2), span(19, 9)]
    commit = Commit(_Raw(text, names, bytes([2, 2, 2, 2]), [3, 1, 3, 2], [span(0, 1), span(0, 2), span(2, 2)]))
    [w] = commit.writes()
    assert w.table == "kinder"
    assert w.each("turnus_id") == [2, 1]
    assert (w.get("id"), w.old_value("turnus_id")) == (3, 1)
    assert w.after is not None and w.after.items() == [("id", 3), ("turnus_id", 2)]


def test_writes_to_filters_by_table_in_commit_order() -> None:
    commit = (
        CommitBuilder("t-9")
        .source("pos")
        .insert("bills", {"id": 1}, {"id": 1, "shop_id": 1})
        .insert("products", {"sku": "x"}, {"sku": "x", "shop_id": 2})
        .insert("bills", {"id": 2}, {"id": 2, "shop_id": 3})
        .finish()
    )
    assert isinstance(commit, Commit)
    assert (commit.txn, commit.source) == ("t-9", "pos")
    assert [w.get("shop_id") for w in commit.writes_to("bills")] == [1, 3]


def test_evaluate_runs_a_rule_natively() -> None:
    class Rule:
        @staticmethod
        def describe() -> RuleInfo:
            return RuleInfo("r", "1")

        @staticmethod
        def on_commit(commit: Commit, out: Targets) -> None:
            for w in commit.writes():
                out.key(f"{w.table}:{w.value('id')}")

    got = evaluate(Rule, CommitBuilder().insert("users", {"id": 5}, {"id": 5}))
    assert got == {Target.key("users:5")}


def test_the_builder_refuses_what_is_not_a_column_value() -> None:
    with pytest.raises(TypeError, match="'when'"):
        CommitBuilder().insert("t", {"id": 1}, {"when": object()})
    with pytest.raises(ValueError, match="64 bits"):
        CommitBuilder().insert("t", {"id": 2**64}, {})


def test_export_refuses_a_class_without_the_rule_methods() -> None:
    class Half(Rule):
        @staticmethod
        def describe() -> RuleInfo:
            return RuleInfo("half", "1")

    with pytest.raises(TypeError, match="'Half' does not define on_commit"):
        export(Half)
    with pytest.raises(TypeError, match="does not define describe"):
        export(object)
