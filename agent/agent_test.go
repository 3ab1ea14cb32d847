package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/agent/agentproto"
)

func fakeHost() agentproto.HostInfo {
	return agentproto.HostInfo{Hostname: "web-1", PlatformType: "Linux", PlatformName: "Debian GNU/Linux",
		PlatformVersion: "12", Kernel: "6.1.0", Architecture: "amd64", IPAddresses: []string{"10.0.0.5"}, AgentVersion: Version}
}

// fastConfig is a Config with test-sized durations against g.
func fastConfig(t testing.TB, g *fakeGateway) Config {
	log, _ := testLogger(t)
	return Config{
		Identity:       testIdentity(g.URL()),
		Host:           fakeHost,
		Logger:         log,
		Backoff:        Backoff{Base: 5 * time.Millisecond, Cap: 50 * time.Millisecond},
		WelcomeTimeout: 5 * time.Second,
	}
}

func TestHelloWelcomeHeartbeat(t *testing.T) {
	g := newFakeGateway(t, false)
	var changed atomic.Bool
	cfg := fastConfig(t, g)
	cfg.Host = func() agentproto.HostInfo {
		h := fakeHost()
		if changed.Load() {
			h.IPAddresses = []string{"10.0.0.6"}
		}
		return h
	}
	a, err := New(cfg)
	require.NoError(t, err)
	startAgent(t, a)

	hello := g.waitFor(t, agentproto.TypeHello)
	var h agentproto.Hello
	require.NoError(t, hello.Decode(&h))
	assert.Equal(t, agentproto.ProtocolVersion, h.ProtocolVersion)
	assert.Equal(t, fakeHost(), h.Host)
	require.Eventually(t, a.Connected, 10*time.Second, 5*time.Millisecond)

	// Unchanged host: a bare heartbeat.
	var hb agentproto.Heartbeat
	require.NoError(t, g.waitFor(t, agentproto.TypeHeartbeat).Decode(&hb))
	assert.Nil(t, hb.Host)

	// Changed host: the next heartbeat that sees the change carries it,
	// later ones do not again.
	changed.Store(true)
	for hb.Host == nil {
		hb = agentproto.Heartbeat{}
		require.NoError(t, g.waitFor(t, agentproto.TypeHeartbeat).Decode(&hb))
	}
	assert.Equal(t, []string{"10.0.0.6"}, hb.Host.IPAddresses)
	hb = agentproto.Heartbeat{}
	require.NoError(t, g.waitFor(t, agentproto.TypeHeartbeat).Decode(&hb))
	assert.Nil(t, hb.Host)
	assert.EqualValues(t, 1, g.connects.Load())
}

func TestReconnectAfterServerClose(t *testing.T) {
	g := newFakeGateway(t, false)
	a, err := New(fastConfig(t, g))
	require.NoError(t, err)
	startAgent(t, a)

	first := g.nextConn(t)
	g.waitFor(t, agentproto.TypeHello)
	require.NoError(t, first.Close(websocket.StatusGoingAway, "gateway restarting"))

	g.nextConn(t)
	g.waitFor(t, agentproto.TypeHello)
	assert.GreaterOrEqual(t, g.connects.Load(), int32(2))
	require.Eventually(t, a.Connected, 10*time.Second, 5*time.Millisecond)
}

func TestUnauthorizedIsRetried(t *testing.T) {
	g := newFakeGateway(t, false)
	g.rejectConnects.Store(3)
	cfg := fastConfig(t, g)
	log, logs := testLogger(t)
	cfg.Logger = log
	a, err := New(cfg)
	require.NoError(t, err)
	startAgent(t, a)

	g.nextConn(t)
	assert.GreaterOrEqual(t, g.connects.Load(), int32(4))
	assert.Contains(t, logs.String(), "refused this node's credentials")
	assert.Contains(t, logs.String(), "HTTP 401")
}

