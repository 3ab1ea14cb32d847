package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/store"
)

// Serve upgrades an already authenticated agent request to the WebSocket and
// serves it until either side closes. The caller has verified that the
// request carries instanceID's credentials.
func (g *Gateway) Serve(w http.ResponseWriter, r *http.Request, instanceID string) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		g.log.Warn("agent upgrade failed", "instanceId", instanceID, "err", err)
		return
	}
	ws.SetReadLimit(agentproto.MaxMessageBytes)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c := &conn{ws: ws, cancel: cancel}

	if err := g.handshake(ctx, c, instanceID); err != nil {
		g.log.Warn("agent handshake failed", "instanceId", instanceID, "err", err)
		c.close(websocket.StatusProtocolError, "handshake failed")
		return
	}

	g.mu.Lock()
	old := g.conns[instanceID]
	g.conns[instanceID] = c
	g.connected.Set(float64(len(g.conns)))
	hooks := slices.Clone(g.onConnect)
	g.mu.Unlock()
	if old != nil {
		// The agent reconnected before we noticed the old socket die.
		old.close(websocket.StatusGoingAway, "replaced by a newer connection")
	}
	g.log.Info("agent connected", "instanceId", instanceID, "remote", r.RemoteAddr)
	g.setRoute(ctx, instanceID)
	for _, fn := range hooks {
		go fn(ctx, instanceID)
	}

	err = g.readLoop(ctx, c, instanceID)

	g.mu.Lock()
	current := g.conns[instanceID] == c
	if current {
		delete(g.conns, instanceID)
	}
	g.connected.Set(float64(len(g.conns)))
	g.mu.Unlock()
	c.close(websocket.StatusNormalClosure, "")
	if current {
		g.clearRoute(context.WithoutCancel(ctx), instanceID)
	}
	g.log.Info("agent disconnected", "instanceId", instanceID, "reason", err)
}

func (g *Gateway) handshake(ctx context.Context, c *conn, instanceID string) error {
	helloCtx, cancel := context.WithTimeout(ctx, g.cfg.HelloTimeout)
	defer cancel()
	var env agentproto.Envelope
	if err := wsjson.Read(helloCtx, c.ws, &env); err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	if env.Type != agentproto.TypeHello {
		return fmt.Errorf("first message is %q, want %q", env.Type, agentproto.TypeHello)
	}
	var hello agentproto.Hello
	if err := env.Decode(&hello); err != nil {
		return err
	}
	if err := g.cfg.Store.UpdateInstanceHost(ctx, instanceID, HostUpdateFrom(hello.Host), g.cfg.Now()); err != nil {
		return fmt.Errorf("record hello: %w", err)
	}
	welcome, err := agentproto.NewEnvelope(agentproto.TypeWelcome, agentproto.Welcome{
		ProtocolVersion:  agentproto.ProtocolVersion,
		HeartbeatSeconds: max(int(g.cfg.Heartbeat/time.Second), 1),
		ServerTime:       g.cfg.Now().UTC(),
	})
	if err != nil {
		return err
	}
	return c.write(ctx, welcome)
}

func (g *Gateway) readLoop(ctx context.Context, c *conn, instanceID string) error {
	for {
		var env agentproto.Envelope
		if err := wsjson.Read(ctx, c.ws, &env); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		switch env.Type {
		case agentproto.TypeHeartbeat:
			g.heartbeat(ctx, instanceID, env)
		default:
			g.mu.Lock()
			h := g.handlers[env.Type]
			g.mu.Unlock()
			if h == nil {
				g.log.Debug("ignoring unknown agent message", "instanceId", instanceID, "type", env.Type)
				continue
			}
			if err := h(ctx, instanceID, env); err != nil {
				g.log.Warn("agent message failed", "instanceId", instanceID, "type", env.Type, "err", err)
			}
		}
	}
}

func (g *Gateway) heartbeat(ctx context.Context, instanceID string, env agentproto.Envelope) {
	var hb agentproto.Heartbeat
	if len(env.Payload) > 0 {
		if err := env.Decode(&hb); err != nil {
			g.log.Warn("bad heartbeat", "instanceId", instanceID, "err", err)
		}
	}
	if hb.Host != nil {
		if err := g.cfg.Store.UpdateInstanceHost(ctx, instanceID, HostUpdateFrom(*hb.Host), g.cfg.Now()); err != nil {
			g.log.Warn("record host change", "instanceId", instanceID, "err", err)
		}
		return
	}
	g.mu.Lock()
	g.pinged[instanceID] = struct{}{}
	g.mu.Unlock()
}

// HostUpdateFrom converts agent-reported host facts, clipping them to the
// column sizes: an agent is authenticated but its input is still untrusted.
func HostUpdateFrom(h agentproto.HostInfo) store.HostUpdate {
	ips := h.IPAddresses
	if len(ips) > 32 {
		ips = ips[:32]
	}
	clipped := make([]string, 0, len(ips))
	for _, ip := range ips {
		clipped = append(clipped, clip(ip, 64))
	}
	return store.HostUpdate{
		Hostname:        clip(h.Hostname, 256),
		PlatformType:    clip(h.PlatformType, 32),
		PlatformName:    clip(h.PlatformName, 128),
		PlatformVersion: clip(h.PlatformVersion, 64),
		Kernel:          clip(h.Kernel, 128),
		Architecture:    clip(h.Architecture, 32),
		AgentVersion:    clip(h.AgentVersion, 32),
		IPAddresses:     clipped,
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// setRoute records that this replica holds the agent's connection. A
// failure only costs sessions reaching the agent through other replicas.
func (g *Gateway) setRoute(ctx context.Context, instanceID string) {
	if g.cfg.Routes == nil {
		return
	}
	if err := g.cfg.Routes.SetAgentRoute(ctx, instanceID, g.cfg.ReplicaURL, g.cfg.Now()); err != nil {
		g.log.Warn("record agent route", "instanceId", instanceID, "err", err)
	}
}

func (g *Gateway) clearRoute(ctx context.Context, instanceID string) {
	if g.cfg.Routes == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := g.cfg.Routes.ClearAgentRoute(ctx, instanceID, g.cfg.ReplicaURL); err != nil {
		g.log.Warn("clear agent route", "instanceId", instanceID, "err", err)
	}
}
