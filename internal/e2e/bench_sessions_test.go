package e2e

// Session Manager benchmarks: the figures in the "Session Manager" section
// of BENCHMARKS.md. Each starts a fresh stack (`fleetops server` and
// `fleetops worker` as separate processes, SQLite, a tuned Temporal dev
// server) and one real `fleetops-agent run` that starts real shells in real
// PTYs as the fleetops-session user, then drives sessions through the
// operator API and the stream WebSocket (github.com/coder/websocket, raw
// frames), or through the real `fleetops session port-forward` CLI. Run them
// with `make bench` (-benchtime 1x).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// sessionBenchStack is a fresh stack with one Online real agent.
type sessionBenchStack struct {
	*stack
	worker *proc
	agent  *agentProc
	logDir string
}

// startSessionBenchStack starts Temporal, `fleetops server` (with
// serverArgs), a worker, and one registered agent run with agentArgs.
func startSessionBenchStack(b *testing.B, serverArgs, agentArgs []string) *sessionBenchStack {
	b.Helper()
	logDir := benchLogDir(b)
	s := startStack(b, stackOptions{dialect: "sqlite", heartbeat: "5s", connectionLostAfter: "30s", serverArgs: serverArgs})
	w := s.startWorker()
	var act activation
	s.cli(&act, "activation", "create", "--registration-limit", "1", "--tag", "Bench=session")
	a, err := s.registerAgent(act)
	if err != nil {
		b.Fatalf("register agent: %v", err)
	}
	a.proc = startLogged(b, "agent", filepath.Join(logDir, "agent.log"), bins.agent,
		append([]string{"run", "--state-dir", a.stateDir}, agentArgs...)...)
	waitOnline(b, s, 1, time.Minute, a.proc)
	return &sessionBenchStack{stack: s, worker: w, agent: a, logDir: logDir}
}

// benchSession is one session opened through the API, its stream
// WebSocket read and written frame by frame.
type benchSession struct {
	id string
	ws *websocket.Conn
}

// openBenchSession starts a session (POST /v1/sessions with body) and
// opens its stream WebSocket with the session token.
func openBenchSession(ctx context.Context, s *stack, body map[string]any) (*benchSession, error) {
	var started struct {
		Session struct {
			SessionID string `json:"sessionId"`
		} `json:"session"`
		TokenValue string `json:"tokenValue"`
		StreamURL  string `json:"streamUrl"`
	}
	if err := s.apiJSON("POST", "/v1/sessions", body, &started); err != nil {
		return nil, err
	}
	ws, _, err := websocket.Dial(ctx, s.url+started.StreamURL+"?cols=200&rows=50", &websocket.DialOptions{
		HTTPHeader:      http.Header{"Authorization": {"Bearer " + started.TokenValue}},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return nil, fmt.Errorf("open the stream of %s: %w", started.Session.SessionID, err)
	}
	ws.SetReadLimit(agentproto.MaxFrameBytes)
	return &benchSession{id: started.Session.SessionID, ws: ws}, nil
}

func (bs *benchSession) send(ctx context.Context, typ byte, payload []byte) error {
	msg := make([]byte, 1+len(payload))
	msg[0] = typ
	copy(msg[1:], payload)
	return bs.ws.Write(ctx, websocket.MessageBinary, msg)
}

// readData reads the next FrameData payload; the end of the session is an
// error.
func (bs *benchSession) readData(ctx context.Context) ([]byte, error) {
	for {
		_, msg, err := bs.ws.Read(ctx)
		if err != nil {
			return nil, err
		}
		if len(msg) == 0 {
			continue
		}
		switch msg[0] {
		case agentproto.FrameData:
			return msg[1:], nil
		case agentproto.FrameClose, agentproto.FrameExit:
			return nil, fmt.Errorf("session %s ended: frame %d %q", bs.id, msg[0], msg[1:])
		}
	}
}

// expect reads output until it holds want; it returns how many bytes of
// output that took.
func (bs *benchSession) expect(ctx context.Context, want string) (int, error) {
	var seen []byte
	n := 0
	for {
		p, err := bs.readData(ctx)
		if err != nil {
			return n, fmt.Errorf("waiting for %q (output so far %q): %w", want, tailBytes(seen, 300), err)
		}
		n += len(p)
		seen = append(seen, p...)
		if bytes.Contains(seen, []byte(want)) {
			return n, nil
		}
		if len(seen) > 4096 {
			seen = slices.Clone(seen[len(seen)-len(want):])
		}
	}
}

// close ends the session from the client (FrameClose) and drops the
// WebSocket once the server answered or a few seconds passed.
func (bs *benchSession) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = bs.send(ctx, agentproto.FrameClose, nil)
	_ = bs.ws.Close(websocket.StatusNormalClosure, "")
	_ = bs.ws.CloseNow()
}

