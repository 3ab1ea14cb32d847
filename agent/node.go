package agent

import (
	"context"
	"log/slog"
	"maps"
	"time"
)

// NodeConfig configures RunNode: a managed node's whole agent.
type NodeConfig struct {
	Identity Identity
	// StateDir keeps the invocation records (at-most-once across restarts).
	StateDir string
	Logger   *slog.Logger
	// Sessions configures Session Manager; its Identity and Logger are
	// filled from the above.
	Sessions SessionConfig
	// ShutdownTimeout bounds the wait for killed invocations and sessions
	// at exit (default 15 s).
	ShutdownTimeout time.Duration
}

// RunNode runs the agent with Run Command and Session Manager until ctx
// ends or the server deregisters the node (ErrDeregistered), then kills
// what still runs: invocations are stored with their results, which the
// next start sends.
func RunNode(ctx context.Context, cfg NodeConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	runner, err := NewCommandRunner(RunnerConfig{StateDir: cfg.StateDir, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	cfg.Sessions.Identity, cfg.Sessions.Logger = cfg.Identity, cfg.Logger
	sessions, err := NewSessionManager(cfg.Sessions)
	if err != nil {
		return err
	}
	handlers := runner.Handlers()
	maps.Copy(handlers, sessions.Handlers())
	a, err := New(Config{Identity: cfg.Identity, Logger: cfg.Logger, Handlers: handlers, OnConnect: runner.OnConnect})
	if err != nil {
		return err
	}
	err = a.Run(ctx)
	// Shutting down what still runs is best effort: it is logged, and
	// the node's exit reflects only why Run ended.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if serr := runner.Shutdown(sctx); serr != nil {
		cfg.Logger.Warn("invocations still running at exit", "error", serr)
	}
	if serr := sessions.Shutdown(sctx); serr != nil {
		cfg.Logger.Warn("sessions still running at exit", "error", serr)
	}
	return err
}
