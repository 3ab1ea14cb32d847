package workflows

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// quietLogger keeps the SDK's per-event debug lines out of test output.
var quietLogger = log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

// runOut is the outcome of a command run to completion across
// ContinueAsNew runs.
type runOut struct {
	res  RunCommandResult
	err  error
	runs int
	// maxEvents is an upper bound of the largest run's history length:
	// 2 (started, completed) + 3 per activity + 2 per timer + 1 per signal,
	// plus 3 per workflow task, of which there is at most one per
	// activity/timer/signal completion plus the first.
	maxEvents int
	elapsed   time.Duration // virtual time from start to end
}

// runCommand executes RunCommand against s with a fresh test environment
// per run, following ContinueAsNew like the server would. setup, when set,
// is called on the first run's environment (signals, queries).
func runCommand(t testing.TB, s *sim, in RunCommandInput, setup func(env *testsuite.TestWorkflowEnvironment)) runOut {
	t.Helper()
	var (
		out   runOut
		suite testsuite.WorkflowTestSuite
		start time.Time
		now   time.Time
	)
	for run := 0; ; run++ {
		require.Less(t, run, 50, "too many ContinueAsNew runs")
		suite.SetLogger(quietLogger)
		env := suite.NewTestWorkflowEnvironment()
		env.SetTestTimeout(30 * time.Second)
		if run > 0 {
			env.SetStartTime(now)
		}
		env.RegisterWorkflowWithOptions(RunCommand, workflow.RegisterOptions{Name: RunCommandWorkflowName})
		for name, fn := range map[string]any{
			ActivityResolveTargets:      s.ResolveTargets,
			ActivityDispatchInvocations: s.DispatchInvocations,
			ActivityAwaitResults:        s.AwaitResults,
			ActivityExpireInvocations:   s.ExpireInvocations,
			ActivityCancelInvocations:   s.CancelInvocations,
			ActivityRecordProgress:      s.RecordProgress,
			ActivityFinishCommand:       s.FinishCommand,
		} {
			env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
		}
		var acts, timers atomic.Int64
		env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) { acts.Add(1) })
		env.SetOnTimerScheduledListener(func(string, time.Duration) { timers.Add(1) })
		if run == 0 {
			start = env.Now()
			if setup != nil {
				setup(env)
			}
		}
		env.ExecuteWorkflow(RunCommandWorkflowName, in)
		require.True(t, env.IsWorkflowCompleted())
		a, tm := int(acts.Load()), int(timers.Load())
		out.maxEvents = max(out.maxEvents, 2+3*a+2*tm+3*(1+a+tm)+1) // +1 for a signal
		now = env.Now()
		out.runs = run + 1
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			var next RunCommandInput
			require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
			in = next
			continue
		}
		out.err = err
		if err == nil {
			require.NoError(t, env.GetWorkflowResult(&out.res))
		}
		out.elapsed = now.Sub(start)
		return out
	}
}

// baseInput is a command with fast test tuning: results in small batches
// and a 10 s idle back-off so virtual time moves quickly to deadlines.
func baseInput(conc, maxErrors string) RunCommandInput {
	return RunCommandInput{
		CommandID:      "cmd-1",
		DocumentName:   "AWS-RunShellScript",
		MaxConcurrency: conc,
		MaxErrors:      maxErrors,
		TimeoutSeconds: 600,
		Tuning:         RunCommandTuning{IdlePollDelay: 10 * time.Second},
	}
}

// requireClean checks the simulator saw no protocol violations and that
// FinishCommand got the same result the workflow returned.
func requireClean(t *testing.T, s *sim, out runOut) {
	t.Helper()
	require.NoError(t, out.err)
	assert.Empty(t, s.violations)
	require.NotNil(t, s.finish, "FinishCommand not called")
	assert.Equal(t, out.res.Status, s.finish.Status)
	assert.Equal(t, out.res.StatusDetails, s.finish.StatusDetails)
	assert.Equal(t, out.res.Counters, s.finish.Counters)
}

func TestCommandWorkflowID(t *testing.T) {
	assert.Equal(t, "command:abc", CommandWorkflowID("abc"))
}

