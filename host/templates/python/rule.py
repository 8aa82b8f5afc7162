"""Rule `{{name}}`: keeps the caches built from table `items` fresh.

- every write to `items`: key `item:{id}`;
- when an item's category or name changes (inserts and deletes included):
  key `category:{category_id}:items`, of the old and the new category.

When the rule cannot tell (a delete without its row, say), its fallback
patterns invalidate every item and category page instead.
"""

from invalidator_rules import Commit, RuleInfo, Target, Targets, export

RULE = RuleInfo(
    "{{name}}",
    "0.1.0",
    tables=["items"],
    fallback=[Target.pattern("item:*"), Target.pattern("category:*")],
)


def on_commit(commit: Commit, out: Targets) -> None:
    for w in commit.writes_to("items"):
        for id in w.each("id"):
            out.key(f"item:{id}")
        if w.changed_any(["category_id", "name"]):
            for category in w.each("category_id"):
                out.key(f"category:{category}:items")


# What componentize-py exports: this module's rule, behind the WIT interface.
WitWorld = export(__name__)
