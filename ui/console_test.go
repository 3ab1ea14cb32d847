package ui_test

import (
	"context"
	"testing"
	"time"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/browsertest"
)

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
