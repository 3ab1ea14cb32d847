package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/fleetops/fleetops/agent"
	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/temporaldev"
)

type devOptions struct {
	server         serverOptions
	temporalBinary string
	temporalPort   int
	temporalUIPort int
	noAgent        bool
}

func newDevCmd() *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the embedded stack: Temporal dev server, server, worker and a local agent, in one process",
		Long: `dev runs everything a laptop needs in one terminal. With no --temporal-address
it starts the pinned Temporal dev server (bin/temporal, or temporal on PATH)
with its SQLite file in the data dir and its Web UI on --temporal-ui-port, and
stops it on exit. The fleet, the admin token and Temporal's history all live in
--data-dir, so the next run finds them again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := o.server.log.logger()
			if err != nil {
				return err
			}
			return runDev(cmd.Context(), o, cmd.Flags().Changed("temporal-address"), log)
		},
	}
	addServerFlags(cmd, &o.server)
	cmd.Flags().StringVar(&o.temporalBinary, "temporal-binary", "", "temporal CLI to run (default bin/temporal, then PATH)")
	cmd.Flags().IntVar(&o.temporalPort, "temporal-port", 7233, "port of the embedded Temporal dev server")
	cmd.Flags().IntVar(&o.temporalUIPort, "temporal-ui-port", 8233, "port of the embedded Temporal Web UI")
	cmd.Flags().BoolVar(&o.noAgent, "no-agent", false, "do not run the local agent")
	return cmd
}

func runDev(ctx context.Context, o devOptions, externalTemporal bool, log *slog.Logger) error {
	if err := os.MkdirAll(o.server.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if !externalTemporal {
		bin, err := temporaldev.FindBinary(o.temporalBinary)
		if err != nil {
			return err
		}
		logFile, err := os.OpenFile(filepath.Join(o.server.dataDir, "temporal.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("open temporal log: %w", err)
		}
		defer logFile.Close()
		ts, err := temporaldev.Start(ctx, temporaldev.Options{
			Binary: bin,
			DBFile: filepath.Join(o.server.dataDir, "temporal.db"),
			Port:   o.temporalPort,
			UIPort: o.temporalUIPort,
			Output: logFile,
		})
		if err != nil {
			return err
		}
		defer ts.Stop()
		o.server.temporal.address = ts.Address
		o.server.temporalUIURL = ts.UIURL
		log.Info("temporal dev server running", "address", ts.Address, "ui", ts.UIURL, "log", logFile.Name())
	}

	srv, err := startServer(ctx, o.server, log)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(srv.wait)
	g.Go(func() error { return runWorker(gctx, o.server.temporal, srv.store, srv.wake, log) })
	if !o.noAgent {
		g.Go(func() error {
			return runLocalAgent(gctx, srv, filepath.Join(o.server.dataDir, "agent"), log)
		})
	}
	fmt.Fprintf(os.Stderr, "\nfleetops is running\n  console:   %s  (token in %s)\n  temporal:  %s\n  Ctrl-C stops everything.\n\n",
		srv.url, filepath.Join(o.server.dataDir, "admin.token"), o.server.temporalUIURL)
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// runLocalAgent registers this machine on first run (with a single-use
// activation it creates itself) and keeps its agent connected.
func runLocalAgent(ctx context.Context, srv *runningServer, stateDir string, log *slog.Logger) error {
	log = log.With("component", "local-agent")
	id, err := agent.LoadIdentity(stateDir)
	if err == nil {
		// A wiped database forgets the node; register it again.
		if _, gerr := srv.store.GetInstance(ctx, id.InstanceID); errors.Is(gerr, store.ErrNotFound) {
			err = gerr
		}
	}
	if err != nil {
		if id, err = registerLocalAgent(ctx, srv, stateDir); err != nil {
			return fmt.Errorf("register local agent: %w", err)
		}
		log.Info("registered this machine", "instanceId", id.InstanceID)
	}
	return agent.RunNode(ctx, agent.NodeConfig{Identity: id, StateDir: stateDir, Logger: log})
}

func registerLocalAgent(ctx context.Context, srv *runningServer, stateDir string) (agent.Identity, error) {
	code := uuid.NewString() + uuid.NewString()
	now := time.Now().UTC()
	act := &store.Activation{
		ID:                uuid.NewString(),
		CodeHash:          store.HashSecret(code),
		Description:       "fleetops dev: the local agent",
		RegistrationLimit: 1,
		ExpiresAt:         now.Add(10 * time.Minute),
		CreatedAt:         now,
		Tags:              nil,
	}
	if err := srv.store.CreateActivation(ctx, act); err != nil {
		return agent.Identity{}, err
	}
	id, err := agent.Register(ctx, agent.RegisterConfig{
		ServerURL:      srv.url,
		ActivationID:   act.ID,
		ActivationCode: code,
		Transport:      agent.Transport{CAFile: srv.caFile},
	})
	if err != nil {
		return agent.Identity{}, err
	}
	if err := agent.SaveIdentity(stateDir, id); err != nil {
		return agent.Identity{}, err
	}
	return id, nil
}
