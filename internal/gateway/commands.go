package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/store"
)

// CommandStore is what the command relay needs from the database.
type CommandStore interface {
	GetCommand(ctx context.Context, id string) (store.Command, error)
	Outbox(ctx context.Context, limit int) ([]store.OutboxItem, error)
	Unacked(ctx context.Context, instanceID string) ([]store.OutboxItem, error)
	MarkSent(ctx context.Context, keys []store.InvocationKey, now time.Time) error
	ClaimForSending(ctx context.Context, keys []store.InvocationKey, now time.Time) ([]store.InvocationKey, error)
	MarkCancelSent(ctx context.Context, keys []store.InvocationKey, now time.Time) error
	AckInvocations(ctx context.Context, acks []store.InvocationAck, now time.Time) ([]store.AckOutcome, error)
	AppendOutput(ctx context.Context, k store.InvocationKey, stream string, offset int64, data string, maxBytes int) error
	CompleteInvocations(ctx context.Context, reports []store.InvocationCompletion, now time.Time) ([]store.CompletionOutcome, error)
}

// RelayConfig configures a CommandRelay.
type RelayConfig struct {
	Store  CommandStore
	Logger *slog.Logger
	// Registerer receives the relay's metrics; nil means none.
	Registerer prometheus.Registerer
	// PollInterval is how often the outbox is read when nothing woke the
	// relay (default 50ms): the worker may run in another process.
	PollInterval time.Duration
	// BatchSize bounds one outbox read (default 5000).
	BatchSize int
	// FlushSize bounds how many acknowledgements and results one store
	// write carries (default 500); the queue in front of the writer holds
	// four times that.
	FlushSize int
	// FlushDelay is how long the first queued acknowledgement or result
	// waits for others before they are written (default 10ms).
	FlushDelay time.Duration
	Now        func() time.Time
}

// CommandRelay carries Run Command invocations between the store's outbox
// and the agents connected to this replica: it sends queued invocations and
// cancel requests, resends unacknowledged ones when an agent reconnects, and
// stores acknowledgements, output and results as they arrive. Delivery is
// at-least-once; the agent's memory of invocation IDs makes execution
// at-most-once.
//
// Acknowledgements and results are not written one transaction per
// message: the handlers queue them and one writer (started by Run) stores
// up to FlushSize at a time, a transaction for the acks and one for the
// results, which is what lets a gateway keep up with thousands of agents.
// A result is confirmed to its agent (command_result_ack) only after it
// committed; the agent resends unconfirmed results when it reconnects, so
// a queue lost in a crash loses nothing. Output chunks are written as they
// come, in the reading goroutine, so each stream stays in order and is
// stored before the result that follows it.
type CommandRelay struct {
	cfg  RelayConfig
	g    *Gateway
	log  *slog.Logger
	wake chan struct{}

	queue    chan report   // acks and results, for the writer
	stopped  chan struct{} // closed when the writer has stopped
	stopOnce sync.Once
	senders  sync.WaitGroup // goroutines confirming results to agents

	mu       sync.Mutex
	commands map[string]commandInfo // a cache: acks and output need these per message

	dispatchLatency prometheus.Histogram
	execDuration    prometheus.Histogram
	results         *prometheus.CounterVec
}

// NewCommandRelay registers the Run Command message handlers on g.
func NewCommandRelay(g *Gateway, cfg RelayConfig) (*CommandRelay, error) {
	if cfg.Store == nil {
		return nil, errors.New("command relay: Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 5000
	}
	if cfg.FlushSize <= 0 {
		cfg.FlushSize = 500
	}
	if cfg.FlushDelay <= 0 {
		cfg.FlushDelay = 10 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &CommandRelay{
		cfg: cfg, g: g, log: cfg.Logger.With("component", "command-relay"),
		wake:     make(chan struct{}, 1),
		queue:    make(chan report, 4*cfg.FlushSize),
		stopped:  make(chan struct{}),
		commands: map[string]commandInfo{},
		dispatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fleetops_command_dispatch_latency_seconds",
			Help:    "Time from an invocation's request to its start on the node.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}),
		execDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fleetops_command_execution_duration_seconds",
			Help:    "Time an invocation ran on its node.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 18),
		}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetops_invocation_results_total",
			Help: "Invocation results reported by agents, by final status.",
		}, []string{"status"}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{r.dispatchLatency, r.execDuration, r.results} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register command relay metrics: %w", err)
			}
		}
	}
	g.Handle(agentproto.TypeCommandAck, r.onAck)
	g.Handle(agentproto.TypeCommandOutput, r.onOutput)
	g.Handle(agentproto.TypeCommandResult, r.onResult)
	g.OnConnect(r.resend)
	return r, nil
}

