// The rules SDK for JavaScript: write a cache-invalidation rule in JS.
//
// A rule is a module: what it says about itself in `rule`, what a commit
// invalidates in `onCommit`:
//
//     import { Target } from "./invalidator-rules.js";
//
//     export const rule = {
//       name: "profiles", version: "1.0.0", tables: ["user_profiles"],
//       fallback: [Target.pattern("user_profile_*")],
//     };
//
//     export function onCommit(commit, out) {
//       for (const w of commit.writesTo("user_profiles")) {
//         for (const user of w.each("user_id")) out.key(`user_profile_${user}`);
//       }
//     }
//
// `node build.mjs profiles.js` turns it into a component with
// componentize-js, every WASI feature disabled, so that it imports nothing
// but the host's `log`; it checks the module first (`checkRule`), and fails
// naming what is missing or wrong. The same module runs natively under
// `node --test` through `evaluate`, on commits made by `commit` from plain
// objects in the shape of the `.test.jsonl` fixtures:
//
//     import * as profiles from "./profiles.js";
//     const got = evaluate(profiles, commit({ writes: [
//       { table: "user_profiles", op: "insert", key: { id: 1 }, after: { id: 1, user_id: 2 } },
//     ] }));
//
// Log with `console`: in the component, `console.debug`, `log`/`info`,
// `warn`, `error` and `trace` go to the host's log at those levels, tagged
// with the rule's name (`forwardConsole`); natively, to Node's console.
//
// The commit arrives in the flat layout of `wit/rules.wit`: one text of
// every name and text value, and lists of 64-bit numbers as little-endian
// bytes. This module hides it behind the same accessors as the Rust SDK. The
// lists are read through 32-bit views of their bytes, so no BigInt is made
// per access. Text spans
// are UTF-8 byte offsets: the text is encoded once per call (and not sliced
// through bytes at all when it is ASCII, where byte and character offsets
// agree), and when it is not ASCII the column names are decoded once per
// call. Values are JS values: `null`, booleans, numbers, strings, and a
// `BigInt` only for an integer beyond 2^53.
//
// This file is the whole SDK, so that a rule project can carry its own copy
// (`invalidator new --lang js` writes one).

const NULL = 0;
const BOOLEAN = 1;
const INTEGER = 2;
const FLOAT = 3;
const TEXT = 4;
const INSERT = 0;
const UPDATE = 1;
const DELETE = 2;
const ABSENT_HALF = 0xffffffff;
const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

/** Insert, update or delete. */
export const Op = Object.freeze({ INSERT: "insert", UPDATE: "update", DELETE: "delete" });

/** Targets, in the shape the WIT bindings take: `{ tag, val }`. */
export const Target = Object.freeze({
  /** One exact cache key. */
  key: (key) => ({ tag: "key", val: String(key) }),
  /** Every key matching a Redis glob pattern. */
  pattern: (pattern) => ({ tag: "pattern", val: String(pattern) }),
  /** Every key registered under a tag. */
  tag: (tag) => ({ tag: "tag", val: String(tag) }),
});

/** The targets a rule gives for a commit: a set, so duplicates collapse. */
export class Targets {
  constructor() {
    // One set of strings per kind: adding a target is one `Set.add`, and
    // the objects the bindings take are made once per distinct target, on
    // the way out. (This is the hot path of tag-heavy rules.)
    /** The exact cache keys. */
    this.keys = new Set();
    /** The Redis glob patterns. */
    this.patterns = new Set();
    /** The tags. */
    this.tags = new Set();
  }
  /** Adds one exact cache key. */
  key(key) {
    this.keys.add(typeof key === "string" ? key : String(key));
    return this;
  }
  /** Adds every key matching a Redis glob pattern. */
  pattern(pattern) {
    this.patterns.add(typeof pattern === "string" ? pattern : String(pattern));
    return this;
  }
  /** Adds every key registered under a tag. */
  tag(tag) {
    this.tags.add(typeof tag === "string" ? tag : String(tag));
    return this;
  }
  /** Adds a target made with `Target`. */
  add(target) {
    return this[target.tag](target.val);
  }
  /** How many distinct targets. */
  get size() {
    return this.keys.size + this.patterns.size + this.tags.size;
  }
  /** Whether the set holds this target. */
  has(target) {
    const set = { key: this.keys, pattern: this.patterns, tag: this.tags }[target.tag];
    return set !== undefined && set.has(target.val);
  }
  /** The targets, as `Target` objects: keys, then patterns, then tags, each
   * in the order first added. */
  toArray() {
    const out = [];
    for (const val of this.keys) out.push({ tag: "key", val });
    for (const val of this.patterns) out.push({ tag: "pattern", val });
    for (const val of this.tags) out.push({ tag: "tag", val });
    return out;
  }
}

