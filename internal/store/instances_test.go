package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
)

// seedInstance registers an instance with the given secret and tags.
func seedInstance(t *testing.T, s *store.Store, id string, tags map[string]string) {
	t.Helper()
	ctx := ctxT(t)
	if _, err := s.GetActivation(ctx, "seed"); err != nil {
		require.NoError(t, s.CreateActivation(ctx, newActivation("seed", "seed-code", 100000)))
	}
	inst := &store.Instance{InstanceID: id, SecretHash: store.HashSecret("secret-" + id)}
	require.NoError(t, s.RegisterInstance(ctx, "seed", store.HashSecret("seed-code"), inst, t0))
	if len(tags) > 0 {
		require.NoError(t, s.TagInstance(ctx, id, tags))
	}
}

func ids(items []store.Instance) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, it.InstanceID)
	}
	return out
}

func TestListInstancesFilters(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		seedInstance(t, s, "mi-1", map[string]string{"env": "prod", "role": "web"})
		seedInstance(t, s, "mi-2", map[string]string{"env": "prod", "role": "db"})
		seedInstance(t, s, "mi-3", map[string]string{"env": "staging", "role": "web"})
		seedInstance(t, s, "mi-4", map[string]string{"env": "dev"})
		seedInstance(t, s, "mi-5", nil)
		require.NoError(t, s.UpdateInstanceHost(ctx, "mi-1", store.HostUpdate{PlatformType: "Linux", PlatformName: "Ubuntu"}, t0))
		require.NoError(t, s.UpdateInstanceHost(ctx, "mi-2", store.HostUpdate{PlatformType: "Linux", PlatformName: "Debian GNU/Linux"}, t0))
		require.NoError(t, s.UpdateInstanceHost(ctx, "mi-3", store.HostUpdate{PlatformType: "Linux", PlatformName: "Ubuntu"}, t0))
		require.NoError(t, s.DeregisterInstance(ctx, "mi-4"))

		tests := []struct {
			name string
			f    store.InstanceFilter
			want []string
		}{
			{"all", store.InstanceFilter{}, []string{"mi-1", "mi-2", "mi-3", "mi-4", "mi-5"}},
			{"one tag value", store.InstanceFilter{Tags: []store.TagFilter{{Key: "env", Values: []string{"prod"}}}}, []string{"mi-1", "mi-2"}},
			{"values ORed", store.InstanceFilter{Tags: []store.TagFilter{{Key: "env", Values: []string{"prod", "staging"}}}}, []string{"mi-1", "mi-2", "mi-3"}},
			{"keys ANDed", store.InstanceFilter{Tags: []store.TagFilter{
				{Key: "env", Values: []string{"prod", "staging"}},
				{Key: "role", Values: []string{"web"}},
			}}, []string{"mi-1", "mi-3"}},
			{"key only", store.InstanceFilter{Tags: []store.TagFilter{{Key: "role"}}}, []string{"mi-1", "mi-2", "mi-3"}},
			{"key only AND value", store.InstanceFilter{Tags: []store.TagFilter{{Key: "role"}, {Key: "env", Values: []string{"prod"}}}}, []string{"mi-1", "mi-2"}},
			{"same key twice is AND", store.InstanceFilter{Tags: []store.TagFilter{
				{Key: "env", Values: []string{"prod"}}, {Key: "env", Values: []string{"staging"}},
			}}, []string{}},
			{"value of other key does not match", store.InstanceFilter{Tags: []store.TagFilter{{Key: "role", Values: []string{"prod"}}}}, []string{}},
			{"unknown key", store.InstanceFilter{Tags: []store.TagFilter{{Key: "nope"}}}, []string{}},
			{"ids", store.InstanceFilter{InstanceIDs: []string{"mi-5", "mi-2", "mi-x"}}, []string{"mi-2", "mi-5"}},
			{"ping status", store.InstanceFilter{PingStatuses: []string{store.PingInactive}}, []string{"mi-4"}},
			{"platform name", store.InstanceFilter{PlatformNames: []string{"Ubuntu"}}, []string{"mi-1", "mi-3"}},
			{"platform type and tag", store.InstanceFilter{PlatformTypes: []string{"Linux"}, Tags: []store.TagFilter{{Key: "role", Values: []string{"db"}}}}, []string{"mi-2"}},
			{"ids and status", store.InstanceFilter{InstanceIDs: []string{"mi-1", "mi-4"}, PingStatuses: []string{store.PingOnline}}, []string{"mi-1"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, next, err := s.ListInstances(ctx, tt.f)
				require.NoError(t, err)
				require.Empty(t, next)
				require.Equal(t, tt.want, ids(got))
			})
		}

		got, _, err := s.ListInstances(ctx, store.InstanceFilter{InstanceIDs: []string{"mi-1"}})
		require.NoError(t, err)
		require.Equal(t, map[string]string{"env": "prod", "role": "web"}, got[0].TagMap(), "tags loaded")

		_, _, err = s.ListInstances(ctx, store.InstanceFilter{Tags: []store.TagFilter{{Key: ""}}})
		require.ErrorIs(t, err, store.ErrInvalidArgument)
	})
}

