package store_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
)

func newCommand(id string, at time.Time) *store.Command {
	return &store.Command{
		CommandID: id, DocumentName: "AWS-RunShellScript", DocumentVersion: 1,
		Parameters: `{"commands":["uptime"]}`, MaxConcurrency: "50", MaxErrors: "0",
		TimeoutSeconds: 600, ExecutionTimeoutSeconds: 3600, MaxOutputBytes: 24000,
		RequestedBy: "tester", RequestedAt: at,
	}
}

// seedCommand creates a command with Pending invocations on instances.
func seedCommand(t *testing.T, s *store.Store, c *store.Command, instances ...string) {
	t.Helper()
	ctx := ctxT(t)
	require.NoError(t, s.CreateCommand(ctx, c))
	rows := make([]store.Invocation, 0, len(instances))
	for _, id := range instances {
		rows = append(rows, store.Invocation{
			InstanceID: id, InstanceName: "node-" + id, DocumentName: c.DocumentName,
			Status: "Pending", StatusDetails: "Pending", RequestedAt: c.RequestedAt,
		})
	}
	require.NoError(t, s.CreateInvocations(ctx, c.CommandID, rows))
}

func key(cmd, inst string) store.InvocationKey {
	return store.InvocationKey{CommandID: cmd, InstanceID: inst}
}

func keys(cmd string, insts ...string) []store.InvocationKey {
	out := make([]store.InvocationKey, 0, len(insts))
	for _, i := range insts {
		out = append(out, key(cmd, i))
	}
	return out
}

func commandIDs(cs []store.Command) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.CommandID)
	}
	return out
}

func outboxKeys(items []store.OutboxItem) []string {
	out := []string{}
	for _, it := range items {
		k := it.CommandID + ":" + it.InstanceID
		if it.Cancel {
			k = "cancel " + k
		} else {
			k += "=" + it.Payload
		}
		out = append(out, k)
	}
	return out
}

func statusOf(t *testing.T, s *store.Store, k store.InvocationKey) string {
	t.Helper()
	inv, err := s.GetInvocation(ctxT(t), k)
	require.NoError(t, err)
	return inv.Status + "/" + inv.StatusDetails
}

func TestCommandCRUD(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		c := newCommand("cmd-1", t0)
		require.NoError(t, s.CreateCommand(ctx, c))
		require.ErrorIs(t, s.CreateCommand(ctx, newCommand("cmd-1", t0)), store.ErrAlreadyExists)
		require.ErrorIs(t, s.CreateCommand(ctx, newCommand("", t0)), store.ErrInvalidArgument)

		got, err := s.GetCommand(ctx, "cmd-1")
		require.NoError(t, err)
		require.Equal(t, "Pending", got.Status)
		require.Equal(t, "Pending", got.StatusDetails)
		require.True(t, t0.Equal(got.RequestedAt))
		require.Equal(t, 24000, got.MaxOutputBytes)
		require.Nil(t, got.FinishedAt)
		_, err = s.GetCommand(ctx, "nope")
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestUpdateCommandStatus(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		require.NoError(t, s.CreateCommand(ctx, newCommand("cmd-1", t0)))
		finished := t0.Add(time.Minute)
		later := t0.Add(2 * time.Minute)
		steps := []struct {
			name        string
			status      string
			counters    store.CommandCounters
			finishedAt  *time.Time
			wantStatus  string
			wantCounter store.CommandCounters
		}{
			{"progress", "InProgress", store.CommandCounters{TargetCount: 3, CompletedCount: 1},
				nil, "InProgress", store.CommandCounters{TargetCount: 3, CompletedCount: 1}},
			{"finish", "Success", store.CommandCounters{TargetCount: 3, CompletedCount: 3},
				&finished, "Success", store.CommandCounters{TargetCount: 3, CompletedCount: 3}},
			{"late progress is ignored", "InProgress", store.CommandCounters{TargetCount: 3, CompletedCount: 2},
				nil, "Success", store.CommandCounters{TargetCount: 3, CompletedCount: 3}},
			{"finishing again is harmless", "Failed", store.CommandCounters{TargetCount: 3, CompletedCount: 3, ErrorCount: 1},
				&later, "Success", store.CommandCounters{TargetCount: 3, CompletedCount: 3}},
		}
		for _, st := range steps {
			require.NoError(t, s.UpdateCommandStatus(ctx, "cmd-1", st.status, st.status, st.counters, st.finishedAt), st.name)
			got, err := s.GetCommand(ctx, "cmd-1")
			require.NoError(t, err)
			require.Equal(t, st.wantStatus, got.Status, st.name)
			require.Equal(t, st.wantStatus, got.StatusDetails, st.name)
			require.Equal(t, st.wantCounter, store.CommandCounters{
				TargetCount: got.TargetCount, CompletedCount: got.CompletedCount,
				ErrorCount: got.ErrorCount, DeliveryTimedOutCount: got.DeliveryTimedOutCount,
			}, st.name)
		}
		got, err := s.GetCommand(ctx, "cmd-1")
		require.NoError(t, err)
		require.NotNil(t, got.FinishedAt)
		require.True(t, finished.Equal(*got.FinishedAt))
		require.ErrorIs(t, s.UpdateCommandStatus(ctx, "nope", "Success", "Success", store.CommandCounters{}, nil), store.ErrNotFound)
	})
}

