package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// recordingSender is a fake connection: it records what the runner sends.
type recordingSender struct {
	mu   sync.Mutex
	envs []agentproto.Envelope
}

func (s *recordingSender) Send(_ context.Context, env agentproto.Envelope) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.envs = append(s.envs, env)
	return nil
}

func (s *recordingSender) all() []agentproto.Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]agentproto.Envelope(nil), s.envs...)
}

// ofType decodes every recorded message of type typ for invocation id.
func ofType[T any](t testing.TB, s *recordingSender, typ, id string) []T {
	t.Helper()
	var out []T
	for _, env := range s.all() {
		if env.Type != typ {
			continue
		}
		var probe struct {
			InvocationID string `json:"invocationId"`
		}
		require.NoError(t, env.Decode(&probe))
		if probe.InvocationID != id {
			continue
		}
		var v T
		require.NoError(t, env.Decode(&v))
		out = append(out, v)
	}
	return out
}

// waitResult waits for the n-th command_result of id on s.
func waitResult(t testing.TB, s *recordingSender, id string, n int) agentproto.CommandResult {
	t.Helper()
	var res []agentproto.CommandResult
	require.Eventually(t, func() bool {
		res = ofType[agentproto.CommandResult](t, s, agentproto.TypeCommandResult, id)
		return len(res) >= n
	}, 10*time.Second, 5*time.Millisecond, "no command_result #%d for %s", n, id)
	return res[n-1]
}

// conn is one fake connection: a Sender and the context that ends with it.
type fakeConn struct {
	ctx    context.Context
	cancel context.CancelFunc
	s      *recordingSender
}

func newConn(t testing.TB, r *CommandRunner) *fakeConn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := &fakeConn{ctx: ctx, cancel: cancel, s: &recordingSender{}}
	r.OnConnect(ctx, c.s)
	return c
}

func newTestRunner(t testing.TB, dir string, mod ...func(*RunnerConfig)) *CommandRunner {
	t.Helper()
	log, _ := testLogger(t)
	cfg := RunnerConfig{StateDir: dir, Logger: log, KillGrace: 300 * time.Millisecond, FlushInterval: 20 * time.Millisecond}
	for _, m := range mod {
		m(&cfg)
	}
	r, err := NewCommandRunner(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, r.Shutdown(ctx))
	})
	return r
}

func (c *fakeConn) deliver(t testing.TB, r *CommandRunner, typ string, payload any) {
	t.Helper()
	env, err := agentproto.NewEnvelope(typ, payload)
	require.NoError(t, err)
	require.NoError(t, r.Handlers()[typ](c.ctx, env, c.s))
}

func shellStep(name string, inputs map[string]any) agentproto.Step {
	raw, _ := json.Marshal(inputs)
	return agentproto.Step{Name: name, Action: ActionRunShellScript, Inputs: raw}
}

func script(lines ...string) map[string]any { return map[string]any{"runCommand": lines} }

func invocation1(id string, steps ...agentproto.Step) agentproto.RunCommand {
	return agentproto.RunCommand{InvocationID: id, CommandID: strings.Split(id, ":")[0], DocumentName: "AWS-RunShellScript", Steps: steps}
}

func TestShellOutputAndExitCode(t *testing.T) {
	r := newTestRunner(t, t.TempDir())
	c := newConn(t, r)
	c.deliver(t, r, agentproto.TypeRunCommand, invocation1("c1:i",
		shellStep("hello", script("echo hello", "echo oops >&2")),
		shellStep("fail", script("echo before", "exit 3")),
	))
	res := waitResult(t, c.s, "c1:i", 1)
	require.Equal(t, agentproto.StatusFailed, res.Status)
	require.Len(t, res.Steps, 2)
	assert.Equal(t, agentproto.StepResult{Name: "hello", Status: agentproto.StatusSuccess, ResponseCode: 0, Stdout: "hello\n", Stderr: "oops\n",
		StartedAt: res.Steps[0].StartedAt, EndedAt: res.Steps[0].EndedAt}, res.Steps[0])
	assert.Equal(t, agentproto.StatusFailed, res.Steps[1].Status)
	assert.Equal(t, 3, res.Steps[1].ResponseCode)
	assert.Equal(t, "before\n", res.Steps[1].Stdout)

	// The ack came first, and its StartedAt is the first step's start.
	envs := c.s.all()
	require.Equal(t, agentproto.TypeCommandAck, envs[0].Type)
	acks := ofType[agentproto.CommandAck](t, c.s, agentproto.TypeCommandAck, "c1:i")
	require.Len(t, acks, 1)
	assert.False(t, acks[0].Duplicate)
	assert.True(t, acks[0].StartedAt.Equal(res.Steps[0].StartedAt))
	assert.True(t, res.StartedAt.Equal(acks[0].StartedAt))
}

