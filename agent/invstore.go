package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// InvocationsDir is the folder of the state dir holding one record per
// invocation the agent has seen (see CommandRunner).
const InvocationsDir = "invocations"

// recordState is where an invocation stood when its record was last written.
type recordState string

const (
	// stateAccepted: the ID was recorded and the invocation queued or
	// started. Found at start-up, it means the agent died mid-run.
	stateAccepted recordState = "accepted"
	// stateFinished: Result holds the outcome.
	stateFinished recordState = "finished"
)

// recordStep is what a record remembers of a step: enough to report an
// interrupted invocation step by step after a restart.
type recordStep struct {
	Name    string `json:"name"`
	Skipped bool   `json:"skipped,omitempty"`
}

// invocationRecord is DIR/invocations/<file>.json. It is what makes
// invocations at-most-once across restarts: a known ID is never run again.
type invocationRecord struct {
	InvocationID string       `json:"invocationId"`
	CommandID    string       `json:"commandId,omitempty"`
	State        recordState  `json:"state"`
	ReceivedAt   time.Time    `json:"receivedAt"`
	Steps        []recordStep `json:"steps,omitempty"`
	// Result is set once finished.
	Result *agentproto.CommandResult `json:"result,omitempty"`
	// ResultPending: the result has not been acknowledged by the server
	// (command_result_ack) and is resent on every new connection.
	ResultPending bool `json:"resultPending,omitempty"`
	// Tombstone: the server cancelled the ID before the agent saw it run;
	// a later run_command for it is refused with the Cancelled result.
	Tombstone bool `json:"tombstone,omitempty"`
	// DoneAt is when the record stopped changing for good (result acked,
	// or tombstone written); retention counts from it.
	DoneAt time.Time `json:"doneAt,omitzero"`
}

// recordFileName maps an invocation ID to a file name: the ID with unsafe
// characters replaced (readable when debugging) plus a hash of the exact ID
// (so two IDs that sanitize alike never share a file).
func recordFileName(id string) string {
	sum := sha256.Sum256([]byte(id))
	var b strings.Builder
	for _, r := range id {
		if b.Len() >= 96 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String() + "." + hex.EncodeToString(sum[:8]) + ".json"
}

// recordStore reads and writes invocation records.
type recordStore struct {
	dir    string
	noSync bool
}

func (s recordStore) path(id string) string { return filepath.Join(s.dir, recordFileName(id)) }

func (s recordStore) load(id string) (invocationRecord, error) {
	return s.loadFile(s.path(id))
}

func (s recordStore) loadFile(path string) (invocationRecord, error) {
	var rec invocationRecord
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, fmt.Errorf("read invocation record: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("parse invocation record %s: %w", path, err)
	}
	if rec.InvocationID == "" {
		return rec, fmt.Errorf("invocation record %s has no ID", path)
	}
	return rec, nil
}

// save writes the record atomically (see writeFileAtomic), mode 0600.
// noSync skips the fsyncs (swarm harness only: durability across power loss
// is moot there).
func (s recordStore) save(rec invocationRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("marshal invocation record: %w", err)
	}
	if err := writeFileAtomic(s.path(rec.InvocationID), b, 0o600, !s.noSync); err != nil {
		return fmt.Errorf("save invocation record: %w", err)
	}
	return nil
}

func (s recordStore) remove(id string) error {
	err := os.Remove(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// loadAll reads every record, removing temp files left by a crash. Records
// that cannot be parsed are renamed to *.corrupt and reported in bad.
func (s recordStore) loadAll() (recs []invocationRecord, bad []error, err error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("list invocation records: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(s.dir, name)
		switch {
		case strings.HasSuffix(name, ".tmp"):
			_ = os.Remove(path)
			continue
		case !strings.HasSuffix(name, ".json") || e.IsDir():
			continue
		}
		rec, err := s.loadFile(path)
		if err != nil {
			bad = append(bad, err)
			_ = os.Rename(path, path+".corrupt")
			continue
		}
		recs = append(recs, rec)
	}
	return recs, bad, nil
}
