// Login: the console authenticates with an API token (`fleetops token create`
// or DATA_DIR/admin.token), kept in this browser's localStorage.
// #/login?token=X signs in directly, for links printed by `fleetops dev`.
import { api, go, h, loadConfig, route, token } from "../app.js";

route(/^\/login$/, (view, params) => {
  const next = params.get("next") || "/fleet";
  const direct = params.get("token");
  if (direct) {
    token.set(direct);
    history.replaceState(null, "", location.pathname + "#" + next);
    loadConfig();
    go("#" + next);
    return;
  }
  const input = h("input", { type: "password", id: "token", placeholder: "fo_…", autocomplete: "off" });
  const msg = h("p", { class: "error", id: "login-error" });
  const form = h("form", {
    class: "login",
    onsubmit: async (e) => {
      e.preventDefault();
      token.set(input.value.trim());
      try {
        await api("/console/config");
        loadConfig();
        go("#" + next);
      } catch (err) {
        token.clear();
        msg.textContent = err.message;
      }
    },
  },
  h("h2", {}, "Sign in"),
  h("p", { class: "muted" }, "Paste an API token. The dev stack writes one to .fleetops/admin.token."),
  input, msg, h("button", { class: "primary", type: "submit" }, "Sign in"));
  view.append(form);
  input.focus();
});
