// The console's script: reads the read-only API every second and shows
// it. Every element is built with textContent: names of rules, tables and
// stores never become markup.
"use strict";

const EVERY_MS = 1000;
let previous = null; // the last stats, for per-second rates
let previousHttp = null; // the last HTTP counts, for the request rate

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function number(value) {
  return value === null || value === undefined ? "–" : String(value);
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString();
}

// The failures, with their kinds when there are any: "3 (time_limit 2, trap 1)".
function failures(rule) {
  const kinds = Object.entries(rule.failures || {}).map(([kind, n]) => `${kind} ${n}`);
  return kinds.length ? `${rule.errors} (${kinds.join(", ")})` : rule.errors;
}

function ruleRow(rule, state) {
  const probation = state === "serving" && rule.on_probation_until_ms > Date.now();
  const row = el("tr", null, { "data-rule": rule.name, "data-state": state });
  if (probation) row.setAttribute("data-probation", "yes");
  const shown = probation ? `on probation until ${clock(rule.on_probation_until_ms)}` : state;
  const cells = [
    ["name", rule.name],
    ["version", rule.version],
    ["language", rule.language || ""],
    ["state", shown],
    ["since", rule.swapped_at_ms ? clock(rule.swapped_at_ms) : ""],
    ["tables", (rule.tables || []).join(", ")],
    ["calls num", rule.calls],
    ["failures num", failures(rule)],
    ["p50 num", number(rule.latency_ms && rule.latency_ms.p50)],
    ["p99 num", number(rule.latency_ms && rule.latency_ms.p99)],
    ["memory num", rule.peak_memory_bytes ? `${(rule.peak_memory_bytes / 1048576).toFixed(1)} MiB` : "–"],
    ["hash", (rule.hash || "").slice(0, 12)],
    ["file", (rule.file || "").split("/").pop()],
  ];
  for (const [cls, text] of cells) row.appendChild(el("td", text, { class: cls }));
  // The whole path on hover; the file's name is what tells rules apart.
  row.lastChild.setAttribute("title", rule.file || "");
  const action = state === "shadow" ? ["drop-shadow", "drop"] : ["rollback", "roll back"];
  const button = el("button", action[1], { type: "button", class: "act", "data-action": action[0], "data-rule": rule.name });
  const last = el("td");
  last.appendChild(button);
  row.appendChild(last);
  return row;
}

function showRules(rules) {
  const body = document.querySelector("#rules tbody");
  const rows = [];
  for (const rule of rules.rules) rows.push(ruleRow(rule, "serving"));
  for (const rule of rules.shadows) rows.push(ruleRow(rule, "shadow"));
  body.replaceChildren(...rows);
  const back = (rules.rolled_back || []).map((r) => {
    const item = el("li", `${clock(r.at_ms)}: ${r.name} ${r.version} rolled back to ${r.restored || "nothing"} (refused until its file changes)`);
    item.setAttribute("data-rule", r.name);
    return item;
  });
  document.getElementById("rolled-back").replaceChildren(...back);
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

function showNodes(stats) {
  const body = document.querySelector("#nodes tbody");
  if (!stats.redis_nodes) {
    body.replaceChildren(el("tr", null, {}));
    body.firstChild.appendChild(el("td", "in-process store: no Redis", { class: "muted", colspan: "4" }));
    return;
  }
  body.replaceChildren(...stats.redis_nodes.map((n) => {
    const row = el("tr", null, { "data-node": n.node, "data-role": n.role, "data-state": n.state });
    const bad = n.state === "down" || (n.role === "replica" && n.state !== "online");
    cell(row, n.node);
    cell(row, n.role);
    cell(row, n.state, bad ? "bad" : "");
    cell(row, n.detail || "");
    return row;
  }));
}

function showSources(stats) {
  const box = document.getElementById("sources");
  const parts = [];
  const http = stats.http;
  if (http) {
    const seconds = previousHttp ? (Date.now() - previousHttp.at) / 1000 : 0;
    const perSecond = previousHttp && seconds > 0
      ? ((http.requests - previousHttp.http.requests) / seconds).toFixed(1) : "–";
    parts.push(el("h3", "http"));
    const list = el("dl", null, { "data-source": "http" });
    for (const [k, v] of [["requests /s", perSecond], ["requests", http.requests],
      ["client errors (4xx)", http.client_errors], ["server errors (5xx)", http.server_errors]]) {
      list.appendChild(el("dt", k));
      list.appendChild(el("dd", v, { "data-figure": k, class: k.startsWith("server") && v > 0 ? "bad" : "" }));
    }
    parts.push(list);
    previousHttp = { http, at: Date.now() };
  }
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
  box.replaceChildren(...parts);
}

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2"];
const SPAN_MS = 15 * 60 * 1000;
let ticks = 0;

// One polyline per series over the last 15 minutes, scaled to the
// largest value; returns that value.
function chart(id, series) {
  const svg = document.getElementById(id);
  const now = Date.now();
  let max = 0;
  for (const s of series) for (const [, v] of s.points) if (v !== null) max = Math.max(max, v);
  const scale = max > 0 ? max : 1;
  const lines = series.map((s, i) => {
    const line = document.createElementNS(SVG, "polyline");
    const points = s.points
      .filter(([, v]) => v !== null)
      .map(([at, v]) => `${(600 * (1 - (now - at) / SPAN_MS)).toFixed(1)},${(118 - 116 * (v / scale)).toFixed(1)}`);
    line.setAttribute("points", points.join(" "));
    line.setAttribute("stroke", COLOURS[i % COLOURS.length]);
    line.setAttribute("data-series", s.name);
    return line;
  });
  svg.replaceChildren(...lines);
  return max;
}

async function refreshCharts() {
  const history = await fetch("/v1/history", { cache: "no-store" }).then((r) => r.json());
  const samples = history.samples;
  const applied = chart("chart-applied", [
    { name: "applied", points: samples.map((s) => [s.at_ms, s.applied_per_sec]) },
  ]);
  document.getElementById("chart-applied-max").textContent = `(peak ${applied})`;
  const names = [...new Set(samples.flatMap((s) => s.p99_ms.map(([n]) => n)))];
  const latency = chart(
    "chart-latency",
    names.map((name) => ({
      name,
      points: samples.map((s) => {
        const found = s.p99_ms.find(([n]) => n === name);
        return [s.at_ms, found ? found[1] : null];
      }),
    })),
  );
  document.getElementById("chart-latency-max").textContent = `(peak ${latency} ms)`;
  document.getElementById("chart-latency-legend").replaceChildren(
    ...names.map((name, i) => el("span", `■ ${name}  `, { class: `c${i % COLOURS.length}` })),
  );
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
    showNodes(stats);
    showSources(stats);
    if (ticks++ % 5 === 0) await refreshCharts();
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    status.className = "muted";
  } catch (e) {
    status.textContent = `cannot reach the service: ${e}`;
    status.className = "bad";
  } finally {
    setTimeout(refresh, EVERY_MS);
  }
}