func TestFailedStepStopsLaterSteps(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	r := newTestRunner(t, t.TempDir())
	c := newConn(t, r)
	c.deliver(t, r, agentproto.TypeRunCommand, invocation1("c2:i",
		shellStep("first", script("exit 2")),
		shellStep("second", script("touch "+marker)),
	))
	res := waitResult(t, c.s, "c2:i", 1)
	assert.Equal(t, agentproto.StatusFailed, res.Status)
	assert.Equal(t, 2, res.Steps[0].ResponseCode)
	assert.Equal(t, agentproto.StatusSkipped, res.Steps[1].Status)
	assert.Equal(t, -1, res.Steps[1].ResponseCode)
	assert.NoFileExists(t, marker)
}

// processGone reports whether pid no longer runs (a zombie counts as gone:
// in a container without an init, nobody may reap it).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func readPID(t testing.TB, path string) int {
	t.Helper()
	var pid int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	}, 5*time.Second, 5*time.Millisecond)
	return pid
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	r := newTestRunner(t, t.TempDir())
	c := newConn(t, r)
	rc := invocation1("c3:i",
		shellStep("slow", script("sleep 100 &", "echo $! > "+pidFile, "sleep 100")),
		shellStep("after", script("echo never")))
	rc.ExecutionTimeoutSeconds = 1
	c.deliver(t, r, agentproto.TypeRunCommand, rc)
	res := waitResult(t, c.s, "c3:i", 1)
	assert.Equal(t, agentproto.StatusTimedOut, res.Status)
	assert.Equal(t, agentproto.StatusTimedOut, res.Steps[0].Status)
	assert.Equal(t, 128+int(syscall.SIGTERM), res.Steps[0].ResponseCode)
	assert.Contains(t, res.Steps[0].Stderr, "timed out")
	assert.Equal(t, agentproto.StatusSkipped, res.Steps[1].Status)
	assert.True(t, processGone(readPID(t, pidFile)), "the backgrounded child survived the timeout")
}

func TestStepTimeoutRule(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{``, DefaultStepTimeout},
		{`"10"`, 10 * time.Second},
		{`10`, 10 * time.Second},
		{`" 172800 "`, 172800 * time.Second},
		{`4`, DefaultStepTimeout},
		{`"172801"`, DefaultStepTimeout},
		{`"1.5"`, DefaultStepTimeout},
		{`"abc"`, DefaultStepTimeout},
		{`true`, DefaultStepTimeout},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, stepTimeout(json.RawMessage(tt.in)), "timeoutSeconds %s", tt.in)
	}
}

func TestCancelKillsRunningGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	r := newTestRunner(t, t.TempDir())
	c := newConn(t, r)
	c.deliver(t, r, agentproto.TypeRunCommand, invocation1("c4:i",
		shellStep("slow", script("sleep 100 &", "echo $! > "+pidFile, "echo started", "sleep 100"))))
	require.Eventually(t, func() bool {
		return len(ofType[agentproto.CommandOutput](t, c.s, agentproto.TypeCommandOutput, "c4:i")) > 0
	}, 5*time.Second, 5*time.Millisecond)
	c.deliver(t, r, agentproto.TypeCancelCommand, agentproto.CancelCommand{InvocationID: "c4:i"})
	res := waitResult(t, c.s, "c4:i", 1)
	assert.Equal(t, agentproto.StatusCancelled, res.Status)
	assert.Equal(t, agentproto.StatusCancelled, res.Steps[0].Status)
	assert.Equal(t, "started\n", res.Steps[0].Stdout)
	assert.True(t, processGone(readPID(t, pidFile)), "the backgrounded child survived the cancel")
}

