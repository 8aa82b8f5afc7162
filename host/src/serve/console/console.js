// The console's script: reads the read-only API every second and shows
// it. Every element is built with textContent: names of rules, tables and
// stores never become markup.
"use strict";

const EVERY_MS = 1000;
let previous = null; // the last stats, for per-second rates

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function number(value) {
  return value === null || value === undefined ? "–" : String(value);
}

function ruleRow(rule, state) {
  const row = el("tr", null, { "data-rule": rule.name, "data-state": state });
  const cells = [
    ["name", rule.name],
    ["version", rule.version],
    ["state", state],
    ["tables", (rule.tables || []).join(", ")],
    ["calls num", rule.calls],
    ["failures num", rule.errors],
    ["p50 num", number(rule.latency_ms && rule.latency_ms.p50)],
    ["p99 num", number(rule.latency_ms && rule.latency_ms.p99)],
    ["hash", (rule.hash || "").slice(0, 12)],
    ["file", (rule.file || "").split("/").pop()],
  ];
  for (const [cls, text] of cells) row.appendChild(el("td", text, { class: cls }));
  // The whole path on hover; the file's name is what tells rules apart.
  row.lastChild.setAttribute("title", rule.file || "");
  return row;
}

function showRules(rules) {
  const body = document.querySelector("#rules tbody");
  const rows = [];
  for (const rule of rules.rules) rows.push(ruleRow(rule, "serving"));
  for (const rule of rules.shadows) rows.push(ruleRow(rule, "shadow"));
  body.replaceChildren(...rows);
  document.getElementById("refused").textContent =
    rules.refused > 0 ? `${rules.refused} rule file(s) refused since the start: see the log` : "";
}

function rate(now, name, seconds) {
  if (!previous || seconds <= 0) return "–";
  const delta = now.pipeline[name] - previous.stats.pipeline[name];
  return (delta / seconds).toFixed(1);
}

function showSink(stats) {
  const at = Date.now();
  const seconds = previous ? (at - previous.at) / 1000 : 0;
  const p = stats.pipeline;
  const items = [
    ["keys applied /s", rate(stats, "keys", seconds)],
    ["patterns applied /s", rate(stats, "patterns", seconds)],
    ["tags applied /s", rate(stats, "tags", seconds)],
    ["commits", p.commits],
    ["queued", p.queued],
    ["pending targets", p.pending],
    ["retries", p.retries],
    ["unapplied", p.unapplied],
    ["unreplicated", p.unreplicated],
    ["failover replays", p.replays],
    ["swaps", p.swaps],
    ["rollbacks", p.rollbacks],
  ];
  const list = document.getElementById("sink");
  const nodes = [];
  for (const [name, value] of items) {
    nodes.push(el("dt", name));
    const bad = (name === "unapplied" || name === "unreplicated") && value > 0;
    nodes.push(el("dd", value, { "data-figure": name, class: bad ? "bad" : "" }));
  }
  list.replaceChildren(...nodes);
  document.getElementById("store").textContent = stats.store;
  previous = { stats, at };
}

function showSources(stats) {
  const box = document.getElementById("sources");
  const parts = [];
  for (const name of ["stream", "postgres"]) {
    const figures = stats[name];
    if (!figures) continue;
    parts.push(el("h3", name));
    const list = el("dl", null, { "data-source": name });
    for (const [k, v] of Object.entries(figures)) {
      list.appendChild(el("dt", k));
      list.appendChild(el("dd", typeof v === "object" ? JSON.stringify(v) : v));
    }
    parts.push(list);
  }
  if (parts.length === 0) parts.push(el("p", "HTTP intake only", { class: "muted" }));
  box.replaceChildren(...parts);
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const [rules, stats] = await Promise.all([
      fetch("/v1/rules", { cache: "no-store" }).then((r) => r.json()),
      fetch("/v1/stats", { cache: "no-store" }).then((r) => r.json()),
    ]);
    showRules(rules);
    showSink(stats);
    showSources(stats);
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    status.className = "muted";
  } catch (e) {
    status.textContent = `cannot reach the service: ${e}`;
    status.className = "bad";
  } finally {
    setTimeout(refresh, EVERY_MS);
  }
}

refresh();