func TestListCommands(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		mk := func(id string, at time.Time, doc, status string, insts ...string) {
			c := newCommand(id, at)
			c.DocumentName = doc
			seedCommand(t, s, c, insts...)
			if status != "Pending" {
				require.NoError(t, s.UpdateCommandStatus(ctx, id, status, status, store.CommandCounters{}, nil))
			}
		}
		mk("cmd-1", t0, "AWS-RunShellScript", "Success", "mi-0")
		mk("cmd-2", t0.Add(time.Minute), "doc-b", "InProgress", "mi-1")
		mk("cmd-3", t0.Add(time.Minute), "AWS-RunShellScript", "Failed", "mi-0", "mi-1")
		mk("cmd-4", t0.Add(2*time.Minute), "doc-b", "Pending")

		tests := []struct {
			name string
			f    store.CommandFilter
			want []string
		}{
			{"all, newest first, ID breaks ties", store.CommandFilter{}, []string{"cmd-4", "cmd-3", "cmd-2", "cmd-1"}},
			{"command ID", store.CommandFilter{CommandID: "cmd-2"}, []string{"cmd-2"}},
			{"statuses", store.CommandFilter{Statuses: []string{"Success", "Failed"}}, []string{"cmd-3", "cmd-1"}},
			{"document", store.CommandFilter{DocumentName: "doc-b"}, []string{"cmd-4", "cmd-2"}},
			{"instance", store.CommandFilter{InstanceID: "mi-1"}, []string{"cmd-3", "cmd-2"}},
			{"instance and document", store.CommandFilter{InstanceID: "mi-0", DocumentName: "AWS-RunShellScript"}, []string{"cmd-3", "cmd-1"}},
			{"after is inclusive", store.CommandFilter{RequestedAfter: t0.Add(time.Minute)}, []string{"cmd-4", "cmd-3", "cmd-2"}},
			{"before is exclusive", store.CommandFilter{RequestedBefore: t0.Add(time.Minute)}, []string{"cmd-1"}},
			{"window", store.CommandFilter{RequestedAfter: t0.Add(time.Second), RequestedBefore: t0.Add(2 * time.Minute)}, []string{"cmd-3", "cmd-2"}},
			{"no match", store.CommandFilter{InstanceID: "mi-9"}, []string{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, next, err := s.ListCommands(ctx, tt.f)
				require.NoError(t, err)
				require.Empty(t, next)
				require.Equal(t, tt.want, commandIDs(got))
			})
		}
		for _, size := range []int{1, 2, 3, 4} {
			t.Run(fmt.Sprintf("pages of %d", size), func(t *testing.T) {
				var got []string
				tok := ""
				for range 10 {
					page, next, err := s.ListCommands(ctx, store.CommandFilter{MaxResults: size, NextToken: tok})
					require.NoError(t, err)
					got = append(got, commandIDs(page)...)
					if next == "" {
						break
					}
					tok = next
				}
				require.Equal(t, []string{"cmd-4", "cmd-3", "cmd-2", "cmd-1"}, got)
			})
		}
		for _, tok := range []string{"!!", "bm90LWEtdG9rZW4"} { // the second is "not-a-token"
			_, _, err := s.ListCommands(ctx, store.CommandFilter{NextToken: tok})
			require.ErrorIs(t, err, store.ErrInvalidArgument, tok)
		}
	})
}

func TestCreateInvocationsBulk(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		const n = 10000
		require.NoError(t, s.CreateCommand(ctx, newCommand("cmd-big", t0)))
		rows := make([]store.Invocation, n)
		for i := range rows {
			rows[i] = store.Invocation{
				InstanceID: instanceID(i), InstanceName: fmt.Sprintf("node-%d", i),
				DocumentName: "AWS-RunShellScript", Status: "Pending", StatusDetails: "Pending", RequestedAt: t0,
			}
		}
		start := time.Now()
		require.NoError(t, s.CreateInvocations(ctx, "cmd-big", rows))
		t.Logf("%d invocations inserted in %v", n, time.Since(start))
		c, err := s.GetCommand(ctx, "cmd-big")
		require.NoError(t, err)
		require.Equal(t, n, c.TargetCount)

		// A retried call, with a few more rows, leaves existing rows alone.
		changed, err := s.SetInvocationStatuses(ctx, "cmd-big",
			[]store.StatusChange{{InstanceID: instanceID(7), Status: "Delayed", StatusDetails: "Delayed"}}, nil, t0)
		require.NoError(t, err)
		require.Len(t, changed, 1)
		for i := n; i < n+5; i++ {
			rows = append(rows, store.Invocation{InstanceID: instanceID(i), Status: "Pending", StatusDetails: "Pending", RequestedAt: t0})
		}
		require.NoError(t, s.CreateInvocations(ctx, "cmd-big", rows))
		c, err = s.GetCommand(ctx, "cmd-big")
		require.NoError(t, err)
		require.Equal(t, n+5, c.TargetCount)
		require.Equal(t, "Delayed/Delayed", statusOf(t, s, key("cmd-big", instanceID(7))))
		counts, err := s.CountInvocations(ctx, "cmd-big")
		require.NoError(t, err)
		require.Equal(t, map[string]int{"Pending": n + 4, "Delayed": 1}, counts)

		inv, err := s.GetInvocation(ctx, key("cmd-big", instanceID(3)))
		require.NoError(t, err)
		require.Equal(t, -1, inv.ResponseCode)
		require.Equal(t, "node-3", inv.InstanceName)
		require.Equal(t, "cmd-big", inv.CommandID)

		require.ErrorIs(t, s.CreateInvocations(ctx, "nope", rows[:1]), store.ErrNotFound)
	})
}

