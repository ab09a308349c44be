// zoo serve's page: pick a model, give it input, see its records (or its text as it streams).
// Plain DOM code, no build step; text from the server only ever goes into textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], current: null, abort: null, drafts: {} };
const LM_OPTIONS = { max_new_tokens: 200, temperature: 0.8, top_k: "", seed: "" };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") Object.assign(node.style, v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function fmt(v) {
  if (typeof v === "number") return Number.isInteger(v) ? v.toLocaleString("en") : v.toFixed(4);
  if (typeof v === "object" && v !== null) return JSON.stringify(v);
  return String(v);
}

// -- the API key (zoo serve --api-key): asked once, kept for this tab only ---------------------------
function keyHeaders() {
  const key = sessionStorage.getItem("zoo-serve-key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(url, options = {}) {
  let resp = await fetch(url, { ...options, headers: { ...(options.headers || {}), ...keyHeaders() } });
  if (resp.status === 401) {
    const key = prompt("This server needs an API key (zoo serve --api-key):");
    if (key) {
      sessionStorage.setItem("zoo-serve-key", key);
      resp = await fetch(url, { ...options, headers: { ...(options.headers || {}), ...keyHeaders() } });
    }
  }
  return resp;
}

// -- loading the models -------------------------------------------------------------------------
async function loadModels() {
  const resp = await api("/api/models");
  const body = await resp.json();
  state.models = body.models;
  const select = $("model");
  select.replaceChildren(...state.models.map((m) => el("option", { value: m.name }, `${m.name} (${m.task})`)));
  const wanted = new URLSearchParams(location.search).get("model");
  if (wanted && state.models.some((m) => m.name === wanted)) select.value = wanted;
  chooseModel(select.value);
}

function chooseModel(name) {
  const m = state.models.find((x) => x.name === name);
  if (state.current) state.drafts[state.current.name] = $("input").value;  // each model keeps its own input
  $("input").value = state.drafts[name] || "";
  state.current = m;
  $("result").replaceChildren();
  showError(null);
  $("status").textContent = "";
  $("summary").replaceChildren(
    el("b", {}, m.entry || m.name), " · ", m.task || "?", " · ", m.model || "?",
    " · ", `${fmt(m.parameters)} parameters`);
  $("input-label").textContent = m.generates ? "prompt" : "inputs (one per line)";
  $("input-help").textContent = m.generates ? "The model continues this text." : (m.input || "");
  $("input").placeholder = m.generates ? "Once upon a time" : "Type an input; each line is one input.";
  renderOptions(m);
  renderCard(m);
}

function renderOptions(m) {
  const fields = m.generates ? LM_OPTIONS : Object.fromEntries(Object.keys(m.options || {}).map((k) => [k, ""]));
  $("options").replaceChildren(...Object.entries(fields).map(([name, value]) => el("label", {},
    name, el("input", { name, value, title: (m.options || {})[name] || name, "data-option": name }))));
}

function optionValues() {
  const out = {};
  for (const input of document.querySelectorAll("[data-option]")) {
    const raw = input.value.trim();
    if (raw === "") continue;
    try { out[input.dataset.option] = JSON.parse(raw); } catch { out[input.dataset.option] = raw; }
  }
  return out;
}

// -- running --------------------------------------------------------------------------------------
async function run(event) {
  event.preventDefault();
  const m = state.current;
  if (!m) return;
  showError(null);
  busy(true);
  const started = performance.now();
  try {
    if (m.generates) await generate(m, started);
    else await predict(m, started);
  } catch (err) {
    if (err.name !== "AbortError") showError(`request failed: ${err.message}`);
  } finally {
    busy(false);
  }
}

async function predict(m, started) {
  const inputs = $("input").value.split("\n").map((s) => s.trim()).filter((s) => s);
  if (!inputs.length) { showError("type an input first"); return; }
  const resp = await post(`/api/models/${encodeURIComponent(m.name)}/predict`, { inputs, ...optionValues() });
  const body = await resp.json();
  if (!resp.ok) { showError(body.error || `HTTP ${resp.status}`); return; }
  $("result").replaceChildren(...body.records.map((rec, i) => renderRecord(rec, inputs[i])));
  $("status").textContent = `${body.records.length} record${body.records.length > 1 ? "s" : ""} in ` +
    `${Math.round(performance.now() - started)} ms`;
}

async function generate(m, started) {
  const prompt = $("input").value;
  const resp = await post(`/api/models/${encodeURIComponent(m.name)}/generate`, { prompt, ...optionValues() });
  if (!resp.ok) { const body = await resp.json(); showError(body.error || `HTTP ${resp.status}`); return; }
  const out = el("span", { class: "caret" });
  const pre = el("pre", { class: "text", "data-view": "stream" }, el("span", { class: "prompt" }, prompt), out);
  $("result").replaceChildren(pre);
  let pieces = 0;
  for await (const [event, data] of events(resp)) {
    if (event === "token") { out.append(data.text); pieces += 1; }
    else if (event === "start" && data.warnings.length) showError(data.warnings.join("; "));
    else if (event === "error") showError(data.error);
    else if (event === "done") pre.dataset.done = "true";
    $("status").textContent = `${pieces} pieces, ${Math.round(performance.now() - started)} ms`;
  }
  out.classList.remove("caret");
}

async function* events(resp) {  // server-sent events read from a fetch body: yields [event, data]
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      yield [event, data ? JSON.parse(data) : {}];
    }
  }
}

