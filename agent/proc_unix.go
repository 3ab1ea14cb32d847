//go:build unix

package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// runProcessGroup runs cmd in a process group of its own. When ctx ends the
// whole group (the shell and everything it started, backgrounded children
// included) gets SIGTERM, then SIGKILL after grace; runProcessGroup returns
// only once that is done. The exit code is the process's, or 128+signal if
// a signal killed it (the shell's convention).
func runProcessGroup(ctx context.Context, cmd *exec.Cmd, grace time.Duration) (int, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	pgid := cmd.Process.Pid
	killed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(killed)
		terminateGroup(pgid, grace)
	})
	werr := cmd.Wait()
	if !stop() {
		<-killed
	}
	code := exitCode(cmd.ProcessState)
	if ctx.Err() != nil {
		return code, context.Cause(ctx)
	}
	if cmd.ProcessState == nil {
		return -1, fmt.Errorf("wait for %s: %w", cmd.Path, werr)
	}
	return code, nil
}

// terminateGroup sends SIGTERM to the group, waits up to grace for it to
// be gone, then sends SIGKILL.
func terminateGroup(pgid int, grace time.Duration) {
	if err := syscall.Kill(-pgid, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
		return
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