// Wake makes the relay read the outbox now. Safe to call from anywhere; an
// in-process worker calls it after dispatching.
func (r *CommandRelay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run delivers the outbox and stores the queued acknowledgements and
// results until ctx ends; then it writes what is queued already (within a
// few seconds) and returns once the writer and its result confirmations
// are done. Call it once.
func (r *CommandRelay) Run(ctx context.Context) error {
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		r.writeLoop(ctx)
	}()
	defer func() {
		<-writerDone
		r.senders.Wait()
	}()
	t := time.NewTicker(r.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-t.C:
		}
		if r.g.Connected() == 0 {
			continue
		}
		if err := r.deliver(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("outbox delivery failed", "err", err)
		}
	}
}

func (r *CommandRelay) deliver(ctx context.Context) error {
	items, err := r.cfg.Store.Outbox(ctx, r.cfg.BatchSize)
	if err != nil {
		return err
	}
	var runs []store.InvocationKey
	payloads := map[store.InvocationKey]string{}
	var cancels []store.InvocationKey
	for _, it := range items {
		if !r.g.IsConnected(it.InstanceID) {
			continue // another replica holds it, or it just left
		}
		k := store.InvocationKey{CommandID: it.CommandID, InstanceID: it.InstanceID}
		if it.Cancel {
			if r.send(ctx, it) == nil {
				cancels = append(cancels, k)
			}
			continue
		}
		runs = append(runs, k)
		payloads[k] = it.Payload
	}
	now := r.cfg.Now()
	if len(cancels) > 0 {
		if err := r.cfg.Store.MarkCancelSent(ctx, cancels, now); err != nil {
			return err
		}
	}
	if len(runs) == 0 {
		return nil
	}
	// Claim before writing: a cancel or another replica may have won since
	// the outbox was read. A claimed item that fails to go out is resent
	// when its agent reconnects.
	claimed, err := r.cfg.Store.ClaimForSending(ctx, runs, now)
	if err != nil {
		return err
	}
	for _, k := range claimed {
		it := store.OutboxItem{CommandID: k.CommandID, InstanceID: k.InstanceID, Payload: payloads[k]}
		if err := r.send(ctx, it); err != nil {
			r.log.Debug("send invocation", "instanceId", k.InstanceID, "commandId", k.CommandID, "err", err)
		}
	}
	return nil
}

func (r *CommandRelay) send(ctx context.Context, it store.OutboxItem) error {
	env := agentproto.Envelope{Type: agentproto.TypeRunCommand, Payload: json.RawMessage(it.Payload)}
	if it.Cancel {
		var err error
		env, err = agentproto.NewEnvelope(agentproto.TypeCancelCommand, agentproto.CancelCommand{
			InvocationID: agentproto.InvocationID(it.CommandID, it.InstanceID),
		})
		if err != nil {
			return err
		}
	}
	return r.g.Send(ctx, it.InstanceID, env)
}

// resend gives a (re)connected agent everything it has not acknowledged.
func (r *CommandRelay) resend(ctx context.Context, instanceID string) {
	items, err := r.cfg.Store.Unacked(ctx, instanceID)
	if err != nil {
		r.log.Warn("read unacknowledged invocations", "instanceId", instanceID, "err", err)
		return
	}
	var sent []store.InvocationKey
	for _, it := range items {
		if err := r.send(ctx, it); err != nil {
			return
		}
		if !it.Cancel {
			sent = append(sent, store.InvocationKey{CommandID: it.CommandID, InstanceID: it.InstanceID})
		}
	}
	if len(sent) > 0 {
		if err := r.cfg.Store.MarkSent(ctx, sent, r.cfg.Now()); err != nil {
			r.log.Warn("mark invocations sent", "instanceId", instanceID, "err", err)
		}
	}
}

