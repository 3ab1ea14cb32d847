package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Session defaults (spec/sessions.md).
const (
	// DefaultSessionIdleTimeout is the document's idleSessionTimeout
	// default, 20 minutes.
	DefaultSessionIdleTimeout = 20 * time.Minute
	// DefaultSessionConnectTimeout is how long a new session may take to
	// connect before it fails.
	DefaultSessionConnectTimeout = 60 * time.Second
	// DefaultSessionResumeGrace is how long a disconnected client has to
	// resume.
	DefaultSessionResumeGrace = 2 * time.Minute
	// defaultSessionContinueAsNewAfter keeps a long session's history
	// short: each activity report costs ~4 events, so a busy week-long
	// session would otherwise reach Temporal's 51,200-event limit.
	defaultSessionContinueAsNewAfter = 2000
)

// Session statuses, as the store writes them (spec/sessions.md).
const (
	SessionStatusConnecting   = "Connecting"
	SessionStatusConnected    = "Connected"
	SessionStatusDisconnected = "Disconnected"
	SessionStatusTerminating  = "Terminating"
	SessionStatusTerminated   = "Terminated"
	SessionStatusFailed       = "Failed"
)

// Session details the workflow writes when it ends a session.
const (
	SessionDetailsNeverConnected = "never connected"
	SessionDetailsIdleTimeout    = "idle timeout"
	SessionDetailsMaxDuration    = "maximum session duration reached"
	SessionDetailsNoReconnect    = "client did not reconnect"
	SessionDetailsDisconnected   = "client disconnected"
)

// SessionInput starts Session. The session row exists already (the API
// wrote it with status Connecting).
type SessionInput struct {
	SessionID string `json:"sessionId"`
	// IdleTimeout ends the session after no data flowed either way for
	// this long, counted from the last SignalSessionActivity or connect;
	// 0 means DefaultSessionIdleTimeout.
	IdleTimeout time.Duration `json:"idleTimeout,omitempty"`
	// MaxDuration ends the session this long after it started; 0 means no
	// limit.
	MaxDuration time.Duration `json:"maxDuration,omitempty"`
	// ConnectTimeout fails a session that does not connect in time; 0
	// means DefaultSessionConnectTimeout.
	ConnectTimeout time.Duration `json:"connectTimeout,omitempty"`
	// ResumeGrace is how long a disconnected client has to reconnect; 0
	// means DefaultSessionResumeGrace.
	ResumeGrace time.Duration `json:"resumeGrace,omitempty"`
	// ContinueAsNewAfterEvents is the history length at which a run hands
	// over to a fresh one; 0 means 2000.
	ContinueAsNewAfterEvents int `json:"continueAsNewAfterEvents,omitempty"`
	// State is set only by ContinueAsNew: the previous run's state.
	State *SessionState `json:"state,omitempty"`
}

func (in SessionInput) withDefaults() SessionInput {
	if in.IdleTimeout <= 0 {
		in.IdleTimeout = DefaultSessionIdleTimeout
	}
	if in.MaxDuration < 0 {
		in.MaxDuration = 0
	}
	if in.ConnectTimeout <= 0 {
		in.ConnectTimeout = DefaultSessionConnectTimeout
	}
	if in.ResumeGrace <= 0 {
		in.ResumeGrace = DefaultSessionResumeGrace
	}
	if in.ContinueAsNewAfterEvents <= 0 {
		in.ContinueAsNewAfterEvents = defaultSessionContinueAsNewAfter
	}
	return in
}

// SessionState is the workflow's view of a session; the status query
// (QueryStatus) returns it, and ContinueAsNew carries it.
type SessionState struct {
	// StartedAt is the workflow's start; MaxDuration and ConnectTimeout
	// count from it.
	StartedAt time.Time `json:"startedAt"`
	// Status is Connecting, Connected or Disconnected.
	Status string `json:"status"`
	// EverConnected says the session connected at least once.
	EverConnected bool `json:"everConnected,omitempty"`
	// Connection is the highest connection number seen (see
	// SessionConnection) and ConnectionClosed whether its disconnect was
	// seen.
	Connection       int  `json:"connection,omitempty"`
	ConnectionClosed bool `json:"connectionClosed,omitempty"`
	// LastActivity is the last activity report or connect; the idle
	// timeout counts from it.
	LastActivity time.Time `json:"lastActivity"`
	// DisconnectedAt is when the client dropped; the resume grace counts
	// from it. Zero while connected.
	DisconnectedAt time.Time `json:"disconnectedAt"`
	// Recorded is the status last written to the store by the workflow.
	Recorded string `json:"recorded,omitempty"`
	// Runs counts completed runs (ContinueAsNew), for logs.
	Runs int `json:"runs,omitempty"`
}

