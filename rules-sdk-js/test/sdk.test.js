// The SDK's accessors, natively: the same cases as the Rust SDK's tests.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  Commit,
  MissingColumn,
  Op,
  Target,
  Targets,
  WrongType,
  checkRule,
  commit,
  evaluate,
  exportRule,
  float,
  formatConsole,
  forwardConsole,
} from "../invalidator-rules.js";
import * as pos from "../examples/pos.js";

const oneWrite = (write) => {
  const writes = commit({ writes: [write] }).writes();
  assert.equal(writes.length, 1);
  return writes[0];
};

test("each gives new and old when a row moves", () => {
  const w = oneWrite({ table: "kinder", op: "update", key: { id: 3 }, before: { id: 3, turnus_id: 1 }, after: { id: 3, turnus_id: 2 } });
  assert.deepEqual(w.each("turnus_id"), [2, 1]);
  assert.ok(w.changed("turnus_id"));
  assert.ok(!w.changed("id"));
});

test("each gives one value when unchanged, and skips nulls", () => {
  let w = oneWrite({ table: "kinder", op: "update", key: { id: 3 }, before: { id: 3, turnus_id: 1 }, after: { id: 3, turnus_id: 1 } });
  assert.deepEqual(w.each("turnus_id"), [1]);
  assert.ok(!w.changed("turnus_id"));
  w = oneWrite({ table: "geld", op: "update", key: { id: 3 }, before: { id: 3, turnus_id: null }, after: { id: 3, turnus_id: 7 } });
  assert.deepEqual(w.each("turnus_id"), [7]);
  w = oneWrite({ table: "geld", op: "insert", key: { id: 3 }, after: { id: 3, turnus_id: null } });
  assert.deepEqual(w.each("turnus_id"), []);
});

test("each falls back to the key, then throws naming the column", () => {
  const w = oneWrite({ table: "user_profiles", op: "delete", key: { id: 9 } });
  assert.deepEqual(w.each("id"), [9]);
  assert.throws(() => w.each("turnus_id"), (e) => e instanceof MissingColumn && e.table === "user_profiles" && e.column === "turnus_id");
});

test("get reads after, then before, then the key", () => {
  const w = oneWrite({ table: "bills", op: Op.DELETE, key: { id: "B-1" }, before: { id: "B-1", shop_id: 12 } });
  assert.equal(w.op, Op.DELETE);
  assert.equal(w.get("shop_id"), 12);
  assert.equal(w.after, null);
  assert.ok(w.before.has("shop_id"));
  assert.equal(w.get("absent"), null);
});

test("an update without a before image changes everything", () => {
  const w = oneWrite({ table: "kinder", op: "update", key: { id: 3 }, after: { id: 3, turnus_id: 1 } });
  assert.ok(w.changed("turnus_id"));
  assert.ok(w.changedAny(["name"]));
});

test("numbers where they fit, BigInt only where they must", () => {
  const row = { id: 1, small: -42, edge: 2 ** 53 - 1, big: 2n ** 62n, min: -(2n ** 63n), price: 19.5, whole: float(2) };
  const w = oneWrite({ table: "t", op: "insert", key: { id: 1 }, after: row });
  assert.equal(w.integer("small"), -42);
  assert.equal(w.integer("edge"), 2 ** 53 - 1);
  assert.equal(w.integer("big"), 2n ** 62n);
  assert.equal(w.integer("min"), -(2n ** 63n));
  assert.equal(w.float("price"), 19.5);
  assert.equal(w.float("whole"), 2);
  assert.throws(() => w.integer("whole"), WrongType);
});

test("typed getters throw WrongType naming the column", () => {
  const w = oneWrite({ table: "t", op: "insert", key: { id: 1 }, after: { id: 1, name: "Mia", ok: true, none: null } });
  assert.equal(w.text("name"), "Mia");
  assert.equal(w.boolean("ok"), true);
  assert.equal(w.text("none"), null);
  for (const [getter, column] of [["integer", "name"], ["text", "id"], ["boolean", "id"], ["float", "ok"]]) {
    assert.throws(() => w[getter](column), (e) => e instanceof WrongType && e.column === column);
  }
  assert.throws(() => w.text("absent"), MissingColumn);
});

test("non-ASCII text is sliced by UTF-8 byte offsets", () => {
  const w = oneWrite({ table: "schwerpunkte", op: "insert", key: { id: 1 }, after: { id: 1, titel: "Grüße 🦀", größe: "ß" } });
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
  const c = commit({
    txn: "t-9",
    source: "pos",
    writes: [
      { table: "bills", op: "insert", key: { id: 1 }, after: { id: 1, shop_id: 1 } },
      { table: "products", op: "insert", key: { sku: "x" }, after: { sku: "x", shop_id: 2 } },
      { table: "bills", op: "insert", key: { id: 2 }, after: { id: 2, shop_id: 3 } },
    ],
  });
  assert.equal(c.txn, "t-9");
  assert.equal(c.source, "pos");
  assert.deepEqual(c.writesTo("bills").map((w) => w.get("shop_id")), [1, 3]);
});

const insert = (table) => ({ table, op: "insert", key: { id: 1 }, after: { id: 1 } });

test("the export turns errors into rule errors, not traps", () => {
  const rule = {
    rule: { name: "r", version: "1" },
    onCommit(commit) {
      for (const w of commit.writes()) {
        if (w.table === "boom") throw new TypeError("bad");
        w.each("missing");
      }
    },
  };
  const exported = exportRule(rule);
  assert.deepEqual(exported.describe(), { name: "r", version: "1", tables: [], fallback: [] });
  assert.deepEqual(exported.onCommit(commit({ writes: [insert("x")] }).raw), {
    tag: "err",
    val: { tag: "missing-column", val: { table: "x", column: "missing" } },
  });
  assert.deepEqual(exported.onCommit(commit({ writes: [insert("boom")] }).raw), {
    tag: "err",
    val: { tag: "other", val: "TypeError: bad" },
  });
});

