// The dashboard of SPEC §5.2: reads the query API with the bearer token the person typed (kept
// in sessionStorage, never in the page), draws the timeline with Chart.js (Debian's
// libjs-chart.js, served by the binary) and tails /api/v1/events/stream through fetch(), which,
// unlike EventSource, can send the Authorization header.
"use strict";

const TOKEN_KEY = "b24es.query_token";
const PALETTE = ["#2f6fde", "#1f8a4c", "#d9822b", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d",
                 "#b7950b", "#2c3e50", "#e84393"];
const TAIL_ROWS = 50;
const REFRESH_MS = 15000;

let charts = {};
let streamAbort = null;
let lastSeenId = null;
let paused = false;

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers["Authorization"] = "Bearer " + token();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) throw new Unauthorized("the query token is missing or wrong");
  return response;
}

async function apiJson(path) {
  const response = await api(path);
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const why = body && body.error ? body.error + ": " + body.message : "HTTP " + response.status;
    throw new Error(why);
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child == null ? "" : String(child)));
  }
  return node;
}

function pill(text, kind) { return el("span", { class: "pill " + (kind || "") }, text); }

function showError(name, error) {
  const slot = document.querySelector(`[data-error-for="${name}"]`);
  if (slot) slot.textContent = error ? "Could not load: " + error.message : "";
}

function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString();
}

function fmtClock(iso) {
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleTimeString();
}

// Today's times as a clock, older ones with their date: the rejections table stays narrow.
function fmtRecent(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return iso ? String(iso) : "—";
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}

function fmtUnix(seconds) { return seconds == null ? "—" : new Date(seconds * 1000).toLocaleString(); }

function askForToken(message) {
  paused = true;
  if (streamAbort) streamAbort.abort();
  document.getElementById("content").hidden = true;
  document.getElementById("token-form").hidden = false;
  document.getElementById("token-error").textContent = message || "";
  document.getElementById("token-input").focus();
}

// --- header -------------------------------------------------------------------------------

async function loadHealth() {
  const node = document.getElementById("health");
  try {
    const response = await fetch("/healthz");
    node.replaceWith(Object.assign(pill(response.ok ? "healthy" : "database not usable",
                                        response.ok ? "ok" : "bad"), { id: "health" }));
  } catch (e) {
    node.replaceWith(Object.assign(pill("unreachable", "bad"), { id: "health" }));
  }
}

async function loadStats() {
  const stats = await apiJson("/api/v1/stats");
  document.getElementById("total").textContent =
      stats.total.toLocaleString() + " events stored" +
      (stats.last_ts ? ", newest sent " + fmtUnix(stats.last_ts) : "");
}

// --- charts -------------------------------------------------------------------------------

const BUCKET_SECONDS = { minute: 60, day: 86400 };

function bucketLabels(bucket, from, to) {
  const step = BUCKET_SECONDS[bucket];
  const starts = [];
  for (let t = from; t <= to; t += step) starts.push(t);
  return starts;
}

function label(bucket, start) {
  const d = new Date(start * 1000);
  return bucket === "minute"
      ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : d.toLocaleDateString([], { month: "short", day: "numeric" });
}

async function loadTimeline(bucket, buckets) {
  const step = BUCKET_SECONDS[bucket];
  const now = Math.floor(Date.now() / 1000);
  const to = now - (now % step);
  const from = to - (buckets - 1) * step;
  const timeline = await apiJson(`/api/v1/stats/timeline?bucket=${bucket}&from=${from}&to=${to + step - 1}`);
  const starts = bucketLabels(bucket, from, to);
  const index = new Map(starts.map((s, i) => [s, i]));
  const datasets = timeline.series.map((series, i) => {
    const data = new Array(starts.length).fill(0);
    for (const [start, count] of series.points) {
      if (index.has(start)) data[index.get(start)] = count;
    }
    return { label: series.event, data, backgroundColor: PALETTE[i % PALETTE.length], borderWidth: 0 };
  });
  const labels = starts.map((s) => label(bucket, s));
  const canvas = document.getElementById("chart-" + bucket);
  if (charts[bucket]) {
    charts[bucket].data.labels = labels;
    charts[bucket].data.datasets = datasets;
    charts[bucket].update("none");
    return;
  }
  charts[bucket] = new Chart(canvas, {
    type: "bar",
    data: { labels, datasets },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      scales: { x: { stacked: true, ticks: { maxTicksLimit: 12, autoSkip: true } },
                y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
    },
  });
}

