package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// ErrDeregistered ends Run: the server sent TypeDisconnect, it will not accept
// this node again. The host must register anew.
var ErrDeregistered = errors.New("node deregistered by the server")

// ErrUnauthorized is the cause of a connection attempt whose upgrade the
// server answered 401 or 403. Run keeps retrying with the capped backoff: a
// gateway mid-restart (or behind a briefly misconfigured proxy) can refuse a
// valid node, and only TypeDisconnect is authoritative.
var ErrUnauthorized = errors.New("server rejected the agent's credentials")

// Sender writes one envelope to the current connection. Writes are serialized;
// Send is safe for concurrent use. After the connection is gone Send fails.
type Sender interface {
	Send(ctx context.Context, env agentproto.Envelope) error
}

// Handler handles one message type received from the server. ctx ends with
// the connection. Handlers run on the connection's read loop, one at a time:
// a handler that does long work (a command, a session) starts its own
// goroutine and returns. An error is logged; the connection stays up.
type Handler func(ctx context.Context, env agentproto.Envelope, s Sender) error

// Config configures an Agent. Zero values take the defaults documented on each
// field (see CheckAndSetDefaults).
type Config struct {
	// Identity is the node's registered identity. Required.
	Identity Identity
	// Host reports the host facts sent in Hello and, when they change, in a
	// heartbeat. Default HostInfo. The swarm harness injects fakes.
	Host func() agentproto.HostInfo
	// Logger receives the agent's logs. Default: discard.
	Logger *slog.Logger
	// HTTPClient dials the gateway. Default: built from Identity.Transport().
	HTTPClient *http.Client
	// Handlers maps message types to handlers. The loop itself handles
	// welcome and disconnect; hello and heartbeat are agent-to-server.
	// Unknown types are logged at debug and ignored.
	Handlers map[string]Handler
	// Backoff paces reconnects. Defaults: Base 1s, Cap 60s, Rand
	// math/rand/v2.Int64N.
	Backoff Backoff
	// StableAfter: a connection that was welcomed and stayed up at least
	// this long resets the backoff attempt counter. Default 30s.
	StableAfter time.Duration
	// DialTimeout bounds the TCP, TLS and upgrade handshake. Default 30s.
	DialTimeout time.Duration
	// WelcomeTimeout bounds the wait for Welcome after Hello. Default 30s.
	WelcomeTimeout time.Duration
	// WriteTimeout bounds one message write. Default 30s.
	WriteTimeout time.Duration
	// DefaultHeartbeat is used when Welcome.HeartbeatSeconds is not
	// positive. Default 60s.
	DefaultHeartbeat time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// OnConnect, if set, is called once per welcomed connection with that
	// connection's Sender, after the welcome and before the first server
	// message is read. ctx ends with the connection. It runs on the
	// connection's goroutine, so it must return quickly; long work (such
	// as resending unacknowledged command results) belongs on its own
	// goroutine bound to ctx. CommandRunner.OnConnect is meant for it.
	OnConnect func(ctx context.Context, s Sender)
}

// reservedTypes are handled by the connection loop (or only sent by the
// agent) and cannot take a Handler.
var reservedTypes = []string{agentproto.TypeHello, agentproto.TypeWelcome, agentproto.TypeHeartbeat, agentproto.TypeDisconnect}

