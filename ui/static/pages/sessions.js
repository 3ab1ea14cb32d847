// Session Manager: the session list (active and history), the start form,
// the live terminal and the recording player.
//
// The stream token that POST /v1/sessions returns is the session's
// credential: it is handed from the start form to the terminal page in
// memory (the `pending` map below), never through the URL, storage or
// history, and it is good for one connection only.
import { ago, api, apiText, banner, go, h, poll, route, statusBadge } from "../app.js";
import { openTerminal } from "../terminal.js";

const PAGE = 50;

// Data channel frame types (agent/agentproto/session.go): the first byte of
// every binary WebSocket message.
const FRAME = { data: 0, resize: 1, exit: 2, stderr: 3, close: 4 };

// ENDED statuses never change again.
const ENDED = new Set(["Terminated", "Failed"]);

// pending holds, by session ID, the {tokenValue, streamUrl} of a session just
// started or resumed, until its terminal page connects.
const pending = new Map();

const enc = (id) => encodeURIComponent(id);

function when(iso) {
  return iso ? h("span", { title: new Date(iso).toLocaleString() }, ago(iso)) : "";
}

function terminate(id) {
  return api("/sessions/" + enc(id) + "/terminate", { method: "POST", body: {} });
}

// ---- #/sessions: active sessions and history ----

route(/^\/sessions$/, (view, params) => {
  const history = params.get("state") === "History";
  const body = h("tbody", { id: "sessions" });
  const pages = h("div", { class: "toolbar" });
  const err = h("p", { class: "error", id: "sessions-error" });
  const state = { page: 0, tokens: [""] };
  const cols = ["Session ID", "Target", "Owner", "Status", "Document", "Started", "Ended", "Reason", "Details", ""];

  view.append(
    h("div", { class: "titlebar" }, h("h1", {}, "Session Manager"), h("span", { class: "spacer" }),
      h("a", { class: "button primary", id: "sessions-new", href: "#/sessions/new" }, "Start session")),
    h("div", { class: "tabs" },
      h("a", { id: "sessions-tab-active", class: history ? "" : "active", href: "#/sessions" }, "Active sessions"),
      h("a", { id: "sessions-tab-history", class: history ? "active" : "", href: "#/sessions?state=History" }, "Session history")),
    err,
    h("table", { dataset: { state: history ? "History" : "Active" } },
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c)))), body),
    pages,
  );

  const row = (s) => {
    const actions = [];
    if (!history && !ENDED.has(s.status) && s.status !== "Terminating") {
      const btn = h("button", { class: "danger small session-terminate" }, "Terminate");
      btn.addEventListener("click", async () => {
        btn.disabled = true;
        try {
          await terminate(s.sessionId);
          err.textContent = "";
        } catch (e) {
          err.textContent = e.message;
          btn.disabled = false;
        }
        stop.now();
      });
      actions.push(btn);
    }
    if (ENDED.has(s.status) && s.kind === "Standard_Stream" && s.recordingBytes > 0) {
      actions.push(h("a", { class: "session-recording", href: "#/sessions/" + enc(s.sessionId) + "/recording" }, "Recording"));
    }
    return h("tr", { dataset: { sessionId: s.sessionId, status: s.status } },
      h("td", { class: "mono" }, s.sessionId),
      h("td", {}, h("a", { class: "mono", href: "#/instances/" + enc(s.target) }, s.target)),
      h("td", {}, s.owner),
      h("td", {}, statusBadge(s.status)),
      h("td", {}, s.documentName),
      h("td", {}, when(s.startDate)),
      h("td", {}, when(s.endDate)),
      h("td", {}, s.reason),
      h("td", {}, s.details),
      h("td", { class: "actions" }, actions),
    );
  };

  const stop = poll(async () => {
    let data;
    try {
      data = await api("/sessions", { query: { state: history ? "History" : "Active", maxResults: PAGE, nextToken: state.tokens[state.page] } });
    } catch (e) {
      if (e.status === 400) { err.textContent = e.message; body.replaceChildren(); return; }
      throw e;
    }
    state.tokens[state.page + 1] = data.nextToken || "";
    const list = data.sessions || [];
    body.replaceChildren(...(list.length ? list.map(row)
      : [h("tr", {}, h("td", { colspan: cols.length, class: "muted" }, history ? "No ended sessions." : "No active sessions.")) ]));
    pages.replaceChildren(
      h("button", { disabled: state.page === 0, onclick: () => { state.page--; stop.now(); } }, "‹ Previous"),
      h("span", { class: "muted" }, `Page ${state.page + 1}`),
      h("button", { disabled: !data.nextToken, onclick: () => { state.page++; stop.now(); } }, "Next ›"),
    );
  });
  return stop;
}, { href: "#/sessions", label: "Sessions" });

