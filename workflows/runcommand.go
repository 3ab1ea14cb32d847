package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Defaults from reference 1.4 and the tuning rationale in RunCommandTuning.
const (
	defaultTimeoutSeconds          = 3600
	defaultExecutionTimeoutSeconds = 3600
	defaultPollMaxWait             = 30 * time.Second
	defaultPollLinger              = 500 * time.Millisecond
	defaultPollMaxResults          = 1000
	defaultIdlePollDelay           = time.Second
	defaultMaxDispatchBatch        = 2000
	defaultContinueAsNewAfter      = 5000
	// awaitHeartbeatTimeout must exceed the AwaitResults heartbeat interval
	// so a dead worker is noticed without failing healthy long polls.
	awaitHeartbeatTimeout = 20 * time.Second
)

// withDefaults fills zero knobs.
func (t RunCommandTuning) withDefaults() RunCommandTuning {
	if t.PollMaxWait <= 0 {
		t.PollMaxWait = defaultPollMaxWait
	}
	if t.PollLinger <= 0 {
		t.PollLinger = defaultPollLinger
	}
	if t.PollMaxResults <= 0 {
		t.PollMaxResults = defaultPollMaxResults
	}
	if t.IdlePollDelay <= 0 {
		t.IdlePollDelay = defaultIdlePollDelay
	}
	if t.MaxDispatchBatch <= 0 {
		t.MaxDispatchBatch = defaultMaxDispatchBatch
	}
	if t.ContinueAsNewAfterEvents <= 0 {
		t.ContinueAsNewAfterEvents = defaultContinueAsNewAfter
	}
	return t
}

// RunCommand executes one send-command across its resolved targets.
//
// Shape (reference 1.3–1.5): ResolveTargets, then a loop that dispatches
// batches within the ramp-up and MaxConcurrency window and long-polls for
// batches of results, stopping dispatch past MaxErrors, on cancel, or at the
// delivery deadline. Dispatch and results are batched because per-target
// activities cost ~6 history events each and would cap a command near 1,000
// targets (reference/temporal-here.md); the run hands over to a fresh one with
// ContinueAsNew before its history grows large.
func RunCommand(ctx workflow.Context, in RunCommandInput) (RunCommandResult, error) {
	if in.MaxConcurrency == "" {
		in.MaxConcurrency = DefaultMaxConcurrency
	}
	if in.MaxErrors == "" {
		in.MaxErrors = DefaultMaxErrors
	}
	if in.TimeoutSeconds <= 0 {
		in.TimeoutSeconds = defaultTimeoutSeconds
	}
	if in.ExecutionTimeoutSeconds <= 0 {
		in.ExecutionTimeoutSeconds = defaultExecutionTimeoutSeconds
	}
	conc, err := ParseRate(in.MaxConcurrency, false)
	if err != nil {
		return RunCommandResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, err)
	}
	errs, err := ParseRate(in.MaxErrors, true)
	if err != nil {
		return RunCommandResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, err)
	}
	if in.CommandID == "" {
		return RunCommandResult{}, temporal.NewNonRetryableApplicationError("commandId is required", ErrTypeInvalidInput, nil)
	}

	r := &runner{in: in, tuning: in.Tuning.withDefaults(), est: 3}
	// Registered before ResolveTargets so the API can query a command that is
	// still resolving.
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (CommandProgress, error) {
		return r.progress(), nil
	}); err != nil {
		return RunCommandResult{}, err
	}

	if in.State == nil {
		var res ResolveTargetsResult
		err := workflow.ExecuteActivity(shortCtx(ctx, 2*time.Minute, 0), ActivityResolveTargets, ResolveTargetsInput{
			CommandID: in.CommandID, InstanceIDs: in.InstanceIDs, Targets: in.Targets,
		}).Get(ctx, &res)
		r.est += 6
		if err != nil {
			return r.fail(ctx, fmt.Errorf("resolve targets: %w", err))
		}
		ids := dedupe(res.InstanceIDs)
		in.State = &RunCommandState{
			Targets:   ids,
			States:    make([]byte, len(ids)),
			StartedAt: workflow.Now(ctx),
			RampBatch: 1,
		}
	}
	r.st = in.State
	r.in.State = nil
	r.rebuild()
	r.maxConc = conc.Of(len(r.st.Targets))
	r.maxErr = errs.Of(len(r.st.Targets))
	if len(r.st.Targets) == 0 {
		return r.finish(ctx)
	}
	return r.loop(ctx)
}

