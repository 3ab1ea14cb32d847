// Run Command: the command history and one command's page, with its
// invocations paginated on the server and an invocation's output followed
// live. The send form is pages/send.js.
import { ago, api, apiText, banner, h, poll, route, statusBadge } from "../app.js";

const PAGE = 50;
const COMMAND_STATUSES = ["Pending", "InProgress", "Success", "Failed", "TimedOut", "Cancelling", "Cancelled"];
const INVOCATION_STATUSES = ["Pending", "Delayed", "InProgress", "Success", "Failed", "TimedOut", "Cancelling", "Cancelled"];
// FINAL statuses never change again: polling stops there.
const FINAL = new Set(["Success", "Failed", "TimedOut", "Cancelled"]);

export const isFinal = (status) => FINAL.has(status);

export function commandLink(id, instanceId) {
  return "#/commands/" + encodeURIComponent(id) + (instanceId ? "?instance=" + encodeURIComponent(instanceId) : "");
}

function when(iso) {
  return iso ? h("span", { title: new Date(iso).toLocaleString() }, ago(iso)) : "";
}

function duration(start, end) {
  if (!start) return "";
  const ms = (end ? new Date(end) : new Date()) - new Date(start);
  if (!(ms >= 0)) return "";
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s}s` : `${Math.floor(s / 60)}m ${s % 60}s`;
}

// pager renders ‹ Previous / Page n / Next › over a list of nextTokens.
function pager(el, state, hasNext, refresh) {
  el.replaceChildren(
    h("button", { disabled: state.page === 0, onclick: () => { state.page--; refresh(); } }, "‹ Previous"),
    h("span", { class: "muted" }, `Page ${state.page + 1}`),
    h("button", { disabled: !hasNext, onclick: () => { state.page++; refresh(); } }, "Next ›"),
  );
}

// ---- #/commands: the history ----

route(/^\/commands$/, (view, params) => {
  const status = h("select", { id: "commands-filter-status" },
    ["", ...COMMAND_STATUSES].map((s) => h("option", { value: s, selected: s === (params.get("status") || "") }, s || "Any status")));
  const docName = h("input", { id: "commands-filter-document", placeholder: "document name", value: params.get("documentName") || "" });
  const body = h("tbody", { id: "commands" });
  const pages = h("div", { class: "toolbar" });
  const err = h("p", { class: "error" });
  const state = { page: 0, tokens: [""] };

  const apply = () => {
    const q = new URLSearchParams();
    if (status.value) q.set("status", status.value);
    if (docName.value.trim()) q.set("documentName", docName.value.trim());
    const hash = "#/commands" + (q.toString() ? "?" + q : "");
    if (location.hash !== hash) location.hash = hash;
  };
  status.addEventListener("change", apply);
  docName.addEventListener("keydown", (e) => { if (e.key === "Enter") apply(); });

  view.append(
    h("div", { class: "titlebar" }, h("h1", {}, "Run Command"), h("a", { class: "button primary", id: "commands-new", href: "#/commands/new" }, "Run command")),
    h("div", { class: "toolbar" }, status, docName, h("button", { onclick: apply }, "Filter")),
    err,
    h("table", {},
      h("thead", {}, h("tr", {}, ["Command ID", "Document", "Status", "Details", "Targets", "Completed", "Errors", "Requested", "Comment"].map((c) => h("th", {}, c)))),
      body),
    pages,
  );

  const stop = poll(async () => {
    let data;
    try {
      data = await api("/commands", {
        query: { maxResults: PAGE, nextToken: state.tokens[state.page], status: params.get("status"), documentName: params.get("documentName") },
      });
      err.textContent = "";
    } catch (e) {
      if (e.status === 400) { err.textContent = e.message; body.replaceChildren(); return; }
      throw e;
    }
    state.tokens[state.page + 1] = data.nextToken || "";
    body.replaceChildren(...(data.commands.length ? data.commands.map(commandRow)
      : [h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No commands match. ", h("a", { href: "#/commands/new" }, "Run one.")))]));
    pager(pages, state, !!data.nextToken, () => stop.now());
  });
  return stop;
}, { href: "#/commands", label: "Run Command" });

function commandRow(c) {
  return h("tr", { dataset: { commandId: c.commandId, status: c.status } },
    h("td", {}, h("a", { class: "mono", href: commandLink(c.commandId) }, c.commandId)),
    h("td", {}, c.documentName),
    h("td", {}, statusBadge(c.status)),
    h("td", {}, c.statusDetails),
    h("td", { class: "num" }, c.targetCount),
    h("td", { class: "num" }, c.completedCount),
    h("td", { class: "num" }, c.errorCount),
    h("td", {}, when(c.requestedDateTime)),
    h("td", {}, c.comment),
  );
}

// ---- #/commands/<id>: one command ----

route(/^\/commands\/([0-9a-fA-F-]+)$/, (view, params, id) => {
  const status = h("span", { id: "command-status" });
  const details = h("span", { class: "muted", id: "command-details" });
  const cancel = h("button", { id: "command-cancel", class: "danger", hidden: true });
  const cancelMsg = h("span", { class: "muted", id: "command-cancel-msg" });
  const counters = h("div", { class: "counters", id: "command-counters" });
  const progress = h("div", { class: "bar progress", id: "command-progress" });
  const legend = h("div", { class: "legend", id: "command-legend" });
  const props = h("dl", { class: "props", id: "command-props" });
  const filter = h("select", { id: "invocations-filter-status" },
    ["", ...INVOCATION_STATUSES].map((s) => h("option", { value: s }, s || "Any status")));
  const body = h("tbody", { id: "invocations" });
  const pages = h("div", { class: "toolbar" });
  const panel = h("section", { id: "invocation", class: "panel", hidden: true });
  const state = { page: 0, tokens: [""], status: "", final: false, selected: params.get("instance") || "" };
  let stopPoll = () => {};
  let stopOutput = () => {};
  let gone = false;

  view.append(
    h("p", {}, h("a", { href: "#/commands" }, "‹ Run Command")),
    h("div", { class: "titlebar" }, h("h1", { class: "mono" }, id), status, details, h("span", { class: "spacer" }), cancelMsg, cancel),
    counters, progress, legend, props,
    h("h2", {}, "Targets"),
    h("div", { class: "toolbar" }, filter),
    h("table", { class: "clickable" },
      h("thead", {}, h("tr", {}, ["Node", "Name", "Status", "Details", "Code", "Started", "Duration"].map((c) => h("th", {}, c)))),
      body),
    pages,
    panel,
  );

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    cancelMsg.textContent = "";
    try {
      await api("/commands/" + encodeURIComponent(id) + "/cancel", { method: "POST", body: {} });
      cancelMsg.textContent = "Cancel requested.";
    } catch (e) {
      cancelMsg.textContent = e.message;
      cancel.disabled = false;
    }
    refresh();
  });

  const renderCommand = (data) => {
    const c = data.command;
    const byStatus = data.invocationsByStatus || {};
    state.final = isFinal(c.status);
    status.replaceChildren(statusBadge(c.status));
    status.dataset.status = c.status;
    details.textContent = c.statusDetails === c.status ? "" : c.statusDetails;
    cancel.hidden = state.final;
    if (c.status === "Cancelling") {
      cancel.disabled = true;
      cancel.textContent = "Cancelling…";
    } else if (!state.final) {
      cancel.textContent = "Cancel command";
    }
    const counts = [["targets", "Targets", c.targetCount], ["completed", "Completed", c.completedCount],
      ["errors", "Errors", c.errorCount], ["deliveryTimedOut", "Delivery timed out", c.deliveryTimedOutCount]];
    counters.replaceChildren(...counts.map(([key, label, n]) =>
      h("div", { class: "card counter", dataset: { counter: key } }, h("h3", {}, label), h("div", { class: "big" }, n))));
    const total = Math.max(c.targetCount, Object.values(byStatus).reduce((a, b) => a + b, 0));
    const present = INVOCATION_STATUSES.filter((s) => byStatus[s]);
    progress.replaceChildren(...present.map((s) => h("span", {
      class: "seg " + s, dataset: { status: s }, title: `${s}: ${byStatus[s]}`,
      style: { width: `${total ? (100 * byStatus[s]) / total : 0}%` },
    })));
    legend.replaceChildren(...present.map((s) => h("span", { class: "legend-item" }, h("span", { class: "swatch seg " + s }), `${s} ${byStatus[s]}`)));
    const params = Object.entries(c.parameters || {}).map(([k, v]) => `${k}: ${[].concat(v).join("\n")}`).join("\n");
    const targets = c.instanceIds && c.instanceIds.length ? c.instanceIds.join(", ")
      : (c.targets || []).map((t) => `${t.key}=${t.values.join(",")}`).join("; ");
    const fields = [
      ["Document", `${c.documentName} (version ${c.documentVersion})`], ["Targets", targets],
      ["Parameters", h("pre", { class: "params" }, params)], ["Comment", c.comment],
      ["Requested", `${new Date(c.requestedDateTime).toLocaleString()} by ${c.requestedBy || "?"}`],
      ["Finished", c.finishedDateTime ? new Date(c.finishedDateTime).toLocaleString() : ""],
      ["Rate control", `concurrency ${c.maxConcurrency}, error threshold ${c.maxErrors}`],
      ["Timeouts", `delivery ${c.timeoutSeconds}s, execution ${c.executionTimeoutSeconds}s`],
    ];
    props.replaceChildren(...fields.filter(([, v]) => v !== "").flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  };

  const renderInvocations = (data) => {
    state.tokens[state.page + 1] = data.nextToken || "";
    body.replaceChildren(...(data.invocations.length ? data.invocations.map((inv) =>
      h("tr", {
        dataset: { instanceId: inv.instanceId, status: inv.status },
        class: inv.instanceId === state.selected ? "selected" : null,
        onclick: () => openInvocation(inv.instanceId),
      },
      h("td", {}, h("a", { class: "mono", href: "#/instances/" + encodeURIComponent(inv.instanceId), onclick: (e) => e.stopPropagation() }, inv.instanceId)),
      h("td", {}, inv.instanceName),
      h("td", {}, statusBadge(inv.status)),
      h("td", {}, inv.statusDetails),
      h("td", { class: "num" }, inv.responseCode === -1 ? "" : inv.responseCode),
      h("td", {}, when(inv.executionStartDateTime)),
      h("td", {}, duration(inv.executionStartDateTime, inv.executionEndDateTime)),
      )) : [h("tr", {}, h("td", { colspan: 7, class: "muted" }, state.status ? "No invocations with this status." : "No targets."))]));
    pager(pages, state, !!data.nextToken, refresh);
  };

  // load fetches the command and the invocation page on screen.
  const load = async () => {
    const base = "/commands/" + encodeURIComponent(id);
    const [cmd, invs] = await Promise.all([
      api(base),
      api(base + "/invocations", { query: { maxResults: PAGE, nextToken: state.tokens[state.page], status: state.status } }),
    ]);
    if (gone) return;
    renderCommand(cmd);
    renderInvocations(invs);
  };

  // The page polls until the command is final; after that a filter or page
  // change loads once.
  const start = () => {
    stopPoll = poll(async () => {
      await load();
      if (state.final) stopPoll();
    });
  };
  function refresh() {
    if (!state.final) { stopPoll.now(); return; }
    load().catch((e) => banner("Cannot reach the server: " + e.message));
  }
  filter.addEventListener("change", () => {
    state.status = filter.value;
    state.page = 0;
    state.tokens = [""];
    refresh();
  });

  function openInvocation(instanceId) {
    stopOutput();
    state.selected = instanceId;
    for (const tr of body.querySelectorAll("tr[data-instance-id]")) tr.classList.toggle("selected", tr.dataset.instanceId === instanceId);
    history.replaceState(null, "", "#" + "/commands/" + encodeURIComponent(id) + "?instance=" + encodeURIComponent(instanceId));
    stopOutput = followInvocation(panel, id, instanceId);
  }

  start();
  if (state.selected) openInvocation(state.selected);
  return () => { gone = true; stopPoll(); stopOutput(); };
});

// followInvocation shows one invocation in panel: its status, plugin steps
// and output, appending new output every second until it is final. It
// returns the stop function.
function followInvocation(panel, commandId, instanceId) {
  const base = "/commands/" + encodeURIComponent(commandId) + "/invocations/" + encodeURIComponent(instanceId);
  const status = h("span", { id: "invocation-status" });
  const code = h("span", { class: "muted", id: "invocation-code" });
  const plugins = h("tbody", { id: "invocation-plugins" });
  const stdout = h("pre", { class: "output", id: "invocation-stdout" });
  const stderr = h("pre", { class: "output stderr", id: "invocation-stderr" });
  const notes = { stdout: h("p", { class: "muted" }), stderr: h("p", { class: "muted" }) };
  const offsets = { stdout: 0, stderr: 0 };
  const pres = { stdout, stderr };
  let stopped = false;
  let final = false;

  panel.hidden = false;
  panel.dataset.instanceId = instanceId;
  panel.replaceChildren(
    h("div", { class: "titlebar" }, h("h2", {}, "Output on ", h("span", { class: "mono" }, instanceId)), status, code),
    h("table", { class: "plugins" },
      h("thead", {}, h("tr", {}, ["Step", "Status", "Code", "Started", "Duration"].map((c) => h("th", {}, c)))), plugins),
    h("h3", {}, "Output"), stdout, notes.stdout,
    h("h3", {}, "Errors"), stderr, notes.stderr,
  );

  const showStatus = (s) => {
    status.replaceChildren(statusBadge(s));
    status.dataset.status = s;
    final = isFinal(s);
  };

  // detail reads the invocation's status, code and steps; the steps are
  // written when it ends.
  const detail = async () => {
    const { invocation: inv } = await api(base);
    if (stopped) return;
    showStatus(inv.status);
    code.textContent = inv.responseCode === -1 ? "" : `exit code ${inv.responseCode}`;
    const steps = inv.commandPlugins || [];
    plugins.replaceChildren(...(steps.length ? steps.map((p) => h("tr", { dataset: { plugin: p.name, status: p.status } },
      h("td", {}, p.name), h("td", {}, statusBadge(p.status)), h("td", { class: "num" }, p.responseCode === -1 ? "" : p.responseCode),
      h("td", {}, when(p.startedAt)), h("td", {}, duration(p.startedAt, p.endedAt))))
      : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, final ? "No steps ran." : "Steps are listed when the invocation ends."))]));
  };

  // tail appends what each stream gained since the last call. Offsets are
  // the byte lengths the server reports, so nothing is fetched twice.
  const tail = async (stream) => {
    const { text, headers } = await apiText(base + "/output", { stream, offset: offsets[stream] });
    if (stopped) return "";
    const length = Number(headers.get("X-Fleetops-Output-Length"));
    if (text) {
      const pre = pres[stream];
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(text);
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }
    offsets[stream] = Number.isFinite(length) ? length : offsets[stream] + new TextEncoder().encode(text).length;
    notes[stream].textContent = headers.get("X-Fleetops-Output-Truncated") === "true"
      ? "Output was cut at the command's output limit." : "";
    return headers.get("X-Fleetops-Invocation-Status") || "";
  };

  let first = true;
  const stop = poll(async () => {
    if (first) { await detail(); first = false; }
    // Each answer carries the text and the status of one read of the row:
    // once both streams were read as final, nothing more can come.
    const [s, s2] = await Promise.all([tail("stdout"), tail("stderr")]);
    if (stopped) return;
    if (isFinal(s) && isFinal(s2)) {
      await detail();
      stop();
    } else if (s) {
      showStatus(s);
    }
    for (const [k, pre] of Object.entries(pres)) pre.classList.toggle("empty", offsets[k] === 0);
  }, 1000);
  return () => { stopped = true; stop(); };
}
