package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
)

var sessionT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newSession(id, target, owner string, at time.Time) *store.Session {
	return &store.Session{
		SessionID: id, Target: target, Owner: owner, Reason: "debug",
		DocumentName: "SSM-SessionManagerRunShell", Kind: store.SessionKindShell,
		IdleTimeoutSeconds: 1200, RecordingEnabled: true,
		StreamTokenHash: store.HashSecret("tok-" + id), StreamTokenExpiresAt: at.Add(time.Minute),
		StartedAt: at,
	}
}

func createSession(t *testing.T, s *store.Store, sess *store.Session) {
	t.Helper()
	require.NoError(t, s.CreateSession(ctxT(t), sess))
}

func getSession(t *testing.T, s *store.Store, id string) store.Session {
	t.Helper()
	sess, err := s.GetSession(ctxT(t), id)
	require.NoError(t, err)
	return sess
}

func TestCreateAndGetSession(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		in := newSession("alice-0000000000000001", "mi-00000000000000001", "alice", sessionT0)
		in.Port = 8080
		createSession(t, s, in)
		got := getSession(t, s, in.SessionID)
		assert.Equal(t, store.SessionConnecting, got.Status)
		assert.Equal(t, "alice", got.Owner)
		assert.Equal(t, 8080, got.Port)
		assert.True(t, got.RecordingEnabled)
		assert.True(t, got.StartedAt.Equal(sessionT0))
		assert.Nil(t, got.ConnectedAt)
		assert.Nil(t, got.EndedAt)
		assert.False(t, got.Ended())

		err := s.CreateSession(ctx, newSession(in.SessionID, "mi-00000000000000001", "alice", sessionT0))
		assert.ErrorIs(t, err, store.ErrAlreadyExists)
		assert.ErrorIs(t, s.CreateSession(ctx, &store.Session{Target: "mi-1"}), store.ErrInvalidArgument)
		_, err = s.GetSession(ctx, "nope")
		assert.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestStreamTokenSingleUse(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		sess := newSession("a-1", "mi-00000000000000001", "a", sessionT0)
		createSession(t, s, sess)
		hash := store.HashSecret("tok-a-1")
		now := sessionT0.Add(10 * time.Second)

		_, err := s.ConsumeStreamToken(ctx, "a-1", store.HashSecret("wrong"), now)
		assert.ErrorIs(t, err, store.ErrUnauthorized, "wrong token")
		_, err = s.ConsumeStreamToken(ctx, "a-1", "", now)
		assert.ErrorIs(t, err, store.ErrUnauthorized, "empty hash")
		_, err = s.ConsumeStreamToken(ctx, "other", hash, now)
		assert.ErrorIs(t, err, store.ErrUnauthorized, "unknown session")

		got, err := s.ConsumeStreamToken(ctx, "a-1", hash, now)
		require.NoError(t, err)
		assert.True(t, got.StreamTokenUsed)
		assert.Equal(t, 1, got.Connections)

		_, err = s.ConsumeStreamToken(ctx, "a-1", hash, now)
		assert.ErrorIs(t, err, store.ErrUnauthorized, "second use")

		// A resume issues a new token; the old one stays spent.
		require.NoError(t, s.SetStreamToken(ctx, "a-1", store.HashSecret("tok2"), now.Add(time.Minute)))
		_, err = s.ConsumeStreamToken(ctx, "a-1", hash, now)
		assert.ErrorIs(t, err, store.ErrUnauthorized, "old token after resume")
		got, err = s.ConsumeStreamToken(ctx, "a-1", store.HashSecret("tok2"), now.Add(time.Second))
		require.NoError(t, err)
		assert.Equal(t, 2, got.Connections)

		assert.ErrorIs(t, s.SetStreamToken(ctx, "nope", hash, now), store.ErrNotFound)
	})
}

func TestStreamTokenExpiryAndEnd(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		createSession(t, s, newSession("a-1", "mi-00000000000000001", "a", sessionT0))
		createSession(t, s, newSession("a-2", "mi-00000000000000001", "a", sessionT0))
		createSession(t, s, newSession("a-3", "mi-00000000000000001", "a", sessionT0))

		// Expires at sessionT0+1m, exclusive.
		_, err := s.ConsumeStreamToken(ctx, "a-1", store.HashSecret("tok-a-1"), sessionT0.Add(time.Minute))
		assert.ErrorIs(t, err, store.ErrUnauthorized, "expired")

		require.NoError(t, s.EndSession(ctx, "a-2", store.SessionTerminated, "done", sessionT0))
		_, err = s.ConsumeStreamToken(ctx, "a-2", store.HashSecret("tok-a-2"), sessionT0)
		assert.ErrorIs(t, err, store.ErrUnauthorized, "ended")
		assert.ErrorIs(t, s.SetStreamToken(ctx, "a-2", store.HashSecret("x"), sessionT0.Add(time.Hour)), store.ErrSessionEnded)

		require.NoError(t, s.RequestTerminate(ctx, "a-3", "bye", sessionT0))
		_, err = s.ConsumeStreamToken(ctx, "a-3", store.HashSecret("tok-a-3"), sessionT0)
		assert.ErrorIs(t, err, store.ErrUnauthorized, "terminating")
	})
}

