package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
)

func TestAgentRoutes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		const id, a, b = "mi-0123456789abcdef0", "http://10.0.0.1:8080", "http://10.0.0.2:8080"
		now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

		_, err := st.GetAgentRoute(ctx, id)
		require.ErrorIs(t, err, store.ErrNotFound, "no replica holds it yet")

		require.NoError(t, st.SetAgentRoute(ctx, id, a, now))
		got, err := st.GetAgentRoute(ctx, id)
		require.NoError(t, err)
		require.Equal(t, a, got)

		// The agent reconnects to b before a notices the old socket die:
		// a's late clear must not erase b's route.
		require.NoError(t, st.SetAgentRoute(ctx, id, b, now.Add(time.Second)))
		require.NoError(t, st.ClearAgentRoute(ctx, id, a))
		got, err = st.GetAgentRoute(ctx, id)
		require.NoError(t, err)
		require.Equal(t, b, got)

		require.NoError(t, st.ClearAgentRoute(ctx, id, b))
		_, err = st.GetAgentRoute(ctx, id)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestCountActiveSessionsVia(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		const a, b = "http://10.0.0.1:8080", "http://10.0.0.2:8080"
		routes := map[string]string{"mi-000000000000000a1": a, "mi-000000000000000a2": a, "mi-000000000000000b1": b}
		for id, url := range routes {
			require.NoError(t, st.SetAgentRoute(ctx, id, url, now))
		}
		for i, s := range []struct{ target, status string }{
			{"mi-000000000000000a1", store.SessionConnected},
			{"mi-000000000000000a1", store.SessionTerminated}, // ended: not counted
			{"mi-000000000000000a2", store.SessionConnecting},
			{"mi-000000000000000b1", store.SessionDisconnected},
			{"mi-000000000000000c1", store.SessionConnected}, // no route
		} {
			sess := store.Session{SessionID: fmt.Sprintf("s-%d", i), Target: s.target, Kind: "Standard_Stream", Status: s.status, StartedAt: now}
			require.NoError(t, st.CreateSession(ctx, &sess))
		}
		for url, want := range map[string]int{a: 2, b: 1, "http://10.0.0.3:8080": 0} {
			n, err := st.CountActiveSessionsVia(ctx, url)
			require.NoError(t, err)
			require.Equal(t, want, n, url)
		}
	})
}
