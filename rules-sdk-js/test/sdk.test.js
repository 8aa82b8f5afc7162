// The SDK's accessors, natively: the same cases as the Rust SDK's tests.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  Commit,
  CommitBuilder,
  MissingColumn,
  Op,
  Target,
  Targets,
  WrongType,
  evaluate,
  exportRule,
} from "../invalidator-rules.js";

const oneWrite = (builder) => {
  const writes = builder.finish().writes();
  assert.equal(writes.length, 1);
  return writes[0];
};

test("each gives new and old when a row moves", () => {
  const w = oneWrite(new CommitBuilder().update("kinder", { id: 3 }, { id: 3, turnus_id: 1 }, { id: 3, turnus_id: 2 }));
  assert.deepEqual(w.each("turnus_id"), [2, 1]);
  assert.ok(w.changed("turnus_id"));
  assert.ok(!w.changed("id"));
});

test("each gives one value when unchanged, and skips nulls", () => {
  let w = oneWrite(new CommitBuilder().update("kinder", { id: 3 }, { id: 3, turnus_id: 1 }, { id: 3, turnus_id: 1 }));
  assert.deepEqual(w.each("turnus_id"), [1]);
  assert.ok(!w.changed("turnus_id"));
  w = oneWrite(new CommitBuilder().update("geld", { id: 3 }, { id: 3, turnus_id: null }, { id: 3, turnus_id: 7 }));
  assert.deepEqual(w.each("turnus_id"), [7]);
  w = oneWrite(new CommitBuilder().insert("geld", { id: 3 }, { id: 3, turnus_id: null }));
  assert.deepEqual(w.each("turnus_id"), []);
});

test("each falls back to the key, then throws naming the column", () => {
  const w = oneWrite(new CommitBuilder().delete("user_profiles", { id: 9 }));
  assert.deepEqual(w.each("id"), [9]);
  assert.throws(() => w.each("turnus_id"), (e) => e instanceof MissingColumn && e.table === "user_profiles" && e.column === "turnus_id");
});

test("get reads after, then before, then the key", () => {
  const w = oneWrite(new CommitBuilder().delete("bills", { id: "B-1" }, { id: "B-1", shop_id: 12 }));
  assert.equal(w.op, Op.DELETE);
  assert.equal(w.get("shop_id"), 12);
  assert.equal(w.after, null);
  assert.ok(w.before.has("shop_id"));
  assert.equal(w.get("absent"), null);
});

test("an update without a before image changes everything", () => {
  const w = oneWrite(new CommitBuilder().update("kinder", { id: 3 }, null, { id: 3, turnus_id: 1 }));
  assert.ok(w.changed("turnus_id"));
  assert.ok(w.changedAny(["name"]));
});

test("numbers where they fit, BigInt only where they must", () => {
  const row = { id: 1, small: -42, edge: 2 ** 53 - 1, big: 2n ** 62n, min: -(2n ** 63n), price: 19.5, whole: CommitBuilder.float(2) };
  const w = oneWrite(new CommitBuilder().insert("t", { id: 1 }, row));
  assert.equal(w.integer("small"), -42);
  assert.equal(w.integer("edge"), 2 ** 53 - 1);
  assert.equal(w.integer("big"), 2n ** 62n);
  assert.equal(w.integer("min"), -(2n ** 63n));
  assert.equal(w.float("price"), 19.5);
  assert.equal(w.float("whole"), 2);
  assert.throws(() => w.integer("whole"), WrongType);
});

test("typed getters throw WrongType naming the column", () => {
  const w = oneWrite(new CommitBuilder().insert("t", { id: 1 }, { id: 1, name: "Mia", ok: true, none: null }));
  assert.equal(w.text("name"), "Mia");
  assert.equal(w.boolean("ok"), true);
  assert.equal(w.text("none"), null);
  for (const [getter, column] of [["integer", "name"], ["text", "id"], ["boolean", "id"], ["float", "ok"]]) {
    assert.throws(() => w[getter](column), (e) => e instanceof WrongType && e.column === column);
  }
  assert.throws(() => w.text("absent"), MissingColumn);
});