func TestInvocationDeliveryFlow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		mi0, mi1, mi2 := instanceID(0), instanceID(1), instanceID(2)
		for _, id := range []string{mi0, mi1, mi2} {
			seedInstance(t, s, id, nil)
		}
		// mi1 is offline.
		_, err := s.MarkConnectionLost(ctx, t0.Add(time.Second))
		require.NoError(t, err)
		_, err = s.TouchInstances(ctx, []string{mi0, mi2}, t0.Add(time.Minute))
		require.NoError(t, err)

		c := newCommand("cmd-1", t0)
		c.MaxOutputBytes = 10
		seedCommand(t, s, c, mi0, mi1, mi2)
		k0, k1, k2 := key("cmd-1", mi0), key("cmd-1", mi1), key("cmd-1", mi2)

		outbox := func() []string {
			t.Helper()
			items, err := s.Outbox(ctx, 10)
			require.NoError(t, err)
			return outboxKeys(items)
		}
		gauges := func() [2]int {
			t.Helper()
			a, b, err := s.InvocationGauges(ctx)
			require.NoError(t, err)
			return [2]int{a, b}
		}
		require.Empty(t, outbox(), "nothing dispatched yet")
		require.Equal(t, [2]int{0, 0}, gauges())

		t1 := t0.Add(2 * time.Minute)
		require.NoError(t, s.QueueInvocations(ctx, "cmd-1", map[string]string{mi0: "p0", mi1: "p1", mi2: "p2", "mi-unknown": "px"}, t1))
		// Queuing again changes nothing: the payload was released already.
		require.NoError(t, s.QueueInvocations(ctx, "cmd-1", map[string]string{mi0: "changed"}, t1.Add(time.Second)))
		require.Equal(t, []string{"cmd-1:" + mi0 + "=p0", "cmd-1:" + mi2 + "=p2"}, outbox(), "only online instances")
		require.Equal(t, [2]int{0, 1}, gauges(), "mi1 queued while offline")
		inv, err := s.GetInvocation(ctx, k0)
		require.NoError(t, err)
		require.True(t, t1.Equal(*inv.DispatchedAt))
		limited, err := s.Outbox(ctx, 1)
		require.NoError(t, err)
		require.Len(t, limited, 1)

		require.NoError(t, s.MarkSent(ctx, []store.InvocationKey{k0, k2}, t1))
		require.Empty(t, outbox())
		un, err := s.Unacked(ctx, mi0)
		require.NoError(t, err)
		require.Equal(t, []string{"cmd-1:" + mi0 + "=p0"}, outboxKeys(un), "sent but not acknowledged")

		// The agent acknowledges and starts.
		t2 := t1.Add(time.Second)
		changed, err := s.AckInvocation(ctx, k0, t2, t2)
		require.NoError(t, err)
		require.Equal(t, &store.StatusChange{InstanceID: mi0, Status: "InProgress", StatusDetails: "In Progress"}, changed)
		changed, err = s.AckInvocation(ctx, k0, time.Time{}, t2.Add(time.Second))
		require.NoError(t, err)
		require.Nil(t, changed, "duplicate ack")
		_, err = s.AckInvocation(ctx, key("cmd-1", "mi-unknown"), t2, t2)
		require.ErrorIs(t, err, store.ErrNotFound)
		un, err = s.Unacked(ctx, mi0)
		require.NoError(t, err)
		require.Empty(t, un)
		require.Equal(t, [2]int{1, 1}, gauges())
		inv, err = s.GetInvocation(ctx, k0)
		require.NoError(t, err)
		require.True(t, t2.Equal(*inv.AckedAt))
		require.True(t, t2.Equal(*inv.StartedAt))

		// Output streaming, capped at 10 bytes.
		appends := []struct {
			name    string
			stream  string
			offset  int64
			data    string
			wantErr error
		}{
			{"first", "stdout", 0, "hello", nil},
			{"next", "stdout", 5, " wor", nil},
			{"resent after reconnect", "stdout", 0, "hello", nil},
			{"resent overlapping", "stdout", 5, " wor", nil},
			{"gap", "stdout", 20, "x", store.ErrInvalidArgument},
			{"reaches the cap", "stdout", 9, "ld!!", nil},
			{"after truncation", "stdout", 13, "more", nil},
			{"stderr cut at a character boundary", "stderr", 0, "abcdefghié", nil},
			{"unknown stream", "stdin", 0, "x", store.ErrInvalidArgument},
			{"negative offset", "stderr", -1, "x", store.ErrInvalidArgument},
		}
		for _, a := range appends {
			err := s.AppendOutput(ctx, k0, a.stream, a.offset, a.data, 10)
			if a.wantErr != nil {
				require.ErrorIs(t, err, a.wantErr, a.name)
			} else {
				require.NoError(t, err, a.name)
			}
		}
		require.ErrorIs(t, s.AppendOutput(ctx, key("cmd-1", "mi-unknown"), "stdout", 0, "x", 10), store.ErrNotFound)
		inv, err = s.GetInvocation(ctx, k0)
		require.NoError(t, err)
		require.Equal(t, "hello worl", inv.Stdout)
		require.True(t, inv.StdoutTruncated)
		require.Equal(t, "abcdefghi", inv.Stderr)
		require.True(t, inv.StderrTruncated)

		// Completion: the first terminal report wins.
		t3 := t2.Add(time.Minute)
		report := store.InvocationReport{
			Status: "Success", StatusDetails: "Success", ResponseCode: 0,
			StartedAt: t2, EndedAt: t3, StepResults: `[{"name":"run"}]`,
			Stdout: "hello world!!!",
		}
		applied, err := s.CompleteInvocation(ctx, k0, report, t3)
		require.NoError(t, err)
		require.True(t, applied)
		applied, err = s.CompleteInvocation(ctx, k0, store.InvocationReport{Status: "Failed", ResponseCode: 1}, t3)
		require.NoError(t, err)
		require.False(t, applied)
		inv, err = s.GetInvocation(ctx, k0)
		require.NoError(t, err)
		require.Equal(t, "Success/Success", inv.Status+"/"+inv.StatusDetails)
		require.Equal(t, 0, inv.ResponseCode)
		require.Equal(t, "hello worl", inv.Stdout)
		require.True(t, inv.StdoutTruncated)
		require.Equal(t, "abcdefghi", inv.Stderr, "empty report keeps the streamed stderr")
		require.Equal(t, `[{"name":"run"}]`, inv.StepResults)
		require.True(t, t3.Equal(*inv.EndedAt))

		// mi2 reports without ever acknowledging.
		applied, err = s.CompleteInvocation(ctx, k2, store.InvocationReport{
			Status: "Failed", StatusDetails: "Failed", ResponseCode: 2, EndedAt: t3, Stderr: "boom",
		}, t3)
		require.NoError(t, err)
		require.True(t, applied)
		inv, err = s.GetInvocation(ctx, k2)
		require.NoError(t, err)
		require.True(t, t3.Equal(*inv.AckedAt))
		require.Equal(t, "boom", inv.Stderr)
		require.False(t, inv.StderrTruncated)
		require.Equal(t, 2, inv.ResponseCode)

		_, err = s.CompleteInvocation(ctx, k1, store.InvocationReport{Status: "InProgress"}, t3)
		require.ErrorIs(t, err, store.ErrInvalidArgument)
		_, err = s.CompleteInvocation(ctx, key("cmd-1", "mi-unknown"), report, t3)
		require.ErrorIs(t, err, store.ErrNotFound)

		evs, err := s.InvocationEvents(ctx, "cmd-1", 0, 100)
		require.NoError(t, err)
		var got []string
		for _, e := range evs {
			got = append(got, e.InstanceID+" "+e.Status+"/"+e.StatusDetails)
		}
		require.Equal(t, []string{
			mi0 + " InProgress/In Progress",
			mi0 + " Success/Success",
			mi2 + " Failed/Failed",
		}, got)

		counts, err := s.CountInvocations(ctx, "cmd-1")
		require.NoError(t, err)
		require.Equal(t, map[string]int{"Success": 1, "Failed": 1, "Pending": 1}, counts)
		require.Equal(t, [2]int{0, 1}, gauges())

		// mi1 comes back: its invocation is in the outbox again.
		_, err = s.TouchInstances(ctx, []string{mi1}, t3)
		require.NoError(t, err)
		require.Equal(t, []string{"cmd-1:" + mi1 + "=p1"}, outbox())
		require.Equal(t, [2]int{0, 0}, gauges())
	})
}

func TestAppendOutputConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		insts := []string{instanceID(0), instanceID(1), instanceID(2)}
		seedCommand(t, s, newCommand("cmd-1", t0), insts...)
		const chunks = 30
		chunk := func(inst, stream string, i int) string {
			return fmt.Sprintf("%s %s %02d ünïcödé\n", inst, stream, i)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2*len(insts)*chunks*2)
		for _, inst := range insts {
			for _, stream := range []string{"stdout", "stderr"} {
				wg.Go(func() {
					var off int64
					for i := range chunks {
						data := chunk(inst, stream, i)
						errs <- s.AppendOutput(ctx, key("cmd-1", inst), stream, off, data, 0)
						// Resend it, as after a reconnect.
						errs <- s.AppendOutput(ctx, key("cmd-1", inst), stream, off, data, 0)
						off += int64(len(data))
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		for _, inst := range insts {
			inv, err := s.GetInvocation(ctx, key("cmd-1", inst))
			require.NoError(t, err)
			var wantOut, wantErr strings.Builder
			for i := range chunks {
				wantOut.WriteString(chunk(inst, "stdout", i))
				wantErr.WriteString(chunk(inst, "stderr", i))
			}
			require.Equal(t, wantOut.String(), inv.Stdout)
			require.Equal(t, wantErr.String(), inv.Stderr)
		}
	})
}

func TestAppendOutputSanitises(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		seedCommand(t, s, newCommand("cmd-1", t0), "mi-0")
		k := key("cmd-1", "mi-0")
		// "é" split across two chunks, and a NUL: byte offsets stay valid.
		require.NoError(t, s.AppendOutput(ctx, k, "stdout", 0, "a\xc3", 0))
		require.NoError(t, s.AppendOutput(ctx, k, "stdout", 2, "\xa9b\x00c", 0))
		inv, err := s.GetInvocation(ctx, k)
		require.NoError(t, err)
		require.Equal(t, "a??b?c", inv.Stdout)
	})
}

func TestSetInvocationStatuses(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		seedCommand(t, s, newCommand("cmd-1", t0), "mi-0", "mi-1", "mi-2", "mi-3")
		applied, err := s.CompleteInvocation(ctx, key("cmd-1", "mi-3"), store.InvocationReport{Status: "Success"}, t0)
		require.NoError(t, err)
		require.True(t, applied)

		delayed := func(ids ...string) []store.StatusChange {
			var cs []store.StatusChange
			for _, id := range ids {
				cs = append(cs, store.StatusChange{InstanceID: id, Status: "Delayed", StatusDetails: "Delayed"})
			}
			return cs
		}
		steps := []struct {
			name     string
			changes  []store.StatusChange
			onlyFrom []string
			want     []store.StatusChange
		}{
			{"delay pending ones", delayed("mi-1", "mi-0", "mi-3"), []string{"Pending"}, delayed("mi-1", "mi-0")},
			{"undeliverable only from pending", []store.StatusChange{
				{InstanceID: "mi-0", Status: "Failed", StatusDetails: "Undeliverable"},
				{InstanceID: "mi-2", Status: "Failed", StatusDetails: "Undeliverable"},
			}, []string{"Pending"}, []store.StatusChange{{InstanceID: "mi-2", Status: "Failed", StatusDetails: "Undeliverable"}}},
			{"terminate any non-terminal", []store.StatusChange{
				{InstanceID: "mi-0", Status: "Cancelled", StatusDetails: "Terminated"},
				{InstanceID: "mi-1", Status: "Cancelled", StatusDetails: "Terminated"},
				{InstanceID: "mi-2", Status: "Cancelled", StatusDetails: "Terminated"},
				{InstanceID: "mi-3", Status: "Cancelled", StatusDetails: "Terminated"},
				{InstanceID: "mi-9", Status: "Cancelled", StatusDetails: "Terminated"},
			}, nil, []store.StatusChange{
				{InstanceID: "mi-0", Status: "Cancelled", StatusDetails: "Terminated"},
				{InstanceID: "mi-1", Status: "Cancelled", StatusDetails: "Terminated"},
			}},
			{"nothing", nil, nil, nil},
		}
		for _, st := range steps {
			got, err := s.SetInvocationStatuses(ctx, "cmd-1", st.changes, st.onlyFrom, t0)
			require.NoError(t, err, st.name)
			require.Equal(t, st.want, got, st.name)
		}
		want := map[string]string{
			"mi-0": "Cancelled/Terminated", "mi-1": "Cancelled/Terminated",
			"mi-2": "Failed/Undeliverable", "mi-3": "Success/Success",
		}
		for id, w := range want {
			require.Equal(t, w, statusOf(t, s, key("cmd-1", id)), id)
		}
		evs, err := s.InvocationEvents(ctx, "cmd-1", 0, 0)
		require.NoError(t, err)
		require.Len(t, evs, 1+2+1+2)
	})
}

