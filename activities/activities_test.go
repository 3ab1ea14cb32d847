package activities_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/fleetops/fleetops/activities"
	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
	"github.com/fleetops/fleetops/workflows"
)

// registerNode adds an instance through a one-use activation.
func registerNode(t *testing.T, st *store.Store, id, platform, ping string) {
	t.Helper()
	ctx := context.Background()
	act := &store.Activation{ID: "act-" + id, CodeHash: store.HashSecret("code"), RegistrationLimit: 1, ExpiresAt: time.Now().Add(time.Hour)}
	if err := st.CreateActivation(ctx, act); err != nil {
		t.Fatal(err)
	}
	inst := &store.Instance{InstanceID: id, SecretHash: store.HashSecret("s"), PingStatus: ping, PlatformType: platform}
	if err := st.RegisterInstance(ctx, act.ID, store.HashSecret("code"), inst, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestDispatchSettlesWhatCannotBeDelivered(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		const (
			online  = "mi-00000000000000001"
			offline = "mi-00000000000000002"
			gone    = "mi-00000000000000003"
			windows = "mi-00000000000000004"
			unknown = "mi-00000000000000005"
		)
		registerNode(t, st, online, "Linux", store.PingOnline)
		registerNode(t, st, offline, "Linux", store.PingConnectionLost)
		registerNode(t, st, gone, "Linux", store.PingOnline)
		registerNode(t, st, windows, "Windows", store.PingOnline)
		if err := st.DeregisterInstance(ctx, gone); err != nil {
			t.Fatal(err)
		}
		steps, _ := json.Marshal(map[string][]agentproto.Step{"Linux": {{Name: "s", Action: "aws:runShellScript", Inputs: json.RawMessage(`{"runCommand":["true"]}`)}}})
		cmd := &store.Command{CommandID: "00000000-0000-4000-8000-000000000001", DocumentName: "AWS-RunShellScript", Steps: string(steps),
			Status: workflows.StatusPending, StatusDetails: workflows.DetailsPending, MaxOutputBytes: 1024, RequestedAt: time.Now()}
		if err := st.CreateCommand(ctx, cmd); err != nil {
			t.Fatal(err)
		}
		woken := 0
		acts, err := activities.New(activities.Config{Store: st, Wake: func() { woken++ }})
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{online, offline, gone, windows, unknown}
		res, err := acts.ResolveTargets(ctx, workflows.ResolveTargetsInput{CommandID: cmd.CommandID, InstanceIDs: ids})
		if err != nil || len(res.InstanceIDs) != 5 {
			t.Fatalf("resolve: %v %v", res, err)
		}
		if err := acts.DispatchInvocations(ctx, workflows.DispatchInput{CommandID: cmd.CommandID, InstanceIDs: ids}); err != nil {
			t.Fatal(err)
		}
		if woken != 1 {
			t.Errorf("gateway woken %d times, want 1", woken)
		}
		got, err := acts.AwaitResults(ctx, workflows.AwaitResultsInput{CommandID: cmd.CommandID, MaxWait: time.Second, MaxResults: 100})
		if err != nil {
			t.Fatal(err)
		}
		status := map[string]string{}
		for _, r := range got.Results {
			status[r.InstanceID] = r.Status + "/" + r.StatusDetails
		}
		want := map[string]string{
			offline: "Delayed/Delayed",
			gone:    "Failed/Undeliverable",
			windows: "Failed/Invalid Platform",
			unknown: "Failed/Undeliverable",
		}
		for id, w := range want {
			if status[id] != w {
				t.Errorf("%s: %q, want %q", id, status[id], w)
			}
		}
		if _, ok := status[online]; ok {
			t.Errorf("online node reported %q before its agent acknowledged", status[online])
		}
		// The online node's invocation is in the outbox with its payload.
		items, err := st.Outbox(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 1 || items[0].InstanceID != online {
			t.Fatalf("outbox %+v, want only the online node", items)
		}
		var rc agentproto.RunCommand
		if err := json.Unmarshal([]byte(items[0].Payload), &rc); err != nil || rc.InvocationID != agentproto.InvocationID(cmd.CommandID, online) || rc.MaxOutputBytes != 1024 {
			t.Errorf("payload %s (%v)", items[0].Payload, err)
		}
	})
}

// eventsOnly is a store whose only data is a fixed event list; the rest of
// the interface is unused by AwaitResults.
type eventsOnly struct {
	activities.Store
	events func() []store.InvocationEvent
}

func (e eventsOnly) InvocationEvents(_ context.Context, _ string, after int64, limit int) ([]store.InvocationEvent, error) {
	var out []store.InvocationEvent
	for _, ev := range e.events() {
		if ev.ID > after && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func TestAwaitResultsBatches(t *testing.T) {
	ev := func(id int64) store.InvocationEvent {
		return store.InvocationEvent{ID: id, InstanceID: fmt.Sprintf("mi-%017d", id), Status: "Success", StatusDetails: "Success"}
	}
	tests := []struct {
		name       string
		arrivals   [][]store.InvocationEvent // what each successive poll sees appear
		max        int
		wantCursor int64
		wantN      int
		// returnAfter is the changes the workflow waits for (a ramp batch's
		// acknowledgements); 0 for none.
		returnAfter int
	}{
		// IDs interleave with other commands' events: gaps are normal.
		{"interleaved IDs", [][]store.InvocationEvent{{ev(4), ev(9), ev(30)}}, 10, 30, 3, 0},
		{"burst then quiet", [][]store.InvocationEvent{{ev(1)}, {ev(2), ev(3)}, {}, {ev(4)}}, 10, 3, 3, 0},
		{"capped", [][]store.InvocationEvent{{ev(1), ev(2), ev(3)}}, 2, 2, 2, 0},
		{"awaited changes arrived: no wait for the burst's end", [][]store.InvocationEvent{{ev(1)}, {ev(2)}, {ev(3)}}, 10, 2, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen []store.InvocationEvent
			poll := 0
			acts, err := activities.New(activities.Config{
				Store: eventsOnly{events: func() []store.InvocationEvent {
					if poll < len(tt.arrivals) {
						seen = append(seen, tt.arrivals[poll]...)
					}
					poll++
					return seen
				}},
				PollInterval: time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := acts.AwaitResults(context.Background(), workflows.AwaitResultsInput{MaxWait: time.Second, Linger: time.Second, MaxResults: tt.max, ReturnAfter: tt.returnAfter})
			if err != nil {
				t.Fatal(err)
			}
			if got.Cursor != tt.wantCursor || len(got.Results) != tt.wantN {
				t.Errorf("cursor %d with %d results, want %d with %d", got.Cursor, len(got.Results), tt.wantCursor, tt.wantN)
			}
		})
	}
}
