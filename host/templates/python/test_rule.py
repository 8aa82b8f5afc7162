"""Native tests of rule `{{name}}`: plain pytest, no Wasm."""

import {{name}}
from invalidator_rules import Target, commit, evaluate


def test_an_item_moved_to_another_category_invalidates_both_pages() -> None:
    moved = {
        "table": "items",
        "op": "update",
        "key": {"id": 1},
        "before": {"id": 1, "category_id": 7, "name": "Tea"},
        "after": {"id": 1, "category_id": 8, "name": "Tea"},
    }
    assert evaluate({{name}}, commit([moved])) == {
        Target.key("item:1"),
        Target.key("category:7:items"),
        Target.key("category:8:items"),
    }
