package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetops/fleetops/internal/browsertest"
)

// TestFleet is the foundation's end-to-end story on both databases: three
// real agents register from one activation, go Online, one is killed and
// turns ConnectionLost within the window, comes back Online with the same
// ID, and the exhausted activation refuses a fourth host.
func TestFleet(t *testing.T) {
	for _, dialect := range storetestDialects() {
		t.Run(dialect, func(t *testing.T) {
			testFleet(t, dialect)
		})
	}
}

func testFleet(t *testing.T, dialect string) {
	s := startStack(t, stackOptions{dialect: dialect, heartbeat: "1s", connectionLostAfter: "3s"})

	var act activation
	s.cli(&act, "activation", "create", "--registration-limit", "3", "--tag", "Env=e2e", "--description", "e2e fleet")
	if act.ActivationID == "" || len(act.ActivationCode) < 20 {
		t.Fatalf("activation create returned %+v", act)
	}
	if !strings.Contains(act.InstallCommand, "/install.sh") || !strings.Contains(act.InstallCommand, act.ActivationID) {
		t.Errorf("install command %q does not install with this activation", act.InstallCommand)
	}

	agents := make([]*agentProc, 3)
	for i := range agents {
		a, err := s.registerAgent(act)
		if err != nil {
			t.Fatalf("register agent %d: %v", i, err)
		}
		agents[i] = a
		s.runAgent(a)
	}
	ids := map[string]bool{}
	for _, a := range agents {
		if ids[a.instanceID] {
			t.Fatalf("two agents got the same instance ID %s", a.instanceID)
		}
		ids[a.instanceID] = true
	}

	waitStatus(t, s, agents, "Online", 30*time.Second)
	for _, in := range s.instances() {
		if in.Tags["Env"] != "e2e" {
			t.Errorf("node %s has tags %v, want the activation's Env=e2e", in.InstanceID, in.Tags)
		}
		if in.Platform == "" || in.Hostname == "" {
			t.Errorf("node %s lacks host facts: %+v", in.InstanceID, in)
		}
	}

	// Registering again with the same state dir is idempotent: no
	// registration is used and the identity stays.
	out, err := exec.Command(bins.agent, "register", "--server", s.url,
		"--activation-id", act.ActivationID, "--activation-code", act.ActivationCode,
		"--state-dir", agents[0].stateDir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), agents[0].instanceID) {
		t.Errorf("re-register with the same state dir: err=%v out=%s", err, out)
	}

	// The activation is exhausted: a fourth host is refused, clearly.
	if _, err := s.registerAgent(act); err == nil || !strings.Contains(err.Error(), "registration limit") {
		t.Errorf("fourth registration: got %v, want a refusal naming the registration limit", err)
	}
	var acts struct {
		Activations []activation `json:"activations"`
	}
	s.cli(&acts, "activation", "list")
	if len(acts.Activations) != 1 || acts.Activations[0].RegistrationsCount != 3 {
		t.Errorf("activation list = %+v, want one activation with 3 registrations", acts.Activations)
	}

	// Kill one agent hard: ConnectionLost within the window.
	victim := agents[1]
	victim.proc.stop(syscall.SIGKILL)
	waitStatus(t, s, []*agentProc{victim}, "ConnectionLost", 15*time.Second)
	waitStatus(t, s, []*agentProc{agents[0], agents[2]}, "Online", time.Second)

	// Restart it: Online again, same instance ID.
	s.runAgent(victim)
	waitStatus(t, s, agents, "Online", 30*time.Second)
	if n := len(s.instances()); n != 3 {
		t.Errorf("fleet has %d nodes after the restart, want 3", n)
	}

	checkMetrics(t, s)

	// The console lists the three nodes, in a real headless Chromium.
	b := browsertest.New(t)
	b.Navigate(s.url + "/#/login?token=" + s.token)
	b.Navigate(s.url + "/#/instances")
	for _, a := range agents {
		b.WaitVisible(fmt.Sprintf(`[data-instance-id=%q]`, a.instanceID))
	}

	// Deregistration turns the node Inactive and stops its agent for good.
	s.cli(nil, "instance", "deregister", agents[2].instanceID)
	waitStatus(t, s, agents[2:], "Inactive", 5*time.Second)
	eventually(t, 15*time.Second, "deregistered agent exits", func() error {
		if !agents[2].proc.exited() {
			return fmt.Errorf("agent still running")
		}
		return nil
	})
}