/** Why a rule could not answer for a commit; the host then applies the
 * rule's fallback targets. Throw it with your own words. */
export class RuleError extends Error {}

/** A column the rule needs is in neither row image. */
export class MissingColumn extends RuleError {
  constructor(table, column) {
    super(`missing column \`${column}\` in table \`${table}\``);
    this.table = table;
    this.column = column;
  }
}

/** A column holds a value of a type the rule cannot use. */
export class WrongType extends RuleError {
  constructor(table, column) {
    super(`column \`${column}\` in table \`${table}\` has the wrong type`);
    this.table = table;
    this.column = column;
  }
}

/** The bytes of a list of 64-bit numbers, copied if they do not start on
 * an 8-byte boundary (typed-array views must be aligned). */
function aligned(bytes) {
  return bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
}

/** 32-bit halves of a list of 64-bit numbers (little-endian: low word
 * first). */
function halves(bytes) {
  const b = aligned(bytes);
  return new Uint32Array(b.buffer, b.byteOffset, b.length >>> 2);
}

/** A committed transaction: its id, its source, and the rows it wrote. A
 * rule only sees the writes to the tables it subscribes to. */
export class Commit {
  constructor(raw) {
    this.raw = raw;
    /** The transaction id. */
    this.txn = raw.txn;
    /** The application or stream the commit came from, if known. */
    this.source = raw.source ?? null;
    const text = raw.text;
    const bytes = ENCODER.encode(text);
    // ASCII: byte offsets are character offsets; slice the string.
    this.bytes = bytes.length === text.length ? null : bytes;
    this.text = text;
    this.names = halves(raw.columnNames);
    const values = aligned(raw.columnValues);
    this.values = halves(values);
    this.floats = new Float64Array(values.buffer, values.byteOffset, values.length >>> 3);
    this.kinds = raw.columnKinds;
    this.count = raw.columnKinds.length;
    /** Every column's name, when the text is not ASCII: decoded on first
     * use, once per call, rather than once per comparison. */
    this.decodedNames = null;
    this.tables = halves(raw.writeTables);
    this.keys = halves(raw.writeKeys);
    this.befores = halves(raw.writeBefores);
    this.afters = halves(raw.writeAfters);
  }

  /** The text of the span whose halves are at `at` in `list`. */
  span(list, at) {
    const len = list[at];
    const start = list[at + 1];
    if (this.bytes === null) return this.text.slice(start, start + len);
    return DECODER.decode(this.bytes.subarray(start, start + len));
  }

  /** The name of column `i`. */
  name(i) {
    if (this.bytes === null) return this.span(this.names, 2 * i);
    if (this.decodedNames === null) {
      const names = new Array(this.count);
      for (let j = 0; j < this.count; j++) names[j] = this.span(this.names, 2 * j);
      this.decodedNames = names;
    }
    return this.decodedNames[i];
  }

  /** The value of column `i`. */
  value(i) {
    switch (this.kinds[i]) {
      case INTEGER: {
        const lo = this.values[2 * i];
        const hi = this.values[2 * i + 1] | 0;
        // Within ±2^53 a number is exact; beyond it, a BigInt.
        if (hi >= -0x200000 && hi < 0x200000) return hi * 0x100000000 + lo;
        return (BigInt(hi) << 32n) | BigInt(lo);
      }
      case TEXT:
        return this.span(this.values, 2 * i);
      case FLOAT:
        return this.floats[i];
      case BOOLEAN:
        return this.values[2 * i] !== 0;
      default:
        // Null, or a kind this SDK does not know.
        return null;
    }
  }

  /** Every write, in commit order. */
  writes() {
    const out = new Array(this.raw.writeOps.length);
    for (let i = 0; i < out.length; i++) out[i] = new Write(this, i);
    return out;
  }

  /** The writes to `table`, in commit order. */
  writesTo(table) {
    return this.writes().filter((w) => w.table === table);
  }
}

const MISSING = Symbol("missing");

/** A row image: its columns' names and values. */
export class Row {
  constructor(commit, runs, index) {
    this.commit = commit;
    const len = runs[2 * index];
    const start = Math.min(runs[2 * index + 1], commit.count);
    this.start = start;
    this.end = Math.min(start + len, commit.count);
  }

