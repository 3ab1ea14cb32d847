package e2e

// Run Command load benchmarks: the figures in BENCHMARKS.md. They start the
// embedded stack (`fleetops dev`: server and worker in one process, SQLite)
// against a tuned Temporal dev server and drive it with the real agent
// binary, so each takes from seconds to minutes; run them with
// `make bench` (-benchtime 1x). `go test -run '^$'` keeps the tests out and
// plain `go test` never runs them.
//
// Set FLEETOPS_BENCH_LOG_DIR to keep every process's log (one folder per
// benchmark) for looking at where the time went; by default they go to a
// temporary directory and are shown only when a benchmark fails.
//
// Set FLEETOPS_BENCH_TEMPORAL=embedded to let `fleetops dev` start its own
// Temporal dev server with its SQLite file in the data dir (what `make run`
// does) instead of the in-memory tuned dev server the tests use.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetops/fleetops/agent"
	"github.com/fleetops/fleetops/agent/agentproto"
)

// maxActivationRegistrations is the API's (and SSM's) registration limit
// of one activation; bigger swarms use several activations.
const maxActivationRegistrations = 1000

func BenchmarkSwarm1000(b *testing.B)  { benchSwarm(b, 1000) }
func BenchmarkSwarm10000(b *testing.B) { benchSwarm(b, 10000) }

// benchSwarm starts the stack and one `fleetops-agent swarm` process with n
// simulated nodes, then measures one FleetOps-Noop command to all of them
// at MaxConcurrency 100%.
func benchSwarm(b *testing.B, n int) {
	logDir := benchLogDir(b)
	s := startBenchStack(b, logDir)

	stateDir := filepath.Join(b.TempDir(), "swarm")
	regStart := time.Now()
	preregisterSwarm(b, s, stateDir, n, "Bench", "x")
	b.Logf("registered %d swarm nodes in %s", n, time.Since(regStart).Round(time.Millisecond))

	connStart := time.Now()
	swarm := startLogged(b, "swarm", filepath.Join(logDir, "swarm.log"), bins.agent, "swarm",
		"--server", s.url, "--count", strconv.Itoa(n), "--state-dir", stateDir)
	waitOnline(b, s, n, 10*time.Minute, swarm)
	b.Logf("%d swarm nodes Online in %s (swarm RSS %.0f MiB)", n, time.Since(connStart).Round(time.Millisecond),
		mib(procStatusKB(swarm.cmd.Process.Pid, "VmRSS")))

	for i := 0; i < b.N; i++ {
		cpu := newCPUMeter(map[string]int{"server": s.server.cmd.Process.Pid, "swarm": swarm.cmd.Process.Pid,
			"temporal": temporalPID(s.temporalAddr), "bench": os.Getpid()})
		r := runToAll(b, s, map[string]any{
			"documentName":   "FleetOps-Noop",
			"targets":        []map[string]any{{"key": "tag:Bench", "values": []string{"x"}}},
			"maxConcurrency": "100%",
		}, n, 30*time.Minute)
		rss := mib(procStatusKB(s.server.cmd.Process.Pid, "VmHWM"))
		b.ReportMetric(r.wall.Seconds(), "wall-s")
		b.ReportMetric(float64(n)/r.wall.Seconds(), "targets/s")
		b.ReportMetric(ms(r.dispatchP50), "dispatch-p50-ms")
		b.ReportMetric(ms(r.dispatchP99), "dispatch-p99-ms")
		b.ReportMetric(rss, "server-peak-rss-MiB")
		b.Logf("swarm %d: status %s; wall %s (finished−requested; last executionEnd−requested %s; client saw final after %s; POST took %s); %.0f targets/s; dispatch latency p50 %s p99 %s max %s; server peak RSS %.0f MiB; swarm RSS %.0f MiB; temporal RSS %.0f MiB",
			n, r.status, r.wall.Round(time.Millisecond), r.lastEnd.Round(time.Millisecond), r.clientWall.Round(time.Millisecond),
			r.post.Round(time.Millisecond), float64(n)/r.wall.Seconds(),
			r.dispatchP50.Round(time.Millisecond), r.dispatchP99.Round(time.Millisecond), r.dispatchMax.Round(time.Millisecond),
			rss, mib(procStatusKB(swarm.cmd.Process.Pid, "VmRSS")), mib(temporalRSSKB(s.temporalAddr)))
		b.Logf("started/ended by second: %s", r.timeline)
		b.Logf("CPU used from send to final status seen: %s", cpu)
		if r.status != "Success" {
			b.Fatalf("command %s ended %s, want Success", r.commandID, r.status)
		}
	}
}

