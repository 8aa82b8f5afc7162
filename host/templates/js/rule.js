// Rule `{{name}}`: keeps the caches built from table `items` fresh.
//
// - every write to `items`: key `item:{id}`;
// - when an item's category or name changes (inserts and deletes
//   included): key `category:{category_id}:items`, of the old and the new
//   category.
//
// When the rule cannot tell (a delete without its row, say), its fallback
// patterns invalidate every item and category page instead.

import { Target } from "./invalidator-rules.js";

export const rule = {
  name: "{{name}}",
  version: "0.1.0",
  tables: ["items"],
  fallback: [Target.pattern("item:*"), Target.pattern("category:*")],
};

export function onCommit(commit, out) {
  for (const w of commit.writesTo("items")) {
    for (const id of w.each("id")) out.key(`item:${id}`);
    if (w.changedAny(["category_id", "name"])) {
      for (const category of w.each("category_id")) out.key(`category:${category}:items`);
    }
  }
}
