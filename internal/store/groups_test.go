package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
)

func TestResourceGroups(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		web := &store.ResourceGroup{Name: "web", Description: "web tier", Query: `[{"key":"role","values":["web"]},{"key":"env"}]`}
		require.NoError(t, s.CreateGroup(ctx, web))
		require.NoError(t, s.CreateGroup(ctx, &store.ResourceGroup{Name: "db", Query: `[{"key":"role","values":["db"]}]`}))
		require.ErrorIs(t, s.CreateGroup(ctx, &store.ResourceGroup{Name: "web", Query: `[{"key":"x"}]`}), store.ErrAlreadyExists)

		bad := []store.ResourceGroup{
			{Name: "", Query: `[{"key":"x"}]`},
			{Name: "empty", Query: `[]`},
			{Name: "none", Query: ``},
			{Name: "notjson", Query: `{`},
			{Name: "nokey", Query: `[{"values":["a"]}]`},
		}
		for _, g := range bad {
			require.ErrorIs(t, s.CreateGroup(ctx, &g), store.ErrInvalidArgument, g.Name)
		}

		got, err := s.GetGroup(ctx, "web")
		require.NoError(t, err)
		require.Equal(t, "web tier", got.Description)
		require.False(t, got.CreatedAt.IsZero())
		fs, err := got.Filters()
		require.NoError(t, err)
		require.Equal(t, []store.TagFilter{{Key: "role", Values: []string{"web"}}, {Key: "env"}}, fs)

		// A group's filters select instances through ListInstances.
		seedInstance(t, s, "mi-1", map[string]string{"role": "web", "env": "prod"})
		seedInstance(t, s, "mi-2", map[string]string{"role": "web"})
		items, _, err := s.ListInstances(ctx, store.InstanceFilter{Tags: fs})
		require.NoError(t, err)
		require.Equal(t, []string{"mi-1"}, ids(items))

		list, err := s.ListGroups(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"db", "web"}, []string{list[0].Name, list[1].Name})

		require.NoError(t, s.DeleteGroup(ctx, "web"))
		require.ErrorIs(t, s.DeleteGroup(ctx, "web"), store.ErrNotFound)
		_, err = s.GetGroup(ctx, "web")
		require.ErrorIs(t, err, store.ErrNotFound)

		_, err = store.ResourceGroup{Query: "nope"}.Filters()
		require.Error(t, err)
	})
}
