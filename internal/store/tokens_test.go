package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
)

func TestAPITokens(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		n, err := s.CountAPITokens(ctx)
		require.NoError(t, err)
		require.Zero(t, n)

		require.NoError(t, s.CreateAPIToken(ctx, &store.APIToken{ID: "t1", Name: "admin", Hash: store.HashSecret("tok1"), CreatedAt: t0}))
		require.NoError(t, s.CreateAPIToken(ctx, &store.APIToken{ID: "t2", Name: "ci", Hash: store.HashSecret("tok2"), CreatedAt: t0.Add(time.Second)}))
		require.ErrorIs(t, s.CreateAPIToken(ctx, &store.APIToken{ID: "t1", Name: "dup", Hash: store.HashSecret("tok3")}), store.ErrAlreadyExists)
		require.ErrorIs(t, s.CreateAPIToken(ctx, &store.APIToken{ID: "t3", Name: "dup hash", Hash: store.HashSecret("tok1")}), store.ErrAlreadyExists)

		// LastUsedAt moves on first use, then at most once a minute.
		steps := []struct {
			at       time.Time
			wantUsed time.Time
		}{
			{t0.Add(time.Hour), t0.Add(time.Hour)},
			{t0.Add(time.Hour + 30*time.Second), t0.Add(time.Hour)},
			{t0.Add(time.Hour + 59*time.Second), t0.Add(time.Hour)},
			{t0.Add(time.Hour + 61*time.Second), t0.Add(time.Hour + 61*time.Second)},
		}
		for _, st := range steps {
			tok, err := s.AuthenticateToken(ctx, store.HashSecret("tok1"), st.at)
			require.NoError(t, err)
			require.Equal(t, "t1", tok.ID)
			require.NotNil(t, tok.LastUsedAt)
			require.True(t, tok.LastUsedAt.Equal(st.wantUsed), "at %v: last used %v, want %v", st.at, tok.LastUsedAt, st.wantUsed)
		}

		for _, h := range []string{"", store.HashSecret("unknown")} {
			_, err = s.AuthenticateToken(ctx, h, t0)
			require.ErrorIs(t, err, store.ErrUnauthorized)
		}

		require.NoError(t, s.RevokeAPIToken(ctx, "t1", t0.Add(2*time.Hour)))
		require.NoError(t, s.RevokeAPIToken(ctx, "t1", t0.Add(3*time.Hour)), "revoking twice is harmless")
		require.ErrorIs(t, s.RevokeAPIToken(ctx, "nope", t0), store.ErrNotFound)
		_, err = s.AuthenticateToken(ctx, store.HashSecret("tok1"), t0.Add(4*time.Hour))
		require.ErrorIs(t, err, store.ErrUnauthorized)

		list, err := s.ListAPITokens(ctx)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, "t1", list[0].ID)
		require.NotNil(t, list[0].RevokedAt)
		require.True(t, list[0].RevokedAt.Equal(t0.Add(2*time.Hour)), "first revocation time kept")
		require.Nil(t, list[1].RevokedAt)
		require.Nil(t, list[1].LastUsedAt)

		n, err = s.CountAPITokens(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 2, n, "revoked tokens count")
	})
}