// expireFixture creates invocations of cmd-1 in every delivery state.
func expireFixture(t *testing.T, s *store.Store) {
	t.Helper()
	ctx := ctxT(t)
	seedCommand(t, s, newCommand("cmd-1", t0), "mi-0", "mi-1", "mi-2", "mi-3", "mi-4", "mi-5")
	// mi-0: pending, never dispatched. mi-1: dispatched, not sent.
	// mi-2: sent, not acknowledged. mi-3: acknowledged, running.
	// mi-4: finished. mi-5: acknowledged with a start time.
	require.NoError(t, s.QueueInvocations(ctx, "cmd-1", map[string]string{
		"mi-1": "p", "mi-2": "p", "mi-3": "p", "mi-4": "p", "mi-5": "p",
	}, t0))
	require.NoError(t, s.MarkSent(ctx, keys("cmd-1", "mi-2", "mi-3", "mi-4", "mi-5"), t0))
	_, err := s.AckInvocation(ctx, key("cmd-1", "mi-3"), time.Time{}, t0)
	require.NoError(t, err)
	_, err = s.AckInvocation(ctx, key("cmd-1", "mi-5"), t0, t0)
	require.NoError(t, err)
	applied, err := s.CompleteInvocation(ctx, key("cmd-1", "mi-4"), store.InvocationReport{Status: "Success"}, t0)
	require.NoError(t, err)
	require.True(t, applied)
}

func TestExpireInvocations(t *testing.T) {
	all := []string{"mi-0", "mi-1", "mi-2", "mi-3", "mi-4", "mi-5", "mi-unknown", "mi-0"}
	tests := []struct {
		name           string
		includeStarted bool
		want           []store.StatusChange
		wantEvents     int
	}{
		{"not started only", false, []store.StatusChange{
			{InstanceID: "mi-0", Status: "TimedOut", StatusDetails: "Delivery Timed Out"},
			{InstanceID: "mi-1", Status: "TimedOut", StatusDetails: "Delivery Timed Out"},
			{InstanceID: "mi-2", Status: "TimedOut", StatusDetails: "Delivery Timed Out"},
			{InstanceID: "mi-4", Status: "Success", StatusDetails: "Success"},
		}, 3},
		{"including started", true, []store.StatusChange{
			{InstanceID: "mi-0", Status: "TimedOut", StatusDetails: "Delivery Timed Out"},
			{InstanceID: "mi-1", Status: "TimedOut", StatusDetails: "Delivery Timed Out"},
			{InstanceID: "mi-2", Status: "TimedOut", StatusDetails: "Delivery Timed Out"},
			{InstanceID: "mi-3", Status: "TimedOut", StatusDetails: "Delivery Timed Out"},
			{InstanceID: "mi-4", Status: "Success", StatusDetails: "Success"},
			{InstanceID: "mi-5", Status: "TimedOut", StatusDetails: "Delivery Timed Out"},
		}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, s *store.Store) {
				ctx := ctxT(t)
				expireFixture(t, s)
				before, err := s.InvocationEvents(ctx, "cmd-1", 0, 0)
				require.NoError(t, err)
				got, err := s.ExpireInvocations(ctx, "cmd-1", all, "Delivery Timed Out", tt.includeStarted, t0.Add(time.Hour))
				require.NoError(t, err)
				require.Equal(t, tt.want, got)
				evs, err := s.InvocationEvents(ctx, "cmd-1", before[len(before)-1].ID, 0)
				require.NoError(t, err)
				require.Len(t, evs, tt.wantEvents)

				// A second run changes nothing and reports the same.
				again, err := s.ExpireInvocations(ctx, "cmd-1", all, "Delivery Timed Out", tt.includeStarted, t0.Add(2*time.Hour))
				require.NoError(t, err)
				require.Equal(t, tt.want, again)
				if !tt.includeStarted {
					require.Equal(t, "InProgress/In Progress", statusOf(t, s, key("cmd-1", "mi-3")))
				}
			})
		})
	}
}

func TestCancelInvocations(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for _, id := range []string{"mi-0", "mi-1", "mi-2", "mi-3", "mi-4", "mi-5"} {
			seedInstance(t, s, id, nil)
		}
		expireFixture(t, s)
		all := []string{"mi-0", "mi-1", "mi-2", "mi-3", "mi-4", "mi-5"}
		got, err := s.CancelInvocations(ctx, "cmd-1", all, t0.Add(time.Minute))
		require.NoError(t, err)
		require.Equal(t, []store.StatusChange{
			{InstanceID: "mi-0", Status: "Cancelled", StatusDetails: "Cancelled"},
			{InstanceID: "mi-1", Status: "Cancelled", StatusDetails: "Cancelled"},
		}, got, "never sent: cancelled at once")
		for id, want := range map[string]string{
			"mi-2": "Pending/Pending", "mi-3": "InProgress/In Progress",
			"mi-4": "Success/Success", "mi-5": "InProgress/In Progress",
		} {
			inv, err := s.GetInvocation(ctx, key("cmd-1", id))
			require.NoError(t, err)
			require.Equal(t, want, inv.Status+"/"+inv.StatusDetails, id)
			require.Equal(t, id != "mi-4", inv.CancelRequested, id)
		}

		items, err := s.Outbox(ctx, 10)
		require.NoError(t, err)
		require.Equal(t, []string{"cancel cmd-1:mi-2", "cancel cmd-1:mi-3", "cancel cmd-1:mi-5"}, outboxKeys(items))
		un, err := s.Unacked(ctx, "mi-2")
		require.NoError(t, err)
		require.Equal(t, []string{"cancel cmd-1:mi-2"}, outboxKeys(un), "no payload for a cancelled invocation")

		require.NoError(t, s.MarkCancelSent(ctx, keys("cmd-1", "mi-2", "mi-3", "mi-5"), t0.Add(time.Minute)))
		items, err = s.Outbox(ctx, 10)
		require.NoError(t, err)
		require.Empty(t, items)
		un, err = s.Unacked(ctx, "mi-3")
		require.NoError(t, err)
		require.Equal(t, []string{"cancel cmd-1:mi-3"}, outboxKeys(un), "a reconnecting agent gets the cancel again")

		again, err := s.CancelInvocations(ctx, "cmd-1", all, t0.Add(2*time.Minute))
		require.NoError(t, err)
		require.Empty(t, again)

		applied, err := s.CompleteInvocation(ctx, key("cmd-1", "mi-3"), store.InvocationReport{Status: "Cancelled"}, t0.Add(3*time.Minute))
		require.NoError(t, err)
		require.True(t, applied)
		un, err = s.Unacked(ctx, "mi-3")
		require.NoError(t, err)
		require.Empty(t, un)
	})
}

