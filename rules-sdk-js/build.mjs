// Builds a JavaScript rule into a component:
//
//     node build.mjs RULE.js [-o OUT.wasm] [--wit DIR] [--aot WEVAL]
//
// The rule is one module exporting `rule` (its name, version, tables and
// fallback) and `onCommit(commit, out)`, importing the SDK as
// `./invalidator-rules.js` (or by any path ending in that name). The build
// copies the rule and this SDK into a folder of its own, imports the rule
// there to check it (`checkRule`: a module that lacks either export, or
// whose `rule` is wrong, fails the build saying so), and writes beside it an
// entry module that sends `console` to the host's `log` and exports the
// rule. It runs componentize-js on that with every WASI feature disabled:
// the component then imports nothing but the host's `log`.
//
// componentize-js is imported from the `node_modules` of the folder in
// `INVALIDATOR_COMPONENTIZE_JS` if set, else as usual from this file's
// folder upward (`npm install` in a rule project).
//
// `--aot WEVAL` compiles the rule ahead of time with the weval binary at
// that path (`cargo install weval`): the engine's interpreter is
// specialised to the rule's code, which runs it several times faster, for
// a longer build. Without it the rule is interpreted.

import { copyFile, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { tmpdir } from "node:os";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const usage = "usage: node build.mjs RULE.js [-o OUT.wasm] [--wit DIR] [--aot WEVAL]";

function parse(args) {
  const opts = { rule: null, out: null, wit: null, aot: null };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "-o" || a === "--out") opts.out = args[++i];
    else if (a === "--wit") opts.wit = args[++i];
    else if (a === "--aot") opts.aot = args[++i];
    else if (a === "-h" || a === "--help") {
      console.log(usage);
      process.exit(0);
    } else if (a.startsWith("-")) throw new Error(`unknown option \`${a}\`\n${usage}`);
    else if (opts.rule === null) opts.rule = a;
    else throw new Error(`unexpected argument \`${a}\`\n${usage}`);
  }
  if (opts.rule === null) throw new Error(usage);
  if (opts.out === undefined || opts.wit === undefined || opts.aot === undefined) throw new Error(`an option lacks its value\n${usage}`);
  return opts;
}

async function exists(path) {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function loadComponentize() {
  const dir = process.env.INVALIDATOR_COMPONENTIZE_JS;
  if (!dir) return import("@bytecodealliance/componentize-js");
  const pkg = join(dir, "node_modules", "@bytecodealliance", "componentize-js");
  const manifest = JSON.parse(await readFile(join(pkg, "package.json"), "utf8").catch(() => {
    throw new Error(`INVALIDATOR_COMPONENTIZE_JS=${dir}: no componentize-js in its node_modules (npm install @bytecodealliance/componentize-js there)`);
  }));
  return import(pathToFileURL(join(pkg, manifest.exports.import)).href);
}

async function main() {
  const opts = parse(process.argv.slice(2));
  const rule = resolve(opts.rule);
  const source = await readFile(rule, "utf8").catch((e) => {
    throw new Error(`cannot read rule \`${opts.rule}\`: ${e.message}`);
  });
  const out = resolve(opts.out ?? join(dirname(rule), basename(rule).replace(/\.m?js$/, "") + ".wasm"));
  let wit = opts.wit;
  if (wit === null) {
    wit = (await exists(join(here, "wit"))) ? join(here, "wit") : join(here, "..", "wit");
  }
  if (!(await exists(wit))) throw new Error(`no WIT at \`${wit}\`; pass --wit DIR`);
  if (opts.aot !== null && !(await exists(opts.aot))) {
    throw new Error(`no weval at \`${opts.aot}\` (--aot takes the path of a weval binary; \`cargo install weval\` makes one)`);
  }

  const work = await mkdtemp(join(tmpdir(), "invalidator-js-"));
  try {
    await copyFile(join(here, "invalidator-rules.js"), join(work, "invalidator-rules.js"));
    // One SDK for every rule: whatever path the rule imports it by.
    const rewritten = source.replace(/(["'])[^"'\n]*invalidator-rules\.js\1/g, '"./invalidator-rules.js"');
    await writeFile(join(work, "rule.js"), rewritten);
    // Node takes the copies as ES modules, as componentize-js does.
    await writeFile(join(work, "package.json"), '{ "type": "module" }\n');
    const where = `rule module \`${opts.rule}\``;
    const sdk = await import(pathToFileURL(join(work, "invalidator-rules.js")).href);
    sdk.checkRule(await import(pathToFileURL(join(work, "rule.js")).href), where);
    await writeFile(
      join(work, "entry.js"),
      [
        'import { log } from "invalidator:rules/host@0.2.0";',
        'import { exportRule, forwardConsole } from "./invalidator-rules.js";',
        'import * as rule from "./rule.js";',
        "forwardConsole(log);",
        `const exported = exportRule(rule, ${JSON.stringify(where)});`,
        "export const describe = () => exported.describe();",
        "export const onCommit = (commit) => exported.onCommit(commit);",
        "",
      ].join("\n"),
    );
    const { componentize } = await loadComponentize();
    const started = Date.now();
    const { component } = await componentize({
      sourcePath: join(work, "entry.js"),
      witPath: resolve(wit),
      worldName: "rule",
      // Without these the engine imports WASI clocks, randomness, stdio and
      // HTTP; a rule is pure and needs none of them.
      disableFeatures: ["stdio", "random", "clocks", "http", "fetch-event"],
      ...(opts.aot === null ? {} : { enableAot: true, wevalBin: resolve(opts.aot) }),
    });
    await writeFile(out, component);
    const mib = (component.length / (1 << 20)).toFixed(1);
    console.error(`built ${out} (${mib} MiB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