// runner is one run's working state. Everything that must survive
// ContinueAsNew lives in st; the rest is rebuilt from it.
type runner struct {
	in      RunCommandInput
	tuning  RunCommandTuning
	st      *RunCommandState
	index   map[string]int // instance ID -> target index; lookups only, never ranged
	tally   Tally
	maxConc int
	maxErr  int

	// Outstanding activities. ctl is Cancel or Expire: they are serialised
	// with dispatch so the store never sees a cancel overtaken by a dispatch.
	dispatching bool
	ctlBusy     bool
	recording   bool
	polling     bool
	idleWait    bool
	cancelPoll  workflow.CancelFunc

	lastRecorded CommandProgress
	draining     bool
	fatal        error
	// est is a conservative history-length estimate: the test environment
	// does not report the real length, and it is a safety net in production.
	est int
}

// rebuild derives the index and tally from st after a start or ContinueAsNew.
func (r *runner) rebuild() {
	r.index = make(map[string]int, len(r.st.Targets))
	r.tally = Tally{Targets: len(r.st.Targets)}
	for i, id := range r.st.Targets {
		r.index[id] = i
		r.tally.add(r.st.States[i], 1)
	}
}

// dedupe drops repeated instance IDs, keeping first-seen order, so one host
// never gets two invocations of a command.
func dedupe(ids []string) []string {
	seen := make(map[string]struct{}, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if _, ok := seen[id]; ok || id == "" {
			continue
		}
		seen[id] = struct{}{}
		out = append(out, id)
	}
	return out
}

// setState moves target i to state s, keeping the tally in step.
func (r *runner) setState(i int, s invState) {
	r.tally.add(r.st.States[i], -1)
	r.st.States[i] = s
	r.tally.add(s, 1)
}

// apply folds a batch of invocation changes into the state. Terminal states
// are final, so duplicates and late reports are harmless.
func (r *runner) apply(results []InvocationResult) {
	for _, res := range results {
		i, ok := r.index[res.InstanceID]
		if !ok {
			continue
		}
		cur, next := r.st.States[i], classify(res.Status, res.StatusDetails)
		switch {
		case isTerminal(cur), next == stPending:
			continue
		case isTerminal(next):
			r.setState(i, next)
		case cur == stPending:
			// A progress report for an invocation we never sent: ignore it
			// rather than count it against the window.
			continue
		case next == stStarted || (next == stDelayed && cur == stDispatched):
			r.setState(i, next)
		}
	}
	r.checkCutoff()
}

// checkCutoff enforces MaxErrors: once errors exceed it, nothing more is
// dispatched and never-sent targets become Terminated (reference 1.3).
// Invocations already running may still finish.
func (r *runner) checkCutoff() {
	if r.st.Stopped || r.tally.Errors() <= r.maxErr {
		return
	}
	r.st.Stopped = true
	if r.st.CancelAll {
		return // the pending cancel settles never-sent targets as Cancelled
	}
	for i := r.st.Next; i < len(r.st.States); i++ {
		if r.st.States[i] == stPending {
			r.setState(i, stTerminated)
		}
	}
}

// onCancel records a cancel signal; the loop sends it when dispatch is idle.
func (r *runner) onCancel(req CancelRequest) {
	if r.tally.AllTerminal() || r.st.CancelAll {
		return
	}
	if len(req.InstanceIDs) == 0 {
		r.st.CancelAll = true
		return
	}
	r.st.CancelQueue = append(r.st.CancelQueue, req.InstanceIDs...)
	// Naming every unfinished invocation is cancelling the command.
	named := make(map[string]struct{}, len(r.st.CancelQueue))
	for _, id := range r.st.CancelQueue {
		named[id] = struct{}{}
	}
	for i, s := range r.st.States {
		if !isTerminal(s) {
			if _, ok := named[r.st.Targets[i]]; !ok {
				return
			}
		}
	}
	r.st.CancelAll = true
	r.st.CancelQueue = nil
}