// Exactly one of many concurrent uses of a token wins.
func TestStreamTokenConcurrentUse(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		createSession(t, s, newSession("a-1", "mi-00000000000000001", "a", sessionT0))
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, fails := 0, 0
		for range 8 {
			wg.Go(func() {
				_, err := s.ConsumeStreamToken(ctx, "a-1", store.HashSecret("tok-a-1"), sessionT0)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, store.ErrUnauthorized):
					fails++
				default:
					t.Errorf("unexpected error: %v", err)
				}
			})
		}
		wg.Wait()
		assert.Equal(t, 1, wins)
		assert.Equal(t, 7, fails)
	})
}

func TestSessionTransitions(t *testing.T) {
	type step struct {
		status      string
		wantApplied bool
		wantStatus  string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"connect, blip, reconnect", []step{
			{store.SessionConnected, true, store.SessionConnected},
			{store.SessionDisconnected, true, store.SessionDisconnected},
			{store.SessionConnected, true, store.SessionConnected},
			{store.SessionConnecting, false, store.SessionConnected},
		}},
		{"terminating only ends", []step{
			{store.SessionConnected, true, store.SessionConnected},
			{store.SessionTerminating, true, store.SessionTerminating},
			{store.SessionConnected, false, store.SessionTerminating},
			{store.SessionDisconnected, false, store.SessionTerminating},
			{store.SessionTerminated, true, store.SessionTerminated},
		}},
		{"ended never changes", []step{
			{store.SessionFailed, true, store.SessionFailed},
			{store.SessionConnected, false, store.SessionFailed},
			{store.SessionTerminating, false, store.SessionFailed},
			{store.SessionTerminated, false, store.SessionFailed},
		}},
	}
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for i, tt := range tests {
			id := fmt.Sprintf("t-%d", i)
			createSession(t, s, newSession(id, "mi-00000000000000001", "t", sessionT0))
			for j, st := range tt.steps {
				at := sessionT0.Add(time.Duration(j+1) * time.Second)
				require.NoError(t, s.SetSessionStatus(ctx, id, st.status, "step "+st.status, at), tt.name)
				got := getSession(t, s, id)
				assert.Equal(t, st.wantStatus, got.Status, "%s: step %d (%s)", tt.name, j, st.status)
				if st.wantApplied {
					assert.Equal(t, "step "+st.status, got.Details, "%s: step %d", tt.name, j)
				} else {
					assert.NotEqual(t, "step "+st.status, got.Details, "%s: step %d refused", tt.name, j)
				}
			}
		}
		// ConnectedAt is the first connection; EndedAt set on the end.
		got := getSession(t, s, "t-0")
		require.NotNil(t, got.ConnectedAt)
		assert.True(t, got.ConnectedAt.Equal(sessionT0.Add(time.Second)), "first connect kept: %v", got.ConnectedAt)
		assert.Nil(t, got.EndedAt)
		got = getSession(t, s, "t-1")
		require.NotNil(t, got.EndedAt)
		assert.True(t, got.TerminateRequested)
		assert.True(t, got.Ended())

		assert.ErrorIs(t, s.SetSessionStatus(ctx, "t-0", "Bogus", "", sessionT0), store.ErrInvalidArgument)
		assert.ErrorIs(t, s.SetSessionStatus(ctx, "nope", store.SessionConnected, "", sessionT0), store.ErrNotFound)
	})
}

