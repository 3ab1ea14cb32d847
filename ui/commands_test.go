package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/browsertest"
	"github.com/fleetops/fleetops/internal/store"
)

// TestRunCommandInChromium drives the Run Command pages in a real browser
// against the real API: commands and their invocations are written to the
// store as the workflow and the gateway would, and commands sent from the
// form reach fake workflows that record them.
func TestRunCommandInChromium(t *testing.T) {
	ctx := context.Background()
	c := newConsole(t)
	st := c.st
	web1 := c.register(agentproto.HostInfo{Hostname: "web-1", PlatformType: "Linux", PlatformName: "Debian GNU/Linux", PlatformVersion: "12"})
	web2 := c.register(agentproto.HostInfo{Hostname: "web-2", PlatformType: "Linux", PlatformName: "Debian GNU/Linux", PlatformVersion: "12"})
	c.call("POST", "/v1/instances/"+web1+"/tags", map[string]any{"tags": map[string]string{"Env": "prod"}}, nil)

	// A command in flight: web-1 running with some output, web-2 failed.
	now := time.Now()
	cmdID := uuid.NewString()
	k1 := store.InvocationKey{CommandID: cmdID, InstanceID: web1}
	k2 := store.InvocationKey{CommandID: cmdID, InstanceID: web2}
	ids, _ := json.Marshal([]string{web1, web2})
	must(t, st.CreateCommand(ctx, &store.Command{
		CommandID: cmdID, DocumentName: "AWS-RunShellScript", DocumentVersion: 1, Comment: "nightly backup",
		Parameters: `{"commands":["echo hello"]}`, InstanceIDs: string(ids), Targets: "[]",
		MaxConcurrency: "50", MaxErrors: "0", TimeoutSeconds: 3600, ExecutionTimeoutSeconds: 3600,
		Status: "InProgress", StatusDetails: "In Progress", RequestedBy: "admin", RequestedAt: now.Add(-time.Minute),
	}))
	must(t, st.CreateInvocations(ctx, cmdID, []store.Invocation{
		{InstanceID: web1, InstanceName: "web-1", DocumentName: "AWS-RunShellScript"},
		{InstanceID: web2, InstanceName: "web-2", DocumentName: "AWS-RunShellScript"},
	}))
	for _, k := range []store.InvocationKey{k1, k2} {
		if _, err := st.AckInvocation(ctx, k, now, now); err != nil {
			t.Fatal(err)
		}
	}
	must(t, st.AppendOutput(ctx, k1, "stdout", 0, "hello\n", 0))
	complete(t, st, k2, "Failed", 2, "boom\n")
	must(t, st.UpdateCommandStatus(ctx, cmdID, "InProgress", "In Progress",
		store.CommandCounters{TargetCount: 2, CompletedCount: 1, ErrorCount: 1}, nil))

	b := browsertest.New(t)
	b.Navigate(c.url + "/#/login?token=" + c.token)

	// The history lists the command with its status.
	b.Navigate(c.url + "/#/commands")
	row := `#commands [data-command-id="` + cmdID + `"]`
	b.WaitVisible(row + `[data-status="InProgress"]`)
	if got := b.Text(row); !strings.Contains(got, "AWS-RunShellScript") || !strings.Contains(got, "nightly backup") {
		t.Errorf("history row %q lacks the document or the comment", got)
	}

	// The command page: status, counters, progress and one row per target.
	b.Click(row + " a")
	b.WaitVisible(`#command-status[data-status="InProgress"]`)
	b.WaitText(`#command-counters [data-counter="targets"]`, "2")
	b.WaitText(`#command-counters [data-counter="errors"]`, "1")
	b.WaitVisible(`#invocations [data-instance-id="` + web2 + `"][data-status="Failed"]`)
	b.WaitVisible(`#invocations [data-instance-id="` + web1 + `"][data-status="InProgress"]`)
	if n := b.Count(`#invocations tr[data-instance-id]`); n != 2 {
		t.Errorf("%d invocation rows, want 2", n)
	}
	if n := b.Count(`#command-progress .seg`); n != 2 {
		t.Errorf("%d progress segments, want 2 (InProgress, Failed)", n)
	}

	// Clicking a row follows its output live: what the agent streams later
	// is appended without a reload, and nothing is shown twice.
	b.Click(`#invocations [data-instance-id="` + web1 + `"] td:nth-child(4)`)
	b.WaitText("#invocation-stdout", "hello")
	must(t, st.AppendOutput(ctx, k1, "stdout", 6, "world\n", 0))
	b.WaitText("#invocation-stdout", "world")
	if got := browsertest.Eval[string](b, `document.querySelector("#invocation-stdout").textContent`); got != "hello\nworld\n" {
		t.Errorf("live output %q, want %q", got, "hello\nworld\n")
	}

	// Cancel reaches the workflow.
	b.Click("#command-cancel")
	eventually(t, "the cancel signal", func() bool { return c.wf.Cancels(cmdID) == 1 })
	b.WaitText("#command-cancel-msg", "Cancel requested")

	// The invocation and the command end: the panel shows the steps, the
	// page the final status, and Cancel goes away.
	complete(t, st, k1, "Success", 0, "")
	finished := time.Now()
	must(t, st.UpdateCommandStatus(ctx, cmdID, "Failed", "Failed",
		store.CommandCounters{TargetCount: 2, CompletedCount: 2, ErrorCount: 1}, &finished))
	b.WaitVisible(`#invocation-status[data-status="Success"]`)
	b.WaitVisible(`#invocation-plugins [data-plugin="0.aws:runShellScript"][data-status="Success"]`)
	b.WaitVisible(`#command-status[data-status="Failed"]`)
	b.WaitVisible(`#invocations [data-instance-id="` + web1 + `"][data-status="Success"]`)
	if !browsertest.Eval[bool](b, `document.querySelector("#command-cancel").hidden`) {
		t.Error("Cancel is offered on a finished command")
	}
	b.Click(`#invocations [data-instance-id="` + web2 + `"] td:nth-child(4)`)
	b.WaitText("#invocation-stderr", "boom")

	// The node page lists the commands that ran there.
	b.Navigate(c.url + "/#/instances/" + web1)
	b.WaitVisible(`#instance-commands [data-command-id="` + cmdID + `"]`)

	// The send form renders the document's parameters.
	b.Navigate(c.url + "/#/commands/new")
	b.WaitVisible(`[name="param-commands"]`)
	b.WaitVisible(`[name="param-workingDirectory"]`)
	if tag := browsertest.Eval[string](b, `document.querySelector('[name="param-commands"]').tagName`); tag != "TEXTAREA" {
		t.Errorf("commands is a %s, want a TEXTAREA (StringList)", tag)
	}
	if ph := browsertest.Eval[string](b, `document.querySelector('[name="param-executionTimeout"]').placeholder`); ph != "3600" {
		t.Errorf("executionTimeout placeholder %q, want its default 3600", ph)
	}
	if got := browsertest.Eval[string](b, `document.querySelector("#send-document").value`); got != "AWS-RunShellScript" {
		t.Errorf("document %q preselected, want AWS-RunShellScript", got)
	}
	b.WaitVisible(`#send-node-list [data-instance-id="` + web1 + `"] input`)
	b.Click(`#send-node-list [data-instance-id="` + web1 + `"] input`)
	fill(b, "#send-instance-ids", web2)

	// Bad submissions show the server's message next to the field and
	// keep what was typed.
	b.Click("#send-submit")
	b.WaitText(`[data-field-error="parameters.commands"]`, "is required")
	b.WaitText("#send-error", "is required")
	fill(b, `[name="param-commands"]`, "echo one\necho two")
	b.SetValue("#send-max-concurrency", "abc")
	b.Click("#send-submit")
	b.WaitText(`[data-field-error="maxConcurrency"]`, `"abc"`)
	if got := browsertest.Eval[string](b, `document.querySelector('[data-field-error="parameters.commands"]').textContent`); got != "" {
		t.Errorf("stale error on commands: %q", got)
	}
	if got := browsertest.Eval[string](b, `document.querySelector('[name="param-commands"]').value`); got != "echo one\necho two" {
		t.Errorf("commands after a failed submit %q", got)
	}
	if !browsertest.Eval[bool](b, `document.querySelector('#send-node-list [data-instance-id="`+web1+`"] input').checked`) {
		t.Error("the node choice was lost after a failed submit")
	}
	if n := len(c.wf.Started()); n != 0 {
		t.Fatalf("%d commands started by bad submissions", n)
	}

	// A good submission lands on the new command's page.
	fill(b, "#send-max-concurrency", "10")
	b.SetValue("#send-comment", "from the console")
	b.Click("#send-submit")
	b.WaitVisible(`#command-status[data-status="Pending"]`)
	eventually(t, "the command to start", func() bool { return len(c.wf.Started()) == 1 })
	in := c.wf.Started()[0]
	if hash := browsertest.Eval[string](b, `location.hash`); hash != "#/commands/"+in.CommandID {
		t.Errorf("landed on %s, want the command %s", hash, in.CommandID)
	}
	if !slices.Equal(in.InstanceIDs, []string{web1, web2}) || in.MaxConcurrency != "10" || in.MaxErrors != "0" || in.DocumentName != "AWS-RunShellScript" {
		t.Errorf("started %+v", in)
	}
	sent, err := st.GetCommand(ctx, in.CommandID)
	must(t, err)
	var params map[string][]string
	must(t, json.Unmarshal([]byte(sent.Parameters), &params))
	if !slices.Equal(params["commands"], []string{"echo one", "echo two"}) || sent.Comment != "from the console" || sent.TimeoutSeconds != 3600 {
		t.Errorf("stored command: parameters %v, comment %q, timeout %d", params, sent.Comment, sent.TimeoutSeconds)
	}
	b.WaitVisible(`#invocations [data-instance-id="` + web2 + `"][data-status="Pending"]`)

	// Targets by tag: a bad row is marked, a good one selects the tagged node.
	b.Navigate(c.url + "/#/commands/new")
	b.WaitVisible(`[name="param-commands"]`)
	fill(b, `[name="param-commands"]`, "uptime")
	b.Click("#send-targets-mode-tags")
	b.SetValue(`[data-target-index="0"] .target-values`, "prod")
	b.Click("#send-submit")
	b.WaitText(`[data-target-index="0"] .field-error`, "tag:")
	b.SetValue(`[data-target-index="0"] .target-key`, "Env")
	b.Click("#send-submit")
	eventually(t, "the tag-targeted command to start", func() bool { return len(c.wf.Started()) == 2 })
	if in := c.wf.Started()[1]; !slices.Equal(in.InstanceIDs, []string{web1}) {
		t.Errorf("tag Env=prod resolved to %v, want [%s]", in.InstanceIDs, web1)
	}
	b.WaitVisible(`#command-status`)

	var errs []string
	for _, e := range b.ConsoleErrors() {
		// The bad submissions above answer 400 on purpose; Chromium logs that.
		if !strings.Contains(e, "status of 400") {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		t.Errorf("page errors: %q", errs)
	}
}

// complete ends invocation k as the agent's final report would.
func complete(t *testing.T, st *store.Store, k store.InvocationKey, status string, code int, stderr string) {
	t.Helper()
	now := time.Now()
	steps, _ := json.Marshal([]agentproto.StepResult{{Name: "0.aws:runShellScript", Status: status, ResponseCode: code, StartedAt: now.Add(-time.Second), EndedAt: now}})
	ok, err := st.CompleteInvocation(context.Background(), k, store.InvocationReport{
		Status: status, ResponseCode: code, StartedAt: now.Add(-time.Second), EndedAt: now,
		StepResults: string(steps), Stderr: stderr,
	}, now)
	if err != nil || !ok {
		t.Fatalf("complete %v: applied %v, %v", k, ok, err)
	}
}

// fill sets an input's value and fires "input", as typing would:
// browsertest.SetValue cannot clear an empty textarea, nor an input the
// user typed into.
func fill(b *browsertest.Browser, selector, v string) {
	browsertest.Eval[bool](b, fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.focus(); el.value = %q; `+
		`el.dispatchEvent(new Event("input", {bubbles: true})); return true; })()`, selector, v))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