function post(url, body) {
  state.abort = new AbortController();
  return api(url, { method: "POST", headers: { "Content-Type": "application/json" },
                      body: JSON.stringify(body), signal: state.abort.signal });
}

function busy(on) {
  $("run").disabled = on;
  $("stop").hidden = !on;
  if (on) $("status").textContent = "running…";
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

// -- one view per kind of record ---------------------------------------------------------------------
function renderRecord(rec, input) {
  let view;
  if (rec.probabilities) view = bars(rec);
  else if (Array.isArray(rec.words) && Array.isArray(rec.tags)) view = tagged(rec);
  else if (typeof rec.code === "string") view = code(rec);
  else if (typeof rec.output === "string") view = el("pre", { class: "code", "data-view": "output" }, rec.output);
  else if (typeof rec.continuation === "string" || typeof rec.text === "string")
    view = el("pre", { class: "text", "data-view": "text" }, rec.continuation ?? rec.text);
  else view = el("pre", { class: "text", "data-view": "json" }, JSON.stringify(rec, null, 2));
  return el("div", { class: "record" }, el("div", { class: "input" }, input), view);
}

function bars(rec) {
  let rows = rec.probabilities;
  if (!Array.isArray(rows)) rows = Object.entries(rows).map(([label, probability]) => ({ label, probability }));
  rows = [...rows].sort((a, b) => b.probability - a.probability);
  const top = rec.label ?? rec.predicted ?? rows[0].label;
  const grid = el("div", { class: "bars" }, rows.map((r) => {
    const pct = (100 * r.probability).toFixed(1);
    const cls = r.label === top ? "bar-top" : "";
    return [el("span", { class: `bar-label ${cls}` }, r.label),
            el("div", { class: `bar-track ${cls}` }, el("div", { class: "bar-fill", style: { width: `${pct}%` } })),
            el("span", { class: "bar-value" }, `${pct}%`)];
  }));
  return el("div", { "data-view": "bars" }, el("div", { class: "verdict" }, el("b", {}, top)), grid);
}

function tagColour(tag) {  // one hue per entity type: B-PER and I-PER share a colour; O stays plain
  const type = tag.replace(/^[BIES]-/, "");
  if (type === "O") return null;
  let h = 0;
  for (const ch of type) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return `hsl(${h}, 70%, 86%)`;
}

function tagged(rec) {
  const words = rec.words.map((w, i) => {
    const bg = tagColour(rec.tags[i]);
    return el("span", { class: "token", title: rec.tags[i], style: bg ? { background: bg } : {} },
      el("span", { class: "word" }, w), el("span", { class: "tag" }, rec.tags[i]));
  });
  const view = el("div", { "data-view": "tags" }, el("div", { class: "tagged" }, words));
  if (Array.isArray(rec.spans) && rec.spans.length) {
    view.append(el("div", { class: "spans" }, "spans: ",
      rec.spans.map((s) => `${s.type} “${s.text ?? rec.words.slice(s.start, s.end).join(" ")}”`).join(" · ")));
  }
  return view;
}

function code(rec) {
  const view = el("div", { "data-view": "code" }, el("pre", { class: "code" }, rec.code));
  const others = rec.n_best || rec.candidates || [];
  for (const c of others.slice(1)) {
    view.append(el("div", { class: "candidate" },
      el("span", { class: "score" }, c.score !== undefined ? `score ${fmt(c.score)}` : "candidate"),
      el("pre", { class: "code" }, c.code ?? String(c))));
  }
  return view;
}

// -- the model card ----------------------------------------------------------------------------------
function factsTable(rows) {
  return el("table", { class: "facts" },
    rows.filter(([, v]) => v !== undefined && v !== null && v !== "")
      .map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, fmt(v)))));
}

