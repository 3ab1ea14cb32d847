package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/worker"
)

type workerOptions struct {
	dataDir     string
	databaseURL string
	temporal    temporalOptions
	log         logOptions
}

func newWorkerCmd() *cobra.Command {
	var o workerOptions
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run the Temporal worker that executes fleetops workflows and activities (stateless; run several replicas)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := o.log.logger()
			if err != nil {
				return err
			}
			dbURL := o.databaseURL
			if dbURL == "" {
				abs, err := filepath.Abs(filepath.Join(o.dataDir, "fleetops.db"))
				if err != nil {
					return err
				}
				dbURL = "sqlite://" + abs
			}
			st, err := store.Open(cmd.Context(), dbURL, log)
			if err != nil {
				return fmt.Errorf("open database: %w", err)
			}
			defer st.Close()
			return runWorker(cmd.Context(), o.temporal, st, nil, log)
		},
	}
	cmd.Flags().StringVar(&o.dataDir, "data-dir", ".fleetops", "data directory (for the default embedded database)")
	cmd.Flags().StringVar(&o.databaseURL, "database-url", "", "sqlite:///path/file.db or postgres://… (default: sqlite in --data-dir)")
	addTemporalFlags(cmd, &o.temporal)
	addLogFlags(cmd, &o.log)
	return cmd
}

// runWorker connects to Temporal and runs the worker until ctx ends.
// wake, when set, is the in-process gateway's outbox wake-up.
func runWorker(ctx context.Context, o temporalOptions, st *store.Store, wake func(), log *slog.Logger) error {
	c, err := client.DialContext(ctx, client.Options{
		HostPort:  o.address,
		Namespace: o.namespace,
		Logger:    newTemporalLogger(log),
	})
	if err != nil {
		return fmt.Errorf("connect to temporal at %s: %w", o.address, err)
	}
	defer c.Close()
	w, err := worker.New(worker.Config{Client: c, TaskQueue: o.taskQueue, Store: st, Logger: log, Wake: wake})
	if err != nil {
		return err
	}
	log.Info("fleetops worker running", "temporal", o.address, "namespace", o.namespace, "taskQueue", o.taskQueue)
	return w.Run(ctx)
}

func newTemporalLogger(log *slog.Logger) tlog.Logger {
	// Temporal's own chatter is useful only when something is wrong.
	return tlog.NewStructuredLogger(slog.New(warnOnly{log.Handler()}))
}

// warnOnly raises a handler's threshold to warnings.
type warnOnly struct{ slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}
