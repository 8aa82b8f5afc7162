"""The SDK's accessors, natively: the same cases as the Rust SDK's tests."""

import logging
import time
from array import array
from types import ModuleType

import pytest
import turnus

from invalidator_rules import (
    TRACE,
    Commit,
    Kind,
    MissingColumn,
    Op,
    RuleInfo,
    Target,
    Targets,
    Write,
    WrongType,
    _record_without_clock,
    _source_free_formatter,
    commit,
    evaluate,
    export,
    host_handler,
)


def one_write(**write) -> Write:
    [w] = commit([write]).writes()
    return w


def test_each_gives_new_and_old_when_a_row_moves() -> None:
    w = one_write(
        table="kinder", op="update", key={"id": 3}, before={"id": 3, "turnus_id": 1}, after={"id": 3, "turnus_id": 2}
    )
    assert w.each("turnus_id") == [2, 1]
    assert w.changed("turnus_id")
    assert not w.changed("id")


def test_each_gives_one_value_when_unchanged() -> None:
    w = one_write(
        table="kinder", op="update", key={"id": 3}, before={"id": 3, "turnus_id": 1}, after={"id": 3, "turnus_id": 1}
    )
    assert w.each("turnus_id") == [1]
    assert not w.changed("turnus_id")


def test_each_skips_nulls() -> None:
    w = one_write(
        table="geld", op="update", key={"id": 3}, before={"id": 3, "turnus_id": None}, after={"id": 3, "turnus_id": 7}
    )
    assert w.each("turnus_id") == [7]
    w = one_write(table="geld", op="insert", key={"id": 3}, after={"id": 3, "turnus_id": None})
    assert w.each("turnus_id") == []


def test_each_falls_back_to_the_key_then_raises_naming_the_column() -> None:
    w = one_write(table="user_profiles", op="delete", key={"id": 9})
    assert w.each("id") == [9]
    with pytest.raises(MissingColumn) as e:
        w.each("turnus_id")
    assert (e.value.table, e.value.column) == ("user_profiles", "turnus_id")
    assert "turnus_id" in str(e.value)


def test_get_reads_after_then_before_then_key() -> None:
    w = one_write(table="bills", op=Op.DELETE, key={"id": "B-1"}, before={"id": "B-1", "shop_id": 12})
    assert w.op == Op.DELETE
    assert w.get("shop_id") == 12
    assert w.after is None
    assert w.before is not None and "shop_id" in w.before
    assert w.get("absent") is None


def test_an_update_without_a_before_image_changes_everything() -> None:
    w = one_write(table="kinder", op="update", key={"id": 3}, after={"id": 3, "turnus_id": 1})
    assert w.changed("turnus_id")
    assert w.changed_any(["name"])


def test_typed_getters_raise_wrong_type_naming_the_column() -> None:
    row = {"id": 1, "name": "Mia", "price": 19.5, "big": -(2**63), "ok": True, "none": None}
    w = one_write(table="t", op="insert", key={"id": 1}, after=row)
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
    w = one_write(table="schwerpunkte", op="insert", key={"id": 1}, after={"id": 1, "titel": "Grüße 🦀", "größe": "ß"})
    assert w.text("titel") == "Grüße 🦀"
    assert w.get("größe") == "ß"
    assert w.after is not None and w.after.items() == [("id", 1), ("titel", "Grüße 🦀"), ("größe", "ß")]


def test_a_boolean_and_an_integer_are_different_values() -> None:
    w = one_write(table="t", op="update", key={"id": 1}, before={"id": 1, "flag": 1}, after={"id": 1, "flag": True})
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
        out.add(("cookie", "x"))  # type: ignore[arg-type]


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
    c = Commit(_Raw(text, names, bytes([2, 2, 2, 2]), [3, 1, 3, 2], [span(0, 1), span(0, 2), span(2, 2)]))
    [w] = c.writes()
    assert w.table == "kinder"
    assert w.each("turnus_id") == [2, 1]
    assert (w.get("id"), w.old_value("turnus_id")) == (3, 1)
    assert w.after is not None and w.after.items() == [("id", 3), ("turnus_id", 2)]