// SessionConnection is the payload of SignalSessionConnected and
// SignalSessionDisconnected. Connection is the session's Connections count
// returned by the store's ConsumeStreamToken for this stream connection:
// it orders connects and disconnects that arrive together, so a late
// disconnect of connection 1 cannot mark connection 2 disconnected. 0
// means unnumbered: connected always connects, disconnected always
// disconnects.
type SessionConnection struct {
	Connection int `json:"connection,omitempty"`
}

// SessionEnded is the payload of SignalSessionEnded.
type SessionEnded struct {
	// Status is Terminated or Failed (anything else counts as Terminated).
	Status string `json:"status"`
	// Details says why, e.g. "shell exited", "client closed the session",
	// or the agent's error.
	Details string `json:"details"`
	// ExitCode is the shell's or command's exit code, when it exited.
	ExitCode *int `json:"exitCode,omitempty"`
}

// SessionTerminate is the payload of SignalSessionTerminate.
type SessionTerminate struct {
	Reason string `json:"reason,omitempty"`
	// By names who asked (the API token's name).
	By string `json:"by,omitempty"`
}

// SessionEndInput is ActivitySessionEnd's input.
type SessionEndInput struct {
	SessionID string `json:"sessionId"`
	// Status is Terminated or Failed.
	Status   string `json:"status"`
	Details  string `json:"details"`
	ExitCode *int   `json:"exitCode,omitempty"`
}

// SessionStatusInput is ActivitySessionSetStatus' input.
type SessionStatusInput struct {
	SessionID string `json:"sessionId"`
	// Status is Connected or Disconnected.
	Status  string `json:"status"`
	Details string `json:"details,omitempty"`
}

// SessionResult is Session's result: how the session ended.
type SessionResult struct {
	Status   string `json:"status"`
	Details  string `json:"details"`
	ExitCode *int   `json:"exitCode,omitempty"`
}

// Session owns a session's lifecycle: it waits for the first connect
// (failing the session after ConnectTimeout), then ends it on an idle
// timeout, the maximum duration, a client that does not resume within the
// grace, an operator's terminate or the bridge's report that it ended. The
// bytes never pass through here; the bridge reports activity at most every
// 30 s, and the workflow keeps a single timer for the earliest deadline so
// that a report costs no timer events.
func Session(ctx workflow.Context, in SessionInput) (SessionResult, error) {
	in = in.withDefaults()
	if in.SessionID == "" {
		return SessionResult{}, temporal.NewNonRetryableApplicationError("session ID is empty", ErrTypeInvalidInput, nil)
	}
	r := &sessionRun{in: in, est: 5}
	if in.State != nil {
		r.st = *in.State
	} else {
		now := workflow.Now(ctx)
		r.st = SessionState{StartedAt: now, Status: SessionStatusConnecting, LastActivity: now}
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (SessionState, error) { return r.st, nil }); err != nil {
		return SessionResult{}, fmt.Errorf("set query handler: %w", err)
	}
	r.connected = workflow.GetSignalChannel(ctx, SignalSessionConnected)
	r.disconnected = workflow.GetSignalChannel(ctx, SignalSessionDisconnected)
	r.activity = workflow.GetSignalChannel(ctx, SignalSessionActivity)
	r.ended = workflow.GetSignalChannel(ctx, SignalSessionEnded)
	r.terminate = workflow.GetSignalChannel(ctx, SignalSessionTerminate)

	var (
		timer       workflow.Future
		timerAt     time.Time
		cancelTimer workflow.CancelFunc
	)
	for {
		r.checkDeadlines(workflow.Now(ctx))
		if r.end == nil {
			r.recordStatus(ctx)
		}
		if r.end != nil {
			break
		}
		if r.shouldContinueAsNew(ctx) {
			r.drain(ctx)
			r.checkDeadlines(workflow.Now(ctx))
			if r.end != nil {
				break
			}
			r.st.Runs++
			next := r.in
			st := r.st
			next.State = &st
			return SessionResult{}, workflow.NewContinueAsNewError(ctx, SessionWorkflowName, next)
		}
		now := workflow.Now(ctx)
		if next := r.nextDeadline(); timer == nil || next.Before(timerAt) {
			if cancelTimer != nil {
				cancelTimer()
			}
			tctx, cancel := workflow.WithCancel(ctx)
			timer, timerAt, cancelTimer = workflow.NewTimer(tctx, next.Sub(now)), next, cancel
			r.est += 2 // started, fired or cancelled
		}
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(timer, func(workflow.Future) { timer, cancelTimer = nil, nil })
		r.addSignals(ctx, sel)
		sel.Select(ctx)
		r.est += 3 // a workflow task; each signal adds its own event
		// Handle everything else that arrived in the same workflow task.
		r.drain(ctx)
	}
	if cancelTimer != nil {
		cancelTimer()
	}
	return r.finish(ctx)
}

