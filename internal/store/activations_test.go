package store_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newActivation(id, code string, limit int, tags ...string) *store.Activation {
	a := &store.Activation{
		ID: id, CodeHash: store.HashSecret(code), Description: "test",
		DefaultInstanceName: "node", RegistrationLimit: limit,
		ExpiresAt: t0.Add(24 * time.Hour), CreatedAt: t0,
	}
	for i := 0; i+1 < len(tags); i += 2 {
		a.Tags = append(a.Tags, store.ActivationTag{Key: tags[i], Value: tags[i+1]})
	}
	return a
}

func instanceID(i int) string { return fmt.Sprintf("mi-%017x", i) }

func TestActivationCRUD(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		a := newActivation("act-1", "code", 3, "env", "prod", "app", "web")
		require.NoError(t, s.CreateActivation(ctx, a))
		b := newActivation("act-2", "code2", 1)
		b.CreatedAt = t0.Add(time.Hour)
		require.NoError(t, s.CreateActivation(ctx, b))
		require.ErrorIs(t, s.CreateActivation(ctx, newActivation("act-1", "x", 1)), store.ErrAlreadyExists)

		got, err := s.GetActivation(ctx, "act-1")
		require.NoError(t, err)
		require.Equal(t, store.HashSecret("code"), got.CodeHash)
		require.Equal(t, 3, got.RegistrationLimit)
		require.Zero(t, got.RegistrationsCount)
		require.True(t, got.ExpiresAt.Equal(a.ExpiresAt))
		require.Equal(t, []store.ActivationTag{
			{ActivationID: "act-1", Key: "app", Value: "web"},
			{ActivationID: "act-1", Key: "env", Value: "prod"},
		}, got.Tags)

		list, err := s.ListActivations(ctx)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, "act-2", list[0].ID, "newest first")
		require.Len(t, list[1].Tags, 2)

		_, err = s.GetActivation(ctx, "nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.NoError(t, s.DeleteActivation(ctx, "act-1"))
		require.ErrorIs(t, s.DeleteActivation(ctx, "act-1"), store.ErrNotFound)
		_, err = s.GetActivation(ctx, "act-1")
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestRegisterInstance(t *testing.T) {
	tests := []struct {
		name       string
		activation string
		code       string
		inst       store.Instance
		now        time.Time
		wantErr    error
	}{
		{name: "happy path", activation: "act", code: "secret-code", inst: store.Instance{InstanceID: instanceID(1), SecretHash: store.HashSecret("s1")}, now: t0},
		{name: "explicit name", activation: "act", code: "secret-code", inst: store.Instance{InstanceID: instanceID(1), Name: "web-1", PingStatus: store.PingConnectionLost}, now: t0},
		{name: "unknown activation", activation: "nope", code: "secret-code", inst: store.Instance{InstanceID: instanceID(1)}, now: t0, wantErr: store.ErrActivationNotFound},
		{name: "wrong code", activation: "act", code: "wrong", inst: store.Instance{InstanceID: instanceID(1)}, now: t0, wantErr: store.ErrInvalidActivationCode},
		{name: "empty code", activation: "act", code: "", inst: store.Instance{InstanceID: instanceID(1)}, now: t0, wantErr: store.ErrInvalidActivationCode},
		{name: "expired exactly", activation: "act", code: "secret-code", inst: store.Instance{InstanceID: instanceID(1)}, now: t0.Add(24 * time.Hour), wantErr: store.ErrActivationExpired},
		{name: "expired", activation: "act", code: "secret-code", inst: store.Instance{InstanceID: instanceID(1)}, now: t0.Add(48 * time.Hour), wantErr: store.ErrActivationExpired},
		{name: "exhausted", activation: "used-up", code: "secret-code", inst: store.Instance{InstanceID: instanceID(1)}, now: t0, wantErr: store.ErrActivationExhausted},
		{name: "duplicate instance id", activation: "act", code: "secret-code", inst: store.Instance{InstanceID: instanceID(99)}, now: t0, wantErr: store.ErrAlreadyExists},
		{name: "no instance id", activation: "act", code: "secret-code", inst: store.Instance{}, now: t0, wantErr: store.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, s *store.Store) {
				ctx := ctxT(t)
				require.NoError(t, s.CreateActivation(ctx, newActivation("act", "secret-code", 5, "env", "prod", "role", "db")))
				require.NoError(t, s.CreateActivation(ctx, newActivation("used-up", "secret-code", 0)))
				pre := store.Instance{InstanceID: instanceID(99)}
				require.NoError(t, s.RegisterInstance(ctx, "act", store.HashSecret("secret-code"), &pre, t0))

				code := ""
				if tt.code != "" {
					code = store.HashSecret(tt.code)
				}
				inst := tt.inst
				err := s.RegisterInstance(ctx, tt.activation, code, &inst, tt.now)
				a, aerr := s.GetActivation(ctx, "act")
				require.NoError(t, aerr)
				if tt.wantErr != nil {
					require.ErrorIs(t, err, tt.wantErr)
					require.Equal(t, 1, a.RegistrationsCount, "a failed registration consumes nothing")
					if tt.inst.InstanceID != "" && tt.inst.InstanceID != pre.InstanceID {
						_, err := s.GetInstance(ctx, tt.inst.InstanceID)
						require.ErrorIs(t, err, store.ErrNotFound)
					}
					return
				}
				require.NoError(t, err)
				require.Equal(t, 2, a.RegistrationsCount)
				wantName := tt.inst.Name
				if wantName == "" {
					wantName = "node"
				}
				wantStatus := tt.inst.PingStatus
				if wantStatus == "" {
					wantStatus = store.PingOnline
				}
				wantTags := []store.InstanceTag{
					{InstanceID: tt.inst.InstanceID, Key: "env", Value: "prod"},
					{InstanceID: tt.inst.InstanceID, Key: "role", Value: "db"},
				}
				require.Equal(t, wantTags, inst.Tags)
				require.Equal(t, wantName, inst.Name)
				require.Equal(t, "act", inst.ActivationID)

				got, err := s.GetInstance(ctx, tt.inst.InstanceID)
				require.NoError(t, err)
				require.Equal(t, wantName, got.Name)
				require.Equal(t, wantStatus, got.PingStatus)
				require.Equal(t, tt.inst.SecretHash, got.SecretHash)
				require.True(t, got.RegisteredAt.Equal(tt.now), "%v != %v", got.RegisteredAt, tt.now)
				require.True(t, got.LastPingAt.Equal(tt.now))
				require.Equal(t, wantTags, got.Tags)
				require.Equal(t, map[string]string{"env": "prod", "role": "db"}, got.TagMap())
			})
		})
	}
}

func TestRegisterInstanceConcurrentNeverExceedsLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		const limit, attempts = 5, 24
		require.NoError(t, s.CreateActivation(ctx, newActivation("act", "c", limit, "k", "v")))
		var ok, exhausted atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, attempts)
		start := make(chan struct{})
		for i := range attempts {
			wg.Go(func() {
				<-start
				inst := &store.Instance{InstanceID: instanceID(i)}
				err := s.RegisterInstance(ctx, "act", store.HashSecret("c"), inst, t0)
				switch {
				case err == nil:
					ok.Add(1)
				case errorsIs(err, store.ErrActivationExhausted):
					exhausted.Add(1)
				default:
					errs <- err
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, limit, ok.Load())
		require.EqualValues(t, attempts-limit, exhausted.Load())
		a, err := s.GetActivation(ctx, "act")
		require.NoError(t, err)
		require.Equal(t, limit, a.RegistrationsCount)
		items, _, err := s.ListInstances(ctx, store.InstanceFilter{})
		require.NoError(t, err)
		require.Len(t, items, limit)
		for _, it := range items {
			require.Equal(t, map[string]string{"k": "v"}, it.TagMap())
		}
	})
}
