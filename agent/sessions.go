package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/yamux"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/agent/datachannel"
)

// Session Manager defaults.
const (
	// DefaultSessionUser is the OS user shells and commands run as when the
	// agent runs as root and OpenSession names none. The agent creates it
	// (useradd, no sudo rights) if it is missing.
	DefaultSessionUser = "fleetops-session"
	// DefaultMaxSessions bounds concurrent sessions per node, as the
	// server's per-node default.
	DefaultMaxSessions = 5
)

// ErrSessionsClosed refuses sessions after SessionManager.Shutdown.
var ErrSessionsClosed = errors.New("session manager is shut down")

// Causes that end a session; logged, never sent to anyone but the server.
var (
	errSessionClosedByServer = errors.New("session closed by the server (close_session)")
	errSessionClosedByPeer   = errors.New("session closed from the other end (FrameClose)")
	errDataChannelLost       = errors.New("data channel lost")
	errAgentStopping         = errors.New("the agent is stopping")
)

const (
	// ptyDrainTimeout bounds how long output is still read after the shell
	// exited: background jobs may hold the terminal open forever.
	ptyDrainTimeout = time.Second
	// ptyBufBytes is the read size of terminal output and forwarded TCP.
	ptyBufBytes     = 32 << 10
	forwardBufBytes = 64 << 10
	// closeWriteTimeout bounds the final FrameExit and FrameClose.
	closeWriteTimeout = 5 * time.Second
	defaultCols       = 80
	defaultRows       = 24
	maxTermDimension  = 10000
)

// sessionIDPattern keeps session IDs safe in a URL path segment.
var sessionIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// userNamePattern is what useradd accepts on common distributions.
var userNamePattern = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// SessionConfig configures a SessionManager. Zero values take the defaults
// documented on each field.
type SessionConfig struct {
	// Identity is the node's identity: the server URL the data channels
	// are dialed at and the credentials they present. Required.
	Identity Identity
	// HTTPClient dials data channels. Default: built from
	// Identity.Transport(), so it pins and verifies like the control
	// connection.
	HTTPClient *http.Client
	// Logger receives the manager's logs. Default: discard.
	Logger *slog.Logger
	// MaxSessions bounds concurrent sessions (opening ones included).
	// Default DefaultMaxSessions.
	MaxSessions int
	// SessionUser is the default run-as user when the agent runs as root.
	// Default DefaultSessionUser. When the agent is not root, sessions run
	// as the agent's own user and this is ignored.
	SessionUser string
	// AllowRootSessions permits sessions as root (uid 0), by RunAsUser or
	// SessionUser. Default false: such sessions are refused.
	AllowRootSessions bool
	// DialTimeout bounds the data channel handshake. Default 30s.
	DialTimeout time.Duration
	// ForwardDialTimeout bounds the TCP connect of one forwarded
	// connection in a Port session. Default 10s.
	ForwardDialTimeout time.Duration
	// KillGrace is the time between SIGHUP and SIGKILL when a session is
	// closed. Default 2s.
	KillGrace time.Duration
	// LookupIP resolves Port session hosts. Default
	// net.DefaultResolver.LookupIP(ctx, "ip", host). Tests inject names.
	LookupIP func(ctx context.Context, host string) ([]net.IP, error)
}