def test_writes_to_filters_by_table_in_commit_order() -> None:
    c = commit(
        [
            {"table": "bills", "op": "insert", "key": {"id": 1}, "after": {"id": 1, "shop_id": 1}},
            {"table": "products", "op": "insert", "key": {"sku": "x"}, "after": {"sku": "x", "shop_id": 2}},
            {"table": "bills", "op": "insert", "key": {"id": 2}, "after": {"id": 2, "shop_id": 3}},
        ],
        txn="t-9",
        source="pos",
    )
    assert isinstance(c, Commit)
    assert (c.txn, c.source) == ("t-9", "pos")
    assert [w.get("shop_id") for w in c.writes_to("bills")] == [1, 3]


def test_ops_are_str_enums_with_the_fixtures_words() -> None:
    ops = [{"table": "t", "op": op, "key": {"id": 1}, "after": {"id": 1}} for op in ("insert", "update", Op.DELETE)]
    assert [w.op for w in commit(ops).writes()] == [Op.INSERT, Op.UPDATE, Op.DELETE]
    assert [w.op for w in commit(ops).writes()] == ["insert", "update", "delete"]
    assert all(type(w.op) is Op for w in commit(ops).writes())
    assert Op("update") is Op.UPDATE and f"{Op.DELETE}" == "delete"


def test_a_fixture_case_reads_as_a_commit() -> None:
    case = {
        "commit": {
            "txn": "moved",
            "writes": [{"table": "kinder", "op": "update", "key": {"id": 3}, "after": {"id": 3, "turnus_id": 2}}],
        },
    }
    assert evaluate(turnus, commit(**case["commit"])) == {Target.key("turnus_data_2")}


def test_commit_refuses_what_is_not_a_write() -> None:
    with pytest.raises(TypeError, match=r"unknown fields \['afer'\]"):
        commit([{"table": "t", "op": "insert", "afer": {"id": 1}}])
    with pytest.raises(TypeError, match="needs a table and an op"):
        commit([{"table": "t"}])
    with pytest.raises(ValueError, match="unknown op 'upsert'"):
        commit([{"table": "t", "op": "upsert"}])
    with pytest.raises(TypeError, match="'when'"):
        commit([{"table": "t", "op": "insert", "key": {"id": 1}, "after": {"when": object()}}])
    with pytest.raises(ValueError, match="64 bits"):
        commit([{"table": "t", "op": "insert", "key": {"id": 2**64}}])


def rule_module(name: str, **attrs) -> ModuleType:
    module = ModuleType(name)
    vars(module).update(attrs)
    return module


def ids(c: Commit, out: Targets) -> None:
    for w in c.writes():
        out.key(f"{w.table}:{w.value('id')}")


def test_evaluate_runs_a_rule_module_natively() -> None:
    rule = rule_module("users", RULE=RuleInfo("users", "1"), on_commit=ids)
    got = evaluate(rule, commit([{"table": "users", "op": "insert", "key": {"id": 5}, "after": {"id": 5}}]))
    assert got == {Target.key("users:5")}


def test_export_reads_the_module_by_name() -> None:
    world = export(turnus.__name__)
    # Natively `describe` gives the RULE, checked; in a component, its WIT twin.
    name, version, tables, fallback = turnus.RULE
    assert world().describe() == (name, version, tuple(tables), tuple(fallback))


