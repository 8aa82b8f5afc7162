// A JavaScript rule that misbehaves on purpose, to show the sandbox
// contains it as it contains the Rust and Python ones. What it does depends
// on the table of the first write:
//
// - `loop`: spins forever.
// - `grab`: allocates until memory runs out.
// - `throw`: throws an error that is not a rule error.
// - `log`: logs a warning with `console.warn`, which the SDK sends to the
//   host's log, and returns key `logged`.
// - anything else: key `ok:{table}`.

import { Target } from "../../rules-sdk-js/invalidator-rules.js";

export const rule = { name: "hostile_js", version: "0.0.1", fallback: [Target.key("hostile:fallback")] };

export function onCommit(commit, out) {
  const writes = commit.writes();
  const table = writes.length > 0 ? writes[0].table : "";
  if (table === "loop") {
    let n = 0;
    for (;;) n++;
  } else if (table === "grab") {
    const hoard = [];
    for (;;) hoard.push(new Uint8Array(1 << 20).fill(1));
  } else if (table === "throw") {
    throw new TypeError("refusing on purpose");
  } else if (table === "log") {
    console.warn("hello from the hostile JS rule");
    out.key("logged");
  } else {
    out.key(`ok:${table}`);
  }
}
