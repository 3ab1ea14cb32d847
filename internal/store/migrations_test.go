package store_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
)

func appliedVersions(t *testing.T, s *store.Store) []int {
	t.Helper()
	var vs []int
	require.NoError(t, store.GormDB(s).Model(&store.SchemaMigration{}).Order("version").Pluck("version", &vs).Error)
	return vs
}

func allVersions() []int {
	var vs []int
	for v := 1; v <= store.LatestVersion(); v++ {
		vs = append(vs, v)
	}
	return vs
}

func TestMigrationsIdempotent(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			url := storetest.URL(t, d)
			for range 3 {
				s, err := store.Open(ctxT(t), url, storetest.Logger(t))
				require.NoError(t, err)
				require.Equal(t, allVersions(), appliedVersions(t, s))
				require.NoError(t, s.Close())
			}
		})
	}
}

func TestMigrationsConcurrentOpen(t *testing.T) {
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			url := storetest.URL(t, d)
			var wg sync.WaitGroup
			errs := make([]error, 6)
			for i := range errs {
				wg.Go(func() {
					s, err := store.Open(ctxT(t), url, storetest.Logger(t))
					if err == nil {
						err = s.Close()
					}
					errs[i] = err
				})
			}
			wg.Wait()
			require.NoError(t, errors.Join(errs...))
			s, err := store.Open(ctxT(t), url, storetest.Logger(t))
			require.NoError(t, err)
			defer s.Close()
			require.Equal(t, allVersions(), appliedVersions(t, s))
		})
	}
}

func TestMigrationsUpgradeInPlace(t *testing.T) {
	type widgetV2 struct {
		ID   int `gorm:"primaryKey"`
		Name string
	}
	v2 := store.Migration{
		Version: store.LatestVersion() + 1,
		Name:    "test: add widgets and instances.note",
		Up: func(tx *gorm.DB) error {
			if err := tx.Table("widgets").Migrator().CreateTable(&widgetV2{}); err != nil {
				return err
			}
			return tx.Exec("ALTER TABLE instances ADD COLUMN note VARCHAR(64) NOT NULL DEFAULT ''").Error
		},
	}
	calls := 0
	counting := v2
	counting.Up = func(tx *gorm.DB) error { calls++; return v2.Up(tx) }

	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			calls = 0
			url := storetest.URL(t, d)
			s, err := store.Open(ctxT(t), url, storetest.Logger(t))
			require.NoError(t, err)
			// Data written at the old version survives the upgrade.
			require.NoError(t, s.CreateActivation(ctxT(t), &store.Activation{ID: "a1", CodeHash: "h", RegistrationLimit: 1}))
			require.NoError(t, s.Close())

			s, err = store.Open(ctxT(t), url, storetest.Logger(t))
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			require.NoError(t, store.MigrateWith(ctxT(t), s, counting))
			require.NoError(t, store.MigrateWith(ctxT(t), s, counting))
			require.Equal(t, 1, calls, "v2 runs once")
			require.Equal(t, append(allVersions(), v2.Version), appliedVersions(t, s))
			m := store.GormDB(s).Migrator()
			require.True(t, m.HasTable("widgets"))
			require.True(t, m.HasColumn(&store.Instance{}, "note"))
			_, err = s.GetActivation(ctxT(t), "a1")
			require.NoError(t, err)

			// An older binary (without v2) still opens the upgraded database.
			s2, err := store.Open(ctxT(t), url, storetest.Logger(t))
			require.NoError(t, err)
			require.NoError(t, s2.Close())
		})
	}
}

func TestMigrationFailureRollsBack(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		bad := store.Migration{
			Version: store.LatestVersion() + 1,
			Name:    "test: half-done",
			Up: func(tx *gorm.DB) error {
				if err := tx.Exec("CREATE TABLE half_done (id INTEGER PRIMARY KEY)").Error; err != nil {
					return err
				}
				return errors.New("boom")
			},
		}
		err := store.MigrateWith(ctxT(t), s, bad)
		require.ErrorContains(t, err, "boom")
		require.False(t, store.GormDB(s).Migrator().HasTable("half_done"))
		require.Equal(t, allVersions(), appliedVersions(t, s))
	})
}

func TestMigrationsOutOfOrder(t *testing.T) {
	s := storetest.Open(t)
	noop := func(*gorm.DB) error { return nil }
	err := store.MigrateOnly(ctxT(t), s,
		store.Migration{Version: 2, Name: "b", Up: noop},
		store.Migration{Version: 1, Name: "a", Up: noop})
	require.ErrorContains(t, err, "out of order")
}

func TestCascadeDeletesActivationTags(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		require.NoError(t, s.CreateActivation(ctx, &store.Activation{
			ID: "a1", CodeHash: "h", RegistrationLimit: 1,
			Tags: []store.ActivationTag{{Key: "env", Value: "prod"}},
		}))
		// Delete the parent row behind the store's back: the FK must cascade.
		require.NoError(t, store.GormDB(s).Exec("DELETE FROM activations WHERE id = ?", "a1").Error)
		var n int64
		require.NoError(t, store.GormDB(s).Model(&store.ActivationTag{}).Count(&n).Error)
		require.Zero(t, n)
	})
}
