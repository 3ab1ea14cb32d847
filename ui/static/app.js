// The console shell: token handling, the API client, DOM helpers, the hash
// router and polling. Pages live in pages/*.js and register with route();
// main.js imports them all and starts the router.
// Data from the fleet only ever reaches the DOM as text (h() never parses
// HTML), so a hostile hostname or tag cannot inject markup.

const TOKEN_KEY = "fleetops.token";
const routes = [];
const navItems = [];
let current = null; // {stop: fn} of the page on screen

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY) || "",
  set: (t) => localStorage.setItem(TOKEN_KEY, t),
  clear: () => localStorage.removeItem(TOKEN_KEY),
};

export class APIError extends Error {
  // field names the request field at fault ("parameters.commands",
  // "targets[0]"), when the server says which.
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || "";
  }
}

function apiURL(path, query) {
  const url = new URL("/v1" + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    for (const one of [].concat(v)) {
      if (one !== undefined && one !== null && one !== "") url.searchParams.append(k, one);
    }
  }
  return url;
}

// request fetches an API URL with the stored token and returns the response
// and its body text. A 401 sends the user to the login view; any other
// failure throws an APIError carrying the server's code, message and field.
async function request(url, { method = "GET", body } = {}) {
  const headers = { Authorization: "Bearer " + token.get() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  if (!resp.ok) {
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    const err = (data && data.error) || {};
    if (resp.status === 401) {
      token.clear();
      go("#/login");
    }
    throw new APIError(resp.status, err.code || "Error", err.message || `${resp.status} ${resp.statusText}`, err.field);
  }
  return { resp, text };
}

// api calls the server's /v1 API with the stored token and returns the
// decoded JSON. A 401 sends the user to the login view.
export async function api(path, { method = "GET", body, query } = {}) {
  const { text } = await request(apiURL(path, query), { method, body });
  try { return text ? JSON.parse(text) : null; } catch { return null; }
}

// apiText GETs a plain-text API resource (command output) and returns its
// text and response headers.
export async function apiText(path, query) {
  const { resp, text } = await request(apiURL(path, query));
  return { text, headers: resp.headers };
}

// h builds an element: h("td", {class: "x", dataset: {id: 1}}, "text", child).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style") Object.assign(el.style, v); // CSSOM: allowed by the CSP, unlike style=""
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function ago(iso) {
  if (!iso) return "never";
  const t = new Date(iso);
  if (isNaN(t) || t.getFullYear() < 2000) return "never";
  const s = Math.round((Date.now() - t.getTime()) / 1000);
  if (s < 5) return "just now";
  if (s < 90) return `${s}s ago`;
  if (s < 5400) return `${Math.round(s / 60)}m ago`;
  if (s < 172800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

export function statusBadge(status) {
  return h("span", { class: "status " + status, dataset: { status } }, status);
}

export function tagList(tags) {
  return Object.entries(tags || {}).sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => h("span", { class: "tag", title: `${k}=${v}` }, v === "" ? k : `${k}=${v}`));
}

// poll runs fn now and every interval ms until the page changes; errors are
// shown in the banner and polling goes on, so a server restart heals itself.
// It returns the page's stop function; stop.now() polls at once (after a
// user action) instead of waiting for the next tick.
export function poll(fn, interval = 2000) {
  let timer = null;
  let stopped = false;
  let generation = 0;
  const tick = async () => {
    clearTimeout(timer);
    const mine = ++generation;
    try {
      await fn();
      banner("");
    } catch (e) {
      if (!(e instanceof APIError && e.status === 401)) banner("Cannot reach the server: " + e.message);
    }
    if (!stopped && mine === generation) timer = setTimeout(tick, interval);
  };
  tick();
  const stop = () => { stopped = true; clearTimeout(timer); };
  stop.now = () => { if (!stopped) tick(); };
  return stop;
}

export function banner(msg) {
  const b = document.getElementById("banner");
  b.textContent = msg;
  b.hidden = !msg;
}

// route registers a page: pattern is a RegExp on the hash path whose groups
// become arguments; render(view, params, ...groups) fills the view and returns
// a stop function (or nothing).
export function route(pattern, render, nav) {
  routes.push({ pattern, render });
  if (nav) navItems.push(nav);
}

export function go(hash) {
  if (location.hash === hash) dispatch();
  else location.hash = hash;
}

function dispatch() {
  const raw = location.hash.replace(/^#/, "") || "/fleet";
  const [path, qs] = raw.split("?");
  const params = new URLSearchParams(qs || "");
  if (current) current();
  current = null;
  const view = document.getElementById("view");
  view.replaceChildren();
  const authed = token.get() !== "";
  document.getElementById("logout").hidden = !authed;
  if (!authed && path !== "/login") {
    go("#/login?next=" + encodeURIComponent(path));
    return;
  }
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", path.startsWith(a.getAttribute("href").slice(1)));
  }
  for (const r of routes) {
    const m = path.match(r.pattern);
    if (m) {
      const stop = r.render(view, params, ...m.slice(1).map(decodeURIComponent));
      current = typeof stop === "function" ? stop : null;
      return;
    }
  }
  view.append(h("p", {}, "No page at ", h("code", {}, path), ". ", h("a", { href: "#/fleet" }, "Back to the fleet")));
}

async function loadConfig() {
  try {
    const cfg = await api("/console/config");
    const link = document.getElementById("temporal-link");
    if (cfg.temporalUiUrl) {
      link.href = cfg.temporalUiUrl;
      link.hidden = false;
    }
    document.getElementById("footer").textContent = "fleetops " + (cfg.version || "");
  } catch { /* shown again once logged in */ }
}

export async function start() {
  const nav = document.getElementById("nav");
  nav.replaceChildren(...navItems.map((n) => h("a", { href: n.href }, n.label)));
  document.getElementById("logout").addEventListener("click", () => { token.clear(); go("#/login"); });
  window.addEventListener("hashchange", dispatch);
  if (token.get()) loadConfig();
  dispatch();
}

export { loadConfig };
