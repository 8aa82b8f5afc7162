// Native tests of rule `{{name}}`: `node --test`, no Wasm.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Target, commit, evaluate } from "./invalidator-rules.js";
import * as rule from "./{{name}}.js";

test("an item moved to another category invalidates both pages", () => {
  const moved = {
    table: "items",
    op: "update",
    key: { id: 1 },
    before: { id: 1, category_id: 7, name: "Tea" },
    after: { id: 1, category_id: 8, name: "Tea" },
  };
  const got = evaluate(rule, commit({ writes: [moved] }));
  assert.equal(got.size, 3);
  for (const key of ["item:1", "category:7:items", "category:8:items"]) assert.ok(got.has(Target.key(key)), key);
});
