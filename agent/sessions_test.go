package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/yamux"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/agent/datachannel"
)

// dataServer is the server side of data channels: it checks the agent's
// credentials and the session's channel token, accepts the WebSocket and
// hands it to the test, which plays the client (the real bridge is the
// server's business).
type dataServer struct {
	srv      *httptest.Server
	mu       sync.Mutex
	tokens   map[string]string // session ID → expected channel token
	accepted chan *datachannel.Conn
	dials    chan string // every session ID dialed, accepted or not
}

func newDataServer(t testing.TB) *dataServer { return newDataServerTLS(t, false) }

func newDataServerTLS(t testing.TB, useTLS bool) *dataServer {
	t.Helper()
	d := &dataServer{tokens: map[string]string{}, accepted: make(chan *datachannel.Conn, 64), dials: make(chan string, 64)}
	if useTLS {
		d.srv = httptest.NewTLSServer(http.HandlerFunc(d.serve))
	} else {
		d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	}
	t.Cleanup(d.srv.Close)
	return d
}

var dataPath = regexp.MustCompile(`^` + agentproto.PathSessionData + `([^/]+)/data$`)

func (d *dataServer) serve(w http.ResponseWriter, r *http.Request) {
	m := dataPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		http.NotFound(w, r)
		return
	}
	id := m[1]
	d.dials <- id
	d.mu.Lock()
	want, ok := d.tokens[id]
	delete(d.tokens, id) // single use
	d.mu.Unlock()
	if r.Header.Get(agentproto.HeaderInstanceID) != testInstanceID || r.Header.Get("Authorization") != "Bearer "+testSecret ||
		!ok || r.Header.Get(agentproto.HeaderChannelToken) != want {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	d.accepted <- datachannel.New(ws, nil)
}

// expect registers the token the next dial for id must present.
func (d *dataServer) expect(id, token string) {
	d.mu.Lock()
	d.tokens[id] = token
	d.mu.Unlock()
}

func newTestSessions(t testing.TB, d *dataServer, mod ...func(*SessionConfig)) *SessionManager {
	t.Helper()
	log, _ := testLogger(t)
	cfg := SessionConfig{Identity: testIdentity(d.srv.URL), Logger: log, KillGrace: 500 * time.Millisecond}
	for _, f := range mod {
		f(&cfg)
	}
	m, err := NewSessionManager(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		assert.NoError(t, m.Shutdown(ctx))
	})
	return m
}

// controlConn plays the server's control connection: it delivers
// open_session/close_session to the manager and collects session_opened.
type controlConn struct {
	t      testing.TB
	m      *SessionManager
	ctx    context.Context
	s      *recordingSender
	nextID int
}

func newControl(t testing.TB, m *SessionManager) *controlConn {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &controlConn{t: t, m: m, ctx: ctx, s: &recordingSender{}}
}

func (c *controlConn) deliver(typ string, payload any) {
	c.t.Helper()
	env, err := agentproto.NewEnvelope(typ, payload)
	require.NoError(c.t, err)
	_ = c.m.Handlers()[typ](c.ctx, env, c.s)
}

// opened waits for the session_opened of id.
func (c *controlConn) opened(id string) agentproto.SessionOpened {
	c.t.Helper()
	var got []agentproto.SessionOpened
	require.Eventually(c.t, func() bool {
		got = nil
		for _, env := range c.s.all() {
			var so agentproto.SessionOpened
			if env.Type == agentproto.TypeSessionOpened && env.Decode(&so) == nil && so.SessionID == id {
				got = append(got, so)
			}
		}
		return len(got) > 0
	}, 15*time.Second, 5*time.Millisecond, "no session_opened for %s", id)
	require.Len(c.t, got, 1, "one session_opened per open_session")
	return got[0]
}

// newID returns a fresh session ID in the server's format.
func (c *controlConn) newID() string {
	c.nextID++
	return fmt.Sprintf("tester-%016x", time.Now().UnixNano()+int64(c.nextID))
}

