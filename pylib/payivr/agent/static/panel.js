// payivr agent panel: plain JavaScript, no build step. It talks to the agent API
// (/openapi.yaml) with the merchant's bearer token and reads the call's progress as
// server-sent events over fetch (EventSource cannot send an Authorization header).
// Nothing it receives can contain a card digit: counts, names, verdicts, the result.
"use strict";

const FIELD_LABEL = { card_number: "Card number", expiry: "Expiry date", cvv: "Security code", confirm: "Confirmation" };
const STATUS_LABEL = { waiting: "waiting for caller", entering: "caller is keying", valid: "valid",
  invalid: "invalid", restarted: "restarted" };

const state = { token: "", call: null, payment: null, lastEventId: "0", stream: null, open: null };

const $ = (id) => document.getElementById(id);

function api(method, path, body) {
  const init = { method, headers: { Authorization: "Bearer " + state.token } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(path, init).then(async (r) => {
    const data = await r.json().catch(() => ({}));
    if (!r.ok) { const e = new Error(data.message || r.statusText); e.status = r.status; throw e; }
    return data;
  });
}

function log(text) {
  const li = document.createElement("li");
  li.textContent = new Date().toLocaleTimeString() + "  " + text;
  $("log").prepend(li);
}

function row(field) { return document.querySelector('tr[data-field="' + field + '"]'); }

function resetFields() {
  for (const field of Object.keys(FIELD_LABEL)) {
    const r = row(field);
    r.querySelector(".st").textContent = "-";
    r.querySelector(".st").removeAttribute("data-status");
    r.querySelector(".count").textContent = "-";
    r.querySelector(".detail").textContent = "";
    r.querySelector(".restart").disabled = true;
  }
  state.open = null;
}

function showCount(cell, n) {
  cell.textContent = "";
  const dots = document.createElement("span");
  dots.className = "dots";
  dots.setAttribute("aria-hidden", "true");
  dots.textContent = "\u25CF".repeat(Math.min(n, 19));
  const text = document.createElement("span");
  text.textContent = " " + n + (n === 1 ? " digit" : " digits");
  cell.append(dots, text);
}

function onField(ev) {
  const r = row(ev.field);
  if (!r) return;
  const st = r.querySelector(".st");
  st.textContent = STATUS_LABEL[ev.status] || ev.status;
  st.dataset.status = ev.status;
  if (typeof ev.digit_count === "number") showCount(r.querySelector(".count"), ev.digit_count);
  const detail = [];
  if (ev.attempt) detail.push("attempt " + ev.attempt);
  if (ev.brand) detail.push(ev.brand);
  if (ev.reason) detail.push(ev.reason);
  r.querySelector(".detail").textContent = detail.join(", ");
  const open = ev.status === "waiting" || ev.status === "entering";
  for (const b of document.querySelectorAll("button.restart")) b.disabled = true;
  r.querySelector(".restart").disabled = !open;
  state.open = open ? ev.field : null;
  if (ev.status !== "entering") {
    $("phase").textContent = FIELD_LABEL[ev.field] + ": " + st.textContent +
      (ev.reason ? " (" + ev.reason + ")" : "");
  }
}

function money(minor, currency) {
  // Amounts travel in minor units; the currency says how many decimals it has.
  try {
    const f = new Intl.NumberFormat(undefined, { style: "currency", currency });
    return f.format(minor / 10 ** f.resolvedOptions().maximumFractionDigits);
  } catch (e) {
    return minor + " " + (currency || "") + " (minor units)";
  }
}

function onResult(ev) {
  const res = ev.result || {};
  $("result").hidden = false;
  $("result-box").dataset.code = res.result || "";
  $("result-code").textContent = res.result || "";
  $("result-reason").textContent = res.reason || "-";
  $("result-auth").textContent = res.auth_code || "-";
  $("result-card").textContent = res.card ? (res.card.brand || "") + " \u2022\u2022\u2022\u2022 " + res.card.last4 : "-";
  $("result-order").textContent = res.order || "-";
  $("result-amount").textContent = res.amount !== undefined ? money(res.amount, res.currency) : "-";
  $("cancel-button").disabled = true;
  for (const b of document.querySelectorAll("button.restart")) b.disabled = true;
  $("phase").textContent = "Payment " + (res.result || "ended") + ".";
  $("start-button").disabled = false;
  state.payment = null;
}

function handle(type, ev) {
  if (ev.payment && state.payment && ev.payment !== state.payment) return;
  switch (type) {
    case "payment.started":
      $("phase").textContent = "Payment started: the caller hears the instructions.";
      log("payment started");
      break;
    case "field":
      onField(ev);
      if (ev.status !== "entering") log(FIELD_LABEL[ev.field] + ": " + ev.status + (ev.reason ? " (" + ev.reason + ")" : ""));
      break;
    case "payment.processing":
      $("phase").textContent = "Processing with the bank\u2026";
      $("cancel-button").disabled = true;
      for (const b of document.querySelectorAll("button.restart")) b.disabled = true;
      log("processing");
      break;
    case "payment.result":
      onResult(ev);
      log("result: " + (ev.result ? ev.result.result : ""));
      break;
    case "notice":
      log("notice: " + ev.notice + " (" + ev.detail + ")");
      $("phase").textContent = ev.detail;
      break;
    case "call.ended":
      log("the call has ended");
      $("call-line").textContent = "The call has ended.";
      $("start-button").disabled = true;
      break;
  }
}

async function readEvents() {
  if (state.stream) state.stream.abort();
  const controller = new AbortController();
  state.stream = controller;
  const call = state.call;
  for (;;) {
    try {
      const r = await fetch("/v1/calls/" + encodeURIComponent(call.call) + "/events", {
        headers: { Authorization: "Bearer " + state.token, "Last-Event-ID": state.lastEventId,
                   Accept: "text/event-stream" },
        signal: controller.signal,
      });
      if (!r.ok) throw new Error("events: HTTP " + r.status);
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let id = null, type = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("id: ")) id = line.slice(4);
            else if (line.startsWith("event: ")) type = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (id) state.lastEventId = id;
          if (data) handle(type, JSON.parse(data));
          if (type === "call.ended") return;
        }
      }
    } catch (e) {
      if (controller.signal.aborted) return;
      log("event stream interrupted, reconnecting");
    }
    await new Promise((ok) => setTimeout(ok, 2000));
    if (controller.signal.aborted) return;
  }
}

