package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetops/fleetops/agent"
	"github.com/fleetops/fleetops/agent/agentproto"
)

// swarmOnlyNoop is the stderr of any step but fleetops:noop on a swarm node.
const swarmOnlyNoop = "swarm nodes only run fleetops:noop"

type swarmFlags struct {
	server, activationID, activationCode, stateDir string
	caFile, fingerprint                            string
	insecure                                       bool
	count, registerParallel                        int
	dialRate                                       float64
	nodeLogLevel                                   string
}

func (c *cli) swarmCmd() *cobra.Command {
	var f swarmFlags
	cmd := &cobra.Command{
		Use:   "swarm",
		Short: "Load harness: run N simulated nodes in this process",
		Long: "swarm registers N simulated nodes with one activation (identities are kept in\n" +
			"STATE_DIR/node-NNNNN, so a rerun reuses them), then holds N agent connections\n" +
			"with the real connection and protocol code. The nodes report fake host facts\n" +
			"(hostname swarm-NNNNN) and run only fleetops:noop steps; any other action fails\n" +
			"at once. A line \"all N nodes connected\" is printed when every node is up.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.swarm(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "", "server base URL (required)")
	fl.StringVar(&f.activationID, "activation-id", "", "activation ID, with room for --count registrations (required for new nodes)")
	fl.StringVar(&f.activationCode, "activation-code", "", "activation code (required for new nodes; never logged)")
	fl.IntVar(&f.count, "count", 1, "number of simulated nodes")
	fl.StringVar(&f.stateDir, "state-dir", "fleetops-swarm", "directory holding one node-NNNNN state dir per node")
	fl.StringVar(&f.caFile, "ca-file", "", "PEM CA bundle to verify the server with, instead of the system roots")
	fl.StringVar(&f.fingerprint, "server-fingerprint", "", "pin the server's leaf certificate: sha256:<hex of SHA-256 of its DER>")
	fl.BoolVar(&f.insecure, "insecure", false, "allow plain http:// to a non-loopback server")
	fl.IntVar(&f.registerParallel, "register-parallel", 32, "registrations in flight at once")
	fl.Float64Var(&f.dialRate, "dial-rate", 1000, "nodes started per second (0: all at once)")
	fl.StringVar(&f.nodeLogLevel, "node-log-level", "warn", "log level of the individual nodes: debug, info, warn, error")
	cmd.MarkFlagsMutuallyExclusive("ca-file", "server-fingerprint")
	return cmd
}

// swarmNode is one simulated node. It holds no buffers of its own beyond
// what the connection and the runner need.
type swarmNode struct {
	id     agent.Identity
	dir    string
	runner *agent.CommandRunner
	agent  *agent.Agent
}

func (c *cli) swarm(ctx context.Context, f swarmFlags) error {
	if f.server == "" {
		return errors.New("--server is required")
	}
	if f.count < 1 {
		return errors.New("--count must be at least 1")
	}
	if f.registerParallel < 1 {
		f.registerParallel = 1
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.nodeLogLevel)); err != nil {
		return fmt.Errorf("--node-log-level: %w", err)
	}
	nodeLog := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level}))
	tr := agent.Transport{CAFile: f.caFile, ServerFingerprint: f.fingerprint, Insecure: f.insecure}
	if err := tr.Check(); err != nil {
		return err
	}
	if err := tr.CheckURL(f.server); err != nil {
		return err
	}
	// One client for every node: one TLS configuration, one pool.
	hc, err := tr.HTTPClient()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.stateDir, 0o700); err != nil {
		return fmt.Errorf("create swarm state dir: %w", err)
	}

	start := time.Now()
	nodes, err := c.swarmRegister(ctx, f, tr, hc)
	if err != nil {
		return err
	}
	c.log.Info("swarm nodes registered", "count", len(nodes), "elapsed", time.Since(start).Round(time.Millisecond))

	for i, n := range nodes {
		n.runner, err = agent.NewCommandRunner(agent.RunnerConfig{
			StateDir:           n.dir,
			Logger:             nodeLog,
			Plugins:            map[string]agent.Plugin{agent.ActionNoop: agent.NoopPlugin},
			UnsupportedMessage: swarmOnlyNoop,
			NoSync:             true,
		})
		if err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		host := swarmHost(i)
		n.agent, err = agent.New(agent.Config{
			Identity:   n.id,
			Host:       func() agentproto.HostInfo { return host },
			Logger:     nodeLog,
			HTTPClient: hc,
			Handlers:   n.runner.Handlers(),
			OnConnect:  n.runner.OnConnect,
		})
		if err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
	}

	var wg sync.WaitGroup
	var running atomic.Int32
	start = time.Now()
	for i, n := range nodes {
		if i > 0 && f.dialRate > 0 {
			wait := time.Duration(float64(i)/f.dialRate*float64(time.Second)) - time.Since(start)
			if wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
				case <-t.C:
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		running.Add(1)
		wg.Go(func() {
			defer running.Add(-1)
			if err := n.agent.Run(ctx); err != nil {
				c.log.Error("swarm node stopped", "instanceId", n.id.InstanceID, "error", err)
			}
		})
	}
	c.watchSwarm(ctx, nodes, start, &running)
	wg.Wait()

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for _, n := range nodes {
		if n.runner != nil {
			_ = n.runner.Shutdown(sctx)
		}
	}
	c.log.Info("swarm stopped")
	return nil
}

