// tuneq dashboard: plain JS, no build step. The API key lives in localStorage and goes in every request.
"use strict";

const KEY = "tuneq.apiKey";
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const $ = (id) => document.getElementById(id);
let refreshTimer = null;
let following = null;  // the job page's open event stream: {jobId, controller}

async function api(method, path) {
  const response = await fetch(path, { method, headers: { Authorization: `Bearer ${localStorage.getItem(KEY)}` } });
  const body = await response.json();
  if (!response.ok) {
    if (response.status === 401) showLogin(body.error.message);
    throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
  }
  return body;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function age(iso) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) if (seconds >= size) return `${Math.floor(seconds / size)}${unit}`;
  return `${seconds}s`;
}

function show(section) {
  for (const id of ["login", "jobs", "job"]) $(id).hidden = id !== section;
  $("forget").hidden = section === "login";
}

function showLogin(message) {
  show("login");
  $("login-error").textContent = message || "";
}

async function allJobs() {
  const jobs = [];
  let after = null;
  do {
    const page = await api("GET", `/finetune?limit=100${after ? `&after=${after}` : ""}`);
    jobs.push(...page.data);
    after = page.has_more ? page.next_cursor : null;
  } while (after && jobs.length < 1000);
  return jobs;
}

async function renderJobs() {
  show("jobs");
  const filter = $("status-filter").value;
  const jobs = (await allJobs()).filter((job) => !filter || job.status === filter);
  const body = $("jobs-table").tBodies[0];
  body.replaceChildren();
  for (const job of jobs) {
    const row = body.insertRow();
    row.dataset.jobId = job.id;
    const link = document.createElement("a");
    link.href = `#/jobs/${job.id}`;
    link.textContent = job.id;
    cell(row, "").appendChild(link);
    cell(row, job.status, `status-${job.status}`);
    cell(row, job.base_model.split("/").pop());
    const p = job.progress;
    cell(row, p.total_steps ? `${p.step}/${p.total_steps} (${p.percent}%)` : `${p.step}`);
    cell(row, job.cost.cost_usd.toFixed(4));
    cell(row, age(job.created_at));
  }
  refreshTimer = setTimeout(renderJobs, 3000);
}

// A line chart in inline SVG; the plotted points are kept in data-points for tests and curious users.
function chart(svg, series) {
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  const all = series.flatMap((s) => s.points);
  svg.dataset.points = JSON.stringify(Object.fromEntries(series.map((s) => [s.name, s.points])));
  if (!all.length) return;
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => 40 + ((x - x0) / (x1 - x0 || 1)) * 350, sy = (y) => 185 - ((y - y0) / (y1 - y0 || 1)) * 170;
  for (const s of series) {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("class", s.name);
    line.setAttribute("points", s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" "));
    svg.appendChild(line);
  }
  for (const [y, value] of [[15, y1], [190, y0]]) {
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", 2);
    label.setAttribute("y", y);
    label.textContent = Number(value.toPrecision(3)).toString();
    svg.appendChild(label);
  }
}

const points = (metrics, field, scale = 1) =>
  metrics.filter((m) => m[field] !== null && m[field] !== undefined).map((m) => [m.step, m[field] / scale]);

async function allMetrics(jobId) {
  const rows = [];
  let after = null;
  do {
    const page = await api("GET", `/finetune/${jobId}/metrics?limit=10000${after !== null ? `&after=${after}` : ""}`);
    rows.push(...page.data);
    after = page.has_more ? page.next_cursor : null;
  } while (after !== null);
  return rows;
}

// The submit-time estimate beside what the job really used (actual figures grow while it runs).
function estimateLine(job) {
  const e = job.estimate;
  if (!e) return "no estimate (submitted before estimates existed)";
  const steps = `steps ${job.progress.total_steps ?? job.progress.step} (estimate ${e.total_steps})`;
  const time = `time ${Math.round(job.cost.gpu_seconds)} s (estimate ${Math.round(e.seconds)} s on ${e.device.name})`;
  return `${steps} · ${time} · cost $${job.cost.cost_usd.toFixed(6)} (estimate $${e.cost_usd.toFixed(6)})`;
}

// What the job asked for, and what its run got (known once a worker claimed it).
function hardwareLine(job) {
  const asked = `${job.gpus} GPU${job.gpus === 1 ? "" : "s"}`;
  const env = job.environment;
  if (!env) return `${asked} · not started`;
  return `${asked} · ${env.device_name ?? env.device} (${env.device}) · ${env.dtype ?? "?"} · ${env.quantization ?? "no quantization"}`;
}