// CheckAndSetDefaults validates the configuration and fills in defaults.
func (c *SessionConfig) CheckAndSetDefaults() error {
	if err := c.Identity.Validate(); err != nil {
		return err
	}
	if err := c.Identity.Transport().CheckURL(c.Identity.ServerURL); err != nil {
		return err
	}
	if c.HTTPClient == nil {
		hc, err := c.Identity.Transport().HTTPClient()
		if err != nil {
			return err
		}
		c.HTTPClient = hc
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.SessionUser == "" {
		c.SessionUser = DefaultSessionUser
	}
	if !userNamePattern.MatchString(c.SessionUser) {
		return fmt.Errorf("session user %q is not a valid user name", c.SessionUser)
	}
	setDefault(&c.DialTimeout, 30*time.Second)
	setDefault(&c.ForwardDialTimeout, 10*time.Second)
	setDefault(&c.KillGrace, 2*time.Second)
	if c.LookupIP == nil {
		c.LookupIP = func(ctx context.Context, host string) ([]net.IP, error) {
			return net.DefaultResolver.LookupIP(ctx, "ip", host)
		}
	}
	return nil
}

// SessionManager runs Session Manager sessions on the node: shells
// (Standard_Stream) and interactive commands in a real PTY, and Port
// sessions that forward yamux streams to TCP destinations.
//
// Protocol, as the agent side of agentproto's session messages:
//
//   - open_session is the only way a session starts: the agent dials a data
//     channel only for a session the server asked for on the authenticated
//     control connection, with that session's one-time channel token.
//     Refused (session_opened with Error, nothing dialed): an unknown kind,
//     no channel token, a session ID already active, the node's session
//     limit reached, a run-as user that does not exist or is root without
//     AllowRootSessions, a forward destination that is (or resolves to)
//     a denied or link-local address.
//   - Otherwise the agent dials PathSessionData with its credentials and
//     the token, starts the shell, command or forwarder, then answers
//     session_opened{} (or {Error} if the dial or start failed).
//   - Shells and commands: FrameData is terminal input and output,
//     FrameResize resizes the PTY, and when the process ends the agent
//     sends FrameExit{code} and FrameClose and closes the channel.
//   - Port: FrameData carries a yamux session; the agent is the yamux
//     server and dials Host:Port for every stream the client opens.
//   - close_session, FrameClose from the server, or a lost data channel
//     end the session: SIGHUP to the process group and the terminal's
//     session, SIGKILL after KillGrace.
//
// Sessions belong to the manager, not to a control connection: they keep
// running while the agent reconnects.
type SessionManager struct {
	cfg     SessionConfig
	log     *slog.Logger
	baseURL *url.URL
	header  http.Header
	isRoot  bool

	lifetime context.Context
	stop     context.CancelCauseFunc
	wg       sync.WaitGroup

	userMu sync.Mutex // serializes the creation of the session user

	mu       sync.Mutex
	sessions map[string]*session
	closed   bool
}

// session is one active (or opening) session.
type session struct {
	id     string
	kind   string
	cancel context.CancelCauseFunc
}

// NewSessionManager validates cfg and returns a manager.
func NewSessionManager(cfg SessionConfig) (*SessionManager, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, fmt.Errorf("session manager config: %w", err)
	}
	base, _ := parseServerURL(cfg.Identity.ServerURL) // validated
	h := http.Header{}
	h.Set(agentproto.HeaderInstanceID, cfg.Identity.InstanceID)
	h.Set("Authorization", "Bearer "+cfg.Identity.Secret)
	h.Set("User-Agent", "fleetops-agent/"+Version)
	lifetime, stop := context.WithCancelCause(context.Background())
	return &SessionManager{
		cfg:      cfg,
		log:      cfg.Logger,
		baseURL:  base,
		header:   h,
		isRoot:   processIsRoot(),
		lifetime: lifetime,
		stop:     stop,
		sessions: make(map[string]*session),
	}, nil
}

// Handlers returns the manager's handlers for Config.Handlers.
func (m *SessionManager) Handlers() map[string]Handler {
	return map[string]Handler{
		agentproto.TypeOpenSession:  m.handleOpen,
		agentproto.TypeCloseSession: m.handleClose,
	}
}

// Active returns the number of active (or opening) sessions.
func (m *SessionManager) Active() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// Shutdown refuses new sessions, ends every active one (SIGHUP, then
// SIGKILL after KillGrace) and waits for them until ctx ends.
func (m *SessionManager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.stop(errAgentStopping)
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("session manager shutdown: %w", ctx.Err())
	}
}