// BenchmarkSingleTargetLatency sends 30 sequential `echo hi` commands to one
// real agent and measures how long each takes to be stored as Success.
func BenchmarkSingleTargetLatency(b *testing.B) {
	logDir := benchLogDir(b)
	s := startBenchStack(b, logDir)
	var act activation
	s.cli(&act, "activation", "create", "--registration-limit", "1", "--tag", "Bench=single")
	a, err := s.registerAgent(act)
	if err != nil {
		b.Fatalf("register agent: %v", err)
	}
	a.proc = startLogged(b, "agent", filepath.Join(logDir, "agent.log"), bins.agent, "run", "--state-dir", a.stateDir)
	waitOnline(b, s, 1, time.Minute, a.proc)

	const sends = 30
	for i := 0; i < b.N; i++ {
		var client, clientAccepted, store, command []time.Duration
		for j := 0; j < sends; j++ {
			start := time.Now()
			var sent struct{ Command commandTimesJSON }
			if err := s.apiJSON("POST", "/v1/commands", map[string]any{
				"documentName": "AWS-RunShellScript",
				"instanceIds":  []string{a.instanceID},
				"parameters":   map[string]any{"commands": []string{"echo hi"}},
			}, &sent); err != nil {
				b.Fatalf("send: %v", err)
			}
			accepted := time.Now()
			id := sent.Command.CommandID
			var inv invocationTimesJSON
			deadline := time.Now().Add(30 * time.Second)
			for {
				var out struct{ Invocation invocationTimesJSON }
				// A 404 before the row is visible, or a transient error, is a retry.
				if err := s.apiJSON("GET", "/v1/commands/"+id+"/invocations/"+a.instanceID, nil, &out); err == nil && isFinal(out.Invocation.Status) {
					inv = out.Invocation
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("command %s: no final invocation status within 30s", id)
				}
				time.Sleep(5 * time.Millisecond)
			}
			done := time.Now()
			if inv.Status != "Success" {
				b.Fatalf("command %s ended %s, want Success", id, inv.Status)
			}
			client = append(client, done.Sub(start))
			clientAccepted = append(clientAccepted, done.Sub(accepted))
			if inv.ExecutionEnd == nil {
				b.Fatalf("command %s: Success without executionEndDateTime", id)
			}
			store = append(store, inv.ExecutionEnd.Sub(inv.RequestedDateTime))
			// The command's own status is the workflow's: it turns Success later.
			for {
				var out struct{ Command commandTimesJSON }
				if err := s.apiJSON("GET", "/v1/commands/"+id, nil, &out); err == nil && isFinal(out.Command.Status) {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("command %s: no final status within 30s", id)
				}
				time.Sleep(5 * time.Millisecond)
			}
			command = append(command, time.Since(start))
			if j == sends-1 && os.Getenv("FLEETOPS_BENCH_LOG_DIR") != "" {
				dumpHistory(b, s.temporalAddr, id, logDir)
			}
		}
		for _, d := range [][]time.Duration{client, clientAccepted, store, command} {
			slices.Sort(d)
		}
		b.ReportMetric(ms(pct(client, 50)), "client-p50-ms")
		b.ReportMetric(ms(pct(client, 90)), "client-p90-ms")
		b.ReportMetric(ms(pct(store, 50)), "stored-p50-ms")
		b.ReportMetric(ms(pct(store, 90)), "stored-p90-ms")
		b.ReportMetric(ms(pct(command, 50)), "command-final-p50-ms")
		b.Logf("single target, %d sequential sends: client (POST sent → Success seen, 5 ms polls) p50 %s p90 %s max %s; "+
			"from POST accepted p50 %s p90 %s; store (executionEndDateTime − requestedDateTime) p50 %s p90 %s max %s; "+
			"POST sent → the command (not the invocation) seen final p50 %s p90 %s",
			sends, pct(client, 50).Round(100*time.Microsecond), pct(client, 90).Round(100*time.Microsecond), client[len(client)-1].Round(100*time.Microsecond),
			pct(clientAccepted, 50).Round(100*time.Microsecond), pct(clientAccepted, 90).Round(100*time.Microsecond),
			pct(store, 50).Round(100*time.Microsecond), pct(store, 90).Round(100*time.Microsecond), store[len(store)-1].Round(100*time.Microsecond),
			pct(command, 50).Round(100*time.Microsecond), pct(command, 90).Round(100*time.Microsecond))
	}

	// Idle: 5 s after the last command, nothing to do but heartbeats.
	time.Sleep(5 * time.Second)
	rss := mib(procStatusKB(a.proc.cmd.Process.Pid, "VmRSS"))
	b.ReportMetric(rss, "agent-idle-rss-MiB")
	b.Logf("agent idle RSS (VmRSS 5 s after the last command): %.1f MiB (peak VmHWM %.1f MiB)",
		rss, mib(procStatusKB(a.proc.cmd.Process.Pid, "VmHWM")))
}