async function renderJob(jobId) {
  show("job");
  const [job, metrics, events] = await Promise.all([
    api("GET", `/finetune/${jobId}`), allMetrics(jobId), api("GET", `/finetune/${jobId}/events`),
  ]);
  $("job").dataset.jobId = job.id;
  $("job").dataset.status = job.status;
  $("job-title").textContent = `${job.id} — ${job.status}`;
  const p = job.progress;
  $("job-summary").textContent =
    `${job.base_model} · step ${p.step}/${p.total_steps ?? "?"} · ${job.trained_tokens.toLocaleString()} tokens · ` +
    `cost $${job.cost.cost_usd.toFixed(6)}`;
  $("job-estimate").textContent = estimateLine(job);
  $("job-hardware").textContent = hardwareLine(job);
  $("job-error").textContent = job.error ? `${job.error.code}: ${job.error.message}` : "";
  $("cancel").disabled = TERMINAL.has(job.status);
  $("pause").disabled = !["queued", "running"].includes(job.status) || job.pause_requested_at !== null;
  $("resume").disabled = !(job.status === "paused" || (job.status === "running" && job.pause_requested_at !== null));
  $("download").disabled = !job.adapter;
  chart($("chart-loss"), [{ name: "train", points: points(metrics, "loss") }, { name: "eval", points: points(metrics, "eval_loss") }]);
  chart($("chart-lr"), [{ name: "train", points: points(metrics, "learning_rate") }]);
  chart($("chart-tps"), [{ name: "train", points: points(metrics, "tokens_per_second") }]);
  chart($("chart-memory"), [{ name: "train", points: points(metrics, "peak_memory_bytes", 1 << 20) }]);
  const samples = $("samples").tBodies[0];
  samples.replaceChildren();
  for (const sample of (job.result && job.result.samples) || []) {
    const row = samples.insertRow();
    cell(row, sample.prompt); cell(row, sample.completion); cell(row, sample.reference ?? "");
  }
  $("events").replaceChildren(...events.data.map((event) => {
    const item = document.createElement("li");
    item.textContent = `${event.created_at.slice(11, 19)} ${event.level} ${event.message}`;
    return item;
  }));
  if (TERMINAL.has(job.status)) stopFollowing();
  else followJob(job.id);
}

// The job page refreshes when the server's event stream says something changed, not on a timer: one
// stream per open page, fed by the API's single watcher. EventSource cannot send the key, so fetch it.
function followJob(jobId) {
  if (following && following.jobId === jobId) return;
  stopFollowing();
  const controller = new AbortController();
  following = { jobId, controller };
  readStream(jobId, controller.signal)
    .catch(() => {})
    .finally(() => { if (following && following.controller === controller) following = null; });
}

function stopFollowing() {
  if (following) following.controller.abort();
  following = null;
}

async function readStream(jobId, signal) {
  const headers = { Authorization: `Bearer ${localStorage.getItem(KEY)}` };
  const response = await fetch(`/finetune/${jobId}/stream`, { headers, signal });
  if (!response.ok) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let pending = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const messages = buffer.split("\n\n");
    buffer = messages.pop();
    // Keep-alives are comments (no "event:" line); a burst of rows becomes one re-read.
    if (messages.some((message) => /^event: /m.test(message)) && pending === null) {
      pending = setTimeout(() => { pending = null; renderJob(jobId).catch(() => {}); }, 250);
    }
  }
}

async function route() {
  clearTimeout(refreshTimer);
  if (!localStorage.getItem(KEY)) return showLogin();
  const match = location.hash.match(/^#\/jobs\/([A-Za-z0-9_-]+)$/);
  if (!match || (following && following.jobId !== match[1])) stopFollowing();
  try {
    await (match ? renderJob(match[1]) : renderJobs());
  } catch (error) {
    if (!$("login").hidden) return;
    $("job-error").textContent = error.message;
  }
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem(KEY, $("key").value.trim());
  route();
});
$("forget").addEventListener("click", () => { localStorage.removeItem(KEY); route(); });
$("status-filter").addEventListener("change", route);
async function act(action, describe) {
  const jobId = $("job").dataset.jobId;
  try {
    const job = await api("POST", `/finetune/${jobId}/${action}`);
    $("action-result").textContent = describe(job);
  } catch (error) {
    $("action-result").textContent = error.message;
  }
  route();
}
$("cancel").addEventListener("click", () =>
  act("cancel", (job) => (job.status === "cancelled" ? "cancelled" : "cancel requested")));
$("pause").addEventListener("click", () =>
  act("pause", (job) => (job.status === "paused" ? "paused" : "pause requested; it checkpoints at its next step")));
$("resume").addEventListener("click", () => act("resume", (job) => `resumed: ${job.status}`));
// The archive needs the key, so a plain link cannot fetch it: fetch it, then hand the browser the blob to save.
$("download").addEventListener("click", async () => {
  const jobId = $("job").dataset.jobId;
  const response = await fetch(`/finetune/${jobId}/adapter`, { headers: { Authorization: `Bearer ${localStorage.getItem(KEY)}` } });
  if (!response.ok) {
    $("action-result").textContent = (await response.json()).error.message;
    return;
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = `${jobId}-adapter.tar`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);  // after the browser has taken the bytes
  $("action-result").textContent = `downloaded ${link.download} (SHA-256 ${response.headers.get("X-Checksum-SHA256")})`;
});
window.addEventListener("hashchange", route);
route();
