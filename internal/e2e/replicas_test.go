package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetops/fleetops/internal/store/storetest"
)

// TestSessionsAcrossReplicas runs two server replicas on one database
// behind a round-robin TCP balancer, as a deployment with a load balancer
// would. The agent's control connection lands on one replica and its data
// channels alternate between both, and operators reach either replica: every
// session must still be bridged by the replica holding the agent.
func TestSessionsAcrossReplicas(t *testing.T) {
	dialects := storetest.Dialects()
	s := startStack(t, stackOptions{dialect: dialects[len(dialects)-1], heartbeat: "1s", connectionLostAfter: "3s", advertise: true})
	s.startWorker()
	other := s.startReplica(t)
	lb := startRoundRobin(t, s.url, other.url)

	var act activation
	s.cli(&act, "activation", "create", "--registration-limit", "1")
	viaLB := *s
	viaLB.url = lb
	a, err := viaLB.registerAgent(act)
	if err != nil {
		t.Fatal(err)
	}
	s.runAgent(a)
	waitStatus(t, s, []*agentProc{a}, "Online", 30*time.Second)

	holder, notHolder := s, other
	if connectedAgents(t, other) == 1 {
		holder, notHolder = other, s
	}
	if connectedAgents(t, holder) != 1 || connectedAgents(t, notHolder) != 0 {
		t.Fatalf("the agent should hold one control connection to exactly one replica")
	}

	// Two sessions through each replica: the balancer alternates the agent's
	// data channels, so each replica also receives data channels for
	// sessions the other bridges.
	for i, replica := range []*stack{notHolder, holder, notHolder, holder} {
		stdout, stderr, err := replica.tryCLI("session", "start", "--target", a.instanceID, "--command", fmt.Sprintf("echo via-replica-%d; exit %d", i, 40+i))
		if code := exitCode(err); code != 40+i || !strings.Contains(stdout, fmt.Sprintf("via-replica-%d", i)) {
			t.Errorf("session %d through %s: exit %d, stdout %q, stderr %q", i, replica.url, code, stdout, stderr)
		}
	}
	for kind, want := range map[string]string{"stream": "[1-9]", "data_channel": "[1-9]"} {
		re := regexp.MustCompile(`fleetops_session_forwards_total\{kind="` + kind + `"\} ` + want)
		if b, _, _ := notHolder.api("GET", "/metrics"); !re.Match(b) {
			t.Errorf("the replica without the agent forwarded no %s", kind)
		}
	}

	// A shell through the other replica, with a resize, as an operator
	// would open it.
	term := notHolder.startTerminal(t, "session", "start", "--target", a.instanceID)
	term.send("echo sh''ell-ok\r")
	term.expect(t, "shell-ok")
	term.send("exit 7\r")
	if code := term.wait(t); code != 7 {
		t.Errorf("shell through the other replica exited %d, want 7\n%s", code, term.output())
	}
}

// startReplica starts a second `fleetops server` on the stack's database
// and Temporal, advertising its own URL.
func (s *stack) startReplica(t *testing.T) *stack {
	t.Helper()
	port := freePort(t)
	r := *s
	r.url = "http://127.0.0.1:" + strconv.Itoa(port)
	r.dataDir = filepath.Join(t.TempDir(), "replica")
	r.server = startProc(t, "replica", bins.fleetops, "server",
		"--data-dir", r.dataDir,
		"--listen", "127.0.0.1:"+strconv.Itoa(port),
		"--advertise-url", r.url,
		"--database-url", s.databaseURL,
		"--temporal-address", s.temporalAddr,
		"--heartbeat-interval", "1s", "--connection-lost-after", "3s",
		"--agent-binary-dir", bins.dir,
	)
	r.waitReady()
	return &r
}

var connectedRE = regexp.MustCompile(`(?m)^fleetops_gateway_connected_agents (\d+)`)

func connectedAgents(t *testing.T, s *stack) int {
	t.Helper()
	b, _, err := s.api("GET", "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m := connectedRE.FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s/metrics has no fleetops_gateway_connected_agents", s.url)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// startRoundRobin is a TCP balancer sending each new connection to the
// next of backends (http URLs); it returns its own URL.
func startRoundRobin(t *testing.T, backends ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	addrs := make([]string, len(backends))
	for i, b := range backends {
		addrs[i] = strings.TrimPrefix(b, "http://")
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for next := 0; ; next++ {
			in, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			out, err := net.Dial("tcp", addrs[next%len(addrs)])
			if err != nil {
				in.Close()
				continue
			}
			go pipeBoth(in, out)
		}
	}()
	return "http://" + ln.Addr().String()
}

func pipeBoth(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}