// open asks for a session the data server accepts and returns its channel.
func (c *controlConn) open(d *dataServer, o agentproto.OpenSession) *datachannel.Conn {
	c.t.Helper()
	if o.SessionID == "" {
		o.SessionID = c.newID()
	}
	if o.ChannelToken == "" {
		o.ChannelToken = "tok-" + o.SessionID
	}
	d.expect(o.SessionID, o.ChannelToken)
	c.deliver(agentproto.TypeOpenSession, o)
	so := c.opened(o.SessionID)
	require.Empty(c.t, so.Error)
	select {
	case dc := <-d.accepted:
		c.t.Cleanup(func() { _ = dc.CloseNow() })
		return dc
	case <-time.After(10 * time.Second):
		c.t.Fatal("the agent did not dial the data channel")
		return nil
	}
}

// refused asks for a session and returns the refusal.
func (c *controlConn) refused(o agentproto.OpenSession) string {
	c.t.Helper()
	c.deliver(agentproto.TypeOpenSession, o)
	so := c.opened(o.SessionID)
	require.NotEmpty(c.t, so.Error, "session %s should have been refused", o.SessionID)
	return so.Error
}

// termClient is the client end of a shell or command session.
type termClient struct {
	t      testing.TB
	dc     *datachannel.Conn
	mu     sync.Mutex
	out    bytes.Buffer
	exit   *agentproto.Exit
	done   chan struct{} // FrameClose or channel end
	closed bool          // done is closed
	seq    []byte        // frame types after the first FrameExit
}