func TestDisconnectEndsRun(t *testing.T) {
	g := newFakeGateway(t, false)
	a, err := New(fastConfig(t, g))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	ws := g.nextConn(t)
	g.send(ws, agentproto.TypeDisconnect, agentproto.Disconnect{Reason: "node deregistered"})
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrDeregistered)
		assert.Contains(t, err.Error(), "node deregistered")
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end after disconnect")
	}
	assert.EqualValues(t, 1, g.connects.Load(), "no reconnect after disconnect")
	assert.False(t, a.Connected())
}

func TestWelcomeTimeoutReconnects(t *testing.T) {
	g := newFakeGateway(t, false)
	g.noWelcome.Store(true)
	cfg := fastConfig(t, g)
	cfg.WelcomeTimeout = 20 * time.Millisecond
	a, err := New(cfg)
	require.NoError(t, err)
	startAgent(t, a)

	require.Eventually(t, func() bool { return g.connects.Load() >= 3 }, 10*time.Second, 5*time.Millisecond)
	assert.False(t, a.Connected())
}

func TestHandlersAndUnknownTypes(t *testing.T) {
	g := newFakeGateway(t, false)
	cfg := fastConfig(t, g)
	cfg.Handlers = map[string]Handler{
		"echo": func(ctx context.Context, env agentproto.Envelope, s Sender) error {
			reply := agentproto.Envelope{Type: "echoed", ID: env.ID, Payload: env.Payload}
			return s.Send(ctx, reply)
		},
		"fail": func(context.Context, agentproto.Envelope, Sender) error { return errors.New("boom") },
	}
	a, err := New(cfg)
	require.NoError(t, err)
	startAgent(t, a)

	ws := g.nextConn(t)
	// Unknown, malformed and failing messages leave the connection up.
	g.send(ws, "from-the-future", map[string]int{"x": 1})
	require.NoError(t, ws.Write(context.Background(), websocket.MessageText, []byte("{not json")))
	g.send(ws, "fail", map[string]int{})
	g.send(ws, "echo", map[string]string{"hello": "there"})

	got := g.waitFor(t, "echoed")
	assert.JSONEq(t, `{"hello":"there"}`, string(got.Payload))
	assert.EqualValues(t, 1, g.connects.Load())
}

func TestConcurrentSendsAreSerialized(t *testing.T) {
	g := newFakeGateway(t, false)
	cfg := fastConfig(t, g)
	const n = 50
	cfg.Handlers = map[string]Handler{
		"burst": func(ctx context.Context, _ agentproto.Envelope, s Sender) error {
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					env, _ := agentproto.NewEnvelope("burst-reply", i)
					_ = s.Send(ctx, env)
				})
			}
			wg.Wait()
			return nil
		},
	}
	a, err := New(cfg)
	require.NoError(t, err)
	startAgent(t, a)
	g.send(g.nextConn(t), "burst", struct{}{})
	for range n {
		g.waitFor(t, "burst-reply")
	}
}

func TestStopClosesCleanly(t *testing.T) {
	g := newFakeGateway(t, false)
	a, err := New(fastConfig(t, g))
	require.NoError(t, err)
	stop := startAgent(t, a)
	g.nextConn(t)
	require.NoError(t, stop())
	select {
	case code := <-g.closeStatus:
		assert.Equal(t, websocket.StatusGoingAway, code)
	case <-time.After(10 * time.Second):
		t.Fatal("gateway saw no close")
	}
}

func TestAgentOverPinnedTLS(t *testing.T) {
	g := newFakeGateway(t, true)
	cfg := fastConfig(t, g)
	cfg.Identity.ServerFingerprint = Fingerprint(g.srv.Certificate().Raw)
	a, err := New(cfg)
	require.NoError(t, err)
	startAgent(t, a)
	g.nextConn(t)
	require.Eventually(t, a.Connected, 10*time.Second, 5*time.Millisecond)
}

