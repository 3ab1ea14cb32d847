// Fleet overview: nodes by ping status and by platform, live.
import { api, h, poll, route } from "../app.js";

const STATUSES = ["Online", "ConnectionLost", "Inactive"];
const COLORS = { Online: "var(--ok)", ConnectionLost: "var(--warn)", Inactive: "var(--idle)" };

route(/^\/fleet$/, (view) => {
  const total = h("div", { class: "big", id: "fleet-total" }, "…");
  const statusCards = Object.fromEntries(STATUSES.map((s) => [s, h("div", { class: "big", dataset: { count: s } }, "…")]));
  const bar = h("div", { class: "bar", id: "fleet-bar" });
  const platforms = h("tbody", { id: "fleet-platforms" });
  view.append(
    h("h1", {}, "Fleet"),
    h("div", { class: "cards" },
      h("a", { class: "card", href: "#/instances" }, h("h3", {}, "Managed nodes"), total),
      STATUSES.map((s) => h("a", { class: "card", href: "#/instances?pingStatus=" + s }, h("h3", {}, s), statusCards[s]))),
    bar,
    h("h2", {}, "By platform"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Platform"), h("th", {}, "Nodes"))), platforms),
  );
  return poll(async () => {
    const s = await api("/fleet/summary");
    total.textContent = s.total;
    for (const st of STATUSES) statusCards[st].textContent = (s.byPingStatus || {})[st] || 0;
    bar.replaceChildren(...STATUSES.map((st) => {
      const n = (s.byPingStatus || {})[st] || 0;
      return h("span", { title: `${st}: ${n}`, style: { width: `${s.total ? (100 * n) / s.total : 0}%`, background: COLORS[st] } });
    }));
    const rows = Object.entries(s.byPlatform || {}).sort((a, b) => b[1] - a[1]);
    platforms.replaceChildren(...(rows.length ? rows.map(([p, n]) => h("tr", { dataset: { platform: p } }, h("td", {}, p || "unknown"), h("td", {}, n)))
      : [h("tr", {}, h("td", { colspan: 2, class: "muted" }, "No nodes yet. Create an activation and register one."))]));
  });
}, { href: "#/fleet", label: "Fleet" });