func TestCancelQueuedAndUnknown(t *testing.T) {
	dir := t.TempDir()
	r := newTestRunner(t, t.TempDir(), func(c *RunnerConfig) { c.MaxConcurrent = 1 })
	c := newConn(t, r)
	c.deliver(t, r, agentproto.TypeRunCommand, invocation1("c5:busy", shellStep("s", script("sleep 100"))))
	queued := filepath.Join(dir, "queued-ran")
	c.deliver(t, r, agentproto.TypeRunCommand, invocation1("c5:queued", shellStep("s", script("touch "+queued))))
	acks := ofType[agentproto.CommandAck](t, c.s, agentproto.TypeCommandAck, "c5:queued")
	require.Len(t, acks, 1)
	assert.True(t, acks[0].StartedAt.IsZero(), "a queued invocation is acknowledged without StartedAt")

	c.deliver(t, r, agentproto.TypeCancelCommand, agentproto.CancelCommand{InvocationID: "c5:queued"})
	res := waitResult(t, c.s, "c5:queued", 1)
	assert.Equal(t, agentproto.StatusCancelled, res.Status)
	assert.Equal(t, []agentproto.StepResult{{Name: "s", Status: agentproto.StatusCancelled, ResponseCode: -1}}, res.Steps)

	// Cancelled before it arrives: refused with a Cancelled result.
	early := filepath.Join(dir, "early-ran")
	c.deliver(t, r, agentproto.TypeCancelCommand, agentproto.CancelCommand{InvocationID: "c5:early"})
	assert.Empty(t, ofType[agentproto.CommandResult](t, c.s, agentproto.TypeCommandResult, "c5:early"))
	c.deliver(t, r, agentproto.TypeRunCommand, invocation1("c5:early", shellStep("s", script("touch "+early))))
	res = waitResult(t, c.s, "c5:early", 1)
	assert.Equal(t, agentproto.StatusCancelled, res.Status)
	assert.Equal(t, []agentproto.StepResult{{Name: "s", Status: agentproto.StatusCancelled, ResponseCode: -1}}, res.Steps)

	c.deliver(t, r, agentproto.TypeCancelCommand, agentproto.CancelCommand{InvocationID: "c5:busy"})
	assert.Equal(t, agentproto.StatusCancelled, waitResult(t, c.s, "c5:busy", 1).Status)
	assert.NoFileExists(t, queued)
	assert.NoFileExists(t, early)
}

func TestStepEnvReachesScript(t *testing.T) {
	dir := t.TempDir()
	r := newTestRunner(t, t.TempDir())
	c := newConn(t, r)
	value := `hi there; $(touch ` + filepath.Join(dir, "pwned") + `) "quoted"`
	step := shellStep("env", script(`printf '%s' "$GREETING"`))
	step.Env = map[string]string{"GREETING": value}
	c.deliver(t, r, agentproto.TypeRunCommand, invocation1("c6:i", step))
	res := waitResult(t, c.s, "c6:i", 1)
	require.Equal(t, agentproto.StatusSuccess, res.Status, res.Steps[0].Stderr)
	assert.Equal(t, value, res.Steps[0].Stdout)
	assert.NoFileExists(t, filepath.Join(dir, "pwned"))
}

func TestDuplicateNeverRunsTwice(t *testing.T) {
	state, work := t.TempDir(), t.TempDir()
	count := filepath.Join(work, "count")
	rc := invocation1("c7:i", shellStep("count", script("echo run >> "+count, "sleep 0.2")))

	r := newTestRunner(t, state)
	c := newConn(t, r)
	c.deliver(t, r, agentproto.TypeRunCommand, rc)
	c.deliver(t, r, agentproto.TypeRunCommand, rc) // while it runs
	first := waitResult(t, c.s, "c7:i", 1)
	require.Equal(t, agentproto.StatusSuccess, first.Status)
	c.deliver(t, r, agentproto.TypeRunCommand, rc) // after it finished
	again := waitResult(t, c.s, "c7:i", 2)
	assert.Equal(t, first.Status, again.Status)
	assert.Equal(t, first.Steps, again.Steps)
	acks := ofType[agentproto.CommandAck](t, c.s, agentproto.TypeCommandAck, "c7:i")
	require.Len(t, acks, 3)
	assert.Equal(t, []bool{false, true, true}, []bool{acks[0].Duplicate, acks[1].Duplicate, acks[2].Duplicate})
	c.deliver(t, r, agentproto.TypeCommandResultAck, agentproto.CommandResultAck{InvocationID: "c7:i"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, r.Shutdown(ctx))

	// Agent restart: a new runner on the same state dir.
	r2 := newTestRunner(t, state)
	c2 := newConn(t, r2)
	assert.Empty(t, c2.s.all(), "an acknowledged result is not resent")
	c2.deliver(t, r2, agentproto.TypeRunCommand, rc)
	res := waitResult(t, c2.s, "c7:i", 1)
	assert.Equal(t, first.Steps, res.Steps)
	acks = ofType[agentproto.CommandAck](t, c2.s, agentproto.TypeCommandAck, "c7:i")
	require.Len(t, acks, 1)
	assert.True(t, acks[0].Duplicate)

	b, err := os.ReadFile(count)
	require.NoError(t, err)
	assert.Equal(t, "run\n", string(b), "the invocation ran more than once")
}

func TestResultResentUntilAcked(t *testing.T) {
	state := t.TempDir()
	r := newTestRunner(t, state)
	c1 := newConn(t, r)
	c1.deliver(t, r, agentproto.TypeRunCommand, invocation1("c8:i", shellStep("s", script("sleep 0.3", "echo done"))))
	c1.cancel() // the connection drops while the step runs
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.known["c8:i"].state == invFinished
	}, 5*time.Second, 5*time.Millisecond)
	assert.Empty(t, ofType[agentproto.CommandResult](t, c1.s, agentproto.TypeCommandResult, "c8:i"))

	c2 := newConn(t, r)
	res := waitResult(t, c2.s, "c8:i", 1)
	assert.Equal(t, agentproto.StatusSuccess, res.Status)
	assert.Equal(t, "done\n", res.Steps[0].Stdout)

	c3 := newConn(t, r) // not acknowledged yet: resent
	waitResult(t, c3.s, "c8:i", 1)
	c3.deliver(t, r, agentproto.TypeCommandResultAck, agentproto.CommandResultAck{InvocationID: "c8:i"})

	c4 := newConn(t, r)
	assert.Empty(t, c4.s.all())
}

