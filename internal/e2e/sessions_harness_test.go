package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// Helpers shared by the Session Manager tests (sessions_test.go,
// console_sessions_test.go) and benchmarks (bench_sessions_test.go).

// startSessionStack starts Temporal, `fleetops server` (with o), a worker
// and one registered agent, and waits for the agent to be Online.
func startSessionStack(t *testing.T, o stackOptions) (*stack, *agentProc) {
	t.Helper()
	s := startStack(t, o)
	s.startWorker()
	var act activation
	s.cli(&act, "activation", "create", "--registration-limit", "1")
	a, err := s.registerAgent(act)
	if err != nil {
		t.Fatal(err)
	}
	s.runAgent(a)
	waitStatus(t, s, []*agentProc{a}, "Online", 30*time.Second)
	return s, a
}

// cliProc is a long-running CLI command (port-forward).
type cliProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
}

// startProcCLI starts `fleetops ARGS --server URL --token T`; the test's
// end stops it.
func (s *stack) startProcCLI(t testing.TB, args ...string) *cliProc {
	t.Helper()
	args = append(args, "--server", s.url, "--token", s.token)
	cmd := exec.Command(bins.fleetops, args...)
	cmd.Env = cleanEnv()
	p := &cliProc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	return p
}

// stop sends Ctrl-C (SIGINT) and waits for the CLI to exit, killing it if
// it has not within 10 s.
func (p *cliProc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

var forwardingRE = regexp.MustCompile(`forwarding (127\.0\.0\.1:\d+)`)

// waitForAddr waits for a port-forward CLI to print the local address it
// listens on, and returns it.
func (p *cliProc) waitForAddr(t testing.TB) string {
	t.Helper()
	var addr string
	eventually(t, 30*time.Second, "port-forward listening", func() error {
		m := forwardingRE.FindStringSubmatch(p.stderr.String())
		if m == nil {
			return fmt.Errorf("stderr so far: %q", p.stderr.String())
		}
		addr = m[1]
		return nil
	})
	return addr
}

// startTCPServer listens on a free loopback port until the test ends and
// runs handle on each connection in a goroutine of its own, closing the
// connection after. It returns the port.
func startTCPServer(t testing.TB, handle func(net.Conn)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}