// ---- #/sessions/new?target=mi-…: start a shell ----

route(/^\/sessions\/new$/, (view, params) => {
  const wanted = params.get("target") || "";
  const target = h("select", { id: "session-target", required: true });
  const reason = h("input", { id: "session-reason", maxlength: 256, placeholder: "why you need a shell (audited)", autocomplete: "off" });
  const start = h("button", { id: "session-start", class: "primary", type: "submit" }, "Start session");
  const msg = h("p", { class: "error", id: "session-error" });
  let gone = false;

  const fill = (nodes) => {
    const ids = nodes.map((n) => n.instanceId);
    const options = nodes.map((n) => h("option", { value: n.instanceId, selected: n.instanceId === wanted },
      n.name || n.hostname ? `${n.instanceId} — ${n.name || n.hostname}` : n.instanceId));
    if (wanted && !ids.includes(wanted)) {
      options.unshift(h("option", { value: wanted, selected: true }, `${wanted} (not online)`));
    }
    if (!options.length) options.push(h("option", { value: "" }, "No online nodes"));
    target.replaceChildren(...options);
  };
  fill([]);

  view.append(
    h("p", {}, h("a", { href: "#/sessions" }, "‹ Session Manager")),
    h("h1", {}, "Start a session"),
    h("form", {
      class: "send",
      onsubmit: async (e) => {
        e.preventDefault();
        msg.textContent = "";
        if (!target.value) { msg.textContent = "Choose a target node."; return; }
        start.disabled = true;
        try {
          const out = await api("/sessions", { method: "POST", body: { target: target.value, reason: reason.value.trim() } });
          if (gone) return;
          const id = out.session.sessionId;
          pending.set(id, { tokenValue: out.tokenValue, streamUrl: out.streamUrl });
          go("#/sessions/" + enc(id) + "/terminal");
        } catch (err) {
          msg.textContent = err.message;
          start.disabled = false;
        }
      },
    },
    h("section", {},
      h("div", { class: "field" }, h("label", { for: "session-target" }, "Target node"), target,
        h("span", { class: "hint muted" }, "Online managed nodes. The shell runs as the node's session user.")),
      h("div", { class: "field" }, h("label", { for: "session-reason" }, "Reason"), reason),
      h("p", { class: "hint muted" }, "Shell sessions are recorded.")),
    msg, start),
  );
  reason.focus();

  api("/instances", { query: { pingStatus: "Online", maxResults: 1000 } })
    .then((data) => { if (!gone) fill(data.instances || []); })
    .catch((e) => banner("Cannot reach the server: " + e.message));
  return () => { gone = true; };
});

// ---- #/sessions/<id>/terminal: the live shell ----

