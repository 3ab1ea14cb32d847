// Run a command: pick a document, fill its parameters, choose the targets
// (node IDs or tags/resource group) and the rate controls, then POST
// /commands. A 400 names the field at fault; its message is shown next to
// that field and nothing the user typed is lost.
import { api, go, h, route } from "../app.js";

const MAX_TARGETS = 5;
// TARGET_KINDS map the target row's kind to SSM's target key.
const TARGET_KINDS = [
  { kind: "tag", label: "Tag", key: (name) => "tag:" + name, values: "values: prod, staging" },
  { kind: "tag-key", label: "Tag key", key: () => "tag-key", values: "tag keys: Env, Role" },
  { kind: "group", label: "Resource group", key: () => "resource-groups:Name", values: "group name" },
  { kind: "ids", label: "Instance IDs", key: () => "InstanceIds", values: "mi-…, mi-… or *" },
];

// splitList turns "a, b\nc" into ["a", "b", "c"].
const splitList = (s) => s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

route(/^\/commands\/new$/, (view, params) => {
  let gone = false;
  const fieldErrors = new Map(); // field → {slot, input}
  const slot = (field, input) => {
    const el = h("div", { class: "field-error error", dataset: { fieldError: field } });
    fieldErrors.set(field, { slot: el, input });
    return el;
  };

  // Document and its parameters.
  const docSelect = h("select", { id: "send-document", name: "documentName", required: true },
    h("option", { value: "" }, "Loading documents…"));
  const docInfo = h("p", { class: "muted", id: "send-document-description" });
  const paramBox = h("div", { id: "send-params", class: "fields" });
  const typed = {}; // parameter values typed so far, kept across document changes
  let documents = [];

  // Targets.
  const modeIDs = h("input", { type: "radio", name: "send-targets-mode", id: "send-targets-mode-ids", value: "ids", checked: true });
  const modeTags = h("input", { type: "radio", name: "send-targets-mode", id: "send-targets-mode-tags", value: "tags" });
  const nodeList = h("div", { class: "node-list", id: "send-node-list" }, h("span", { class: "muted" }, "Loading nodes…"));
  const nodeFilter = h("input", { id: "send-node-filter", placeholder: "filter nodes", type: "search" });
  const idsText = h("textarea", { id: "send-instance-ids", name: "instanceIds", rows: 2, placeholder: "mi-0123456789abcdef0, one or more, comma- or line-separated" });
  if (params.get("instanceId")) idsText.value = params.get("instanceId");
  const idsBox = h("fieldset", { id: "send-targets-ids" },
    h("legend", {}, "Nodes"), nodeFilter, nodeList,
    h("label", { for: "send-instance-ids" }, "Other instance IDs"), idsText, slot("instanceIds", idsText));
  const tagRows = h("div", { id: "send-target-rows" });
  const addTarget = h("button", { type: "button", id: "send-add-target" }, "+ Add target");
  const tagsBox = h("fieldset", { id: "send-targets-tags", hidden: true },
    h("legend", {}, "Targets"), h("p", { class: "muted" }, "A node must match every row."), tagRows, addTarget, slot("targets", null));
  const mode = () => (modeTags.checked ? "tags" : "ids");
  const showMode = () => {
    idsBox.hidden = mode() !== "ids";
    tagsBox.hidden = mode() !== "tags";
  };
  modeIDs.addEventListener("change", showMode);
  modeTags.addEventListener("change", showMode);

  const targetRows = [];
  const addTargetRow = (kind = "tag", name = "", values = "") => {
    const kindSel = h("select", { class: "target-kind" }, TARGET_KINDS.map((k) => h("option", { value: k.kind, selected: k.kind === kind }, k.label)));
    const nameIn = h("input", { class: "target-key", placeholder: "tag key: Env", value: name });
    const valuesIn = h("input", { class: "target-values", value: values });
    const row = { kindSel, nameIn, valuesIn };
    const err = h("div", { class: "field-error error" });
    const sync = () => {
      const k = TARGET_KINDS.find((t) => t.kind === kindSel.value);
      nameIn.hidden = k.kind !== "tag";
      valuesIn.placeholder = k.values;
    };
    kindSel.addEventListener("change", sync);
    const el = h("div", { class: "target-row" }, kindSel, nameIn, valuesIn,
      h("button", { type: "button", class: "link remove", title: "Remove", onclick: () => {
        targetRows.splice(targetRows.indexOf(row), 1);
        el.remove();
        renumber();
      } }, "✕"), err);
    row.el = el;
    row.err = err;
    targetRows.push(row);
    tagRows.append(el);
    sync();
    renumber();
  };
  function renumber() {
    targetRows.forEach((r, i) => { r.el.dataset.targetIndex = i; });
    addTarget.disabled = targetRows.length >= MAX_TARGETS;
  }
  addTarget.addEventListener("click", () => addTargetRow());
  addTargetRow();

  // Rate control and the rest.
  const concurrency = h("input", { id: "send-max-concurrency", name: "maxConcurrency", value: "50", size: 6 });
  const maxErrors = h("input", { id: "send-max-errors", name: "maxErrors", value: "0", size: 6 });
  const timeout = h("input", { id: "send-timeout", name: "timeoutSeconds", type: "number", value: "3600", min: 30, max: 2592000 });
  const comment = h("input", { id: "send-comment", name: "comment", maxlength: 100, placeholder: "shown in the command history" });
  const topError = h("div", { class: "error", id: "send-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary", id: "send-submit" }, "Run");

  const field = (label, input, name, hint) => h("div", { class: "field" },
    h("label", { for: input.id }, label), input, hint ? h("div", { class: "muted hint" }, hint) : null, slot(name, input));

  const form = h("form", { class: "send", id: "send-form", novalidate: true, onsubmit: (e) => { e.preventDefault(); send(); } },
    h("section", {}, h("h2", {}, "Document"), field("Name", docSelect, "documentName"), docInfo,
      h("h3", {}, "Parameters"), paramBox),
    h("section", {}, h("h2", {}, "Targets"),
      h("div", { class: "radios" },
        h("label", {}, modeIDs, " Choose nodes"), h("label", {}, modeTags, " Tags or resource group")),
      idsBox, tagsBox),
    h("section", {}, h("h2", {}, "Options"),
      h("div", { class: "fields row" },
        field("Concurrency", concurrency, "maxConcurrency", "nodes at once: a number or a percentage (10%)"),
        field("Error threshold", maxErrors, "maxErrors", "errors before the rest is stopped: a number or a percentage"),
        field("Delivery timeout (s)", timeout, "timeoutSeconds", "30 to 2592000"),
      ),
      field("Comment", comment, "comment")),
    topError,
    h("div", { class: "toolbar" }, submit, h("a", { href: "#/commands" }, "Cancel")),
  );
  view.append(h("p", {}, h("a", { href: "#/commands" }, "‹ Run Command")), h("h1", {}, "Run a command"), form);

  // renderParams draws one input per parameter of the chosen document.
  const renderParams = () => {
    for (const k of [...fieldErrors.keys()]) if (k.startsWith("parameters.")) fieldErrors.delete(k);
    const d = documents.find((x) => x.name === docSelect.value);
    docInfo.textContent = d ? d.description || "" : "";
    if (!d) { paramBox.replaceChildren(); return; }
    const ps = d.parameters || [];
    paramBox.replaceChildren(...(ps.length ? ps.map(paramField) : [h("p", { class: "muted" }, "This document takes no parameters.")]));
  };
  const paramField = (p) => {
    const id = "send-param-" + p.name;
    const def = p.default === undefined || p.default === null ? undefined : [].concat(p.default).join("\n");
    const list = p.type === "StringList";
    let input;
    if (p.allowedValues && p.allowedValues.length && !list) {
      input = h("select", { id, name: "param-" + p.name },
        def === undefined ? h("option", { value: "" }, "— choose —") : null,
        p.allowedValues.map((v) => h("option", { value: v, selected: v === def }, v)));
    } else if (list || p.displayType === "textarea") {
      input = h("textarea", { id, name: "param-" + p.name, rows: list ? 5 : 3, placeholder: def || (list ? "one item per line" : "") });
    } else {
      input = h("input", { id, name: "param-" + p.name, placeholder: def || "" });
    }
    input.dataset.param = p.name;
    input.dataset.type = p.type;
    if (typed[p.name] !== undefined) input.value = typed[p.name];
    input.addEventListener("input", () => { typed[p.name] = input.value; });
    input.addEventListener("change", () => { typed[p.name] = input.value; });
    const required = def === undefined;
    const hints = [p.description, list ? "One item per line." : "", p.allowedValues && list ? "Allowed: " + p.allowedValues.join(", ") : ""].filter(Boolean);
    return h("div", { class: "field", dataset: { param: p.name } },
      h("label", { for: id }, p.name, required ? h("span", { class: "required", title: "required" }, " *") : null),
      input, hints.length ? h("div", { class: "muted hint" }, hints.join(" ")) : null,
      slot("parameters." + p.name, input));
  };
  docSelect.addEventListener("change", renderParams);

  // collect builds the request from the form. Empty parameters are left
  // out so the document's defaults apply.
  const collect = () => {
    const req = { documentName: docSelect.value, parameters: {} };
    for (const input of paramBox.querySelectorAll("[data-param]")) {
      if (input.dataset.type === "StringList") {
        const items = input.value.split("\n").filter((l) => l.trim() !== "");
        if (items.length) req.parameters[input.dataset.param] = items;
      } else if (input.value !== "") {
        req.parameters[input.dataset.param] = input.value;
      }
    }
    if (mode() === "ids") {
      const ids = [...nodeList.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value);
      for (const id of splitList(idsText.value)) if (!ids.includes(id)) ids.push(id);
      req.instanceIds = ids;
    } else {
      req.targets = targetRows.map((r) => {
        const k = TARGET_KINDS.find((t) => t.kind === r.kindSel.value);
        return { key: k.key(r.nameIn.value.trim()), values: r.valuesIn.value.split(",").map((v) => v.trim()).filter(Boolean) };
      });
    }
    req.maxConcurrency = concurrency.value.trim();
    req.maxErrors = maxErrors.value.trim();
    if (timeout.value.trim() !== "") req.timeoutSeconds = Number(timeout.value);
    if (comment.value) req.comment = comment.value;
    return req;
  };

  const clearErrors = () => {
    topError.textContent = "";
    for (const { slot: s, input } of fieldErrors.values()) {
      s.textContent = "";
      if (input) input.classList.remove("invalid");
    }
    for (const r of targetRows) { r.err.textContent = ""; r.el.classList.remove("invalid"); }
  };

  // showError puts the message next to the field the server named: an
  // exact field, else its prefix (instanceIds[1] → instanceIds, targets[0]
  // → that target row), else only at the top.
  const showError = (e) => {
    topError.textContent = e.message;
    const f = e.field || "";
    const t = f.match(/^targets\[(\d+)\]/);
    if (t && targetRows[Number(t[1])]) {
      const r = targetRows[Number(t[1])];
      r.err.textContent = e.message;
      r.el.classList.add("invalid");
      return;
    }
    const key = fieldErrors.has(f) ? f : f.replace(/[[.].*$/, "");
    const hit = fieldErrors.get(key);
    if (!hit || !f) return;
    hit.slot.textContent = e.message;
    if (hit.input) {
      hit.input.classList.add("invalid");
      hit.input.focus();
    }
  };

  const send = async () => {
    clearErrors();
    const req = collect();
    if (!req.documentName) {
      showError({ message: "Choose a document.", field: "documentName" });
      return;
    }
    submit.disabled = true;
    submit.textContent = "Sending…";
    try {
      const { command } = await api("/commands", { method: "POST", body: req });
      if (!gone) go("#/commands/" + encodeURIComponent(command.commandId));
    } catch (e) {
      if (gone) return;
      if (e.status === 401) return;
      showError(e);
    } finally {
      submit.disabled = false;
      submit.textContent = "Run";
    }
  };

  // Load the documents and the first nodes.
  (async () => {
    try {
      const out = [];
      let next = "";
      for (let i = 0; i < 10; i++) { // documents are few; 10 pages is plenty
        const data = await api("/documents", { query: { nextToken: next } });
        out.push(...data.documents);
        next = data.nextToken;
        if (!next) break;
      }
      if (gone) return;
      documents = out.filter((d) => !d.documentType || d.documentType === "Command");
      const want = params.get("document") || "AWS-RunShellScript";
      docSelect.replaceChildren(h("option", { value: "" }, "— choose a document —"),
        ...documents.map((d) => h("option", { value: d.name, selected: d.name === want }, d.owner === "Amazon" ? d.name : `${d.name} (${d.owner})`)));
      renderParams();
    } catch (e) {
      if (!gone) topError.textContent = "Cannot load documents: " + e.message;
    }
  })();
  (async () => {
    try {
      const data = await api("/instances", { query: { maxResults: 100 } });
      if (gone) return;
      const pre = params.get("instanceId");
      const items = data.instances.filter((n) => n.pingStatus !== "Inactive").map((n) => {
        const box = h("input", { type: "checkbox", value: n.instanceId, checked: n.instanceId === pre });
        if (n.instanceId === pre) idsText.value = "";
        return h("label", { class: "node", dataset: { instanceId: n.instanceId, search: `${n.instanceId} ${n.name || ""} ${n.hostname || ""}`.toLowerCase() } },
          box, h("span", { class: "mono" }, n.instanceId), " ", n.name || n.hostname || "",
          h("span", { class: "status " + n.pingStatus, dataset: { status: n.pingStatus } }, n.pingStatus));
      });
      nodeList.replaceChildren(...(items.length ? items : [h("span", { class: "muted" }, "No managed nodes yet.")]));
      if (data.nextToken) nodeList.append(h("p", { class: "muted" }, "The first 100 nodes are listed; type other IDs below, or target by tag."));
    } catch (e) {
      if (!gone) nodeList.replaceChildren(h("span", { class: "error" }, "Cannot load nodes: " + e.message));
    }
  })();
  nodeFilter.addEventListener("input", () => {
    const q = nodeFilter.value.trim().toLowerCase();
    for (const l of nodeList.querySelectorAll("label.node")) l.hidden = q !== "" && !l.dataset.search.includes(q);
  });

  return () => { gone = true; };
});
