// Managed nodes: the filtered, paginated node list and one node's page.
import { ago, api, h, poll, route, statusBadge, tagList } from "../app.js";

const PAGE = 50;

route(/^\/instances$/, (view, params) => {
  const status = h("select", { id: "filter-status" },
    ["", "Online", "ConnectionLost", "Inactive"].map((s) => h("option", { value: s, selected: s === (params.get("pingStatus") || "") }, s || "Any status")));
  const tag = h("input", { id: "filter-tag", placeholder: "tag: Env=prod,dev", value: params.get("tag") || "" });
  const platform = h("input", { id: "filter-platform", placeholder: "platform type: Linux", value: params.get("platformType") || "" });
  const body = h("tbody", { id: "instances" });
  const pager = h("div", { class: "toolbar" });
  const err = h("p", { class: "error" });
  // tokens[i] is the nextToken that fetches page i.
  const tokens = [""];
  let page = 0;

  const apply = () => {
    const q = new URLSearchParams();
    if (status.value) q.set("pingStatus", status.value);
    if (tag.value.trim()) q.set("tag", tag.value.trim());
    if (platform.value.trim()) q.set("platformType", platform.value.trim());
    const hash = "#/instances" + (q.toString() ? "?" + q : "");
    if (location.hash !== hash) location.hash = hash;
  };
  status.addEventListener("change", apply);
  for (const input of [tag, platform]) input.addEventListener("keydown", (e) => { if (e.key === "Enter") apply(); });

  view.append(
    h("h1", {}, "Managed nodes"),
    h("div", { class: "toolbar" }, status, tag, platform, h("button", { onclick: apply }, "Filter")),
    err,
    h("table", {},
      h("thead", {}, h("tr", {}, ["Node", "Name", "Status", "Platform", "IP", "Agent", "Last ping", "Tags"].map((c) => h("th", {}, c)))),
      body),
    pager,
  );

  const stop = poll(async () => {
    let data;
    try {
      data = await api("/instances", {
        query: {
          maxResults: PAGE, nextToken: tokens[page], pingStatus: params.get("pingStatus"),
          tag: params.get("tag"), platformType: params.get("platformType"),
        },
      });
      err.textContent = "";
    } catch (e) {
      if (e.status === 400) { err.textContent = e.message; body.replaceChildren(); return; }
      throw e;
    }
    tokens[page + 1] = data.nextToken || "";
    body.replaceChildren(...(data.instances.length ? data.instances.map(row)
      : [h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No managed nodes match."))]));
    pager.replaceChildren(
      h("button", { disabled: page === 0, onclick: () => { page--; stop.now(); } }, "‹ Previous"),
      h("span", { class: "muted" }, `Page ${page + 1}`),
      h("button", { disabled: !data.nextToken, onclick: () => { page++; stop.now(); } }, "Next ›"),
    );
  });
  return stop;
}, { href: "#/instances", label: "Nodes" });

function row(n) {
  return h("tr", { dataset: { instanceId: n.instanceId, pingStatus: n.pingStatus } },
    h("td", {}, h("a", { href: "#/instances/" + encodeURIComponent(n.instanceId) }, n.instanceId)),
    h("td", {}, n.name || n.hostname),
    h("td", {}, statusBadge(n.pingStatus)),
    h("td", {}, [n.platformName, n.platformVersion].filter(Boolean).join(" ") || n.platformType),
    h("td", {}, (n.ipAddresses || []).slice(0, 2).join(", ")),
    h("td", {}, n.agentVersion),
    h("td", { title: n.lastPingAt }, ago(n.lastPingAt)),
    h("td", {}, tagList(n.tags)),
  );
}

route(/^\/instances\/([^/]+)$/, (view, _params, id) => {
  const props = h("dl", { class: "props", id: "instance-props" });
  const tags = h("div", { id: "instance-tags" });
  const commands = h("tbody", { id: "instance-commands" });
  view.append(h("p", {}, h("a", { href: "#/instances" }, "‹ Managed nodes")),
    h("div", { class: "titlebar" }, h("h1", {}, id), h("span", { class: "spacer" }),
      h("a", { class: "button", id: "instance-run", href: "#/commands/new?instanceId=" + encodeURIComponent(id) }, "Run command"),
      h("a", { class: "button", id: "instance-session", href: "#/sessions/new?target=" + encodeURIComponent(id) }, "Start session")),
    props, h("h2", {}, "Tags"), tags,
    h("h2", {}, "Recent commands"),
    h("table", {}, h("thead", {}, h("tr", {}, ["Command ID", "Document", "Status", "Requested", "Comment"].map((c) => h("th", {}, c)))), commands));
  return poll(async () => {
    const [n, recent] = await Promise.all([
      api("/instances/" + encodeURIComponent(id)),
      api("/commands", { query: { instanceId: id, maxResults: 10 } }),
    ]);
    commands.replaceChildren(...(recent.commands.length ? recent.commands.map((c) => h("tr", { dataset: { commandId: c.commandId, status: c.status } },
      h("td", {}, h("a", { class: "mono", href: "#/commands/" + encodeURIComponent(c.commandId) + "?instance=" + encodeURIComponent(id) }, c.commandId)),
      h("td", {}, c.documentName), h("td", {}, statusBadge(c.status)),
      h("td", { title: c.requestedDateTime }, ago(c.requestedDateTime)), h("td", {}, c.comment)))
      : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No commands ran on this node yet."))]));
    const fields = [
      ["Status", statusBadge(n.pingStatus)], ["Name", n.name], ["Hostname", n.hostname],
      ["Platform", `${n.platformType} · ${n.platformName} ${n.platformVersion}`], ["Kernel", n.kernel],
      ["Architecture", n.architecture], ["IP addresses", (n.ipAddresses || []).join(", ")],
      ["Agent version", n.agentVersion], ["Activation", n.activationId],
      ["Registered", new Date(n.registeredAt).toLocaleString()], ["Last ping", ago(n.lastPingAt)],
    ];
    props.replaceChildren(...fields.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    props.dataset.pingStatus = n.pingStatus;
    const t = tagList(n.tags);
    tags.replaceChildren(...(t.length ? t : [h("span", { class: "muted" }, "No tags.")]));
  });
});