func TestInterruptedInvocationReportedFailed(t *testing.T) {
	state := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(state, InvocationsDir), 0o700))
	st := recordStore{dir: filepath.Join(state, InvocationsDir)}
	require.NoError(t, st.save(invocationRecord{
		InvocationID: "c9:i", State: stateAccepted, ReceivedAt: time.Now(),
		Steps: []recordStep{{Name: "a"}, {Name: "b", Skipped: true}},
	}))
	r := newTestRunner(t, state)
	c := newConn(t, r)
	res := waitResult(t, c.s, "c9:i", 1)
	assert.Equal(t, agentproto.StatusFailed, res.Status)
	assert.Equal(t, agentproto.StatusFailed, res.Steps[0].Status)
	assert.Contains(t, res.Steps[0].Stderr, "not resumed")
	assert.Equal(t, agentproto.StatusSkipped, res.Steps[1].Status)

	// And it is never run.
	c.deliver(t, r, agentproto.TypeRunCommand, invocation1("c9:i", shellStep("a", script("echo ran"))))
	again := waitResult(t, c.s, "c9:i", 2)
	assert.Equal(t, res.Steps, again.Steps)
}

func TestOutputTruncated(t *testing.T) {
	r := newTestRunner(t, t.TempDir())
	c := newConn(t, r)
	rc := invocation1("c10:i", shellStep("big", script("head -c 1000 /dev/zero | tr '\\0' a", "echo small >&2")))
	rc.MaxOutputBytes = 100
	c.deliver(t, r, agentproto.TypeRunCommand, rc)
	res := waitResult(t, c.s, "c10:i", 1)
	assert.Equal(t, agentproto.StatusSuccess, res.Status)
	assert.Equal(t, strings.Repeat("a", 100), res.Steps[0].Stdout)
	assert.Equal(t, "small\n", res.Steps[0].Stderr)
	assert.True(t, res.Steps[0].Truncated)
}

func TestStreamedChunksAreContiguous(t *testing.T) {
	r := newTestRunner(t, t.TempDir())
	c := newConn(t, r)
	c.deliver(t, r, agentproto.TypeRunCommand, invocation1("c11:i",
		shellStep("one", script("for i in 1 2 3; do head -c 50000 /dev/zero | tr '\\0' x; sleep 0.05; done", "echo é€")),
		shellStep("two", script("echo second", "echo err >&2")),
	))
	res := waitResult(t, c.s, "c11:i", 1)
	require.Equal(t, agentproto.StatusSuccess, res.Status)
	chunks := ofType[agentproto.CommandOutput](t, c.s, agentproto.TypeCommandOutput, "c11:i")
	streams := map[string]*strings.Builder{agentproto.StreamStdout: {}, agentproto.StreamStderr: {}}
	steps := map[string]map[string]string{}
	for _, ch := range chunks {
		b := streams[ch.Stream]
		require.EqualValues(t, b.Len(), ch.Offset, "chunk of %s out of order", ch.Stream)
		b.WriteString(ch.Data)
		if steps[ch.Step] == nil {
			steps[ch.Step] = map[string]string{}
		}
		steps[ch.Step][ch.Stream] += ch.Data
	}
	assert.Greater(t, len(chunks), 3)
	assert.Equal(t, res.Steps[0].Stdout+res.Steps[1].Stdout, streams[agentproto.StreamStdout].String())
	assert.Equal(t, res.Steps[1].Stderr, streams[agentproto.StreamStderr].String())
	assert.Equal(t, res.Steps[0].Stdout, steps["one"][agentproto.StreamStdout])
	assert.Equal(t, "second\n", steps["two"][agentproto.StreamStdout])
	assert.Equal(t, 150000+len("é€\n"), len(res.Steps[0].Stdout))
}