function renderCard(m) {
  const parts = [factsTable([["entry", m.entry], ["task", m.task], ["model", m.model], ["dataset", m.dataset],
                             ["parameters", m.parameters], ["created", m.created], ["file", m.path]])];
  const metrics = m.metrics || {};
  const split = ["test", "val"].find((s) => metrics[s]);
  if (split) {
    const main = Object.entries(metrics[split]).filter(([k, v]) => !k.includes("/") && typeof v === "number");
    parts.push(el("h3", {}, `metrics (${split})`), factsTable(main));
  }
  const ref = m.reference || {};
  if (Object.keys(ref).length) {
    parts.push(el("h3", {}, "reference"), factsTable(Object.entries(ref)));
  }
  $("card-facts").replaceChildren(...parts);
  $("card-readme-box").hidden = !m.card;
  $("card-readme").replaceChildren(...markdown(m.card || ""));
}

function markdown(text) {  // headings, fenced code, tables, lists and paragraphs; everything else as text
  const out = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith("```")) {
      const body = [];
      while (++i < lines.length && !lines[i].startsWith("```")) body.push(lines[i]);
      out.push(el("pre", {}, body.join("\n")));
    } else if (/^#{1,6} /.test(line)) {
      const level = Math.min(line.indexOf(" ") + 2, 6);
      out.push(el(`h${level}`, {}, line.replace(/^#+ /, "")));
    } else if (line.startsWith("|")) {
      const rows = [];
      for (; i < lines.length && lines[i].startsWith("|"); i++) {
        if (!/^\|[\s|:-]+\|$/.test(lines[i])) rows.push(lines[i].slice(1, -1).split("|").map((c) => c.trim()));
      }
      i--;
      out.push(el("table", {}, rows.map((r, k) => el("tr", {}, r.map((c) => el(k ? "td" : "th", {}, inline(c)))))));
    } else if (/^[-*] /.test(line)) {
      const items = [];
      for (; i < lines.length && /^[-*] /.test(lines[i]); i++) items.push(el("li", {}, inline(lines[i].slice(2))));
      i--;
      out.push(el("ul", {}, items));
    } else if (line.trim()) {
      out.push(el("p", {}, inline(line)));
    }
  }
  return out;
}

function inline(text) {  // `code` spans; the rest stays text
  return text.split(/(`[^`]+`)/).map((part) => part.startsWith("`") && part.endsWith("`") && part.length > 1
    ? el("code", {}, part.slice(1, -1)) : part);
}

// -- wiring ----------------------------------------------------------------------------------------
async function health() {
  try {
    const resp = await fetch("/health", { headers: keyHeaders() });
    const body = await resp.json();
    $("health").className = "badge ok";
    $("health").textContent = `${body.models.length} model${body.models.length > 1 ? "s" : ""} · ` +
      `${body.pending}/${body.max_pending} pending`;
  } catch {
    $("health").className = "badge down";
    $("health").textContent = "server unreachable";
  }
}

$("model").addEventListener("change", (e) => chooseModel(e.target.value));
$("form").addEventListener("submit", run);
$("stop").addEventListener("click", () => state.abort && state.abort.abort());
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("form").requestSubmit();
});
loadModels().catch((err) => showError(`could not list the models: ${err.message}`));
health();
setInterval(health, 10000);
