// Package store is fleetops' persistence layer: the gorm models, the versioned
// schema migrations and every query the rest of the platform runs.
//
// One Store works on two databases: an embedded SQLite file (pure-Go driver,
// WAL journal, no cgo) for a single machine and PostgreSQL for production.
// Both run the same migrations, and the test suite runs every query against
// both (see package storetest).
//
// Errors are wrapped with context and classified once, so callers match them
// with errors.Is against the sentinels ErrNotFound, ErrAlreadyExists,
// ErrUnavailable, ErrInvalidArgument, ErrUnauthorized and the ErrActivation*
// family, never by message. Methods never read the clock: the time they need is
// passed in, and only column defaults (CreatedAt, UpdatedAt) use the current
// time.
package store
