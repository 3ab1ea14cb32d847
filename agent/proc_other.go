//go:build !unix

package agent

import (
	"context"
	"fmt"
	"os/exec"
	"time"
)

// runProcessGroup runs cmd and kills it when ctx ends. Without Unix process
// groups, children the process started are not killed.
func runProcessGroup(ctx context.Context, cmd *exec.Cmd, _ time.Duration) (int, error) {
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	werr := cmd.Wait()
	stop()
	if cmd.ProcessState == nil {
		return -1, fmt.Errorf("wait for %s: %w", cmd.Path, werr)
	}
	if ctx.Err() != nil {
		return cmd.ProcessState.ExitCode(), context.Cause(ctx)
	}
	return cmd.ProcessState.ExitCode(), nil
}
