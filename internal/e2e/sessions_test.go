package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/creack/pty"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// TestSessions drives Session Manager through real processes: the CLI in a
// real PTY, the server, a worker, Temporal and a real agent that starts real
// shells in real PTYs.
func TestSessions(t *testing.T) {
	hooks := newWebhookReceiver(t, "hook-secret")
	sinkFile := filepath.Join(t.TempDir(), "sessions.jsonl")
	s, a := startSessionStack(t, stackOptions{dialect: "sqlite", heartbeat: "1s", connectionLostAfter: "3s", serverArgs: []string{
		"--session-idle-timeout", "6s", "--session-max-duration", "15s",
		"--session-log-sink", "file:" + sinkFile,
		"--audit-webhook-url", hooks.srv.URL, "--audit-webhook-secret", "hook-secret",
	}})
	target := a.instanceID

	t.Run("Shell", func(t *testing.T) {
		term := s.startTerminal(t, "session", "start", "--target", target, "--reason", "e2e shell")
		term.send("echo hel''lo\r")
		term.expect(t, "hello")
		term.send("tty\r")
		term.expect(t, "/dev/pts/")
		term.send("id -un\r")
		term.expect(t, "fleetops-session")
		if err := pty.Setsize(term.ptmx, &pty.Winsize{Rows: 33, Cols: 111}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // SIGWINCH → resize frame → agent
		term.send("stty size\r")
		term.expect(t, "33 111")
		term.send("printf 'caf\\303\\251 \\342\\234\\223\\n'\r") // UTF-8 intact
		term.expect(t, "café ✓")
		// Ctrl-C and Ctrl-Z reach the remote shell through the CLI's raw mode.
		term.send("sleep 30\r")
		time.Sleep(300 * time.Millisecond)
		term.send("\x03")
		term.send("echo ctrl-c-rc=$?\r")
		term.expect(t, "ctrl-c-rc=130")
		term.send("sleep 31\r")
		time.Sleep(300 * time.Millisecond)
		term.send("\x1a")
		term.expect(t, "Stopped")
		term.send("kill -9 %1; echo jo''bs-$(jobs | wc -l)\r")
		term.expect(t, "jobs-")
		term.send("exit 3\r")
		if code := term.wait(t); code != 3 {
			t.Errorf("CLI exited %d, want the shell's 3\n%s", code, term.output())
		}
		id := s.lastSession(t)
		sess := s.session(t, id)
		if sess.Status != "Terminated" || !strings.Contains(sess.Details, "exited with code 3") {
			t.Errorf("session %+v", sess)
		}
		// The recording replays the output.
		cast, _, err := s.tryCLI("session", "export", id)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(cast, `{"version":2`) || !strings.Contains(castOutput(cast), "\rhello\r\n") {
			t.Errorf("recording does not hold the output:\n%.500s", cast)
		}
		replayed, _, err := s.tryCLI("session", "replay", id, "--max-idle", "10ms")
		if err != nil || !strings.Contains(replayed, "hello") || !strings.Contains(replayed, "café ✓") {
			t.Errorf("replay %q, %v", replayed, err)
		}
	})

	t.Run("NonInteractiveCommandExitCode", func(t *testing.T) {
		stdout, _, err := s.tryCLI("session", "start", "--target", target, "--command", "echo from-command; exit 5")
		if code := exitCode(err); code != 5 || !strings.Contains(stdout, "from-command") {
			t.Errorf("command session: exit %d, output %q", code, stdout)
		}
		// Input that ends at once (a script's) does not cut a command short.
		stdout, _, err = s.tryCLI("session", "start", "--target", target, "--command", "sleep 1; echo still-here; exit 4")
		if code := exitCode(err); code != 4 || !strings.Contains(stdout, "still-here") {
			t.Errorf("command outliving its input: exit %d, output %q", code, stdout)
		}
		// Piped input drives a shell, whose exit ends the session.
		stdout, _, err = s.tryCLIWithInput("echo pip''ed-ok\nexit 6\n", "session", "start", "--target", target)
		if code := exitCode(err); code != 6 || !strings.Contains(stdout, "piped-ok") {
			t.Errorf("piped shell: exit %d, output %q", code, stdout)
		}
	})

	t.Run("TerminateFromAPIAuditAndWebhook", func(t *testing.T) {
		term := s.startTerminal(t, "session", "start", "--target", target, "--reason", "incident 42")
		term.send("echo rea''dy\r")
		term.expect(t, "ready")
		id := s.lastSession(t)
		s.cli(nil, "session", "terminate", id)
		if code := term.wait(t); code == 0 && !strings.Contains(term.output(), "session ended") {
			t.Errorf("CLI did not report the end:\n%s", term.output())
		}
		eventually(t, 10*time.Second, "session terminated", func() error {
			if st := s.session(t, id).Status; st != "Terminated" {
				return fmt.Errorf("status %s", st)
			}
			return nil
		})
		var audit struct {
			Events []struct{ Action, Resource, Actor, SourceIP string }
		}
		s.cli(&audit, "audit", "list")
		var started, terminated bool
		for _, e := range audit.Events {
			started = started || (e.Action == "session.start" && strings.Contains(e.Resource, id) && strings.Contains(e.Resource, target))
			terminated = terminated || (e.Action == "session.terminate" && strings.Contains(e.Resource, id))
		}
		if !started || !terminated {
			t.Errorf("audit log lacks the start or terminate of %s: %+v", id, audit.Events)
		}
		hooks.expect(t, "session.start", id, "incident 42")
		hooks.expect(t, "session.terminate", id, "")
	})

	t.Run("IdleTimeout", func(t *testing.T) {
		term := s.startTerminal(t, "session", "start", "--target", target)
		term.send("echo idl''e\r")
		term.expect(t, "idle")
		id := s.lastSession(t)
		start := time.Now()
		term.wait(t)
		if waited := time.Since(start); waited < 4*time.Second {
			t.Errorf("session ended after %s, before the 6 s idle timeout", waited)
		}
		if sess := s.session(t, id); sess.Status != "Terminated" || !strings.Contains(sess.Details, "idle") {
			t.Errorf("session %+v, want Terminated by idle timeout", sess)
		}
	})

	t.Run("MaxDuration", func(t *testing.T) {
		term := s.startTerminal(t, "session", "start", "--target", target)
		start := time.Now()
		go func() { // keep it busy so only the maximum duration can end it
			for i := 0; i < 40; i++ {
				term.send("echo tick\r")
				time.Sleep(time.Second)
			}
		}()
		term.wait(t)
		if waited := time.Since(start); waited < 12*time.Second {
			t.Errorf("busy session ended after %s, before its 15 s maximum", waited)
		}
		id := s.lastSession(t)
		if sess := s.session(t, id); !strings.Contains(sess.Details, "maximum session duration") {
			t.Errorf("session %+v, want ended by the maximum duration", sess)
		}
	})

	t.Run("ResumeAfterNetworkBlip", func(t *testing.T) {
		var started struct {
			Session    struct{ SessionID string }
			TokenValue string
			StreamURL  string
		}
		if err := s.apiJSON("POST", "/v1/sessions", map[string]any{"target": target, "reason": "resume test"}, &started); err != nil {
			t.Fatal(err)
		}
		id := started.Session.SessionID
		ctx := context.Background()
		dial := func(token string) *websocket.Conn {
			ws, _, err := websocket.Dial(ctx, s.url+started.StreamURL,
				&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
			if err != nil {
				t.Fatalf("open stream: %v", err)
			}
			ws.SetReadLimit(agentproto.MaxFrameBytes)
			return ws
		}
		ws := dial(started.TokenValue)
		send := func(ws *websocket.Conn, text string) {
			_ = ws.Write(ctx, websocket.MessageBinary, append([]byte{agentproto.FrameData}, text...))
		}
		// More output than the 1 MiB resume buffer (and one frame) holds,
		// all of it produced while disconnected: the marker file says when.
		marker := filepath.Join(os.TempDir(), "fleetops-e2e-"+id)
		t.Cleanup(func() { os.Remove(marker) })
		send(ws, "sleep 1; head -c 1500000 /dev/zero | tr '\\0' x; echo; echo after-the-bl''ip; touch "+marker+"\r")
		ws.CloseNow() // the network drops: no close frame
		eventually(t, 10*time.Second, "session Disconnected", func() error {
			if st := s.session(t, id).Status; st != "Disconnected" {
				return fmt.Errorf("status %s", st)
			}
			return nil
		})
		eventually(t, 15*time.Second, "output produced while disconnected", func() error {
			_, err := os.Stat(marker)
			return err
		})
		var resumed struct{ TokenValue string }
		if err := s.apiJSON("POST", "/v1/sessions/"+id+"/resume", map[string]any{}, &resumed); err != nil {
			t.Fatal(err)
		}
		ws = dial(resumed.TokenValue)
		defer ws.CloseNow()
		// Output produced while disconnected was kept and arrives now.
		var out strings.Builder
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(out.String(), "after-the-blip") && time.Now().Before(deadline) {
			rctx, cancel := context.WithTimeout(ctx, time.Until(deadline))
			_, b, err := ws.Read(rctx)
			cancel()
			if err != nil {
				break
			}
			if len(b) > 0 && b[0] == agentproto.FrameData {
				out.Write(b[1:])
			}
		}
		if !strings.Contains(out.String(), "after-the-blip") {
			t.Errorf("resumed stream shows %q", out.String())
		}
		if st := s.session(t, id).Status; st != "Connected" {
			t.Errorf("status after resume %s", st)
		}
		var audit struct {
			Events []struct{ Action, Resource string }
		}
		s.cli(&audit, "audit", "list")
		found := false
		for _, e := range audit.Events {
			found = found || (e.Action == "session.resume" && strings.Contains(e.Resource, id))
		}
		if !found {
			t.Error("no session.resume audit entry")
		}
		hooks.expect(t, "session.resume", id, "resume test")
		_ = ws.Write(ctx, websocket.MessageBinary, []byte{agentproto.FrameClose})
	})

	t.Run("SessionDocument", func(t *testing.T) {
		// A stored Standard_Stream document sets the shell profile and the
		// run-as user of the sessions that name it.
		doc := filepath.Join(t.TempDir(), "ops-shell.yaml")
		if err := os.WriteFile(doc, []byte(`schemaVersion: "1.0"
description: operations shell
sessionType: Standard_Stream
inputs:
  shellProfile:
    linux: export FROM_PROFILE=ops-doc
`), 0o600); err != nil {
			t.Fatal(err)
		}
		s.cli(nil, "document", "create", "Ops-Shell", "--type", "Session", "--file", doc)
		term := s.startTerminal(t, "session", "start", "--target", target, "--document", "Ops-Shell")
		term.send("echo profile=$FROM_PROFILE\r")
		term.expect(t, "profile=ops-doc")
		term.send("exit\r")
		term.wait(t)
		if sess := s.session(t, s.lastSession(t)); sess.DocumentName != "Ops-Shell" {
			t.Errorf("session document %q, want Ops-Shell", sess.DocumentName)
		}

		runAs := filepath.Join(t.TempDir(), "run-as.yaml")
		if err := os.WriteFile(runAs, []byte("schemaVersion: \"1.0\"\nsessionType: Standard_Stream\ninputs:\n  runAsEnabled: true\n  runAsDefaultUser: no-such-user\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s.cli(nil, "document", "create", "Ghost-Shell", "--type", "Session", "--file", runAs)
		ghost := s.startTerminal(t, "session", "start", "--target", target, "--document", "Ghost-Shell")
		if code := ghost.wait(t); code != 255 || !strings.Contains(ghost.output(), "no-such-user") {
			t.Errorf("run-as a missing user: exit %d, output %q; want exit 255 and the agent's refusal naming the user", code, ghost.output())
		}
	})

	t.Run("ListFilters", func(t *testing.T) {
		var recent, old, none struct{ Sessions []sessionView }
		s.cli(&recent, "session", "list", "--state", "History", "--target", target, "--after", "1h")
		s.cli(&old, "session", "list", "--state", "History", "--before", "1h")
		s.cli(&none, "session", "list", "--state", "History", "--owner", "nobody-at-all")
		if len(recent.Sessions) == 0 || len(old.Sessions) != 0 || len(none.Sessions) != 0 {
			t.Errorf("history filters: %d in the last hour (want some), %d before it, %d of another owner (want none)",
				len(recent.Sessions), len(old.Sessions), len(none.Sessions))
		}
	})

	t.Run("LogSink", func(t *testing.T) {
		b, err := os.ReadFile(sinkFile)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"stream":"output"`) || !strings.Contains(string(b), "hello") {
			t.Errorf("session log sink holds %.300q", b)
		}
	})

	t.Run("Metrics", func(t *testing.T) {
		b, _, err := s.api("GET", "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`fleetops_sessions\{status="Connected"\} \d`),
			regexp.MustCompile(`fleetops_sessions_ended_total\{kind="Standard_Stream",status="Terminated"\} [1-9]`),
			regexp.MustCompile(`fleetops_sessions_ended_total\{kind="Standard_Stream",status="Failed"\} [1-9]`),
			regexp.MustCompile(`fleetops_session_bytes_total\{direction="input"\} [1-9]`),
			regexp.MustCompile(`fleetops_session_bytes_total\{direction="output"\} [1-9]`),
		} {
			if !want.Match(b) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("TokenIsSingleUse", func(t *testing.T) {
		var started struct {
			Session    struct{ SessionID string }
			TokenValue string
			StreamURL  string
		}
		if err := s.apiJSON("POST", "/v1/sessions", map[string]any{"target": target}, &started); err != nil {
			t.Fatal(err)
		}
		dial := func() (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(context.Background(), s.url+started.StreamURL,
				&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + started.TokenValue}}})
		}
		ws, _, err := dial()
		if err != nil {
			t.Fatalf("first use of the token: %v", err)
		}
		defer ws.CloseNow()
		if _, resp, err := dial(); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("second use of the token: %v (%v)", err, resp)
		}
		// An agent cannot open a data channel the server did not ask for.
		id := readIdentity(t, a)
		_, resp, err := websocket.Dial(context.Background(), s.url+agentproto.PathSessionData+started.Session.SessionID+"/data",
			&websocket.DialOptions{HTTPHeader: http.Header{
				"Authorization": {"Bearer " + id.Secret}, agentproto.HeaderInstanceID: {id.InstanceID},
				agentproto.HeaderChannelToken: {"forged"},
			}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("forged data channel: %v (%v)", err, resp)
		}
		_ = ws.Write(context.Background(), websocket.MessageBinary, []byte{agentproto.FrameClose})
	})

	t.Run("PortForward", func(t *testing.T) {
		echo := startEchoServer(t)
		pf := s.startProcCLI(t, "session", "port-forward", "--target", target, "--remote-port", fmt.Sprint(echo.port))
		local := pf.waitForAddr(t)

		// 32 connections at once, each echoing 1 MiB byte for byte.
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for i := 0; i < 32; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- echoCheck(local, 1<<20)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		// 100 MB through one connection, checked by hash.
		if err := echoCheck(local, 100<<20); err != nil {
			t.Error(err)
		}
		id := s.lastSession(t)
		stopAt := time.Now()
		pf.stop()
		t.Logf("port-forward stopped %s after Ctrl-C", time.Since(stopAt))
		// Ctrl-C ends the session at once, not after the resume grace.
		eventually(t, 10*time.Second, "port-forward session terminated after Ctrl-C", func() error {
			if st := s.session(t, id).Status; st != "Terminated" {
				return fmt.Errorf("status %s", st)
			}
			return nil
		})

		// Metadata addresses are refused on the node.
		time.Sleep(500 * time.Millisecond)
		_, stderr, err := s.tryCLI("session", "port-forward", "--target", target, "--remote-host", "169.254.169.254", "--remote-port", "80")
		if err == nil || !strings.Contains(stderr, "169.254.169.254") {
			t.Errorf("forwarding to the metadata address: %v, %q", err, stderr)
		}
	})

	t.Run("PerNodeLimit", func(t *testing.T) {
		// Sessions count from the moment they start (5 per node by default).
		var refused bool
		for i := 0; i < 6 && !refused; i++ {
			var out map[string]any
			err := s.apiJSON("POST", "/v1/sessions", map[string]any{"target": target}, &out)
			refused = err != nil && strings.Contains(err.Error(), "429")
		}
		if !refused {
			t.Error("the sixth concurrent session on a node was not refused")
		}
	})
}

// terminal is the CLI running in a real PTY.
type terminal struct {
	ptmx     *os.File
	cmd      *exec.Cmd
	mu       sync.Mutex
	buf      bytes.Buffer
	done     chan struct{} // the CLI exited
	readDone chan struct{} // and all it wrote was read
}

func (s *stack) startTerminal(t *testing.T, args ...string) *terminal {
	t.Helper()
	args = append(args, "--server", s.url, "--token", s.token)
	cmd := exec.Command(bins.fleetops, args...)
	cmd.Env = cleanEnv()
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	term := &terminal{ptmx: ptmx, cmd: cmd, done: make(chan struct{}), readDone: make(chan struct{})}
	go func() {
		defer close(term.readDone)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			term.mu.Lock()
			term.buf.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(term.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-term.done
		ptmx.Close()
	})
	return term
}

func (term *terminal) send(s string) { _, _ = term.ptmx.WriteString(s) }

func (term *terminal) output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.buf.String()
}

func (term *terminal) expect(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(term.output(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("terminal never showed %q; it shows:\n%s", want, term.output())
}

func (term *terminal) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-term.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("CLI did not exit; terminal shows:\n%s", term.output())
	}
	// The last output may still be in the PTY: read it (EIO ends it).
	select {
	case <-term.readDone:
	case <-time.After(5 * time.Second):
	}
	return term.cmd.ProcessState.ExitCode()
}

type sessionView struct {
	SessionID, Target, Status, Details, Reason, DocumentName string
}

func (s *stack) session(t *testing.T, id string) sessionView {
	t.Helper()
	var out struct{ Session sessionView }
	s.cli(&out, "session", "describe", id)
	return out.Session
}

func (s *stack) lastSession(t *testing.T) string {
	t.Helper()
	var id string
	eventually(t, 10*time.Second, "a session", func() error {
		var active, history struct{ Sessions []sessionView }
		s.cli(&active, "session", "list")
		s.cli(&history, "session", "list", "--state", "History")
		all := append(active.Sessions, history.Sessions...)
		if len(all) == 0 {
			return fmt.Errorf("no sessions")
		}
		id = all[0].SessionID
		return nil
	})
	return id
}

type identity struct {
	InstanceID string `json:"instanceId"`
	Secret     string `json:"secret"`
}

func readIdentity(t *testing.T, a *agentProc) identity {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(a.stateDir, "identity.json"))
	if err != nil {
		t.Fatal(err)
	}
	var id identity
	if err := json.Unmarshal(b, &id); err != nil || id.Secret == "" {
		t.Fatalf("identity %s: %v", b, err)
	}
	return id
}

type echoServer struct{ port int }

// startEchoServer starts a TCP server on the node that sends back what it
// reads.
func startEchoServer(t *testing.T) echoServer {
	t.Helper()
	return echoServer{port: startTCPServer(t, func(c net.Conn) { _, _ = io.Copy(c, c) })}
}

// echoCheck sends n random bytes through addr and checks they come back
// unchanged.
func echoCheck(addr string, n int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	want := sha256.New()
	go func() {
		buf := make([]byte, 64<<10)
		for sent := 0; sent < n; sent += len(buf) {
			chunk := buf[:min(len(buf), n-sent)]
			_, _ = rand.Read(chunk)
			want.Write(chunk)
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	got := sha256.New()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	m, err := io.Copy(got, c)
	if err != nil {
		return fmt.Errorf("echo through the tunnel: %w after %d bytes", err, m)
	}
	if int(m) != n || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		return fmt.Errorf("echo returned %d bytes (want %d) or different content", m, n)
	}
	return nil
}

// webhookReceiver records signed webhook deliveries.
type webhookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events []map[string]any
	bad    int
}

func newWebhookReceiver(t *testing.T, secret string) *webhookReceiver {
	w := &webhookReceiver{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		w.mu.Lock()
		defer w.mu.Unlock()
		if r.Header.Get("X-Fleetops-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			w.bad++
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev map[string]any
		_ = json.Unmarshal(body, &ev)
		w.events = append(w.events, ev)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhookReceiver) expect(t *testing.T, event, sessionID, reason string) {
	t.Helper()
	eventually(t, 10*time.Second, "webhook "+event, func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.bad > 0 {
			return fmt.Errorf("%d deliveries had a bad signature", w.bad)
		}
		for _, ev := range w.events {
			if ev["event"] == event && ev["sessionId"] == sessionID && (reason == "" || ev["reason"] == reason) {
				return nil
			}
		}
		return fmt.Errorf("not among %v", w.events)
	})
}

// castOutput concatenates the output events of an asciicast v2 recording.
func castOutput(cast string) string {
	var out strings.Builder
	for _, line := range scanLines(cast)[1:] {
		var ev []any
		if json.Unmarshal([]byte(line), &ev) == nil && len(ev) == 3 && ev[1] == "o" {
			s, _ := ev[2].(string)
			out.WriteString(s)
		}
	}
	return out.String()
}
