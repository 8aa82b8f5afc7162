// The JavaScript pos example, natively: the cases of the Rust pos rule.

import assert from "node:assert/strict";
import { test } from "node:test";

import { MissingColumn, Target, commit, evaluate } from "../invalidator-rules.js";
import * as pos from "../examples/pos.js";

test("an employee invalidates its shop's staff tags", () => {
  const gone = { table: "employees", op: "delete", key: { id: 5 }, before: { id: 5, shop_id: 12 } };
  const got = evaluate(pos, commit({ writes: [gone] }));
  assert.deepEqual(got.toArray(), [Target.tag("shop:12:employees"), Target.tag("shop:12:staff"), Target.tag("shop:12:users")]);
});

test("a product moved to another shop invalidates both shops", () => {
  const moved = { table: "products", op: "update", key: { sku: "TEA-1" }, before: { sku: "TEA-1", shop_id: 12 }, after: { sku: "TEA-1", shop_id: 14 } };
  const got = evaluate(pos, commit({ writes: [moved] }));
  assert.equal(got.size, 8);
  assert.ok(got.has(Target.tag("shop:12:catalog")) && got.has(Target.tag("shop:14:catalog")));
});

test("a bill without a shop is an error, so the fallback applies", () => {
  const bill = { table: "bills", op: "insert", key: { id: "B-1" }, after: { id: "B-1", total: 3 } };
  assert.throws(() => evaluate(pos, commit({ writes: [bill] })), MissingColumn);
  assert.deepEqual(pos.rule.fallback, [Target.pattern("shop:*")]);
});