// sessionRun is one run of Session.
type sessionRun struct {
	in  SessionInput
	st  SessionState
	end *SessionResult
	// est is an upper estimate of this run's history length, for when the
	// server's count lags (and for the test environment, which keeps none).
	est int

	connected, disconnected, activity, ended, terminate workflow.ReceiveChannel
}

// addSignals adds a case per signal channel to sel.
func (r *sessionRun) addSignals(ctx workflow.Context, sel workflow.Selector) {
	sel.AddReceive(r.connected, func(c workflow.ReceiveChannel, _ bool) {
		var p SessionConnection
		c.Receive(ctx, &p)
		r.onConnected(ctx, p.Connection)
	})
	sel.AddReceive(r.disconnected, func(c workflow.ReceiveChannel, _ bool) {
		var p SessionConnection
		c.Receive(ctx, &p)
		r.onDisconnected(ctx, p.Connection)
	})
	sel.AddReceive(r.activity, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		r.onActivity(ctx)
	})
	sel.AddReceive(r.ended, func(c workflow.ReceiveChannel, _ bool) {
		var p SessionEnded
		c.Receive(ctx, &p)
		r.onEnded(p)
	})
	sel.AddReceive(r.terminate, func(c workflow.ReceiveChannel, _ bool) {
		var p SessionTerminate
		c.Receive(ctx, &p)
		r.onTerminate(p)
	})
}

// drain handles every signal already buffered, without blocking.
func (r *sessionRun) drain(ctx workflow.Context) {
	for {
		var p SessionConnection
		if !r.connected.ReceiveAsync(&p) {
			break
		}
		r.onConnected(ctx, p.Connection)
	}
	for {
		var p SessionConnection
		if !r.disconnected.ReceiveAsync(&p) {
			break
		}
		r.onDisconnected(ctx, p.Connection)
	}
	for r.activity.ReceiveAsync(nil) {
		r.onActivity(ctx)
	}
	for {
		var p SessionEnded
		if !r.ended.ReceiveAsync(&p) {
			break
		}
		r.onEnded(p)
	}
	for {
		var p SessionTerminate
		if !r.terminate.ReceiveAsync(&p) {
			break
		}
		r.onTerminate(p)
	}
}

// onConnected handles a connect of connection n (0: unnumbered).
func (r *sessionRun) onConnected(ctx workflow.Context, n int) {
	r.est++
	st := &r.st
	switch {
	case n == 0 && st.Status == SessionStatusConnected:
		return
	case n != 0 && n <= st.Connection:
		return // a duplicate, or older than a connection already seen
	}
	if n != 0 {
		st.Connection, st.ConnectionClosed = n, false
	}
	st.Status = SessionStatusConnected
	st.EverConnected = true
	st.LastActivity = workflow.Now(ctx)
	st.DisconnectedAt = time.Time{}
}

// onDisconnected handles a disconnect of connection n (0: unnumbered).
func (r *sessionRun) onDisconnected(ctx workflow.Context, n int) {
	r.est++
	st := &r.st
	switch {
	case n == 0 && st.Status != SessionStatusConnected:
		return
	case n != 0 && (n < st.Connection || (n == st.Connection && st.ConnectionClosed)):
		return
	}
	if n != 0 {
		// n > Connection: its connect is still buffered or was lost; the
		// connection existed and is gone.
		st.Connection, st.ConnectionClosed = n, true
	}
	if st.Status != SessionStatusDisconnected {
		st.DisconnectedAt = workflow.Now(ctx)
	}
	st.Status = SessionStatusDisconnected
	st.EverConnected = true
}

func (r *sessionRun) onActivity(ctx workflow.Context) {
	r.est++
	r.st.LastActivity = workflow.Now(ctx)
}

func (r *sessionRun) onEnded(p SessionEnded) {
	r.est++
	if r.end != nil {
		return
	}
	status := SessionStatusTerminated
	if p.Status == SessionStatusFailed {
		status = SessionStatusFailed
	}
	r.end = &SessionResult{Status: status, Details: p.Details, ExitCode: p.ExitCode}
}