// The window is the MaxConcurrency limit of the reference, numbers and
// percentages, with the 1, 2, 4, … ramp-up before it.
func TestWindowNeverExceedsMaxConcurrency(t *testing.T) {
	tests := []struct {
		name, conc string
		targets    int
		want       int // absolute window
		wantRamp   []int
	}{
		{"one", "1", 12, 1, []int{1, 1, 1}},
		{"ten", "10", 100, 10, []int{1, 2, 4, 3}},
		{"25 percent of 40", "25%", 40, 10, []int{1, 2, 4, 3}},
		{"1 percent of 50 rounds up to 1", "1%", 50, 1, []int{1, 1}},
		{"3 of 7", "3", 7, 3, []int{1, 2}},
		{"100 percent of 20", "100%", 20, 20, []int{1, 2, 4, 8, 5}},
		{"count above targets", "500", 30, 30, []int{1, 2, 4, 8, 15}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Long runs keep invocations in flight long enough to fill the
			// window; the long delivery timeout leaves room for them all.
			s := newSim(tt.targets, func(int) agentSpec { return agentSpec{out: oSuccess, run: 8} })
			in := baseInput(tt.conc, "0")
			in.TimeoutSeconds = 86400
			out := runCommand(t, s, in, nil)
			requireClean(t, s, out)
			assert.Equal(t, StatusSuccess, out.res.Status)
			assert.Equal(t, Counters{TargetCount: tt.targets, CompletedCount: tt.targets}, out.res.Counters)
			assert.LessOrEqual(t, s.maxInflight, tt.want, "window exceeded")
			assert.Equal(t, tt.want, s.maxInflight, "window never filled")
			require.GreaterOrEqual(t, len(s.dispatchBatches), len(tt.wantRamp))
			assert.Equal(t, tt.wantRamp, s.dispatchBatches[:len(tt.wantRamp)], "ramp-up")
			assert.Equal(t, tt.targets, s.totalDispatched())
		})
	}
}

// MaxErrors N stops dispatch when error N+1 arrives (reference 1.3).
func TestMaxErrorsCutoff(t *testing.T) {
	tests := []struct {
		name, conc, maxErrors string
		targets               int
		spec                  func(int) agentSpec
		wantErrors            int // exact when conc is 1
		wantExact             bool
		wantDetails           string
	}{
		{"0 stops at the first error", "1", "0", 10, allOf(oFail), 1, true, DetailsFailed},
		{"3 stops at the 4th error", "1", "3", 10, allOf(oFail), 4, true, DetailsFailed},
		{"10% of 50 stops at the 6th error", "1", "10%", 50, allOf(oFail), 6, true, DetailsFailed},
		{"execution timeouts count", "1", "2", 8, allOf(oExecTimeout), 3, true, DetailsExecutionTimedOut},
		{"errors among successes", "1", "1", 20, func(i int) agentSpec {
			if i%3 == 2 { // targets 2, 5 fail; 5 is the 2nd error
				return agentSpec{out: oFail}
			}
			return agentSpec{out: oSuccess}
		}, 2, true, DetailsFailed},
		{"concurrency 5, in-flight may still fail", "5", "3", 40, func(int) agentSpec { return agentSpec{out: oFail, run: 2} }, 4, false, DetailsFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(tt.targets, tt.spec)
			in := baseInput(tt.conc, tt.maxErrors)
			out := runCommand(t, s, in, nil)
			requireClean(t, s, out)
			maxErr, err := ParseRate(tt.maxErrors, true)
			require.NoError(t, err)
			n := maxErr.Of(tt.targets)

			assert.Equal(t, StatusFailed, out.res.Status)
			assert.Equal(t, tt.wantDetails, out.res.StatusDetails)
			if tt.wantExact {
				assert.Equal(t, tt.wantErrors, out.res.ErrorCount)
			} else {
				assert.Greater(t, out.res.ErrorCount, n)
			}
			// No dispatch once more than N errors were known.
			assert.LessOrEqual(t, s.maxErrorsSeenAtSend, n)
			sent := s.totalDispatched()
			assert.Len(t, s.finish.Terminated, tt.targets-sent, "every unsent target is Terminated")
			for _, id := range s.finish.Terminated {
				assert.False(t, s.dispatched(id), "%s was sent yet Terminated", id)
			}
			assert.Equal(t, tt.targets, out.res.CompletedCount)
		})
	}
}