// key parses an invocation ID and checks it belongs to the sending agent:
// an agent can only report on its own invocations.
func key(instanceID, invocationID string) (store.InvocationKey, error) {
	cmd, inst, ok := strings.Cut(invocationID, ":")
	if !ok || cmd == "" || inst != instanceID {
		return store.InvocationKey{}, fmt.Errorf("invocation %q does not belong to %s", truncate(invocationID, 80), instanceID)
	}
	return store.InvocationKey{CommandID: cmd, InstanceID: inst}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (r *CommandRelay) onAck(ctx context.Context, instanceID string, env agentproto.Envelope) error {
	var ack agentproto.CommandAck
	if err := env.Decode(&ack); err != nil {
		return err
	}
	k, err := key(instanceID, ack.InvocationID)
	if err != nil {
		return err
	}
	return r.enqueue(ctx, report{instanceID: instanceID, invocationID: ack.InvocationID, key: k, startedAt: ack.StartedAt})
}

func (r *CommandRelay) onOutput(ctx context.Context, instanceID string, env agentproto.Envelope) error {
	var out agentproto.CommandOutput
	if err := env.Decode(&out); err != nil {
		return err
	}
	k, err := key(instanceID, out.InvocationID)
	if err != nil {
		return err
	}
	if out.Stream != agentproto.StreamStdout && out.Stream != agentproto.StreamStderr {
		return fmt.Errorf("unknown output stream %q", truncate(out.Stream, 20))
	}
	cmd, err := r.command(ctx, k.CommandID)
	if err != nil {
		return err
	}
	return r.cfg.Store.AppendOutput(ctx, k, out.Stream, out.Offset, out.Data, cmd.maxOutputBytes)
}

// commandInfo is what the relay needs of a command for each message.
type commandInfo struct {
	requestedAt    time.Time
	maxOutputBytes int
}

func (r *CommandRelay) command(ctx context.Context, commandID string) (commandInfo, error) {
	r.mu.Lock()
	info, ok := r.commands[commandID]
	r.mu.Unlock()
	if ok {
		return info, nil
	}
	cmd, err := r.cfg.Store.GetCommand(ctx, commandID)
	if err != nil {
		return commandInfo{}, err
	}
	info = commandInfo{requestedAt: cmd.RequestedAt, maxOutputBytes: cmd.MaxOutputBytes}
	r.mu.Lock()
	if len(r.commands) > 10000 {
		clear(r.commands) // a cache, not a registry: refill on demand
	}
	r.commands[commandID] = info
	r.mu.Unlock()
	return info, nil
}

// stepOutputChars bounds the output kept per step in StepResults, as SSM's
// CommandPlugin.Output (reference 1.6); the whole streams are stored apart.
const stepOutputChars = 2500

func (r *CommandRelay) onResult(ctx context.Context, instanceID string, env agentproto.Envelope) error {
	var res agentproto.CommandResult
	if err := env.Decode(&res); err != nil {
		return err
	}
	k, err := key(instanceID, res.InvocationID)
	if err != nil {
		return err
	}
	status, details, ok := invocationStatus(res.Status)
	if !ok {
		return fmt.Errorf("result with unknown status %q", truncate(res.Status, 20))
	}
	rep := store.InvocationReport{
		Status: status, StatusDetails: details, ResponseCode: -1,
		StartedAt: res.StartedAt, EndedAt: res.EndedAt,
	}
	var stdout, stderr strings.Builder
	steps := make([]agentproto.StepResult, len(res.Steps))
	for i, s := range res.Steps {
		stdout.WriteString(s.Stdout)
		stderr.WriteString(s.Stderr)
		rep.StdoutTruncated = rep.StdoutTruncated || s.Truncated
		rep.StderrTruncated = rep.StderrTruncated || s.Truncated
		if s.Status != agentproto.StatusSkipped && s.ResponseCode != -1 {
			rep.ResponseCode = s.ResponseCode
		}
		s.Stdout, s.Stderr = truncateRunes(s.Stdout, stepOutputChars), truncateRunes(s.Stderr, stepOutputChars)
		steps[i] = s
	}
	rep.Stdout, rep.Stderr = stdout.String(), stderr.String()
	b, err := json.Marshal(steps)
	if err != nil {
		return err
	}
	rep.StepResults = string(b)
	return r.enqueue(ctx, report{
		instanceID: instanceID, invocationID: res.InvocationID, key: k, result: &rep,
	})
}

// invocationStatus maps an agent's result status to SSM's invocation
// Status and StatusDetails (reference 1.5).
func invocationStatus(agentStatus string) (status, details string, ok bool) {
	switch agentStatus {
	case agentproto.StatusSuccess:
		return "Success", "Success", true
	case agentproto.StatusFailed:
		return "Failed", "Failed", true
	case agentproto.StatusTimedOut:
		return "TimedOut", "Execution Timed Out", true
	case agentproto.StatusCancelled:
		return "Cancelled", "Cancelled", true
	}
	return "", "", false
}

func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// report is an acknowledgement or a result waiting for the writer.
type report struct {
	instanceID   string
	invocationID string
	key          store.InvocationKey
	// startedAt is the node's start time of an acknowledged invocation.
	startedAt time.Time
	// result is set for a result, nil for an acknowledgement.
	result *store.InvocationReport
}

// errRelayStopped is returned by handlers once the writer has stopped.
var errRelayStopped = errors.New("command relay stopped")

// enqueue hands rep to the writer. It blocks while the queue is full: that
// holds back the sending agent's reads, nothing else.
func (r *CommandRelay) enqueue(ctx context.Context, rep report) error {
	select {
	case r.queue <- rep:
		return nil
	case <-r.stopped:
		return errRelayStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopGrace bounds the last write of what was queued when Run's context
// ended.
const stopGrace = 5 * time.Second

// writeLoop stores queued acknowledgements and results: a write starts
// once FlushSize are queued or FlushDelay after the first one arrived.
// Messages arriving during a write queue up for the next one, so under load
// the writes grow to FlushSize by themselves.
func (r *CommandRelay) writeLoop(ctx context.Context) {
	defer r.stopOnce.Do(func() { close(r.stopped) })
	timer := time.NewTimer(r.cfg.FlushDelay)
	timer.Stop()
	defer timer.Stop()
	var due <-chan time.Time // the running timer's channel; nil when batch is empty
	var batch []report
	for {
		select {
		case <-ctx.Done():
			// Write what is queued so that agents need not resend it;
			// results queued later are resent by their agents.
			batch = r.fill(batch, len(r.queue))
			if len(batch) > 0 {
				stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopGrace)
				for chunk := range slices.Chunk(batch, r.cfg.FlushSize) {
					r.flush(stopCtx, chunk)
				}
				r.senders.Wait() // before stopCtx is cancelled
				cancel()
			}
			return
		case rep := <-r.queue:
			if len(batch) == 0 {
				timer.Reset(r.cfg.FlushDelay)
				due = timer.C
			}
			batch = r.fill(append(batch, rep), r.cfg.FlushSize)
			if len(batch) < r.cfg.FlushSize {
				continue
			}
		case <-due:
		}
		timer.Stop()
		due = nil
		r.flush(ctx, batch)
		batch = nil
	}
}

// fill appends to batch what is queued already, up to n items in all.
func (r *CommandRelay) fill(batch []report, n int) []report {
	for len(batch) < n {
		select {
		case rep := <-r.queue:
			batch = append(batch, rep)
		default:
			return batch
		}
	}
	return batch
}

// flush stores batch: first the acknowledgements, then the results, each
// in one transaction, so an invocation's ack is stored before its result
// as when they were written one by one. It observes the metrics of what
// was applied and confirms every stored result (applied, found terminal
// already, or of an invocation that no longer exists) to its agent.
func (r *CommandRelay) flush(ctx context.Context, batch []report) {
	var acks []store.InvocationAck
	var ackReps, resReps []report
	var results []store.InvocationCompletion
	for _, rep := range batch {
		if rep.result == nil {
			acks = append(acks, store.InvocationAck{InvocationKey: rep.key, StartedAt: rep.startedAt})
			ackReps = append(ackReps, rep)
		} else {
			results = append(results, store.InvocationCompletion{InvocationKey: rep.key, Report: *rep.result})
			resReps = append(resReps, rep)
		}
	}
	now := r.cfg.Now()
	if len(acks) > 0 {
		r.storeAcks(ctx, ackReps, acks, now)
	}
	if len(results) > 0 {
		r.storeResults(ctx, resReps, results, now)
	}
}

func (r *CommandRelay) storeAcks(ctx context.Context, reps []report, acks []store.InvocationAck, now time.Time) {
	out, err := r.cfg.Store.AckInvocations(ctx, acks, now)
	if err != nil {
		// The invocations stay unacknowledged: they are sent again when
		// their agents reconnect, and the agents acknowledge again.
		r.log.Warn("store acknowledgements", "count", len(acks), "err", err)
		return
	}
	for i, o := range out {
		rep := reps[i]
		switch {
		case errors.Is(o.Err, store.ErrNotFound):
			r.log.Warn("ack for unknown invocation", "instanceId", rep.instanceID, "commandId", rep.key.CommandID)
		case o.Err != nil:
			r.log.Warn("store acknowledgement", "instanceId", rep.instanceID, "commandId", rep.key.CommandID, "err", o.Err)
		case o.Change != nil && !rep.startedAt.IsZero():
			if cmd, err := r.command(ctx, rep.key.CommandID); err == nil {
				r.dispatchLatency.Observe(rep.startedAt.Sub(cmd.requestedAt).Seconds())
			}
		}
	}
}

func (r *CommandRelay) storeResults(ctx context.Context, reps []report, results []store.InvocationCompletion, now time.Time) {
	out, err := r.cfg.Store.CompleteInvocations(ctx, results, now)
	if err != nil {
		// No confirmation: the agents resend on their next connection.
		r.log.Warn("store results", "count", len(results), "err", err)
		return
	}
	confirm := make(map[string][]string) // instance ID → invocation IDs
	var agents []string
	for i, o := range out {
		rep := reps[i]
		// ErrNotFound: nothing to store it in (the command was deleted);
		// let the agent forget it rather than resend forever.
		if o.Err != nil && !errors.Is(o.Err, store.ErrNotFound) {
			r.log.Warn("store result", "instanceId", rep.instanceID, "commandId", rep.key.CommandID, "err", o.Err)
			continue
		}
		if o.Applied {
			res := rep.result
			r.results.WithLabelValues(res.Status).Inc()
			if !res.StartedAt.IsZero() && res.EndedAt.After(res.StartedAt) {
				r.execDuration.Observe(res.EndedAt.Sub(res.StartedAt).Seconds())
			}
		}
		if _, ok := confirm[rep.instanceID]; !ok {
			agents = append(agents, rep.instanceID)
		}
		confirm[rep.instanceID] = append(confirm[rep.instanceID], rep.invocationID)
	}
	// One goroutine per agent: a slow connection must hold up neither the
	// others nor the next write.
	for _, inst := range agents {
		r.senders.Go(func() {
			for _, id := range confirm[inst] {
				env, err := agentproto.NewEnvelope(agentproto.TypeCommandResultAck, agentproto.CommandResultAck{InvocationID: id})
				if err == nil {
					err = r.g.Send(ctx, inst, env)
				}
				if err != nil {
					// Unconfirmed results are resent on reconnect.
					r.log.Debug("confirm result", "instanceId", inst, "err", err)
					return
				}
			}
		})
	}
}