test("non-ASCII text is sliced by UTF-8 byte offsets", () => {
  const w = oneWrite(new CommitBuilder().insert("schwerpunkte", { id: 1 }, { id: 1, titel: "Grüße 🦀", größe: "ß" }));
  assert.equal(w.text("titel"), "Grüße 🦀");
  assert.equal(w.get("größe"), "ß");
  assert.deepEqual(w.after.entries(), [["id", 1], ["titel", "Grüße 🦀"], ["größe", "ß"]]);
});

test("targets are a set", () => {
  const out = new Targets().key("a").key("a").tag("t").pattern("p*");
  assert.equal(out.size, 3);
  assert.ok(out.has(Target.key("a")));
  assert.deepEqual(out.toArray(), [Target.key("a"), Target.pattern("p*"), Target.tag("t")]);
  assert.ok(!out.has(Target.tag("a")), "kinds are apart");
  assert.equal(new Targets().add(Target.tag(5)).toArray()[0].val, "5");
});

test("writesTo filters by table in commit order", () => {
  const commit = new CommitBuilder("t-9")
    .source("pos")
    .insert("bills", { id: 1 }, { id: 1, shop_id: 1 })
    .insert("products", { sku: "x" }, { sku: "x", shop_id: 2 })
    .insert("bills", { id: 2 }, { id: 2, shop_id: 3 })
    .finish();
  assert.equal(commit.txn, "t-9");
  assert.equal(commit.source, "pos");
  assert.deepEqual(commit.writesTo("bills").map((w) => w.get("shop_id")), [1, 3]);
});

test("the export turns errors into rule errors, not traps", () => {
  const rule = {
    describe: () => ({ name: "r", version: "1" }),
    onCommit(commit) {
      for (const w of commit.writes()) {
        if (w.table === "boom") throw new TypeError("bad");
        w.each("missing");
      }
    },
  };
  const exported = exportRule(rule, () => {});
  assert.deepEqual(exported.describe(), { name: "r", version: "1", tables: [], fallback: [] });
  const raw = (b) => b.finish().raw;
  assert.deepEqual(exported.onCommit(raw(new CommitBuilder().insert("x", { id: 1 }, { id: 1 }))), {
    tag: "err",
    val: { tag: "missing-column", val: { table: "x", column: "missing" } },
  });
  assert.deepEqual(exported.onCommit(raw(new CommitBuilder().insert("boom", { id: 1 }, { id: 1 }))), {
    tag: "err",
    val: { tag: "other", val: "TypeError: bad" },
  });
});

test("evaluate runs a rule natively", () => {
  const rule = { onCommit: (commit, out) => commit.writes().forEach((w) => out.key(`${w.table}:${w.value("id")}`)) };
  const got = evaluate(rule, new CommitBuilder().insert("users", { id: 5 }, { id: 5 }));
  assert.deepEqual(got.toArray(), [Target.key("users:5")]);
});

test("number lists that do not start on an 8-byte boundary read the same", () => {
  const commit = new CommitBuilder()
    .update("kinder", { id: 3 }, { id: 3, turnus_id: 1, rate: CommitBuilder.float(0.5) }, { id: 3, turnus_id: 2, rate: CommitBuilder.float(0.5) })
    .finish();
  // The bindings may hand a list as a view into a larger buffer at any
  // offset; typed-array views of 32 or 64 bits need aligned bytes.
  const shifted = (bytes) => {
    const buffer = new Uint8Array(bytes.length + 3);
    buffer.set(bytes, 3);
    return buffer.subarray(3);
  };
  const raw = { ...commit.raw };
  for (const list of ["columnNames", "columnValues", "writeTables", "writeKeys", "writeBefores", "writeAfters"]) {
    raw[list] = shifted(raw[list]);
    assert.equal(raw[list].byteOffset % 8, 3);
  }
  const [w] = new Commit(raw).writes();
  assert.equal(w.table, "kinder");
  assert.deepEqual(w.each("turnus_id"), [2, 1]);
  assert.equal(w.float("rate"), 0.5);
});