// With MaxConcurrency 1 no more than N+1 invocations fail, whatever the mix.
func TestMaxErrorsConcurrencyOneBound(t *testing.T) {
	for n := range 5 {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := newSim(30, func(i int) agentSpec {
				if i%2 == 0 {
					return agentSpec{out: oFail}
				}
				return agentSpec{out: oSuccess}
			})
			out := runCommand(t, s, baseInput("1", fmt.Sprint(n)), nil)
			requireClean(t, s, out)
			assert.Equal(t, n+1, out.res.ErrorCount)
			assert.Equal(t, 1, s.maxInflight)
		})
	}
}

// Delivery Timed Out does not count toward MaxErrors; Execution Timed Out does.
func TestDeliveryVersusExecutionTimeout(t *testing.T) {
	t.Run("delivery timeouts do not trip MaxErrors 0", func(t *testing.T) {
		s := newSim(10, func(i int) agentSpec {
			if i >= 6 { // connected but silent: no acknowledgement at all
				return agentSpec{out: oNeverStart}
			}
			return agentSpec{out: oSuccess}
		})
		out := runCommand(t, s, baseInput("50", "0"), nil)
		requireClean(t, s, out)
		assert.Equal(t, Counters{TargetCount: 10, CompletedCount: 10, DeliveryTimedOutCount: 4}, out.res.Counters)
		assert.Empty(t, s.finish.Terminated)
		assert.Equal(t, StatusTimedOut, out.res.Status)
		assert.Equal(t, DetailsDeliveryTimedOut, out.res.StatusDetails)
		assert.GreaterOrEqual(t, out.elapsed, 600*time.Second)
		assert.Less(t, out.elapsed, 700*time.Second)
	})
	t.Run("few delivery timeouts are Incomplete", func(t *testing.T) {
		s := newSim(10, func(i int) agentSpec {
			if i == 0 {
				return agentSpec{out: oDelayed}
			}
			return agentSpec{out: oSuccess}
		})
		out := runCommand(t, s, baseInput("50", "3"), nil)
		requireClean(t, s, out)
		assert.Equal(t, 1, out.res.DeliveryTimedOutCount)
		assert.Equal(t, DetailsIncomplete, out.res.StatusDetails)
	})
	t.Run("execution timeout trips MaxErrors 0", func(t *testing.T) {
		s := newSim(5, allOf(oExecTimeout))
		out := runCommand(t, s, baseInput("1", "0"), nil)
		requireClean(t, s, out)
		assert.Equal(t, Counters{TargetCount: 5, CompletedCount: 5, ErrorCount: 1}, out.res.Counters)
		assert.Len(t, s.finish.Terminated, 4)
		assert.Equal(t, DetailsExecutionTimedOut, out.res.StatusDetails)
	})
	t.Run("unsent at the delivery deadline never run; a silent run expires later", func(t *testing.T) {
		// Window 1: target 0 starts and never reports, so 1..4 are never sent.
		s := newSim(5, func(i int) agentSpec {
			if i == 0 {
				return agentSpec{out: oHang}
			}
			return agentSpec{out: oSuccess}
		})
		in := baseInput("1", "0")
		in.ExecutionTimeoutSeconds = 1200
		out := runCommand(t, s, in, nil)
		requireClean(t, s, out)
		assert.Equal(t, Counters{TargetCount: 5, CompletedCount: 5, DeliveryTimedOutCount: 5}, out.res.Counters)
		assert.Equal(t, 1, s.totalDispatched())
		require.Len(t, s.expires, 2)
		assert.False(t, s.expires[0].IncludeStarted)
		assert.Len(t, s.expires[0].InstanceIDs, 4)
		assert.True(t, s.expires[1].IncludeStarted)
		assert.Equal(t, []string{"i-00000000"}, s.expires[1].InstanceIDs)
		assert.GreaterOrEqual(t, out.elapsed, 1800*time.Second)
		assert.Equal(t, StatusTimedOut, out.res.Status)
	})
}