func newTermClient(t testing.TB, dc *datachannel.Conn) *termClient {
	c := &termClient{t: t, dc: dc, done: make(chan struct{})}
	go func() {
		for {
			typ, p, err := dc.ReadFrame(context.Background())
			if err != nil {
				c.mu.Lock()
				if !c.closed {
					c.closed = true
					close(c.done)
				}
				c.mu.Unlock()
				return
			}
			c.mu.Lock()
			if c.exit != nil {
				c.seq = append(c.seq, typ)
			}
			switch typ {
			case agentproto.FrameData:
				c.out.Write(p)
			case agentproto.FrameExit:
				var e agentproto.Exit
				if json.Unmarshal(p, &e) == nil && c.exit == nil {
					c.exit = &e
				}
			}
			if typ == agentproto.FrameClose {
				c.closed = true
				close(c.done)
			}
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *termClient) send(s string) {
	c.t.Helper()
	require.NoError(c.t, c.dc.WriteFrame(context.Background(), agentproto.FrameData, []byte(s)))
}

func (c *termClient) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// waitOutput waits until the output matches re and returns the match.
func (c *termClient) waitOutput(re string) []string {
	c.t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	deadline := time.Now().Add(15 * time.Second)
	for m = rx.FindStringSubmatch(c.output()); m == nil; m = rx.FindStringSubmatch(c.output()) {
		if time.Now().After(deadline) {
			c.t.Fatalf("output never matched %q; output:\n%q", re, c.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return m
}

// waitExit waits for FrameExit and the end of the channel.
func (c *termClient) waitExit() agentproto.Exit {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		c.t.Fatalf("session did not end; output:\n%s", c.output())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	require.NotNil(c.t, c.exit, "no FrameExit before the channel ended")
	require.Equal(c.t, []byte{agentproto.FrameClose}, c.seq, "FrameClose follows FrameExit")
	return *c.exit
}

func skipUnlessLinux(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("PTY sessions need Linux")
	}
}

// shell opens a shell session and waits for its first prompt output.
func shell(t *testing.T, mod ...func(*agentproto.OpenSession)) (*controlConn, *termClient, string) {
	t.Helper()
	skipUnlessLinux(t)
	d := newDataServer(t)
	m := newTestSessions(t, d)
	c := newControl(t, m)
	o := agentproto.OpenSession{SessionID: c.newID(), Kind: agentproto.SessionShell, Cols: 80, Rows: 24}
	for _, f := range mod {
		f(&o)
	}
	tc := newTermClient(t, c.open(d, o))
	return c, tc, o.SessionID
}

func TestShellSessionEchoAndTTY(t *testing.T) {
	_, tc, _ := shell(t)
	// The quotes keep the terminal's echo of the input from matching.
	tc.send("echo hel''lo\r")
	tc.waitOutput(`hello`)
	tc.send("tty\r")
	tc.waitOutput(`/dev/pts/\d+`)
	tc.send("echo TERM=$TERM\r")
	tc.waitOutput(`TERM=xterm-256color`)
	tc.send("exit 7\r")
	assert.Equal(t, agentproto.Exit{Code: 7}, tc.waitExit())
}

func TestShellSessionResize(t *testing.T) {
	_, tc, _ := shell(t, func(o *agentproto.OpenSession) { o.Cols, o.Rows = 100, 30 })
	tc.send("stty size\r")
	tc.waitOutput(`\b30 100\r?\n`)
	b, _ := json.Marshal(agentproto.Resize{Cols: 123, Rows: 45})
	require.NoError(t, tc.dc.WriteFrame(context.Background(), agentproto.FrameResize, b))
	tc.send("stty size\r")
	tc.waitOutput(`\b45 123\r?\n`)
}

func TestShellSessionCtrlCInterrupts(t *testing.T) {
	_, tc, _ := shell(t)
	tc.send("echo pid-$$\r")
	pid, err := strconv.Atoi(tc.waitOutput(`pid-(\d+)`)[1])
	require.NoError(t, err)
	tc.send("sleep 100\r")
	require.Eventually(t, func() bool { return hasChild(pid, "sleep") }, 10*time.Second, 10*time.Millisecond)
	tc.send("\x03")
	require.Eventually(t, func() bool { return !hasChild(pid, "sleep") }, 5*time.Second, 10*time.Millisecond, "Ctrl-C did not interrupt sleep")
	tc.send("echo after-$((6*7))\r")
	tc.waitOutput(`after-42`)
}

func TestShellSessionProfileAndRunAs(t *testing.T) {
	_, tc, _ := shell(t, func(o *agentproto.OpenSession) { o.ShellProfile = "export PROFILE_MARK=prof''ok" })
	tc.send("echo mark=$PROFILE_MARK user=$(id -un) home=$HOME\r")
	m := tc.waitOutput(`mark=(\S+) user=(\S+) home=(\S+)`)
	assert.Equal(t, "profok", m[1])
	want := DefaultSessionUser
	if os.Geteuid() != 0 {
		cur, err := user.Current()
		require.NoError(t, err)
		want = cur.Username
	}
	assert.Equal(t, want, m[2])
	u, err := user.Lookup(want)
	require.NoError(t, err)
	assert.Equal(t, u.HomeDir, strings.TrimSpace(m[3]))
}

func TestRootSessionsNeedTheFlag(t *testing.T) {
	skipUnlessLinux(t)
	d := newDataServer(t)
	c := newControl(t, newTestSessions(t, d))
	id := c.newID()
	msg := c.refused(agentproto.OpenSession{SessionID: id, ChannelToken: "x", Kind: agentproto.SessionShell, RunAsUser: "root"})
	assert.Contains(t, msg, "root")
	id = c.newID()
	msg = c.refused(agentproto.OpenSession{SessionID: id, ChannelToken: "x", Kind: agentproto.SessionShell, RunAsUser: "no-such-user-xyz"})
	if os.Geteuid() == 0 {
		assert.Contains(t, msg, "does not exist")
	}
	assert.Empty(t, d.dials, "a refused session dials nothing")

	if os.Geteuid() != 0 {
		return // a non-root agent can only run sessions as itself
	}
	c2 := newControl(t, newTestSessions(t, d, func(cfg *SessionConfig) { cfg.AllowRootSessions = true }))
	tc := newTermClient(t, c2.open(d, agentproto.OpenSession{Kind: agentproto.SessionShell, RunAsUser: "root"}))
	tc.send("echo user=$(id -un)\r")
	tc.waitOutput(`user=root`)
}

func TestCloseSessionKillsTheShell(t *testing.T) {
	c, tc, id := shell(t)
	tc.send("echo pid-$$\r")
	pid, err := strconv.Atoi(tc.waitOutput(`pid-(\d+)`)[1])
	require.NoError(t, err)
	// A job that ignores SIGHUP must not survive the session either.
	tc.send("nohup sleep 1001 >/dev/null 2>&1 &\r")
	require.Eventually(t, func() bool { return len(sessionMembers(pid)) >= 2 }, 10*time.Second, 10*time.Millisecond)
	c.deliver(agentproto.TypeCloseSession, agentproto.CloseSession{SessionID: id, Reason: "terminated by test"})
	exit := tc.waitExit()
	assert.Equal(t, 128+int(syscall.SIGHUP), exit.Code)
	assert.Equal(t, "SIGHUP", exit.Signal)
	require.Eventually(t, func() bool { return len(sessionMembers(pid)) == 0 }, 10*time.Second, 20*time.Millisecond,
		"processes of the session survived: %v", sessionMembers(pid))
	require.Eventually(t, func() bool { return c.m.Active() == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestFrameCloseFromServerEndsTheShell(t *testing.T) {
	c, tc, _ := shell(t)
	tc.send("echo pid-$$\r")
	pid, err := strconv.Atoi(tc.waitOutput(`pid-(\d+)`)[1])
	require.NoError(t, err)
	require.NoError(t, tc.dc.WriteFrame(context.Background(), agentproto.FrameClose, []byte("bye")))
	require.Eventually(t, func() bool { return len(sessionMembers(pid)) == 0 }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return c.m.Active() == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestCommandSession(t *testing.T) {
	skipUnlessLinux(t)
	d := newDataServer(t)
	c := newControl(t, newTestSessions(t, d))
	tc := newTermClient(t, c.open(d, agentproto.OpenSession{Kind: agentproto.SessionCommand, Command: "echo out-$((2+3)); [ -t 0 ] && echo on-a-tty; exit 3"}))
	exit := tc.waitExit()
	assert.Equal(t, agentproto.Exit{Code: 3}, exit)
	assert.Contains(t, tc.output(), "out-5")
	assert.Contains(t, tc.output(), "on-a-tty")
}

func TestSessionRefusals(t *testing.T) {
	d := newDataServer(t)
	m := newTestSessions(t, d, func(cfg *SessionConfig) {
		cfg.MaxSessions = 2
		cfg.LookupIP = func(_ context.Context, host string) ([]net.IP, error) {
			switch host {
			case "sneaky.example":
				return []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("169.254.169.254")}, nil
			case "linklocal.example":
				return []net.IP{net.ParseIP("fe80::1")}, nil
			}
			return nil, errors.New("no such host")
		}
	})
	c := newControl(t, m)
	port := func(host string) agentproto.OpenSession {
		return agentproto.OpenSession{SessionID: c.newID(), ChannelToken: "t", Kind: agentproto.SessionPort, Host: host, Port: 80}
	}
	for _, tt := range []struct {
		name string
		o    agentproto.OpenSession
		want string
	}{
		{"no channel token", agentproto.OpenSession{SessionID: c.newID(), Kind: agentproto.SessionShell}, "channel token"},
		{"unknown kind", agentproto.OpenSession{SessionID: c.newID(), ChannelToken: "t", Kind: "NonInteractiveCommands"}, "unknown session kind"},
		{"command without command", agentproto.OpenSession{SessionID: c.newID(), ChannelToken: "t", Kind: agentproto.SessionCommand}, "needs a command"},
		{"bad session ID", agentproto.OpenSession{SessionID: "../x", ChannelToken: "t", Kind: agentproto.SessionShell}, "invalid session ID"},
		{"metadata IP", port("169.254.169.254"), "not allowed"},
		{"metadata IPv6", port("fd00:ec2::254"), "not allowed"},
		{"metadata name", port("metadata.google.internal"), "not allowed"},
		{"any link-local", port("169.254.1.1"), "not allowed"},
		{"IPv4-mapped metadata", port("::ffff:169.254.169.254"), "not allowed"},
		{"default host localhost resolved too", port(""), "no such host"},
		{"name resolving to metadata", port("sneaky.example"), "resolves to 169.254.169.254"},
		{"name resolving to link-local", port("linklocal.example"), "resolves to fe80::1"},
		{"bad port", agentproto.OpenSession{SessionID: c.newID(), ChannelToken: "t", Kind: agentproto.SessionPort, Port: 70000}, "invalid port"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Contains(t, c.refused(tt.o), tt.want)
		})
	}
	assert.Empty(t, d.dials, "refused sessions dial nothing")

	// The limit, and duplicates: two port sessions to a closed port are
	// enough to hold slots.
	p1 := c.open(d, agentproto.OpenSession{SessionID: "limit-1", Kind: agentproto.SessionPort, Host: "127.0.0.1", Port: 9})
	_ = c.open(d, agentproto.OpenSession{SessionID: "limit-2", Kind: agentproto.SessionPort, Host: "127.0.0.1", Port: 9})
	assert.Contains(t, c.refused(agentproto.OpenSession{SessionID: "limit-3", ChannelToken: "t", Kind: agentproto.SessionPort, Port: 9}), "session limit")
	c.s = &recordingSender{}
	assert.Contains(t, c.refused(agentproto.OpenSession{SessionID: "limit-1", ChannelToken: "t", Kind: agentproto.SessionPort, Port: 9}), "already active")
	// The duplicate did not disturb the original; closing it frees a slot.
	require.Equal(t, 2, m.Active())
	require.NoError(t, p1.WriteFrame(context.Background(), agentproto.FrameClose, nil))
	go func() { // read, as the server does, so the close handshake completes
		for {
			if _, _, err := p1.ReadFrame(context.Background()); err != nil {
				return
			}
		}
	}()
	require.Eventually(t, func() bool { return m.Active() == 1 }, 5*time.Second, 10*time.Millisecond)
	_ = c.open(d, agentproto.OpenSession{SessionID: "limit-4", Kind: agentproto.SessionPort, Host: "127.0.0.1", Port: 9})
}

func TestDataChannelRejectedIsReported(t *testing.T) {
	d := newDataServer(t)
	c := newControl(t, newTestSessions(t, d))
	id := c.newID()
	d.expect(id, "the-right-token")
	msg := c.refused(agentproto.OpenSession{SessionID: id, ChannelToken: "a-wrong-token", Kind: agentproto.SessionPort, Port: 9})
	assert.Contains(t, msg, "HTTP 401")
	require.Eventually(t, func() bool { return c.m.Active() == 0 }, 5*time.Second, 10*time.Millisecond)
}

// echoServer is a TCP echo server on loopback.
func echoServer(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				buf := make([]byte, 64<<10)
				_, _ = io.CopyBuffer(onlyWriter{conn}, onlyReader{conn}, buf)
				_ = conn.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// portSession opens a Port session to 127.0.0.1:port and returns the
// client's yamux session over it, as the CLI would hold it.
func portSession(t testing.TB, host string, port int) (*yamux.Session, *SessionManager) {
	t.Helper()
	d := newDataServer(t)
	m := newTestSessions(t, d)
	c := newControl(t, m)
	dc := c.open(d, agentproto.OpenSession{Kind: agentproto.SessionPort, Host: host, Port: port})
	mux, err := yamux.Client(dc.Stream(context.Background(), nil), datachannel.YamuxConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = mux.Close() })
	return mux, m
}

// pattern fills b with bytes derived from seed.
func pattern(b []byte, seed int) {
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
}

func TestPortSessionParallelStreams(t *testing.T) {
	mux, _ := portSession(t, "", echoServer(t)) // default host: localhost
	const streams, size = 32, 1 << 20
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Go(func() {
			s, err := mux.OpenStream()
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			want := make([]byte, size)
			pattern(want, i)
			go func() {
				_, _ = s.Write(want)
				_ = s.Close() // half-close: the echo server sees EOF
			}()
			got, err := io.ReadAll(s)
			if err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
				return
			}
			if !bytes.Equal(got, want) {
				errs <- fmt.Errorf("stream %d: echoed %d bytes, not the %d sent", i, len(got), len(want))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPortSessionBulkStream(t *testing.T) {
	mux, _ := portSession(t, "127.0.0.1", echoServer(t))
	const total = 100 << 20
	s, err := mux.OpenStream()
	require.NoError(t, err)
	defer s.Close()
	sent := sha256.New()
	go func() {
		buf := make([]byte, 64<<10)
		for off := 0; off < total; off += len(buf) {
			pattern(buf, off)
			sent.Write(buf)
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
		_ = s.Close()
	}()
	got := sha256.New()
	n, err := io.CopyBuffer(got, onlyReader{s}, make([]byte, 64<<10))
	require.NoError(t, err)
	require.EqualValues(t, total, n)
	assert.Equal(t, sent.Sum(nil), got.Sum(nil), "SHA-256 of the echoed stream")
}

func TestPortSessionFailedDialClosesOnlyThatStream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedPort := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	mux, m := portSession(t, "127.0.0.1", closedPort)
	s, err := mux.OpenStream()
	require.NoError(t, err)
	_, err = io.ReadAll(s) // the agent closes the stream
	require.NoError(t, err)
	assert.False(t, mux.IsClosed(), "a failed dial must not end the session")
	assert.Equal(t, 1, m.Active())
	s2, err := mux.OpenStream()
	require.NoError(t, err)
	_, _ = io.ReadAll(s2)
}

func TestPortSessionCloseSession(t *testing.T) {
	port := echoServer(t)
	d := newDataServer(t)
	m := newTestSessions(t, d)
	c := newControl(t, m)
	id := c.newID()
	dc := c.open(d, agentproto.OpenSession{SessionID: id, Kind: agentproto.SessionPort, Host: "127.0.0.1", Port: port})
	mux, err := yamux.Client(dc.Stream(context.Background(), nil), datachannel.YamuxConfig())
	require.NoError(t, err)
	s, err := mux.OpenStream()
	require.NoError(t, err)
	_, err = s.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(s, buf)
	require.NoError(t, err)
	c.deliver(agentproto.TypeCloseSession, agentproto.CloseSession{SessionID: id})
	select {
	case <-mux.CloseChan():
	case <-time.After(10 * time.Second):
		t.Fatal("the client's yamux session did not end after close_session")
	}
	require.Eventually(t, func() bool { return m.Active() == 0 }, 5*time.Second, 10*time.Millisecond)
}

// hasChild reports whether ppid has a live child whose command is comm.
func hasChild(ppid int, comm string) bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if lp < 0 || rp < lp {
			continue
		}
		f := strings.Fields(s[rp+1:])
		if len(f) > 1 && s[lp+1:rp] == comm && f[0] != "Z" && f[1] == strconv.Itoa(ppid) {
			return true
		}
	}
	return false
}

// BenchmarkPortForward measures one forwarded stream on loopback, agent
// and client in one process: download (destination → client) and upload.
func BenchmarkPortForward(b *testing.B) {
	const chunk = 1 << 20
	for _, dir := range []string{"download", "upload"} {
		b.Run(dir, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(b, err)
			defer ln.Close()
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				buf := make([]byte, 64<<10)
				if dir == "download" {
					for {
						if _, err := conn.Write(buf); err != nil {
							return
						}
					}
				}
				_, _ = io.CopyBuffer(io.Discard, onlyReader{conn}, buf)
			}()
			mux, _ := portSession(b, "127.0.0.1", ln.Addr().(*net.TCPAddr).Port)
			s, err := mux.OpenStream()
			require.NoError(b, err)
			defer s.Close()
			buf, dst := make([]byte, 64<<10), make([]byte, chunk)
			b.SetBytes(chunk)
			b.ResetTimer()
			for range b.N {
				if dir == "download" {
					_, err = io.ReadFull(s, dst)
				} else {
					for off := 0; off < chunk; off += len(buf) {
						if _, err = s.Write(buf); err != nil {
							break
						}
					}
				}
				require.NoError(b, err)
			}
		})
	}
}

func TestDataChannelOverPinnedTLS(t *testing.T) {
	d := newDataServerTLS(t, true)
	pinned := func(fp string) func(*SessionConfig) {
		return func(cfg *SessionConfig) { cfg.Identity.ServerFingerprint = fp }
	}
	c := newControl(t, newTestSessions(t, d, pinned(Fingerprint(d.srv.Certificate().Raw))))
	dc := c.open(d, agentproto.OpenSession{Kind: agentproto.SessionPort, Host: "127.0.0.1", Port: echoServer(t)})
	mux, err := yamux.Client(dc.Stream(context.Background(), nil), datachannel.YamuxConfig())
	require.NoError(t, err)
	defer mux.Close()
	s, err := mux.OpenStream()
	require.NoError(t, err)
	_, err = s.Write([]byte("over tls"))
	require.NoError(t, err)
	buf := make([]byte, 8)
	_, err = io.ReadFull(s, buf)
	require.NoError(t, err)
	assert.Equal(t, "over tls", string(buf))

	c2 := newControl(t, newTestSessions(t, d, pinned("sha256:"+strings.Repeat("ab", 32))))
	id := c2.newID()
	d.expect(id, "t")
	assert.Contains(t, c2.refused(agentproto.OpenSession{SessionID: id, ChannelToken: "t", Kind: agentproto.SessionPort, Port: 9}), "open data channel")
}