func (m *SessionManager) handleOpen(ctx context.Context, env agentproto.Envelope, s Sender) error {
	var o agentproto.OpenSession
	if err := env.Decode(&o); err != nil {
		return err
	}
	log := m.log.With("sessionId", o.SessionID, "kind", o.Kind)
	sess, err := m.reserve(o)
	if err != nil {
		log.Warn("session refused", "error", err)
		return m.answer(ctx, s, o.SessionID, err)
	}
	sctx, cancel := context.WithCancelCause(m.lifetime)
	sess.cancel = cancel
	go func() {
		defer m.wg.Done()
		defer m.release(sess)
		defer cancel(nil)
		m.run(sctx, ctx, o, s, log)
	}()
	return nil
}

// reserve validates o and takes a slot for it. On success the caller owns
// one count of m.wg.
func (m *SessionManager) reserve(o agentproto.OpenSession) (*session, error) {
	switch {
	case !sessionIDPattern.MatchString(o.SessionID) || o.SessionID == "." || o.SessionID == "..":
		return nil, fmt.Errorf("invalid session ID %q", o.SessionID)
	case o.ChannelToken == "":
		return nil, errors.New("open_session without a channel token: refusing to open a data channel")
	}
	switch o.Kind {
	case agentproto.SessionShell:
	case agentproto.SessionCommand:
		if strings.TrimSpace(o.Command) == "" {
			return nil, errors.New("an InteractiveCommands session needs a command")
		}
	case agentproto.SessionPort:
		if o.Port < 1 || o.Port > 65535 {
			return nil, fmt.Errorf("port forwarding: invalid port %d", o.Port)
		}
	default:
		return nil, fmt.Errorf("unknown session kind %q", o.Kind)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return nil, ErrSessionsClosed
	case m.sessions[o.SessionID] != nil:
		return nil, fmt.Errorf("session %s is already active on this node", o.SessionID)
	case len(m.sessions) >= m.cfg.MaxSessions:
		return nil, fmt.Errorf("session limit reached: %d sessions are already active on this node", len(m.sessions))
	}
	sess := &session{id: o.SessionID, kind: o.Kind}
	m.sessions[o.SessionID] = sess
	m.wg.Add(1) // under mu, so that Shutdown's Wait never races this Add
	return sess, nil
}

func (m *SessionManager) release(sess *session) {
	m.mu.Lock()
	if m.sessions[sess.id] == sess {
		delete(m.sessions, sess.id)
	}
	m.mu.Unlock()
}

// answer sends session_opened; err's message, if any, is the refusal.
func (m *SessionManager) answer(ctx context.Context, s Sender, id string, err error) error {
	so := agentproto.SessionOpened{SessionID: id}
	if err != nil {
		so.Error = err.Error()
	}
	env, merr := agentproto.NewEnvelope(agentproto.TypeSessionOpened, so)
	if merr != nil {
		return merr
	}
	if serr := s.Send(ctx, env); serr != nil {
		return fmt.Errorf("send session_opened for %s: %w", id, serr)
	}
	return nil
}

func (m *SessionManager) handleClose(_ context.Context, env agentproto.Envelope, _ Sender) error {
	var c agentproto.CloseSession
	if err := env.Decode(&c); err != nil {
		return err
	}
	m.mu.Lock()
	sess := m.sessions[c.SessionID]
	m.mu.Unlock()
	if sess == nil {
		m.log.Debug("close_session for a session that is not active", "sessionId", c.SessionID)
		return nil
	}
	m.log.Info("closing session on the server's request", "sessionId", c.SessionID, "reason", c.Reason)
	sess.cancel(errSessionClosedByServer)
	return nil
}