// CheckAndSetDefaults validates the configuration and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if err := c.Identity.Validate(); err != nil {
		return err
	}
	if err := c.Identity.Transport().CheckURL(c.Identity.ServerURL); err != nil {
		return err
	}
	for typ, h := range c.Handlers {
		if slices.Contains(reservedTypes, typ) {
			return fmt.Errorf("handler for reserved message type %q", typ)
		}
		if h == nil {
			return fmt.Errorf("nil handler for message type %q", typ)
		}
	}
	if c.Host == nil {
		c.Host = HostInfo
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HTTPClient == nil {
		hc, err := c.Identity.Transport().HTTPClient()
		if err != nil {
			return err
		}
		c.HTTPClient = hc
	}
	if c.Backoff.Base <= 0 {
		c.Backoff.Base = time.Second
	}
	if c.Backoff.Cap <= 0 {
		c.Backoff.Cap = 60 * time.Second
	}
	if c.Backoff.Cap < c.Backoff.Base {
		return fmt.Errorf("backoff cap %s is below base %s", c.Backoff.Cap, c.Backoff.Base)
	}
	if c.Backoff.Rand == nil {
		c.Backoff.Rand = rand.Int64N
	}
	setDefault(&c.StableAfter, 30*time.Second)
	setDefault(&c.DialTimeout, 30*time.Second)
	setDefault(&c.WelcomeTimeout, 30*time.Second)
	setDefault(&c.WriteTimeout, 30*time.Second)
	setDefault(&c.DefaultHeartbeat, 60*time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Agent holds one node's connection to the gateway and reconnects it.
type Agent struct {
	cfg        Config
	log        *slog.Logger
	connectURL string
	header     http.Header
	handlers   map[string]Handler

	running   atomic.Bool
	connected atomic.Bool
}

// New validates cfg and returns an Agent ready to Run.
func New(cfg Config) (*Agent, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	base, _ := parseServerURL(cfg.Identity.ServerURL) // validated
	h := http.Header{}
	h.Set(agentproto.HeaderInstanceID, cfg.Identity.InstanceID)
	h.Set("Authorization", "Bearer "+cfg.Identity.Secret)
	h.Set("User-Agent", "fleetops-agent/"+Version)
	return &Agent{
		cfg:        cfg,
		log:        cfg.Logger.With("instanceId", cfg.Identity.InstanceID),
		connectURL: endpoint(base, agentproto.PathConnect), // coder/websocket maps http(s) to ws(s)
		header:     h,
		handlers:   maps.Clone(cfg.Handlers),
	}, nil
}

// Connected reports whether the agent currently holds a welcomed connection.
func (a *Agent) Connected() bool { return a.connected.Load() }

// Run connects to the gateway and keeps reconnecting until ctx ends (Run
// returns nil) or the server deregisters the node (ErrDeregistered).
//
// Backoff: attempt n waits rand[0, min(Cap, Base*2^n)). The attempt counter
// resets only after a connection that was welcomed AND stayed up for
// StableAfter. Resetting on the welcome alone would let a gateway that
// accepts and then dies (crash loop, bad deploy) be hammered by the whole
// fleet at the base rate; requiring both keeps the fleet backing off until
// the server is actually healthy, at the price of one extra short wait after
// a brief connection.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("agent is already running")
	}
	defer a.running.Store(false)

	attempt := 0
	for {
		start := a.cfg.Now()
		welcomed, err := a.connect(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrDeregistered) {
			a.log.Error("server deregistered this node; not reconnecting (register again to rejoin)", "error", err)
			return err
		}
		if !welcomed.IsZero() && a.cfg.Now().Sub(welcomed) >= a.cfg.StableAfter {
			attempt = 0
		}
		delay := a.cfg.Backoff.Delay(attempt)
		if attempt < 64 {
			attempt++
		}
		switch {
		case errors.Is(err, ErrUnauthorized):
			a.log.Error("gateway refused this node's credentials; retrying (if the node was deregistered, run `fleetops-agent register` again)",
				"error", err, "retryIn", delay)
		default:
			a.log.Warn("gateway connection failed or lost; reconnecting", "error", err,
				"connectedFor", a.cfg.Now().Sub(start).Round(time.Millisecond), "retryIn", delay, "attempt", attempt)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// connect runs one connection from dial to loss. It returns when the
// connection was welcomed (zero if never) and why it ended.
func (a *Agent) connect(ctx context.Context) (welcomed time.Time, err error) {
	dctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	ws, resp, err := websocket.Dial(dctx, a.connectURL, &websocket.DialOptions{
		HTTPClient: a.cfg.HTTPClient,
		HTTPHeader: a.header,
	})
	cancel()
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return welcomed, fmt.Errorf("%w (HTTP %d)", ErrUnauthorized, resp.StatusCode)
		}
		return welcomed, fmt.Errorf("dial gateway: %w", err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(agentproto.MaxMessageBytes)

	// The connection's own context is detached from ctx so that on shutdown
	// we can close with a proper close frame (a cancelled read context
	// makes coder/websocket drop the TCP connection instead).
	connCtx, cancelConn := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelConn(nil)
	stop := context.AfterFunc(ctx, func() {
		_ = ws.Close(websocket.StatusGoingAway, "agent stopping")
		cancelConn(ctx.Err())
	})
	defer stop()

	c := &conn{ws: ws, writeTimeout: a.cfg.WriteTimeout}
	host := a.cfg.Host()
	hello, err := agentproto.NewEnvelope(agentproto.TypeHello, agentproto.Hello{ProtocolVersion: agentproto.ProtocolVersion, Host: host})
	if err != nil {
		return welcomed, err
	}
	if err := c.Send(connCtx, hello); err != nil {
		return welcomed, fmt.Errorf("send hello: %w", err)
	}

	w, err := a.awaitWelcome(connCtx, ws)
	if err != nil {
		return welcomed, err
	}
	welcomed = a.cfg.Now()
	every := time.Duration(w.HeartbeatSeconds) * time.Second
	if every <= 0 {
		every = a.cfg.DefaultHeartbeat
	}
	attrs := []any{"server", a.cfg.Identity.ServerURL, "protocolVersion", w.ProtocolVersion, "heartbeat", every}
	if !w.ServerTime.IsZero() {
		skew := w.ServerTime.Sub(welcomed)
		attrs = append(attrs, "clockSkew", skew.Round(time.Millisecond))
		if skew.Abs() > time.Minute {
			a.log.Warn("host clock differs from the server's by more than a minute", "clockSkew", skew.Round(time.Second))
		}
	}
	a.log.Info("connected to gateway", attrs...)
	a.connected.Store(true)
	defer a.connected.Store(false)

	if a.cfg.OnConnect != nil {
		a.cfg.OnConnect(connCtx, c)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.heartbeats(connCtx, c, every, host); err != nil {
			cancelConn(err)
		}
	})
	err = a.readLoop(connCtx, ws, c)
	if cause := context.Cause(connCtx); cause != nil {
		err = cause // the heartbeat's failure, or shutdown
	}
	cancelConn(err)
	wg.Wait()
	return welcomed, err
}

// awaitWelcome reads the server's answer to Hello.
func (a *Agent) awaitWelcome(ctx context.Context, ws *websocket.Conn) (agentproto.Welcome, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.WelcomeTimeout)
	defer cancel()
	env, err := readEnvelope(ctx, ws)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return agentproto.Welcome{}, fmt.Errorf("no welcome within %s", a.cfg.WelcomeTimeout)
		}
		return agentproto.Welcome{}, fmt.Errorf("await welcome: %w", err)
	}
	switch env.Type {
	case agentproto.TypeWelcome:
		var w agentproto.Welcome
		if err := env.Decode(&w); err != nil {
			return w, err
		}
		return w, nil
	case agentproto.TypeDisconnect:
		return agentproto.Welcome{}, a.disconnected(ws, env)
	default:
		return agentproto.Welcome{}, fmt.Errorf("expected %s, got %q", agentproto.TypeWelcome, env.Type)
	}
}