// TestBackoffGrowsAndResets drives Run against a gateway that drops every
// connection right after the welcome and records the backoff windows Run
// asks the random source for.
func TestBackoffGrowsAndResets(t *testing.T) {
	for _, tc := range []struct {
		name        string
		stableAfter time.Duration
		want        []time.Duration
	}{
		{"flapping connections keep backing off", time.Hour, []time.Duration{1, 2, 4, 8, 8, 8}},
		{"stable connections reset the attempt", time.Nanosecond, []time.Duration{1, 1, 1, 1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGateway(t, false)
			cfg := fastConfig(t, g)
			cfg.StableAfter = tc.stableAfter
			var mu sync.Mutex
			var windows []time.Duration
			cfg.Backoff = Backoff{Base: time.Millisecond, Cap: 8 * time.Millisecond, Rand: func(n int64) int64 {
				mu.Lock()
				defer mu.Unlock()
				windows = append(windows, time.Duration(n)/time.Millisecond)
				return 0 // retry at once: the test has no waits
			}}
			a, err := New(cfg)
			require.NoError(t, err)
			stop := startAgent(t, a)
			for range len(tc.want) {
				ws := g.nextConn(t)
				g.waitFor(t, agentproto.TypeHello)
				if tc.stableAfter == time.Nanosecond {
					// Let the agent see the welcome before the drop.
					require.Eventually(t, a.Connected, 10*time.Second, time.Millisecond)
				}
				require.NoError(t, ws.Close(websocket.StatusGoingAway, "flap"))
			}
			g.nextConn(t)
			require.NoError(t, stop())
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, tc.want, windows[:len(tc.want)])
		})
	}
}

func TestBackoffBounds(t *testing.T) {
	maxRand := func(n int64) int64 { return n - 1 }
	zeroRand := func(int64) int64 { return 0 }
	b := Backoff{Base: time.Second, Cap: 60 * time.Second, Rand: maxRand}
	wantWindows := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for attempt, w := range wantWindows {
		got := b.Window(attempt)
		assert.Equal(t, w*time.Second, got, "attempt %d", attempt)
		assert.Equal(t, got-1, b.Delay(attempt), "max delay stays below the window")
	}
	for _, attempt := range []int{63, 64, 1000, 1 << 30} {
		assert.Equal(t, 60*time.Second, b.Window(attempt), "no overflow at attempt %d", attempt)
	}
	assert.Equal(t, time.Second, b.Window(-1))
	b.Rand = zeroRand
	assert.Zero(t, b.Delay(10))

	huge := Backoff{Base: time.Second, Cap: time.Duration(1<<63 - 1), Rand: maxRand}
	assert.Positive(t, huge.Window(200))
}

func TestConfigValidation(t *testing.T) {
	good := testIdentity("https://fleet.example.com")
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing identity", Config{}, "invalid instance ID"},
		{"no secret", Config{Identity: Identity{InstanceID: testInstanceID, ServerURL: "https://x"}}, "empty secret"},
		{"plain http to remote", Config{Identity: testIdentity("http://192.0.2.10:8080")}, "refusing plain http"},
		{"reserved handler", Config{Identity: good, Handlers: map[string]Handler{agentproto.TypeWelcome: func(context.Context, agentproto.Envelope, Sender) error { return nil }}}, "reserved"},
		{"nil handler", Config{Identity: good, Handlers: map[string]Handler{"x": nil}}, "nil handler"},
		{"cap below base", Config{Identity: good, Backoff: Backoff{Base: time.Minute, Cap: time.Second}}, "below base"},
		{"missing CA file", Config{Identity: Identity{InstanceID: testInstanceID, Secret: "s", ServerURL: "https://x", CAFile: "/nonexistent/ca.pem"}}, "read CA file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), testSecret)
		})
	}

	insecure := testIdentity("http://192.0.2.10:8080")
	insecure.Insecure = true
	_, err := New(Config{Identity: insecure})
	require.NoError(t, err)
}

func TestRunTwiceIsRefused(t *testing.T) {
	g := newFakeGateway(t, false)
	a, err := New(fastConfig(t, g))
	require.NoError(t, err)
	startAgent(t, a)
	g.nextConn(t)
	err = a.Run(context.Background())
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "already running"))
}
