package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// sessionFake records the session activities' calls.
type sessionFake struct {
	mu       sync.Mutex
	ends     []SessionEndInput
	statuses []string
	// failStatus makes SessionSetStatus fail.
	failStatus bool
}

func (f *sessionFake) SessionEnd(_ context.Context, in SessionEndInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ends = append(f.ends, in)
	return nil
}

func (f *sessionFake) SessionSetStatus(_ context.Context, in SessionStatusInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failStatus {
		return errors.New("database down")
	}
	f.statuses = append(f.statuses, in.Status)
	return nil
}

// sessionEnv is a test environment running Session against a fake.
type sessionEnv struct {
	*testsuite.TestWorkflowEnvironment
	fake   *sessionFake
	start  time.Time
	timers int
}

func newSessionEnv(t *testing.T) *sessionEnv {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(quietLogger)
	env := suite.NewTestWorkflowEnvironment()
	env.SetTestTimeout(30 * time.Second)
	env.RegisterWorkflowWithOptions(Session, workflow.RegisterOptions{Name: SessionWorkflowName})
	f := &sessionFake{}
	env.RegisterActivityWithOptions(f.SessionEnd, activity.RegisterOptions{Name: ActivitySessionEnd})
	env.RegisterActivityWithOptions(f.SessionSetStatus, activity.RegisterOptions{Name: ActivitySessionSetStatus})
	se := &sessionEnv{TestWorkflowEnvironment: env, fake: f, start: env.Now()}
	env.SetOnTimerScheduledListener(func(string, time.Duration) { se.timers++ })
	return se
}

// at sends signal name with payload at offset d from the start.
func (e *sessionEnv) at(d time.Duration, name string, payload any) {
	e.RegisterDelayedCallback(func() { e.SignalWorkflow(name, payload) }, d)
}

// run executes the workflow and returns its result and when it ended,
// relative to the start.
func (e *sessionEnv) run(t *testing.T, in SessionInput) (SessionResult, time.Duration) {
	t.Helper()
	e.ExecuteWorkflow(SessionWorkflowName, in)
	require.True(t, e.IsWorkflowCompleted())
	require.NoError(t, e.GetWorkflowError())
	var res SessionResult
	require.NoError(t, e.GetWorkflowResult(&res))
	require.Len(t, e.fake.ends, 1, "SessionEnd calls")
	end := e.fake.ends[0]
	assert.Equal(t, in.SessionID, end.SessionID)
	assert.Equal(t, res.Status, end.Status)
	assert.Equal(t, res.Details, end.Details)
	assert.Equal(t, res.ExitCode, end.ExitCode)
	return res, e.Now().Sub(e.start)
}

func conn(n int) SessionConnection { return SessionConnection{Connection: n} }

func TestSessionWorkflowID(t *testing.T) {
	assert.Equal(t, "session:alice-0123456789abcdef", SessionWorkflowID("alice-0123456789abcdef"))
}

func TestSessionNeverConnects(t *testing.T) {
	e := newSessionEnv(t)
	e.at(10*time.Second, SignalSessionActivity, nil) // activity does not count as a connect
	res, took := e.run(t, SessionInput{SessionID: "s-1"})
	assert.Equal(t, SessionResult{Status: SessionStatusFailed, Details: SessionDetailsNeverConnected}, res)
	assert.Equal(t, DefaultSessionConnectTimeout, took)
	assert.Empty(t, e.fake.statuses)
}

func TestSessionIdleTimeoutResetByActivity(t *testing.T) {
	e := newSessionEnv(t)
	e.at(time.Second, SignalSessionConnected, conn(1))
	e.at(10*time.Minute, SignalSessionActivity, nil)
	e.at(25*time.Minute, SignalSessionActivity, nil)
	res, took := e.run(t, SessionInput{SessionID: "s-1", IdleTimeout: 20 * time.Minute})
	assert.Equal(t, SessionResult{Status: SessionStatusTerminated, Details: SessionDetailsIdleTimeout}, res)
	assert.Equal(t, 45*time.Minute, took)
	assert.Equal(t, []string{SessionStatusConnected}, e.fake.statuses)
	// Activity reports move the deadline without new timers: the connect
	// timer, the idle timer that fires early (at 21 min) and its successor.
	assert.LessOrEqual(t, e.timers, 4)
}

func TestSessionIdleTimeoutWithoutActivity(t *testing.T) {
	e := newSessionEnv(t)
	e.at(time.Second, SignalSessionConnected, conn(1))
	res, took := e.run(t, SessionInput{SessionID: "s-1"})
	assert.Equal(t, SessionDetailsIdleTimeout, res.Details)
	assert.Equal(t, time.Second+DefaultSessionIdleTimeout, took)
}