func (r *sessionRun) onTerminate(p SessionTerminate) {
	r.est++
	if r.end != nil {
		return
	}
	by := p.By
	if by == "" {
		by = "unknown"
	}
	details := "terminated by " + by
	if p.Reason != "" {
		details += ": " + p.Reason
	}
	r.end = &SessionResult{Status: SessionStatusTerminated, Details: details}
}

// Deadlines, each zero when it does not apply.
func (r *sessionRun) connectDeadline() time.Time {
	if r.st.EverConnected {
		return time.Time{}
	}
	return r.st.StartedAt.Add(r.in.ConnectTimeout)
}

func (r *sessionRun) maxDeadline() time.Time {
	if r.in.MaxDuration == 0 {
		return time.Time{}
	}
	return r.st.StartedAt.Add(r.in.MaxDuration)
}

func (r *sessionRun) graceDeadline() time.Time {
	if r.st.Status != SessionStatusDisconnected {
		return time.Time{}
	}
	return r.st.DisconnectedAt.Add(r.in.ResumeGrace)
}

func (r *sessionRun) idleDeadline() time.Time {
	if !r.st.EverConnected {
		return time.Time{}
	}
	return r.st.LastActivity.Add(r.in.IdleTimeout)
}

// nextDeadline is the earliest deadline that applies. There is always one:
// the connect deadline before the first connect, the idle one after.
func (r *sessionRun) nextDeadline() time.Time {
	var next time.Time
	for _, d := range []time.Time{r.connectDeadline(), r.maxDeadline(), r.graceDeadline(), r.idleDeadline()} {
		if !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	return next
}

// checkDeadlines ends the session when a deadline has passed at now.
func (r *sessionRun) checkDeadlines(now time.Time) {
	if r.end != nil {
		return
	}
	passed := func(d time.Time) bool { return !d.IsZero() && !now.Before(d) }
	switch {
	case passed(r.connectDeadline()):
		r.end = &SessionResult{Status: SessionStatusFailed, Details: SessionDetailsNeverConnected}
	case passed(r.maxDeadline()):
		r.end = &SessionResult{Status: SessionStatusTerminated, Details: SessionDetailsMaxDuration}
	case passed(r.graceDeadline()):
		r.end = &SessionResult{Status: SessionStatusTerminated, Details: SessionDetailsNoReconnect}
	case passed(r.idleDeadline()):
		r.end = &SessionResult{Status: SessionStatusTerminated, Details: SessionDetailsIdleTimeout}
	}
}

// recordStatus writes a Connected/Disconnected change to the store, once
// per change however many signals led to it. The bridge writes it too;
// this makes the workflow's view win in the end. A failure is logged, not
// fatal: the status is advisory until the session ends.
func (r *sessionRun) recordStatus(ctx workflow.Context) {
	st := &r.st
	if st.Status == SessionStatusConnecting || st.Status == st.Recorded {
		return
	}
	in := SessionStatusInput{SessionID: r.in.SessionID, Status: st.Status}
	if st.Status == SessionStatusDisconnected {
		in.Details = SessionDetailsDisconnected
	}
	r.est += 6
	err := workflow.ExecuteActivity(shortCtx(ctx, 10*time.Second, 3), ActivitySessionSetStatus, in).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("record session status failed", "sessionId", r.in.SessionID, "status", st.Status, "error", err)
	}
	// Not retried either way: the next change records again.
	st.Recorded = st.Status
}

func (r *sessionRun) shouldContinueAsNew(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return max(info.GetCurrentHistoryLength(), r.est) >= r.in.ContinueAsNewAfterEvents || info.GetContinueAsNewSuggested()
}

// finish ends the session in the store and returns how it ended. The
// activity retries until the store answers: a session must not stay open
// because the database blinked.
func (r *sessionRun) finish(ctx workflow.Context) (SessionResult, error) {
	res := *r.end
	in := SessionEndInput{SessionID: r.in.SessionID, Status: res.Status, Details: res.Details, ExitCode: res.ExitCode}
	if err := workflow.ExecuteActivity(shortCtx(ctx, 30*time.Second, 0), ActivitySessionEnd, in).Get(ctx, nil); err != nil {
		return SessionResult{}, fmt.Errorf("end session %s: %w", r.in.SessionID, err)
	}
	workflow.GetLogger(ctx).Info("session ended", "sessionId", r.in.SessionID, "status", res.Status, "details", res.Details)
	return res, nil
}
