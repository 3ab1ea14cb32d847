// Terminals for the Session Manager pages: xterm.js (vendor/xterm, loaded on
// first use so other pages never fetch it) made to work under the console's
// Content-Security-Policy.
//
// xterm.js writes the CSS it computes at run time (cell size, theme colours)
// into <style> elements, and truecolour cells into style="" attributes. The
// CSP (style-src 'self') refuses both: the terminal would lose its layout and
// every render would log a violation. The same CSS applied through CSSOM is
// allowed, so on first use this module:
//   - hands script that asks for a <style> element an inert <template>
//     whose text goes to a constructed stylesheet (document.adoptedStyleSheets)
//     instead: even an empty <style> element is a CSP violation;
//   - turns setAttribute("style", css) into element.style.cssText = css.
// Neither lets data become CSS: the console never builds markup from data
// (h() only makes text nodes), and markup in the page is still held to the
// CSP. Only script could already do the same through CSSOM.

let xterm = null; // Promise of {Terminal, FitAddon}

// Sheets of the <style> elements xterm created, by element.
const sheets = new Map();

function allowScriptStyles() {
  const createElement = document.createElement;
  document.createElement = function (tag, options) {
    if (String(tag).toLowerCase() !== "style") return createElement.call(this, tag, options);
    const el = createElement.call(this, "template");
    el.dataset.style = ""; // says what it stands for, in the inspector
    adoptStyle(el);
    return el;
  };
  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (String(name).toLowerCase() === "style" && this instanceof HTMLElement) {
      this.style.cssText = String(value);
      return;
    }
    setAttribute.call(this, name, value);
  };
}

function adoptStyle(el) {
  const sheet = new CSSStyleSheet();
  let text = "";
  sheets.set(el, sheet);
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
  Object.defineProperty(el, "textContent", {
    configurable: true,
    get: () => text,
    set: (v) => {
      text = v == null ? "" : String(v);
      sheet.replaceSync(text);
    },
  });
}

// dropDetachedStyles forgets the sheets of style elements no longer in the
// document (their terminal was disposed).
function dropDetachedStyles() {
  const gone = new Set();
  for (const [el, sheet] of sheets) {
    if (!el.isConnected) {
      gone.add(sheet);
      sheets.delete(el);
    }
  }
  if (gone.size) document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => !gone.has(s));
}

function load() {
  if (!xterm) {
    allowScriptStyles();
    xterm = Promise.all([import("./vendor/xterm/xterm.mjs"), import("./vendor/xterm/addon-fit.mjs")])
      .then(([x, fit]) => ({ Terminal: x.Terminal, FitAddon: fit.FitAddon }));
  }
  return xterm;
}

export const THEME = { background: "#0f172a", foreground: "#e2e8f0", cursor: "#e2e8f0" };

// openTerminal opens an xterm.js terminal in container, sized to fit it
// when fit is true (else at cols×rows). It returns {term, fit(), dispose()}.
export async function openTerminal(container, { fit = true, cols = 80, rows = 24, ...options } = {}) {
  const { Terminal, FitAddon } = await load();
  const term = new Terminal({
    cols, rows, cursorBlink: true, scrollback: 5000, convertEol: false,
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, monospace", fontSize: 14, theme: THEME, ...options,
  });
  const fitter = new FitAddon();
  term.loadAddon(fitter);
  term.open(container);
  const doFit = () => {
    if (!fit || !container.isConnected) return;
    try { fitter.fit(); } catch { /* not laid out yet */ }
  };
  doFit();
  return {
    term,
    fit: doFit,
    dispose() {
      term.dispose();
      dropDetachedStyles();
    },
  };
}
