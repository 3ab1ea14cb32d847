package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/gateway"
	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
)

// countingStore records the size of every batch the relay writes.
type countingStore struct {
	*store.Store
	mu          sync.Mutex
	ackBatches  []int
	doneBatches []int
}

func (c *countingStore) AckInvocations(ctx context.Context, acks []store.InvocationAck, now time.Time) ([]store.AckOutcome, error) {
	c.mu.Lock()
	c.ackBatches = append(c.ackBatches, len(acks))
	c.mu.Unlock()
	return c.Store.AckInvocations(ctx, acks, now)
}

func (c *countingStore) CompleteInvocations(ctx context.Context, reports []store.InvocationCompletion, now time.Time) ([]store.CompletionOutcome, error) {
	c.mu.Lock()
	c.doneBatches = append(c.doneBatches, len(reports))
	c.mu.Unlock()
	return c.Store.CompleteInvocations(ctx, reports, now)
}

func (c *countingStore) batches() (acks, results []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.ackBatches...), append([]int(nil), c.doneBatches...)
}

// testAgent is a minimal agent: it acknowledges every RunCommand once,
// streams one output chunk, reports Success and records the result
// confirmations it gets.
type testAgent struct {
	t  testing.TB
	id string
	ws *websocket.Conn
	st *store.Store

	mu        sync.Mutex
	seen      map[string]bool // invocation IDs run
	confirmed map[string]int  // invocation ID → command_result_ack count
	early     []string        // confirmations that came before the result was stored
}

func instanceID(i int) string { return fmt.Sprintf("mi-%017x", i) }

// connectAgent dials the gateway as instance id and completes the
// handshake; the agent runs until the test ends.
func connectAgent(t testing.TB, ctx context.Context, url, id string, st *store.Store) *testAgent {
	t.Helper()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/agent?instance="+id, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ws.CloseNow() })
	ws.SetReadLimit(agentproto.MaxMessageBytes)
	a := &testAgent{t: t, id: id, ws: ws, st: st, seen: map[string]bool{}, confirmed: map[string]int{}}
	a.send(ctx, agentproto.TypeHello, agentproto.Hello{ProtocolVersion: agentproto.ProtocolVersion})
	var env agentproto.Envelope
	require.NoError(t, wsjson.Read(ctx, ws, &env))
	require.Equal(t, agentproto.TypeWelcome, env.Type)
	go a.run(ctx)
	return a
}

func (a *testAgent) send(ctx context.Context, typ string, payload any) {
	env, err := agentproto.NewEnvelope(typ, payload)
	if err == nil {
		err = wsjson.Write(ctx, a.ws, env)
	}
	if err != nil && ctx.Err() == nil {
		a.t.Errorf("agent %s: send %s: %v", a.id, typ, err)
	}
}

func (a *testAgent) run(ctx context.Context) {
	for {
		var env agentproto.Envelope
		if err := wsjson.Read(ctx, a.ws, &env); err != nil {
			return
		}
		switch env.Type {
		case agentproto.TypeRunCommand:
			var rc agentproto.RunCommand
			if err := env.Decode(&rc); err != nil {
				a.t.Errorf("agent %s: %v", a.id, err)
				return
			}
			a.mu.Lock()
			dup := a.seen[rc.InvocationID]
			a.seen[rc.InvocationID] = true
			a.mu.Unlock()
			if dup {
				continue
			}
			// Each message in its own goroutine would reorder them; the
			// agent's single writer keeps ack, output, result in order.
			start := time.Now().UTC()
			a.send(ctx, agentproto.TypeCommandAck, agentproto.CommandAck{InvocationID: rc.InvocationID, StartedAt: start})
			a.send(ctx, agentproto.TypeCommandOutput, agentproto.CommandOutput{
				InvocationID: rc.InvocationID, Step: "run", Stream: agentproto.StreamStdout, Data: "out " + rc.InvocationID,
			})
			a.send(ctx, agentproto.TypeCommandResult, agentproto.CommandResult{
				InvocationID: rc.InvocationID, Status: agentproto.StatusSuccess,
				StartedAt: start, EndedAt: start.Add(time.Millisecond),
				Steps: []agentproto.StepResult{{Name: "run", Status: agentproto.StatusSuccess, StartedAt: start, EndedAt: start.Add(time.Millisecond)}},
			})
		case agentproto.TypeCommandResultAck:
			var ack agentproto.CommandResultAck
			if err := env.Decode(&ack); err != nil {
				a.t.Errorf("agent %s: %v", a.id, err)
				return
			}
			cmd, inst, _ := strings.Cut(ack.InvocationID, ":")
			inv, err := a.st.GetInvocation(ctx, store.InvocationKey{CommandID: cmd, InstanceID: inst})
			a.mu.Lock()
			// A result for a deleted command is confirmed without a row.
			if (err == nil && inv.Status != "Success") || (err != nil && !errors.Is(err, store.ErrNotFound)) {
				a.early = append(a.early, ack.InvocationID)
			}
			a.confirmed[ack.InvocationID]++
			a.mu.Unlock()
		}
	}
}