func waitStatus(t *testing.T, s *stack, agents []*agentProc, status string, within time.Duration) {
	t.Helper()
	eventually(t, within, "nodes "+status, func() error {
		got := s.instances()
		for _, a := range agents {
			if got[a.instanceID].PingStatus != status {
				return fmt.Errorf("%s is %q, want %s", a.instanceID, got[a.instanceID].PingStatus, status)
			}
		}
		return nil
	})
}

func checkMetrics(t *testing.T, s *stack) {
	t.Helper()
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		"fleetops_gateway_connected_agents 3",
		`fleetops_nodes{ping_status="Online"} 3`,
		`fleetops_registrations_total{outcome="registered"} 3`,
		`fleetops_registrations_total{outcome="exhausted"} 1`,
		"fleetops_api_request_duration_seconds_bucket",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestDevStack checks `fleetops dev`, what `make run` starts: it brings up
// its own Temporal dev server from bin/temporal, registers this machine, and
// a second start finds the same fleet.
func TestDevStack(t *testing.T) {
	dataDir := t.TempDir()
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	args := []string{"dev", "--data-dir", dataDir, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--temporal-binary", bins.temporal,
		"--temporal-port", fmt.Sprint(freePort(t)), "--temporal-ui-port", fmt.Sprint(freePort(t)),
		"--heartbeat-interval", "1s", "--connection-lost-after", "3s"}

	first := startDev(t, url, dataDir, args)
	nodes := first.instances()
	if len(nodes) != 1 {
		t.Fatalf("dev stack has %d nodes, want the local agent only", len(nodes))
	}
	var localID string
	for id := range nodes {
		localID = id
	}
	waitStatus(t, first, []*agentProc{{instanceID: localID}}, "Online", 30*time.Second)
	first.server.stop(syscall.SIGINT)
	if first.server.err != nil {
		t.Errorf("dev stack did not stop cleanly on Ctrl-C: %v", first.server.err)
	}

	second := startDev(t, url, dataDir, args)
	waitStatus(t, second, []*agentProc{{instanceID: localID}}, "Online", 30*time.Second)
	if n := len(second.instances()); n != 1 {
		t.Errorf("after a restart the dev stack has %d nodes, want the same one", n)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "temporal.db")); err != nil {
		t.Errorf("temporal history file: %v", err)
	}

	// The local agent is a whole node: it runs commands and sessions.
	if out, stderr, err := second.tryCLI("command", "send", "--document", "AWS-RunShellScript", "--instance-ids", localID,
		"--param", "commands=echo dev-command-ok", "--timeout-seconds", "30", "--follow"); err != nil || !strings.Contains(out, "dev-command-ok") {
		t.Errorf("command on the local agent: %v, %q %q", err, out, stderr)
	}
	if out, stderr, err := second.tryCLI("session", "start", "--target", localID, "--command", "echo dev-session-ok"); err != nil || !strings.Contains(out, "dev-session-ok") {
		t.Errorf("session on the local agent: %v, %q %q", err, out, stderr)
	}
}

func startDev(t *testing.T, url, dataDir string, args []string) *stack {
	t.Helper()
	s := &stack{t: t, url: url, dataDir: dataDir}
	s.server = startProc(t, "dev", bins.fleetops, args...)
	s.waitReady()
	b, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatalf("admin token: %v", err)
	}
	s.token = strings.TrimSpace(string(b))
	eventually(t, 30*time.Second, "local agent registered", func() error {
		if n := len(s.instances()); n != 1 {
			return fmt.Errorf("%d nodes", n)
		}
		return nil
	})
	return s
}

// storetestDialects runs SQLite always and PostgreSQL when configured.
func storetestDialects() []string {
	d := []string{"sqlite"}
	if os.Getenv("FLEETOPS_TEST_POSTGRES_URL") != "" {
		d = append(d, "postgres")
	}
	return d
}