func TestSessionMaxDuration(t *testing.T) {
	e := newSessionEnv(t)
	e.at(time.Second, SignalSessionConnected, conn(1))
	for m := 5; m < 120; m += 5 {
		e.at(time.Duration(m)*time.Minute, SignalSessionActivity, nil)
	}
	res, took := e.run(t, SessionInput{SessionID: "s-1", MaxDuration: time.Hour})
	assert.Equal(t, SessionResult{Status: SessionStatusTerminated, Details: SessionDetailsMaxDuration}, res)
	assert.Equal(t, time.Hour, took)
}

func TestSessionTerminateSignal(t *testing.T) {
	for _, tt := range []struct {
		name    string
		connect bool
		p       SessionTerminate
		want    string
	}{
		{"connected", true, SessionTerminate{Reason: "done", By: "alice"}, "terminated by alice: done"},
		{"while connecting", false, SessionTerminate{By: "bob"}, "terminated by bob"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newSessionEnv(t)
			if tt.connect {
				e.at(time.Second, SignalSessionConnected, conn(1))
			}
			e.at(5*time.Second, SignalSessionTerminate, tt.p)
			res, took := e.run(t, SessionInput{SessionID: "s-1"})
			assert.Equal(t, SessionResult{Status: SessionStatusTerminated, Details: tt.want}, res)
			assert.Equal(t, 5*time.Second, took)
		})
	}
}

func TestSessionReconnectWithinGrace(t *testing.T) {
	e := newSessionEnv(t)
	e.at(time.Second, SignalSessionConnected, conn(1))
	e.at(5*time.Minute, SignalSessionDisconnected, conn(1))
	e.at(6*time.Minute, SignalSessionConnected, conn(2))
	// Past the first grace's end: the session must still be alive.
	e.at(10*time.Minute, SignalSessionEnded, SessionEnded{Status: SessionStatusTerminated, Details: "shell exited"})
	res, took := e.run(t, SessionInput{SessionID: "s-1"})
	assert.Equal(t, SessionResult{Status: SessionStatusTerminated, Details: "shell exited"}, res)
	assert.Equal(t, 10*time.Minute, took)
	assert.Equal(t, []string{SessionStatusConnected, SessionStatusDisconnected, SessionStatusConnected}, e.fake.statuses)
}

func TestSessionGraceExpires(t *testing.T) {
	e := newSessionEnv(t)
	e.at(time.Second, SignalSessionConnected, conn(1))
	e.at(5*time.Minute, SignalSessionDisconnected, conn(1))
	e.at(6*time.Minute, SignalSessionActivity, nil) // agent output while away does not reconnect
	res, took := e.run(t, SessionInput{SessionID: "s-1", ResumeGrace: 2 * time.Minute})
	assert.Equal(t, SessionResult{Status: SessionStatusTerminated, Details: SessionDetailsNoReconnect}, res)
	assert.Equal(t, 7*time.Minute, took)
	assert.Equal(t, []string{SessionStatusConnected, SessionStatusDisconnected}, e.fake.statuses)
}

// A disconnect of an old connection that arrives with the new connection's
// connect (in any order) does not disconnect the new one.
func TestSessionStaleDisconnect(t *testing.T) {
	e := newSessionEnv(t)
	e.at(time.Second, SignalSessionConnected, conn(1))
	e.RegisterDelayedCallback(func() {
		e.SignalWorkflow(SignalSessionDisconnected, conn(1))
		e.SignalWorkflow(SignalSessionConnected, conn(2))
		e.SignalWorkflow(SignalSessionDisconnected, conn(1)) // duplicate, late
	}, time.Minute)
	e.RegisterDelayedCallback(func() {
		v, err := e.QueryWorkflow(QueryStatus)
		require.NoError(t, err)
		var st SessionState
		require.NoError(t, v.Get(&st))
		assert.Equal(t, SessionStatusConnected, st.Status)
		assert.Equal(t, 2, st.Connection)
	}, 2*time.Minute)
	e.at(10*time.Minute, SignalSessionEnded, SessionEnded{Details: "client closed the session"})
	res, took := e.run(t, SessionInput{SessionID: "s-1"})
	assert.Equal(t, SessionResult{Status: SessionStatusTerminated, Details: "client closed the session"}, res)
	assert.Equal(t, 10*time.Minute, took, "no grace expiry")
}