// queryProgress reads the status query.
func queryProgress(t testing.TB, env *testsuite.TestWorkflowEnvironment) CommandProgress {
	t.Helper()
	v, err := env.QueryWorkflow(QueryStatus)
	require.NoError(t, err)
	var p CommandProgress
	require.NoError(t, v.Get(&p))
	return p
}

func TestCancel(t *testing.T) {
	t.Run("all", func(t *testing.T) {
		// Window 2; everything hangs; kills take 2 polls to land.
		s := newSim(6, func(int) agentSpec { return agentSpec{out: oHang, killDelay: 2} })
		var during, before CommandProgress
		out := runCommand(t, s, baseInput("2", "0"), func(env *testsuite.TestWorkflowEnvironment) {
			env.RegisterDelayedCallback(func() {
				before = queryProgress(t, env)
				env.SignalWorkflow(SignalCancel, CancelRequest{})
			}, 30*time.Second)
			env.RegisterDelayedCallback(func() { during = queryProgress(t, env) }, 31*time.Second)
		})
		requireClean(t, s, out)
		assert.Equal(t, StatusInProgress, before.Status)
		assert.Equal(t, 2, before.InFlight)
		assert.Equal(t, StatusCancelling, during.Status)
		assert.True(t, during.CancelRequested)
		assert.Equal(t, StatusCancelled, out.res.Status)
		assert.Equal(t, DetailsCancelled, out.res.StatusDetails)
		assert.Equal(t, Counters{TargetCount: 6, CompletedCount: 6}, out.res.Counters)
		assert.Equal(t, 2, s.totalDispatched(), "never-dispatched targets must not be sent after cancel")
		require.Len(t, s.cancels, 1)
		assert.Len(t, s.cancels[0].InstanceIDs, 6)
		assert.Less(t, out.elapsed, 600*time.Second)
	})
	t.Run("subset", func(t *testing.T) {
		// Window 2: target 0 hangs until cancelled, target 1 runs long, the
		// rest succeed. Cancel 0 (running) and 5 (not sent yet).
		s := newSim(6, func(i int) agentSpec {
			switch i {
			case 0:
				return agentSpec{out: oHang}
			case 1:
				return agentSpec{out: oSuccess, run: 3}
			}
			return agentSpec{out: oSuccess}
		})
		out := runCommand(t, s, baseInput("2", "0"), func(env *testsuite.TestWorkflowEnvironment) {
			env.RegisterDelayedCallback(func() {
				env.SignalWorkflow(SignalCancel, CancelRequest{InstanceIDs: []string{"i-00000000", "i-00000005", "i-unknown"}})
			}, 5*time.Second)
		})
		requireClean(t, s, out)
		assert.False(t, s.dispatched("i-00000005"), "a cancelled target must not be sent")
		assert.Equal(t, Counters{TargetCount: 6, CompletedCount: 6}, out.res.Counters)
		assert.Equal(t, StatusFailed, out.res.Status)
		assert.Equal(t, DetailsIncomplete, out.res.StatusDetails)
		require.Len(t, s.cancels, 1)
		assert.Equal(t, []string{"i-00000000", "i-00000005"}, s.cancels[0].InstanceIDs)
	})
	t.Run("subset naming every unfinished invocation cancels the command", func(t *testing.T) {
		s := newSim(2, allOf(oHang))
		out := runCommand(t, s, baseInput("2", "0"), func(env *testsuite.TestWorkflowEnvironment) {
			env.RegisterDelayedCallback(func() {
				env.SignalWorkflow(SignalCancel, CancelRequest{InstanceIDs: []string{"i-00000000", "i-00000001"}})
			}, 5*time.Second)
		})
		requireClean(t, s, out)
		assert.Equal(t, StatusCancelled, out.res.Status)
	})
}