route(/^\/sessions\/([^/]+)\/terminal$/, (view, _params, id) => {
  const page = h("section", { id: "terminal-page", dataset: { state: "connecting", sessionId: id } });
  const status = h("p", { id: "session-status", class: "muted" }, "Connecting…");
  const term = h("div", { id: "terminal", class: "term-frame" });
  const terminateBtn = h("button", { id: "session-terminate", class: "danger" }, "Terminate");
  const resumeBtn = h("button", { id: "session-resume", hidden: true }, "Reconnect");
  const badge = h("span", { id: "session-badge" });
  let gone = false;
  let ws = null;
  let t = null; // {term, fit, dispose}
  let observer = null;
  let exit = null; // {code, signal} once the shell exited
  let ended = false;

  page.append(
    h("p", {}, h("a", { href: "#/sessions" }, "‹ Session Manager")),
    h("div", { class: "titlebar" }, h("h1", { class: "mono" }, id), badge, h("span", { class: "spacer" }), resumeBtn, terminateBtn),
    status, term);
  view.append(page);

  const setStatus = (state, text) => {
    page.dataset.state = state;
    status.textContent = text;
  };

  const end = (reason) => {
    if (ended) return;
    ended = true;
    terminateBtn.disabled = true;
    resumeBtn.hidden = true;
    let text = "Session ended: " + (reason || "connection closed");
    if (exit) text += exit.signal ? ` (signal ${exit.signal})` : ` (exit code ${exit.code})`;
    setStatus("ended", text);
    if (t) t.term.options.cursorBlink = false;
    refreshBadge();
  };

  async function refreshBadge() {
    try {
      const { session } = await api("/sessions/" + enc(id));
      if (gone) return null;
      badge.replaceChildren(statusBadge(session.status));
      badge.dataset.status = session.status;
      return session;
    } catch {
      return null;
    }
  }

  const send = (type, payload) => {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const body = payload || new Uint8Array(0);
    const frame = new Uint8Array(1 + body.length);
    frame[0] = type;
    frame.set(body, 1);
    ws.send(frame);
  };
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();

  const connect = ({ tokenValue, streamUrl }) => {
    exit = null;
    ended = false;
    terminateBtn.disabled = false;
    resumeBtn.hidden = true;
    setStatus("connecting", "Connecting…");
    const { cols, rows } = t.term;
    const url = (location.protocol === "https:" ? "wss" : "ws") + "://" + location.host + streamUrl +
      "?token=" + encodeURIComponent(tokenValue) + "&cols=" + cols + "&rows=" + rows;
    const sock = new WebSocket(url);
    ws = sock;
    sock.binaryType = "arraybuffer";
    sock.onopen = () => {
      if (gone) return;
      setStatus("connected", "Connected.");
      send(FRAME.resize, encoder.encode(JSON.stringify({ cols: t.term.cols, rows: t.term.rows })));
      t.term.focus();
      refreshBadge();
    };
    sock.onmessage = (ev) => {
      if (gone || !(ev.data instanceof ArrayBuffer) || ev.data.byteLength === 0) return;
      const bytes = new Uint8Array(ev.data);
      const payload = bytes.subarray(1);
      switch (bytes[0]) {
        case FRAME.data:
        case FRAME.stderr:
          t.term.write(payload);
          break;
        case FRAME.exit:
          try { exit = JSON.parse(decoder.decode(payload)); } catch { exit = { code: "?" }; }
          break;
        case FRAME.close:
          end(decoder.decode(payload) || (exit ? "the shell exited" : "closed by the server"));
          break;
        default: // unknown frames are ignored: newer servers may add some
      }
    };
    sock.onclose = () => {
      if (gone || ws !== sock) return;
      ws = null;
      if (!ended) {
        if (exit) { end("the shell exited"); return; }
        // No close frame: the network dropped. The session waits for a
        // reconnect during its grace period.
        setStatus("disconnected", "Disconnected. The session stays open for a while: reconnect to resume it.");
        resumeBtn.hidden = false;
        refreshBadge();
      }
    };
  };

  terminateBtn.addEventListener("click", async () => {
    terminateBtn.disabled = true;
    try {
      await terminate(id);
      status.textContent = "Terminating…";
      // The server closes the stream with the reason; if this page holds
      // no stream, the list shows the outcome.
      if (!ws) end("terminated");
    } catch (e) {
      status.textContent = e.message;
      terminateBtn.disabled = false;
    }
  });

  resumeBtn.addEventListener("click", async () => {
    resumeBtn.disabled = true;
    try {
      const out = await api("/sessions/" + enc(id) + "/resume", { method: "POST", body: {} });
      if (!gone) connect(out);
    } catch (e) {
      status.textContent = "Cannot reconnect: " + e.message;
    } finally {
      resumeBtn.disabled = false;
    }
  });

  (async () => {
    try {
      t = await openTerminal(term);
    } catch (e) {
      setStatus("ended", "Cannot load the terminal: " + e.message);
      return;
    }
    if (gone) { t.dispose(); return; }
    t.term.onData((s) => send(FRAME.data, encoder.encode(s)));
    // onBinary carries mouse reports as one byte per character.
    t.term.onBinary((s) => send(FRAME.data, Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff)));
    t.term.onResize(({ cols, rows }) => send(FRAME.resize, encoder.encode(JSON.stringify({ cols, rows }))));
    observer = new ResizeObserver(() => t.fit());
    observer.observe(term);

    const creds = pending.get(id);
    pending.delete(id);
    if (creds) { connect(creds); return; }
    // A reload or a bookmark: the token is gone with the page that
    // started the session. A live session can be resumed.
    const session = await refreshBadge();
    if (!session) { setStatus("ended", "No such session."); return; }
    if (ENDED.has(session.status) || session.status === "Terminating") {
      ended = true;
      terminateBtn.disabled = true;
      setStatus("ended", `Session ended: ${session.details || session.status}`);
      return;
    }
    setStatus("disconnected", "This page holds no connection to the session: reconnect to resume it.");
    resumeBtn.hidden = false;
  })();

  return () => {
    gone = true;
    if (observer) observer.disconnect();
    if (ws) {
      // Leaving the page ends the session, as closing a terminal would.
      send(FRAME.close, encoder.encode("the console closed the session"));
      ws.close(1000);
      ws = null;
    }
    if (t) t.dispose();
  };
});

