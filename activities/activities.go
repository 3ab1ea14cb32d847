// Package activities implements the side effects of fleetops' workflows:
// the Run Command activities read and write the store and wake the agent
// gateway. Each method is registered under the name package workflows
// declares, so the workflow never imports this package.
package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/workflows"
)

// Store is what the Run Command activities need from the database.
type Store interface {
	GetCommand(ctx context.Context, id string) (store.Command, error)
	ResolveTargets(ctx context.Context, targets []store.Target) ([]store.Instance, error)
	InstancesByID(ctx context.Context, ids []string) (map[string]store.Instance, error)
	CreateInvocations(ctx context.Context, commandID string, rows []store.Invocation) error
	CountInvocations(ctx context.Context, commandID string) (map[string]int, error)
	QueueInvocations(ctx context.Context, commandID string, payloads map[string]string, now time.Time) error
	SetInvocationStatuses(ctx context.Context, commandID string, changes []store.StatusChange, onlyFrom []string, now time.Time) ([]store.StatusChange, error)
	InvocationEvents(ctx context.Context, commandID string, after int64, limit int) ([]store.InvocationEvent, error)
	ExpireInvocations(ctx context.Context, commandID string, ids []string, details string, includeStarted bool, now time.Time) ([]store.StatusChange, error)
	CancelInvocations(ctx context.Context, commandID string, ids []string, now time.Time) ([]store.StatusChange, error)
	UpdateCommandStatus(ctx context.Context, id, status, details string, c store.CommandCounters, finishedAt *time.Time) error
}

// Config configures the activities.
type Config struct {
	Store  Store
	Logger *slog.Logger
	// Wake, when set, tells an in-process gateway that the outbox changed so
	// it delivers at once instead of at its next poll.
	Wake func()
	// PollInterval is how often AwaitResults looks for new events (default
	// 50ms); HeartbeatInterval how often it heartbeats (default 5s).
	PollInterval      time.Duration
	HeartbeatInterval time.Duration
	Now               func() time.Time
}

// Activities holds the Run Command activities.
type Activities struct {
	cfg Config
	log *slog.Logger
}

// New returns the activities.
func New(cfg Config) (*Activities, error) {
	if cfg.Store == nil {
		return nil, errors.New("activities: Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Wake == nil {
		cfg.Wake = func() {}
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Activities{cfg: cfg, log: cfg.Logger.With("component", "activities")}, nil
}

// Register registers every activity under its workflow-facing name.
func (a *Activities) Register(r worker.ActivityRegistry) {
	for name, fn := range map[string]any{
		workflows.ActivityResolveTargets:      a.ResolveTargets,
		workflows.ActivityDispatchInvocations: a.DispatchInvocations,
		workflows.ActivityAwaitResults:        a.AwaitResults,
		workflows.ActivityExpireInvocations:   a.ExpireInvocations,
		workflows.ActivityCancelInvocations:   a.CancelInvocations,
		workflows.ActivityRecordProgress:      a.RecordProgress,
		workflows.ActivityFinishCommand:       a.FinishCommand,
	} {
		r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}

// invalidInput fails an activity without retries: the input can never work.
func invalidInput(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), workflows.ErrTypeInvalidInput, nil)
}

// ResolveTargets turns the command's InstanceIds or Targets into the
// ordered node list and inserts one Pending invocation per node, so the
// invocations are readable from the moment the command exists.
func (a *Activities) ResolveTargets(ctx context.Context, in workflows.ResolveTargetsInput) (workflows.ResolveTargetsResult, error) {
	cmd, err := a.cfg.Store.GetCommand(ctx, in.CommandID)
	if err != nil {
		return workflows.ResolveTargetsResult{}, fmt.Errorf("resolve targets: %w", err)
	}
	var nodes []store.Instance
	if len(in.InstanceIDs) > 0 {
		nodes, err = a.byID(ctx, in.InstanceIDs)
	} else {
		targets := make([]store.Target, len(in.Targets))
		for i, t := range in.Targets {
			targets[i] = store.Target{Key: t.Key, Values: t.Values}
		}
		nodes, err = a.cfg.Store.ResolveTargets(ctx, targets)
	}
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalidArgument):
		return workflows.ResolveTargetsResult{}, invalidInput("resolve targets: %v", err)
	case err != nil:
		return workflows.ResolveTargetsResult{}, fmt.Errorf("resolve targets: %w", err)
	}
	rows := make([]store.Invocation, 0, len(nodes))
	ids := make([]string, 0, len(nodes))
	for _, n := range nodes {
		ids = append(ids, n.InstanceID)
		rows = append(rows, store.Invocation{
			CommandID: cmd.CommandID, InstanceID: n.InstanceID, InstanceName: firstNonEmpty(n.Name, n.Hostname),
			DocumentName: cmd.DocumentName, Status: workflows.StatusPending, StatusDetails: workflows.DetailsPending,
			RequestedAt: cmd.RequestedAt,
		})
	}
	// The API usually wrote the rows already, so they are readable when
	// SendCommand returns; only a workflow started another way needs them.
	counts, err := a.cfg.Store.CountInvocations(ctx, cmd.CommandID)
	if err != nil {
		return workflows.ResolveTargetsResult{}, fmt.Errorf("count invocations: %w", err)
	}
	existing := 0
	for _, n := range counts {
		existing += n
	}
	if existing != len(rows) {
		if err := a.cfg.Store.CreateInvocations(ctx, cmd.CommandID, rows); err != nil {
			return workflows.ResolveTargetsResult{}, fmt.Errorf("create invocations: %w", err)
		}
	}
	return workflows.ResolveTargetsResult{InstanceIDs: ids}, nil
}

