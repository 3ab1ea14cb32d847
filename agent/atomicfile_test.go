package agent

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteFileAtomic(t *testing.T) {
	tests := []struct {
		name string
		sync bool
		// setup prepares dir and returns the path to write.
		setup func(t *testing.T, dir string) string
		// wantErr: the write fails and the target is left as setup made it.
		wantErr bool
	}{
		{
			name:  "creates with sync",
			sync:  true,
			setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "identity.json") },
		},
		{
			name:  "creates without sync",
			setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "identity.json") },
		},
		{
			name: "replaces with sync",
			sync: true,
			setup: func(t *testing.T, dir string) string {
				path := filepath.Join(dir, "rec.0123.json")
				require.NoError(t, os.WriteFile(path, []byte("old content, longer than the new"), 0o644))
				return path
			},
		},
		{
			name: "replaces without sync",
			setup: func(t *testing.T, dir string) string {
				path := filepath.Join(dir, "rec.0123.json")
				require.NoError(t, os.WriteFile(path, []byte("old content, longer than the new"), 0o644))
				return path
			},
		},
		{
			name: "rename fails onto a directory",
			sync: true,
			setup: func(t *testing.T, dir string) string {
				path := filepath.Join(dir, "taken")
				require.NoError(t, os.Mkdir(path, 0o700))
				require.NoError(t, os.WriteFile(filepath.Join(path, "keep"), nil, 0o600))
				return path
			},
			wantErr: true,
		},
		{
			name:    "dir missing",
			setup:   func(t *testing.T, dir string) string { return filepath.Join(dir, "missing", "identity.json") },
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tt.setup(t, dir)
			wantNames := dirNames(t, dir)
			if !tt.wantErr && !slices.Contains(wantNames, filepath.Base(path)) {
				wantNames = append(wantNames, filepath.Base(path))
				slices.Sort(wantNames)
			}
			data := []byte(`{"new":true}`)

			err := writeFileAtomic(path, data, 0o600, tt.sync)

			// Success or failure, no temp file is left behind: the dir
			// holds what setup made, plus the target on success.
			assert.Equal(t, wantNames, dirNames(t, dir), "dir entries")
			if tt.wantErr {
				require.Error(t, err)
				st, err := os.Stat(path)
				if err == nil {
					assert.True(t, st.IsDir(), "target left as it was")
				}
				return
			}
			require.NoError(t, err)
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, string(data), string(got))
			st, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
		})
	}
}

// dirNames lists the names in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}