func BenchmarkRealAgents50(b *testing.B)  { benchRealAgents(b, 50) }
func BenchmarkRealAgents200(b *testing.B) { benchRealAgents(b, 200) }

// benchRealAgents runs n real `fleetops-agent run` processes and measures
// one `echo hi` to all of them at MaxConcurrency 100%.
func benchRealAgents(b *testing.B, n int) {
	logDir := benchLogDir(b)
	s := startBenchStack(b, logDir)
	var act activation
	s.cli(&act, "activation", "create", "--registration-limit", strconv.Itoa(n), "--tag", "Bench=real")

	agents := make([]*agentProc, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	regStart := time.Now()
	for i := range agents {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			a, err := s.registerAgent(act)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("register agent %d: %w", i, err)
			}
			agents[i] = a
		})
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	b.Logf("registered %d agents in %s", n, time.Since(regStart).Round(time.Millisecond))
	for i, a := range agents {
		a.proc = startLogged(b, "agent "+a.instanceID, filepath.Join(logDir, fmt.Sprintf("agent-%03d.log", i)), bins.agent, "run", "--state-dir", a.stateDir)
	}
	waitOnline(b, s, n, 2*time.Minute, nil)

	for i := 0; i < b.N; i++ {
		r := runToAll(b, s, map[string]any{
			"documentName":   "AWS-RunShellScript",
			"targets":        []map[string]any{{"key": "tag:Bench", "values": []string{"real"}}},
			"parameters":     map[string]any{"commands": []string{"echo hi"}},
			"maxConcurrency": "100%",
		}, n, 5*time.Minute)
		b.ReportMetric(r.wall.Seconds(), "wall-s")
		b.ReportMetric(ms(r.dispatchP50), "dispatch-p50-ms")
		b.ReportMetric(ms(r.dispatchP99), "dispatch-p99-ms")
		b.Logf("%d real agents: status %s; wall %s (finished−requested; last executionEnd−requested %s; client saw final after %s; POST took %s); dispatch latency p50 %s p99 %s",
			n, r.status, r.wall.Round(time.Millisecond), r.lastEnd.Round(time.Millisecond), r.clientWall.Round(time.Millisecond),
			r.post.Round(time.Millisecond), r.dispatchP50.Round(time.Millisecond), r.dispatchP99.Round(time.Millisecond))
		b.Logf("started/ended by second: %s", r.timeline)
		if r.status != "Success" {
			b.Fatalf("command %s ended %s, want Success", r.commandID, r.status)
		}
	}
}

// runResult is what one fan-out command measured.
type runResult struct {
	commandID string
	status    string
	// wall is finishedDateTime − requestedDateTime as stored.
	wall time.Duration
	// lastEnd is the latest executionEndDateTime − requestedDateTime.
	lastEnd time.Duration
	// clientWall is POST accepted → the client saw a final status (100 ms polls).
	clientWall time.Duration
	// post is how long the send itself took.
	post                                  time.Duration
	dispatchP50, dispatchP99, dispatchMax time.Duration
	// timeline counts, per second since requestedDateTime, the invocations
	// started and ended by then: where the time went.
	timeline string
}

type commandTimesJSON struct {
	CommandID         string     `json:"commandId"`
	Status            string     `json:"status"`
	StatusDetails     string     `json:"statusDetails"`
	TargetCount       int        `json:"targetCount"`
	CompletedCount    int        `json:"completedCount"`
	RequestedDateTime time.Time  `json:"requestedDateTime"`
	FinishedDateTime  *time.Time `json:"finishedDateTime"`
}

type invocationTimesJSON struct {
	InstanceID        string     `json:"instanceId"`
	Status            string     `json:"status"`
	RequestedDateTime time.Time  `json:"requestedDateTime"`
	ExecutionStart    *time.Time `json:"executionStartDateTime"`
	ExecutionEnd      *time.Time `json:"executionEndDateTime"`
}