func TestListInstancesPagination(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		var want []string
		for i := range 23 {
			id := instanceID(i)
			tags := map[string]string{"parity": []string{"even", "odd"}[i%2]}
			seedInstance(t, s, id, tags)
			if i%2 == 0 {
				want = append(want, id)
			}
		}
		tests := []struct {
			name      string
			max       int
			wantPages int
		}{
			{"page of 5", 5, 3},
			{"page of 12 (exact)", 12, 1},
			{"page of 11", 11, 2},
			{"page of 1", 1, 12},
			{"default", 0, 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var got []string
				tok, pages := "", 0
				for {
					items, next, err := s.ListInstances(ctx, store.InstanceFilter{
						Tags: []store.TagFilter{{Key: "parity", Values: []string{"even"}}}, MaxResults: tt.max, NextToken: tok,
					})
					require.NoError(t, err)
					pages++
					got = append(got, ids(items)...)
					if next == "" {
						break
					}
					require.Less(t, pages, 100)
					tok = next
				}
				require.Equal(t, want, got)
				require.Equal(t, tt.wantPages, pages)
			})
		}
		_, _, err := s.ListInstances(ctx, store.InstanceFilter{NextToken: "!!not-a-token"})
		require.ErrorIs(t, err, store.ErrInvalidArgument)
	})
}

func TestAuthenticateInstance(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		seedInstance(t, s, "mi-1", nil)
		seedInstance(t, s, "mi-2", nil)
		require.NoError(t, s.DeregisterInstance(ctx, "mi-2"))
		tests := []struct {
			name, id, hash string
			wantErr        error
		}{
			{"ok", "mi-1", store.HashSecret("secret-mi-1"), nil},
			{"wrong secret", "mi-1", store.HashSecret("secret-mi-2"), store.ErrUnauthorized},
			{"empty hash", "mi-1", "", store.ErrUnauthorized},
			{"unknown id", "mi-9", store.HashSecret("secret-mi-9"), store.ErrUnauthorized},
			{"deregistered", "mi-2", store.HashSecret("secret-mi-2"), store.ErrUnauthorized},
			{"deregistered, empty hash", "mi-2", "", store.ErrUnauthorized},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				inst, err := s.AuthenticateInstance(ctx, tt.id, tt.hash)
				if tt.wantErr != nil {
					require.ErrorIs(t, err, tt.wantErr)
					require.NotErrorIs(t, err, store.ErrNotFound)
					require.Nil(t, inst)
					return
				}
				require.NoError(t, err)
				require.Equal(t, tt.id, inst.InstanceID)
			})
		}
	})
}

func TestUpdateInstanceHost(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		seedInstance(t, s, "mi-1", nil)
		_, err := s.MarkConnectionLost(ctx, t0.Add(time.Hour))
		require.NoError(t, err)
		h := store.HostUpdate{
			Hostname: "web-1", PlatformType: "Linux", PlatformName: "Ubuntu", PlatformVersion: "24.04",
			Kernel: "6.8.0", Architecture: "x86_64", AgentVersion: "0.1.0", IPAddresses: []string{"10.0.0.5", "fe80::1"},
		}
		now := t0.Add(2 * time.Hour)
		require.NoError(t, s.UpdateInstanceHost(ctx, "mi-1", h, now))
		got, err := s.GetInstance(ctx, "mi-1")
		require.NoError(t, err)
		require.Equal(t, []string{"10.0.0.5", "fe80::1"}, got.IPs())
		require.Equal(t, "web-1", got.Hostname)
		require.Equal(t, "Ubuntu", got.PlatformName)
		require.Equal(t, "24.04", got.PlatformVersion)
		require.Equal(t, "6.8.0", got.Kernel)
		require.Equal(t, "x86_64", got.Architecture)
		require.Equal(t, "0.1.0", got.AgentVersion)
		require.Equal(t, store.PingOnline, got.PingStatus)
		require.True(t, got.LastPingAt.Equal(now))

		require.ErrorIs(t, s.UpdateInstanceHost(ctx, "mi-9", h, now), store.ErrNotFound)
		require.NoError(t, s.DeregisterInstance(ctx, "mi-1"))
		require.ErrorIs(t, s.UpdateInstanceHost(ctx, "mi-1", h, now.Add(time.Hour)), store.ErrUnauthorized)
		got, err = s.GetInstance(ctx, "mi-1")
		require.NoError(t, err)
		require.Equal(t, store.PingInactive, got.PingStatus, "a deregistered instance stays inactive")
		require.True(t, got.LastPingAt.Equal(now))

		require.Nil(t, store.Instance{}.IPs())
		require.Nil(t, store.Instance{IPAddresses: "garbage"}.IPs())
		require.Equal(t, map[string]string{}, store.Instance{}.TagMap())
	})
}