// readLoop dispatches server messages until the connection fails.
func (a *Agent) readLoop(ctx context.Context, ws *websocket.Conn, s Sender) error {
	for {
		env, err := readEnvelope(ctx, ws)
		var bad *badMessageError
		switch {
		case errors.As(err, &bad):
			a.log.Warn("ignoring malformed message from server", "error", err)
			continue
		case err != nil:
			return err
		}
		switch env.Type {
		case agentproto.TypeDisconnect:
			return a.disconnected(ws, env)
		case agentproto.TypeWelcome:
			a.log.Debug("ignoring repeated welcome")
			continue
		}
		h, ok := a.handlers[env.Type]
		if !ok {
			a.log.Debug("ignoring message of unknown type", "type", env.Type, "id", env.ID)
			continue
		}
		if err := h(ctx, env, s); err != nil {
			a.log.Warn("message handler failed", "type", env.Type, "id", env.ID, "error", err)
		}
	}
}

// disconnected handles TypeDisconnect: close politely and end Run.
func (a *Agent) disconnected(ws *websocket.Conn, env agentproto.Envelope) error {
	var d agentproto.Disconnect
	if err := env.Decode(&d); err != nil {
		d.Reason = "(no reason given)"
	}
	_ = ws.Close(websocket.StatusNormalClosure, "deregistered") // bounded by coder/websocket's close timeouts
	return fmt.Errorf("%w: %s", ErrDeregistered, d.Reason)
}

// heartbeats sends TypeHeartbeat every interval until ctx ends or a send
// fails. Host facts ride along only when they changed since last sent.
func (a *Agent) heartbeats(ctx context.Context, s Sender, every time.Duration, sent agentproto.HostInfo) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var hb agentproto.Heartbeat
		if cur := a.cfg.Host(); !sameHost(cur, sent) {
			hb.Host = &cur
		}
		env, err := agentproto.NewEnvelope(agentproto.TypeHeartbeat, hb)
		if err != nil {
			return err
		}
		if err := s.Send(ctx, env); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("send heartbeat: %w", err)
		}
		if hb.Host != nil {
			sent = *hb.Host
		}
	}
}

// sameHost compares deeply so fields added to HostInfo later count too.
func sameHost(a, b agentproto.HostInfo) bool { return reflect.DeepEqual(a, b) }

// badMessageError marks a message that could not be decoded; the loop skips
// it rather than dropping the connection.
type badMessageError struct{ err error }

func (e *badMessageError) Error() string { return e.err.Error() }
func (e *badMessageError) Unwrap() error { return e.err }

func readEnvelope(ctx context.Context, ws *websocket.Conn) (agentproto.Envelope, error) {
	_, b, err := ws.Read(ctx)
	if err != nil {
		return agentproto.Envelope{}, err
	}
	var env agentproto.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return env, &badMessageError{fmt.Errorf("decode envelope: %w", err)}
	}
	if env.Type == "" {
		return env, &badMessageError{errors.New("envelope without type")}
	}
	return env, nil
}

// conn is the write side of one connection; a mutex serializes writers
// (heartbeats, handlers) without a goroutine per connection.
type conn struct {
	ws           *websocket.Conn
	writeTimeout time.Duration
	mu           sync.Mutex
}

func (c *conn) Send(ctx context.Context, env agentproto.Envelope) error {
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("marshal %s: %w", env.Type, err)
	}
	if len(b) > agentproto.MaxMessageBytes {
		return fmt.Errorf("%s message of %d bytes exceeds the %d byte limit", env.Type, len(b), agentproto.MaxMessageBytes)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.writeTimeout)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, b)
}
