package ui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fleetops/fleetops/ui"
)

func TestHandlerServesTheConsole(t *testing.T) {
	srv := httptest.NewServer(ui.Handler())
	defer srv.Close()

	tests := []struct {
		path        string
		contentType string
		contains    string
	}{
		{"/", "text/html", `<script type="module" src="/main.js">`},
		{"/app.js", "text/javascript", "export async function api"},
		{"/pages/instances.js", "text/javascript", "data"},
		{"/pages/commands.js", "text/javascript", "/commands"},
		{"/pages/send.js", "text/javascript", "/commands"},
		{"/style.css", "text/css", ".status.Online"},
		{"/style.css", "text/css", ".status.Success"},
		{"/style.css", "text/css", ".status.Connected"},
		{"/pages/sessions.js", "text/javascript", "/sessions"},
		{"/terminal.js", "text/javascript", "adoptedStyleSheets"},
		{"/main.js", "text/javascript", `import "./pages/sessions.js"`},
		// xterm.js is vendored and served by the console itself; the ES
		// module builds only load with a JavaScript MIME type (nosniff).
		{"/vendor/xterm/xterm.mjs", "text/javascript", "export{"},
		{"/vendor/xterm/addon-fit.mjs", "text/javascript", "FitAddon"},
		{"/vendor/xterm/xterm.css", "text/css", ".xterm"},
		{"/vendor/xterm/LICENSE", "", "MIT"},
		{"/", "text/html", `href="/vendor/xterm/xterm.css"`},
		// Unknown paths serve the shell, so a reload on any console URL works.
		{"/instances/mi-0123456789abcdef0", "text/html", "<main id=\"view\">"},
		{"/pages", "text/html", "<main id=\"view\">"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("Content-Type %q, want %s", ct, tt.contentType)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("Content-Security-Policy %q does not restrict scripts", csp)
			}
			if !strings.Contains(string(body), tt.contains) {
				t.Errorf("body does not contain %q", tt.contains)
			}
		})
	}
}