// run opens and runs one session. ctx is the session's; connCtx and s are
// the control connection the open_session came on, for session_opened.
func (m *SessionManager) run(ctx, connCtx context.Context, o agentproto.OpenSession, s Sender, log *slog.Logger) {
	refuse := func(err error) {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
		log.Warn("session could not be opened", "error", err)
		if serr := m.answer(connCtx, s, o.SessionID, err); serr != nil {
			log.Warn("could not report the failed session", "error", serr)
		}
	}
	var (
		spec ptySpec
		err  error
	)
	switch o.Kind {
	case agentproto.SessionPort:
		_, err = m.resolveForward(ctx, forwardHost(o.Host))
	default:
		spec, err = m.shellSpec(ctx, o)
	}
	if err != nil {
		refuse(err)
		return
	}
	dc, err := m.dial(ctx, o)
	if err != nil {
		refuse(err)
		return
	}
	switch o.Kind {
	case agentproto.SessionPort:
		if err := m.answer(connCtx, s, o.SessionID, nil); err != nil {
			log.Warn("could not report the opened session", "error", err)
		}
		log.Info("port session opened", "host", forwardHost(o.Host), "port", o.Port)
		m.runPort(ctx, dc, o, log)
	default:
		term, err := startPTY(spec)
		if err != nil {
			err = fmt.Errorf("start %s: %w", spec.path, err)
			m.closeChannel(dc, err.Error())
			refuse(err)
			return
		}
		if err := m.answer(connCtx, s, o.SessionID, nil); err != nil {
			log.Warn("could not report the opened session", "error", err)
		}
		log.Info("session opened", "user", spec.user, "pid", term.pid())
		m.runTerminal(ctx, dc, term, o.ShellProfile, log)
	}
	log.Info("session ended", "cause", context.Cause(ctx))
}

// dataURL is the session's data channel endpoint.
func (m *SessionManager) dataURL(id string) string {
	return endpoint(m.baseURL, agentproto.PathSessionData+url.PathEscape(id)+"/data")
}

// dial opens the session's data channel with the agent's credentials and
// the session's channel token, over the agent's HTTP client.
func (m *SessionManager) dial(ctx context.Context, o agentproto.OpenSession) (*datachannel.Conn, error) {
	h := m.header.Clone()
	h.Set(agentproto.HeaderChannelToken, o.ChannelToken)
	dctx, cancel := context.WithTimeout(ctx, m.cfg.DialTimeout)
	defer cancel()
	dc, resp, err := datachannel.Dial(dctx, m.dataURL(o.SessionID), &websocket.DialOptions{
		HTTPClient: m.cfg.HTTPClient,
		HTTPHeader: h,
	}, nil)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("open data channel: server answered HTTP %d", resp.StatusCode)
		}
		return nil, fmt.Errorf("open data channel: %w", err)
	}
	return dc, nil
}

// closeChannel ends a data channel politely: FrameClose with reason, then
// a normal closure.
func (m *SessionManager) closeChannel(dc *datachannel.Conn, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), closeWriteTimeout)
	defer cancel()
	_ = dc.WriteFrame(ctx, agentproto.FrameClose, []byte(reason))
	_ = dc.Close(websocket.StatusNormalClosure, "")
}

// terminal is a process running in a PTY (see pty_linux.go).
type terminal interface {
	io.ReadWriter
	pid() int
	resize(cols, rows int) error
	// wait blocks until the process exits and reports how.
	wait() agentproto.Exit
	// terminate sends SIGHUP to the process group and the terminal's
	// session, and SIGKILL to what is left after grace.
	terminate(grace time.Duration)
	// drainBy makes reads of output fail after t.
	drainBy(t time.Time)
	close() error
}

