// The point-of-sale system of seed 003, in JavaScript: its `cache_tags` per
// data type, scoped per shop as `shop:{shop_id}:{tag}`. It gives exactly
// what `example-rules/pos` (Rust) gives.
//
// - `products`: `products`, `catalog`, `inventory`, `dashboard`.
// - `customers`: `customers`, `contacts`, `relationships`, `dashboard`.
// - `bills`: `bills`, `orders`, `transactions`, `revenue`, `dashboard`.
// - `employees`: `employees`, `staff`, `users`.
//
// A row moved to another shop invalidates the tags of both shops.

import { Target } from "../invalidator-rules.js";

/** Each written table and the tags of the caches built from it. */
const TAGS = new Map([
  ["products", ["products", "catalog", "inventory", "dashboard"]],
  ["customers", ["customers", "contacts", "relationships", "dashboard"]],
  ["bills", ["bills", "orders", "transactions", "revenue", "dashboard"]],
  ["employees", ["employees", "staff", "users"]],
]);

export const rule = {
  name: "pos",
  version: "1.0.0",
  tables: [...TAGS.keys()],
  // Without the shop id there is no telling which shop's caches are stale,
  // and tags cannot be matched by pattern: invalidate every shop-scoped key.
  fallback: [Target.pattern("shop:*")],
};

export function onCommit(commit, out) {
  for (const w of commit.writes()) {
    const tags = TAGS.get(w.table);
    if (tags === undefined) continue;
    for (const shop of w.each("shop_id")) {
      for (const tag of tags) out.tag(`shop:${shop}:${tag}`);
    }
  }
}
