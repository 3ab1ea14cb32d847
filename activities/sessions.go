package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/workflows"
)

// SessionStore is what the Session activities need from the database.
type SessionStore interface {
	RequestTerminate(ctx context.Context, id, details string, now time.Time) error
	EndSession(ctx context.Context, id, status, details string, now time.Time) error
	SetSessionExitCode(ctx context.Context, id string, code int) error
	SetSessionStatus(ctx context.Context, id, status, details string, now time.Time) error
}

// SessionConfig configures the Session activities.
type SessionConfig struct {
	Store  SessionStore
	Logger *slog.Logger
	Now    func() time.Time
}

// SessionActivities holds the Session workflow's activities. They only
// write the session row: the server replicas' bridges poll it
// (store.SessionsToClose) and close the client and agent sides, so no
// activity needs to reach the replica that holds a session.
type SessionActivities struct {
	cfg SessionConfig
	log *slog.Logger
}

// NewSessionActivities returns the Session activities.
func NewSessionActivities(cfg SessionConfig) (*SessionActivities, error) {
	if cfg.Store == nil {
		return nil, errors.New("activities: session Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &SessionActivities{cfg: cfg, log: cfg.Logger.With("component", "session-activities")}, nil
}

// Register registers every Session activity under its workflow-facing name.
func (a *SessionActivities) Register(r worker.ActivityRegistry) {
	r.RegisterActivityWithOptions(a.SessionEnd, activity.RegisterOptions{Name: workflows.ActivitySessionEnd})
	r.RegisterActivityWithOptions(a.SessionSetStatus, activity.RegisterOptions{Name: workflows.ActivitySessionSetStatus})
}

// SessionEnd ends the session: it asks the bridges to close it
// (Terminating, TerminateRequested), records the exit code when there is
// one, and marks it Terminated or Failed with the reason in its details.
// Every step leaves an ended session alone, so a retry is harmless.
func (a *SessionActivities) SessionEnd(ctx context.Context, in workflows.SessionEndInput) error {
	if in.Status != workflows.SessionStatusTerminated && in.Status != workflows.SessionStatusFailed {
		return invalidInput("end session %s: status %q; want Terminated or Failed", in.SessionID, in.Status)
	}
	now := a.cfg.Now()
	if err := a.cfg.Store.RequestTerminate(ctx, in.SessionID, in.Details, now); err != nil {
		return sessionErr("request termination of", in.SessionID, err)
	}
	if in.ExitCode != nil {
		if err := a.cfg.Store.SetSessionExitCode(ctx, in.SessionID, *in.ExitCode); err != nil {
			return sessionErr("record exit code of", in.SessionID, err)
		}
	}
	if err := a.cfg.Store.EndSession(ctx, in.SessionID, in.Status, in.Details, now); err != nil {
		return sessionErr("end", in.SessionID, err)
	}
	a.log.InfoContext(ctx, "session ended", "sessionId", in.SessionID, "status", in.Status, "details", in.Details)
	return nil
}

// SessionSetStatus records a Connected or Disconnected change. A change the
// store refuses (the session is ending or ended) is not an error.
func (a *SessionActivities) SessionSetStatus(ctx context.Context, in workflows.SessionStatusInput) error {
	if in.Status != workflows.SessionStatusConnected && in.Status != workflows.SessionStatusDisconnected {
		return invalidInput("set status of session %s: status %q; want Connected or Disconnected", in.SessionID, in.Status)
	}
	if err := a.cfg.Store.SetSessionStatus(ctx, in.SessionID, in.Status, in.Details, a.cfg.Now()); err != nil {
		return sessionErr("set status of", in.SessionID, err)
	}
	return nil
}

// sessionErr fails without retries when the session does not exist or the
// input was refused, and retries anything else.
func sessionErr(verb, id string, err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalidArgument) {
		return invalidInput("%s session %s: %v", verb, id, err)
	}
	return fmt.Errorf("%s session %s: %w", verb, id, err)
}