def test_export_and_evaluate_refuse_a_module_that_is_not_a_rule() -> None:
    info = RuleInfo("r", "1")
    cases = [
        (rule_module("half", RULE=info), TypeError, "rule module 'half' does not define on_commit"),
        (rule_module("bare"), TypeError, "rule module 'bare' does not define RULE nor on_commit"),
        (rule_module("old", RULE=lambda: info, on_commit=ids), TypeError, "'old': RULE is a function, not a RuleInfo"),
        (rule_module("dict", RULE={"name": "r"}, on_commit=ids), TypeError, "'dict': RULE is a dict, not a RuleInfo"),
        (rule_module("n", RULE=info, on_commit="ids"), TypeError, "'n': on_commit is a str, not a function"),
        (rule_module("e", RULE=RuleInfo("", "1"), on_commit=ids), ValueError, "'e': RULE.name must be a non-empty str"),
        (rule_module("s", RULE=RuleInfo("r", "1", tables="items"), on_commit=ids), TypeError, "RULE.tables is the str"),
        (rule_module("f", RULE=RuleInfo("r", "1", fallback=["x*"]), on_commit=ids), TypeError, "'x\\*', not a Target"),
    ]
    for module, error, says in cases:
        with pytest.raises(error, match=says):
            export(module)
        with pytest.raises(error, match=says):
            evaluate(module, commit())
    with pytest.raises(TypeError, match="no module named 'nowhere' is imported"):
        export("nowhere")


def test_targets_have_an_enum_kind() -> None:
    assert Target.key("a") == (Kind.KEY, "a") == ("key", "a")
    assert Target("tag", "t").kind is Kind.TAG
    assert [t.kind for t in Targets().pattern("p*")] == [Kind.PATTERN]
    assert repr(Target.pattern("p*")) == "Target.pattern('p*')"
    with pytest.raises(ValueError, match="'cookie'"):
        Target("cookie", "x")


def test_a_rules_log_records_go_where_python_sends_them(caplog: pytest.LogCaptureFixture) -> None:
    def on_commit(c: Commit, out: Targets) -> None:
        logging.getLogger("chatty").info("saw %d writes", len(c.writes()))

    with caplog.at_level(logging.INFO, logger="chatty"):
        evaluate(rule_module("chatty", RULE=RuleInfo("chatty", "1"), on_commit=on_commit), commit())
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [("chatty", "INFO", "saw 0 writes")]


def test_the_host_handler_maps_levels_and_formats_without_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[tuple[str, str]] = []
    log = logging.getLogger("invalidator_rules.test.host")
    log.propagate = False
    log.setLevel(1)
    handler = host_handler(lambda level, message: lines.append((level, message)))
    log.addHandler(handler)

    # As inside a component, where reading the clock traps.
    def no_clock() -> None:
        raise AssertionError("the clock was read")

    monkeypatch.setattr(time, "time", no_clock)
    monkeypatch.setattr(time, "time_ns", no_clock, raising=False)
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(_record_without_clock)
    try:
        log.log(TRACE, "t")
        log.log(7, "below debug")
        log.debug("d %s", 1)
        log.info("%(a)s and %(b)s", {"a": 1, "b": 2})
        log.warning("w")
        log.error("e")
        log.critical("c")
        log.info("%d", "not a number")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        logging.setLogRecordFactory(factory)
        log.removeHandler(handler)
    assert lines[:7] == [
        ("trace", "t"),
        ("trace", "below debug"),
        ("debug", "d 1"),
        ("info", "1 and 2"),
        ("warn", "w"),
        ("error", "e"),
        ("error", "c"),
    ]
    assert lines[7][0] == "info" and "'%d'" in lines[7][1] and "not formatted: TypeError" in lines[7][1]
    level, message = lines[8]
    assert level == "error" and message.startswith("failed\nTraceback") and "ValueError: boom" in message
    with pytest.raises(ValueError, match="five levels"):
        host_handler(print, ["info"])


def test_tracebacks_in_a_component_show_frames_but_no_source() -> None:
    def fail() -> None:
        raise KeyError("shop_id")

    try:
        fail()
    except KeyError as e:
        ei = (type(e), e, e.__traceback__)
    text = _source_free_formatter().formatException(ei)
    lines = text.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-2].endswith(", in fail") and 'File "' in lines[-2]
    assert lines[-1] == "KeyError: 'shop_id'"
    assert "raise KeyError" not in text
