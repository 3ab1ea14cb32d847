package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
)

func TestAudit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for i := range 10 {
			e := &store.AuditEvent{
				Time:     t0.Add(time.Duration(i) * time.Minute),
				Actor:    []string{"alice", "bob"}[i%2],
				Action:   []string{"CreateActivation", "SendCommand", "StartSession"}[i%3],
				Resource: fmt.Sprintf("res-%d", i%4),
				SourceIP: "10.0.0.1",
				Outcome:  "success",
			}
			require.NoError(t, s.AppendAudit(ctx, e))
			require.NotZero(t, e.ID)
		}
		noTime := &store.AuditEvent{Actor: "carol", Action: "Login", Outcome: "failure:401"}
		require.NoError(t, s.AppendAudit(ctx, noTime))
		require.False(t, noTime.Time.IsZero(), "time defaults to now")

		minute := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
		tests := []struct {
			name string
			f    store.AuditFilter
			want []string // "actor@minute"
		}{
			{"actor", store.AuditFilter{Actor: "alice"}, []string{"alice@8", "alice@6", "alice@4", "alice@2", "alice@0"}},
			{"action", store.AuditFilter{Action: "SendCommand"}, []string{"bob@7", "alice@4", "bob@1"}},
			{"resource", store.AuditFilter{Resource: "res-3"}, []string{"bob@7", "bob@3"}},
			{"since/until", store.AuditFilter{Since: minute(3), Until: minute(6)}, []string{"bob@5", "alice@4", "bob@3"}},
			{"combined", store.AuditFilter{Actor: "bob", Since: minute(2), Until: minute(9)}, []string{"bob@7", "bob@5", "bob@3"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				es, next, err := s.ListAudit(ctx, tt.f)
				require.NoError(t, err)
				require.Empty(t, next)
				var got []string
				for _, e := range es {
					got = append(got, fmt.Sprintf("%s@%d", e.Actor, int(e.Time.Sub(t0)/time.Minute)))
				}
				require.Equal(t, tt.want, got)
			})
		}

		// Pagination walks every event exactly once, newest first.
		var all []uint64
		tok := ""
		for {
			es, next, err := s.ListAudit(ctx, store.AuditFilter{MaxResults: 3, NextToken: tok})
			require.NoError(t, err)
			require.LessOrEqual(t, len(es), 3)
			for _, e := range es {
				all = append(all, e.ID)
			}
			if next == "" {
				break
			}
			tok = next
		}
		require.Len(t, all, 11)
		for i := 1; i < len(all); i++ {
			require.Greater(t, all[i-1], all[i])
		}
		require.Equal(t, noTime.ID, all[0])

		for _, bad := range []string{"%%%", "YWJj" /* "abc" */} {
			_, _, err := s.ListAudit(ctx, store.AuditFilter{NextToken: bad})
			require.ErrorIs(t, err, store.ErrInvalidArgument, bad)
		}
	})
}
