"""Native tests of rule `{{name}}`: plain pytest, no Wasm."""

from {{name}} import {{type}}
from invalidator_rules import CommitBuilder, Target, evaluate


def test_an_item_moved_to_another_category_invalidates_both_pages() -> None:
    commit = CommitBuilder().update(
        "items",
        {"id": 1},
        {"id": 1, "category_id": 7, "name": "Tea"},
        {"id": 1, "category_id": 8, "name": "Tea"},
    )
    assert evaluate({{type}}, commit) == {
        Target.key("item:1"),
        Target.key("category:7:items"),
        Target.key("category:8:items"),
    }
