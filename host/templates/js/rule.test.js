// Native tests of rule `{{name}}`: `node --test`, no Wasm.

import assert from "node:assert/strict";
import { test } from "node:test";

import { CommitBuilder, Target, evaluate } from "./invalidator-rules.js";
import rule from "./{{name}}.js";

test("an item moved to another category invalidates both pages", () => {
  const commit = new CommitBuilder().update(
    "items",
    { id: 1 },
    { id: 1, category_id: 7, name: "Tea" },
    { id: 1, category_id: 8, name: "Tea" },
  );
  const got = evaluate(rule, commit);
  assert.equal(got.size, 3);
  for (const key of ["item:1", "category:7:items", "category:8:items"]) assert.ok(got.has(Target.key(key)), key);
});
