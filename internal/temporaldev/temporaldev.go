// Package temporaldev runs the pinned Temporal CLI's dev server for the
// embedded stack, with the settings measured in
// shared/reference/temporal-here.md: SQLite in WAL mode, one task-queue
// partition and raised history poll rates, which cut first-activity latency
// from ~94 ms to ~6 ms and triple dispatch throughput on a 2-core machine.
package temporaldev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// TunedArgs are the dev-server flags every embedded stack and test uses.
func TunedArgs() []string {
	return []string{
		"--sqlite-pragma", "journal_mode=wal",
		"--sqlite-pragma", "synchronous=normal",
		"--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
		"--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
		"--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000",
		"--dynamic-config-value", "history.timerProcessorMaxPollRPS=1000",
		"--dynamic-config-value", "system.enableActivityEagerExecution=true",
	}
}

// FindBinary returns the temporal CLI to run: the explicit path if given,
// else bin/temporal next to the running executable, else ./bin/temporal,
// else temporal on PATH.
func FindBinary(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "temporal"))
	}
	candidates = append(candidates, filepath.Join("bin", "temporal"))
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, nil
	}
	return "", errors.New("temporal CLI not found in bin/ or on PATH: run `make build` (it installs the pinned CLI into bin/) or pass --temporal-address")
}

// Options configures a dev server.
type Options struct {
	Binary   string
	DBFile   string
	IP       string
	Port     int
	UIPort   int
	LogLevel string
	Output   io.Writer
}

// Server is a running dev server process.
type Server struct {
	cmd  *exec.Cmd
	done chan error
	// Address is host:port of the frontend gRPC service.
	Address string
	// UIURL is the Web UI's address.
	UIURL string
}

// Start launches the dev server and waits until its frontend port accepts
// connections.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = 7233
	}
	if o.UIPort == 0 {
		o.UIPort = 8233
	}
	if o.LogLevel == "" {
		o.LogLevel = "error"
	}
	args := []string{"server", "start-dev",
		"--ip", o.IP, "--port", strconv.Itoa(o.Port),
		"--ui-port", strconv.Itoa(o.UIPort),
		"--db-filename", o.DBFile,
		"--log-level", o.LogLevel,
	}
	args = append(args, TunedArgs()...)
	cmd := exec.Command(o.Binary, args...)
	cmd.Stdout, cmd.Stderr = o.Output, o.Output
	// Its own process group, so Ctrl-C in a terminal reaches us first and
	// we stop it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start temporal dev server: %w", err)
	}
	s := &Server{
		cmd:     cmd,
		done:    make(chan error, 1),
		Address: net.JoinHostPort(o.IP, strconv.Itoa(o.Port)),
		UIURL:   "http://" + net.JoinHostPort(o.IP, strconv.Itoa(o.UIPort)),
	}
	go func() { s.done <- cmd.Wait() }()
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.DialTimeout("tcp", s.Address, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-s.done:
			return fmt.Errorf("temporal dev server exited before it was ready: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("temporal dev server not listening on %s after 60s", s.Address)
		case <-tick.C:
		}
	}
}

// Stop terminates the dev server, gracefully first.
func (s *Server) Stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}