// byID returns the named nodes in the given order. A node the store does not
// know still gets an invocation (it ends Undeliverable), so an operator sees
// every ID they asked for.
func (a *Activities) byID(ctx context.Context, ids []string) ([]store.Instance, error) {
	found, err := a.cfg.Store.InstancesByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]store.Instance, len(ids))
	for i, id := range ids {
		n, ok := found[id]
		if !ok {
			n = store.Instance{InstanceID: id}
		}
		out[i] = n
	}
	return out, nil
}

// DispatchInvocations puts a batch of invocations in the outbox with the
// payload for each node's platform, and settles at once those that cannot
// be delivered: unknown or deregistered nodes (Undeliverable) and platforms
// the document cannot run on (Invalid Platform). Nodes that are not
// connected are reported Delayed; their invocation waits in the outbox.
func (a *Activities) DispatchInvocations(ctx context.Context, in workflows.DispatchInput) error {
	cmd, err := a.cfg.Store.GetCommand(ctx, in.CommandID)
	if err != nil {
		return fmt.Errorf("dispatch: %w", err)
	}
	var steps map[string][]agentproto.Step
	if err := json.Unmarshal([]byte(cmd.Steps), &steps); err != nil {
		return invalidInput("command %s has no rendered steps: %v", cmd.CommandID, err)
	}
	nodes, err := a.byID(ctx, in.InstanceIDs)
	if err != nil {
		return err
	}
	payloads := make(map[string]string, len(nodes))
	var failed, delayed []store.StatusChange
	for _, n := range nodes {
		platformSteps, ok := steps[n.PlatformType]
		switch {
		case n.PingStatus == "" || n.PingStatus == store.PingInactive:
			failed = append(failed, store.StatusChange{InstanceID: n.InstanceID, Status: workflows.StatusFailed, StatusDetails: workflows.DetailsUndeliverable})
			continue
		case !ok:
			failed = append(failed, store.StatusChange{InstanceID: n.InstanceID, Status: workflows.StatusFailed, StatusDetails: workflows.DetailsInvalidPlatform})
			continue
		case n.PingStatus != store.PingOnline:
			delayed = append(delayed, store.StatusChange{InstanceID: n.InstanceID, Status: workflows.StatusDelayed, StatusDetails: workflows.DetailsDelayed})
		}
		b, err := json.Marshal(agentproto.RunCommand{
			InvocationID: agentproto.InvocationID(cmd.CommandID, n.InstanceID),
			CommandID:    cmd.CommandID, DocumentName: cmd.DocumentName, Steps: platformSteps,
			ExecutionTimeoutSeconds: cmd.ExecutionTimeoutSeconds, MaxOutputBytes: cmd.MaxOutputBytes,
		})
		if err != nil {
			return fmt.Errorf("encode payload: %w", err)
		}
		payloads[n.InstanceID] = string(b)
	}
	now := a.cfg.Now()
	pending := []string{workflows.StatusPending}
	if _, err := a.cfg.Store.SetInvocationStatuses(ctx, cmd.CommandID, failed, pending, now); err != nil {
		return fmt.Errorf("settle undeliverable invocations: %w", err)
	}
	if err := a.cfg.Store.QueueInvocations(ctx, cmd.CommandID, payloads, now); err != nil {
		return fmt.Errorf("queue invocations: %w", err)
	}
	a.cfg.Wake()
	if _, err := a.cfg.Store.SetInvocationStatuses(ctx, cmd.CommandID, delayed, pending, now); err != nil {
		return fmt.Errorf("mark offline invocations delayed: %w", err)
	}
	return nil
}

