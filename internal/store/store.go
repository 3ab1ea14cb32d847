package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names returned by Store.Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Store is the platform's database handle. It is safe for concurrent use; one
// Store is shared by a whole process.
type Store struct {
	db      *gorm.DB
	sqlDB   *sql.DB
	dialect string
	log     *slog.Logger
}

// Open connects to the database named by rawURL and applies the missing
// migrations.
//
// Accepted URLs:
//
//	sqlite:///abs/path/fleetops.db   SQLite file (created, with its directory, if missing)
//	sqlite://relative/fleetops.db    SQLite file relative to the working directory
//	sqlite::memory:                  private in-memory SQLite database, for tests
//	postgres://user@host:5432/db?sslmode=disable   (also postgresql://)
//
// SQLite runs with the WAL journal (synchronous=NORMAL, the usual pairing:
// a power cut may lose the last commits, never consistency), a 5 s busy
// timeout, foreign keys on and IMMEDIATE transactions (so concurrent writers
// queue on the busy timeout instead of failing on a lock upgrade); a small
// pool serves concurrent readers. PostgreSQL URLs are passed to pgx
// unchanged, so any libpq parameter, and runtime parameters such as
// search_path, work.
//
// gorm's own logging is silenced; failed statements are logged to log at
// error level (without their parameters, which may carry secret hashes).
// A nil log discards. An unreachable database yields ErrUnavailable.
func Open(ctx context.Context, rawURL string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Several processes creating the same SQLite file at once can see
	// SQLITE_BUSY while the first one switches it to WAL (SQLite does not
	// call the busy handler there); that settles within milliseconds, so
	// retry for a while.
	backoff := 20 * time.Millisecond
	giveUp := time.Now().Add(30 * time.Second)
	for {
		dialect, dialector, memory, err := dialectorFor(rawURL)
		if err != nil {
			return nil, err
		}
		s, err := open(ctx, dialect, dialector, memory, log)
		if err == nil || dialect != DialectSQLite || !isSQLiteBusy(err) ||
			ctx.Err() != nil || time.Now().After(giveUp) {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func open(ctx context.Context, dialect string, dialector gorm.Dialector, memory bool, log *slog.Logger) (*Store, error) {
	db, err := gorm.Open(dialector, &gorm.Config{
		Logger:               &gormLogger{log: log},
		NowFunc:              func() time.Time { return time.Now().UTC() },
		DisableAutomaticPing: true, // pinged below with ctx
	})
	if err != nil {
		return nil, classify("open database", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, classify("open database", err)
	}
	switch {
	case memory:
		// Every connection to ":memory:" is a separate database: keep exactly
		// one, forever.
		sqlDB.SetMaxOpenConns(1)
		sqlDB.SetMaxIdleConns(1)
		sqlDB.SetConnMaxLifetime(0)
		sqlDB.SetConnMaxIdleTime(0)
	case dialect == DialectSQLite:
		// WAL lets readers run beside the single writer; writers serialise
		// on the busy timeout. More connections than CPUs buy nothing.
		n := max(4, runtime.GOMAXPROCS(0))
		sqlDB.SetMaxOpenConns(n)
		sqlDB.SetMaxIdleConns(n)
	default:
		sqlDB.SetMaxOpenConns(16)
		sqlDB.SetMaxIdleConns(4)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
		sqlDB.SetConnMaxLifetime(time.Hour)
	}
	s := &Store{db: db, sqlDB: sqlDB, dialect: dialect, log: log}
	if err := s.Ping(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	if err := migrate(ctx, db, dialect, log, migrations); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	return s, nil
}

// dialectorFor parses a database URL into a gorm dialector.
func dialectorFor(rawURL string) (dialect string, d gorm.Dialector, memory bool, err error) {
	scheme, rest, ok := strings.Cut(rawURL, ":")
	if !ok {
		return "", nil, false, fmt.Errorf("open database: %w: URL %q has no scheme; want sqlite:///path/file.db or postgres://user@host/db", ErrInvalidArgument, redact(rawURL))
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		dsn, memory, err := sqliteDSN(rest)
		if err != nil {
			return "", nil, false, fmt.Errorf("open database: %w", err)
		}
		return DialectSQLite, sqlite.Open(dsn), memory, nil
	case "postgres", "postgresql":
		return DialectPostgres, postgres.New(postgres.Config{DSN: rawURL}), false, nil
	default:
		return "", nil, false, fmt.Errorf("open database: %w: unsupported scheme %q in database URL; want sqlite or postgres", ErrInvalidArgument, scheme)
	}
}

// sqliteDSN turns what follows "sqlite:" into a glebarez/go-sqlite DSN.
func sqliteDSN(rest string) (dsn string, memory bool, err error) {
	path, query, _ := strings.Cut(strings.TrimPrefix(rest, "//"), "?")
	params := url.Values{}
	if query != "" {
		if params, err = url.ParseQuery(query); err != nil {
			return "", false, invalid("sqlite URL query: %v", err)
		}
	}
	// Note: the driver ignores _txlock when _time_format is given, and its
	// default time format is the one we want anyway.
	params.Add("_pragma", "busy_timeout(5000)")
	params.Add("_pragma", "foreign_keys(1)")
	params.Add("_pragma", "synchronous(NORMAL)")
	params.Set("_txlock", "immediate")
	switch path {
	case "":
		return "", false, invalid("sqlite URL has no file path; want sqlite:///abs/path/file.db")
	case ":memory:":
		return "file::memory:?" + params.Encode(), true, nil
	}
	params.Add("_pragma", "journal_mode(WAL)")
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", false, fmt.Errorf("%w: create database directory: %w", ErrUnavailable, err)
		}
	}
	// A file: URI, with the path escaped so that '?', '#' and '%' in it survive.
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + params.Encode(), false, nil
}

// redact drops a password from a URL for error messages.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	return u.Redacted()
}

// Close closes the connection pool. Calls after Close fail with
// ErrUnavailable.
func (s *Store) Close() error {
	return classify("close database", s.sqlDB.Close())
}

// Ping checks that the database answers, for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.sqlDB.PingContext(ctx); err != nil {
		if ctx.Err() != nil && !errors.Is(err, ErrUnavailable) {
			// A deadline spent waiting for the database is unavailability.
			return fmt.Errorf("ping database: %w: %w", ErrUnavailable, err)
		}
		return classify("ping database", err)
	}
	return nil
}

