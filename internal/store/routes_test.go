package store_test

import (
	"context"
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
