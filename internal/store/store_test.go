package store_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
)

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestOpenURLs(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	tests := []struct {
		name    string
		url     string
		dialect string
		wantErr error
	}{
		{"absolute", "sqlite://" + filepath.Join(dir, "sub", "abs.db"), store.DialectSQLite, nil},
		{"relative", "sqlite://rel.db", store.DialectSQLite, nil},
		{"memory", "sqlite::memory:", store.DialectSQLite, nil},
		{"unknown scheme", "mysql://root@localhost/x", "", store.ErrInvalidArgument},
		{"no scheme", "/tmp/x.db", "", store.ErrInvalidArgument},
		{"empty sqlite path", "sqlite://", "", store.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := store.Open(ctxT(t), tt.url, storetest.Logger(t))
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			require.Equal(t, tt.dialect, s.Dialect())
			require.NoError(t, s.Ping(ctxT(t)))
			require.NoError(t, s.CreateGroup(ctxT(t), &store.ResourceGroup{Name: "g", Query: `[{"key":"env"}]`}))
			gs, err := s.ListGroups(ctxT(t))
			require.NoError(t, err)
			require.Len(t, gs, 1)
		})
	}
	require.FileExists(t, filepath.Join(dir, "sub", "abs.db"))
	require.FileExists(t, filepath.Join(dir, "rel.db"))
}

func TestSQLiteJournalIsWAL(t *testing.T) {
	s := storetest.Open(t)
	var mode string
	require.NoError(t, store.GormDB(s).Raw("PRAGMA journal_mode").Scan(&mode).Error)
	require.Equal(t, "wal", mode)
	var fk int
	require.NoError(t, store.GormDB(s).Raw("PRAGMA foreign_keys").Scan(&fk).Error)
	require.Equal(t, 1, fk)
}

func TestUnavailableAfterClose(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		require.NoError(t, s.Close())
		calls := map[string]error{
			"Ping": s.Ping(ctx),
			"GetInstance": func() error {
				_, err := s.GetInstance(ctx, "mi-0")
				return err
			}(),
			"ListInstances": func() error {
				_, _, err := s.ListInstances(ctx, store.InstanceFilter{})
				return err
			}(),
			"AuthenticateToken": func() error {
				_, err := s.AuthenticateToken(ctx, "h", time.Now())
				return err
			}(),
			"RegisterInstance": s.RegisterInstance(ctx, "a", "h", &store.Instance{InstanceID: "mi-1"}, time.Now()),
			"AppendAudit":      s.AppendAudit(ctx, &store.AuditEvent{Actor: "a", Action: "b", Outcome: "success"}),
		}
		for name, err := range calls {
			require.ErrorIs(t, err, store.ErrUnavailable, name)
			require.NotErrorIs(t, err, store.ErrNotFound, name)
		}
	})
}

func TestUnavailablePostgresUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, url := range []string{
		"postgres://postgres@127.0.0.1:1/test?sslmode=disable",
		"postgresql://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2",
	} {
		_, err := store.Open(ctx, url, storetest.Logger(t))
		require.ErrorIs(t, err, store.ErrUnavailable, url)
	}
}

func TestUnavailableContextDeadlineWhileConnecting(t *testing.T) {
	// A server that accepts connections and never answers: the connect
	// attempt hangs until the context's deadline.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err = store.Open(ctx, "postgres://postgres@"+ln.Addr().String()+"/test?sslmode=disable", storetest.Logger(t))
	require.ErrorIs(t, err, store.ErrUnavailable)
}

func TestHashSecret(t *testing.T) {
	// echo -n abc | sha256sum
	require.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", store.HashSecret("abc"))
	require.Len(t, store.HashSecret(""), 64)
}

func TestErrorsWrapContext(t *testing.T) {
	s := storetest.Open(t)
	_, err := s.GetInstance(ctxT(t), "mi-nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Contains(t, err.Error(), "mi-nope")
	require.False(t, errors.Is(err, store.ErrUnavailable))
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
