package activities_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/fleetops/fleetops/activities"
	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
	"github.com/fleetops/fleetops/workflows"
)

func newSessionActivities(t *testing.T, st activities.SessionStore, now time.Time) *activities.SessionActivities {
	t.Helper()
	a, err := activities.NewSessionActivities(activities.SessionConfig{Store: st, Now: func() time.Time { return now }})
	require.NoError(t, err)
	return a
}

func createTestSession(t *testing.T, st *store.Store, id string, at time.Time) {
	t.Helper()
	require.NoError(t, st.CreateSession(context.Background(), &store.Session{
		SessionID: id, Target: "mi-00000000000000001", Owner: "alice", Kind: store.SessionKindShell, StartedAt: at,
	}))
}

func requireNonRetryable(t *testing.T, err error) {
	t.Helper()
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "want an application error, got %v", err)
	assert.True(t, ae.NonRetryable())
	assert.Equal(t, workflows.ErrTypeInvalidInput, ae.Type())
}

func TestSessionEnd(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		createTestSession(t, st, "alice-1", t0)
		a := newSessionActivities(t, st, t0.Add(time.Minute))

		require.NoError(t, a.SessionSetStatus(ctx, workflows.SessionStatusInput{SessionID: "alice-1", Status: workflows.SessionStatusConnected}))
		got, err := st.GetSession(ctx, "alice-1")
		require.NoError(t, err)
		assert.Equal(t, store.SessionConnected, got.Status)
		require.NotNil(t, got.ConnectedAt)

		code := 7
		in := workflows.SessionEndInput{SessionID: "alice-1", Status: workflows.SessionStatusTerminated, Details: "shell exited", ExitCode: &code}
		require.NoError(t, a.SessionEnd(ctx, in))
		// Idempotent: a retry, even with other values, changes nothing.
		other := 9
		require.NoError(t, a.SessionEnd(ctx, workflows.SessionEndInput{SessionID: "alice-1", Status: workflows.SessionStatusFailed, Details: "x", ExitCode: &other}))
		got, err = st.GetSession(ctx, "alice-1")
		require.NoError(t, err)
		assert.Equal(t, store.SessionTerminated, got.Status)
		assert.Equal(t, "shell exited", got.Details)
		assert.True(t, got.TerminateRequested)
		require.NotNil(t, got.EndedAt)
		assert.True(t, got.EndedAt.Equal(t0.Add(time.Minute)))
		require.NotNil(t, got.ExitCode)
		assert.Equal(t, 7, *got.ExitCode)
		toClose, err := st.SessionsToClose(ctx, []string{"alice-1"})
		require.NoError(t, err)
		assert.Equal(t, []string{"alice-1"}, toClose)

		// A late status report cannot reopen it.
		require.NoError(t, a.SessionSetStatus(ctx, workflows.SessionStatusInput{SessionID: "alice-1", Status: workflows.SessionStatusConnected}))
		got, err = st.GetSession(ctx, "alice-1")
		require.NoError(t, err)
		assert.Equal(t, store.SessionTerminated, got.Status)

		// Bad input and unknown sessions are not retried.
		requireNonRetryable(t, a.SessionEnd(ctx, workflows.SessionEndInput{SessionID: "nope", Status: workflows.SessionStatusFailed}))
		requireNonRetryable(t, a.SessionEnd(ctx, workflows.SessionEndInput{SessionID: "alice-1", Status: "Connected"}))
		requireNonRetryable(t, a.SessionSetStatus(ctx, workflows.SessionStatusInput{SessionID: "nope", Status: workflows.SessionStatusConnected}))
		requireNonRetryable(t, a.SessionSetStatus(ctx, workflows.SessionStatusInput{SessionID: "alice-1", Status: "Terminated"}))
	})
}

// failingSessionStore is a store that is down.
type failingSessionStore struct{ activities.SessionStore }

func (failingSessionStore) RequestTerminate(context.Context, string, string, time.Time) error {
	return store.ErrUnavailable
}

// A database outage is retried, not turned into a permanent failure.
func TestSessionEndRetriesOutage(t *testing.T) {
	a := newSessionActivities(t, failingSessionStore{}, time.Now())
	err := a.SessionEnd(context.Background(), workflows.SessionEndInput{SessionID: "s", Status: workflows.SessionStatusFailed})
	require.ErrorIs(t, err, store.ErrUnavailable)
	var ae *temporal.ApplicationError
	assert.False(t, errors.As(err, &ae))
}

// The activities are registered under the names the workflow uses.
func TestSessionActivitiesRegistered(t *testing.T) {
	st := storetest.Open(t)
	createTestSession(t, st, "s-1", time.Now())
	a := newSessionActivities(t, st, time.Now())
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	a.Register(env)
	_, err := env.ExecuteActivity(workflows.ActivitySessionSetStatus, workflows.SessionStatusInput{SessionID: "s-1", Status: workflows.SessionStatusDisconnected, Details: "client disconnected"})
	require.NoError(t, err)
	_, err = env.ExecuteActivity(workflows.ActivitySessionEnd, workflows.SessionEndInput{SessionID: "s-1", Status: workflows.SessionStatusTerminated, Details: "client did not reconnect"})
	require.NoError(t, err)
	got, err := st.GetSession(context.Background(), "s-1")
	require.NoError(t, err)
	assert.Equal(t, store.SessionTerminated, got.Status)
	assert.Equal(t, "client did not reconnect", got.Details)
}