func TestInvocationEventsCursor(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		var insts []string
		for i := range 12 {
			insts = append(insts, instanceID(i))
		}
		seedCommand(t, s, newCommand("cmd-1", t0), insts...)
		seedCommand(t, s, newCommand("cmd-2", t0), insts...)
		// Writers on both commands, concurrently.
		var wg sync.WaitGroup
		errs := make([]error, len(insts))
		for i, inst := range insts {
			wg.Go(func() {
				cmd := []string{"cmd-1", "cmd-2"}[i%2]
				for _, c := range []string{"cmd-1", cmd} {
					if _, err := s.AckInvocation(ctx, key(c, inst), t0, t0); err != nil {
						errs[i] = err
						return
					}
				}
				_, errs[i] = s.CompleteInvocation(ctx, key("cmd-1", inst), store.InvocationReport{Status: "Success"}, t0)
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		var got []store.InvocationEvent
		var after int64
		for range 100 {
			page, err := s.InvocationEvents(ctx, "cmd-1", after, 5)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page), 5)
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1].ID
		}
		require.Len(t, got, 2*len(insts))
		perInstance := map[string][]string{}
		for i, e := range got {
			require.Equal(t, "cmd-1", e.CommandID)
			if i > 0 {
				require.Greater(t, e.ID, got[i-1].ID)
			}
			perInstance[e.InstanceID] = append(perInstance[e.InstanceID], e.Status)
		}
		for _, inst := range insts {
			require.Equal(t, []string{"InProgress", "Success"}, perInstance[inst], inst)
		}
		other, err := s.InvocationEvents(ctx, "cmd-2", 0, 100)
		require.NoError(t, err)
		require.Len(t, other, len(insts)/2)
	})
}

func TestListInvocations(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		older := newCommand("cmd-b", t0)
		newer := newCommand("cmd-a", t0.Add(time.Hour))
		newer.DocumentName = "doc-x"
		seedCommand(t, s, older, "mi-0", "mi-1", "mi-2")
		seedCommand(t, s, newer, "mi-1", "mi-3")
		require.NoError(t, s.QueueInvocations(ctx, "cmd-b", map[string]string{"mi-0": "payload"}, t0))
		require.NoError(t, s.AppendOutput(ctx, key("cmd-b", "mi-0"), "stdout", 0, "out", 0))
		applied, err := s.CompleteInvocation(ctx, key("cmd-b", "mi-0"), store.InvocationReport{Status: "Success", Stderr: "err"}, t0)
		require.NoError(t, err)
		require.True(t, applied)

		ids := func(invs []store.Invocation) []string {
			out := []string{}
			for _, i := range invs {
				out = append(out, i.CommandID+":"+i.InstanceID)
			}
			return out
		}
		all := []string{"cmd-a:mi-1", "cmd-a:mi-3", "cmd-b:mi-0", "cmd-b:mi-1", "cmd-b:mi-2"}
		tests := []struct {
			name string
			f    store.InvocationFilter
			want []string
		}{
			{"all", store.InvocationFilter{}, all},
			{"command", store.InvocationFilter{CommandID: "cmd-b"}, []string{"cmd-b:mi-0", "cmd-b:mi-1", "cmd-b:mi-2"}},
			{"instance", store.InvocationFilter{InstanceID: "mi-1"}, []string{"cmd-a:mi-1", "cmd-b:mi-1"}},
			{"status", store.InvocationFilter{Statuses: []string{"Success"}}, []string{"cmd-b:mi-0"}},
			{"document", store.InvocationFilter{DocumentName: "doc-x"}, []string{"cmd-a:mi-1", "cmd-a:mi-3"}},
			{"after", store.InvocationFilter{RequestedAfter: t0.Add(time.Minute)}, []string{"cmd-a:mi-1", "cmd-a:mi-3"}},
			{"before", store.InvocationFilter{RequestedBefore: t0.Add(time.Minute)}, []string{"cmd-b:mi-0", "cmd-b:mi-1", "cmd-b:mi-2"}},
			{"command and instance", store.InvocationFilter{CommandID: "cmd-a", InstanceID: "mi-3"}, []string{"cmd-a:mi-3"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, next, err := s.ListInvocations(ctx, tt.f)
				require.NoError(t, err)
				require.Empty(t, next)
				require.Equal(t, tt.want, ids(got))
			})
		}
		for _, size := range []int{1, 2, 4, 5} {
			t.Run(fmt.Sprintf("pages of %d", size), func(t *testing.T) {
				var got []string
				tok := ""
				for range 10 {
					page, next, err := s.ListInvocations(ctx, store.InvocationFilter{MaxResults: size, NextToken: tok})
					require.NoError(t, err)
					got = append(got, ids(page)...)
					if next == "" {
						break
					}
					tok = next
				}
				require.Equal(t, all, got)
			})
		}
		got, _, err := s.ListInvocations(ctx, store.InvocationFilter{CommandID: "cmd-b", InstanceID: "mi-0"})
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, "Success", got[0].Status)
		require.Empty(t, got[0].Stdout, "lists leave output out")
		require.Empty(t, got[0].Stderr)
		require.Empty(t, got[0].Payload)
		require.NotNil(t, got[0].DispatchedAt)
		full, err := s.GetInvocation(ctx, key("cmd-b", "mi-0"))
		require.NoError(t, err)
		require.Equal(t, "out", full.Stdout)
		require.Equal(t, "err", full.Stderr)
		require.Equal(t, "payload", full.Payload)
		_, err = s.GetInvocation(ctx, key("cmd-b", "mi-9"))
		require.ErrorIs(t, err, store.ErrNotFound)

		_, _, err = s.ListInvocations(ctx, store.InvocationFilter{NextToken: "!!"})
		require.ErrorIs(t, err, store.ErrInvalidArgument)
	})
}

