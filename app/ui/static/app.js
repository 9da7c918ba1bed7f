// zen-flow ui: two pages behind a hash router. #/ns/NS lists flows; #/flow/NS/NAME shows one
// flow, live from /stream (server-sent events). Every request carries the HttpOnly cookie the
// server set on the first visit; actions are POSTs with a JSON body (see app/ui/server.py).
import { colour, drawGraph } from "./graph.js";

const main = document.getElementById("main");
const notice = document.getElementById("notice");
let info = { namespace: "default", cluster: "" };
let leave = () => {};  // closes the current page's stream and timers

const h = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v);
  }
  el.append(...kids.flat().filter((k) => k !== null && k !== undefined));
  return el;
};
// Replace the children of ``el`` (nulls are skipped, arrays flattened).
const fill = (el, ...kids) => el.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined));
const phaseTag = (p) => h("span", { class: "phase", style: `background:${colour(p)}` }, p);
const when = (t) => (t || "").replace("T", " ").replace("Z", "");
// An attempt's label: "2", or "step[3] #2" for an item of a fan-out (as `zen-flow get` names it).
const run = (step, t) => (t.item == null ? String(t.attempt) : `${step}[${t.item}] #${t.attempt}`);
const path = (...parts) => parts.map(encodeURIComponent).join("/");

async function api(url, options = {}) {
  const res = await fetch(url, { credentials: "same-origin", ...options });
  const text = await res.text();
  let body; try { body = JSON.parse(text); } catch { body = { detail: text }; }
  if (!res.ok) throw new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
  return body;
}

function say(text, ok = false) {
  notice.textContent = text;
  notice.className = ok ? "ok" : "";
  notice.hidden = !text;
}

// -- actions: a confirmation, then the same code as the CLI; the answer is shown either way --
async function act(ns, name, action, body = {}, question) {
  if (!window.confirm(question)) return;
  try {
    const res = await api(`/api/flows/${path(ns, name)}/actions/${action}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    say(res.message, true);
  } catch (err) {
    say(`${action} refused: ${err.message}`);
  }
}

// -- the flows of a namespace ------------------------------------------------------------
function listPage(ns, params) {
  const phase = params.get("phase") || "";
  const selector = params.get("selector") || "";
  const nsInput = h("input", { value: ns, size: 14, "aria-label": "namespace" });
  const phaseSel = h("select", { "aria-label": "phase" },
    ["", ...info.flowPhases].map((p) =>
      h("option", { value: p, selected: p === phase }, p || "any phase")));
  const selInput = h("input", { value: selector, placeholder: "label selector (app=x)", size: 24, "aria-label": "labels" });
  const apply = () => {
    const q = new URLSearchParams({ phase: phaseSel.value, selector: selInput.value });
    location.hash = `#/ns/${encodeURIComponent(nsInput.value)}?${q}`;
  };
  const tbody = h("tbody");
  main.replaceChildren(
    h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); apply(); } },
      "Namespace", nsInput, phaseSel, selInput, h("button", { type: "submit" }, "Filter")),
    h("table", { id: "flows" },
      h("thead", {}, h("tr", {}, ["Name", "Phase", "Progress", "Age", "Reason", "Labels"].map((c) => h("th", {}, c)))),
      tbody));
  async function load() {
    try {
      const q = new URLSearchParams({ namespace: ns, phase, selector });
      const rows = await api(`/api/flows?${q}`);
      tbody.replaceChildren(...rows.map((r) => h("tr", { "data-flow": r.name },
        h("td", {}, h("a", { href: `#/flow/${path(r.namespace, r.name)}` }, r.name)),
        h("td", {}, phaseTag(r.phase)), h("td", {}, r.progress), h("td", {}, r.age),
        h("td", {}, r.reason),
        h("td", { class: "muted" }, Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(", ")))));
      if (!rows.length) tbody.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted" }, `No JobFlows in namespace ${ns}.`)));
    } catch (err) { say(err.message); }
  }
  load();
  const timer = setInterval(load, 3000);
  leave = () => clearInterval(timer);
}

