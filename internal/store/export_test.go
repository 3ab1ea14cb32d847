package store

import (
	"context"
	"slices"

	"gorm.io/gorm"
)

// Migration exposes the migration type to the external tests.
type Migration = migration

// MigrateWith runs the store's migrations followed by extra, as a newer
// binary would.
func MigrateWith(ctx context.Context, s *Store, extra ...Migration) error {
	return migrate(ctx, s.db, s.dialect, s.log, append(slices.Clone(migrations), extra...))
}

// MigrateOnly runs exactly ms.
func MigrateOnly(ctx context.Context, s *Store, ms ...Migration) error {
	return migrate(ctx, s.db, s.dialect, s.log, ms)
}

// GormDB exposes the handle for schema inspection in tests.
func GormDB(s *Store) *gorm.DB { return s.db }

// LatestVersion is the newest migration this binary knows.
func LatestVersion() int { return migrations[len(migrations)-1].Version }
