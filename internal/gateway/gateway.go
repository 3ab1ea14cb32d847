// Package gateway is the agent connection hub: it holds the long-lived
// WebSocket of every agent connected to this server replica, turns agent
// heartbeats into ping status in the store, and pushes messages to agents.
//
// Several replicas may run at once. Nothing here is authoritative across
// replicas except the store: heartbeats are written there in batches, and the
// ConnectionLost sweep is an idempotent conditional UPDATE that any replica
// may run.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/store"
)

// ErrNotConnected is returned by Send when the agent holds no connection to
// this replica.
var ErrNotConnected = errors.New("agent not connected to this server")

// Store is what the gateway needs from the database.
type Store interface {
	UpdateInstanceHost(ctx context.Context, id string, h store.HostUpdate, now time.Time) error
	TouchInstances(ctx context.Context, ids []string, now time.Time) ([]string, error)
	MarkConnectionLost(ctx context.Context, lastPingBefore time.Time) (int64, error)
}

// Handler processes one agent message of a given type.
type Handler func(ctx context.Context, instanceID string, env agentproto.Envelope) error

// Config configures a Gateway.
type Config struct {
	Store  Store
	Logger *slog.Logger
	// Registerer receives the gateway's metrics; nil means none.
	Registerer prometheus.Registerer
	// Heartbeat is the interval agents are told to heartbeat at.
	Heartbeat time.Duration
	// ConnectionLostAfter marks a node ConnectionLost when no heartbeat
	// arrived for this long. At least twice Heartbeat.
	ConnectionLostAfter time.Duration
	// FlushInterval batches heartbeat writes to the store.
	FlushInterval time.Duration
	// HelloTimeout bounds the wait for an agent's first message.
	HelloTimeout time.Duration
	// Routes, with ReplicaURL, records which replica holds each agent's
	// connection so other replicas can forward session streams here; nil
	// (a single replica) records nothing.
	Routes RouteStore
	// ReplicaURL is the URL other replicas reach this one at.
	ReplicaURL string
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// RouteStore records which replica holds an agent's connection.
type RouteStore interface {
	SetAgentRoute(ctx context.Context, instanceID, gatewayURL string, now time.Time) error
	ClearAgentRoute(ctx context.Context, instanceID, gatewayURL string) error
}

// CheckAndSetDefaults validates the configuration and fills defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Store == nil {
		return errors.New("gateway: Store is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if (c.Routes == nil) != (c.ReplicaURL == "") {
		return errors.New("gateway: Routes and ReplicaURL go together")
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 20 * time.Second
	}
	if c.ConnectionLostAfter <= 0 {
		c.ConnectionLostAfter = 3 * c.Heartbeat
	}
	if c.ConnectionLostAfter < 2*c.Heartbeat {
		return fmt.Errorf("gateway: connection-lost window %s must be at least twice the heartbeat %s", c.ConnectionLostAfter, c.Heartbeat)
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Gateway tracks the agent connections of this replica.
type Gateway struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	conns     map[string]*conn
	pinged    map[string]struct{}
	handlers  map[string]Handler
	onConnect []func(ctx context.Context, instanceID string)

	connected prometheus.Gauge
}

// New returns a Gateway. Call Run to start its background loops.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "gateway"),
		conns:    map[string]*conn{},
		pinged:   map[string]struct{}{},
		handlers: map[string]Handler{},
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fleetops_gateway_connected_agents",
			Help: "Agents holding a connection to this server replica.",
		}),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(g.connected); err != nil {
			return nil, fmt.Errorf("register gateway metrics: %w", err)
		}
	}
	return g, nil
}

// Handle registers the handler for agent messages of type typ. Later
// capabilities (command results, session events) plug in here.
func (g *Gateway) Handle(typ string, h Handler) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.handlers[typ] = h
}

// OnConnect registers fn to run, in its own goroutine, each time an agent
// completes its handshake; ctx ends with that connection. Delivery of work
// queued while the agent was away starts here.
func (g *Gateway) OnConnect(fn func(ctx context.Context, instanceID string)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.onConnect = append(g.onConnect, fn)
}