// readyShell opens a shell session and waits for the shell to run a
// command, so that what follows measures a live shell.
func readyShell(ctx context.Context, s *stack, target string) (*benchSession, error) {
	bs, err := openBenchSession(ctx, s, map[string]any{"target": target})
	if err != nil {
		return nil, err
	}
	// The quotes keep the typed command's echo from matching.
	if err := bs.send(ctx, agentproto.FrameData, []byte("echo rea''dy\r")); err != nil {
		bs.close()
		return nil, err
	}
	if _, err := bs.expect(ctx, "ready"); err != nil {
		bs.close()
		return nil, err
	}
	return bs, nil
}

// activeSessions counts the server's active sessions through the API.
func activeSessions(s *stack) (int, error) {
	n, token := 0, ""
	for {
		q := url.Values{"state": {"Active"}, "maxResults": {"1000"}}
		if token != "" {
			q.Set("nextToken", token)
		}
		var page struct {
			Sessions  []sessionView `json:"sessions"`
			NextToken string        `json:"nextToken"`
		}
		if err := s.apiJSON("GET", "/v1/sessions?"+q.Encode(), nil, &page); err != nil {
			return n, err
		}
		n += len(page.Sessions)
		if page.NextToken == "" {
			return n, nil
		}
		token = page.NextToken
	}
}

