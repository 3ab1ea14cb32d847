//go:build !linux

package agent

import (
	"context"
	"errors"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// errNoPTY refuses shell and command sessions off Linux; Port sessions work
// everywhere.
var errNoPTY = errors.New("shell and command sessions are supported on Linux only")

// ptySpec is what startPTY runs.
type ptySpec struct {
	path string
	user string
}

func (m *SessionManager) shellSpec(context.Context, agentproto.OpenSession) (ptySpec, error) {
	return ptySpec{}, errNoPTY
}

func startPTY(ptySpec) (terminal, error) { return nil, errNoPTY }
