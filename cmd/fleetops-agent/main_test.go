package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/agent"
	"github.com/fleetops/fleetops/agent/agentproto"
)

const (
	instanceID = "mi-00000000000000abc"
	secret     = "cli-secret-never-printed"
	actID      = "act-42"
	actCode    = "cli-activation-code-never-printed"
)

// gateway is a minimal fake of the server's agent endpoints.
type gateway struct {
	srv           *httptest.Server
	refuse        string // refusal message, if set
	registrations atomic.Int32
	hellos        chan agentproto.Hello
	// serve, if set, takes over each welcomed connection.
	serve func(ctx context.Context, ws *websocket.Conn)
}

func newGateway(t testing.TB) *gateway {
	t.Helper()
	g := &gateway{hellos: make(chan agentproto.Hello, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+agentproto.PathRegister, func(w http.ResponseWriter, r *http.Request) {
		var req agentproto.RegisterRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		if g.refuse != "" || req.ActivationID != actID || req.ActivationCode != actCode {
			msg := g.refuse
			if msg == "" {
				msg = "invalid activation code"
			}
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(agentproto.ErrorResponse{Error: agentproto.ErrorBody{Code: "ActivationRefused", Message: msg}})
			return
		}
		g.registrations.Add(1)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(agentproto.RegisterResponse{InstanceID: instanceID, Secret: secret})
	})
	mux.HandleFunc("GET "+agentproto.PathConnect, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+secret || r.Header.Get(agentproto.HeaderInstanceID) != instanceID {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		_, b, err := ws.Read(r.Context())
		if err != nil {
			return
		}
		var env agentproto.Envelope
		var h agentproto.Hello
		if json.Unmarshal(b, &env) != nil || env.Decode(&h) != nil {
			return
		}
		welcome, _ := agentproto.NewEnvelope(agentproto.TypeWelcome, agentproto.Welcome{ProtocolVersion: 1, HeartbeatSeconds: 30, ServerTime: time.Now()})
		wb, _ := json.Marshal(welcome)
		_ = ws.Write(r.Context(), websocket.MessageText, wb)
		g.hellos <- h
		if g.serve != nil {
			g.serve(r.Context(), ws)
			return
		}
		for {
			if _, _, err := ws.Read(r.Context()); err != nil {
				return
			}
		}
	})
	g.srv = httptest.NewServer(mux)
	t.Cleanup(g.srv.Close)
	return g
}

// result is one in-process run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

// lockedBuffer is written by the CLI goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func runCLI(t testing.TB, ctx context.Context, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr lockedBuffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code := execute(ctx, args, &stdout, &stderr, lookup)
	r := result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	for _, s := range []string{r.stdout, r.stderr} {
		assert.NotContains(t, s, secret, "output leaks the node secret")
		assert.NotContains(t, s, actCode, "output leaks the activation code")
	}
	return r
}

func registerArgs(g *gateway, dir string) []string {
	return []string{"register", "--server", g.srv.URL, "--activation-id", actID, "--activation-code", actCode, "--state-dir", dir}
}