func TestSessionEndedWithExitCode(t *testing.T) {
	e := newSessionEnv(t)
	code := 3
	e.at(time.Second, SignalSessionConnected, conn(1))
	e.at(time.Minute, SignalSessionEnded, SessionEnded{Status: SessionStatusTerminated, Details: "shell exited", ExitCode: &code})
	res, _ := e.run(t, SessionInput{SessionID: "s-1"})
	require.NotNil(t, res.ExitCode)
	assert.Equal(t, 3, *res.ExitCode)
	assert.Equal(t, SessionStatusTerminated, res.Status)
}

func TestSessionAgentFailure(t *testing.T) {
	e := newSessionEnv(t)
	e.at(2*time.Second, SignalSessionEnded, SessionEnded{Status: SessionStatusFailed, Details: "user fleetops-session: useradd failed"})
	res, took := e.run(t, SessionInput{SessionID: "s-1"})
	assert.Equal(t, SessionResult{Status: SessionStatusFailed, Details: "user fleetops-session: useradd failed"}, res)
	assert.Equal(t, 2*time.Second, took)
}

// A failing status write does not end or fail the session.
func TestSessionStatusWriteFailureIsNotFatal(t *testing.T) {
	e := newSessionEnv(t)
	e.fake.failStatus = true
	e.at(time.Second, SignalSessionConnected, conn(1))
	e.at(5*time.Minute, SignalSessionTerminate, SessionTerminate{By: "admin"})
	res, took := e.run(t, SessionInput{SessionID: "s-1"})
	assert.Equal(t, "terminated by admin", res.Details)
	assert.Equal(t, 5*time.Minute, took)
}

// A long, busy session hands its state over with ContinueAsNew.
func TestSessionContinuesAsNew(t *testing.T) {
	e := newSessionEnv(t)
	e.at(time.Second, SignalSessionConnected, conn(1))
	for i := 1; i <= 40; i++ {
		e.at(time.Duration(i)*30*time.Second, SignalSessionActivity, nil)
	}
	e.ExecuteWorkflow(SessionWorkflowName, SessionInput{SessionID: "s-1", ContinueAsNewAfterEvents: 50})
	require.True(t, e.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, e.GetWorkflowError(), &can)
	assert.Equal(t, SessionWorkflowName, can.WorkflowType.Name)
	var next SessionInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.State)
	assert.Equal(t, SessionStatusConnected, next.State.Status)
	assert.Equal(t, SessionStatusConnected, next.State.Recorded)
	assert.Equal(t, 1, next.State.Connection)
	assert.Equal(t, 1, next.State.Runs)
	assert.True(t, next.State.StartedAt.Equal(e.start))
	assert.Empty(t, e.fake.ends)

	// The next run keeps the deadlines: the idle timeout still counts from
	// the last activity, not from the new run's start.
	e2 := newSessionEnv(t)
	e2.SetStartTime(e.Now())
	next.ContinueAsNewAfterEvents = 0
	res, _ := e2.run(t, next)
	assert.Equal(t, SessionDetailsIdleTimeout, res.Details)
	assert.True(t, next.State.LastActivity.Add(DefaultSessionIdleTimeout).Equal(e2.Now()), "ended at %v", e2.Now())
	assert.Empty(t, e2.fake.statuses, "status already recorded by the previous run")
}

func TestSessionRejectsEmptyID(t *testing.T) {
	e := newSessionEnv(t)
	e.ExecuteWorkflow(SessionWorkflowName, SessionInput{})
	require.True(t, e.IsWorkflowCompleted())
	require.Error(t, e.GetWorkflowError())
}

// A bridge that does not number its connections (nil payloads) still gets
// connect, disconnect and reconnect right.
func TestSessionUnnumberedSignals(t *testing.T) {
	e := newSessionEnv(t)
	e.at(time.Second, SignalSessionConnected, nil)
	e.at(2*time.Second, SignalSessionConnected, nil) // duplicate
	e.at(5*time.Minute, SignalSessionDisconnected, nil)
	e.at(6*time.Minute, SignalSessionConnected, nil)
	e.at(10*time.Minute, SignalSessionDisconnected, nil)
	res, took := e.run(t, SessionInput{SessionID: "s-1"})
	assert.Equal(t, SessionDetailsNoReconnect, res.Details)
	assert.Equal(t, 12*time.Minute, took)
	assert.Equal(t, []string{SessionStatusConnected, SessionStatusDisconnected, SessionStatusConnected, SessionStatusDisconnected}, e.fake.statuses)
}
