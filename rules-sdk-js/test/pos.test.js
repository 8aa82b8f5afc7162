// The JavaScript pos example, natively: the cases of the Rust pos rule.

import assert from "node:assert/strict";
import { test } from "node:test";

import { CommitBuilder, MissingColumn, Target, evaluate } from "../invalidator-rules.js";
import pos from "../examples/pos.js";

test("an employee invalidates its shop's staff tags", () => {
  const got = evaluate(pos, new CommitBuilder().delete("employees", { id: 5 }, { id: 5, shop_id: 12 }));
  assert.deepEqual(got.toArray(), [Target.tag("shop:12:employees"), Target.tag("shop:12:staff"), Target.tag("shop:12:users")]);
});

test("a product moved to another shop invalidates both shops", () => {
  const got = evaluate(pos, new CommitBuilder().update("products", { sku: "TEA-1" }, { sku: "TEA-1", shop_id: 12 }, { sku: "TEA-1", shop_id: 14 }));
  assert.equal(got.size, 8);
  assert.ok(got.has(Target.tag("shop:12:catalog")) && got.has(Target.tag("shop:14:catalog")));
});

test("a bill without a shop is an error, so the fallback applies", () => {
  assert.throws(() => evaluate(pos, new CommitBuilder().insert("bills", { id: "B-1" }, { id: "B-1", total: 3 })), MissingColumn);
  assert.deepEqual(pos.describe().fallback, [Target.pattern("shop:*")]);
});