// progress is the live status shown by the query and RecordProgress.
func (r *runner) progress() CommandProgress {
	p := CommandProgress{
		CommandID:       r.in.CommandID,
		MaxConcurrency:  r.maxConc,
		MaxErrors:       r.maxErr,
		CancelRequested: r.st != nil && r.st.CancelAll,
	}
	if r.st == nil {
		p.Status, p.StatusDetails = StatusPending, DetailsPending
		return p
	}
	p.Status, p.StatusDetails = AggregateStatus(r.tally, r.maxErr, r.st.CancelAll)
	p.Counters = r.tally.Counters()
	p.InFlight = r.tally.InProgress
	p.NotDispatched = r.tally.Pending
	return p
}

// loop is the event loop: start whatever work is due, wait for one event,
// repeat until every invocation is terminal.
func (r *runner) loop(ctx workflow.Context) (RunCommandResult, error) {
	sel := workflow.NewSelector(ctx)
	sigCh := workflow.GetSignalChannel(ctx, SignalCancel)
	sel.AddReceive(sigCh, func(c workflow.ReceiveChannel, _ bool) {
		var req CancelRequest
		c.Receive(ctx, &req)
		r.est++
		r.onCancel(req)
	})
	deliveryAt := r.st.StartedAt.Add(time.Duration(r.in.TimeoutSeconds) * time.Second)
	finalAt := deliveryAt.Add(time.Duration(r.in.ExecutionTimeoutSeconds) * time.Second)
	r.deadline(ctx, sel, deliveryAt, &r.st.DeliveryExpired)
	r.deadline(ctx, sel, finalAt, &r.st.FinalExpired)
	r.checkCutoff()

	for {
		if r.fatal != nil {
			return r.fail(ctx, r.fatal)
		}
		if r.tally.AllTerminal() && !r.dispatching && !r.ctlBusy && !r.recording {
			break
		}
		if !r.draining && r.shouldContinueAsNew(ctx) {
			r.draining = true
		}
		if r.draining && !r.dispatching && !r.ctlBusy && !r.recording && !r.polling {
			return r.continueAsNew(ctx, sigCh)
		}
		if !r.draining {
			r.startWork(ctx, sel)
		}
		sel.Select(ctx)
		r.est += 3
	}
	if r.polling && r.cancelPoll != nil {
		// Nothing can change any more; do not wait out the long poll.
		r.cancelPoll()
		r.est++
	}
	return r.finish(ctx)
}

// deadline arms a timer for at, setting *flag when it fires. A deadline
// already passed (e.g. after ContinueAsNew) sets the flag at once.
func (r *runner) deadline(ctx workflow.Context, sel workflow.Selector, at time.Time, flag *bool) {
	if *flag {
		return
	}
	d := at.Sub(workflow.Now(ctx))
	if d <= 0 {
		*flag = true
		return
	}
	r.est += 2
	sel.AddFuture(workflow.NewTimer(ctx, d), func(f workflow.Future) {
		if f.Get(ctx, nil) == nil {
			*flag = true
		}
	})
}

// shouldContinueAsNew reports whether this run's history is big enough to
// hand over. The server's own suggestion is honoured too.
func (r *runner) shouldContinueAsNew(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	n := max(info.GetCurrentHistoryLength(), r.est)
	return n >= r.tuning.ContinueAsNewAfterEvents || info.GetContinueAsNewSuggested()
}

// continueAsNew hands the state to a fresh run. Pending signals are drained
// into the state first so no cancel is lost between runs.
func (r *runner) continueAsNew(ctx workflow.Context, sigCh workflow.ReceiveChannel) (RunCommandResult, error) {
	for {
		var req CancelRequest
		if !sigCh.ReceiveAsync(&req) {
			break
		}
		r.onCancel(req)
	}
	r.st.Runs++
	next := r.in
	next.State = r.st
	workflow.GetLogger(ctx).Info("continuing command as new", "commandId", r.in.CommandID, "runs", r.st.Runs)
	return RunCommandResult{}, workflow.NewContinueAsNewError(ctx, RunCommandWorkflowName, next)
}