test("evaluate runs a rule module natively", () => {
  const rule = {
    rule: { name: "users", version: "1" },
    onCommit: (c, out) => c.writes().forEach((w) => out.key(`${w.table}:${w.value("id")}`)),
  };
  const got = evaluate(rule, commit({ writes: [insert("users")] }));
  assert.deepEqual(got.toArray(), [Target.key("users:1")]);
});

test("the example's module describes itself through the export", () => {
  assert.deepEqual(exportRule(pos).describe(), {
    name: "pos",
    version: "1.0.0",
    tables: ["products", "customers", "bills", "employees"],
    fallback: [Target.pattern("shop:*")],
  });
});

test("a module that is not a rule is refused, naming what is wrong and where", () => {
  const onCommit = () => {};
  const info = { name: "r", version: "1" };
  const cases = [
    [{ rule: info }, /rule module `m.js` does not export onCommit: a rule module exports/],
    [{}, /does not export rule nor onCommit/],
    [{ default: { describe: () => info, onCommit } }, /does not export rule nor onCommit \(a default export with `describe\(\)` is the shape of SDK 0\.1\)/],
    [{ rule: info, onCommit: "x" }, /onCommit is a string, not a function/],
    [{ rule: () => info, onCommit }, /rule is a function, not an object/],
    [{ rule: { ...info, fallbacks: [] }, onCommit }, /unknown fields `fallbacks`; it takes name, version, tables, fallback/],
    [{ rule: { ...info, name: "" }, onCommit }, /rule\.name must be a non-empty string/],
    [{ rule: { version: "1" }, onCommit }, /rule\.name must be a non-empty string, not undefined/],
    [{ rule: { ...info, tables: "items" }, onCommit }, /rule\.tables must be an array/],
    [{ rule: { ...info, fallback: ["shop:*"] }, onCommit }, /rule\.fallback holds "shop:\*", not a target/],
  ];
  for (const [module, says] of cases) {
    assert.throws(() => checkRule(module, "rule module `m.js`"), (e) => e instanceof TypeError && says.test(e.message), String(says));
    assert.throws(() => evaluate(module, commit()), TypeError);
    assert.throws(() => exportRule(module), TypeError);
  }
});

test("commit takes the fixtures' shape and refuses what is not a write", () => {
  const c = commit(JSON.parse('{"txn":"moved","writes":[{"table":"kinder","op":"update","key":{"id":3},"after":{"id":3,"turnus_id":2}}]}'));
  assert.equal(c.txn, "moved");
  assert.deepEqual(c.writes().map((w) => [w.table, w.op, w.get("turnus_id")]), [["kinder", Op.UPDATE, 2]]);
  assert.throws(() => commit({ writes: [{ table: "t", op: "insert", afer: {} }] }), /write 1 has unknown fields afer/);
  assert.throws(() => commit({ writes: [{ table: "t" }] }), /write 1 needs a table and an op/);
  assert.throws(() => commit({ writes: [{ table: "t", op: "upsert" }] }), /unknown op "upsert"/);
  assert.throws(() => commit({ writes: [{ table: "t", op: "toString" }] }), /unknown op "toString"/);
  assert.throws(() => commit({ write: [] }), /unknown commit fields write/);
  assert.throws(() => commit({ writes: [{ table: "t", op: "insert", key: { when: Symbol("x") } }] }), /column "when"/);
});

test("console goes to the host's log at its method's level", () => {
  const lines = [];
  const fake = forwardConsole((level, message) => lines.push([level, message]), {});
  fake.trace("t");
  fake.debug("d", 1);
  fake.log("%d writes to %s", 3, "bills", "and more");
  fake.info({ shop: 12, big: 2n ** 64n });
  fake.warn("100%% sure, %s", "%d stays");
  fake.error(new TypeError("bad"));
  assert.deepEqual(lines, [
    ["trace", "t"],
    ["debug", "d 1"],
    ["info", "3 writes to bills and more"],
    ["info", '{"shop":12,"big":"18446744073709551616n"}'],
    ["warn", "100% sure, %d stays"],
    ["error", "TypeError: bad"],
  ]);
  assert.equal(formatConsole(["%s and %s", "one"]), "one and %s");
});

test("number lists that do not start on an 8-byte boundary read the same", () => {
  const moved = { table: "kinder", op: "update", key: { id: 3 }, before: { id: 3, turnus_id: 1, rate: float(0.5) }, after: { id: 3, turnus_id: 2, rate: float(0.5) } };
  const c = commit({ writes: [moved] });
  // The bindings may hand a list as a view into a larger buffer at any
  // offset; typed-array views of 32 or 64 bits need aligned bytes.
  const shifted = (bytes) => {
    const buffer = new Uint8Array(bytes.length + 3);
    buffer.set(bytes, 3);
    return buffer.subarray(3);
  };
  const raw = { ...c.raw };
  for (const list of ["columnNames", "columnValues", "writeTables", "writeKeys", "writeBefores", "writeAfters"]) {
    raw[list] = shifted(raw[list]);
    assert.equal(raw[list].byteOffset % 8, 3);
  }
  const [w] = new Commit(raw).writes();
  assert.equal(w.table, "kinder");
  assert.deepEqual(w.each("turnus_id"), [2, 1]);
  assert.equal(w.float("rate"), 0.5);
});