  /** The index of `column`, or -1. Compares byte lengths first, from the
   * packed span, which settles most mismatches without slicing. */
  find(column) {
    const c = this.commit;
    const size = c.bytes === null ? column.length : ENCODER.encode(column).length;
    for (let i = this.start; i < this.end; i++) {
      if (c.names[2 * i] === size && c.name(i) === column) return i;
    }
    return -1;
  }

  /** Whether the row has the column. */
  has(column) {
    return this.find(column) >= 0;
  }

  /** The column's value; `null` when it is null or absent. */
  get(column) {
    const i = this.find(column);
    return i >= 0 ? this.commit.value(i) : null;
  }

  /** Every column's name and value, in order. */
  entries() {
    const c = this.commit;
    const out = [];
    for (let i = this.start; i < this.end; i++) out.push([c.name(i), c.value(i)]);
    return out;
  }

  /** How many columns. */
  get size() {
    return this.end - this.start;
  }
}

/** Equal values of the same type. */
function same(a, b) {
  return typeof a === typeof b && a === b;
}

/** One row written by a transaction. */
export class Write {
  constructor(commit, index) {
    this.commit = commit;
    this.index = index;
    /** The table written. */
    this.table = commit.span(commit.tables, 2 * index);
    const code = commit.raw.writeOps[index];
    /** `Op.INSERT`, `Op.UPDATE` or `Op.DELETE`. An op code the SDK does not
     * know reads as an update: that errs toward invalidating. */
    this.op = code === INSERT ? Op.INSERT : code === DELETE ? Op.DELETE : Op.UPDATE;
  }

  row(runs) {
    const at = 2 * this.index;
    if (runs[at] === ABSENT_HALF && runs[at + 1] === ABSENT_HALF) return null;
    return new Row(this.commit, runs, this.index);
  }

  /** The primary-key columns. */
  get key() {
    return this.row(this.commit.keys);
  }

  /** The row before the write, if the source sent it. */
  get before() {
    return this.row(this.commit.befores);
  }

  /** The row after the write; `null` for deletes. */
  get after() {
    return this.row(this.commit.afters);
  }

  lookup(runs, column) {
    const at = 2 * this.index;
    const len = runs[at];
    const start = runs[at + 1];
    if (len === ABSENT_HALF && start === ABSENT_HALF) return MISSING;
    // As `Row.find`, without making a `Row`: this is the hot path.
    const c = this.commit;
    const size = c.bytes === null ? column.length : ENCODER.encode(column).length;
    const end = Math.min(start + len, c.count);
    const names = c.names;
    for (let i = start; i < end; i++) {
      if (names[2 * i] === size && c.name(i) === column) return c.value(i);
    }
    return MISSING;
  }

  current(column) {
    const c = this.commit;
    let v = this.lookup(c.afters, column);
    if (v === MISSING) v = this.lookup(c.befores, column);
    if (v === MISSING) v = this.lookup(c.keys, column);
    return v;
  }

  /** The column's current value: from the row after the write, else from
   * the row before it (deletes), else from the primary key. `null` when it
   * is null or no image has it (see `value`). */
  get(column) {
    const v = this.current(column);
    return v === MISSING ? null : v;
  }

  /** The column's value after the write; `null` if absent or null. */
  newValue(column) {
    const v = this.lookup(this.commit.afters, column);
    return v === MISSING ? null : v;
  }

  /** The column's value before the write; `null` if absent or null. */
  oldValue(column) {
    const v = this.lookup(this.commit.befores, column);
    return v === MISSING ? null : v;
  }

  /** Whether the write changed the column. Inserts and deletes change every
   * column. So does an update without a `before` image, or one where
   * neither image has the column: when in doubt, invalidate. */
  changed(column) {
    if (this.op !== Op.UPDATE || this.before === null || this.after === null) return true;
    const oldV = this.lookup(this.commit.befores, column);
    const newV = this.lookup(this.commit.afters, column);
    if (oldV === MISSING && newV === MISSING) return true;
    return !same(oldV, newV);
  }

  /** Whether the write changed any of `columns`. */
  changedAny(columns) {
    return columns.some((c) => this.changed(c));
  }

