package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunCommand runs commands through the whole system on both databases:
// a real Temporal dev server, `fleetops server` and `fleetops worker` as
// separate processes (so delivery goes through the database outbox), and
// five real agents running real shell scripts.
func TestRunCommand(t *testing.T) {
	for _, dialect := range storetestDialects() {
		t.Run(dialect, func(t *testing.T) {
			testRunCommand(t, dialect)
		})
	}
}

type commandJSON struct {
	CommandID             string `json:"commandId"`
	Status                string `json:"status"`
	StatusDetails         string `json:"statusDetails"`
	TargetCount           int    `json:"targetCount"`
	CompletedCount        int    `json:"completedCount"`
	ErrorCount            int    `json:"errorCount"`
	DeliveryTimedOutCount int    `json:"deliveryTimedOutCount"`
}

type invocationJSON struct {
	InstanceID            string `json:"instanceId"`
	Status                string `json:"status"`
	StatusDetails         string `json:"statusDetails"`
	ResponseCode          int    `json:"responseCode"`
	StandardOutputContent string `json:"standardOutputContent"`
}

func testRunCommand(t *testing.T, dialect string) {
	s := startStack(t, stackOptions{dialect: dialect, heartbeat: "1s", connectionLostAfter: "3s"})
	worker := s.startWorker()

	var act activation
	s.cli(&act, "activation", "create", "--registration-limit", "5", "--tag", "Role=e2e")
	agents := make([]*agentProc, 5)
	ids := make([]string, 5)
	for i := range agents {
		a, err := s.registerAgent(act)
		if err != nil {
			t.Fatalf("register agent %d: %v", i, err)
		}
		agents[i], ids[i] = a, a.instanceID
		s.runAgent(a)
	}
	waitStatus(t, s, agents, "Online", 30*time.Second)
	shared := t.TempDir()

	t.Run("MaxConcurrency", func(t *testing.T) {
		log := filepath.Join(shared, "conc.log")
		script := fmt.Sprintf(`s=$(date +%%s%%N); sleep 0.7; echo "$s $(date +%%s%%N)" >> %s; echo "ran on $AWS_SSM_INSTANCE_ID"`, log)
		out, errOut, err := s.tryCLI("command", "send", "--document", "AWS-RunShellScript",
			"--instance-ids", strings.Join(ids, ","), "--max-concurrency", "2",
			"--parameters", mustJSON(map[string][]string{"commands": {script}}), "--wait")
		if err != nil {
			t.Fatalf("send --wait: %v\n%s\n%s", err, out, errOut)
		}
		intervals := readIntervals(t, log)
		if len(intervals) != 5 {
			t.Fatalf("%d nodes ran the script, want 5", len(intervals))
		}
		if peak := maxOverlap(intervals); peak > 2 {
			t.Errorf("%d scripts ran at once with --max-concurrency 2", peak)
		}
		id := lastCommandID(t, s)
		cmd := s.command(id)
		if cmd.Status != "Success" || cmd.CompletedCount != 5 || cmd.TargetCount != 5 {
			t.Errorf("command %+v, want Success 5/5", cmd)
		}
		// The invocation view and the output command show what the node printed.
		inv := s.invocation(id, ids[3])
		if inv.Status != "Success" || inv.ResponseCode != 0 || !strings.Contains(inv.StandardOutputContent, "ran on "+ids[3]) {
			t.Errorf("invocation %+v", inv)
		}
		stdout, _, err := s.tryCLI("command", "output", id, "--instance-id", ids[3])
		if err != nil || strings.TrimSpace(stdout) != "ran on "+ids[3] {
			t.Errorf("command output = %q, %v", stdout, err)
		}
	})

	t.Run("MaxErrors", func(t *testing.T) {
		var sent struct{ Command commandJSON }
		s.cli(&sent, "command", "send", "--document", "AWS-RunShellScript", "--instance-ids", strings.Join(ids[:3], ","),
			"--max-concurrency", "1", "--max-errors", "1", "--param", "commands=echo failing; exit 3")
		cmd := s.waitCommand(sent.Command.CommandID, 60*time.Second)
		// 0 errors allowed → stop on the 2nd error; the third node is never sent it.
		if cmd.Status != "Failed" || cmd.ErrorCount != 2 || cmd.CompletedCount != 3 {
			t.Errorf("command %+v, want Failed with 2 errors and 3 completed", cmd)
		}
		got := map[string]int{}
		for _, inv := range s.invocations(sent.Command.CommandID) {
			got[inv.Status+"/"+inv.StatusDetails]++
		}
		want := map[string]int{"Failed/Failed": 2, "Cancelled/Terminated": 1}
		for k, n := range want {
			if got[k] != n {
				t.Errorf("invocations %v, want %v", got, want)
				break
			}
		}
		inv := s.invocation(sent.Command.CommandID, ids[0])
		if inv.ResponseCode != 3 {
			t.Errorf("failing node's response code %d, want 3", inv.ResponseCode)
		}
	})

	t.Run("DeliveryTimeoutAndQueuedDelivery", func(t *testing.T) {
		late, gone := agents[3], agents[4]
		late.proc.stop(syscall.SIGTERM)
		gone.proc.stop(syscall.SIGTERM)
		marker := filepath.Join(shared, "queued")
		var lateCmd, goneCmd struct{ Command commandJSON }
		s.cli(&lateCmd, "command", "send", "--document", "AWS-RunShellScript", "--instance-ids", late.instanceID,
			"--timeout-seconds", "30", "--param", "commands=echo ran >> "+marker)
		s.cli(&goneCmd, "command", "send", "--document", "AWS-RunShellScript", "--instance-ids", gone.instanceID,
			"--timeout-seconds", "30", "--param", "commands=echo never >> "+marker+".gone")
		// The late node comes back within the delivery timeout and runs it.
		time.Sleep(2 * time.Second)
		s.runAgent(late)
		if cmd := s.waitCommand(lateCmd.Command.CommandID, 60*time.Second); cmd.Status != "Success" {
			t.Errorf("queued command on a returning node ended %+v", cmd)
		}
		if b, _ := os.ReadFile(marker); string(b) != "ran\n" {
			t.Errorf("queued invocation ran %q, want once", b)
		}
		cmd := s.waitCommand(goneCmd.Command.CommandID, 90*time.Second)
		if cmd.Status != "TimedOut" || cmd.StatusDetails != "Delivery Timed Out" || cmd.DeliveryTimedOutCount != 1 {
			t.Errorf("command to a stopped node ended %+v, want TimedOut / Delivery Timed Out", cmd)
		}
		if inv := s.invocation(goneCmd.Command.CommandID, gone.instanceID); inv.Status != "TimedOut" || inv.StatusDetails != "Delivery Timed Out" {
			t.Errorf("invocation %+v", inv)
		}
		// Back online later, the expired invocation never runs.
		s.runAgent(gone)
		waitStatus(t, s, agents, "Online", 30*time.Second)
		time.Sleep(2 * time.Second)
		if _, err := os.Stat(marker + ".gone"); err == nil {
			t.Error("an invocation ran after its delivery timeout")
		}
	})

	t.Run("CancelKillsTheProcessGroup", func(t *testing.T) {
		marker := filepath.Join(shared, "cancelled")
		var sent struct{ Command commandJSON }
		s.cli(&sent, "command", "send", "--document", "AWS-RunShellScript", "--instance-ids", ids[0],
			"--param", "commands=sleep 317 & wait; echo finished > "+marker)
		id := sent.Command.CommandID
		eventually(t, 30*time.Second, "invocation running", func() error {
			if inv := s.invocation(id, ids[0]); inv.Status != "InProgress" {
				return fmt.Errorf("status %s", inv.Status)
			}
			if len(pidsOf("sleep 317")) == 0 {
				return fmt.Errorf("sleep not started yet")
			}
			return nil
		})
		s.cli(nil, "command", "cancel", id)
		cmd := s.waitCommand(id, 30*time.Second)
		if cmd.Status != "Cancelled" {
			t.Errorf("cancelled command ended %+v", cmd)
		}
		if inv := s.invocation(id, ids[0]); inv.Status != "Cancelled" {
			t.Errorf("invocation %+v, want Cancelled", inv)
		}
		eventually(t, 10*time.Second, "sleep killed", func() error {
			if p := pidsOf("sleep 317"); len(p) > 0 {
				return fmt.Errorf("sleep still running: %v", p)
			}
			return nil
		})
		if _, err := os.Stat(marker); err == nil {
			t.Error("the cancelled script ran to its end")
		}
	})

	t.Run("WorkerKilledMidCommand", func(t *testing.T) {
		dir := filepath.Join(shared, "once")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var sent struct{ Command commandJSON }
		s.cli(&sent, "command", "send", "--document", "AWS-RunShellScript", "--instance-ids", strings.Join(ids, ","),
			"--max-concurrency", "1", "--param", "commands=echo run >> "+dir+"/$AWS_SSM_INSTANCE_ID; sleep 1")
		id := sent.Command.CommandID
		eventually(t, 30*time.Second, "first node done", func() error {
			if entries, _ := os.ReadDir(dir); len(entries) < 2 {
				return fmt.Errorf("%d nodes ran so far", len(entries))
			}
			return nil
		})
		worker.stop(syscall.SIGKILL)
		time.Sleep(time.Second)
		worker = s.startWorker()
		cmd := s.waitCommand(id, 90*time.Second)
		if cmd.Status != "Success" || cmd.CompletedCount != 5 {
			t.Errorf("command after a worker crash ended %+v", cmd)
		}
		for _, inst := range ids {
			if b, err := os.ReadFile(filepath.Join(dir, inst)); err != nil || string(b) != "run\n" {
				t.Errorf("node %s ran the script %q (%v), want exactly once", inst, b, err)
			}
		}
	})

	t.Run("LiveOutputAndFollow", func(t *testing.T) {
		// Output is stored while the step runs, before the result.
		var sent struct{ Command commandJSON }
		s.cli(&sent, "command", "send", "--document", "AWS-RunShellScript", "--instance-ids", ids[1],
			"--param", "commands=echo first; sleep 3; echo second")
		id := sent.Command.CommandID
		eventually(t, 20*time.Second, "first line streamed while running", func() error {
			b, _, err := s.api("GET", "/v1/commands/"+id+"/invocations/"+ids[1]+"/output")
			if err != nil {
				return err
			}
			if inv := s.invocation(id, ids[1]); inv.Status != "InProgress" {
				return fmt.Errorf("invocation is %s, output %q", inv.Status, b)
			}
			if string(b) != "first\n" {
				return fmt.Errorf("output so far %q", b)
			}
			return nil
		})
		s.waitCommand(id, 30*time.Second)

		// --follow prints each node's lines as they come, and exits non-zero
		// when the command does not succeed.
		stdout, stderr, err := s.tryCLI("command", "send", "--document", "AWS-RunShellScript", "--instance-ids", ids[0]+","+ids[2],
			"--max-errors", "2", "--param", "commands=echo out-$AWS_SSM_INSTANCE_ID; echo err >&2; exit 4", "--follow")
		if code := exitCode(err); code != 2 {
			t.Errorf("--follow on a failing command exited %d (%v), want 2\n%s", code, err, stderr)
		}
		for _, inst := range []string{ids[0], ids[2]} {
			if !strings.Contains(stdout, "["+inst+"] out-"+inst+"\n") || !strings.Contains(stdout, "["+inst+" stderr] err\n") {
				t.Errorf("--follow output lacks %s's lines:\n%s", inst, stdout)
			}
		}
		if !strings.Contains(stderr, "Failed") {
			t.Errorf("--follow summary %q does not say Failed", stderr)
		}
	})

	t.Run("BadParameterRefusedBeforeDispatch", func(t *testing.T) {
		before := len(s.commands())
		stdout, stderr, err := s.tryCLI("command", "send", "--document", "AWS-RunShellScript", "--instance-ids", ids[0],
			"--param", "commands=touch "+filepath.Join(shared, "bad"), "--param", "executionTimeout=soon")
		if err == nil {
			t.Fatalf("send with a bad executionTimeout succeeded: %s", stdout)
		}
		if !strings.Contains(stderr, "executionTimeout") {
			t.Errorf("error %q does not name the parameter", stderr)
		}
		if after := len(s.commands()); after != before {
			t.Errorf("a refused send created a command (%d → %d)", before, after)
		}
		if _, err := os.Stat(filepath.Join(shared, "bad")); err == nil {
			t.Error("a refused command ran")
		}
	})

	t.Run("Metrics", func(t *testing.T) {
		b, _, err := s.api("GET", "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`fleetops_commands{status="Success"}`, `fleetops_commands{status="Failed"}`,
			`fleetops_invocation_results_total{status="Success"}`, `fleetops_invocation_results_total{status="Cancelled"}`,
			"fleetops_invocations_in_flight 0", "fleetops_invocations_queued_offline 0",
			"fleetops_command_dispatch_latency_seconds_count", "fleetops_command_execution_duration_seconds_count",
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("UserDocumentWithEnvVarParameter", func(t *testing.T) {
		doc := filepath.Join(shared, "greet.yaml")
		content := `schemaVersion: "2.2"
description: Greets safely
parameters:
  who:
    type: String
    interpolationType: ENV_VAR
    allowedPattern: "^[^\n]*$"
mainSteps:
  - action: aws:runShellScript
    name: greet
    inputs:
      runCommand:
        - echo "hello {{ who }}"
`
		if err := os.WriteFile(doc, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		s.cli(nil, "document", "create", "Greet", "--file", doc)
		pwned := filepath.Join(shared, "pwned")
		var sent struct{ Command commandJSON }
		s.cli(&sent, "command", "send", "--document", "Greet", "--targets", "Key=tag:Role,Values=e2e",
			"--param", "who=$(touch "+pwned+")")
		cmd := s.waitCommand(sent.Command.CommandID, 60*time.Second)
		if cmd.Status != "Success" || cmd.TargetCount != 5 {
			t.Errorf("command %+v, want Success on the 5 tagged nodes", cmd)
		}
		inv := s.invocation(sent.Command.CommandID, ids[1])
		if strings.TrimSpace(inv.StandardOutputContent) != "hello $(touch "+pwned+")" {
			t.Errorf("output %q, want the parameter as literal text", inv.StandardOutputContent)
		}
		if _, err := os.Stat(pwned); err == nil {
			t.Error("an ENV_VAR parameter was executed as shell code")
		}
	})
}

// startWorker runs `fleetops worker` against the stack's database.
func (s *stack) startWorker() *proc {
	s.t.Helper()
	return startProc(s.t, "worker", bins.fleetops, "worker", "--database-url", s.databaseURL, "--temporal-address", s.temporalAddr)
}

func (s *stack) command(id string) commandJSON {
	s.t.Helper()
	var out struct{ Command commandJSON }
	s.cli(&out, "command", "get", id)
	return out.Command
}

func (s *stack) commands() []commandJSON {
	s.t.Helper()
	var out struct{ Commands []commandJSON }
	s.cli(&out, "command", "list", "--max-results", "1000")
	return out.Commands
}

func (s *stack) waitCommand(id string, within time.Duration) commandJSON {
	s.t.Helper()
	var cmd commandJSON
	eventually(s.t, within, "command "+id+" ends", func() error {
		cmd = s.command(id)
		switch cmd.Status {
		case "Success", "Failed", "TimedOut", "Cancelled":
			return nil
		}
		return fmt.Errorf("status %s (%s)", cmd.Status, cmd.StatusDetails)
	})
	return cmd
}

func (s *stack) invocation(id, instanceID string) invocationJSON {
	s.t.Helper()
	var out struct{ Invocation invocationJSON }
	b, _, err := s.api("GET", "/v1/commands/"+id+"/invocations/"+instanceID)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		s.t.Fatal(err)
	}
	return out.Invocation
}

func (s *stack) invocations(id string) []invocationJSON {
	s.t.Helper()
	var out struct{ Invocations []invocationJSON }
	s.cli(&out, "command", "invocations", id)
	return out.Invocations
}

func lastCommandID(t *testing.T, s *stack) string {
	t.Helper()
	list := s.commands()
	if len(list) == 0 {
		t.Fatal("no commands")
	}
	return list[0].CommandID
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

type interval struct{ start, end int64 }

func readIntervals(t *testing.T, path string) []interval {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []interval
	for _, line := range scanLines(string(b)) {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("bad log line %q", line)
		}
		s, _ := strconv.ParseInt(f[0], 10, 64)
		e, _ := strconv.ParseInt(f[1], 10, 64)
		out = append(out, interval{s, e})
	}
	return out
}

// maxOverlap is the largest number of intervals covering one instant.
func maxOverlap(iv []interval) int {
	type ev struct {
		at    int64
		delta int
	}
	var evs []ev
	for _, i := range iv {
		evs = append(evs, ev{i.start, 1}, ev{i.end, -1})
	}
	slices.SortFunc(evs, func(a, b ev) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		return a.delta - b.delta // ends before starts at the same instant
	})
	cur, peak := 0, 0
	for _, e := range evs {
		cur += e.delta
		peak = max(peak, cur)
	}
	return peak
}

// pidsOf lists processes whose command line is exactly cmdline.
func pidsOf(cmdline string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ") == cmdline {
			out = append(out, pid)
		}
	}
	return out
}