// Dialect returns DialectSQLite ("sqlite") or DialectPostgres ("postgres").
func (s *Store) Dialect() string { return s.dialect }

// countBy returns the number of rows of q per value of column, which is
// spliced into the SQL and so must be a constant or checked by the caller.
func countBy(q *gorm.DB, column string) (map[string]int, error) {
	var rows []struct {
		Value string
		N     int
	}
	if err := q.Select(column + " AS value, COUNT(*) AS n").Group(column).Scan(&rows).Error; err != nil {
		return nil, err
	}
	m := make(map[string]int, len(rows))
	for _, r := range rows {
		m[r.Value] = r.N
	}
	return m, nil
}

// HashSecret returns the hex SHA-256 of secret. It hashes activation codes,
// agent secrets and API tokens before they are stored or looked up. Those
// are high-entropy random values generated by us, not passwords, so a fast
// unsalted hash is right: there is nothing to brute-force, and a
// deterministic hash lets a token be found by its hash with an index.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// gormLogger routes gorm's error reports to slog and drops everything else.
type gormLogger struct{ log *slog.Logger }

var (
	_ logger.Interface  = (*gormLogger)(nil)
	_ gorm.ParamsFilter = (*gormLogger)(nil)
)

func (l *gormLogger) LogMode(logger.LogLevel) logger.Interface { return l }
func (l *gormLogger) Info(context.Context, string, ...any)     {}
func (l *gormLogger) Warn(context.Context, string, ...any)     {}
func (l *gormLogger) Error(ctx context.Context, msg string, args ...any) {
	l.log.ErrorContext(ctx, "gorm: "+fmt.Sprintf(msg, args...))
}

// Trace logs failed statements, except the expected ones: not found,
// duplicate keys (returned as ErrAlreadyExists) and cancelled requests.
func (l *gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if err == nil || errors.Is(err, gorm.ErrRecordNotFound) || isDuplicate(err) ||
		errors.Is(err, context.Canceled) {
		return
	}
	sqlText, _ := fc()
	l.log.ErrorContext(ctx, "database statement failed",
		"error", err, "sql", sqlText, "elapsed", time.Since(begin))
}

// ParamsFilter keeps statement parameters (hashes, tags) out of the log.
func (l *gormLogger) ParamsFilter(_ context.Context, sqlText string, _ ...any) (string, []any) {
	return sqlText, nil
}