// -- one flow ------------------------------------------------------------------------------
function flowPage(ns, name) {
  const head = h("div", { class: "flow-head" });
  const graphBox = h("div", { id: "graph" });
  const side = h("div", { class: "panel", id: "step" }, h("p", { class: "muted" }, "Click a step to see its attempts and logs."));
  const eventsBox = h("div", { class: "panel", id: "events" });
  main.replaceChildren(head, h("div", { class: "layout" }, graphBox, side), h("h2", {}, "Events"), eventsBox);
  let view = null, graph = null, selected = null, logTimer = null;

  function renderHead() {
    const a = view.actions;
    const btn = (action, text, cls, question) => a[action]
      ? h("button", { class: cls, "data-action": action, onclick: () => act(ns, name, action, {}, question) }, text) : null;
    fill(head,
      h("h1", {}, `${ns}/${name}`), phaseTag(view.phase), h("span", {}, view.progress),
      h("span", { class: "muted", id: "reason" }, view.reason),
      h("span", { class: "actions" },
        btn("retry", "Retry failed steps", "go", `Run ${name} again from its failed steps?`),
        btn("suspend", "Suspend", "", `Suspend ${name}? No new step starts.`),
        btn("resume", "Resume", "go", `Resume ${name}?`),
        btn("stop", "Stop", "danger", `Stop ${name}? Nothing new starts; running steps finish; it ends Failed.`),
        btn("terminate", "Terminate", "danger", `Terminate ${name}? Its running Jobs are deleted now; it ends Failed.`)),
      h("span", { class: "legend" }, Object.keys({ Pending: 1, Running: 1, PendingApproval: 1, Succeeded: 1, Failed: 1, Skipped: 1 })
        .map((p) => h("span", {}, phaseTag(p)))));
  }

  async function showStep(step) {
    selected = step;
    clearTimeout(logTimer);
    try {
      const [detail, logs] = await Promise.all([
        api(`/api/flows/${path(ns, name, "steps", step)}`),
        api(`/api/flows/${path(ns, name, "steps", step, "logs")}`),
      ]);
      if (selected !== step) return;
      const st = detail.status;
      const phase = st.phase || "Pending";
      const decide = phase === "PendingApproval" || (detail.kind === "Manual" && !["Succeeded", "Failed", "Skipped"].includes(phase));
      fill(side,
        h("h2", {}, `${step} `, phaseTag(phase)),
        h("div", { class: "muted" }, `${detail.kind} step` + (detail.dependencies.length ? `, after ${detail.dependencies.join(", ")}` : "")),
        detail.message ? h("p", {}, detail.message) : null,
        st.message ? h("p", { id: "step-message" }, (st.reason ? `${st.reason}: ` : ""), st.message) : null,
        decide ? h("div", { class: "step-actions" },
          h("button", { class: "go", "data-action": "approve", onclick: () => act(ns, name, "approve", { step }, `Approve ${step}?`) }, "Approve"),
          h("button", { class: "danger", "data-action": "reject", onclick: () => act(ns, name, "reject", { step }, `Reject ${step}? The step fails.`) }, "Reject")) : null,
        st.outputs ? h("div", {}, h("h3", {}, "Outputs"), h("pre", {}, JSON.stringify(st.outputs, null, 2))) : null,
        detail.attempts.length ? h("table", { id: "attempts" },
          h("thead", {}, h("tr", {}, ["#", "Job", "Phase", "Exit", "Started", "Message"].map((c) => h("th", {}, c)))),
          h("tbody", {}, detail.attempts.map((t) => h("tr", {},
            h("td", { class: "nowrap" }, run(step, t)), h("td", {}, t.job), h("td", {}, phaseTag(t.phase)),
            h("td", {}, t.exitCode ?? ""), h("td", {}, when(t.start)), h("td", {}, t.message))))) : null,
        detail.kind === "Manual" ? null : h("h3", {}, "Logs"),
        detail.kind === "Manual" ? null : logs.length ? logs.map((l) => h("div", {}, h("div", { class: "muted" }, `${l.item == null ? "" : `${step}[${l.item}] \u00b7 `}attempt ${l.attempt} \u00b7 ${l.pod} \u00b7 ${l.phase}`),
          h("pre", { class: "log", "data-attempt": l.attempt, "data-item": l.item ?? "" }, l.text || "(no output yet)")))
          : h("p", { class: "muted" }, "No pod has run for this step (yet)."));
      const running = logs.some((l) => l.phase === "Running" || l.phase === "Pending") || ["Running", "Retrying", "Pending"].includes(phase);
      if (running) logTimer = setTimeout(() => showStep(step), 1500);  // follow while it runs
    } catch (err) { say(err.message); }
  }

  async function loadEvents() {
    try {
      const events = await api(`/api/flows/${path(ns, name, "events")}`);
      fill(eventsBox,events.length ? h("table", {}, h("tbody", {}, events.map((e) => h("tr", {},
        h("td", { class: "nowrap" }, when(e.time)), h("td", {}, e.type), h("td", {}, e.reason), h("td", {}, e.message),
        h("td", { class: "muted" }, e.count > 1 ? `\u00d7${e.count}` : "")))))
        : h("p", { class: "muted" }, "No Events."));
    } catch (err) { say(err.message); }
  }

  const source = new EventSource(`/api/flows/${path(ns, name, "stream")}`);
  source.addEventListener("flow", (ev) => {
    view = JSON.parse(ev.data);
    renderHead();
    if (!graph) {
      graph = drawGraph(graphBox, view.graph, showStep);
      window.zenflow = { graph, get view() { return view; } };
    } else graph.update(view.graph);
    if (selected) showStep(selected);
    loadEvents();
  });
  source.addEventListener("deleted", () => { say(`JobFlow ${ns}/${name} was deleted`); source.close(); });
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) say("lost the live view; reload the page"); };
  // Events are not part of the flow object: the last ones may come after its last change.
  const eventsTimer = setInterval(loadEvents, 3000);
  leave = () => {
    source.close(); clearTimeout(logTimer); clearInterval(eventsTimer);
    if (graph) graph.cy.destroy();
  };
}

function route() {
  leave();
  say("");
  const [hashPath, query] = location.hash.replace(/^#/, "").split("?");
  const parts = hashPath.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "flow" && parts.length === 3) flowPage(parts[1], parts[2]);
  else listPage(parts[0] === "ns" && parts[1] ? parts[1] : info.namespace, new URLSearchParams(query || ""));
}

info = await api("/api/info");
document.getElementById("where").textContent = `cluster: ${info.cluster}`;
window.addEventListener("hashchange", route);
route();
