package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startSwarm runs `swarm` in the background until the returned stop.
func startSwarm(t *testing.T, g *gateway, dir string, count string) (stdout, stderr *lockedBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = &lockedBuffer{}, &lockedBuffer{}
	done := make(chan int, 1)
	env := map[string]string{"FLEETOPS_AGENT_ACTIVATION_CODE": actCode}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	go func() {
		done <- execute(ctx, []string{"swarm", "--server", g.srv.URL, "--activation-id", actID,
			"--count", count, "--state-dir", dir, "--dial-rate", "0"}, stdout, stderr, lookup)
	}()
	stop = func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(15 * time.Second):
			t.Fatal("swarm did not stop after cancel")
			return -1
		}
	}
	t.Cleanup(func() { cancel() })
	return stdout, stderr, stop
}

func TestSwarmRegistersConnectsAndReuses(t *testing.T) {
	g := newGateway(t)
	dir := t.TempDir()
	stdout, stderr, stop := startSwarm(t, g, dir, "3")
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "all 3 nodes connected") },
		10*time.Second, 5*time.Millisecond, "stderr: %s", stderr)
	var hosts []string
	for range 3 {
		h := <-g.hellos
		hosts = append(hosts, h.Host.Hostname)
	}
	sort.Strings(hosts)
	assert.Equal(t, []string{"swarm-00000", "swarm-00001", "swarm-00002"}, hosts)
	assert.Equal(t, 0, stop(), stderr.String())
	assert.EqualValues(t, 3, g.registrations.Load())
	assert.NotContains(t, stderr.String(), secret)
	assert.NotContains(t, stderr.String(), actCode)
	for i := range 3 {
		fi, err := os.Stat(filepath.Join(dir, fmt.Sprintf("node-%05d", i), "identity.json"))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}

	// A rerun reuses the identities.
	stdout, stderr, stop = startSwarm(t, g, dir, "3")
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "all 3 nodes connected") },
		10*time.Second, 5*time.Millisecond, "stderr: %s", stderr)
	assert.Equal(t, 0, stop(), stderr.String())
	assert.EqualValues(t, 3, g.registrations.Load())
}
