package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// IdentityFile is the name of the identity file inside the state dir.
const IdentityFile = "identity.json"

// ErrNotRegistered is returned by LoadIdentity when the state dir holds no
// identity: the host has not run `fleetops-agent register` yet.
var ErrNotRegistered = errors.New("agent is not registered")

// Identity is what registration leaves in the state dir: who this node is, the
// credential it proves that with, and how to reach and trust the server. It is
// stored as DIR/identity.json, mode 0600.
//
// Identity's String and LogValue never show the secret, so an Identity can be
// printed or logged safely.
type Identity struct {
	// InstanceID is the node's "mi-" ID assigned by the server.
	InstanceID string `json:"instanceId"`
	// Secret is the node's credential, sent as a bearer token on every
	// connection. Never log it.
	Secret string `json:"secret"`
	// ServerURL is the server's base URL (scheme, host, optional path prefix).
	ServerURL string `json:"serverUrl"`
	// CAFile, ServerFingerprint and Insecure are the transport settings given
	// at registration; `run` uses the same ones. See Transport.
	CAFile            string `json:"caFile,omitempty"`
	ServerFingerprint string `json:"serverFingerprint,omitempty"`
	Insecure          bool   `json:"insecure,omitempty"`
	// RegisteredAt is when registration succeeded (agent's clock).
	RegisteredAt time.Time `json:"registeredAt,omitzero"`
}

// Transport returns the transport settings stored in the identity.
func (id Identity) Transport() Transport {
	return Transport{CAFile: id.CAFile, ServerFingerprint: id.ServerFingerprint, Insecure: id.Insecure}
}

// String shows the identity without its secret.
func (id Identity) String() string {
	return fmt.Sprintf("%s@%s", id.InstanceID, id.ServerURL)
}

// GoString keeps %#v from printing the secret.
func (id Identity) GoString() string { return "agent.Identity{" + id.String() + "}" }

// LogValue keeps slog from printing the secret.
func (id Identity) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("instanceId", id.InstanceID),
		slog.String("server", id.ServerURL),
	)
}

// Validate checks that the identity is complete and well formed.
func (id Identity) Validate() error {
	if !agentproto.ValidInstanceID(id.InstanceID) {
		return fmt.Errorf("identity: invalid instance ID %q", id.InstanceID)
	}
	if id.Secret == "" {
		return errors.New("identity: empty secret")
	}
	if _, err := parseServerURL(id.ServerURL); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if err := id.Transport().Check(); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}

// SameServer reports whether the identity belongs to the server at rawURL,
// comparing normalized URLs (scheme and host case, trailing slash).
func (id Identity) SameServer(rawURL string) bool {
	a, errA := parseServerURL(id.ServerURL)
	b, errB := parseServerURL(rawURL)
	return errA == nil && errB == nil && a.String() == b.String()
}

// LoadIdentity reads DIR/identity.json. It returns an error wrapping
// ErrNotRegistered when the file does not exist.
func LoadIdentity(dir string) (Identity, error) {
	path := filepath.Join(dir, IdentityFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Identity{}, fmt.Errorf("%w: no %s", ErrNotRegistered, path)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("read identity: %w", err)
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return Identity{}, fmt.Errorf("parse identity %s: %w", path, err)
	}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// SaveIdentity writes DIR/identity.json atomically: a temp file in the same
// dir (mode 0600), fsync, rename over the old file, fsync of the dir. A crash
// leaves either the old identity or the new one, never a torn file. DIR is
// created with mode 0700 if missing.
func SaveIdentity(dir string, id Identity) error {
	if err := id.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return fmt.Errorf("marshal identity: %w", err)
	}
	b = append(b, '\n')
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, IdentityFile), b, 0o600, true); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	return nil
}