func (a *testAgent) confirmations() (map[string]int, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := make(map[string]int, len(a.confirmed))
	for k, v := range a.confirmed {
		m[k] = v
	}
	return m, append([]string(nil), a.early...)
}

// startRelay runs a gateway and its command relay on st behind an
// httptest server that trusts the instance ID in the query; the returned
// func stops them and fails the test unless Run returns promptly.
func startRelay(t *testing.T, ctx context.Context, st gateway.CommandStore, gs gateway.Store, cfg gateway.RelayConfig) (string, *prometheus.Registry, func()) {
	t.Helper()
	reg := prometheus.NewRegistry()
	g, err := gateway.New(gateway.Config{Store: gs, Registerer: reg})
	require.NoError(t, err)
	cfg.Store, cfg.Registerer = st, reg
	cfg.PollInterval = 10 * time.Millisecond
	relay, err := gateway.NewCommandRelay(g, cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.Serve(w, r, r.URL.Query().Get("instance"))
	}))
	t.Cleanup(srv.Close)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- g.Run(runCtx) }()
	go func() { done <- relay.Run(runCtx) }()
	stop := func() {
		cancel()
		for range 2 {
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(10 * time.Second):
				t.Fatal("gateway or relay did not stop")
			}
		}
	}
	return srv.URL, reg, stop
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestRelayBatchesAcksAndResults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := storetest.OpenDialect(t, store.DialectSQLite)
	cs := &countingStore{Store: st}
	const agents, commands, flushSize = 20, 10, 64

	now := time.Now().UTC()
	require.NoError(t, st.CreateActivation(ctx, &store.Activation{
		ID: "act", CodeHash: store.HashSecret("code"), RegistrationLimit: agents, ExpiresAt: now.Add(time.Hour),
	}))
	var ids []string
	for i := range agents {
		id := instanceID(i)
		ids = append(ids, id)
		require.NoError(t, st.RegisterInstance(ctx, "act", store.HashSecret("code"),
			&store.Instance{InstanceID: id, SecretHash: store.HashSecret("s")}, now))
	}
	url, reg, stop := startRelay(t, ctx, cs, st, gateway.RelayConfig{FlushSize: flushSize, FlushDelay: 20 * time.Millisecond})
	var fleet []*testAgent
	for _, id := range ids {
		fleet = append(fleet, connectAgent(t, ctx, url, id, st))
	}

	// 200 invocations, released for delivery at once.
	var invocations []store.InvocationKey
	for c := range commands {
		cmdID := fmt.Sprintf("cmd-%02d", c)
		require.NoError(t, st.CreateCommand(ctx, &store.Command{CommandID: cmdID, DocumentName: "doc", MaxOutputBytes: 1000, RequestedAt: now}))
		rows := make([]store.Invocation, 0, agents)
		payloads := map[string]string{}
		for _, id := range ids {
			rows = append(rows, store.Invocation{InstanceID: id, DocumentName: "doc"})
			b, err := json.Marshal(agentproto.RunCommand{InvocationID: cmdID + ":" + id, CommandID: cmdID, DocumentName: "doc"})
			require.NoError(t, err)
			payloads[id] = string(b)
			invocations = append(invocations, store.InvocationKey{CommandID: cmdID, InstanceID: id})
		}
		require.NoError(t, st.CreateInvocations(ctx, cmdID, rows))
		require.NoError(t, st.QueueInvocations(ctx, cmdID, payloads, now))
	}

	require.Eventually(t, func() bool {
		n := 0
		for _, a := range fleet {
			m, _ := a.confirmations()
			n += len(m)
		}
		return n == len(invocations)
	}, 30*time.Second, 10*time.Millisecond, "every result confirmed")

	for _, k := range invocations {
		inv, err := st.GetInvocation(ctx, k)
		require.NoError(t, err)
		require.Equal(t, "Success", inv.Status, k)
		require.NotNil(t, inv.AckedAt, k)
		require.NotNil(t, inv.StartedAt, k)
		require.Equal(t, "out "+k.CommandID+":"+k.InstanceID, inv.Stdout, k)
		evs, err := st.InvocationEvents(ctx, k.CommandID, 0, 1000)
		require.NoError(t, err)
		var got []string
		for _, e := range evs {
			if e.InstanceID == k.InstanceID {
				got = append(got, e.Status)
			}
		}
		require.Equal(t, []string{"InProgress", "Success"}, got, k)
	}
	require.Equal(t, float64(len(invocations)), counterValue(t, reg, "fleetops_invocation_results_total", "Success"))

	// A resent result (the agent missed the confirmation) is confirmed
	// again but counted once; one for a deleted command is confirmed too.
	a := fleet[0]
	for _, inv := range []string{"cmd-00:" + a.id, "cmd-gone:" + a.id} {
		a.send(ctx, agentproto.TypeCommandResult, agentproto.CommandResult{InvocationID: inv, Status: agentproto.StatusFailed})
	}
	require.Eventually(t, func() bool {
		m, _ := a.confirmations()
		return m["cmd-00:"+a.id] == 2 && m["cmd-gone:"+a.id] == 1
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, float64(len(invocations)), counterValue(t, reg, "fleetops_invocation_results_total", "Success"))
	require.Zero(t, counterValue(t, reg, "fleetops_invocation_results_total", "Failed"))

	for _, a := range fleet {
		m, early := a.confirmations()
		require.Empty(t, early, "confirmed before stored")
		for inv, n := range m {
			if inv != "cmd-00:"+fleet[0].id {
				require.Equal(t, 1, n, inv)
			}
		}
	}

	stop()
	ackBatches, resultBatches := cs.batches()
	sum := func(xs []int) int {
		n := 0
		for _, x := range xs {
			require.LessOrEqual(t, x, flushSize)
			n += x
		}
		return n
	}
	require.Equal(t, len(invocations), sum(ackBatches))
	require.Equal(t, len(invocations)+2, sum(resultBatches))
	require.Less(t, len(resultBatches), len(invocations)/2, "results are written in batches: %v", resultBatches)
	t.Logf("ack batches %v, result batches %v", ackBatches, resultBatches)
}