func TestWorkingDirectory(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	r := newTestRunner(t, t.TempDir())
	c := newConn(t, r)
	c.deliver(t, r, agentproto.TypeRunCommand, invocation1("c12:i",
		shellStep("pwd", map[string]any{"runCommand": "pwd", "workingDirectory": dir, "timeoutSeconds": "30"})))
	res := waitResult(t, c.s, "c12:i", 1)
	require.Equal(t, agentproto.StatusSuccess, res.Status, res.Steps[0].Stderr)
	assert.Equal(t, dir+"\n", res.Steps[0].Stdout)

	c.deliver(t, r, agentproto.TypeRunCommand, invocation1("c12:missing",
		shellStep("pwd", map[string]any{"runCommand": "pwd", "workingDirectory": filepath.Join(dir, "nope")})))
	res = waitResult(t, c.s, "c12:missing", 1)
	assert.Equal(t, agentproto.StatusFailed, res.Status)
	assert.Contains(t, res.Steps[0].Stderr, "does not exist")
}

func TestNoopUnsupportedAndSkipped(t *testing.T) {
	r := newTestRunner(t, t.TempDir())
	c := newConn(t, r)
	c.deliver(t, r, agentproto.TypeRunCommand, invocation1("c13:i",
		agentproto.Step{Name: "skip", Action: ActionRunShellScript, Skipped: true},
		agentproto.Step{Name: "noop", Action: ActionNoop},
		agentproto.Step{Name: "weird", Action: "aws:configurePackage"},
	))
	res := waitResult(t, c.s, "c13:i", 1)
	assert.Equal(t, agentproto.StatusFailed, res.Status)
	assert.Equal(t, agentproto.StatusSkipped, res.Steps[0].Status)
	assert.Equal(t, agentproto.StatusSuccess, res.Steps[1].Status)
	assert.Equal(t, agentproto.StatusFailed, res.Steps[2].Status)
	assert.Contains(t, res.Steps[2].Stderr, `unsupported action: "aws:configurePackage"`)
}

