package ui_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/api"
	"github.com/fleetops/fleetops/internal/browsertest"
	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
	"github.com/fleetops/fleetops/ui"
)

type noGateway struct{}

func (noGateway) Serve(w http.ResponseWriter, _ *http.Request, _ string) {
	w.WriteHeader(http.StatusTeapot)
}
func (noGateway) Kick(string, string) {}

// console is the real API and console over a real SQLite store.
type console struct {
	t     *testing.T
	st    *store.Store
	url   string
	token string
}

func newConsole(t *testing.T) *console {
	t.Helper()
	st := storetest.OpenDialect(t, "sqlite")
	token, err := api.BootstrapAdminToken(context.Background(), st, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{
		Store: st, Gateway: noGateway{}, Registry: prometheus.NewRegistry(),
		Console: ui.Handler(), PublicURL: "http://fleet.test",
		TemporalUIURL: "http://127.0.0.1:8233", Version: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &console{t: t, st: st, url: srv.URL, token: token}
}

func (c *console) call(method, path string, body any, out any) {
	c.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, c.url+path, strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		c.t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			c.t.Fatal(err)
		}
	}
}

// register adds a node through the agent registration API.
func (c *console) register(host agentproto.HostInfo) string {
	c.t.Helper()
	var act struct{ ActivationID, ActivationCode string }
	c.call("POST", "/v1/activations", map[string]any{"registrationLimit": 1}, &act)
	var reg agentproto.RegisterResponse
	c.call("POST", agentproto.PathRegister, agentproto.RegisterRequest{
		ActivationID: act.ActivationID, ActivationCode: act.ActivationCode, Host: host}, &reg)
	return reg.InstanceID
}

func TestConsoleInChromium(t *testing.T) {
	c := newConsole(t)
	debian := c.register(agentproto.HostInfo{Hostname: "db-1", PlatformType: "Linux", PlatformName: "Debian GNU/Linux", PlatformVersion: "12"})
	// A hostile hostname must show up as text, never as markup.
	hostile := c.register(agentproto.HostInfo{Hostname: `<img src=x onerror="document.body.dataset.pwned=1">`,
		PlatformType: "Linux", PlatformName: "Ubuntu", PlatformVersion: "24.04"})
	c.call("POST", "/v1/instances/"+debian+"/tags", map[string]any{"tags": map[string]string{"Env": "prod"}}, nil)

	b := browsertest.New(t)

	// Without a token the console asks for one; the login form signs in.
	b.Navigate(c.url + "/#/instances")
	b.WaitVisible("#token")
	b.SetValue("#token", c.token)
	b.Click(`form.login button[type=submit]`)
	b.WaitVisible(`[data-instance-id="` + debian + `"]`)
	b.WaitVisible(`[data-instance-id="` + hostile + `"]`)
	if got := b.Text(`[data-instance-id="` + debian + `"] .tag`); got != "Env=prod" {
		t.Errorf("tag cell %q, want Env=prod", got)
	}
	if pwned := browsertest.Eval[bool](b, `document.body.dataset.pwned === "1" || !!document.querySelector("#view img")`); pwned {
		t.Error("a hostname was rendered as HTML")
	}

	// The list follows the fleet live, without a reload: registered nodes
	// are ConnectionLost until they connect, Online on their first heartbeat,
	// and ConnectionLost again when they stop pinging.
	b.WaitVisible(`[data-instance-id="` + debian + `"][data-ping-status="ConnectionLost"]`)
	if _, err := c.st.TouchInstances(context.Background(), []string{debian, hostile}, time.Now()); err != nil {
		t.Fatal(err)
	}
	b.WaitVisible(`[data-instance-id="` + debian + `"][data-ping-status="Online"]`)
	if _, err := c.st.MarkConnectionLost(context.Background(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b.WaitVisible(`[data-instance-id="` + debian + `"][data-ping-status="ConnectionLost"]`)

	// Filters go to the server.
	b.Navigate(c.url + "/#/instances?tag=Env%3Dprod")
	b.WaitVisible(`[data-instance-id="` + debian + `"]`)
	if n := b.Count(`[data-instance-id]`); n != 1 {
		t.Errorf("tag filter shows %d nodes, want 1", n)
	}

	// Fleet overview: counts by status and platform, and the Temporal link.
	b.Navigate(c.url + "/#/fleet")
	b.WaitText("#fleet-total", "2")
	b.WaitText(`[data-count="ConnectionLost"]`, "2")
	b.WaitVisible(`[data-platform="Ubuntu"]`)
	if href := browsertest.Eval[string](b, `document.querySelector("#temporal-link").href`); href != "http://127.0.0.1:8233/" {
		t.Errorf("Temporal UI link %q", href)
	}

	// A node's page.
	b.Navigate(c.url + "/#/instances/" + debian)
	b.WaitText("#instance-props", "Debian GNU/Linux 12")

	// Direct sign-in link, as `fleetops dev` prints it, in a fresh browser.
	b2 := browsertest.New(t)
	b2.Navigate(c.url + "/#/login?token=" + c.token)
	b2.Navigate(c.url + "/#/instances")
	b2.WaitVisible(`[data-instance-id="` + hostile + `"]`)

	if errs := append(b.ConsoleErrors(), b2.ConsoleErrors()...); len(errs) > 0 {
		t.Errorf("page errors: %q", errs)
	}
}
