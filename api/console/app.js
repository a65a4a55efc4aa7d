// Vigil live console: alerts over Server-Sent Events, the customer 360 view and the decision's
// explanation on click. No framework, no build step; data is only ever set with textContent.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const KEY_STORE = "vigil.apiKey"; // sessionStorage: gone when the tab closes
  const MAX_ROWS = 500;
  const state = { source: null, lastId: null, count: 0, retries: 0, selected: null };

  const key = () => sessionStorage.getItem(KEY_STORE) || "";

  function setStatus(text, cls) {
    const el = $("status");
    el.textContent = text;
    el.className = "status " + cls;
  }

  async function api(path, options = {}) {
    const headers = { Authorization: "Bearer " + key(), ...(options.headers || {}) };
    const resp = await fetch(path, { ...options, headers });
    if (!resp.ok) {
      let detail = resp.statusText;
      try { detail = (await resp.json()).detail; } catch (_) { /* not JSON */ }
      const err = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
      err.status = resp.status;
      throw err;
    }
    return resp.json();
  }

  function filterParams() {
    const form = new FormData($("filters"));
    const params = new URLSearchParams();
    for (const name of ["type", "severity", "tier", "rm_id"]) {
      const value = String(form.get(name) || "").trim();
      if (value) params.set(name, value);
    }
    return params;
  }

  // ---------------------------------------------------------------- the stream

  async function connect(resume) {
    disconnect(false);
    if (!key()) { setStatus("enter an API key", "off"); return; }
    setStatus("connecting…", "wait");
    let token;
    try {
      token = (await api("/auth/stream-token", { method: "POST" })).token;
    } catch (err) {
      setStatus(err.status === 401 || err.status === 403 ? "key refused: " + err.message : "offline", "off");
      if (err.status !== 401 && err.status !== 403) retryLater();
      return;
    }
    const params = filterParams();
    params.set("token", token);
    if (resume && state.lastId) params.set("last_event_id", state.lastId);
    else params.set("backlog", "50");
    const source = new EventSource("/alerts/stream?" + params.toString());
    state.source = source;
    source.onopen = () => { state.retries = 0; setStatus("live", "on"); };
    source.addEventListener("alert", (ev) => {
      state.lastId = ev.lastEventId;
      addAlert(JSON.parse(ev.data), ev.lastEventId);
    });
    source.addEventListener("heartbeat", (ev) => { if (ev.lastEventId) state.lastId = ev.lastEventId; });
    source.addEventListener("gap", () => setStatus("live (some alerts were missed while away)", "wait"));
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (an expired token, say): get a new token and resume after the last id seen.
        setStatus("reconnecting…", "wait");
        retryLater();
      } else {
        setStatus("reconnecting…", "wait"); // EventSource retries by itself, with Last-Event-ID
      }
    };
    $("connect").hidden = true;
    $("disconnect").hidden = false;
  }

  function retryLater() {
    const delay = Math.min(1000 * 2 ** state.retries, 15000);
    state.retries += 1;
    setTimeout(() => connect(true), delay);
  }

  function disconnect(show = true) {
    if (state.source) state.source.close();
    state.source = null;
    if (show) {
      setStatus("disconnected", "off");
      $("connect").hidden = false;
      $("disconnect").hidden = true;
    }
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text == null ? "—" : String(text);
    if (cls) td.className = cls;
    return td;
  }

  function addAlert(alert, id) {
    const tbody = $("alerts");
    if (tbody.querySelector(`tr[data-alert-id="${CSS.escape(alert.alert_id)}"]`)) return;
    const tr = document.createElement("tr");
    tr.className = "alert-row fresh";
    tr.dataset.alertId = alert.alert_id;
    tr.dataset.decisionId = alert.decision_id;
    tr.dataset.customerId = alert.customer_id;
    tr.dataset.streamId = id;
    tr.title = alert.reason || "";
    tr.append(
      cell((alert.event_time || "").replace("T", " ").slice(0, 19)),
      cell(alert.severity, "sev " + alert.severity),
      cell(alert.type),
      cell(alert.customer_id),
      cell(alert.tier),
      cell(alert.rm_id),
      cell(alert.reason),
    );
    tr.addEventListener("click", () => select(tr));
    tbody.prepend(tr);
    while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(-1);
    state.count += 1;
    $("counts").textContent = `${state.count} alert(s) received`;
    $("empty").hidden = true;
  }

  // ---------------------------------------------------------------- details

  function fill(dl, pairs) {
    dl.replaceChildren();
    for (const [name, value] of pairs) {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = value == null ? "—" : typeof value === "object" ? JSON.stringify(value) : String(value);
      dl.append(dt, dd);
    }
  }

  function list(ul, items) {
    ul.replaceChildren(...items.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
    if (!items.length) ul.replaceChildren(Object.assign(document.createElement("li"), { textContent: "none" }));
  }

  function num(x) {
    return typeof x === "number" ? (Number.isInteger(x) ? x.toLocaleString() : x.toFixed(3)) : x;
  }

  async function select(tr) {
    if (state.selected) state.selected.classList.remove("selected");
    state.selected = tr;
    tr.classList.add("selected");
    $("detail").hidden = false;
    $("detail-error").hidden = true;
    const { decisionId, customerId } = tr.dataset;
    const [decision, customer] = await Promise.allSettled([
      api("/decisions/" + encodeURIComponent(decisionId)),
      api("/customers/" + encodeURIComponent(customerId)),
    ]);
    const problems = [];
    if (decision.status === "fulfilled") showDecision(decision.value);
    else problems.push("decision: " + decision.reason.message);
    if (customer.status === "fulfilled") showCustomer(customer.value);
    else problems.push("customer: " + customer.reason.message);
    if (problems.length) {
      $("detail-error").textContent = problems.join("; ");
      $("detail-error").hidden = false;
    }
  }

  function showDecision(d) {
    $("decision-id").textContent = d.decision_id;
    list($("explanation"), d.explanation);
    fill($("decision-features"), Object.entries(d.record.features || {}).map(([k, v]) => [k, num(v)]));
  }

  function showCustomer(c) {
    $("customer-id").textContent = c.customer_id;
    $("customer-tier").textContent = c.tier || "";
    const f = c.features || {};
    fill($("customer-facts"), [
      ["as of", c.as_of],
      ["AUM", num(f.aum)],
      ["segment", c.profile.segment],
      ["RM", c.profile.rm_id],
      ["time zone", c.profile.timezone],
    ]);
    fill($("customer-scores"), Object.entries(c.scores).map(([name, s]) =>
      [name, `${num(s.score)}${s.cold ? " (cold start)" : ""}`]));
    const p = c.contact_policy;
    fill($("customer-policy"), [
      ["contacts", `${p.contacts_7d} of ${p.max_contacts_7d}`],
      ["by channel", Object.entries(p.by_channel_7d).map(([k, v]) => `${k}: ${v}`).join(", ") || "none"],
      ["at cap", p.channels_at_cap.join(", ") || "none"],
      ["complaint hold", p.complaint_suppressed ? "yes" : "no"],
      ["quiet hours", `${p.quiet_hours.start}:00–${p.quiet_hours.end}:00`],
    ]);
    list($("customer-alerts"), c.recent_alerts.map((a) => `${a.event_time.slice(0, 16)} · ${a.severity} ${a.type} · ${a.rule_id}`));
    list($("customer-decisions"), c.recent_decisions.map((d) =>
      `${d.event_time.slice(0, 16)} · ${d.event_type} · alerts ${d.alerts.length} · actions ${d.actions.join(", ") || "none"}`));
  }

  // ---------------------------------------------------------------- wiring

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(KEY_STORE, $("key").value.trim());
      $("key").value = "";
      state.retries = 0;
      connect(false);
    });
    $("disconnect").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORE);
      disconnect(true);
    });
    $("filters").addEventListener("submit", (ev) => {
      ev.preventDefault();
      $("alerts").replaceChildren();
      state.count = 0;
      state.lastId = null;
      $("empty").hidden = false;
      connect(false);
    });
    if (key()) connect(false);
    else setStatus("enter an API key", "off");
  });
})();