// runTerminal pumps a shell or command session until its process exits or
// the session ends, then reports the exit and closes the channel.
func (m *SessionManager) runTerminal(ctx context.Context, dc *datachannel.Conn, term terminal, profile string, log *slog.Logger) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Channel I/O must not use ctx: cancelling it would make
	// coder/websocket drop the connection before FrameExit is sent.
	ioCtx := context.WithoutCancel(ctx)

	var wg sync.WaitGroup
	wg.Go(func() {
		if profile != "" {
			if _, err := term.Write([]byte(strings.TrimRight(profile, "\n") + "\n")); err != nil {
				log.Debug("could not write the shell profile", "error", err)
			}
		}
		for {
			typ, payload, err := dc.ReadFrame(ioCtx)
			if err != nil {
				cancel(fmt.Errorf("%w: %w", errDataChannelLost, err))
				return
			}
			switch typ {
			case agentproto.FrameData:
				if _, err := term.Write(payload); err != nil {
					log.Debug("terminal input failed", "error", err)
				}
			case agentproto.FrameResize:
				var r agentproto.Resize
				if err := json.Unmarshal(payload, &r); err != nil || r.Cols < 1 || r.Rows < 1 {
					log.Debug("ignoring malformed resize", "payload", string(payload))
					continue
				}
				if err := term.resize(min(r.Cols, maxTermDimension), min(r.Rows, maxTermDimension)); err != nil {
					log.Debug("resize failed", "error", err)
				}
			case agentproto.FrameClose:
				cancel(errSessionClosedByPeer)
				return
			default:
				log.Debug("ignoring data channel frame", "type", typ)
			}
		}
	})
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		buf := make([]byte, ptyBufBytes)
		for {
			n, err := term.Read(buf)
			if n > 0 {
				if werr := dc.WriteFrame(ioCtx, agentproto.FrameData, buf[:n]); werr != nil {
					cancel(fmt.Errorf("%w: %w", errDataChannelLost, werr))
					return
				}
			}
			if err != nil {
				return // EIO once no process holds the terminal any more
			}
		}
	}()
	exited := make(chan agentproto.Exit, 1)
	go func() { exited <- term.wait() }()

	var exit agentproto.Exit
	select {
	case exit = <-exited:
	case <-ctx.Done():
		log.Info("ending session", "cause", context.Cause(ctx))
		term.terminate(m.cfg.KillGrace)
		exit = <-exited
	}
	term.drainBy(time.Now().Add(ptyDrainTimeout))
	<-outDone

	wctx, wcancel := context.WithTimeout(ioCtx, closeWriteTimeout)
	b, _ := json.Marshal(exit)
	if err := dc.WriteFrame(wctx, agentproto.FrameExit, b); err == nil {
		_ = dc.WriteFrame(wctx, agentproto.FrameClose, nil)
	}
	wcancel()
	_ = dc.Close(websocket.StatusNormalClosure, "")
	_ = term.close() // unblocks an input write stuck on a full terminal
	wg.Wait()
	log.Info("session process exited", "code", exit.Code, "signal", exit.Signal)
}

// forwardHost is a Port session's destination host, localhost by default.
func forwardHost(h string) string {
	if h == "" {
		return "localhost"
	}
	return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
}

