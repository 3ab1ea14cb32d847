// Package storetest gives tests a fresh, migrated store on every database the
// suite runs against: a SQLite file in the test's temporary directory always,
// and a PostgreSQL schema of its own when FLEETOPS_TEST_POSTGRES_URL names a
// server (for example postgres://postgres@127.0.0.1:5432/test?sslmode=disable).
//
// When the variable is set, PostgreSQL is a required dependency: an
// unreachable server fails the test, it never skips.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetops/fleetops/internal/store"
)

// EnvPostgresURL names the environment variable holding the PostgreSQL
// server URL tests use. Each test gets its own schema in that database.
const EnvPostgresURL = "FLEETOPS_TEST_POSTGRES_URL"

// Dialects returns the dialects tests should cover: "sqlite", plus
// "postgres" when EnvPostgresURL is set.
func Dialects() []string {
	ds := []string{store.DialectSQLite}
	if os.Getenv(EnvPostgresURL) != "" {
		ds = append(ds, store.DialectPostgres)
	}
	return ds
}

// Each runs fn as a subtest named after each of Dialects, each with a fresh
// store that is closed when the subtest ends.
func Each(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	for _, d := range Dialects() {
		t.Run(d, func(t *testing.T) {
			fn(t, OpenDialect(t, d))
		})
	}
}

// Open returns a fresh, migrated SQLite store, closed at the end of the test.
func Open(t testing.TB) *store.Store {
	t.Helper()
	return OpenDialect(t, store.DialectSQLite)
}

// OpenDialect returns a fresh, migrated store on dialect ("sqlite" or
// "postgres"), closed at the end of the test.
func OpenDialect(t testing.TB, dialect string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, URL(t, dialect), Logger(t))
	if err != nil {
		t.Fatalf("storetest: open %s store: %v", dialect, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// URL returns the URL of a fresh, empty database on dialect, for code that
// opens the store itself (a server started as a subprocess, say): a SQLite
// file in t.TempDir(), or a new PostgreSQL schema selected with the URL's
// search_path parameter and dropped at the end of the test. Postgres
// without EnvPostgresURL set fails the test.
func URL(t testing.TB, dialect string) string {
	t.Helper()
	switch dialect {
	case store.DialectSQLite:
		return "sqlite://" + filepath.Join(t.TempDir(), "fleetops.db")
	case store.DialectPostgres:
		return postgresURL(t)
	default:
		t.Fatalf("storetest: unknown dialect %q", dialect)
		return ""
	}
}

func postgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgresURL)
	if base == "" {
		t.Fatalf("storetest: PostgreSQL requested but %s is not set", EnvPostgresURL)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("storetest: %s must be a postgres:// URL, got %q", EnvPostgresURL, base)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "t_" + hex.EncodeToString(b[:])

	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("storetest: create schema on %s: %v", redact(u), err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE"); err != nil {
			t.Errorf("storetest: drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func redact(u *url.URL) string { return u.Redacted() }

// Logger returns a slog.Logger writing to the test log at warning level and
// above; it goes quiet once the test has finished.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // t.Log after the test ended panics
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
