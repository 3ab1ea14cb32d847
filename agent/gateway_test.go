package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/agent/agentproto"
)

const (
	testInstanceID = "mi-0123456789abcdef0"
	testSecret     = "node-secret-do-not-log"
	testActID      = "act-1"
	testActCode    = "activation-code-do-not-log"
)

// fakeGateway implements the server side of agentproto with httptest and
// coder/websocket, recording what agents send.
type fakeGateway struct {
	t   testing.TB
	srv *httptest.Server

	heartbeatSeconds int
	noWelcome        atomic.Bool
	rejectConnects   atomic.Int32 // answer this many upgrades with 401
	refusal          *agentproto.ErrorBody
	refusalStatus    int

	registrations atomic.Int32
	connects      atomic.Int32
	received      chan agentproto.Envelope
	conns         chan *websocket.Conn // welcomed connections, in order
	closeStatus   chan websocket.StatusCode

	mu        sync.Mutex
	lastHello agentproto.Hello
	lastReg   agentproto.RegisterRequest
}

func newFakeGateway(t testing.TB, useTLS bool) *fakeGateway {
	t.Helper()
	g := &fakeGateway{
		t:                t,
		heartbeatSeconds: 1,
		received:         make(chan agentproto.Envelope, 256),
		conns:            make(chan *websocket.Conn, 64),
		closeStatus:      make(chan websocket.StatusCode, 64),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+agentproto.PathRegister, g.register)
	mux.HandleFunc("GET "+agentproto.PathConnect, g.connect)
	if useTLS {
		g.srv = httptest.NewTLSServer(mux)
	} else {
		g.srv = httptest.NewServer(mux)
	}
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGateway) URL() string { return g.srv.URL }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (g *fakeGateway) register(w http.ResponseWriter, r *http.Request) {
	var req agentproto.RegisterRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, 400, agentproto.ErrorResponse{Error: agentproto.ErrorBody{Code: "InvalidParameters", Message: err.Error()}})
		return
	}
	g.mu.Lock()
	g.lastReg = req
	g.mu.Unlock()
	if g.refusal != nil {
		writeJSON(w, g.refusalStatus, agentproto.ErrorResponse{Error: *g.refusal})
		return
	}
	if req.ActivationID != testActID || req.ActivationCode != testActCode {
		writeJSON(w, 403, agentproto.ErrorResponse{Error: agentproto.ErrorBody{Code: "ActivationRefused", Message: "invalid activation code"}})
		return
	}
	g.registrations.Add(1)
	writeJSON(w, 201, agentproto.RegisterResponse{InstanceID: testInstanceID, Secret: testSecret})
}

func (g *fakeGateway) connect(w http.ResponseWriter, r *http.Request) {
	g.connects.Add(1)
	if g.rejectConnects.Add(-1) >= 0 ||
		r.Header.Get(agentproto.HeaderInstanceID) != testInstanceID ||
		r.Header.Get("Authorization") != "Bearer "+testSecret {
		writeJSON(w, 401, agentproto.ErrorResponse{Error: agentproto.ErrorBody{Code: "Unauthorized", Message: "bad credentials"}})
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ctx := r.Context()
	env, err := g.read(ctx, ws)
	if err != nil || env.Type != agentproto.TypeHello {
		return
	}
	var h agentproto.Hello
	if env.Decode(&h) == nil {
		g.mu.Lock()
		g.lastHello = h
		g.mu.Unlock()
	}
	if !g.noWelcome.Load() {
		g.send(ws, agentproto.TypeWelcome, agentproto.Welcome{
			ProtocolVersion: agentproto.ProtocolVersion, HeartbeatSeconds: g.heartbeatSeconds, ServerTime: time.Now(),
		})
	}
	g.conns <- ws
	for {
		if _, err := g.read(ctx, ws); err != nil {
			g.closeStatus <- websocket.CloseStatus(err)
			return
		}
	}
}

func (g *fakeGateway) read(ctx context.Context, ws *websocket.Conn) (agentproto.Envelope, error) {
	_, b, err := ws.Read(ctx)
	if err != nil {
		return agentproto.Envelope{}, err
	}
	var env agentproto.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return env, err
	}
	g.received <- env
	return env, nil
}

func (g *fakeGateway) send(ws *websocket.Conn, typ string, payload any) {
	env, err := agentproto.NewEnvelope(typ, payload)
	require.NoError(g.t, err)
	b, err := json.Marshal(env)
	require.NoError(g.t, err)
	_ = ws.Write(context.Background(), websocket.MessageText, b)
}

// nextConn waits for the next welcomed connection.
func (g *fakeGateway) nextConn(t testing.TB) *websocket.Conn {
	t.Helper()
	select {
	case ws := <-g.conns:
		return ws
	case <-time.After(10 * time.Second):
		t.Fatal("no agent connection within 10s")
		return nil
	}
}

// waitFor returns the next received envelope of type typ, skipping others.
func (g *fakeGateway) waitFor(t testing.TB, typ string) agentproto.Envelope {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case env := <-g.received:
			if env.Type == typ {
				return env
			}
		case <-deadline:
			t.Fatalf("no %q message within 10s", typ)
		}
	}
}

// syncBuffer collects logs written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger logs at debug to a buffer the test can inspect; the test fails
// if the secret or the activation code ever shows up in it.
func testLogger(t testing.TB) (*slog.Logger, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	t.Cleanup(func() {
		out := buf.String()
		if strings.Contains(out, testSecret) || strings.Contains(out, testActCode) {
			t.Errorf("logs leak a credential:\n%s", out)
		}
		if t.Failed() {
			t.Logf("agent logs:\n%s", out)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func testIdentity(serverURL string) Identity {
	return Identity{InstanceID: testInstanceID, Secret: testSecret, ServerURL: serverURL}
}

// startAgent runs a in the background; the returned func stops it and
// returns Run's result.
func startAgent(t testing.TB, a *Agent) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- a.Run(ctx) }()
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-ch:
			case <-time.After(15 * time.Second):
				result = errors.New("Run did not return within 15s of cancel")
			}
		})
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}