func TestDownloadContent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/files/tool.sh" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("echo downloaded\n"))
	}))
	t.Cleanup(srv.Close)
	dest := t.TempDir()
	r := newTestRunner(t, t.TempDir())
	c := newConn(t, r)
	step := func(name, url, destination string) agentproto.Step {
		raw, _ := json.Marshal(map[string]any{"sourceType": "HTTP", "sourceInfo": `{"url":"` + url + `"}`, "destinationPath": destination})
		return agentproto.Step{Name: name, Action: ActionDownloadContent, Inputs: raw}
	}
	c.deliver(t, r, agentproto.TypeRunCommand, invocation1("c14:i",
		step("abs", srv.URL+"/files/tool.sh", dest),
		step("rel", srv.URL+"/files/tool.sh", "sub/tool.sh"),
		shellStep("use", script("sh sub/tool.sh")),
	))
	res := waitResult(t, c.s, "c14:i", 1)
	require.Equal(t, agentproto.StatusSuccess, res.Status, "%+v", res.Steps)
	b, err := os.ReadFile(filepath.Join(dest, "tool.sh"))
	require.NoError(t, err)
	assert.Equal(t, "echo downloaded\n", string(b))
	assert.Equal(t, "downloaded\n", res.Steps[2].Stdout)

	c.deliver(t, r, agentproto.TypeRunCommand, invocation1("c14:404", step("missing", srv.URL+"/nope", dest)))
	res = waitResult(t, c.s, "c14:404", 1)
	assert.Equal(t, agentproto.StatusFailed, res.Status)
	assert.Contains(t, res.Steps[0].Stderr, "HTTP 404")

	// A stored document arrives resolved by the server and lands as NAME.json.
	raw, _ := json.Marshal(map[string]any{"sourceType": "SSMDocument", "sourceInfo": `{"name":"Tools"}`, "destinationPath": dest,
		"documentName": "Tools", "documentContent": `{"schemaVersion":"2.2"}`})
	c.deliver(t, r, agentproto.TypeRunCommand, invocation1("c14:doc", agentproto.Step{Name: "doc", Action: ActionDownloadContent, Inputs: raw}))
	res = waitResult(t, c.s, "c14:doc", 1)
	require.Equal(t, agentproto.StatusSuccess, res.Status, "%+v", res.Steps)
	b, err = os.ReadFile(filepath.Join(dest, "Tools.json"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"schemaVersion":"2.2"}`, string(b))
}

func TestOutputCaptureKeepsValidUTF8(t *testing.T) {
	c := newOutputCapture(8)
	_, _ = c.Write([]byte("a\xc3"))     // é split across writes
	_, _ = c.Write([]byte("\xa9\xffb")) // ... and an invalid byte
	_, _ = c.Write([]byte("€€"))        // 6 bytes: only one fits
	c.endStep()
	got, truncated := c.since(0, 0)
	assert.Equal(t, "aé\uFFFDb", got, "a rune that does not fit is dropped whole")
	assert.True(t, truncated)
}

func TestRunnerWithAgentResendsOnReconnect(t *testing.T) {
	g := newFakeGateway(t, false)
	r := newTestRunner(t, t.TempDir())
	cfg := fastConfig(t, g)
	cfg.Handlers = r.Handlers()
	cfg.OnConnect = r.OnConnect
	a, err := New(cfg)
	require.NoError(t, err)
	startAgent(t, a)

	ws := g.nextConn(t)
	g.send(ws, agentproto.TypeRunCommand, invocation1("c15:i", agentproto.Step{Name: "noop", Action: ActionNoop}))
	ack := g.waitFor(t, agentproto.TypeCommandAck)
	var ca agentproto.CommandAck
	require.NoError(t, ack.Decode(&ca))
	assert.False(t, ca.StartedAt.IsZero())
	g.waitFor(t, agentproto.TypeCommandResult)

	_ = ws.CloseNow() // connection lost before the server acknowledged
	ws = g.nextConn(t)
	env := g.waitFor(t, agentproto.TypeCommandResult)
	var res agentproto.CommandResult
	require.NoError(t, env.Decode(&res))
	assert.Equal(t, "c15:i", res.InvocationID)
	assert.Equal(t, agentproto.StatusSuccess, res.Status)
	g.send(ws, agentproto.TypeCommandResultAck, agentproto.CommandResultAck{InvocationID: "c15:i"})
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return !r.known["c15:i"].resultPending
	}, 5*time.Second, 5*time.Millisecond)
}

func TestPruneAfterRetention(t *testing.T) {
	state := t.TempDir()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	r := newTestRunner(t, state, func(c *RunnerConfig) { c.Now = clock })
	c := newConn(t, r)
	rc := invocation1("c16:i", agentproto.Step{Name: "noop", Action: ActionNoop})
	c.deliver(t, r, agentproto.TypeRunCommand, rc)
	waitResult(t, c.s, "c16:i", 1)
	c.deliver(t, r, agentproto.TypeCommandResultAck, agentproto.CommandResultAck{InvocationID: "c16:i"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, r.Shutdown(ctx))

	mu.Lock()
	now = now.Add(6 * 24 * time.Hour)
	mu.Unlock()
	r2 := newTestRunner(t, state, func(c *RunnerConfig) { c.Now = clock })
	c2 := newConn(t, r2)
	c2.deliver(t, r2, agentproto.TypeRunCommand, rc)
	acks := ofType[agentproto.CommandAck](t, c2.s, agentproto.TypeCommandAck, "c16:i")
	require.Len(t, acks, 1)
	assert.True(t, acks[0].Duplicate, "within retention the ID is remembered")
	require.NoError(t, r2.Shutdown(ctx))

	mu.Lock()
	now = now.Add(2 * 24 * time.Hour)
	mu.Unlock()
	newTestRunner(t, state, func(c *RunnerConfig) { c.Now = clock })
	ents, err := os.ReadDir(filepath.Join(state, InvocationsDir))
	require.NoError(t, err)
	assert.Empty(t, ents, "the record outlived its retention")
}
