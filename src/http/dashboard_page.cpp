#include "http/dashboard_page.hpp"

namespace hostq::http {

namespace {

// Kept in one raw literal so the page ships inside the binary; the delimiter never occurs in it.
constexpr std::string_view kPage = R"hostqpage(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hostq</title>
<style>
:root{--bg:#0f1419;--panel:#171e26;--line:#26313d;--text:#dce3ea;--dim:#8a98a8;--accent:#4fb3ff;
--ok:#3ccf8e;--warn:#f5b74f;--bad:#ff6b6b;--violet:#a78bfa;--mono:ui-monospace,"DejaVu Sans Mono",Menlo,monospace}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font:14px/1.4 system-ui,"DejaVu Sans",sans-serif}
header{display:flex;align-items:center;gap:16px;padding:14px 24px;border-bottom:1px solid var(--line);background:#121920}
header h1{font-size:18px;margin:0;letter-spacing:.5px}
header h1 span{color:var(--accent)}
#meta{color:var(--dim);font-size:13px}
#health{margin-left:auto;padding:4px 12px;border-radius:999px;font-weight:600;font-size:13px}
.good{background:rgba(60,207,142,.15);color:var(--ok)}.bad{background:rgba(255,107,107,.15);color:var(--bad)}
main{padding:18px 24px;display:grid;gap:16px;grid-template-columns:repeat(12,1fr)}
.card{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:14px 16px;min-width:0}
.card h2{margin:0 0 10px;font-size:12px;font-weight:600;color:var(--dim);text-transform:uppercase;letter-spacing:.8px}
.kpis{grid-column:span 12;display:grid;gap:16px;grid-template-columns:repeat(auto-fit,minmax(150px,1fr))}
.kpi .v{font-size:26px;font-weight:650;font-variant-numeric:tabular-nums}
.kpi .s{color:var(--dim);font-size:12px;margin-top:2px}
.wide{grid-column:span 8}.narrow{grid-column:span 4}.half{grid-column:span 6}.full{grid-column:span 12}
@media(max-width:1100px){.wide,.narrow,.half{grid-column:span 12}}
svg{display:block;width:100%}
.axis{fill:var(--dim);font-size:10px;font-family:var(--mono)}
.grid{stroke:var(--line);stroke-width:1}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}
th{text-align:left;color:var(--dim);font-weight:600;font-size:12px;padding:6px 8px;border-bottom:1px solid var(--line)}
td{padding:6px 8px;border-bottom:1px solid #1e2731}
td.n,th.n{text-align:right;font-family:var(--mono)}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600}
.working{background:rgba(79,179,255,.15);color:var(--accent)}.waiting{background:rgba(245,183,79,.15);color:var(--warn)}
.idle{background:rgba(138,152,168,.15);color:var(--dim)}.shm{background:rgba(167,139,250,.15);color:var(--violet)}
.socket{background:rgba(60,207,142,.12);color:var(--ok)}
.bar{display:flex;height:10px;border-radius:5px;overflow:hidden;background:#1e2731;min-width:120px}
.legend{display:flex;flex-wrap:wrap;gap:12px;margin-top:10px;color:var(--dim);font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.empty{color:var(--dim);padding:12px 0}
.scroll{max-height:420px;overflow:auto}
</style>
</head>
<body>
<header><h1><span>hostq</span> dashboard</h1><div id="meta">connecting…</div><div id="health" class="bad">…</div></header>
<main>
<section class="kpis">
<div class="card kpi"><h2>Completed</h2><div class="v" id="completed">–</div><div class="s" id="failed">–</div></div>
<div class="card kpi"><h2>Throughput</h2><div class="v" id="rate">–</div><div class="s">jobs/s, last 10 s</div></div>
<div class="card kpi"><h2>Workers</h2><div class="v" id="workers-count">–</div><div class="s" id="workers-split">–</div></div>
<div class="card kpi"><h2>Hand-off</h2><div class="v" id="handoff">–</div><div class="s" id="handoff-s">–</div></div>
<div class="card kpi"><h2>Enqueue → start</h2><div class="v" id="e2s">–</div><div class="s" id="e2s-s">–</div></div>
<div class="card kpi"><h2>Database</h2><div class="v" id="stmts">–</div><div class="s" id="db-s">–</div></div>
</section>
<section class="card wide"><h2>Jobs per second</h2><svg id="chart" viewBox="0 0 800 220" preserveAspectRatio="none"></svg></section>
<section class="card narrow"><h2>Queue depths</h2><div id="queues"></div></section>
<section class="card half"><h2>Hand-off latency</h2><svg id="h-handoff" viewBox="0 0 500 170"></svg></section>
<section class="card half"><h2>Enqueue-to-start latency</h2><svg id="h-e2s" viewBox="0 0 500 170"></svg></section>
<section class="card full"><h2>Workers</h2><div class="scroll"><table id="workers"><thead><tr><th>Name</th><th class="n">PID</th>
<th>Transport</th><th>State</th><th class="n">Current job</th><th class="n">Jobs done</th></tr></thead><tbody></tbody></table></div></section>
</main>
<script>
"use strict";
const $ = id => document.getElementById(id);
const NS = "http://www.w3.org/2000/svg";
const fmt = n => n == null ? "–" : Number(n).toLocaleString("en-US");
const short = n => n >= 1e6 ? (n / 1e6).toFixed(1) + "M" : n >= 1e4 ? (n / 1e3).toFixed(0) + "k" : n >= 1e3 ? (n / 1e3).toFixed(1) + "k" : String(Math.round(n * 10) / 10);
const axisUs = v => v >= 1e6 ? v / 1e6 + "s" : v >= 1e3 ? v / 1e3 + "ms" : v + "µs";
const us = v => v == null ? "–" : v >= 1e6 ? (v / 1e6).toFixed(2) + " s" : v >= 1e3 ? (v / 1e3).toFixed(1) + " ms" : v.toFixed(1) + " µs";
const STATES = [["queued", "#4fb3ff"], ["running", "#3ccf8e"], ["prefetched", "#a78bfa"], ["future", "#8a98a8"],
                ["blocked", "#f5b74f"], ["held", "#d98cff"], ["failed", "#ff6b6b"]];
function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(NS, tag.slice(4)) : document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text != null) e.textContent = text;
  return e;
}
// Jobs/s between samples `step` apart: results are written in batches, so per-second
// differences jump between 0 and twice the rate; a few seconds' window shows the trend.
function rates(history, step = 1) {
  const out = [];
  for (let i = step; i < history.length; i++) {
    const [t0, c0, f0] = history[i - step], [t1, c1, f1] = history[i];
    const dt = (t1 - t0) / 1000;
    if (dt > 0) out.push([t1, Math.max(0, (c1 + f1 - c0 - f0) / dt)]);
  }
  return out;
}
function drawChart(history) {
  const svg = $("chart"), W = 800, H = 220, L = 46, B = 22, T = 8;
  svg.replaceChildren();
  const pts = rates(history, 5);
  const now = pts.length ? pts[pts.length - 1][0] : Date.now(), span = 10 * 60 * 1000;
  const max = Math.max(1, ...pts.map(p => p[1])) * 1.15;
  const x = t => L + (W - L - 4) * (1 - (now - t) / span), y = v => H - B - (H - B - T) * v / max;
  for (let i = 0; i <= 4; i++) {
    const v = max * i / 4;
    svg.append(el("svg:line", {x1: L, x2: W, y1: y(v), y2: y(v), class: "grid"}));
    svg.append(el("svg:text", {x: L - 6, y: y(v) + 3, "text-anchor": "end", class: "axis"}, short(v)));
  }
  for (let m = 0; m <= 10; m += 2)
    svg.append(el("svg:text", {x: x(now - m * 60000), y: H - 6, "text-anchor": m ? "middle" : "end", class: "axis"}, m ? "-" + m + "m" : "now"));
  if (pts.length < 2) return;
  const line = pts.map(p => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ");
  const grad = el("svg:linearGradient", {id: "g", x1: 0, x2: 0, y1: 0, y2: 1});
  grad.append(el("svg:stop", {offset: "0", "stop-color": "#4fb3ff", "stop-opacity": ".35"}));
  grad.append(el("svg:stop", {offset: "1", "stop-color": "#4fb3ff", "stop-opacity": "0"}));
  const defs = el("svg:defs"); defs.append(grad); svg.append(defs);
  svg.append(el("svg:polygon", {points: x(pts[0][0]) + "," + y(0) + " " + line + " " + x(now) + "," + y(0), fill: "url(#g)"}));
  svg.append(el("svg:polyline", {points: line, fill: "none", stroke: "#4fb3ff", "stroke-width": 2}));
}
function drawHistogram(id, h, color) {
  const svg = $(id), W = 500, H = 170, B = 22, T = 16;
  svg.replaceChildren();
  if (!h || !h.count) { svg.append(el("svg:text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "axis"}, "no samples yet")); return; }
  let lo = h.counts.findIndex(c => c > 0), hi = h.counts.length - 1 - [...h.counts].reverse().findIndex(c => c > 0);
  lo = Math.max(0, lo - 1); hi = Math.min(h.counts.length - 1, hi + 1);
  const n = hi - lo + 1, bw = W / n, max = Math.max(...h.counts.slice(lo, hi + 1));
  const every = Math.ceil(44 / bw);  // labels that would overlap are left out
  for (let i = lo; i <= hi; i++) {
    const c = h.counts[i], bh = (H - B - T) * c / max, xi = (i - lo) * bw;
    const bar = el("svg:rect", {x: xi + 2, y: H - B - bh, width: Math.max(1, bw - 4), height: bh, rx: 2, fill: color, opacity: .85});
    bar.append(el("svg:title", {}, (h.le[i] == null ? "more" : "≤ " + us(h.le[i])) + ": " + fmt(c)));
    svg.append(bar);
    if (c && bw >= 26) svg.append(el("svg:text", {x: xi + bw / 2, y: H - B - bh - 4, "text-anchor": "middle", class: "axis"}, short(100 * c / h.count) + "%"));
    if ((i - lo) % every == 0) svg.append(el("svg:text", {x: xi + bw / 2, y: H - 6, "text-anchor": "middle", class: "axis"}, h.le[i] == null ? "more" : "≤" + axisUs(h.le[i])));
  }
}
function drawQueues(queues, age) {
  const box = $("queues");
  box.replaceChildren();
  if (!queues.length) { box.append(el("div", {class: "empty"}, age == null ? "waiting for the first count…" : "no jobs")); return; }
  const t = el("table");
  const head = el("tr"); head.append(el("th", {}, "Queue"), el("th", {}, ""), el("th", {class: "n"}, "Total"));
  t.append(head);
  for (const q of queues) {
    const total = STATES.reduce((s, [k]) => s + q[k], 0);
    const tr = el("tr", {class: "queue"}), bar = el("div", {class: "bar"});
    for (const [k, c] of STATES) if (q[k]) bar.append(el("span", {style: "width:" + (100 * q[k] / Math.max(1, total)) + "%;background:" + c, title: k + ": " + fmt(q[k])}));
    const cell = el("td"); cell.append(bar);
    tr.append(el("td", {}, q.queue), cell, el("td", {class: "n"}, fmt(total)));
    t.append(tr);
  }
  box.append(t);
  const legend = el("div", {class: "legend"});
  for (const [k, c] of STATES) { const s = el("span"); s.append(el("i", {style: "background:" + c}), k); legend.append(s); }
  box.append(legend);
  if (age != null) box.append(el("div", {class: "legend"}, "counted " + Math.round(age) + " s ago"));
}
function drawWorkers(workers) {
  const body = $("workers").tBodies[0];
  body.replaceChildren();
  if (!workers.length) { const tr = el("tr"); tr.append(el("td", {colspan: 6, class: "empty"}, "no workers registered")); body.append(tr); return; }
  for (const w of [...workers].sort((a, b) => a.name.localeCompare(b.name))) {
    const tr = el("tr", {class: "worker"});
    const tcell = el("td"); tcell.append(el("span", {class: "pill " + w.transport}, w.transport));
    const scell = el("td"); scell.append(el("span", {class: "pill " + w.state}, w.state));
    tr.append(el("td", {class: "name"}, w.name), el("td", {class: "n"}, w.pid), tcell, scell,
              el("td", {class: "n"}, w.current_job == null ? "–" : "#" + w.current_job), el("td", {class: "n"}, fmt(w.jobs)));
    body.append(tr);
  }
}
function render(d) {
  const s = d.stats;
  $("health").textContent = d.health.ok ? "healthy" : "unhealthy: " + d.health.reason;
  $("health").className = d.health.ok ? "good" : "bad";
  $("meta").textContent = s ? s.host + " · server pid " + s.server_pid + " · updated " + new Date().toLocaleTimeString() : "server starting";
  drawChart(d.history);
  drawQueues(d.queues, d.queues_age_s);
  if (!s) return;
  $("completed").textContent = fmt(s.jobs_completed);
  $("failed").textContent = fmt(s.jobs_failed) + " failed · " + fmt(s.jobs_rescheduled_died) + " rescheduled";
  const last = d.history.slice(-11);
  const r = last.length > 1 ? rates(last, last.length - 1) : [];
  $("rate").textContent = r.length ? short(r[0][1]) : "–";
  $("workers-count").textContent = fmt(s.workers.length);
  $("workers-split").textContent = s.workers_shm + " shm · " + s.workers_socket + " socket · " + s.workers_working + " working";
  $("handoff").textContent = us(s.handoff.p50_us);
  $("handoff-s").textContent = "p50 · p99 " + us(s.handoff.p99_us) + " · p99.9 " + us(s.handoff.p999_us);
  $("e2s").textContent = us(s.enqueue_to_start.p50_us);
  $("e2s-s").textContent = "p50 · p99 " + us(s.enqueue_to_start.p99_us);
  $("stmts").textContent = s.db_statements_per_job.toFixed(2);
  $("db-s").textContent = "statements/job · " + (s.database_up ? "up" : "DOWN") + " · " + fmt(s.db_errors) + " errors";
  drawHistogram("h-handoff", d.histograms.handoff_us, "#4fb3ff");
  drawHistogram("h-e2s", d.histograms.enqueue_to_start_us, "#a78bfa");
  drawWorkers(s.workers);
}
async function tick() {
  try {
    const res = await fetch("/api/dashboard", {cache: "no-store"});
    render(await res.json());
  } catch (e) {
    $("health").textContent = "no answer from the server";
    $("health").className = "bad";
  }
  setTimeout(tick, 1000);
}
tick();
</script>
</body>
</html>
)hostqpage";

}  // namespace

std::string_view dashboardPage() noexcept { return kPage; }

}  // namespace hostq::http