// blockingStore holds every result write until released.
type blockingStore struct {
	*store.Store
	entered chan struct{} // receives when a result write starts
}

func (b *blockingStore) CompleteInvocations(ctx context.Context, reports []store.InvocationCompletion, now time.Time) ([]store.CompletionOutcome, error) {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestRelayStopsWithWriteInFlight checks that Run returns when its context
// ends even while a write waits, and that nothing is confirmed unless it
// was stored.
func TestRelayStopsWithWriteInFlight(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st := storetest.OpenDialect(t, store.DialectSQLite)
	bs := &blockingStore{Store: st, entered: make(chan struct{}, 1)}
	now := time.Now().UTC()
	require.NoError(t, st.CreateActivation(ctx, &store.Activation{
		ID: "act", CodeHash: store.HashSecret("code"), RegistrationLimit: 1, ExpiresAt: now.Add(time.Hour),
	}))
	id := instanceID(1)
	require.NoError(t, st.RegisterInstance(ctx, "act", store.HashSecret("code"),
		&store.Instance{InstanceID: id, SecretHash: store.HashSecret("s")}, now))
	require.NoError(t, st.CreateCommand(ctx, &store.Command{CommandID: "cmd-1", DocumentName: "doc", RequestedAt: now}))
	require.NoError(t, st.CreateInvocations(ctx, "cmd-1", []store.Invocation{{InstanceID: id, DocumentName: "doc"}}))

	url, _, stop := startRelay(t, ctx, bs, st, gateway.RelayConfig{})
	a := connectAgent(t, ctx, url, id, st)
	a.send(ctx, agentproto.TypeCommandResult, agentproto.CommandResult{InvocationID: "cmd-1:" + id, Status: agentproto.StatusSuccess})
	select {
	case <-bs.entered:
	case <-ctx.Done():
		t.Fatal("result never written")
	}
	stop() // Run returns although the write never completes
	m, _ := a.confirmations()
	require.Empty(t, m, "confirmed a result that was not stored")
}
