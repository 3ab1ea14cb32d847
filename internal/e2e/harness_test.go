// Package e2e runs the real binaries against a real Temporal dev server, real
// databases and real agent processes.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/fleetops/fleetops/internal/store/storetest"
	"github.com/fleetops/fleetops/internal/temporaldev"
)

// bins holds the binaries built once for the whole package.
var bins struct {
	dir      string
	fleetops string
	agent    string
	temporal string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "fleetops-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bins.dir = dir
	bins.fleetops = filepath.Join(dir, "fleetops")
	bins.agent = filepath.Join(dir, "fleetops-agent")
	for out, pkg := range map[string]string{bins.fleetops: "./cmd/fleetops", bins.agent: "./cmd/fleetops-agent"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: build %s: %v\n%s", pkg, err, b)
			return 1
		}
	}
	bins.temporal = filepath.Join(root, "bin", "temporal")
	if _, err := os.Stat(bins.temporal); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: bin/temporal is missing: run `make build` (it installs the pinned Temporal CLI)")
		return 1
	}
	return m.Run()
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// freePort returns a TCP port free at the time of the call.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startTemporal starts a real Temporal dev server from bin/temporal.
func startTemporal(t testing.TB) string {
	t.Helper()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	srv, err := testsuite.StartDevServer(context.Background(), testsuite.DevServerOptions{
		ExistingPath:  bins.temporal,
		ClientOptions: &client.Options{HostPort: addr, Namespace: "default"},
		LogLevel:      "error",
		ExtraArgs:     temporaldev.TunedArgs(),
		Stdout:        io.Discard,
		Stderr:        io.Discard,
	})
	if err != nil {
		t.Fatalf("start temporal dev server: %v", err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return addr
}

// proc is a running child process whose output is kept for failure reports.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startProc(t testing.TB, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = cleanEnv()
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", name, p.out.String())
		}
	})
	return p
}

// cleanEnv drops FLEETOPS_* variables of the developer's shell so a test
// sees only the flags it passes.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLEETOPS_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *proc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stack is a running fleetops server with its data dir and admin token.
type stack struct {
	t            testing.TB
	url          string
	dataDir      string
	token        string
	server       *proc
	databaseURL  string
	temporalAddr string
}

type stackOptions struct {
	dialect             string // "sqlite" or "postgres"
	heartbeat           string
	connectionLostAfter string
	// serverArgs are extra flags for `fleetops server`.
	serverArgs []string
	// advertise passes --advertise-url (the server's own URL), as each of
	// several replicas needs.
	advertise bool
}

// startStack starts Temporal and `fleetops server` against a fresh database.
func startStack(t testing.TB, o stackOptions) *stack {
	t.Helper()
	temporalAddr := startTemporal(t)
	dataDir := t.TempDir()
	port := freePort(t)
	s := &stack{t: t, url: "http://127.0.0.1:" + strconv.Itoa(port), dataDir: dataDir,
		databaseURL: storetest.URL(t, o.dialect), temporalAddr: temporalAddr}
	args := []string{"server",
		"--data-dir", dataDir,
		"--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--database-url", s.databaseURL,
		"--temporal-address", temporalAddr,
		"--heartbeat-interval", o.heartbeat,
		"--connection-lost-after", o.connectionLostAfter,
		"--agent-binary-dir", bins.dir,
	}
	if o.advertise {
		args = append(args, "--advertise-url", s.url)
	}
	s.server = startProc(t, "server", bins.fleetops, append(args, o.serverArgs...)...)
	s.waitReady()
	b, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatalf("admin token: %v", err)
	}
	s.token = strings.TrimSpace(string(b))
	return s
}

func (s *stack) waitReady() {
	s.t.Helper()
	eventually(s.t, 60*time.Second, "server ready", func() error {
		if s.server.exited() {
			return fmt.Errorf("server exited: %v", s.server.err)
		}
		resp, err := http.Get(s.url + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("readyz %d: %s", resp.StatusCode, b)
		}
		return nil
	})
}

// cli runs `fleetops ARGS --server URL --token T -o json` and decodes stdout.
func (s *stack) cli(out any, args ...string) {
	s.t.Helper()
	stdout, stderr, err := s.tryCLI(args...)
	if err != nil {
		s.t.Fatalf("fleetops %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout, stderr)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(stdout), out); err != nil {
			s.t.Fatalf("fleetops %s: decode %q: %v", strings.Join(args, " "), stdout, err)
		}
	}
}

func (s *stack) tryCLI(args ...string) (string, string, error) {
	return s.tryCLIWithInput("", args...)
}

// tryCLIWithInput is tryCLI with stdin piped from input.
func (s *stack) tryCLIWithInput(input string, args ...string) (string, string, error) {
	args = append(args, "--server", s.url, "--token", s.token, "-o", "json")
	cmd := exec.Command(bins.fleetops, args...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// api calls the operator API directly and returns the body.
func (s *stack) api(method, path string) ([]byte, int, error) {
	req, err := http.NewRequest(method, s.url+path, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode >= 300 {
		err = fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return b, resp.StatusCode, err
}

type activation struct {
	ActivationID       string `json:"activationId"`
	ActivationCode     string `json:"activationCode"`
	RegistrationsCount int    `json:"registrationsCount"`
	InstallCommand     string `json:"installCommand"`
}

type instance struct {
	InstanceID string            `json:"instanceId"`
	PingStatus string            `json:"pingStatus"`
	Hostname   string            `json:"hostname"`
	Platform   string            `json:"platformName"`
	Tags       map[string]string `json:"tags"`
}

func (s *stack) instances() map[string]instance {
	s.t.Helper()
	var out struct {
		Instances []instance `json:"instances"`
	}
	s.cli(&out, "instance", "list", "--max-results", "1000")
	m := map[string]instance{}
	for _, in := range out.Instances {
		m[in.InstanceID] = in
	}
	return m
}

// agentProc is a registered fleetops-agent with its own state dir.
type agentProc struct {
	stateDir   string
	instanceID string
	proc       *proc
}

func (s *stack) registerAgent(a activation) (*agentProc, error) {
	s.t.Helper()
	dir := filepath.Join(s.t.TempDir(), "agent")
	out, err := exec.Command(bins.agent, "register", "--server", s.url,
		"--activation-id", a.ActivationID, "--activation-code", a.ActivationCode,
		"--state-dir", dir).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, out)
	}
	var id struct {
		InstanceID string `json:"instanceId"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "identity.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, err
	}
	return &agentProc{stateDir: dir, instanceID: id.InstanceID}, nil
}

func (s *stack) runAgent(a *agentProc) {
	s.t.Helper()
	a.proc = startProc(s.t, "agent "+a.instanceID, bins.agent, "run", "--state-dir", a.stateDir)
}

// eventually retries fn until it returns nil or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, within, err)
}

func scanLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