  /** The distinct non-null values of the column around this write: the new
   * one, and the old one when it differs. Falls back to the primary key
   * when neither image has the column; throws `MissingColumn` when no image
   * has it at all. */
  each(column) {
    const c = this.commit;
    const newV = this.lookup(c.afters, column);
    const oldV = this.lookup(c.befores, column);
    if (newV === MISSING && oldV === MISSING) {
      const key = this.lookup(c.keys, column);
      if (key === MISSING) throw new MissingColumn(this.table, column);
      return key === null ? [] : [key];
    }
    const out = newV === MISSING || newV === null ? [] : [newV];
    if (oldV !== MISSING && oldV !== null && !(out.length > 0 && same(oldV, newV))) out.push(oldV);
    return out;
  }

  /** The column's current value (null as `null`); throws `MissingColumn`
   * when no image has it. */
  value(column) {
    const v = this.current(column);
    if (v === MISSING) throw new MissingColumn(this.table, column);
    return v;
  }

  typed(column, ok) {
    const v = this.value(column);
    if (v === null || ok(v)) return v;
    throw new WrongType(this.table, column);
  }

  /** The column's current value as text; `null` when null. */
  text(column) {
    return this.typed(column, (v) => typeof v === "string");
  }

  /** The column's current value as an integer (a number, or a BigInt
   * beyond 2^53); `null` when null. A float is the wrong type. */
  integer(column) {
    const v = this.typed(column, (v) => typeof v === "number" || typeof v === "bigint");
    if (typeof v === "number" && this.commit.kinds[this.currentIndex(column)] === FLOAT) {
      throw new WrongType(this.table, column);
    }
    return v;
  }

  /** The column's current value as a number; `null` when null. */
  float(column) {
    const v = this.typed(column, (v) => typeof v === "number" || typeof v === "bigint");
    return typeof v === "bigint" ? Number(v) : v;
  }

  /** The column's current value as a boolean; `null` when null. */
  boolean(column) {
    return this.typed(column, (v) => typeof v === "boolean");
  }

  currentIndex(column) {
    const c = this.commit;
    for (const runs of [c.afters, c.befores, c.keys]) {
      const row = this.row(runs);
      const i = row === null ? -1 : row.find(column);
      if (i >= 0) return i;
    }
    return -1;
  }
}

const SHAPE =
  "a rule module exports `const rule = { name, version, tables, fallback }` and `function onCommit(commit, out)`";
const RULE_FIELDS = ["name", "version", "tables", "fallback"];
const KINDS = ["key", "pattern", "tag"];

/** The `rule` and `onCommit` of a rule module (its namespace, or any object
 * with both), checked: throws a `TypeError` saying what is missing or
 * wrong, and in which module (`where`). Returns the rule's description in
 * the shape `describe` gives, and `onCommit`. */