function cell(row, text, cls) {
  row.appendChild(el("td", text, cls ? { class: cls } : {}));
}

async function tryCommit() {
  const status = document.getElementById("try-status");
  const body = document.querySelector("#try-results tbody");
  status.textContent = "running…";
  status.className = "muted";
  try {
    const response = await fetch("/v1/try", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: document.getElementById("try-commit").value,
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error ? answer.error.message : response.status);
    const rows = answer.rules.map((rule) => {
      const row = el("tr", null, { "data-rule": rule.name, "data-state": rule.state });
      cell(row, rule.name);
      cell(row, rule.version, "version");
      cell(row, rule.state, "state");
      cell(row, rule.targets.keys.join(" "), "keys");
      cell(row, rule.targets.patterns.join(" "), "patterns");
      cell(row, rule.targets.tags.join(" "), "tags");
      cell(row, rule.failure ? `${rule.failure.kind}: ${rule.failure.message}` : (rule.reads ? "" : "reads none of these tables"), "failure");
      return row;
    });
    body.replaceChildren(...rows);
    status.textContent = `commit ${answer.txn}`;
  } catch (e) {
    body.replaceChildren();
    status.textContent = `refused: ${e.message || e}`;
    status.className = "bad";
  }
}

async function explain() {
  const status = document.getElementById("explain-status");
  const body = document.querySelector("#explain-results tbody");
  const key = document.getElementById("explain-key").value;
  const token = document.getElementById("token").value;
  status.textContent = "…";
  status.className = "muted";
  try {
    const response = await fetch(`/v1/explain?key=${encodeURIComponent(key)}`, {
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      cache: "no-store",
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error ? answer.error.message : response.status);
    const rows = answer.invalidations.map((i) => {
      const row = el("tr", null, { "data-txn": i.txn || "", "data-rule": i.rule || "", "data-kind": i.target.kind });
      cell(row, new Date(i.applied_at).toLocaleTimeString(), "applied");
      cell(row, `${i.target.kind} ${i.target.text}`, "target");
      cell(row, i.txn || "", "txn");
      cell(row, i.source || "", "source");
      const rule = i.rule ? `${i.rule}${i.failed ? " (failed: its fallback)" : ""}` : null;
      cell(row, rule || { manual: "by hand", replay: "failover replay", fallback: "fallback" }[i.cause] || i.cause, "rule");
      cell(row, i.version || "", "version");
      return row;
    });
    body.replaceChildren(...rows);
    status.textContent = rows.length === 0
      ? `no recent invalidation removed ${answer.key} (the log holds ${answer.held} of ${answer.capacity})`
      : `${rows.length} invalidation(s) removed ${answer.key}, newest first`;
  } catch (e) {
    body.replaceChildren();
    status.textContent = `refused: ${e.message || e}`;
    status.className = "bad";
  }
}

async function invalidate() {
  const result = document.getElementById("inv-result");
  const kind = document.getElementById("inv-kind").value;
  const text = document.getElementById("inv-text").value;
  const token = document.getElementById("token").value;
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  result.textContent = "…";
  try {
    const response = await fetch("/v1/invalidate?wait=true", {
      method: "POST",
      headers,
      body: JSON.stringify({ [kind]: [text] }),
    });
    const answer = await response.json();
    if (!response.ok) {
      result.textContent = `refused (${response.status}): ${answer.error ? answer.error.message : ""}`;
      result.className = "bad";
      result.dataset.outcome = "refused";
      return;
    }
    result.textContent = `invalidated ${kind.slice(0, -1)} ${text}`;
    result.className = "muted";
    result.dataset.outcome = "applied";
  } catch (e) {
    result.textContent = `failed: ${e}`;
    result.className = "bad";
    result.dataset.outcome = "failed";
  }
}

const FEED_ROWS = 200;
let feedAbort = null;

function feedMatches(row) {
  const filter = document.getElementById("feed-filter").value.trim();
  return filter === "" || row.textContent.includes(filter);
}

function showActivity(activity) {
  const body = document.querySelector("#feed tbody");
  const time = new Date(activity.at_ms).toLocaleTimeString();
  for (const rule of activity.rules) {
    const t = rule.targets;
    const targets = [
      ...t.keys.map((k) => `key ${k}`),
      ...t.patterns.map((p) => `pattern ${p}`),
      ...t.tags.map((g) => `tag ${g}`),
    ].join("  ");
    const row = el("tr", null, { "data-txn": activity.txn, "data-rule": rule.rule });
    cell(row, time);
    cell(row, activity.txn, "txn");
    cell(row, activity.source || "");
    cell(row, activity.tables.join(", "));
    cell(row, `${rule.rule} ${rule.version}${rule.failed ? " (failed: fallback)" : ""}`, "rule");
    cell(row, targets, "targets");
    row.hidden = !feedMatches(row);
    body.prepend(row);
  }
  while (body.rows.length > FEED_ROWS) body.deleteRow(-1);
}

function feedEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (event === "activity") showActivity(JSON.parse(data.join("\n")));
  if (event === "lagged") document.getElementById("feed-status").textContent = `skipped ${data.join("")} while behind`;
}