func TestTouchInstances(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for i := range 3 {
			seedInstance(t, s, instanceID(i), nil)
		}
		require.NoError(t, s.DeregisterInstance(ctx, instanceID(1)))
		_, err := s.MarkConnectionLost(ctx, t0.Add(time.Minute))
		require.NoError(t, err)

		now := t0.Add(time.Hour)
		inactive, err := s.TouchInstances(ctx, []string{instanceID(0), instanceID(1), "mi-unknown", instanceID(2), instanceID(0), "mi-unknown"}, now)
		require.NoError(t, err)
		require.Equal(t, []string{instanceID(1), "mi-unknown"}, inactive)

		for i, want := range []string{store.PingOnline, store.PingInactive, store.PingOnline} {
			got, err := s.GetInstance(ctx, instanceID(i))
			require.NoError(t, err)
			require.Equal(t, want, got.PingStatus, instanceID(i))
			if want == store.PingOnline {
				require.True(t, got.LastPingAt.Equal(now))
			} else {
				require.True(t, got.LastPingAt.Equal(t0))
			}
		}

		inactive, err = s.TouchInstances(ctx, nil, now)
		require.NoError(t, err)
		require.Empty(t, inactive)
	})
}

func TestTouchInstancesLargeBatch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		// Insert directly: 1,200 registrations would only slow the test.
		rows := make([]store.Instance, 1200)
		batch := make([]string, 0, 1300)
		for i := range rows {
			rows[i] = store.Instance{InstanceID: instanceID(i), PingStatus: store.PingConnectionLost, LastPingAt: t0, RegisteredAt: t0}
			batch = append(batch, rows[i].InstanceID)
		}
		require.NoError(t, store.GormDB(s).WithContext(ctx).CreateInBatches(rows, 200).Error)
		var unknown []string
		for i := 1200; i < 1300; i++ {
			unknown = append(unknown, instanceID(i))
		}
		batch = append(batch, unknown...)
		inactive, err := s.TouchInstances(ctx, batch, t0.Add(time.Minute))
		require.NoError(t, err)
		require.Equal(t, unknown, inactive)
		counts, err := s.CountInstancesBy(ctx, "ping_status")
		require.NoError(t, err)
		require.Equal(t, map[string]int{store.PingOnline: 1200}, counts)
	})
}

func TestMarkConnectionLost(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for i := range 4 {
			seedInstance(t, s, instanceID(i), nil)
		}
		// mi-0: pinged at t0 (stale); mi-1: fresh; mi-2: stale but
		// deregistered; mi-3: pinged exactly at the cut-off.
		cut := t0.Add(10 * time.Minute)
		_, err := s.TouchInstances(ctx, []string{instanceID(1)}, cut.Add(time.Second))
		require.NoError(t, err)
		_, err = s.TouchInstances(ctx, []string{instanceID(3)}, cut)
		require.NoError(t, err)
		require.NoError(t, s.DeregisterInstance(ctx, instanceID(2)))

		n, err := s.MarkConnectionLost(ctx, cut)
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		n, err = s.MarkConnectionLost(ctx, cut)
		require.NoError(t, err)
		require.EqualValues(t, 0, n, "idempotent")

		want := []string{store.PingConnectionLost, store.PingOnline, store.PingInactive, store.PingOnline}
		for i, w := range want {
			got, err := s.GetInstance(ctx, instanceID(i))
			require.NoError(t, err)
			require.Equal(t, w, got.PingStatus, instanceID(i))
		}
		// Sub-second precision is respected.
		n, err = s.MarkConnectionLost(ctx, cut.Add(500*time.Millisecond))
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		// Non-UTC input compares by instant.
		_, err = s.TouchInstances(ctx, []string{instanceID(3)}, cut)
		require.NoError(t, err)
		east := time.FixedZone("east", 5*3600)
		n, err = s.MarkConnectionLost(ctx, cut.Add(-time.Second).In(east))
		require.NoError(t, err)
		require.EqualValues(t, 0, n)
	})
}

