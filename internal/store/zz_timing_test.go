package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
	"github.com/stretchr/testify/require"
)

func TestZZTiming(t *testing.T) {
	s := storetest.Open(t)
	ctx := ctxT(t)
	require.NoError(t, s.CreateCommand(ctx, newCommand("cmd-big", t0)))
	rows := make([]store.Invocation, 10000)
	for i := range rows {
		rows[i] = store.Invocation{InstanceID: instanceID(i), InstanceName: fmt.Sprintf("node-%d", i), DocumentName: "AWS-RunShellScript", Status: "Pending", StatusDetails: "Pending", RequestedAt: t0}
	}
	st := time.Now()
	lap := func(what string) { t.Logf("%s: %v", what, time.Since(st)); st = time.Now() }
	require.NoError(t, s.CreateInvocations(ctx, "cmd-big", rows))
	lap("create")
	_, err := s.SetInvocationStatuses(ctx, "cmd-big", []store.StatusChange{{InstanceID: instanceID(7), Status: "Delayed", StatusDetails: "Delayed"}}, nil, t0)
	require.NoError(t, err)
	lap("set")
	require.NoError(t, s.CreateInvocations(ctx, "cmd-big", rows))
	lap("create again")
	_, err = s.CountInvocations(ctx, "cmd-big")
	require.NoError(t, err)
	lap("count")
}