// startWork starts each kind of activity that is due and not already running.
func (r *runner) startWork(ctx workflow.Context, sel workflow.Selector) {
	if !r.dispatching && !r.ctlBusy {
		r.startControl(ctx, sel)
	}
	if !r.dispatching && !r.ctlBusy {
		r.startDispatch(ctx, sel)
	}
	if !r.polling && !r.idleWait && !r.dispatching && r.tally.InProgress > 0 {
		r.startPoll(ctx, sel)
	}
	if !r.recording && !r.tally.AllTerminal() {
		r.startRecord(ctx, sel)
	}
}

// startControl runs a due cancel or expiry.
func (r *runner) startControl(ctx workflow.Context, sel workflow.Selector) {
	st := r.st
	switch {
	case st.CancelAll && !st.CancelAllSent:
		st.CancelAllSent = true
		st.CancelQueue = nil
		r.runCancel(ctx, sel, r.collect(func(s invState) bool { return !isTerminal(s) }))
	case len(st.CancelQueue) > 0:
		ids := make([]string, 0, len(st.CancelQueue))
		for _, id := range dedupe(st.CancelQueue) {
			if i, ok := r.index[id]; ok && !isTerminal(st.States[i]) {
				ids = append(ids, id)
			}
		}
		st.CancelQueue = nil
		r.runCancel(ctx, sel, ids)
	case st.FinalExpired && !st.FinalExpireDone:
		// Everything unfinished at TimeoutSeconds+execution timeout never
		// replied: Delivery Timed Out (reference 1.4).
		st.FinalExpireDone, st.DeliveryExpireDone = true, true
		ids := r.collect(func(s invState) bool { return !isTerminal(s) })
		r.runExpire(ctx, sel, ids, true)
	case st.DeliveryExpired && !st.DeliveryExpireDone:
		// Not started by TimeoutSeconds: it never runs, including targets
		// the window had not reached yet.
		st.DeliveryExpireDone = true
		ids := r.collect(func(s invState) bool { return s == stPending || s == stDispatched || s == stDelayed })
		r.runExpire(ctx, sel, ids, false)
	}
}

// collect lists the targets whose state matches, in target order.
func (r *runner) collect(match func(invState) bool) []string {
	var ids []string
	for i, s := range r.st.States {
		if match(s) {
			ids = append(ids, r.st.Targets[i])
		}
	}
	return ids
}

// runCancel starts CancelInvocations for ids. Never-sent invocations it does
// not report are settled as Cancelled here so the command can end.
func (r *runner) runCancel(ctx workflow.Context, sel workflow.Selector, ids []string) {
	if len(ids) == 0 {
		return
	}
	r.ctlBusy = true
	r.est += 3
	f := workflow.ExecuteActivity(shortCtx(ctx, time.Minute, 0), ActivityCancelInvocations, CancelInput{CommandID: r.in.CommandID, InstanceIDs: ids})
	sel.AddFuture(f, func(f workflow.Future) {
		r.ctlBusy = false
		var res []InvocationResult
		if err := f.Get(ctx, &res); err != nil {
			r.fatal = fmt.Errorf("cancel invocations: %w", err)
			return
		}
		r.apply(res)
		r.force(ids, func(s invState) bool { return s == stPending }, StatusCancelled, DetailsCancelled)
	})
}

// runExpire starts ExpireInvocations for ids. After the final deadline
// nothing may stay open, so what the activity did not settle is forced.
func (r *runner) runExpire(ctx workflow.Context, sel workflow.Selector, ids []string, final bool) {
	if len(ids) == 0 {
		return
	}
	r.ctlBusy = true
	r.est += 3
	f := workflow.ExecuteActivity(shortCtx(ctx, time.Minute, 0), ActivityExpireInvocations, ExpireInput{
		CommandID: r.in.CommandID, InstanceIDs: ids, Details: DetailsDeliveryTimedOut, IncludeStarted: final,
	})
	sel.AddFuture(f, func(f workflow.Future) {
		r.ctlBusy = false
		var res []InvocationResult
		if err := f.Get(ctx, &res); err != nil {
			r.fatal = fmt.Errorf("expire invocations: %w", err)
			return
		}
		r.apply(res)
		if final {
			r.force(ids, func(s invState) bool { return !isTerminal(s) }, StatusTimedOut, DetailsDeliveryTimedOut)
		} else {
			// Never-sent targets cannot have started; settle any the
			// activity missed so they are not dispatched after the deadline.
			r.force(ids, func(s invState) bool { return s == stPending }, StatusTimedOut, DetailsDeliveryTimedOut)
		}
	})
}