async function findCall(e) {
  e.preventDefault();
  state.token = $("token").value.trim();
  const by = $("find-by").value, value = $("find-value").value.trim();
  try {
    const call = await api("GET", "/v1/calls?" + new URLSearchParams({ [by]: value }));
    state.call = call;
    $("call-line").textContent = "Call with extension " + (call.agent || "?") +
      (call.ref ? ", reference " + call.ref : "") + ": " + call.state + ".";
    $("start").hidden = false;
    $("progress").hidden = false;
    state.lastEventId = "0";
    readEvents();
    if (call.active_payment) { state.payment = call.active_payment; $("payment-id").textContent = call.active_payment; }
  } catch (err) {
    $("call-line").textContent = err.status === 401 ? "The token was refused." : "No call found (" + err.message + ").";
  }
}

async function startPayment(e) {
  e.preventDefault();
  $("start-error").textContent = "";
  const body = {};
  for (const name of ["operation", "order", "amount", "currency", "token", "description"]) {
    const el = document.querySelector('#start-form [name="' + name + '"]');
    if (el.value.trim()) body[name] = el.value.trim();
  }
  if (body.amount !== undefined) body.amount = Number(body.amount);
  try {
    const r = await api("POST", "/v1/calls/" + encodeURIComponent(state.call.call) + "/payments", body);
    state.payment = r.payment;
    $("payment-id").textContent = r.payment;
    resetFields();
    $("result").hidden = true;
    $("cancel-button").disabled = false;
    $("start-button").disabled = true;
  } catch (err) {
    $("start-error").textContent = err.message;
  }
}

async function control(command, field) {
  if (!state.payment) return;
  const path = "/v1/calls/" + encodeURIComponent(state.call.call) + "/payments/" +
    encodeURIComponent(state.payment) + "/" + command;
  try { await api("POST", path, field ? { field } : {}); log(command + (field ? " " + field : "") + " requested"); }
  catch (err) { log(command + " refused: " + err.message); }
}

function fromFragment() {
  // The CTI can open /panel/#token=...&agent=1001 : the fragment never reaches a server log.
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("token")) $("token").value = params.get("token");
  for (const by of ["agent", "ref", "call_id"]) {
    if (params.get(by)) { $("find-by").value = by; $("find-value").value = params.get(by); }
  }
  if (params.get("token") && $("find-value").value) { history.replaceState(null, "", location.pathname); $("find-form").requestSubmit(); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("find-form").addEventListener("submit", findCall);
  $("start-form").addEventListener("submit", startPayment);
  $("cancel-button").addEventListener("click", () => control("cancel"));
  $("again-button").addEventListener("click", () => { $("result").hidden = true; resetFields(); $("order").focus(); });
  for (const b of document.querySelectorAll("button.restart")) {
    b.addEventListener("click", () => control("restart", b.dataset.field));
  }
  fromFragment();
});