// resolveForward resolves a Port session host and refuses it if the name is
// denied or ANY of its addresses is: the agentproto.DeniedForwardHosts
// (cloud metadata and time services) and every link-local address
// (169.254.0.0/16, fe80::/10), where metadata services live.
func (m *SessionManager) resolveForward(ctx context.Context, host string) ([]net.IP, error) {
	name := strings.TrimSuffix(host, ".")
	for _, d := range agentproto.DeniedForwardHosts {
		if strings.EqualFold(name, d) {
			return nil, fmt.Errorf("port forwarding to %s is not allowed (cloud metadata or time service)", host)
		}
	}
	if ip := net.ParseIP(name); ip != nil {
		if deniedForwardIP(ip) {
			return nil, fmt.Errorf("port forwarding to %s is not allowed (cloud metadata or link-local address)", host)
		}
		return []net.IP{ip}, nil
	}
	ips, err := m.cfg.LookupIP(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("port forwarding: resolve %s: %w", host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("port forwarding: %s has no address", host)
	}
	for _, ip := range ips {
		if deniedForwardIP(ip) {
			return nil, fmt.Errorf("port forwarding to %s is not allowed: it resolves to %s (cloud metadata or link-local address)", host, ip)
		}
	}
	return ips, nil
}

// deniedForwardIP reports whether ip is a denied forwarding address.
func deniedForwardIP(ip net.IP) bool {
	if ip.IsLinkLocalUnicast() { // 169.254.0.0/16 and fe80::/10, also IPv4-mapped
		return true
	}
	for _, d := range agentproto.DeniedForwardHosts {
		if dip := net.ParseIP(d); dip != nil && dip.Equal(ip) {
			return true
		}
	}
	return false
}

// runPort serves a Port session: the data channel's FrameData stream
// carries a yamux session in which the agent is the server; every stream
// the client opens is one TCP connection to the destination.
func (m *SessionManager) runPort(ctx context.Context, dc *datachannel.Conn, o agentproto.OpenSession, log *slog.Logger) {
	host, port := forwardHost(o.Host), strconv.Itoa(o.Port)
	// Frames other than FrameData (a resize from a confused client) are
	// ignored; FrameClose ends the yamux session.
	st := dc.Stream(context.WithoutCancel(ctx), func(byte, []byte) error { return nil })
	mux, err := yamux.Server(st, datachannel.YamuxConfig())
	if err != nil { // only a bad config
		log.Error("port session: yamux", "error", err)
		_ = st.Close()
		return
	}
	stop := context.AfterFunc(ctx, func() { _ = mux.Close() })
	defer stop()
	var wg sync.WaitGroup
	for {
		stream, err := mux.AcceptStream()
		if err != nil {
			break // the session ended, from either side
		}
		wg.Go(func() { m.forward(ctx, stream, host, port, log) })
	}
	_ = mux.Close() // closes the stream: FrameClose, then the WebSocket
	wg.Wait()
}

// forward connects one yamux stream to host:port. A failed dial closes
// that stream only.
func (m *SessionManager) forward(ctx context.Context, stream *yamux.Stream, host, port string, log *slog.Logger) {
	defer stream.Close()
	conn, err := m.dialForward(ctx, host, port)
	if err != nil {
		log.Info("port session: connection refused", "error", err)
		return
	}
	tcp := conn.(*net.TCPConn)
	defer tcp.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		// Client → destination; at the client's EOF, half-close.
		buf := make([]byte, forwardBufBytes)
		if _, err := io.CopyBuffer(onlyWriter{tcp}, onlyReader{stream}, buf); err != nil {
			_ = tcp.Close()
			_ = stream.Close()
			return
		}
		_ = tcp.CloseWrite()
	})
	// Destination → client; at the destination's EOF, half-close (yamux
	// Close sends FIN and keeps reading).
	buf := make([]byte, forwardBufBytes)
	if _, err := io.CopyBuffer(onlyWriter{stream}, onlyReader{tcp}, buf); err != nil {
		_ = tcp.Close()
	}
	_ = stream.Close()
	wg.Wait()
}

// dialForward resolves host again (DNS may have changed since the
// session opened), refuses denied addresses, and dials the checked
// addresses themselves so that a second resolution cannot sneak a denied
// one in.
func (m *SessionManager) dialForward(ctx context.Context, host, port string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ForwardDialTimeout)
	defer cancel()
	ips, err := m.resolveForward(ctx, host)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	var firstErr error
	for _, ip := range ips {
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, fmt.Errorf("dial %s: %w", net.JoinHostPort(host, port), firstErr)
}

// processIsRoot reports whether the agent runs as root, and so can run
// sessions as other users.
func processIsRoot() bool { return os.Geteuid() == 0 }

// onlyWriter and onlyReader hide ReaderFrom/WriterTo so io.CopyBuffer uses
// our 64 KiB buffer instead of small internal ones.
type onlyWriter struct{ io.Writer }
type onlyReader struct{ io.Reader }