// force settles listed targets still matching as status/details and
// remembers them for FinishCommand to persist.
func (r *runner) force(ids []string, match func(invState) bool, status, details string) {
	for _, id := range ids {
		i := r.index[id]
		if match(r.st.States[i]) {
			res := InvocationResult{InstanceID: id, Status: status, StatusDetails: details}
			r.st.Forced = append(r.st.Forced, res)
			r.setState(i, classify(status, details))
		}
	}
	r.checkCutoff()
}

// dispatchRoom is how many targets may be sent now: the MaxConcurrency
// window minus what is in flight, further limited during the ramp-up, which
// sends 1, then 2, 4, … each only once the previous batch is acknowledged
// (reference 1.3).
func (r *runner) dispatchRoom() int {
	st := r.st
	if st.Stopped || st.CancelAll || st.DeliveryExpired || r.tally.Pending == 0 {
		return 0
	}
	room := r.maxConc - r.tally.InProgress
	if room <= 0 {
		return 0
	}
	if !st.RampDone {
		for i := st.RampFrom; i < st.RampTo; i++ {
			if st.States[i] == stDispatched {
				return 0 // previous ramp batch not acknowledged yet
			}
		}
		if st.RampBatch >= r.maxConc {
			st.RampDone = true
		} else {
			room = min(room, st.RampBatch)
		}
	}
	return min(room, r.tuning.MaxDispatchBatch)
}

// startDispatch sends the next batch of never-sent targets, in target order.
func (r *runner) startDispatch(ctx workflow.Context, sel workflow.Selector) {
	room := r.dispatchRoom()
	if room == 0 {
		return
	}
	st := r.st
	from := st.Next
	ids := make([]string, 0, room)
	i := st.Next
	for ; i < len(st.States) && len(ids) < room; i++ {
		if st.States[i] == stPending {
			ids = append(ids, st.Targets[i])
			r.setState(i, stDispatched)
		}
	}
	st.Next = i
	if len(ids) == 0 {
		return
	}
	if !st.RampDone {
		st.RampFrom, st.RampTo = from, i
		st.RampBatch *= 2
	}
	r.dispatching = true
	r.est += 3
	f := workflow.ExecuteActivity(shortCtx(ctx, time.Minute, 0), ActivityDispatchInvocations, DispatchInput{CommandID: r.in.CommandID, InstanceIDs: ids})
	sel.AddFuture(f, func(f workflow.Future) {
		r.dispatching = false
		if err := f.Get(ctx, nil); err != nil {
			r.fatal = fmt.Errorf("dispatch invocations: %w", err)
		}
	})
}

// startPoll long-polls for the next batch of changes. An empty batch means
// the poll waited its full MaxWait; a short timer then keeps an idle command
// from spinning.
func (r *runner) startPoll(ctx workflow.Context, sel workflow.Selector) {
	r.polling = true
	r.est += 3
	pctx, cancel := workflow.WithCancel(ctx)
	r.cancelPoll = cancel
	pctx = workflow.WithActivityOptions(pctx, workflow.ActivityOptions{
		StartToCloseTimeout: r.tuning.PollMaxWait + r.tuning.PollLinger + time.Minute,
		HeartbeatTimeout:    awaitHeartbeatTimeout,
		RetryPolicy:         retryPolicy(0),
	})
	// During the ramp-up the next batch waits for this one's
	// acknowledgements: the poll may return as soon as that many changes
	// came. (Only the activity's input changes, so histories replay.)
	awaited := 0
	if !r.st.RampDone {
		for i := r.st.RampFrom; i < r.st.RampTo; i++ {
			if r.st.States[i] == stDispatched {
				awaited++
			}
		}
	}
	f := workflow.ExecuteActivity(pctx, ActivityAwaitResults, AwaitResultsInput{
		CommandID:   r.in.CommandID,
		Cursor:      r.st.Cursor,
		MaxWait:     r.tuning.PollMaxWait,
		Linger:      r.tuning.PollLinger,
		MaxResults:  r.tuning.PollMaxResults,
		ReturnAfter: awaited,
	})
	sel.AddFuture(f, func(f workflow.Future) {
		r.polling = false
		r.cancelPoll = nil
		var res AwaitResultsResult
		if err := f.Get(ctx, &res); err != nil {
			var canceled *temporal.CanceledError
			if !errors.As(err, &canceled) {
				r.fatal = fmt.Errorf("await results: %w", err)
			}
			return
		}
		if res.Cursor > r.st.Cursor {
			r.st.Cursor = res.Cursor
		}
		r.apply(res.Results)
		if len(res.Results) == 0 {
			r.idleWait = true
			r.est += 2
			sel.AddFuture(workflow.NewTimer(ctx, r.tuning.IdlePollDelay), func(workflow.Future) { r.idleWait = false })
		}
	})
}

