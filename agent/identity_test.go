package agent

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSaveLoadIdentity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	id := testIdentity("https://fleet.example.com")
	id.ServerFingerprint = Fingerprint([]byte("cert"))
	require.NoError(t, SaveIdentity(dir, id))

	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	st, err = os.Stat(filepath.Join(dir, IdentityFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	got, err := LoadIdentity(dir)
	require.NoError(t, err)
	assert.Equal(t, id, got)

	// Overwrite leaves exactly one file and no temp files behind.
	id.Secret = "rotated"
	require.NoError(t, SaveIdentity(dir, id))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	got, err = LoadIdentity(dir)
	require.NoError(t, err)
	assert.Equal(t, "rotated", got.Secret)
}

func TestSaveIdentityRefusesInvalid(t *testing.T) {
	dir := t.TempDir()
	require.Error(t, SaveIdentity(dir, Identity{InstanceID: "i-123", Secret: "s", ServerURL: "https://x"}))
	_, err := os.Stat(filepath.Join(dir, IdentityFile))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestLoadIdentityErrors(t *testing.T) {
	_, err := LoadIdentity(t.TempDir())
	require.ErrorIs(t, err, ErrNotRegistered)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, IdentityFile), []byte("{"), 0o600))
	_, err = LoadIdentity(dir)
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrNotRegistered)
}

func TestIdentityNeverShowsSecret(t *testing.T) {
	id := testIdentity("https://fleet.example.com")
	var logs strings.Builder
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "identity", id)
	for _, s := range []string{fmt.Sprint(id), fmt.Sprintf("%v %+v %#v %s", id, id, id, id), logs.String()} {
		assert.NotContains(t, s, testSecret)
		assert.Contains(t, s, testInstanceID)
	}
}

func TestSameServer(t *testing.T) {
	id := testIdentity("https://Fleet.Example.com/")
	assert.True(t, id.SameServer("https://fleet.example.com"))
	assert.True(t, id.SameServer("HTTPS://fleet.example.com/"))
	assert.False(t, id.SameServer("https://fleet.example.com:8443"))
	assert.False(t, id.SameServer("https://other.example.com"))
	assert.False(t, id.SameServer("not a url"))
}