// waitNoActiveSessions waits until the server lists no active session and
// the agent has no child process (shell) left.
func waitNoActiveSessions(b *testing.B, s *sessionBenchStack, within time.Duration) {
	b.Helper()
	deadline := time.Now().Add(within)
	for {
		n, err := activeSessions(s.stack)
		kids := childCount(s.agent.proc.cmd.Process.Pid)
		if err == nil && n == 0 && kids == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Errorf("after closing: %d sessions still active (%v), agent has %d child processes", n, err, kids)
			terminateLeftovers(b, s.stack)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// terminateLeftovers logs the sessions still active and terminates them
// through the API, so that a benchmark leaves nothing behind.
func terminateLeftovers(b *testing.B, s *stack) {
	b.Helper()
	var page struct {
		Sessions []struct {
			SessionID string `json:"sessionId"`
			Status    string `json:"status"`
			Kind      string `json:"kind"`
			Details   string `json:"details"`
		} `json:"sessions"`
	}
	if err := s.apiJSON("GET", "/v1/sessions?state=Active&maxResults=1000", nil, &page); err != nil {
		b.Logf("list active sessions: %v", err)
		return
	}
	for _, ss := range page.Sessions {
		b.Logf("left active: %s kind %s status %s details %q; terminating it", ss.SessionID, ss.Kind, ss.Status, ss.Details)
		if err := s.apiJSON("POST", "/v1/sessions/"+ss.SessionID+"/terminate", nil, nil); err != nil {
			b.Logf("terminate %s: %v", ss.SessionID, err)
		}
	}
}

// childCount counts the processes whose parent is pid.
func childCount(pid int) int {
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		_, rest, ok := strings.Cut(string(b), ") ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n++
		}
	}
	return n
}

func tailBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// BenchmarkSessionKeystrokeRTT types 1,000 single keystrokes into a shell
// at its prompt (alternately 'x' and a backspace, so the line never grows)
// and times each from sending its FrameData to receiving its echo from
// readline: client → server bridge → agent → PTY → bash → back.
func BenchmarkSessionKeystrokeRTT(b *testing.B) {
	s := startSessionBenchStack(b, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const keystrokes = 1000
	for i := 0; i < b.N; i++ {
		openStart := time.Now()
		bs, err := readyShell(ctx, s.stack, s.agent.instanceID)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("shell ready (POST → first command's output) in %s", time.Since(openStart).Round(time.Millisecond))
		rtts := make([]time.Duration, 0, keystrokes)
		for k := 0; k < keystrokes; k++ {
			key, echo := []byte("x"), byte('x')
			if k%2 == 1 {
				key, echo = []byte{0x7f}, 0x08 // DEL; readline answers "\b \b" or "\b\x1b[K"
			}
			start := time.Now()
			if err := bs.send(ctx, agentproto.FrameData, key); err != nil {
				b.Fatalf("keystroke %d: %v", k, err)
			}
			for {
				p, err := bs.readData(ctx)
				if err != nil {
					b.Fatalf("keystroke %d: %v", k, err)
				}
				if bytes.IndexByte(p, echo) >= 0 {
					break
				}
			}
			rtts = append(rtts, time.Since(start))
		}
		bs.close()
		slices.Sort(rtts)
		b.ReportMetric(float64(pct(rtts, 50))/float64(time.Microsecond), "rtt-p50-us")
		b.ReportMetric(float64(pct(rtts, 99))/float64(time.Microsecond), "rtt-p99-us")
		b.Logf("%d keystrokes: echo RTT p50 %s p90 %s p99 %s max %s min %s",
			keystrokes, pct(rtts, 50).Round(time.Microsecond), pct(rtts, 90).Round(time.Microsecond),
			pct(rtts, 99).Round(time.Microsecond), rtts[len(rtts)-1].Round(time.Microsecond), rtts[0].Round(time.Microsecond))
	}
	waitNoActiveSessions(b, s, 30*time.Second)
}

// BenchmarkShellBulkOutput has a shell print 100,000,000 bytes of zeros as
// base64 (133,333,336 bytes of output on one line) and times it until all
// of it and an end marker arrived. Recording is on, as shipped (10 MiB cap).
func BenchmarkShellBulkOutput(b *testing.B) {
	s := startSessionBenchStack(b, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// base64 of 100,000,000 zero bytes: 133,333,334 'A' and "==".
	const want = 133333334
	for i := 0; i < b.N; i++ {
		bs, err := readyShell(ctx, s.stack, s.agent.instanceID)
		if err != nil {
			b.Fatal(err)
		}
		cpu := newCPUMeter(map[string]int{"server": s.server.cmd.Process.Pid, "agent": s.agent.proc.cmd.Process.Pid,
			"worker": s.worker.cmd.Process.Pid, "bench": os.Getpid()})
		start := time.Now()
		if err := bs.send(ctx, agentproto.FrameData, []byte("head -c 100000000 /dev/zero | base64 -w 0; echo; echo __DO''NE__\r")); err != nil {
			b.Fatal(err)
		}
		var total, frames, payloadA int
		var firstByte time.Duration
		var tailBuf []byte
		for {
			p, err := bs.readData(ctx)
			if err != nil {
				b.Fatalf("after %d bytes: %v", total, err)
			}
			if total == 0 {
				firstByte = time.Since(start)
			}
			frames++
			total += len(p)
			payloadA += bytes.Count(p, []byte("A"))
			tailBuf = append(tailBuf, p...)
			if bytes.Contains(tailBuf, []byte("__DONE__")) {
				break
			}
			tailBuf = slices.Clone(tailBytes(tailBuf, 16))
		}
		wall := time.Since(start)
		b.ReportMetric(wall.Seconds(), "wall-s")
		b.ReportMetric(float64(total)/1e6/wall.Seconds(), "MB/s")
		b.Logf("bulk output: %d bytes of output (%d base64 'A', want %d) in %d frames (avg %d B) in %s = %.1f MB/s (%.1f MiB/s); first byte after %s",
			total, payloadA, want, frames, total/frames, wall.Round(time.Millisecond), float64(total)/1e6/wall.Seconds(),
			float64(total)/(1<<20)/wall.Seconds(), firstByte.Round(time.Millisecond))
		b.Logf("CPU during the output: %s", cpu)
		if payloadA < want {
			b.Errorf("received %d base64 characters, want %d", payloadA, want)
		}
		bs.close()
		// The recording as stored.
		eventually(b, 30*time.Second, "session "+bs.id+" ended", func() error {
			var out struct {
				Session struct {
					Status         string `json:"status"`
					RecordingBytes int64  `json:"recordingBytes"`
				} `json:"session"`
			}
			if err := s.apiJSON("GET", "/v1/sessions/"+bs.id, nil, &out); err != nil {
				return err
			}
			if out.Session.Status != "Terminated" {
				return fmt.Errorf("status %s", out.Session.Status)
			}
			b.Logf("session %s: recordingBytes %d", bs.id, out.Session.RecordingBytes)
			return nil
		})
	}
	waitNoActiveSessions(b, s, 30*time.Second)
}

// BenchmarkPortForwardThroughput runs the real `fleetops session
// port-forward` CLI to a TCP sink on the node (this machine) and measures
// 1 GiB through one forwarded connection, then 32 connections at once
// (32 MiB each). The sink discards what it reads and answers the byte
// count once the sender half-closes, so a transfer is timed end to end.
func BenchmarkPortForwardThroughput(b *testing.B) {
	s := startSessionBenchStack(b, nil, nil)
	sink := startCountingSink(b)
	for i := 0; i < b.N; i++ {
		pf := startPortForwardCLI(b, s.stack, s.agent.instanceID, sink)
		procs := map[string]int{"server": s.server.cmd.Process.Pid, "agent": s.agent.proc.cmd.Process.Pid,
			"cli": pf.cmd.Process.Pid, "bench": os.Getpid()}

		// Warm-up: the first stream through a fresh yamux session.
		if _, err := sendToSink(pf.addr, 8<<20); err != nil {
			b.Fatalf("warm-up: %v", err)
		}

		const one = 1 << 30
		cpu := newCPUMeter(procs)
		d, err := sendToSink(pf.addr, one)
		if err != nil {
			b.Fatalf("one stream: %v", err)
		}
		oneMBs := float64(one) / 1e6 / d.Seconds()
		b.Logf("one stream: 1 GiB in %s = %.0f MB/s (%.0f MiB/s); CPU %s", d.Round(time.Millisecond), oneMBs,
			float64(one)/(1<<20)/d.Seconds(), cpu)

		const streams, each = 32, 32 << 20
		cpu = newCPUMeter(procs)
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, streams)
		var slowest atomic.Int64
		for range streams {
			wg.Go(func() {
				d, err := sendToSink(pf.addr, each)
				errs <- err
				for {
					cur := slowest.Load()
					if int64(d) <= cur || slowest.CompareAndSwap(cur, int64(d)) {
						break
					}
				}
			})
		}
		wg.Wait()
		aggWall := time.Since(start)
		close(errs)
		for err := range errs {
			if err != nil {
				b.Errorf("concurrent stream: %v", err)
			}
		}
		aggMBs := float64(streams*each) / 1e6 / aggWall.Seconds()
		b.Logf("%d streams × 32 MiB at once: 1 GiB in %s = %.0f MB/s aggregate (%.1f MB/s per stream; slowest stream %s); CPU %s",
			streams, aggWall.Round(time.Millisecond), aggMBs, aggMBs/streams, time.Duration(slowest.Load()).Round(time.Millisecond), cpu)
		b.ReportMetric(oneMBs, "one-stream-MB/s")
		b.ReportMetric(aggMBs, "32-streams-MB/s")
		pf.stop() // Ctrl-C closes the session (TestSessions checks it)
	}
	waitNoActiveSessions(b, s, 30*time.Second)
}

// countingSink is a TCP server on the node that reads each connection to
// its end and answers the number of bytes read (8 bytes, big endian).
type countingSink struct{ port int }

func startCountingSink(b *testing.B) countingSink {
	b.Helper()
	return countingSink{port: startTCPServer(b, func(c net.Conn) {
		n, _ := io.CopyBuffer(io.Discard, c, make([]byte, 256<<10))
		_ = binary.Write(c, binary.BigEndian, uint64(n))
	})}
}

// sendToSink sends n bytes through addr, half-closes and waits for the
// sink's count: the time from the first byte sent to the count received.
func sendToSink(addr string, n int) (time.Duration, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	_, _ = rand.Read(buf)
	start := time.Now()
	_ = c.SetDeadline(start.Add(5 * time.Minute))
	for sent := 0; sent < n; {
		k, err := c.Write(buf[:min(len(buf), n-sent)])
		sent += k
		if err != nil {
			return 0, fmt.Errorf("write after %d bytes: %w", sent, err)
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, err
	}
	var got uint64
	if err := binary.Read(c, binary.BigEndian, &got); err != nil {
		return 0, fmt.Errorf("read the sink's count: %w", err)
	}
	d := time.Since(start)
	if got != uint64(n) {
		return d, fmt.Errorf("the sink read %d bytes, want %d", got, n)
	}
	return d, nil
}

// portForwardCLI is a running `fleetops session port-forward` and the local
// address it forwards.
type portForwardCLI struct {
	*cliProc
	addr string
}

func startPortForwardCLI(b *testing.B, s *stack, target string, sink countingSink) *portForwardCLI {
	b.Helper()
	p := s.startProcCLI(b, "session", "port-forward", "--target", target, "--remote-port", strconv.Itoa(sink.port))
	return &portForwardCLI{cliProc: p, addr: p.waitForAddr(b)}
}

// BenchmarkIdleSessions opens idle shell sessions in steps up to 1,000
// (every one a real login bash in a PTY on this machine, Connected, its
// stream read by a goroutine) and measures the server's VmRSS at each
// step: memory per idle session on the server. The server's per-node and
// per-server limits and the agent's are raised to 2,000.
func BenchmarkIdleSessions(b *testing.B) {
	s := startSessionBenchStack(b,
		[]string{"--session-max-per-node", "2000", "--session-max-per-server", "2000"},
		[]string{"--max-sessions", "2000"})
	serverPID, agentPID := s.server.cmd.Process.Pid, s.agent.proc.cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	steps := []int{200, 500, 1000}

	for i := 0; i < b.N; i++ {
		// Warm the server's paths with one session first, so the baseline
		// is not the cold process.
		warm, err := readyShell(ctx, s.stack, s.agent.instanceID)
		if err != nil {
			b.Fatal(err)
		}
		warm.close()
		waitNoActiveSessions(b, s, 30*time.Second)
		time.Sleep(3 * time.Second)
		base := procStatusKB(serverPID, "VmRSS")
		baseAgent := procStatusKB(agentPID, "VmRSS")
		baseWorker := procStatusKB(s.worker.cmd.Process.Pid, "VmRSS")
		memAvail0 := memAvailableKB()
		b.Logf("baseline: server VmRSS %.1f MiB, agent %.1f MiB, worker %.1f MiB, temporal %.1f MiB, MemAvailable %.0f MiB",
			mib(base), mib(baseAgent), mib(baseWorker), mib(temporalRSSKB(s.temporalAddr)), mib(memAvail0))

		var (
			mu       sync.Mutex
			open     []*benchSession
			openTime []time.Duration
			drainers sync.WaitGroup
		)
		defer func() {
			// Close them all (also when a step failed).
			closeStart := time.Now()
			mu.Lock()
			all := open
			open = nil
			mu.Unlock()
			sem := make(chan struct{}, 32)
			var wg sync.WaitGroup
			for _, bs := range all {
				wg.Go(func() {
					sem <- struct{}{}
					defer func() { <-sem }()
					bs.close()
				})
			}
			wg.Wait()
			drainers.Wait()
			waitNoActiveSessions(b, s, 2*time.Minute)
			b.Logf("closed %d sessions (FrameClose) and saw no active session nor shell left in %s",
				len(all), time.Since(closeStart).Round(time.Millisecond))
		}()

		reached := 0
		var failure error
		for _, target := range steps {
			stepStart := time.Now()
			jobs := make(chan struct{})
			var wg sync.WaitGroup
			var firstErr error
			var errCount atomic.Int64
			for range 8 {
				wg.Go(func() {
					for range jobs {
						t0 := time.Now()
						bs, err := readyShell(ctx, s.stack, s.agent.instanceID)
						d := time.Since(t0)
						mu.Lock()
						if err != nil {
							errCount.Add(1)
							if firstErr == nil {
								firstErr = err
							}
							mu.Unlock()
							continue
						}
						open = append(open, bs)
						openTime = append(openTime, d)
						mu.Unlock()
						// Keep reading, as a client does, until the session ends.
						drainers.Go(func() {
							for {
								if _, err := bs.readData(ctx); err != nil {
									return
								}
							}
						})
					}
				})
			}
			for k := reached; k < target; k++ {
				if errCount.Load() > 0 {
					break
				}
				jobs <- struct{}{}
			}
			close(jobs)
			wg.Wait()
			mu.Lock()
			reached = len(open)
			opens := slices.Clone(openTime)
			mu.Unlock()
			slices.Sort(opens)
			if firstErr != nil {
				failure = fmt.Errorf("at %d open sessions (%d failed): %w", reached, errCount.Load(), firstErr)
				b.Logf("step %d: %v", target, failure)
				break
			}
			// Let the server settle (status writes, workflow signals).
			time.Sleep(5 * time.Second)
			active, err := activeSessions(s.stack)
			rss := procStatusKB(serverPID, "VmRSS")
			agentRSS := procStatusKB(agentPID, "VmRSS")
			b.Logf("%d sessions open (step took %s; open time POST → shell answered p50 %s p99 %s); server lists %d active (%v); "+
				"server VmRSS %.1f MiB (+%.1f MiB = %.1f KiB/session), VmHWM %.1f MiB; agent VmRSS %.1f MiB (+%.1f KiB/session); "+
				"worker %.1f MiB; temporal %.1f MiB; agent child processes %d; MemAvailable dropped %.0f MiB (%.0f KiB/session, shells included); server threads %d, fds %d",
				reached, time.Since(stepStart).Round(time.Millisecond), pct(opens, 50).Round(time.Millisecond), pct(opens, 99).Round(time.Millisecond),
				active, err, mib(rss), mib(rss-base), float64(rss-base)/float64(reached), mib(procStatusKB(serverPID, "VmHWM")),
				mib(agentRSS), float64(agentRSS-baseAgent)/float64(reached), mib(procStatusKB(s.worker.cmd.Process.Pid, "VmRSS")),
				mib(temporalRSSKB(s.temporalAddr)), childCount(agentPID),
				mib(memAvail0-memAvailableKB()), float64(memAvail0-memAvailableKB())/float64(reached),
				procStatusKB(serverPID, "Threads"), fdCount(serverPID))
			if target == steps[len(steps)-1] {
				b.ReportMetric(float64(reached), "sessions")
				b.ReportMetric(float64(rss-base)/float64(reached), "server-KiB/session")
				b.ReportMetric(mib(rss), "server-rss-MiB")
			}
		}
		if failure != nil {
			b.ReportMetric(float64(reached), "sessions")
			b.Errorf("idle sessions: %v", failure)
		}
	}
}

func memAvailableKB() int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb
		}
	}
	return 0
}

func fdCount(pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(entries)
}
