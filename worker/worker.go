// Package worker registers fleetops workflows and activities with a
// Temporal worker. It is the only place that knows both.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/fleetops/fleetops/activities"
	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/workflows"
)

// Config configures a Worker.
type Config struct {
	Client    client.Client
	TaskQueue string
	Store     *store.Store
	Logger    *slog.Logger
	// Wake, when set, tells an in-process agent gateway that invocations
	// were queued (fleetops dev); a separate server polls its outbox.
	Wake func()
}

// Worker is a running Temporal worker for fleetops.
type Worker struct {
	w   sdkworker.Worker
	log *slog.Logger
}

// New creates the worker and registers everything it runs.
func New(cfg Config) (*Worker, error) {
	if cfg.Client == nil || cfg.TaskQueue == "" {
		return nil, errors.New("worker: Client and TaskQueue are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Pollers per shared/reference/temporal-here.md: with one partition,
	// 16 activity and 8 workflow pollers keep a 2-core dev server busy.
	w := sdkworker.New(cfg.Client, cfg.TaskQueue, sdkworker.Options{
		MaxConcurrentActivityTaskPollers: 16,
		MaxConcurrentWorkflowTaskPollers: 8,
	})
	w.RegisterWorkflowWithOptions(workflows.RunCommand, workflow.RegisterOptions{Name: workflows.RunCommandWorkflowName})
	acts, err := activities.New(activities.Config{Store: cfg.Store, Logger: cfg.Logger, Wake: cfg.Wake})
	if err != nil {
		return nil, err
	}
	acts.Register(w)
	w.RegisterWorkflowWithOptions(workflows.Session, workflow.RegisterOptions{Name: workflows.SessionWorkflowName})
	sessionActs, err := activities.NewSessionActivities(activities.SessionConfig{Store: cfg.Store, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	sessionActs.Register(w)
	return &Worker{w: w, log: cfg.Logger}, nil
}

// Run polls until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.w.Start(); err != nil {
		return fmt.Errorf("start temporal worker: %w", err)
	}
	<-ctx.Done()
	w.w.Stop()
	return nil
}