// ---- #/sessions/<id>/recording: the player ----

const SPEEDS = [1, 2, 8];
const MAX_IDLE = 2; // seconds: longer pauses play as this

// parseCast reads asciicast v2: a JSON header line, then [time, type, data]
// lines. Pauses longer than MAX_IDLE are shortened to it.
export function parseCast(text) {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  if (!lines.length) throw new Error("the recording is empty");
  const header = JSON.parse(lines[0]);
  if (header.version !== 2) throw new Error(`asciicast version ${header.version} is not supported`);
  const events = [];
  let last = 0;
  let at = 0;
  for (const line of lines.slice(1)) {
    let ev;
    try { ev = JSON.parse(line); } catch { continue; } // a cut final line
    if (!Array.isArray(ev) || ev.length < 3 || typeof ev[0] !== "number") continue;
    at += Math.min(Math.max(ev[0] - last, 0), MAX_IDLE);
    last = ev[0];
    events.push({ at, type: ev[1], data: String(ev[2]) });
  }
  return { header, events, duration: at };
}

route(/^\/sessions\/([^/]+)\/recording$/, (view, _params, id) => {
  const player = h("section", { id: "recording-player", dataset: { state: "loading", sessionId: id } });
  const screen = h("div", { class: "term-frame recording" });
  const play = h("button", { id: "recording-play", class: "primary", disabled: true }, "Play");
  const speed = h("select", { id: "recording-speed" }, SPEEDS.map((s) => h("option", { value: s }, `${s}×`)));
  const clock = h("span", { id: "recording-time", class: "muted mono" });
  const msg = h("p", { class: "muted", id: "recording-info" }, "Loading the recording…");
  // The recording needs the API token, which a plain link would not send:
  // the download serves the copy already fetched.
  const download = h("a", { class: "button", id: "recording-download", download: id + ".cast", hidden: true }, "Download .cast");
  let blobURL = "";
  let gone = false;
  let t = null;
  let cast = null;
  let next = 0; // index of the next event to play
  let pos = 0; // playback position, seconds of the (idle-capped) recording
  let anchor = null; // {wall, pos} while playing
  let timer = null;

  player.append(
    h("p", {}, h("a", { href: "#/sessions?state=History" }, "‹ Session history")),
    h("div", { class: "titlebar" }, h("h1", {}, "Recording of ", h("span", { class: "mono" }, id))),
    msg,
    h("div", { class: "toolbar" }, play, h("label", {}, "Speed ", speed), clock,
      download),
    screen);
  view.append(player);

  const fmt = (s) => `${s.toFixed(1)} s`;
  const showClock = () => { clock.textContent = cast ? `${fmt(Math.min(pos, cast.duration))} / ${fmt(cast.duration)}` : ""; };
  const now = () => (anchor ? anchor.pos + ((performance.now() - anchor.wall) / 1000) * Number(speed.value) : pos);

  const apply = (ev) => {
    if (ev.type === "o") t.term.write(ev.data);
    else if (ev.type === "r") {
      const m = /^(\d+)x(\d+)$/.exec(ev.data);
      if (m) t.term.resize(Math.max(2, Number(m[1])), Math.max(1, Number(m[2])));
    }
    // "i" (input) events are not shown: the echo is in the output.
  };

  const tick = () => {
    timer = null;
    if (gone || !anchor) return;
    pos = now();
    while (next < cast.events.length && cast.events[next].at <= pos) apply(cast.events[next++]);
    showClock();
    if (next >= cast.events.length) {
      anchor = null;
      pos = cast.duration;
      showClock();
      play.textContent = "Replay";
      player.dataset.state = "ended";
      return;
    }
    const wait = ((cast.events[next].at - pos) / Number(speed.value)) * 1000;
    timer = setTimeout(tick, Math.max(0, Math.min(wait, 250)));
  };

  const pause = () => {
    pos = now();
    anchor = null;
    clearTimeout(timer);
    timer = null;
    play.textContent = "Play";
    player.dataset.state = "paused";
    showClock();
  };

  const resume = () => {
    if (next >= cast.events.length) { // replay from the start
      t.term.reset();
      t.term.resize(cast.header.width || 80, cast.header.height || 24);
      next = 0;
      pos = 0;
    }
    anchor = { wall: performance.now(), pos };
    play.textContent = "Pause";
    player.dataset.state = "playing";
    tick();
  };

  play.addEventListener("click", () => (anchor ? pause() : resume()));
  speed.addEventListener("change", () => {
    if (!anchor) return;
    pos = now();
    anchor = { wall: performance.now(), pos };
    clearTimeout(timer);
    tick();
  });

  (async () => {
    try {
      const { text } = await apiText("/sessions/" + enc(id) + "/recording");
      cast = parseCast(text);
      if (gone) return;
      blobURL = URL.createObjectURL(new Blob([text], { type: "application/x-asciicast" }));
      download.href = blobURL;
      download.hidden = false;
      t = await openTerminal(screen, { fit: false, cols: cast.header.width || 80, rows: cast.header.height || 24, disableStdin: true, cursorBlink: false });
      if (gone) { t.dispose(); return; }
    } catch (e) {
      if (gone) return;
      msg.textContent = "Cannot play the recording: " + e.message;
      msg.className = "error";
      player.dataset.state = "error";
      return;
    }
    const start = cast.header.timestamp ? new Date(cast.header.timestamp * 1000).toLocaleString() : "";
    msg.textContent = `${cast.header.width}×${cast.header.height}${start ? ", recorded " + start : ""}. Pauses longer than ${MAX_IDLE} s are shortened.`;
    play.disabled = false;
    player.dataset.state = "ready";
    showClock();
  })();

  return () => {
    gone = true;
    clearTimeout(timer);
    if (blobURL) URL.revokeObjectURL(blobURL);
    if (t) t.dispose();
  };
});