func TestTagInstance(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		seedInstance(t, s, "mi-1", map[string]string{"env": "dev"})
		require.NoError(t, s.TagInstance(ctx, "mi-1", map[string]string{"env": "prod", "team": "core"}))
		got, err := s.GetInstance(ctx, "mi-1")
		require.NoError(t, err)
		require.Equal(t, map[string]string{"env": "prod", "team": "core"}, got.TagMap())

		require.ErrorIs(t, s.TagInstance(ctx, "mi-9", map[string]string{"a": "b"}), store.ErrNotFound)
		require.ErrorIs(t, s.TagInstance(ctx, "mi-1", map[string]string{"": "b"}), store.ErrInvalidArgument)

		// Up to 50 in total: 48 more fit, overwriting existing keys is free.
		more := map[string]string{"env": "staging"}
		for i := range 48 {
			more[fmt.Sprintf("k%02d", i)] = "v"
		}
		require.NoError(t, s.TagInstance(ctx, "mi-1", more))
		err = s.TagInstance(ctx, "mi-1", map[string]string{"one-too-many": "x"})
		require.ErrorIs(t, err, store.ErrInvalidArgument)
		require.ErrorContains(t, err, "51 tags")
		got, err = s.GetInstance(ctx, "mi-1")
		require.NoError(t, err)
		require.Len(t, got.Tags, 50)
		require.Equal(t, "staging", got.TagMap()["env"])

		require.NoError(t, s.UntagInstance(ctx, "mi-1", []string{"env", "absent", "k00"}))
		got, err = s.GetInstance(ctx, "mi-1")
		require.NoError(t, err)
		require.Len(t, got.Tags, 48)
		require.NotContains(t, got.TagMap(), "env")
		require.NoError(t, s.UntagInstance(ctx, "mi-1", nil))
		require.ErrorIs(t, s.UntagInstance(ctx, "mi-9", []string{"env"}), store.ErrNotFound)
	})
}

func TestDeregisterInstance(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		seedInstance(t, s, "mi-1", map[string]string{"env": "prod"})
		require.NoError(t, s.DeregisterInstance(ctx, "mi-1"))
		require.NoError(t, s.DeregisterInstance(ctx, "mi-1"), "twice is harmless")
		got, err := s.GetInstance(ctx, "mi-1")
		require.NoError(t, err)
		require.Equal(t, store.PingInactive, got.PingStatus)
		require.Empty(t, got.SecretHash)
		require.Equal(t, map[string]string{"env": "prod"}, got.TagMap())
		require.ErrorIs(t, s.DeregisterInstance(ctx, "mi-9"), store.ErrNotFound)
	})
}

func TestCountInstancesBy(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		for i := range 4 {
			seedInstance(t, s, instanceID(i), nil)
		}
		require.NoError(t, s.UpdateInstanceHost(ctx, instanceID(0), store.HostUpdate{PlatformType: "Linux", PlatformName: "Ubuntu"}, t0))
		require.NoError(t, s.UpdateInstanceHost(ctx, instanceID(1), store.HostUpdate{PlatformType: "Linux", PlatformName: "Ubuntu"}, t0))
		require.NoError(t, s.UpdateInstanceHost(ctx, instanceID(2), store.HostUpdate{PlatformType: "Linux", PlatformName: "Debian"}, t0))
		require.NoError(t, s.DeregisterInstance(ctx, instanceID(3)))
		tests := []struct {
			column  string
			want    map[string]int
			wantErr error
		}{
			{"ping_status", map[string]int{store.PingOnline: 3, store.PingInactive: 1}, nil},
			{"platform_name", map[string]int{"Ubuntu": 2, "Debian": 1, "": 1}, nil},
			{"platform_type", map[string]int{"Linux": 3, "": 1}, nil},
			{"secret_hash", nil, store.ErrInvalidArgument},
			{"ping_status; DROP TABLE instances", nil, store.ErrInvalidArgument},
		}
		for _, tt := range tests {
			t.Run(tt.column, func(t *testing.T) {
				got, err := s.CountInstancesBy(ctx, tt.column)
				if tt.wantErr != nil {
					require.ErrorIs(t, err, tt.wantErr)
					return
				}
				require.NoError(t, err)
				require.Equal(t, tt.want, got)
			})
		}
	})
}