// --- portals ------------------------------------------------------------------------------

function tokenHealth(tokens) {
  if (!tokens || tokens.length === 0) return pill("no tokens", "warn");
  const failed = tokens.filter((t) => t.last_refresh_error).length;
  const expired = tokens.filter((t) => t.expired).length;
  if (failed) return pill(failed + " refresh failed", "bad");
  if (expired === tokens.length) return pill("expired, refreshable", "warn");
  return pill(tokens.length === 1 ? "valid" : tokens.length + " valid", "ok");
}

function bindingState(bindings) {
  if (!bindings || bindings.length === 0) return el("span", { class: "muted" }, "—");
  const errors = bindings.filter((b) => b.state !== "bound");
  if (errors.length) {
    return pill(errors.length + " failed: " + errors.map((b) => b.event).join(", "), "bad");
  }
  return pill(bindings.length + " bound", "ok");
}

function offlineState(offline) {
  if (!offline) return el("span", { class: "muted" }, "—");
  const parts = [offline.mode === "clear" ? "clear mode" : "reserve mode",
                 (offline.fetched || 0) + " fetched"];
  if (offline.last_pass_at) parts.push("last pass " + fmtTime(offline.last_pass_at));
  return offline.last_error ? pill(parts.join(", ") + " — " + offline.last_error, "bad")
                            : el("span", {}, parts.join(", "));
}

async function loadPortals() {
  const page = await apiJson("/api/v1/portals?limit=1000");
  const body = document.querySelector("#portals tbody");
  body.replaceChildren();
  if (page.items.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No portal has installed the application yet.")));
  }
  for (const p of page.items) {
    // Bitrix24's licence codes (the install's auth[status]), spelled out; an unknown one as sent.
    const licence = { L: "local", F: "free", D: "demo", T: "trial", P: "paid" }[p.status] || p.status;
    const status = p.uninstalled_at ? pill("uninstalled", "warn") : pill(licence || "installed", "ok");
    body.append(el("tr", {},
        el("td", {}, el("strong", {}, p.domain || "—"), el("div", { class: "muted" }, p.member_id)),
        el("td", {}, status),
        el("td", { class: "num" }, (p.event_count || 0).toLocaleString()),
        el("td", {}, fmtUnix(p.last_event_ts)),
        el("td", {}, tokenHealth(p.tokens)),
        el("td", {}, bindingState(p.bindings)),
        el("td", {}, offlineState(p.offline))));
  }
}

// --- rejections ---------------------------------------------------------------------------

async function loadRejections() {
  const page = await apiJson("/api/v1/rejections?limit=20");
  const body = document.querySelector("#rejections tbody");
  body.replaceChildren();
  if (page.items.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "Nothing rejected.")));
  }
  for (const r of page.items) {
    body.append(el("tr", {}, el("td", {}, fmtRecent(r.received_at)), el("td", {}, r.client_addr || "—"),
        el("td", {}, pill(String(r.status), r.status >= 500 ? "bad" : "warn")),
        el("td", {}, r.error || "—"), el("td", {}, r.event || "—"),
        el("td", {}, r.domain || r.member_id || "—")));
  }
}

// --- live tail ----------------------------------------------------------------------------

function tailFilters() {
  const params = new URLSearchParams();
  const member = document.getElementById("filter-member").value.trim();
  const event = document.getElementById("filter-event").value.trim();
  if (member) params.set("member_id", member);
  if (event) params.set("event", event);
  return params;
}