// AwaitResults long-polls the command's invocation events after the cursor.
// Once changes arrive it keeps collecting while more keep coming (up to
// Linger), so a burst of a thousand results costs one workflow event, and a
// lone acknowledgement is returned at once. The store makes a command's
// events visible in ID order (SQLite has one writer; PostgreSQL writes
// them under a per-command lock), so the cursor never skips an event.
func (a *Activities) AwaitResults(ctx context.Context, in workflows.AwaitResultsInput) (workflows.AwaitResultsResult, error) {
	maxResults := in.MaxResults
	if maxResults <= 0 {
		maxResults = 1000
	}
	start := a.cfg.Now()
	deadline := start.Add(in.MaxWait)
	lastBeat := start
	out := workflows.AwaitResultsResult{Cursor: in.Cursor, Results: []workflows.InvocationResult{}}
	var lingerUntil time.Time
	for {
		events, err := a.cfg.Store.InvocationEvents(ctx, in.CommandID, out.Cursor, maxResults-len(out.Results))
		if err != nil {
			return out, fmt.Errorf("read invocation events: %w", err)
		}
		for _, ev := range events {
			out.Cursor = ev.ID
			out.Results = append(out.Results, workflows.InvocationResult{
				InstanceID: ev.InstanceID, Status: ev.Status, StatusDetails: ev.StatusDetails,
			})
		}
		now := a.cfg.Now()
		if len(out.Results) > 0 && lingerUntil.IsZero() {
			lingerUntil = now.Add(in.Linger)
		}
		switch {
		case len(out.Results) >= maxResults,
			in.ReturnAfter > 0 && len(out.Results) >= in.ReturnAfter,
			len(out.Results) > 0 && len(events) == 0, // the burst is over
			!lingerUntil.IsZero() && !now.Before(lingerUntil),
			lingerUntil.IsZero() && !now.Before(deadline):
			return out, nil
		}
		if now.Sub(lastBeat) >= a.cfg.HeartbeatInterval {
			activity.RecordHeartbeat(ctx, out.Cursor)
			lastBeat = now
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-time.After(a.cfg.PollInterval):
		}
	}
}

// ExpireInvocations marks the listed invocations Delivery Timed Out (see
// workflows.ExpireInput) and reports the final status of every listed one.
func (a *Activities) ExpireInvocations(ctx context.Context, in workflows.ExpireInput) ([]workflows.InvocationResult, error) {
	changes, err := a.cfg.Store.ExpireInvocations(ctx, in.CommandID, in.InstanceIDs, in.Details, in.IncludeStarted, a.cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("expire invocations: %w", err)
	}
	return results(changes), nil
}

// CancelInvocations cancels never-delivered invocations at once and asks
// agents to kill the running ones; those report Cancelled through
// AwaitResults.
func (a *Activities) CancelInvocations(ctx context.Context, in workflows.CancelInput) ([]workflows.InvocationResult, error) {
	changes, err := a.cfg.Store.CancelInvocations(ctx, in.CommandID, in.InstanceIDs, a.cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("cancel invocations: %w", err)
	}
	a.cfg.Wake()
	return results(changes), nil
}

// RecordProgress persists the live status and counters, and marks
// Terminated the targets the MaxErrors cut-off will never send.
func (a *Activities) RecordProgress(ctx context.Context, in workflows.RecordProgressInput) error {
	p := in.Progress
	if err := a.terminate(ctx, p.CommandID, in.Terminated); err != nil {
		return err
	}
	if err := a.cfg.Store.UpdateCommandStatus(ctx, p.CommandID, p.Status, p.StatusDetails, counters(p.Counters), nil); err != nil {
		return fmt.Errorf("record progress: %w", err)
	}
	return nil
}

// FinishCommand persists the final status. It is idempotent.
func (a *Activities) FinishCommand(ctx context.Context, in workflows.FinishInput) error {
	if err := a.terminate(ctx, in.CommandID, in.Terminated); err != nil {
		return err
	}
	now := a.cfg.Now()
	for _, f := range in.Forced {
		change := []store.StatusChange{{InstanceID: f.InstanceID, Status: f.Status, StatusDetails: f.StatusDetails}}
		if _, err := a.cfg.Store.SetInvocationStatuses(ctx, in.CommandID, change, nil, now); err != nil {
			return fmt.Errorf("settle invocation %s: %w", f.InstanceID, err)
		}
	}
	if err := a.cfg.Store.UpdateCommandStatus(ctx, in.CommandID, in.Status, in.StatusDetails, counters(in.Counters), &now); err != nil {
		return fmt.Errorf("finish command: %w", err)
	}
	return nil
}

func (a *Activities) terminate(ctx context.Context, commandID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	changes := make([]store.StatusChange, len(ids))
	for i, id := range ids {
		changes[i] = store.StatusChange{InstanceID: id, Status: workflows.StatusCancelled, StatusDetails: workflows.DetailsTerminated}
	}
	if _, err := a.cfg.Store.SetInvocationStatuses(ctx, commandID, changes, []string{workflows.StatusPending}, a.cfg.Now()); err != nil {
		return fmt.Errorf("terminate invocations: %w", err)
	}
	return nil
}

func counters(c workflows.Counters) store.CommandCounters {
	return store.CommandCounters{
		TargetCount: c.TargetCount, CompletedCount: c.CompletedCount,
		ErrorCount: c.ErrorCount, DeliveryTimedOutCount: c.DeliveryTimedOutCount,
	}
}

func results(changes []store.StatusChange) []workflows.InvocationResult {
	out := make([]workflows.InvocationResult, len(changes))
	for i, c := range changes {
		out[i] = workflows.InvocationResult{InstanceID: c.InstanceID, Status: c.Status, StatusDetails: c.StatusDetails}
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
