package ui_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/api"
	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
	"github.com/fleetops/fleetops/ui"
	"github.com/fleetops/fleetops/workflows"
)

type noGateway struct{}

func (noGateway) Serve(w http.ResponseWriter, _ *http.Request, _ string) {
	w.WriteHeader(http.StatusTeapot)
}
func (noGateway) Kick(string, string)     {}
func (noGateway) IsConnected(string) bool { return false }

// fakeWorkflows records the commands the API starts and cancels; the
// console tests check what the console sent, the e2e suite runs the real
// workflow.
type fakeWorkflows struct {
	mu      sync.Mutex
	started []workflows.RunCommandInput
	cancels map[string][]workflows.CancelRequest
}

func (f *fakeWorkflows) StartCommand(_ context.Context, in workflows.RunCommandInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, in)
	return nil
}

func (f *fakeWorkflows) StartSession(context.Context, workflows.SessionInput) error { return nil }
func (f *fakeWorkflows) TerminateSession(context.Context, string, string) error     { return nil }

func (f *fakeWorkflows) CancelCommand(_ context.Context, id string, req workflows.CancelRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cancels == nil {
		f.cancels = map[string][]workflows.CancelRequest{}
	}
	f.cancels[id] = append(f.cancels[id], req)
	return nil
}

// Started returns the inputs of the commands started so far.
func (f *fakeWorkflows) Started() []workflows.RunCommandInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]workflows.RunCommandInput(nil), f.started...)
}

// Cancels returns how many cancel requests command id received.
func (f *fakeWorkflows) Cancels(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.cancels[id])
}

// console is the real API and console over a real SQLite store, with
// recording fake workflows.
type console struct {
	t     *testing.T
	st    *store.Store
	wf    *fakeWorkflows
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
	wf := &fakeWorkflows{}
	h, err := api.New(api.Config{
		Store: st, Gateway: noGateway{}, Registry: prometheus.NewRegistry(), Workflows: wf,
		Console: ui.Handler(), PublicURL: "http://fleet.test",
		TemporalUIURL: "http://127.0.0.1:8233", Version: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &console{t: t, st: st, wf: wf, url: srv.URL, token: token}
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

// eventually fails t unless cond holds within 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