// Heartbeat is the interval agents are asked to heartbeat at.
func (g *Gateway) Heartbeat() time.Duration { return g.cfg.Heartbeat }

// Connected returns how many agents are connected to this replica.
func (g *Gateway) Connected() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// IsConnected reports whether the agent holds a connection to this replica.
func (g *Gateway) IsConnected(instanceID string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.conns[instanceID]
	return ok
}

// Run flushes heartbeats and sweeps for lost connections until ctx ends,
// then closes every agent connection.
func (g *Gateway) Run(ctx context.Context) error {
	flush := time.NewTicker(g.cfg.FlushInterval)
	defer flush.Stop()
	sweepEvery := max(g.cfg.ConnectionLostAfter/4, 250*time.Millisecond)
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	defer g.closeAll()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-flush.C:
			g.flushPings(ctx)
		case <-sweep.C:
			g.sweep(ctx)
		}
	}
}

func (g *Gateway) flushPings(ctx context.Context) {
	g.mu.Lock()
	if len(g.pinged) == 0 {
		g.mu.Unlock()
		return
	}
	ids := make([]string, 0, len(g.pinged))
	for id := range g.pinged {
		ids = append(ids, id)
	}
	g.pinged = map[string]struct{}{}
	g.mu.Unlock()

	gone, err := g.cfg.Store.TouchInstances(ctx, ids, g.cfg.Now())
	if err != nil {
		g.log.Warn("record heartbeats", "count", len(ids), "err", err)
		// Put them back so the next flush retries; a lost ping only risks a
		// spurious ConnectionLost, but there is no reason to accept it.
		g.mu.Lock()
		for _, id := range ids {
			g.pinged[id] = struct{}{}
		}
		g.mu.Unlock()
		return
	}
	for _, id := range gone {
		g.Kick(id, "instance deregistered")
	}
}

func (g *Gateway) sweep(ctx context.Context) {
	n, err := g.cfg.Store.MarkConnectionLost(ctx, g.cfg.Now().Add(-g.cfg.ConnectionLostAfter))
	if err != nil {
		g.log.Warn("sweep lost connections", "err", err)
		return
	}
	if n > 0 {
		g.log.Info("nodes marked ConnectionLost", "count", n)
	}
}

// Send pushes one message to a connected agent.
func (g *Gateway) Send(ctx context.Context, instanceID string, env agentproto.Envelope) error {
	g.mu.Lock()
	c := g.conns[instanceID]
	g.mu.Unlock()
	if c == nil {
		return fmt.Errorf("send %s to %s: %w", env.Type, instanceID, ErrNotConnected)
	}
	return c.write(ctx, env)
}

// Kick tells an agent it is no longer accepted and closes its connection.
func (g *Gateway) Kick(instanceID, reason string) {
	g.mu.Lock()
	c := g.conns[instanceID]
	g.mu.Unlock()
	if c == nil {
		return
	}
	env, err := agentproto.NewEnvelope(agentproto.TypeDisconnect, agentproto.Disconnect{Reason: reason})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = c.write(ctx, env)
		cancel()
	}
	c.close(websocket.StatusPolicyViolation, reason)
}

func (g *Gateway) closeAll() {
	g.mu.Lock()
	conns := make([]*conn, 0, len(g.conns))
	for _, c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		c.close(websocket.StatusGoingAway, "server shutting down")
	}
}

// conn is one agent's WebSocket. Writes are serialized by mu.
type conn struct {
	ws     *websocket.Conn
	cancel context.CancelFunc
	mu     sync.Mutex
}

func (c *conn) write(ctx context.Context, env agentproto.Envelope) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := wsjson.Write(ctx, c.ws, env); err != nil {
		return fmt.Errorf("write %s: %w", env.Type, err)
	}
	return nil
}

func (c *conn) close(code websocket.StatusCode, reason string) {
	_ = c.ws.Close(code, reason)
	c.cancel()
}
