package store

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// Sentinel errors returned (wrapped) by Store methods. Match them with
// errors.Is.
var (
	// ErrNotFound means the addressed row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists means a row with the same key exists already.
	ErrAlreadyExists = errors.New("already exists")
	// ErrUnavailable means the database cannot be reached right now
	// (connection refused or lost, closed store, database locked past the
	// busy timeout). The request may succeed later; the API answers 503.
	ErrUnavailable = errors.New("database unavailable")
	// ErrInvalidArgument means the input was rejected before reaching the
	// database: an invalid pagination token, a tag limit exceeded, an unknown
	// column. The message names the problem; the API answers 400.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrActivationNotFound means a registration named an unknown activation.
	ErrActivationNotFound = errors.New("activation not found")
	// ErrActivationExpired means a registration came at or after the
	// activation's ExpiresAt.
	ErrActivationExpired = errors.New("activation expired")
	// ErrActivationExhausted means the activation's RegistrationLimit is
	// reached.
	ErrActivationExhausted = errors.New("activation registration limit reached")
	// ErrInvalidActivationCode means the activation code does not match.
	ErrInvalidActivationCode = errors.New("invalid activation code")
	// ErrUnauthorized means a credential (agent secret or API token) is
	// unknown, wrong, revoked or belongs to a deregistered instance.
	ErrUnauthorized = errors.New("unauthorized")
)

// sentinels are the errors classify passes through unchanged (only adding
// context): an error already carrying one of them has been classified.
var sentinels = []error{
	ErrNotFound, ErrAlreadyExists, ErrUnavailable, ErrInvalidArgument,
	ErrActivationNotFound, ErrActivationExpired, ErrActivationExhausted,
	ErrInvalidActivationCode, ErrUnauthorized,
}

// classify wraps err with the operation op and, where it recognises the
// failure, with one of the sentinels. Every Store method returns its errors
// through it, so the mapping from driver errors lives in one place.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	case isDuplicate(err):
		return fmt.Errorf("%s: %w: %w", op, ErrAlreadyExists, err)
	case isUnavailable(err):
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// invalid returns an ErrInvalidArgument with a message for the caller.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// sqliteCoder is implemented by the SQLite driver's errors
// (github.com/glebarez/go-sqlite.Error). Matching the interface keeps the
// driver package out of this file's imports.
type sqliteCoder interface{ Code() int }

// SQLite result codes (https://www.sqlite.org/rescode.html).
const (
	sqliteBusy                 = 5
	sqliteLocked               = 6
	sqliteIOErr                = 10
	sqliteCantOpen             = 14
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
)

func isDuplicate(err error) bool {
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505" // unique_violation
	}
	var se sqliteCoder
	if errors.As(err, &se) {
		c := se.Code()
		return c == sqliteConstraintPrimaryKey || c == sqliteConstraintUnique
	}
	return false
}

func isUnavailable(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return true
	}
	// database/sql reports a closed pool with an unexported error value,
	// so its message is the only thing to match.
	if strings.Contains(err.Error(), "sql: database is closed") {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"): // connection_exception class
			return true
		case pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // shutdown, cannot_connect_now
			return true
		case pe.Code == "53300": // too_many_connections
			return true
		}
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var se sqliteCoder
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqliteBusy, sqliteLocked, sqliteIOErr, sqliteCantOpen:
			return true
		}
	}
	return false
}

func isNotFound(err error) bool {
	return errors.Is(err, gorm.ErrRecordNotFound) || errors.Is(err, ErrNotFound)
}

func isSQLiteBusy(err error) bool {
	var se sqliteCoder
	if errors.As(err, &se) {
		c := se.Code() & 0xff
		return c == sqliteBusy || c == sqliteLocked
	}
	return false
}