func TestClaimForSendingLosesToCancel(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := ctxT(t)
		now := time.Now()
		cmdID, ids := "cmd-claim", []string{"mi-00000000000000a01", "mi-00000000000000a02"}
		seedCommand(t, st, newCommand(cmdID, now), ids...)
		require.NoError(t, st.QueueInvocations(ctx, cmdID, map[string]string{ids[0]: "p0", ids[1]: "p1"}, now))
		// A cancel lands after the outbox read, before the send.
		if _, err := st.CancelInvocations(ctx, cmdID, ids[:1], now); err != nil {
			t.Fatal(err)
		}
		keys := []store.InvocationKey{{CommandID: cmdID, InstanceID: ids[0]}, {CommandID: cmdID, InstanceID: ids[1]}}
		claimed, err := st.ClaimForSending(ctx, keys, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(claimed) != 1 || claimed[0].InstanceID != ids[1] {
			t.Fatalf("claimed %+v, want only the uncancelled invocation", claimed)
		}
		// A second replica claiming the same items gets nothing.
		if again, err := st.ClaimForSending(ctx, keys, now); err != nil || len(again) != 0 {
			t.Errorf("second claim %+v, %v; want none", again, err)
		}
	})
}

func TestAckInvocationsBatch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		seedCommand(t, s, newCommand("cmd-b", t0), "mi-0", "mi-1", "mi-2")
		seedCommand(t, s, newCommand("cmd-a", t0), "mi-0", "mi-1")
		t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
		// mi-1 of cmd-a was acknowledged before; mi-2 of cmd-b is finished.
		_, err := s.AckInvocation(ctx, key("cmd-a", "mi-1"), t0, t0)
		require.NoError(t, err)
		applied, err := s.CompleteInvocation(ctx, key("cmd-b", "mi-2"), store.InvocationReport{Status: "Failed"}, t0)
		require.NoError(t, err)
		require.True(t, applied)
		beforeA, beforeB := eventsSince(t, s, "cmd-a", 0), eventsSince(t, s, "cmd-b", 0)

		acks := []store.InvocationAck{
			{InvocationKey: key("cmd-b", "mi-0"), StartedAt: t1},
			{InvocationKey: key("cmd-a", "mi-0")},                // not started yet
			{InvocationKey: key("cmd-b", "mi-0"), StartedAt: t2}, // repeated: changes nothing
			{InvocationKey: key("cmd-b", "mi-unknown"), StartedAt: t1},
			{InvocationKey: key("cmd-a", "mi-1"), StartedAt: t1}, // running already
			{InvocationKey: key("cmd-b", "mi-2"), StartedAt: t1}, // finished already
			{InvocationKey: key("cmd-unknown", "mi-0")},
			{InvocationKey: key("cmd-b", "mi-1")},
		}
		out, err := s.AckInvocations(ctx, acks, t2)
		require.NoError(t, err)
		require.Len(t, out, len(acks))
		inProgress := func(id string) *store.StatusChange {
			return &store.StatusChange{InstanceID: id, Status: "InProgress", StatusDetails: "In Progress"}
		}
		wantChange := []*store.StatusChange{inProgress("mi-0"), inProgress("mi-0"), nil, nil, nil, nil, nil, inProgress("mi-1")}
		wantNotFound := []bool{false, false, false, true, false, false, true, false}
		for i := range acks {
			require.Equal(t, wantChange[i], out[i].Change, "ack %d", i)
			if wantNotFound[i] {
				require.ErrorIs(t, out[i].Err, store.ErrNotFound, "ack %d", i)
			} else {
				require.NoError(t, out[i].Err, "ack %d", i)
			}
		}

		tests := []struct {
			k           store.InvocationKey
			wantStatus  string
			wantStarted time.Time
			wantAcked   time.Time
		}{
			{key("cmd-b", "mi-0"), "InProgress/In Progress", t1, t2},
			{key("cmd-b", "mi-1"), "InProgress/In Progress", time.Time{}, t2},
			{key("cmd-b", "mi-2"), "Failed/Failed", t1, t0},
			{key("cmd-a", "mi-0"), "InProgress/In Progress", time.Time{}, t2},
			{key("cmd-a", "mi-1"), "InProgress/In Progress", t0, t0},
		}
		for _, tt := range tests {
			inv, err := s.GetInvocation(ctx, tt.k)
			require.NoError(t, err)
			require.Equal(t, tt.wantStatus, inv.Status+"/"+inv.StatusDetails, tt.k)
			require.True(t, tt.wantAcked.Equal(*inv.AckedAt), tt.k)
			require.NotNil(t, inv.SentAt, tt.k)
			if tt.wantStarted.IsZero() {
				require.Nil(t, inv.StartedAt, tt.k)
			} else {
				require.True(t, tt.wantStarted.Equal(*inv.StartedAt), "%v: started %v", tt.k, inv.StartedAt)
			}
		}
		require.Equal(t, append(beforeB, "mi-0 InProgress", "mi-1 InProgress"), eventsSince(t, s, "cmd-b", 0))
		require.Equal(t, append(beforeA, "mi-0 InProgress"), eventsSince(t, s, "cmd-a", 0))

		// An empty batch is no error.
		out, err = s.AckInvocations(ctx, nil, t2)
		require.NoError(t, err)
		require.Empty(t, out)
	})
}

// eventsSince returns "instance status" of commandID's events after ID
// after.
func eventsSince(t *testing.T, s *store.Store, commandID string, after int64) []string {
	t.Helper()
	evs, err := s.InvocationEvents(ctxT(t), commandID, after, 1000)
	require.NoError(t, err)
	got := []string{}
	for _, e := range evs {
		got = append(got, e.InstanceID+" "+e.Status)
	}
	return got
}