// startRecord persists the live progress when it changed since the last
// record; one at a time, so a burst of results costs one write.
func (r *runner) startRecord(ctx workflow.Context, sel workflow.Selector) {
	p := r.progress()
	var terminated []string
	if r.st.Stopped && !r.st.TerminatedRecorded && r.tally.Terminated > 0 {
		terminated = r.collect(func(s invState) bool { return s == stTerminated })
	}
	if p == r.lastRecorded && terminated == nil {
		return
	}
	r.recording = true
	r.est += 3
	f := workflow.ExecuteActivity(shortCtx(ctx, time.Minute, 3), ActivityRecordProgress, RecordProgressInput{Progress: p, Terminated: terminated})
	sel.AddFuture(f, func(f workflow.Future) {
		r.recording = false
		if err := f.Get(ctx, nil); err != nil {
			// Progress is advisory; FinishCommand writes the final truth.
			workflow.GetLogger(ctx).Warn("record progress failed", "commandId", r.in.CommandID, "error", err)
			return
		}
		r.lastRecorded = p
		if terminated != nil {
			r.st.TerminatedRecorded = true
		}
	})
}

// finish persists the final state and returns it.
func (r *runner) finish(ctx workflow.Context) (RunCommandResult, error) {
	p := r.progress()
	in := FinishInput{
		CommandID:     r.in.CommandID,
		Status:        p.Status,
		StatusDetails: p.StatusDetails,
		Counters:      p.Counters,
		Terminated:    r.collect(func(s invState) bool { return s == stTerminated }),
		Forced:        r.st.Forced,
	}
	if err := workflow.ExecuteActivity(shortCtx(ctx, time.Minute, 0), ActivityFinishCommand, in).Get(ctx, nil); err != nil {
		return RunCommandResult{}, fmt.Errorf("finish command: %w", err)
	}
	return RunCommandResult{Status: p.Status, StatusDetails: p.StatusDetails, Counters: p.Counters}, nil
}

// fail records the command as Failed (best effort) and returns err, so a
// broken activity never leaves a command shown as In Progress forever.
func (r *runner) fail(ctx workflow.Context, err error) (RunCommandResult, error) {
	var c Counters
	if r.st != nil {
		c = r.tally.Counters()
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	ferr := workflow.ExecuteActivity(shortCtx(dctx, time.Minute, 5), ActivityFinishCommand, FinishInput{
		CommandID: r.in.CommandID, Status: StatusFailed, StatusDetails: DetailsFailed, Counters: c,
	}).Get(dctx, nil)
	if ferr != nil {
		workflow.GetLogger(ctx).Error("finish failed command", "commandId", r.in.CommandID, "error", ferr)
	}
	return RunCommandResult{}, err
}

// shortCtx sets options for the quick store/gateway activities. attempts 0
// means retry without limit: a transient store or gateway outage must delay
// a command, not fail it; only bad input (ErrTypeInvalidInput) stops retries.
func shortCtx(ctx workflow.Context, startToClose time.Duration, attempts int32) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: startToClose,
		RetryPolicy:         retryPolicy(attempts),
	})
}

// retryPolicy retries with capped backoff; bad input is never retried.
func retryPolicy(attempts int32) *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        time.Minute,
		MaximumAttempts:        attempts,
		NonRetryableErrorTypes: []string{ErrTypeInvalidInput},
	}
}