func TestRegisterWritesStateAndIsIdempotent(t *testing.T) {
	g := newGateway(t)
	dir := filepath.Join(t.TempDir(), "state")

	r := runCLI(t, context.Background(), nil, registerArgs(g, dir)...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "registered as "+instanceID+"\n", r.stdout)

	st, err := os.Stat(filepath.Join(dir, agent.IdentityFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	st, err = os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	id, err := agent.LoadIdentity(dir)
	require.NoError(t, err)
	assert.Equal(t, instanceID, id.InstanceID)
	assert.Equal(t, g.srv.URL, id.ServerURL)
	raw, err := os.ReadFile(filepath.Join(dir, agent.IdentityFile))
	require.NoError(t, err)
	assert.NotContains(t, string(raw), actCode, "the activation code is not stored")

	// Again, even with a wrong code: no server call, same identity.
	args := registerArgs(g, dir)
	args[6] = "whatever"
	r = runCLI(t, context.Background(), nil, args...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "already registered as "+instanceID+"\n", r.stdout)
	assert.EqualValues(t, 1, g.registrations.Load())
}

func TestRegisterRefusedExitsTwoAndWritesNothing(t *testing.T) {
	for _, msg := range []string{"activation expired", "activation registration limit reached"} {
		t.Run(msg, func(t *testing.T) {
			g := newGateway(t)
			g.refuse = msg
			dir := filepath.Join(t.TempDir(), "state")
			r := runCLI(t, context.Background(), nil, registerArgs(g, dir)...)
			assert.Equal(t, exitRefused, r.code)
			assert.Contains(t, r.stderr, msg)
			assert.Empty(t, r.stdout)
			_, err := os.Stat(filepath.Join(dir, agent.IdentityFile))
			assert.ErrorIs(t, err, os.ErrNotExist)
		})
	}
	t.Run("wrong code", func(t *testing.T) {
		g := newGateway(t)
		dir := t.TempDir()
		args := registerArgs(g, dir)
		args[6] = "not-the-code"
		r := runCLI(t, context.Background(), nil, args...)
		assert.Equal(t, exitRefused, r.code)
		assert.Contains(t, r.stderr, "invalid activation code")
		assert.NotContains(t, r.stderr, "not-the-code")
	})
}

func TestRegisterFromEnvironment(t *testing.T) {
	g := newGateway(t)
	dir := filepath.Join(t.TempDir(), "from-env")
	env := map[string]string{
		"FLEETOPS_AGENT_SERVER":          g.srv.URL,
		"FLEETOPS_AGENT_ACTIVATION_ID":   actID,
		"FLEETOPS_AGENT_ACTIVATION_CODE": actCode,
		"FLEETOPS_AGENT_STATE_DIR":       dir,
	}
	r := runCLI(t, context.Background(), env, "register")
	require.Equal(t, 0, r.code, r.stderr)
	_, err := agent.LoadIdentity(dir)
	require.NoError(t, err)

	// A flag wins over the environment.
	other := filepath.Join(t.TempDir(), "from-flag")
	r = runCLI(t, context.Background(), env, "register", "--state-dir", other)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "registered as")
	_, err = agent.LoadIdentity(other)
	require.NoError(t, err)
}

func TestRegisterInputErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no server", []string{"register", "--state-dir", dir}, nil, "--server is required"},
		{"no code", []string{"register", "--state-dir", dir, "--server", "https://x", "--activation-id", "a"}, nil, "--activation-code is required"},
		{"plain http remote", []string{"register", "--state-dir", dir, "--server", "http://192.0.2.1", "--activation-id", "a", "--activation-code", actCode}, nil, "refusing plain http"},
		{"pin and CA", []string{"register", "--state-dir", dir, "--server", "https://x", "--ca-file", "a", "--server-fingerprint", "b"}, nil, "none of the others can be"},
		{"bad env bool", []string{"register"}, map[string]string{"FLEETOPS_AGENT_INSECURE": "maybe"}, "FLEETOPS_AGENT_INSECURE"},
		{"bad log level", []string{"version", "--log-level", "loud"}, nil, "--log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, context.Background(), tc.env, tc.args...)
			assert.Equal(t, exitError, r.code)
			assert.Contains(t, r.stderr, tc.want)
		})
	}
}

func TestRunRefusesWithoutIdentity(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, context.Background(), nil, "run", "--state-dir", dir)
	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stderr, "not registered")
	assert.Contains(t, r.stderr, "fleetops-agent register")
}

func TestRunConnectsUntilCancelled(t *testing.T) {
	g := newGateway(t)
	dir := t.TempDir()
	r := runCLI(t, context.Background(), nil, registerArgs(g, dir)...)
	require.Equal(t, 0, r.code, r.stderr)

	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		env := map[string]string{"FLEETOPS_AGENT_STATE_DIR": dir}
		lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
		done <- execute(ctx, []string{"run", "--log-level", "debug"}, &stdout, &stderr, lookup)
	}()
	select {
	case h := <-g.hellos:
		assert.Equal(t, "Linux", h.Host.PlatformType)
		assert.Equal(t, agent.Version, h.Host.AgentVersion)
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not connect")
	}
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "connected to gateway") },
		10*time.Second, 5*time.Millisecond, "log: %s", &stderr)
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code, stderr.String())
		assert.Contains(t, stderr.String(), instanceID)
		assert.Contains(t, stderr.String(), "fleetops-agent stopped")
		assert.NotContains(t, stderr.String(), secret)
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
}

func TestVersion(t *testing.T) {
	r := runCLI(t, context.Background(), nil, "version")
	require.Equal(t, 0, r.code)
	assert.True(t, strings.HasPrefix(r.stdout, "fleetops-agent "+agent.Version))
}