func TestCompleteInvocationsBatch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		cb := newCommand("cmd-b", t0)
		cb.MaxOutputBytes = 5
		seedCommand(t, s, cb, "mi-0", "mi-1", "mi-2", "mi-3")
		seedCommand(t, s, newCommand("cmd-a", t0), "mi-0", "mi-1")
		t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
		applied, err := s.CompleteInvocation(ctx, key("cmd-b", "mi-2"), store.InvocationReport{Status: "Failed"}, t0)
		require.NoError(t, err)
		require.True(t, applied)
		require.NoError(t, s.AppendOutput(ctx, key("cmd-b", "mi-3"), "stdout", 0, "streamed", 5))
		require.NoError(t, s.AppendOutput(ctx, key("cmd-b", "mi-3"), "stderr", 0, "e", 5))
		cmdBEvents := eventsSince(t, s, "cmd-b", 0)

		success := store.InvocationReport{Status: "Success", ResponseCode: 0, StartedAt: t1, EndedAt: t2, StepResults: `[]`, Stdout: "hello world"}
		reports := []store.InvocationCompletion{
			{InvocationKey: key("cmd-b", "mi-0"), Report: success},
			{InvocationKey: key("cmd-a", "mi-1"), Report: store.InvocationReport{Status: "TimedOut", StatusDetails: "Execution Timed Out", ResponseCode: 124}},
			{InvocationKey: key("cmd-b", "mi-0"), Report: store.InvocationReport{Status: "Failed", ResponseCode: 1}}, // the first wins
			{InvocationKey: key("cmd-b", "mi-2"), Report: success},                                                   // terminal already
			{InvocationKey: key("cmd-b", "mi-unknown"), Report: success},
			{InvocationKey: key("cmd-a", "mi-0"), Report: store.InvocationReport{Status: "InProgress"}}, // not terminal
			{InvocationKey: key("cmd-b", "mi-3"), Report: store.InvocationReport{Status: "Failed", ResponseCode: 2, Stdout: "str", Stderr: "error"}},
			{InvocationKey: key("cmd-unknown", "mi-0"), Report: success},
		}
		out, err := s.CompleteInvocations(ctx, reports, t2)
		require.NoError(t, err)
		require.Len(t, out, len(reports))
		wantApplied := []bool{true, true, false, false, false, false, true, false}
		wantErr := []error{nil, nil, nil, nil, store.ErrNotFound, store.ErrInvalidArgument, nil, store.ErrNotFound}
		for i := range reports {
			require.Equal(t, wantApplied[i], out[i].Applied, "report %d", i)
			if wantErr[i] != nil {
				require.ErrorIs(t, out[i].Err, wantErr[i], "report %d", i)
			} else {
				require.NoError(t, out[i].Err, "report %d", i)
			}
		}

		tests := []struct {
			k                     store.InvocationKey
			want                  string
			code                  int
			stdout, stderr        string
			stdoutTrunc, errTrunc bool
		}{
			{key("cmd-b", "mi-0"), "Success/Success", 0, "hello", "", true, false},
			{key("cmd-b", "mi-1"), "Pending/Pending", -1, "", "", false, false},
			{key("cmd-b", "mi-2"), "Failed/Failed", 0, "", "", false, false},
			// The streamed stdout is longer than the report's; stderr is not.
			{key("cmd-b", "mi-3"), "Failed/Failed", 2, "strea", "error", true, false},
			{key("cmd-a", "mi-0"), "Pending/Pending", -1, "", "", false, false},
			{key("cmd-a", "mi-1"), "TimedOut/Execution Timed Out", 124, "", "", false, false},
		}
		for _, tt := range tests {
			inv, err := s.GetInvocation(ctx, tt.k)
			require.NoError(t, err)
			got := fmt.Sprintf("%s/%s %d %q %q %v %v", inv.Status, inv.StatusDetails, inv.ResponseCode, inv.Stdout, inv.Stderr, inv.StdoutTruncated, inv.StderrTruncated)
			want := fmt.Sprintf("%s %d %q %q %v %v", tt.want, tt.code, tt.stdout, tt.stderr, tt.stdoutTrunc, tt.errTrunc)
			require.Equal(t, want, got, tt.k)
		}
		inv, err := s.GetInvocation(ctx, key("cmd-b", "mi-0"))
		require.NoError(t, err)
		require.True(t, t1.Equal(*inv.StartedAt))
		require.True(t, t2.Equal(*inv.EndedAt))
		require.True(t, t2.Equal(*inv.AckedAt))
		require.Equal(t, `[]`, inv.StepResults)
		inv, err = s.GetInvocation(ctx, key("cmd-a", "mi-1"))
		require.NoError(t, err)
		require.Nil(t, inv.StartedAt, "a zero time keeps the column")
		require.Nil(t, inv.EndedAt)

		// Events exactly for the applied reports.
		require.Equal(t, append(cmdBEvents, "mi-0 Success", "mi-3 Failed"), eventsSince(t, s, "cmd-b", 0))
		require.Equal(t, []string{"mi-1 TimedOut"}, eventsSince(t, s, "cmd-a", 0))
	})
}

// TestBatchesConcurrent runs overlapping batches over the same commands in
// opposite input orders: sorted lock order means no deadlock on
// PostgreSQL, and every invocation ends with exactly one terminal event.
func TestBatchesConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		var insts []string
		for i := range 50 {
			insts = append(insts, fmt.Sprintf("mi-%02d", i))
		}
		cmds := []string{"cmd-a", "cmd-b", "cmd-c"}
		for _, c := range cmds {
			seedCommand(t, s, newCommand(c, t0), insts...)
		}
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for w := range 8 {
			wg.Go(func() {
				var acks []store.InvocationAck
				var reports []store.InvocationCompletion
				for _, c := range cmds {
					for _, inst := range insts {
						k := key(c, inst)
						acks = append(acks, store.InvocationAck{InvocationKey: k, StartedAt: t0})
						reports = append(reports, store.InvocationCompletion{InvocationKey: k, Report: store.InvocationReport{Status: "Success"}})
					}
				}
				if w%2 == 1 {
					slices.Reverse(acks)
					slices.Reverse(reports)
				}
				if _, err := s.AckInvocations(ctx, acks, t0); err != nil {
					errs[w] = err
					return
				}
				_, errs[w] = s.CompleteInvocations(ctx, reports, t0)
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		for _, c := range cmds {
			counts, err := s.CountInvocations(ctx, c)
			require.NoError(t, err)
			require.Equal(t, map[string]int{"Success": len(insts)}, counts)
			evs := eventsSince(t, s, c, 0)
			require.Len(t, evs, 2*len(insts), "one InProgress and one Success event each")
		}
	})
}
