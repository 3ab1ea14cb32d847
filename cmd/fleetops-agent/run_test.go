package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/agent"
	"github.com/fleetops/fleetops/agent/agentproto"
)

// TestRunExecutesCommands checks the wiring of `run`: a run_command sent on
// the connection runs a real shell step and its result comes back.
func TestRunExecutesCommands(t *testing.T) {
	g := newGateway(t)
	results := make(chan agentproto.CommandResult, 4)
	g.serve = func(ctx context.Context, ws *websocket.Conn) {
		steps, _ := json.Marshal(map[string]any{"runCommand": []string{`echo "hello $WHO"`}})
		env, _ := agentproto.NewEnvelope(agentproto.TypeRunCommand, agentproto.RunCommand{
			InvocationID: "cmd-1:" + instanceID, CommandID: "cmd-1",
			Steps: []agentproto.Step{{Name: "hello", Action: agent.ActionRunShellScript, Inputs: steps, Env: map[string]string{"WHO": "fleet"}}},
		})
		b, _ := json.Marshal(env)
		_ = ws.Write(ctx, websocket.MessageText, b)
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var env agentproto.Envelope
			var res agentproto.CommandResult
			if json.Unmarshal(b, &env) == nil && env.Type == agentproto.TypeCommandResult && env.Decode(&res) == nil {
				results <- res
				ack, _ := agentproto.NewEnvelope(agentproto.TypeCommandResultAck, agentproto.CommandResultAck{InvocationID: res.InvocationID})
				ab, _ := json.Marshal(ack)
				_ = ws.Write(ctx, websocket.MessageText, ab)
			}
		}
	}
	dir := t.TempDir()
	r := runCLI(t, context.Background(), nil, registerArgs(g, dir)...)
	require.Equal(t, 0, r.code, r.stderr)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, []string{"run", "--state-dir", dir}, &stdout, &stderr, func(string) (string, bool) { return "", false })
	}()
	select {
	case res := <-results:
		assert.Equal(t, agentproto.StatusSuccess, res.Status)
		require.Len(t, res.Steps, 1)
		assert.Equal(t, "hello fleet\n", res.Steps[0].Stdout)
	case <-time.After(10 * time.Second):
		t.Fatalf("no command result; log: %s", &stderr)
	}
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code, stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
	assert.False(t, strings.Contains(stderr.String(), secret))
}