func TestRequestTerminateAndEnd(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for _, id := range []string{"a", "b", "c", "d"} {
			createSession(t, s, newSession(id, "mi-00000000000000001", "o", sessionT0))
		}
		toClose, err := s.SessionsToClose(ctx, []string{"a", "b", "c", "d", "x"})
		require.NoError(t, err)
		assert.Empty(t, toClose)

		require.NoError(t, s.RequestTerminate(ctx, "b", "terminated by alice: done", sessionT0))
		require.NoError(t, s.RequestTerminate(ctx, "b", "second reason", sessionT0))
		got := getSession(t, s, "b")
		assert.Equal(t, store.SessionTerminating, got.Status)
		assert.Equal(t, "terminated by alice: done", got.Details, "first reason stays")
		assert.True(t, got.TerminateRequested)
		assert.Nil(t, got.EndedAt)

		end := sessionT0.Add(time.Minute)
		require.NoError(t, s.EndSession(ctx, "b", store.SessionTerminated, "terminated by alice: done", end))
		require.NoError(t, s.EndSession(ctx, "c", store.SessionFailed, "never connected", end))
		// Idempotent: a second end changes nothing.
		require.NoError(t, s.EndSession(ctx, "c", store.SessionTerminated, "other", end.Add(time.Hour)))
		got = getSession(t, s, "c")
		assert.Equal(t, store.SessionFailed, got.Status)
		assert.Equal(t, "never connected", got.Details)
		require.NotNil(t, got.EndedAt)
		assert.True(t, got.EndedAt.Equal(end))
		// Terminating an ended session leaves it alone.
		require.NoError(t, s.RequestTerminate(ctx, "c", "late", end))
		assert.Equal(t, store.SessionFailed, getSession(t, s, "c").Status)

		assert.ErrorIs(t, s.EndSession(ctx, "a", store.SessionConnected, "", end), store.ErrInvalidArgument)
		assert.ErrorIs(t, s.EndSession(ctx, "nope", store.SessionTerminated, "", end), store.ErrNotFound)
		assert.ErrorIs(t, s.RequestTerminate(ctx, "nope", "", end), store.ErrNotFound)

		require.NoError(t, s.SetSessionExitCode(ctx, "b", 3))
		require.NoError(t, s.SetSessionExitCode(ctx, "b", 4))
		got = getSession(t, s, "b")
		require.NotNil(t, got.ExitCode)
		assert.Equal(t, 3, *got.ExitCode)
		assert.ErrorIs(t, s.SetSessionExitCode(ctx, "nope", 1), store.ErrNotFound)

		toClose, err = s.SessionsToClose(ctx, []string{"d", "c", "a", "b", "x", "c"})
		require.NoError(t, err)
		assert.Equal(t, []string{"c", "b"}, toClose)

		n, err := s.CountActiveSessions(ctx, "")
		require.NoError(t, err)
		assert.Equal(t, 2, n)
	})
}

func TestCountActiveSessions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		createSession(t, s, newSession("a", "mi-00000000000000001", "o", sessionT0))
		createSession(t, s, newSession("b", "mi-00000000000000001", "o", sessionT0))
		createSession(t, s, newSession("c", "mi-00000000000000002", "o", sessionT0))
		createSession(t, s, newSession("d", "mi-00000000000000001", "o", sessionT0))
		require.NoError(t, s.RequestTerminate(ctx, "b", "x", sessionT0)) // still active until it ends
		require.NoError(t, s.EndSession(ctx, "d", store.SessionTerminated, "x", sessionT0))
		for target, want := range map[string]int{"": 3, "mi-00000000000000001": 2, "mi-00000000000000002": 1, "mi-00000000000000003": 0} {
			n, err := s.CountActiveSessions(ctx, target)
			require.NoError(t, err)
			assert.Equal(t, want, n, "target %q", target)
		}
	})
}