// runToAll sends req, waits for the command to end and reads its
// invocations' times.
func runToAll(b *testing.B, s *stack, req map[string]any, want int, within time.Duration) runResult {
	b.Helper()
	start := time.Now()
	var sent struct{ Command commandTimesJSON }
	if err := s.apiJSON("POST", "/v1/commands", req, &sent); err != nil {
		b.Fatalf("send: %v", err)
	}
	accepted := time.Now()
	r := runResult{commandID: sent.Command.CommandID, post: accepted.Sub(start)}
	if sent.Command.TargetCount != want {
		b.Fatalf("command %s has %d targets, want %d", r.commandID, sent.Command.TargetCount, want)
	}
	var cmd commandTimesJSON
	deadline := time.Now().Add(within)
	lastLog := time.Now()
	for {
		var out struct{ Command commandTimesJSON }
		err := s.apiJSON("GET", "/v1/commands/"+r.commandID, nil, &out)
		if err == nil && isFinal(out.Command.Status) {
			cmd = out.Command
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("command %s not final within %s: %+v (%v)", r.commandID, within, out.Command, err)
		}
		if time.Since(lastLog) > 10*time.Second {
			b.Logf("after %s: %s %d/%d completed", time.Since(accepted).Round(time.Second), out.Command.Status, out.Command.CompletedCount, out.Command.TargetCount)
			lastLog = time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.clientWall = time.Since(accepted)
	r.status = cmd.Status
	if cmd.FinishedDateTime != nil {
		r.wall = cmd.FinishedDateTime.Sub(cmd.RequestedDateTime)
	}
	invs := s.allInvocations(r.commandID)
	if len(invs) != want {
		b.Fatalf("command %s has %d invocations, want %d", r.commandID, len(invs), want)
	}
	var dispatch []time.Duration
	for _, inv := range invs {
		if inv.ExecutionStart != nil {
			dispatch = append(dispatch, inv.ExecutionStart.Sub(inv.RequestedDateTime))
		}
		if inv.ExecutionEnd != nil {
			r.lastEnd = max(r.lastEnd, inv.ExecutionEnd.Sub(cmd.RequestedDateTime))
		}
	}
	r.timeline = timeline(invs, cmd.RequestedDateTime)
	if dir := os.Getenv("FLEETOPS_BENCH_LOG_DIR"); dir != "" && s.temporalAddr != "" {
		dumpHistory(b, s.temporalAddr, r.commandID, benchLogDir(b))
	}
	if len(dispatch) > 0 {
		slices.Sort(dispatch)
		r.dispatchP50, r.dispatchP99, r.dispatchMax = pct(dispatch, 50), pct(dispatch, 99), dispatch[len(dispatch)-1]
	}
	if r.wall == 0 {
		r.wall = r.lastEnd
	}
	return r
}

// timeline renders "t+1s 12/3 t+2s 100/90 …": invocations started/ended
// by each whole second after the request.
func timeline(invs []invocationTimesJSON, requested time.Time) string {
	var starts, ends []int
	bump := func(counts *[]int, at *time.Time) {
		if at == nil {
			return
		}
		sec := max(0, int(at.Sub(requested)/time.Second))
		for len(*counts) <= sec {
			*counts = append(*counts, 0)
		}
		(*counts)[sec]++
	}
	for _, inv := range invs {
		bump(&starts, inv.ExecutionStart)
		bump(&ends, inv.ExecutionEnd)
	}
	var sb strings.Builder
	cs, ce := 0, 0
	for sec := 0; sec < max(len(starts), len(ends)); sec++ {
		if sec < len(starts) {
			cs += starts[sec]
		}
		if sec < len(ends) {
			ce += ends[sec]
		}
		fmt.Fprintf(&sb, " t+%ds %d/%d", sec+1, cs, ce)
	}
	return strings.TrimSpace(sb.String())
}

// dumpHistory writes the command workflow's histories (every run, oldest
// last) as JSON into dir, for reading where the time went.
func dumpHistory(b *testing.B, temporalAddr, commandID, dir string) {
	b.Helper()
	out, err := exec.Command(bins.temporal, "workflow", "list", "--address", temporalAddr,
		"--query", "WorkflowId='command:"+commandID+"'", "-o", "json").Output()
	if err != nil {
		b.Logf("list workflow runs: %v", err)
		return
	}
	var runs []struct {
		Execution struct {
			RunID string `json:"runId"`
		} `json:"execution"`
	}
	if err := json.Unmarshal(out, &runs); err != nil {
		b.Logf("list workflow runs: %v: %s", err, out)
		return
	}
	for i, run := range runs {
		h, err := exec.Command(bins.temporal, "workflow", "show", "--address", temporalAddr,
			"-w", "command:"+commandID, "-r", run.Execution.RunID, "-o", "json").Output()
		if err != nil {
			b.Logf("show workflow run %s: %v", run.Execution.RunID, err)
			continue
		}
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("history-%s-%d.json", commandID, i)), h, 0o644)
	}
	b.Logf("wrote %d workflow run histories to %s", len(runs), dir)
}