// Read as a stream with fetch rather than EventSource, which cannot send
// the token.
async function follow() {
  if (feedAbort) feedAbort.abort();
  const abort = new AbortController();
  feedAbort = abort;
  const status = document.getElementById("feed-status");
  const token = document.getElementById("token").value;
  try {
    const response = await fetch("/v1/feed", {
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      signal: abort.signal,
    });
    if (!response.ok) {
      status.textContent = response.status === 401 ? "the feed needs the token (or the read token)" : `feed: ${response.status}`;
      status.className = "bad";
      return;
    }
    status.textContent = "following";
    status.className = "muted";
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        feedEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  } catch (e) {
    if (abort.signal.aborted) return;
    status.textContent = `feed lost: ${e}`;
    status.className = "bad";
  }
  if (feedAbort === abort) setTimeout(follow, 2000);
}

document.getElementById("feed-filter").addEventListener("input", () => {
  for (const row of document.querySelector("#feed tbody").rows) row.hidden = !feedMatches(row);
});
document.getElementById("token").addEventListener("change", follow);
// An action on one rule (roll back, drop a shadow), with the token.
async function act(action, rule) {
  const result = document.getElementById("act-result");
  const token = document.getElementById("token").value;
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  result.textContent = "…";
  try {
    const response = await fetch(`/v1/rules/${encodeURIComponent(rule)}/${action}`, { method: "POST", headers });
    const answer = await response.json();
    if (!response.ok) {
      result.textContent = `${action} ${rule} refused (${response.status}): ${answer.error ? answer.error.message : ""}`;
      result.className = "bad";
      result.dataset.outcome = "refused";
      return;
    }
    result.textContent = action === "rollback" ? `${rule} rolled back to ${answer.restored}` : `shadow ${rule} dropped`;
    result.className = "muted";
    result.dataset.outcome = "done";
  } catch (e) {
    result.textContent = `failed: ${e}`;
    result.className = "bad";
    result.dataset.outcome = "failed";
  }
}

document.querySelector("#rules tbody").addEventListener("click", (event) => {
  const button = event.target.closest("button.act");
  if (button) act(button.dataset.action, button.dataset.rule);
});
document.getElementById("try-run").addEventListener("click", tryCommit);
document.getElementById("explain-run").addEventListener("click", explain);
document.getElementById("explain-key").addEventListener("keydown", (event) => {
  if (event.key === "Enter") explain();
});
document.getElementById("inv-run").addEventListener("click", invalidate);
refresh();
follow();