// swarmRegister loads or registers every node, registerParallel at a time.
func (c *cli) swarmRegister(ctx context.Context, f swarmFlags, tr agent.Transport, hc *http.Client) ([]*swarmNode, error) {
	nodes := make([]*swarmNode, f.count)
	sem := make(chan struct{}, f.registerParallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	var registered atomic.Int32
	for i := range nodes {
		n := &swarmNode{dir: filepath.Join(f.stateDir, fmt.Sprintf("node-%05d", i))}
		nodes[i] = n
		if id, err := agent.LoadIdentity(n.dir); err == nil && id.SameServer(f.server) {
			n.id = id
			continue
		}
		if f.activationID == "" || f.activationCode == "" {
			return nil, fmt.Errorf("node %d is not registered: --activation-id and --activation-code are required", i)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, ctx.Err()
		}
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			<-sem
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			id, err := agent.Register(ctx, agent.RegisterConfig{
				ServerURL: f.server, ActivationID: f.activationID, ActivationCode: f.activationCode,
				Transport: tr, Host: swarmHost(i), HTTPClient: hc,
			})
			if err == nil {
				err = agent.SaveIdentity(n.dir, id)
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("register node %d: %w", i, err)
				}
				mu.Unlock()
				return
			}
			n.id = id
			registered.Add(1)
		})
	}
	wg.Wait()
	if firstErr != nil {
		var refused *agent.RefusedError
		if errors.As(firstErr, &refused) {
			return nil, &exitErr{code: exitRefused, err: firstErr}
		}
		return nil, firstErr
	}
	c.log.Info("swarm identities ready", "registered", registered.Load(), "reused", f.count-int(registered.Load()))
	return nodes, nil
}

// watchSwarm logs when every node is connected (and again after losing
// some, once all are back) until ctx ends.
func (c *cli) watchSwarm(ctx context.Context, nodes []*swarmNode, start time.Time, running *atomic.Int32) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	all := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		up := 0
		for _, n := range nodes {
			if n.agent.Connected() {
				up++
			}
		}
		switch {
		case up == len(nodes) && !all:
			all = true
			c.log.Info("all swarm nodes connected", "count", up, "elapsed", time.Since(start).Round(time.Millisecond))
			fmt.Fprintf(c.stdout, "all %d nodes connected\n", up)
		case up < len(nodes) && all:
			all = false
			c.log.Warn("swarm nodes disconnected", "connected", up, "count", len(nodes))
		}
		if running.Load() == 0 {
			return // every node ended (deregistered): nothing left to watch
		}
	}
}

// swarmHost is node i's fake host facts; its IP encodes the index.
func swarmHost(i int) agentproto.HostInfo {
	return agentproto.HostInfo{
		Hostname:        fmt.Sprintf("swarm-%05d", i),
		PlatformType:    "Linux",
		PlatformName:    "FleetOps Swarm",
		PlatformVersion: "1",
		Kernel:          "swarm",
		Architecture:    runtime.GOARCH,
		IPAddresses:     []string{fmt.Sprintf("10.%d.%d.%d", (i>>16)&255, (i>>8)&255, i&255)},
		AgentVersion:    agent.Version,
	}
}
