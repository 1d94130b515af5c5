// Live updates for the calls list and one call. Everything shown goes through
// textContent: transcripts are whatever a caller said, never markup.
"use strict";

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function fmt(value, digits) {
  if (value === null || value === undefined || value === "") return "–";
  if (typeof value === "number" && digits !== undefined) return value.toFixed(digits);
  return String(value);
}

function when(value) {
  return value ? String(value).slice(0, 19).replace("T", " ") : "–";
}

async function getJSON(url) {
  const resp = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (!resp.ok) throw new Error(url + ": " + resp.status);
  return resp.json();
}

async function refreshCalls() {
  const body = document.querySelector("#calls tbody");
  const data = await getJSON("/dashboard/api/calls");
  const rows = data.calls.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.callId = c.call_id;
    tr.className = String(c.status);
    const a = document.createElement("a");
    a.href = "/dashboard/calls/" + encodeURIComponent(c.call_id);
    a.textContent = c.call_id;
    cell(tr, "").appendChild(a);
    cell(tr, when(c.started_at));
    cell(tr, fmt(c.direction));
    cell(tr, fmt(c.caller));
    cell(tr, fmt(c.callee));
    cell(tr, fmt(c.agent));
    cell(tr, fmt(c.status));
    cell(tr, fmt(c.duration_s, 1));
    cell(tr, fmt(c.turns));
    cell(tr, fmt(c.cost_total, 4));
    return tr;
  });
  body.replaceChildren(...rows);
}

async function refreshCall(callId) {
  const c = await getJSON("/dashboard/api/calls/" + encodeURIComponent(callId));
  for (const dd of document.querySelectorAll("#facts dd[data-field]")) {
    const key = dd.dataset.field;
    if (key === "started_at") dd.textContent = when(c[key]);
    else dd.textContent = fmt(c[key], key === "cost_total" ? 4 : key === "duration_s" ? 2 : undefined);
  }
  const lines = (c.transcript || []).map((t) => {
    const li = document.createElement("li");
    li.className = String(t.role);
    const role = document.createElement("span");
    role.className = "role";
    role.textContent = t.role;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = t.text;
    li.append(role, " ", text);
    return li;
  });
  document.getElementById("transcript").replaceChildren(...lines);
  const turns = (c.turns_detail || []).map((t) => {
    const tr = document.createElement("tr");
    const lat = t.latency || {};
    cell(tr, fmt(t.turn));
    cell(tr, fmt(lat.end_of_speech_to_first_audio_ms, 0));
    cell(tr, fmt(lat.llm_first_token_ms, 0));
    cell(tr, fmt(t.total_cost, 4));
    return tr;
  });
  document.querySelector("#turns tbody").replaceChildren(...turns);
}

function debounce(fn, ms) {
  let timer = null;
  return () => {
    if (timer !== null) return;
    timer = setTimeout(() => { timer = null; fn().catch(console.error); }, ms);
  };
}

function start() {
  const callsTable = document.querySelector("[data-page=calls]");
  const callPage = document.querySelector("[data-page=call]");
  let refresh = null;
  let wanted = () => false;
  if (callsTable) {
    refresh = debounce(refreshCalls, 150);
    wanted = (ev) => ev.type.startsWith("call.") || ev.type === "turn.metrics" || ev.type === "gap";
  } else if (callPage) {
    const callId = callPage.dataset.callId;
    refresh = debounce(() => refreshCall(callId), 100);
    wanted = (ev) => ev.call_id === callId || ev.type === "gap";
  }
  if (!refresh) return;
  const dot = document.getElementById("live");
  const source = new EventSource("/dashboard/api/events");
  source.onopen = () => { dot.classList.add("on"); refresh(); };
  source.onerror = () => dot.classList.remove("on");
  source.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    if (wanted(ev)) refresh();
  };
}

document.addEventListener("DOMContentLoaded", start);