// Workflow-level checks of the aggregation rows that need whole runs.
func TestStatusAggregationEndToEnd(t *testing.T) {
	tests := []struct {
		name                string
		spec                func(int) agentSpec
		targets             int
		maxErrors           string
		wantStatus, details string
	}{
		{"all success", allOf(oSuccess), 5, "0", StatusSuccess, DetailsSuccess},
		{"undeliverable beside success", func(i int) agentSpec {
			return agentSpec{out: []outcome{oSuccess, oUndeliverable, oInvalidPlatform, oAccessDenied}[i%4]}
		}, 8, "0", StatusSuccess, DetailsSuccess},
		{"all undeliverable", allOf(oUndeliverable), 4, "0", StatusFailed, DetailsFailed},
		{"failures under MaxErrors are Incomplete", func(i int) agentSpec {
			if i == 0 {
				return agentSpec{out: oFail}
			}
			return agentSpec{out: oSuccess}
		}, 5, "2", StatusFailed, DetailsIncomplete},
		{"no instances", allOf(oSuccess), 0, "0", StatusFailed, DetailsNoInstancesInTag},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(tt.targets, tt.spec)
			out := runCommand(t, s, baseInput("10", tt.maxErrors), nil)
			requireClean(t, s, out)
			assert.Equal(t, tt.wantStatus, out.res.Status)
			assert.Equal(t, tt.details, out.res.StatusDetails)
			assert.Equal(t, tt.targets, out.res.CompletedCount)
		})
	}
}

// 10,000 targets at 100%: a handful of batched activities, far below the
// history limits and the in-memory suite's ~1,000 in-flight activities.
func TestTenThousandTargets(t *testing.T) {
	const n = 10_000
	s := newSim(n, allOf(oSuccess))
	s.batchMax = 1000
	startReal := time.Now()
	out := runCommand(t, s, baseInput("100%", "0"), nil)
	requireClean(t, s, out)
	assert.Equal(t, StatusSuccess, out.res.Status)
	assert.Equal(t, Counters{TargetCount: n, CompletedCount: n}, out.res.Counters)
	assert.Equal(t, 1, out.runs)
	assert.Less(t, out.maxEvents, 2_000, "history estimate")
	assert.LessOrEqual(t, s.maxInflight, n)
	t.Logf("10k targets: %d dispatch calls, %d polls, %d records, <=%d events, %s real",
		s.activityCalls[ActivityDispatchInvocations], s.activityCalls[ActivityAwaitResults],
		s.activityCalls[ActivityRecordProgress], out.maxEvents, time.Since(startReal))
}

// Small history thresholds force several ContinueAsNew hand-overs; the
// command must end exactly as without them, deadlines included.
func TestContinueAsNewCarriesState(t *testing.T) {
	s := newSim(300, func(i int) agentSpec {
		switch {
		case i == 7: // offline agent: the gateway reports Delayed, which
			// acknowledges the ramp batch instead of stalling it
			return agentSpec{out: oDelayed}
		case i%50 == 3:
			return agentSpec{out: oFail}
		}
		return agentSpec{out: oSuccess, run: 2}
	})
	s.batchMax = 7
	in := baseInput("20", "10")
	in.Tuning.ContinueAsNewAfterEvents = 150
	out := runCommand(t, s, in, nil)
	requireClean(t, s, out)
	assert.Greater(t, out.runs, 3)
	assert.Less(t, out.maxEvents, 400)
	assert.LessOrEqual(t, s.maxInflight, 20)
	assert.Equal(t, Counters{TargetCount: 300, CompletedCount: 300, ErrorCount: 6, DeliveryTimedOutCount: 1}, out.res.Counters)
	assert.Equal(t, DetailsIncomplete, out.res.StatusDetails)
	assert.GreaterOrEqual(t, out.elapsed, 600*time.Second)
}

func TestInvalidInput(t *testing.T) {
	tests := map[string]RunCommandInput{
		"concurrency": {CommandID: "c", MaxConcurrency: "0"},
		"errors":      {CommandID: "c", MaxErrors: "-1"},
		"no command":  {},
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			s := newSim(3, allOf(oSuccess))
			out := runCommand(t, s, in, nil)
			var appErr *temporal.ApplicationError
			require.ErrorAs(t, out.err, &appErr)
			assert.Equal(t, ErrTypeInvalidInput, appErr.Type())
			assert.True(t, appErr.NonRetryable())
			assert.Empty(t, s.activityCalls)
		})
	}
}