func isFinal(status string) bool {
	switch status {
	case "Success", "Failed", "TimedOut", "Cancelled":
		return true
	}
	return false
}

// allInvocations pages through a command's invocations.
func (s *stack) allInvocations(id string) []invocationTimesJSON {
	s.t.Helper()
	var all []invocationTimesJSON
	token := ""
	for {
		var page struct {
			Invocations []invocationTimesJSON `json:"invocations"`
			NextToken   string                `json:"nextToken"`
		}
		q := url.Values{"maxResults": {"1000"}}
		if token != "" {
			q.Set("nextToken", token)
		}
		if err := s.apiJSON("GET", "/v1/commands/"+id+"/invocations?"+q.Encode(), nil, &page); err != nil {
			s.t.Fatalf("invocations of %s: %v", id, err)
		}
		all = append(all, page.Invocations...)
		if page.NextToken == "" {
			return all
		}
		token = page.NextToken
	}
}

// apiJSON calls the operator API with a JSON body and decodes the answer.
func (s *stack) apiJSON(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// waitOnline waits until the fleet summary counts n Online nodes, failing
// early when watch (if any) exits.
func waitOnline(b *testing.B, s *stack, n int, within time.Duration, watch *proc) {
	b.Helper()
	deadline := time.Now().Add(within)
	lastLog := time.Now()
	var sum struct {
		Total        int            `json:"total"`
		ByPingStatus map[string]int `json:"byPingStatus"`
	}
	for {
		if watch != nil && watch.exited() {
			b.Fatalf("%s exited while waiting for %d Online nodes: %v", watch.name, n, watch.err)
		}
		err := s.apiJSON("GET", "/v1/fleet/summary", nil, &sum)
		if err == nil && sum.ByPingStatus["Online"] == n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d nodes Online: not within %s: summary %+v, %v", n, within, sum, err)
		}
		if time.Since(lastLog) > 10*time.Second {
			b.Logf("waiting for %d Online nodes: %v", n, sum.ByPingStatus)
			lastLog = time.Now()
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// preregisterSwarm registers n swarm identities into stateDir/node-NNNNN
// with activations of at most 1,000 registrations each (the API's limit,
// so `swarm --count 10000` cannot register with one activation), the same
// way `fleetops-agent swarm` does; the swarm then reuses them.
func preregisterSwarm(b *testing.B, s *stack, stateDir string, n int, tagKey, tagValue string) {
	b.Helper()
	type job struct {
		i   int
		act activation
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for range 32 {
		wg.Go(func() {
			for j := range jobs {
				id, err := agent.Register(context.Background(), agent.RegisterConfig{
					ServerURL: s.url, ActivationID: j.act.ActivationID, ActivationCode: j.act.ActivationCode,
					Host: benchSwarmHost(j.i), HTTPClient: hc,
				})
				if err == nil {
					err = agent.SaveIdentity(filepath.Join(stateDir, fmt.Sprintf("node-%05d", j.i)), id)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("register swarm node %d: %w", j.i, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	var act activation
	for i := range n {
		if i%maxActivationRegistrations == 0 {
			s.cli(&act, "activation", "create", "--registration-limit", strconv.Itoa(min(maxActivationRegistrations, n-i)),
				"--tag", tagKey+"="+tagValue)
		}
		jobs <- job{i, act}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}

// benchSwarmHost mirrors the swarm's fake host facts for node i.
func benchSwarmHost(i int) agentproto.HostInfo {
	return agentproto.HostInfo{
		Hostname: fmt.Sprintf("swarm-%05d", i), PlatformType: "Linux", PlatformName: "FleetOps Swarm",
		PlatformVersion: "1", Kernel: "swarm", Architecture: runtime.GOARCH,
		IPAddresses:  []string{fmt.Sprintf("10.%d.%d.%d", (i>>16)&255, (i>>8)&255, i&255)},
		AgentVersion: agent.Version,
	}
}

// startBenchStack runs `fleetops dev --no-agent` (server and worker in one
// process, SQLite in the data dir) against a tuned Temporal dev server.
func startBenchStack(b *testing.B, logDir string) *stack {
	b.Helper()
	dataDir := b.TempDir()
	port := freePort(b)
	s := &stack{t: b, url: "http://127.0.0.1:" + strconv.Itoa(port), dataDir: dataDir}
	args := []string{"dev", "--data-dir", dataDir, "--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--no-agent", "--agent-binary-dir", bins.dir}
	if os.Getenv("FLEETOPS_BENCH_TEMPORAL") == "embedded" {
		tport := freePort(b)
		s.temporalAddr = "127.0.0.1:" + strconv.Itoa(tport)
		args = append(args, "--temporal-binary", bins.temporal, "--temporal-port", strconv.Itoa(tport),
			"--temporal-ui-port", strconv.Itoa(freePort(b)))
	} else {
		s.temporalAddr = startTemporal(b)
		args = append(args, "--temporal-address", s.temporalAddr)
	}
	s.server = startLogged(b, "dev", filepath.Join(logDir, "dev.log"), bins.fleetops, args...)
	s.waitReady()
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		b.Fatalf("admin token: %v", err)
	}
	s.token = strings.TrimSpace(string(tok))
	return s
}

// benchLogDir is where a benchmark's processes write their logs.
func benchLogDir(b *testing.B) string {
	b.Helper()
	root := os.Getenv("FLEETOPS_BENCH_LOG_DIR")
	if root == "" {
		return b.TempDir()
	}
	dir := filepath.Join(root, strings.ReplaceAll(b.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}

// startLogged is startProc with the output going to a file rather than
// memory (10,000 nodes log a lot); its tail is shown when the benchmark fails.
func startLogged(tb testing.TB, name, logPath, bin string, args ...string) *proc {
	tb.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = cleanEnv()
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); f.Close(); close(p.done) }()
	tb.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if tb.Failed() {
			tb.Logf("---- %s log (%s), tail ----\n%s", name, logPath, tail(logPath, 8<<10))
		}
	})
	return p
}

func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// procStatusKB reads a kB field (VmRSS, VmHWM) of /proc/PID/status.
func procStatusKB(pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb
		}
	}
	return 0
}

// cpuSeconds is the user+system CPU time a process has used so far.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

// cpuMeter measures the CPU time named processes use over an interval.
type cpuMeter struct {
	names []string
	pids  []int
	start []float64
	at    time.Time
}

func newCPUMeter(procs map[string]int) *cpuMeter {
	m := &cpuMeter{at: time.Now()}
	for name := range procs {
		m.names = append(m.names, name)
	}
	slices.Sort(m.names)
	for _, name := range m.names {
		m.pids = append(m.pids, procs[name])
		m.start = append(m.start, cpuSeconds(procs[name]))
	}
	return m
}

// String reports CPU seconds per process and the machine's core-seconds.
func (m *cpuMeter) String() string {
	var parts []string
	for i, name := range m.names {
		parts = append(parts, fmt.Sprintf("%s %.1fs", name, cpuSeconds(m.pids[i])-m.start[i]))
	}
	return fmt.Sprintf("%s of %.1f core-seconds (%d cores × %s)", strings.Join(parts, ", "),
		float64(runtime.NumCPU())*time.Since(m.at).Seconds(), runtime.NumCPU(), time.Since(m.at).Round(100*time.Millisecond))
}

// temporalPID is the pid of the temporal dev server listening on addr's
// port, found by its command line; 0 when not found.
func temporalPID(addr string) int {
	_, port, _ := strings.Cut(addr, ":")
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
		args := strings.Split(string(b), "\x00")
		if len(args) >= 2 && filepath.Base(args[0]) == "temporal" && slices.Contains(args, port) {
			return pid
		}
	}
	return 0
}

// temporalRSSKB is the resident size of the temporal dev server listening
// on addr's port, found by its command line; 0 when not found.
func temporalRSSKB(addr string) int {
	if pid := temporalPID(addr); pid != 0 {
		return procStatusKB(pid, "VmRSS")
	}
	return 0
}

// pct is the p-th percentile (nearest rank) of sorted d.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(d)))) - 1
	return d[max(0, min(i, len(d)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(kb int) float64         { return float64(kb) / 1024 }