export function checkRule(module, where = "the rule module") {
  const missing = ["rule", "onCommit"].filter((name) => module?.[name] === undefined);
  if (missing.length > 0) {
    const old = module?.default !== undefined ? " (a default export with `describe()` is the shape of SDK 0.1)" : "";
    throw new TypeError(`${where} does not export ${missing.join(" nor ")}${old}: ${SHAPE}`);
  }
  const { rule, onCommit } = module;
  if (typeof onCommit !== "function") throw new TypeError(`${where}: onCommit is a ${typeof onCommit}, not a function: ${SHAPE}`);
  if (rule === null || typeof rule !== "object") throw new TypeError(`${where}: rule is ${rule === null ? "null" : `a ${typeof rule}`}, not an object: ${SHAPE}`);
  const unknown = Object.keys(rule).filter((key) => !RULE_FIELDS.includes(key));
  if (unknown.length > 0) {
    throw new TypeError(`${where}: rule has unknown fields ${unknown.map((k) => `\`${k}\``).join(", ")}; it takes ${RULE_FIELDS.join(", ")}`);
  }
  for (const field of ["name", "version"]) {
    if (typeof rule[field] !== "string" || rule[field] === "") {
      throw new TypeError(`${where}: rule.${field} must be a non-empty string, not ${JSON.stringify(rule[field])}`);
    }
  }
  const list = (field) => {
    const value = rule[field] ?? [];
    if (typeof value === "string" || typeof value[Symbol.iterator] !== "function") {
      throw new TypeError(`${where}: rule.${field} must be an array, not ${JSON.stringify(value)}`);
    }
    return [...value];
  };
  const tables = list("tables");
  for (const table of tables) {
    if (typeof table !== "string" || table === "") throw new TypeError(`${where}: rule.tables holds ${JSON.stringify(table)}, not a table name`);
  }
  const fallback = list("fallback");
  for (const target of fallback) {
    if (!KINDS.includes(target?.tag) || typeof target.val !== "string") {
      throw new TypeError(
        `${where}: rule.fallback holds ${JSON.stringify(target)}, not a target; make one with Target.key(...), Target.pattern(...) or Target.tag(...)`,
      );
    }
  }
  return { info: { name: rule.name, version: rule.version, tables, fallback }, onCommit };
}

/** Runs the rule module `rule` (`import * as rule from "./rule.js"`) on
 * `commit` natively, as the host would (without the sandbox): for tests.
 * Checks the module as the build does, and throws the rule's errors. */
export function evaluate(rule, commit) {
  const { onCommit } = checkRule(rule);
  const out = new Targets();
  onCommit(commit, out);
  return out;
}

/** The component's exports for a rule module; the build's entry module
 * calls it once, when the component is built. Checks the module and reads
 * `rule` and `onCommit` once, there. Every exception becomes a rule error,
 * so that the host applies the fallback instead of seeing a trap. */
export function exportRule(module, where) {
  const { info, onCommit: ruleOnCommit } = checkRule(module, where);
  return {
    describe() {
      return { ...info, tables: [...info.tables], fallback: [...info.fallback] };
    },
    onCommit(raw) {
      const out = new Targets();
      try {
        ruleOnCommit(new Commit(raw), out);
      } catch (e) {
        if (e instanceof MissingColumn) {
          return { tag: "err", val: { tag: "missing-column", val: { table: e.table, column: e.column } } };
        }
        if (e instanceof WrongType) {
          return { tag: "err", val: { tag: "wrong-type", val: { table: e.table, column: e.column } } };
        }
        const message = e instanceof RuleError ? e.message : `${e?.name ?? "Error"}: ${e?.message ?? e}`;
        return { tag: "err", val: { tag: "other", val: message } };
      }
      return { tag: "ok", val: out.toArray() };
    },
  };
}

/** Each `console` method and the host's level it logs at. */
const CONSOLE_LEVELS = Object.freeze({ trace: "trace", debug: "debug", log: "info", info: "info", warn: "warn", error: "error" });

/** One value as `console` shows it: a string as it is, an error as its
 * name and message, an object as JSON where it can be. */
function show(value) {
  if (typeof value === "string") return value;
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  if (value !== null && typeof value === "object") {
    try {
      return JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `${v}n` : v));
    } catch {
      return String(value);
    }
  }
  return String(value);
}

/** A `console` line: the arguments joined by spaces, with the
 * substitutions of a first string argument (`%s`, `%d`, `%i`, `%f`, `%o`,
 * `%O`, `%j`, `%%`) as Node makes them. */
export function formatConsole(args) {
  const rest = [...args];
  let head = "";
  if (typeof rest[0] === "string") {
    head = rest.shift().replace(/%([sdifoOj%])/g, (whole, code) => {
      if (code === "%") return "%";
      if (rest.length === 0) return whole;
      const v = rest.shift();
      if (code === "d" || code === "i") {
        if (typeof v === "bigint") return `${v}n`;
        const n = Number(v);
        return String(code === "i" ? Math.trunc(n) : n);
      }
      if (code === "f") return String(Number(v));
      return show(v);
    });
    if (rest.length === 0) return head;
    head += " ";
  }
  return head + rest.map(show).join(" ");
}

/** Sends `target`'s (by default the global `console`'s) `trace`, `debug`,
 * `log`, `info`, `warn` and `error` to the host's `log(level, message)`,
 * at the levels their names say (`log` at info). The build's entry module
 * calls it with the host's `log`, so that a rule logs with `console`. */
export function forwardConsole(log, target = globalThis.console) {
  for (const [method, level] of Object.entries(CONSOLE_LEVELS)) {
    target[method] = (...args) => log(level, formatConsole(args));
  }
  return target;
}

/** A float column value for `commit`, even when whole (`float(2)`): a
 * whole number is an integer otherwise. */
export function float(x) {
  return { float: Number(x) };
}

const WRITE_FIELDS = ["table", "op", "key", "before", "after"];
const COMMIT_FIELDS = ["txn", "source", "writes"];

/** A `Commit` of `writes`, for a rule's native tests, in the shape of the
 * `.test.jsonl` fixtures (so `commit(JSON.parse(line).commit)` reads a
 * fixture's commit): `{ txn, source, writes: [{ table, op, key, before,
 * after }] }`, where `txn` defaults to `"t"`, `key` to no columns, and
 * `before` is left out on inserts and `after` on deletes. Rows are objects
 * of column names to `null`, booleans, numbers (integers when they are
 * whole, unless wrapped with `float`), BigInts and strings. */
export function commit({ txn = "t", source = null, writes = [], ...unknown } = {}) {
  const extra = Object.keys(unknown);
  if (extra.length > 0) throw new TypeError(`unknown commit fields ${extra.join(", ")}; expected ${COMMIT_FIELDS.join(", ")}`);
  const flat = new FlatCommit(txn, source);
  let n = 0;
  for (const write of writes) {
    n += 1;
    if (write === null || typeof write !== "object") throw new TypeError(`write ${n} is ${JSON.stringify(write)}, not an object`);
    const odd = Object.keys(write).filter((key) => !WRITE_FIELDS.includes(key));
    if (odd.length > 0) throw new TypeError(`write ${n} has unknown fields ${odd.join(", ")}; expected ${WRITE_FIELDS.join(", ")}`);
    if (write.table === undefined || write.op === undefined) {
      throw new TypeError(`write ${n} needs a table and an op, as in { table: "items", op: "insert", ... }`);
    }
    flat.write(write.table, write.op, write.key ?? {}, write.before ?? null, write.after ?? null);
  }
  return flat.finish();
}

/** A commit in the WIT layout, built natively by `commit`. */
class FlatCommit {
  constructor(txn, source) {
    this.txn = txn;
    this.src = source;
    this.parts = [];
    this.size = 0;
    this.names = [];
    this.kinds = [];
    this.bits = [];
    this.tables = [];
    this.ops = [];
    this.keyRuns = [];
    this.beforeRuns = [];
    this.afterRuns = [];
  }

  /** Adds a write. */
  write(table, op, key, before, after) {
    const codes = { [Op.INSERT]: INSERT, [Op.UPDATE]: UPDATE, [Op.DELETE]: DELETE };
    if (!Object.hasOwn(codes, op)) throw new RangeError(`unknown op ${JSON.stringify(op)}; expected insert, update or delete`);
    if (typeof table !== "string") throw new TypeError(`table ${JSON.stringify(table)} is not a string`);
    const absent = 0xffffffffffffffffn;
    this.tables.push(this.#text(table));
    this.ops.push(codes[op]);
    this.keyRuns.push(this.#row(key));
    this.beforeRuns.push(before == null ? absent : this.#row(before));
    this.afterRuns.push(after == null ? absent : this.#row(after));
  }

  /** The commit. */
  finish() {
    const bytes = (numbers) => new Uint8Array(BigUint64Array.from(numbers).buffer);
    return new Commit({
      txn: this.txn,
      source: this.src,
      text: this.parts.join(""),
      columnNames: bytes(this.names),
      columnKinds: Uint8Array.from(this.kinds),
      columnValues: bytes(this.bits),
      writeTables: bytes(this.tables),
      writeOps: Uint8Array.from(this.ops),
      writeKeys: bytes(this.keyRuns),
      writeBefores: bytes(this.beforeRuns),
      writeAfters: bytes(this.afterRuns),
    });
  }

  #text(s) {
    const start = this.size;
    const size = ENCODER.encode(s).length;
    this.parts.push(s);
    this.size += size;
    return (BigInt(start) << 32n) | BigInt(size);
  }

  #row(row) {
    const start = this.names.length;
    const entries = Object.entries(row);
    for (const [name, value] of entries) {
      this.names.push(this.#text(name));
      let kind;
      let bits;
      if (value === null || value === undefined) {
        [kind, bits] = [NULL, 0n];
      } else if (typeof value === "boolean") {
        [kind, bits] = [BOOLEAN, value ? 1n : 0n];
      } else if (typeof value === "bigint" || (typeof value === "number" && Number.isInteger(value))) {
        [kind, bits] = [INTEGER, BigInt.asUintN(64, BigInt(value))];
      } else if (typeof value === "number" || (typeof value === "object" && "float" in value)) {
        const f = new Float64Array([typeof value === "number" ? value : value.float]);
        [kind, bits] = [FLOAT, new BigUint64Array(f.buffer)[0]];
      } else if (typeof value === "string") {
        [kind, bits] = [TEXT, this.#text(value)];
      } else {
        throw new TypeError(`column ${JSON.stringify(name)}: ${typeof value} is not a column value`);
      }
      this.kinds.push(kind);
      this.bits.push(bits);
    }
    return (BigInt(start) << 32n) | BigInt(entries.length);
  }
}