function addTailRow(e, fresh) {
  const body = document.querySelector("#tail tbody");
  const empty = body.querySelector(".empty");
  if (empty) empty.parentElement.remove();
  const row = el("tr", { class: fresh ? "new" : "" }, el("td", { class: "num" }, e.id),
      el("td", {}, fmtClock(e.received_at)), el("td", {}, e.event),
      el("td", {}, e.domain || e.member_id), el("td", {}, e.entity_id == null ? "—" : e.entity_id),
      el("td", {}, e.source || "online"));
  row.dataset.id = e.id;
  body.prepend(row);
  while (body.rows.length > TAIL_ROWS) body.deleteRow(body.rows.length - 1);
}

function setStreamState(text, kind) {
  const node = document.getElementById("stream-state");
  node.className = "pill " + (kind || "");
  node.textContent = text;
}

async function loadTailBacklog() {
  const params = tailFilters();
  params.set("order", "desc");
  params.set("limit", String(TAIL_ROWS));
  const page = await apiJson("/api/v1/events?" + params);
  const body = document.querySelector("#tail tbody");
  body.replaceChildren();
  if (page.items.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "Waiting for events…")));
  }
  for (const e of page.items.slice().reverse()) addTailRow(e, false);
  lastSeenId = page.items.length ? page.items[0].id : null;
}

// Reads Server-Sent Events from a fetch() body: "id:", "event:" and "data:" lines, a blank line
// ending each message, ":" lines being comments (keep-alives).
async function readStream(response, onMessage) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let message = { data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      let line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        if (message.data.length) onMessage(message);
        message = { data: [] };
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") message.data.push(value); else message[field] = value;
      }
    }
  }
}

async function tail() {
  if (streamAbort) streamAbort.abort();
  const abort = new AbortController();
  streamAbort = abort;
  try {
    await loadTailBacklog();
  } catch (e) {
    if (e instanceof Unauthorized) return askForToken(e.message);
    setStreamState("backlog failed: " + e.message, "bad");
  }
  while (!abort.signal.aborted) {
    const params = tailFilters();
    const headers = {};
    if (lastSeenId != null) headers["Last-Event-ID"] = String(lastSeenId);
    try {
      const response = await api("/api/v1/events/stream?" + params, { headers, signal: abort.signal });
      if (!response.ok) throw new Error("HTTP " + response.status);
      setStreamState("live", "ok");
      await readStream(response, (m) => {
        const event = JSON.parse(m.data.join("\n"));
        lastSeenId = event.id;
        addTailRow(event, true);
      });
      if (!abort.signal.aborted) setStreamState("reconnecting…", "warn");
    } catch (e) {
      if (abort.signal.aborted) return;
      if (e instanceof Unauthorized) return askForToken(e.message);
      setStreamState("reconnecting: " + e.message, "warn");
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// --- wiring -------------------------------------------------------------------------------

async function refreshAll() {
  if (paused) return;
  loadHealth();
  const parts = [
    ["stats", loadStats], ["minute", () => loadTimeline("minute", 60)],
    ["day", () => loadTimeline("day", 30)], ["portals", loadPortals], ["rejections", loadRejections],
  ];
  const results = await Promise.allSettled(parts.map(([, load]) => load()));
  results.forEach((result, i) => {
    const error = result.status === "rejected" ? result.reason : null;
    if (error instanceof Unauthorized) return askForToken(error.message);
    showError(parts[i][0], error);
  });
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

function start() {
  paused = false;
  document.getElementById("token-form").hidden = true;
  document.getElementById("content").hidden = false;
  refreshAll();
  tail();
}

document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value);
  start();
});
let filterTimer = null;
for (const id of ["filter-member", "filter-event"]) {
  document.getElementById(id).addEventListener("input", () => {
    clearTimeout(filterTimer);
    lastSeenId = null;
    filterTimer = setTimeout(tail, 400);
  });
}
setInterval(refreshAll, REFRESH_MS);
start();
