package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// Errors that end a step early. A Plugin returns context.Cause(ctx) when its
// context ends; the runner maps the cause to the step's status.
var (
	// ErrTimedOut is the cause (wrapped) of a step or execution timeout:
	// the step is TimedOut.
	ErrTimedOut = errors.New("timed out")
	// ErrCancelled is the cause of a cancel_command: the step is Cancelled.
	ErrCancelled = errors.New("cancelled by the server")
	// ErrAgentStopping is the cause when the agent shuts down mid-run: the
	// step is Failed, with a note saying why.
	ErrAgentStopping = errors.New("the agent was stopped while the step ran")
	// ErrRunnerClosed refuses run_command after Shutdown.
	ErrRunnerClosed = errors.New("command runner is shut down")
)

var (
	errStepTimeout      = fmt.Errorf("step %w", ErrTimedOut)
	errExecutionTimeout = fmt.Errorf("execution %w", ErrTimedOut)
)

// interruptedNote is the stderr of every step of an invocation found
// unfinished at start-up.
const interruptedNote = "fleetops-agent stopped (crash, kill or reboot) while this invocation was queued or running; it was not resumed and may have partially run\n"

// RunnerConfig configures a CommandRunner. Zero values take the defaults
// documented on each field.
type RunnerConfig struct {
	// StateDir is the agent's state dir. Records live in
	// StateDir/invocations, per-invocation working dirs in
	// StateDir/orchestration. Required.
	StateDir string
	// Logger receives the runner's logs. Default: discard.
	Logger *slog.Logger
	// MaxConcurrent bounds invocations running at once; the rest queue.
	// Default 16.
	MaxConcurrent int
	// Plugins maps a step action to its implementation. Default
	// DefaultPlugins(...): aws:runShellScript, aws:downloadContent and
	// fleetops:noop.
	Plugins map[string]Plugin
	// UnsupportedMessage is the stderr of a step whose action has no
	// plugin, followed by the action. Default "unsupported action".
	UnsupportedMessage string
	// KillGrace is how long a process group has between SIGTERM and
	// SIGKILL on cancel or timeout. Default 5s.
	KillGrace time.Duration
	// HTTPClient downloads content (aws:downloadContent). Default
	// http.DefaultClient-like client with no overall timeout (the step's
	// context bounds it).
	HTTPClient *http.Client
	// FlushInterval and FlushBytes pace command_output: a chunk is sent at
	// most every FlushInterval, or as soon as FlushBytes are waiting.
	// Defaults 200ms and 32 KiB.
	FlushInterval time.Duration
	FlushBytes    int
	// Retention keeps the record of a finished, acknowledged invocation
	// (and so its deduplication) this long. Default 7 days.
	Retention time.Duration
	// NoSync skips fsync when writing records. Only for the swarm harness.
	NoSync bool
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Defaults and limits of the runner.
const (
	DefaultMaxConcurrent  = 16
	DefaultMaxOutputBytes = 1 << 20
	// MaxOutputCap bounds RunCommand.MaxOutputBytes: both streams of an
	// invocation must fit one command_result message.
	MaxOutputCap = 3 << 19
	// maxChunkBytes bounds the data of one command_output message; JSON
	// may escape it up to six-fold, still far below MaxMessageBytes.
	maxChunkBytes = 256 << 10
)

// CheckAndSetDefaults validates the configuration and fills in defaults.
func (c *RunnerConfig) CheckAndSetDefaults() error {
	if c.StateDir == "" {
		return errors.New("runner: state dir is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.UnsupportedMessage == "" {
		c.UnsupportedMessage = "unsupported action"
	}
	setDefault(&c.KillGrace, 5*time.Second)
	setDefault(&c.FlushInterval, 200*time.Millisecond)
	setDefault(&c.Retention, 7*24*time.Hour)
	if c.FlushBytes <= 0 {
		c.FlushBytes = 32 << 10
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Plugins == nil {
		c.Plugins = DefaultPlugins(c.KillGrace, c.HTTPClient)
	}
	for action, p := range c.Plugins {
		if p == nil {
			return fmt.Errorf("runner: nil plugin for action %q", action)
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// invState is an invocation's place in the runner's memory.
type invState int

const (
	invQueued invState = iota
	invRunning
	invFinished
)

// invocation is what the runner keeps in memory per known ID: small, since
// a node remembers a week of invocations. Results stay on disk.
type invocation struct {
	state         invState
	cancel        context.CancelCauseFunc // queued or running only
	cancelled     bool                    // a cancel arrived, maybe before cancel was set
	startedAt     time.Time
	resultPending bool
	doneAt        time.Time
}

// CommandRunner runs Run Command invocations for one node. It outlives
// connections: invocations keep running while the agent reconnects, and
// their output and results go to whatever connection is current.
//
// Protocol, as the agent side of agentproto's Run Command messages:
//
//   - run_command: the ID is recorded on disk before anything runs, then
//     command_ack is sent. If a slot is free the first step starts at once
//     and the ack's StartedAt says when; a queued invocation gets a second
//     command_ack with StartedAt when it starts. A known ID is answered
//     command_ack{Duplicate: true} plus, if finished, its stored result:
//     never run twice, also across restarts (the records survive).
//   - command_output: stdout and stderr are streamed in chunks while steps
//     run; Offset counts bytes of that stream over the whole invocation.
//     Chunks that cannot be sent (no connection) are dropped: the result
//     carries the full captured output.
//   - command_result is stored, sent, and resent on every new connection
//     (OnConnect) until command_result_ack arrives.
//   - cancel_command kills a running invocation's process group, finishes
//     a queued one as Cancelled without running it, and for an unknown ID
//     leaves a tombstone so that a later run_command is refused with a
//     Cancelled result.
//
// Records of acknowledged invocations are pruned after RunnerConfig.Retention.
type CommandRunner struct {
	cfg     RunnerConfig
	log     *slog.Logger
	store   recordStore
	workDir string
	slots   chan struct{}

	// lifetime is the parent of every invocation's context: it belongs to
	// the runner, not to a connection or request, and Shutdown ends it.
	lifetime context.Context
	stop     context.CancelCauseFunc
	wg       sync.WaitGroup

	fileMu sync.Mutex // serializes read-modify-write of records

	mu        sync.Mutex
	known     map[string]*invocation
	sender    Sender
	senderGen uint64
	closed    bool
	lastPrune time.Time
}

// NewCommandRunner validates cfg, loads the records in the state dir and
// returns a runner. Invocations found unfinished (the agent died while they
// ran) are finished as Failed, with a note on stderr, and their results
// queued for sending.
func NewCommandRunner(cfg RunnerConfig) (*CommandRunner, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.StateDir, InvocationsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create invocations dir: %w", err)
	}
	lifetime, stop := context.WithCancelCause(context.Background())
	r := &CommandRunner{
		cfg:      cfg,
		log:      cfg.Logger,
		store:    recordStore{dir: dir, noSync: cfg.NoSync},
		workDir:  filepath.Join(cfg.StateDir, "orchestration"),
		slots:    make(chan struct{}, cfg.MaxConcurrent),
		lifetime: lifetime,
		stop:     stop,
		known:    make(map[string]*invocation),
	}
	recs, bad, err := r.store.loadAll()
	if err != nil {
		stop(nil)
		return nil, err
	}
	for _, err := range bad {
		r.log.Error("unreadable invocation record set aside; its invocation could run again if redelivered", "error", err)
	}
	now := cfg.Now()
	for _, rec := range recs {
		if rec.State != stateFinished || rec.Result == nil {
			rec = interruptedRecord(rec, now)
			if err := r.store.save(rec); err != nil {
				stop(nil)
				return nil, fmt.Errorf("finish interrupted invocation %s: %w", rec.InvocationID, err)
			}
			r.log.Warn("invocation was interrupted by an agent stop; reporting it Failed", "invocationId", rec.InvocationID)
		}
		r.known[rec.InvocationID] = &invocation{state: invFinished, resultPending: rec.ResultPending, doneAt: rec.DoneAt}
	}
	r.prune(now)
	return r, nil
}

// interruptedRecord finishes a record found unfinished at start-up.
func interruptedRecord(rec invocationRecord, now time.Time) invocationRecord {
	res := &agentproto.CommandResult{InvocationID: rec.InvocationID, Status: agentproto.StatusFailed, StartedAt: rec.ReceivedAt, EndedAt: now}
	for _, s := range rec.Steps {
		sr := agentproto.StepResult{Name: s.Name, Status: agentproto.StatusFailed, ResponseCode: -1, Stderr: interruptedNote}
		if s.Skipped {
			sr.Status, sr.Stderr = agentproto.StatusSkipped, ""
		}
		res.Steps = append(res.Steps, sr)
	}
	if len(res.Steps) == 0 {
		res.Steps = []agentproto.StepResult{{Name: "invocation", Status: agentproto.StatusFailed, ResponseCode: -1, Stderr: interruptedNote}}
	}
	rec.State, rec.Result, rec.ResultPending = stateFinished, res, true
	return rec
}

// Handlers returns the agent.Config handlers for run_command,
// cancel_command and command_result_ack.
func (r *CommandRunner) Handlers() map[string]Handler {
	return map[string]Handler{
		agentproto.TypeRunCommand:       r.handleRun,
		agentproto.TypeCancelCommand:    r.handleCancel,
		agentproto.TypeCommandResultAck: r.handleResultAck,
	}
}

// OnConnect is meant for Config.OnConnect: it makes s the runner's current
// connection and resends, on its own goroutine, every result the server has
// not acknowledged yet.
func (r *CommandRunner) OnConnect(ctx context.Context, s Sender) {
	r.attach(ctx, s)
	r.mu.Lock()
	var pending []string
	for id, inv := range r.known {
		if inv.state == invFinished && inv.resultPending {
			pending = append(pending, id)
		}
	}
	r.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		for _, id := range pending {
			if ctx.Err() != nil {
				return
			}
			if err := r.sendStoredResult(ctx, s, id); err != nil {
				r.log.Debug("resend of command result failed; it will be resent on the next connection", "invocationId", id, "error", err)
				return
			}
		}
	}()
}

// attach makes s the current sender until ctx (its connection) ends.
func (r *CommandRunner) attach(ctx context.Context, s Sender) {
	r.mu.Lock()
	if r.sender == s {
		r.mu.Unlock()
		return
	}
	r.senderGen++
	gen := r.senderGen
	r.sender = s
	r.mu.Unlock()
	context.AfterFunc(ctx, func() {
		r.mu.Lock()
		if r.senderGen == gen {
			r.sender = nil
		}
		r.mu.Unlock()
	})
}

// errNotConnected: there is no current connection; the message is dropped
// (results stay stored and are resent).
var errNotConnected = errors.New("not connected")

// send writes env to the current connection, if any.
func (r *CommandRunner) send(env agentproto.Envelope) error {
	r.mu.Lock()
	s := r.sender
	r.mu.Unlock()
	if s == nil {
		return errNotConnected
	}
	return s.Send(context.WithoutCancel(r.lifetime), env)
}

func (r *CommandRunner) sendMsg(typ string, payload any) error {
	env, err := agentproto.NewEnvelope(typ, payload)
	if err != nil {
		return err
	}
	return r.send(env)
}

func (r *CommandRunner) sendStoredResult(ctx context.Context, s Sender, id string) error {
	rec, err := r.store.load(id)
	if err != nil {
		return err
	}
	if rec.Result == nil {
		return fmt.Errorf("invocation %s has no stored result", id)
	}
	env, err := agentproto.NewEnvelope(agentproto.TypeCommandResult, rec.Result)
	if err != nil {
		return err
	}
	return s.Send(ctx, env)
}

func (r *CommandRunner) handleRun(ctx context.Context, env agentproto.Envelope, s Sender) error {
	r.attach(ctx, s)
	var rc agentproto.RunCommand
	if err := env.Decode(&rc); err != nil {
		return err
	}
	if rc.InvocationID == "" {
		return errors.New("run_command without invocation ID")
	}
	log := r.log.With("invocationId", rc.InvocationID, "commandId", rc.CommandID)
	now := r.cfg.Now()

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrRunnerClosed
	}
	if inv, ok := r.known[rc.InvocationID]; ok {
		state, started := inv.state, inv.startedAt
		r.mu.Unlock()
		return r.answerKnown(ctx, s, rc, state, started, log)
	}
	inv := &invocation{state: invQueued}
	r.known[rc.InvocationID] = inv
	r.wg.Add(1) // under mu, so that Shutdown's Wait never races this Add
	r.mu.Unlock()

	rec := invocationRecord{InvocationID: rc.InvocationID, CommandID: rc.CommandID, State: stateAccepted, ReceivedAt: now}
	for _, st := range rc.Steps {
		rec.Steps = append(rec.Steps, recordStep{Name: st.Name, Skipped: st.Skipped})
	}
	r.fileMu.Lock()
	err := r.store.save(rec)
	r.fileMu.Unlock()
	if err != nil {
		// Without the record the invocation could run twice; do not
		// acknowledge it: the server redelivers it after a reconnect.
		r.mu.Lock()
		delete(r.known, rc.InvocationID)
		r.mu.Unlock()
		r.wg.Done()
		return fmt.Errorf("record invocation %s: %w", rc.InvocationID, err)
	}

	invCtx, cancel := context.WithCancelCause(r.lifetime)
	ack := agentproto.CommandAck{InvocationID: rc.InvocationID}
	select {
	case r.slots <- struct{}{}:
		ack.StartedAt = r.cfg.Now() // the first step starts right after this ack
	default:
	}
	r.mu.Lock()
	inv.cancel = cancel
	if inv.cancelled {
		cancel(ErrCancelled)
	}
	if !ack.StartedAt.IsZero() {
		inv.state, inv.startedAt = invRunning, ack.StartedAt
	}
	r.mu.Unlock()
	log.Debug("invocation accepted", "steps", len(rc.Steps), "queued", ack.StartedAt.IsZero())
	// The ack goes first so that no output or result overtakes it. If it
	// cannot be sent the invocation runs anyway: it is recorded, and the
	// server's redelivery gets a duplicate ack.
	ackErr := r.sendAck(ctx, s, ack)
	go func() {
		defer r.wg.Done()
		r.execute(invCtx, cancel, rc, inv, ack.StartedAt, log)
	}()
	if ackErr != nil {
		return fmt.Errorf("ack invocation %s: %w", rc.InvocationID, ackErr)
	}
	return nil
}

func (r *CommandRunner) sendAck(ctx context.Context, s Sender, ack agentproto.CommandAck) error {
	env, err := agentproto.NewEnvelope(agentproto.TypeCommandAck, ack)
	if err != nil {
		return err
	}
	return s.Send(ctx, env)
}

// answerKnown answers a run_command for an ID the runner already has.
func (r *CommandRunner) answerKnown(ctx context.Context, s Sender, rc agentproto.RunCommand, state invState, started time.Time, log *slog.Logger) error {
	if state != invFinished {
		log.Debug("duplicate run_command for an invocation in progress")
		return r.sendAck(ctx, s, agentproto.CommandAck{InvocationID: rc.InvocationID, Duplicate: true, StartedAt: started})
	}
	r.fileMu.Lock()
	rec, err := r.store.load(rc.InvocationID)
	if err == nil && rec.Tombstone {
		// Cancelled before it was ever delivered: refuse it, step by step.
		rec.Tombstone, rec.ResultPending, rec.DoneAt = false, true, time.Time{}
		rec.Result = cancelledResult(rc, r.cfg.Now(), time.Time{})
		err = r.store.save(rec)
		if err == nil {
			r.mu.Lock()
			if inv := r.known[rc.InvocationID]; inv != nil {
				inv.resultPending, inv.doneAt = true, time.Time{}
			}
			r.mu.Unlock()
		}
	}
	r.fileMu.Unlock()
	if err != nil {
		return fmt.Errorf("answer known invocation %s: %w", rc.InvocationID, err)
	}
	log.Debug("duplicate run_command for a finished invocation; resending its result", "status", rec.Result.Status)
	if err := r.sendAck(ctx, s, agentproto.CommandAck{InvocationID: rc.InvocationID, Duplicate: true, StartedAt: rec.Result.StartedAt}); err != nil {
		return err
	}
	return r.sendStoredResult(ctx, s, rc.InvocationID)
}

// cancelledResult reports every step of rc as Cancelled, never started.
func cancelledResult(rc agentproto.RunCommand, now, started time.Time) *agentproto.CommandResult {
	res := &agentproto.CommandResult{InvocationID: rc.InvocationID, Status: agentproto.StatusCancelled, StartedAt: started, EndedAt: now}
	for _, st := range rc.Steps {
		res.Steps = append(res.Steps, agentproto.StepResult{Name: st.Name, Status: agentproto.StatusCancelled, ResponseCode: -1})
	}
	return res
}

func (r *CommandRunner) handleCancel(ctx context.Context, env agentproto.Envelope, s Sender) error {
	r.attach(ctx, s)
	var cc agentproto.CancelCommand
	if err := env.Decode(&cc); err != nil {
		return err
	}
	if cc.InvocationID == "" {
		return errors.New("cancel_command without invocation ID")
	}
	r.mu.Lock()
	inv, ok := r.known[cc.InvocationID]
	if ok {
		inv.cancelled = true
		if inv.cancel != nil {
			inv.cancel(ErrCancelled)
		}
		r.mu.Unlock()
		r.log.Debug("cancel requested", "invocationId", cc.InvocationID, "known", true)
		return nil
	}
	now := r.cfg.Now()
	tomb := &invocation{state: invFinished, doneAt: now}
	r.known[cc.InvocationID] = tomb
	r.mu.Unlock()
	r.log.Debug("cancel for an unknown invocation; it will be refused if it arrives", "invocationId", cc.InvocationID)
	rec := invocationRecord{
		InvocationID: cc.InvocationID, State: stateFinished, ReceivedAt: now, Tombstone: true, DoneAt: now,
		Result: &agentproto.CommandResult{InvocationID: cc.InvocationID, Status: agentproto.StatusCancelled, EndedAt: now},
	}
	r.fileMu.Lock()
	err := r.store.save(rec)
	r.fileMu.Unlock()
	if err != nil {
		return fmt.Errorf("record cancelled invocation %s: %w", cc.InvocationID, err)
	}
	return nil
}

func (r *CommandRunner) handleResultAck(ctx context.Context, env agentproto.Envelope, s Sender) error {
	r.attach(ctx, s)
	var ack agentproto.CommandResultAck
	if err := env.Decode(&ack); err != nil {
		return err
	}
	now := r.cfg.Now()
	r.mu.Lock()
	inv, ok := r.known[ack.InvocationID]
	if !ok || inv.state != invFinished || !inv.resultPending {
		r.mu.Unlock()
		return nil // a repeated ack, or one for a result resent after the first ack
	}
	inv.resultPending, inv.doneAt = false, now
	r.mu.Unlock()

	r.fileMu.Lock()
	rec, err := r.store.load(ack.InvocationID)
	if err == nil {
		rec.ResultPending, rec.DoneAt = false, now
		err = r.store.save(rec)
	}
	r.fileMu.Unlock()
	if err != nil {
		return fmt.Errorf("record result ack of %s: %w", ack.InvocationID, err)
	}
	r.prune(now)
	return nil
}

// prune forgets finished invocations whose record is older than
// Retention: acknowledged ones, tombstones, and (with a warning) results
// the server never acknowledged. It runs at most once a minute.
func (r *CommandRunner) prune(now time.Time) {
	r.mu.Lock()
	if now.Sub(r.lastPrune) < time.Minute {
		r.mu.Unlock()
		return
	}
	r.lastPrune = now
	var old []string
	for id, inv := range r.known {
		if inv.state == invFinished && !inv.doneAt.IsZero() && now.Sub(inv.doneAt) > r.cfg.Retention {
			old = append(old, id)
			delete(r.known, id)
		}
	}
	r.mu.Unlock()
	for _, id := range old {
		r.fileMu.Lock()
		err := r.store.remove(id)
		r.fileMu.Unlock()
		if err != nil {
			r.log.Warn("could not prune invocation record", "invocationId", id, "error", err)
		}
		_ = os.RemoveAll(filepath.Join(r.workDir, recordDirName(id)))
	}
}

// recordDirName names an invocation's working dir under orchestration/.
func recordDirName(id string) string {
	name := recordFileName(id)
	return name[:len(name)-len(".json")]
}

// Shutdown stops accepting invocations, kills running ones (they finish
// Failed with ErrAgentStopping noted, and their results are stored for the
// next start) and waits for them until ctx ends.
func (r *CommandRunner) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stop(ErrAgentStopping)
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("command runner shutdown: %w", ctx.Err())
	}
}

// execute runs one invocation from its slot to its stored result.
func (r *CommandRunner) execute(ctx context.Context, cancel context.CancelCauseFunc, rc agentproto.RunCommand, inv *invocation, startedAt time.Time, log *slog.Logger) {
	defer cancel(nil)
	if startedAt.IsZero() {
		select {
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			res := cancelledResult(rc, r.cfg.Now(), time.Time{})
			if !errors.Is(context.Cause(ctx), ErrCancelled) {
				res.Status = agentproto.StatusFailed
				for i := range res.Steps {
					res.Steps[i].Status, res.Steps[i].Stderr = agentproto.StatusFailed, ErrAgentStopping.Error()+"\n"
				}
			}
			r.finish(rc, inv, res, log)
			return
		}
		startedAt = r.cfg.Now()
		r.mu.Lock()
		inv.state, inv.startedAt = invRunning, startedAt
		r.mu.Unlock()
		if err := r.sendMsg(agentproto.TypeCommandAck, agentproto.CommandAck{InvocationID: rc.InvocationID, StartedAt: startedAt}); err != nil {
			log.Debug("could not send the start ack", "error", err)
		}
	}
	defer func() { <-r.slots }()
	if rc.ExecutionTimeoutSeconds > 0 {
		var c context.CancelFunc
		ctx, c = context.WithTimeoutCause(ctx, time.Duration(rc.ExecutionTimeoutSeconds)*time.Second, errExecutionTimeout)
		defer c()
	}
	res := r.runSteps(ctx, rc, startedAt)
	r.finish(rc, inv, res, log)
}

// finish stores the result, then sends it.
func (r *CommandRunner) finish(rc agentproto.RunCommand, inv *invocation, res *agentproto.CommandResult, log *slog.Logger) {
	fitResult(res)
	rec := invocationRecord{InvocationID: rc.InvocationID, CommandID: rc.CommandID, State: stateFinished, Result: res, ResultPending: true}
	for _, st := range rc.Steps {
		rec.Steps = append(rec.Steps, recordStep{Name: st.Name, Skipped: st.Skipped})
	}
	r.fileMu.Lock()
	if old, err := r.store.load(rc.InvocationID); err == nil {
		rec.ReceivedAt = old.ReceivedAt
	}
	err := r.store.save(rec)
	r.fileMu.Unlock()
	if err != nil {
		// The record still says accepted: after a restart the invocation
		// is reported Failed (interrupted), never run again.
		log.Error("could not store the command result; sending it anyway", "error", err)
	}
	r.mu.Lock()
	inv.state, inv.cancel, inv.resultPending = invFinished, nil, true
	r.mu.Unlock()
	log.Info("invocation finished", "status", res.Status, "duration", res.EndedAt.Sub(res.StartedAt).Round(time.Millisecond))
	if err := r.sendMsg(agentproto.TypeCommandResult, res); err != nil {
		log.Debug("command result not sent now; it will be resent on the next connection", "error", err)
	}
}

// fitResult shortens the longest outputs until the result fits one
// message (JSON can escape control bytes six-fold).
func fitResult(res *agentproto.CommandResult) {
	const limit = agentproto.MaxMessageBytes - 64<<10
	for range 64 {
		b, err := json.Marshal(res)
		if err != nil || len(b) <= limit {
			return
		}
		var longest *string
		var step *agentproto.StepResult
		for i := range res.Steps {
			for _, p := range []*string{&res.Steps[i].Stdout, &res.Steps[i].Stderr} {
				if longest == nil || len(*p) > len(*longest) {
					longest, step = p, &res.Steps[i]
				}
			}
		}
		if longest == nil || len(*longest) == 0 {
			return
		}
		*longest = truncateUTF8(*longest, len(*longest)/2)
		step.Truncated = true
	}
}

// truncateUTF8 cuts s to at most n bytes at a rune boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// runSteps runs rc's steps in order. A step that fails, times out or is
// cancelled ends the invocation: later steps are not run (Skipped, or
// Cancelled after a cancel) and the invocation takes that step's status.
func (r *CommandRunner) runSteps(ctx context.Context, rc agentproto.RunCommand, startedAt time.Time) *agentproto.CommandResult {
	limit := rc.MaxOutputBytes
	if limit <= 0 {
		limit = DefaultMaxOutputBytes
	}
	limit = min(limit, MaxOutputCap)
	stdout, stderr := newOutputCapture(limit), newOutputCapture(limit)
	res := &agentproto.CommandResult{InvocationID: rc.InvocationID, Status: agentproto.StatusSuccess, StartedAt: startedAt}
	env := StepEnv{InvocationID: rc.InvocationID, WorkDir: filepath.Join(r.workDir, recordDirName(rc.InvocationID))}
	first := true
	for _, st := range rc.Steps {
		sr := agentproto.StepResult{Name: st.Name, Status: agentproto.StatusSkipped, ResponseCode: -1}
		switch {
		case res.Status == agentproto.StatusCancelled:
			sr.Status = agentproto.StatusCancelled
		case res.Status != agentproto.StatusSuccess, st.Skipped:
		default:
			start := r.cfg.Now()
			if first {
				start, first = startedAt, false
			}
			sr = r.runStep(ctx, rc.InvocationID, st, env, stdout, stderr, start)
			if sr.Status != agentproto.StatusSuccess {
				res.Status = sr.Status
			}
		}
		res.Steps = append(res.Steps, sr)
	}
	res.EndedAt = r.cfg.Now()
	return res
}

// runStep runs one step with its plugin, streaming its output.
func (r *CommandRunner) runStep(ctx context.Context, id string, st agentproto.Step, env StepEnv, stdout, stderr *outputCapture, start time.Time) agentproto.StepResult {
	sr := agentproto.StepResult{Name: st.Name, StartedAt: start, ResponseCode: -1}
	outFrom, outDrop := stdout.mark()
	errFrom, errDrop := stderr.mark()
	env.Stdout, env.Stderr = stdout, stderr

	var err error
	fl := r.startStreamer(id, st.Name, stdout, stderr)
	plugin, ok := r.cfg.Plugins[st.Action]
	switch {
	case ctx.Err() != nil:
		err = context.Cause(ctx)
	case !ok:
		err = fmt.Errorf("%s: %q", r.cfg.UnsupportedMessage, st.Action)
	default:
		sr.ResponseCode, err = plugin(ctx, st, env)
		stdout.endStep()
		stderr.endStep()
	}
	switch {
	case err == nil && sr.ResponseCode == 0:
		sr.Status = agentproto.StatusSuccess
	case err == nil:
		sr.Status = agentproto.StatusFailed
	case errors.Is(err, ErrCancelled):
		sr.Status = agentproto.StatusCancelled
	case errors.Is(err, ErrTimedOut):
		sr.Status = agentproto.StatusTimedOut
	default:
		sr.Status = agentproto.StatusFailed
	}
	if err != nil {
		// The agent's own note, last on stderr.
		fmt.Fprintf(stderr, "fleetops-agent: %v\n", err)
	}
	fl.stop()
	sr.EndedAt = r.cfg.Now()
	var t1, t2 bool
	sr.Stdout, t1 = stdout.since(outFrom, outDrop)
	sr.Stderr, t2 = stderr.since(errFrom, errDrop)
	sr.Truncated = t1 || t2
	return sr
}