func TestListSessions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		// s0..s9, one minute apart; s3 and s4 share a start time.
		for i := range 10 {
			at := sessionT0.Add(time.Duration(i) * time.Minute)
			if i == 4 {
				at = sessionT0.Add(3 * time.Minute)
			}
			target, owner := "mi-00000000000000001", "alice"
			if i%2 == 1 {
				target = "mi-00000000000000002"
			}
			if i >= 7 {
				owner = "bob"
			}
			createSession(t, s, newSession(fmt.Sprintf("s%d", i), target, owner, at))
		}
		require.NoError(t, s.EndSession(ctx, "s1", store.SessionTerminated, "", sessionT0))
		require.NoError(t, s.EndSession(ctx, "s2", store.SessionFailed, "", sessionT0))
		require.NoError(t, s.SetSessionStatus(ctx, "s5", store.SessionConnected, "", sessionT0))

		ids := func(ss []store.Session) []string {
			out := []string{}
			for _, x := range ss {
				out = append(out, x.SessionID)
			}
			return out
		}
		list := func(f store.SessionFilter) []string {
			t.Helper()
			var all []string
			for page := 0; ; page++ {
				require.Less(t, page, 20)
				got, next, err := s.ListSessions(ctx, f)
				require.NoError(t, err)
				all = append(all, ids(got)...)
				if next == "" {
					return all
				}
				f.NextToken = next
			}
		}
		tests := []struct {
			name string
			f    store.SessionFilter
			want []string
		}{
			{"active", store.SessionFilter{Active: true}, []string{"s9", "s8", "s7", "s6", "s5", "s4", "s3", "s0"}},
			{"active paged by 3", store.SessionFilter{Active: true, MaxResults: 3}, []string{"s9", "s8", "s7", "s6", "s5", "s4", "s3", "s0"}},
			{"history", store.SessionFilter{}, []string{"s2", "s1"}},
			{"history paged by 1", store.SessionFilter{MaxResults: 1}, []string{"s2", "s1"}},
			{"target", store.SessionFilter{Active: true, Target: "mi-00000000000000002", MaxResults: 2}, []string{"s9", "s7", "s5", "s3"}},
			{"owner", store.SessionFilter{Active: true, Owner: "bob"}, []string{"s9", "s8", "s7"}},
			{"status", store.SessionFilter{Active: true, Statuses: []string{store.SessionConnected, store.SessionFailed}}, []string{"s5"}},
			{"status history", store.SessionFilter{Statuses: []string{store.SessionConnected, store.SessionFailed}}, []string{"s2"}},
			{"time range", store.SessionFilter{Active: true, After: sessionT0.Add(3 * time.Minute), Before: sessionT0.Add(6 * time.Minute), MaxResults: 1}, []string{"s5", "s4", "s3"}},
			{"active alice", store.SessionFilter{Active: true, Owner: "alice", Target: "mi-00000000000000001"}, []string{"s6", "s4", "s0"}},
		}
		for _, tt := range tests {
			assert.Equal(t, tt.want, list(tt.f), tt.name)
		}
		_, _, err := s.ListSessions(ctx, store.SessionFilter{NextToken: "!!"})
		assert.ErrorIs(t, err, store.ErrInvalidArgument)
	})
}

func TestRecordingCap(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		createSession(t, s, newSession("r", "mi-00000000000000001", "o", sessionT0))
		const maxBytes = 20
		for _, tc := range []struct {
			data          string
			wantTruncated bool
		}{
			{"0123456789", false}, // 10
			{"abcdefgh", false},   // 18
			{"xyz", true},         // would be 21: refused
			{"z", true},           // refused once truncated, though it would fit
		} {
			trunc, err := s.AppendRecording(ctx, "r", tc.data, maxBytes)
			require.NoError(t, err)
			assert.Equal(t, tc.wantTruncated, trunc, "append %q", tc.data)
		}
		// An uncapped append still goes in (the final marker).
		trunc, err := s.AppendRecording(ctx, "r", "\n[end]", 0)
		require.NoError(t, err)
		assert.False(t, trunc)

		got := getSession(t, s, "r")
		assert.True(t, got.RecordingTruncated)
		assert.EqualValues(t, 24, got.RecordingBytes)
		rec, err := s.Recording(ctx, "r")
		require.NoError(t, err)
		assert.Equal(t, "0123456789abcdefgh\n[end]", rec)

		// Invalid UTF-8 keeps its length.
		createSession(t, s, newSession("u", "mi-00000000000000001", "o", sessionT0))
		_, err = s.AppendRecording(ctx, "u", "a\xffb\x00c", 0)
		require.NoError(t, err)
		rec, err = s.Recording(ctx, "u")
		require.NoError(t, err)
		assert.Equal(t, "a?b?c", rec)

		_, err = s.AppendRecording(ctx, "nope", "x", 0)
		assert.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.Recording(ctx, "nope")
		assert.ErrorIs(t, err, store.ErrNotFound)
	})
}

// Concurrent writers to one session each keep their chunk order, and the
// recording reads back across several pages.
func TestRecordingConcurrentAppends(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		createSession(t, s, newSession("r", "mi-00000000000000001", "o", sessionT0))
		const writers, perWriter = 4, 80
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					if _, err := s.AppendRecording(ctx, "r", fmt.Sprintf("%d:%d\n", w, i), 0); err != nil {
						t.Errorf("writer %d chunk %d: %v", w, i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		rec, err := s.Recording(ctx, "r")
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSuffix(rec, "\n"), "\n")
		require.Len(t, lines, writers*perWriter)
		next := make([]int, writers)
		for _, l := range lines {
			var w, i int
			_, err := fmt.Sscanf(l, "%d:%d", &w, &i)
			require.NoError(t, err, l)
			require.Equal(t, next[w], i, "writer %d out of order", w)
			next[w]++
		}
		assert.EqualValues(t, len(rec), getSession(t, s, "r").RecordingBytes)
	})
}
