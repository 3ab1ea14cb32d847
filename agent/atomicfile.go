package agent

import (
	"os"
	"path/filepath"
	"strings"
)

// writeFileAtomic replaces path with data so that a crash leaves either the
// old file or the new one, never a torn file: it writes a temp file in the
// same dir (so the rename cannot cross filesystems), sets its mode to perm,
// and renames it over path. With sync, the temp file is fsynced before the
// rename and the dir after it (best effort: some filesystems refuse to sync a
// directory, and the content itself is already on disk); without, a power
// loss may lose the write, which only the swarm harness accepts.
//
// The temp file is named ".<name>-*.tmp" after path's base name without its
// extension, so readers of the dir can skip or clean up "*.tmp" files left by
// a crash. On error the temp file is removed and path is left as it was.
func writeFileAtomic(path string, data []byte, perm os.FileMode, sync bool) (err error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	// CreateTemp creates the file with mode 0600; Chmod then sets perm
	// exactly, whatever the umask.
	f, err := os.CreateTemp(dir, "."+strings.TrimSuffix(base, filepath.Ext(base))+"-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if sync {
		if d, derr := os.Open(dir); derr == nil {
			_ = d.Sync()
			_ = d.Close()
		}
	}
	return nil
}
