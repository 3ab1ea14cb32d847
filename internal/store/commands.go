package store

import (
	"context"
	"fmt"
	"iter"
	"math/bits"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Document is one version of a stored document (SSM's document versions).
// Name+Version is the key; the first version is 1.
type Document struct {
	Name    string `gorm:"primaryKey;size:128"`
	Version int    `gorm:"primaryKey;autoIncrement:false"`
	// DocumentType is "Command" (later "Session", "Automation").
	DocumentType string `gorm:"size:32;not null"`
	// DocumentFormat is "YAML" or "JSON", as given at creation.
	DocumentFormat string `gorm:"size:8;not null"`
	SchemaVersion  string `gorm:"size:8"`
	Description    string `gorm:"size:1024"`
	// Content is the document text exactly as submitted.
	Content string `gorm:"type:text;not null"`
	// Hash is the SHA-256 (hex) of Content, as SSM's DocumentDescription.Hash.
	Hash      string `gorm:"size:64;not null"`
	CreatedBy string `gorm:"size:128"`
	CreatedAt time.Time
}

// DocumentHead is a document's per-name record: which version is the
// default and which the latest.
type DocumentHead struct {
	Name           string `gorm:"primaryKey;size:128"`
	DocumentType   string `gorm:"size:32;not null;index:idx_document_heads_document_type"`
	DefaultVersion int    `gorm:"not null"`
	LatestVersion  int    `gorm:"not null"`
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Command is one SendCommand request and its aggregate state.
type Command struct {
	CommandID       string `gorm:"primaryKey;size:36"`
	DocumentName    string `gorm:"size:128;index:idx_commands_document_name"`
	DocumentVersion int
	DocumentHash    string `gorm:"size:64"`
	Comment         string `gorm:"size:100"`
	// Parameters is the JSON of map[string][]string, as submitted (SSM's
	// Parameters), after defaults were applied.
	Parameters string `gorm:"type:text"`
	// InstanceIDs and Targets are JSON arrays, as submitted.
	InstanceIDs    string `gorm:"type:text"`
	Targets        string `gorm:"type:text"`
	MaxConcurrency string `gorm:"size:8"`
	MaxErrors      string `gorm:"size:8"`
	// TimeoutSeconds is the delivery timeout; ExecutionTimeoutSeconds the
	// document's execution timeout.
	TimeoutSeconds          int
	ExecutionTimeoutSeconds int
	// MaxOutputBytes caps stored stdout and stderr per invocation.
	MaxOutputBytes int
	// Steps is the JSON of map[platformType][]agentproto.Step: the document
	// rendered for each platform at send time. A platform missing from the
	// map cannot run the document (Invalid Platform).
	Steps                 string `gorm:"type:text"`
	Status                string `gorm:"size:16;index:idx_commands_status;not null"`
	StatusDetails         string `gorm:"size:100;not null"`
	TargetCount           int
	CompletedCount        int
	ErrorCount            int
	DeliveryTimedOutCount int
	RequestedBy           string    `gorm:"size:128"`
	RequestedAt           time.Time `gorm:"index:idx_commands_requested_at"`
	// FinishedAt is set when the command reached a final status.
	FinishedAt *time.Time
	UpdatedAt  time.Time
}

// Invocation is one command on one node (SSM's CommandInvocation) and its
// delivery state: the row doubles as the agent's outbox.
type Invocation struct {
	CommandID     string    `gorm:"primaryKey;size:36"`
	InstanceID    string    `gorm:"primaryKey;size:20;index:idx_invocations_instance_id"`
	InstanceName  string    `gorm:"size:256"`
	DocumentName  string    `gorm:"size:128"`
	Status        string    `gorm:"size:16;not null"`
	StatusDetails string    `gorm:"size:100;not null"`
	RequestedAt   time.Time `gorm:"index:idx_invocations_requested_at"`
	// Payload is the agentproto.RunCommand JSON the agent receives; set at
	// dispatch.
	Payload string `gorm:"type:text"`
	// DispatchedAt: the workflow released it for delivery (in the outbox).
	// SentAt: a gateway wrote it to the agent's connection. AckedAt: the
	// agent recorded it. StartedAt/EndedAt: execution on the node.
	DispatchedAt *time.Time `gorm:"index:idx_invocations_outbox,priority:2"`
	SentAt       *time.Time `gorm:"index:idx_invocations_outbox,priority:1"`
	AckedAt      *time.Time
	StartedAt    *time.Time
	EndedAt      *time.Time
	// CancelRequested asks the node to kill it; CancelSentAt records that a
	// gateway passed the request on.
	CancelRequested bool       `gorm:"not null;default:false;index:idx_invocations_cancel,priority:1"`
	CancelSentAt    *time.Time `gorm:"index:idx_invocations_cancel,priority:2"`
	// ResponseCode is the exit code of the last step that ran; -1 when none.
	ResponseCode int `gorm:"not null;default:-1"`
	// Stdout and Stderr hold the whole output up to the command's
	// MaxOutputBytes per stream; *Truncated says more was produced.
	Stdout          string `gorm:"type:text"`
	Stderr          string `gorm:"type:text"`
	StdoutTruncated bool   `gorm:"not null;default:false"`
	StderrTruncated bool   `gorm:"not null;default:false"`
	// StepResults is the JSON of the agent's []agentproto.StepResult with
	// stdout/stderr emptied (they live in Stdout/Stderr).
	StepResults string `gorm:"type:text"`
	UpdatedAt   time.Time
}

// InvocationEvent is one status change of an invocation. Its ID is the
// cursor ActivityAwaitResults polls with.
type InvocationEvent struct {
	ID            int64  `gorm:"primaryKey;autoIncrement;index:idx_invocation_events_command,priority:2"`
	CommandID     string `gorm:"size:36;index:idx_invocation_events_command,priority:1;not null"`
	InstanceID    string `gorm:"size:20;not null"`
	Status        string `gorm:"size:16;not null"`
	StatusDetails string `gorm:"size:100;not null"`
	CreatedAt     time.Time
}

// InvocationKey names one invocation.
type InvocationKey struct {
	CommandID  string
	InstanceID string
}

// StatusChange is an invocation's new status.
type StatusChange struct {
	InstanceID    string
	Status        string
	StatusDetails string
}

// DocumentFilter selects documents for ListDocuments.
type DocumentFilter struct {
	DocumentType string
	NamePrefix   string
	MaxResults   int
	NextToken    string
}

// CommandFilter selects commands for ListCommands, newest first.
type CommandFilter struct {
	CommandID    string
	Statuses     []string
	DocumentName string
	// InstanceID keeps commands that have an invocation on that node.
	InstanceID string
	// RequestedAfter (inclusive) and RequestedBefore (exclusive) bound
	// RequestedAt; zero values don't filter.
	RequestedAfter  time.Time
	RequestedBefore time.Time
	// MaxResults is the page size (0: DefaultMaxResults, capped at
	// MaxMaxResults); NextToken continues a previous page.
	MaxResults int
	NextToken  string
}

// InvocationFilter selects invocations for ListInvocations, ordered by
// command (newest first) then instance ID.
type InvocationFilter struct {
	CommandID    string
	InstanceID   string
	Statuses     []string
	DocumentName string
	// RequestedAfter (inclusive) and RequestedBefore (exclusive) bound
	// RequestedAt; zero values don't filter.
	RequestedAfter  time.Time
	RequestedBefore time.Time
	MaxResults      int
	NextToken       string
}

// OutboxItem is an invocation (or a cancel request) a gateway should send to
// a connected agent.
type OutboxItem struct {
	CommandID  string
	InstanceID string
	// Payload is the RunCommand JSON; empty for a cancel.
	Payload string
	Cancel  bool
}

// InvocationReport is what an agent reported for a finished invocation.
type InvocationReport struct {
	Status          string
	StatusDetails   string
	ResponseCode    int
	StartedAt       time.Time
	EndedAt         time.Time
	StepResults     string
	Stdout, Stderr  string // the full output as the agent kept it (may be empty when streamed)
	StdoutTruncated bool
	StderrTruncated bool
}

// Invocation statuses the store writes or tests for (SSM's
// CommandInvocationStatus).
const (
	statusPending    = "Pending"
	statusInProgress = "InProgress"
	statusDelayed    = "Delayed"
	statusSuccess    = "Success"
	statusFailed     = "Failed"
	statusTimedOut   = "TimedOut"
	statusCancelled  = "Cancelled"
)

// terminalStatuses are the invocation statuses that never change again.
var terminalStatuses = []string{statusSuccess, statusFailed, statusTimedOut, statusCancelled}

func isTerminal(status string) bool { return slices.Contains(terminalStatuses, status) }

// Output stream names accepted by AppendOutput (agentproto.StreamStdout and
// StreamStderr).
const (
	streamStdout = "stdout"
	streamStderr = "stderr"
)

// eventLockID is the first key of the PostgreSQL advisory lock that
// serialises, per command, the transactions writing invocation events; see
// lockCommandEvents.
const eventLockID = 0x65767473 // "evts"

// invocationListColumns are the columns ListInvocations reads: all but
// Payload, Stdout and Stderr, which can be large.
var invocationListColumns = []string{
	"command_id", "instance_id", "instance_name", "document_name", "status",
	"status_details", "requested_at", "dispatched_at", "sent_at", "acked_at",
	"started_at", "ended_at", "cancel_requested", "cancel_sent_at",
	"response_code", "stdout_truncated", "stderr_truncated", "step_results",
	"updated_at",
}

// CommandCounters are a command's aggregate counters (SSM's Command
// TargetCount, CompletedCount, ErrorCount and DeliveryTimedOutCount).
type CommandCounters struct {
	TargetCount           int
	CompletedCount        int
	ErrorCount            int
	DeliveryTimedOutCount int
}

// insertRows is how many rows of cols columns one multi-row INSERT carries.
// PostgreSQL takes 500 (well below its 65535 parameters). The SQLite driver
// matches each placeholder against every argument, O(parameters²) per
// statement: there a 500-row insert of 22 columns takes seconds, so
// statements stay near 400 parameters.
func (s *Store) insertRows(cols int) int {
	if s.dialect == DialectSQLite {
		return max(1, 400/cols)
	}
	return inChunk
}

// invocationInsertColumns are the columns CreateInvocations writes; the
// others start NULL or at their column default (ResponseCode -1, flags
// false). Fewer columns make the bulk insert cheaper.
var invocationInsertColumns = []string{
	"command_id", "instance_id", "instance_name", "document_name", "status",
	"status_details", "requested_at", "updated_at",
}

// timeCursor encodes a pagination token for an ordering by a time and then
// string keys.
func timeCursor(t time.Time, keys ...string) string {
	return encodeToken(strings.Join(append([]string{t.UTC().Format(time.RFC3339Nano)}, keys...), "|"))
}

// parseTimeCursor decodes a timeCursor token holding n keys.
func parseTimeCursor(tok string, n int) (time.Time, []string, error) {
	raw, err := decodeToken(tok)
	if err != nil {
		return time.Time{}, nil, err
	}
	parts := strings.SplitN(raw, "|", n+1)
	if len(parts) != n+1 {
		return time.Time{}, nil, invalid("malformed NextToken")
	}
	t, err := time.Parse(time.RFC3339Nano, parts[0])
	if err != nil {
		return time.Time{}, nil, invalid("malformed NextToken")
	}
	return t.UTC(), parts[1:], nil
}

// uniqueIDs returns ids without duplicates, in first-seen order.
func uniqueIDs(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// inInputOrder returns the ids of in that are also in got, in the order of
// in, each once.
func inInputOrder(in, got []string) []string {
	set := make(map[string]bool, len(got))
	for _, id := range got {
		set[id] = true
	}
	var out []string
	for _, id := range uniqueIDs(in) {
		if set[id] {
			out = append(out, id)
		}
	}
	return out
}

// lockCommandEvents serialises, on PostgreSQL, the transactions that write
// events of commandID, until tx ends. Event IDs come from a sequence, which
// hands out numbers in the order the inserts run, not the order their
// transactions commit: without the lock, a reader could see event 11,
// advance its cursor past 10 and then miss event 10 when it commits. With
// it, one command's events become visible in ID order, which is all an
// InvocationEvents cursor (per command) needs. It must be the transaction's
// first statement, before any invocation row is locked, so that the lock
// order is always command then invocation. SQLite's IMMEDIATE transactions
// serialise all writers already.
func (s *Store) lockCommandEvents(tx *gorm.DB, commandID string) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	return tx.Exec("SELECT pg_advisory_xact_lock(?, hashtext(?))", eventLockID, commandID).Error
}

// insertEvents writes one InvocationEvent per change.
func (s *Store) insertEvents(tx *gorm.DB, commandID string, changes []StatusChange, now time.Time) error {
	if len(changes) == 0 {
		return nil
	}
	evs := make([]InvocationEvent, 0, len(changes))
	for _, c := range changes {
		evs = append(evs, InvocationEvent{
			CommandID: commandID, InstanceID: c.InstanceID,
			Status: c.Status, StatusDetails: c.StatusDetails, CreatedAt: now,
		})
	}
	for chunk := range slices.Chunk(evs, s.insertRows(6)) {
		// Insert in power-of-two pieces (13 = 8+4+1): few distinct
		// statements, each prepared once (see padded).
		for len(chunk) > 0 {
			n := 1 << (bits.Len(uint(len(chunk))) - 1)
			piece := chunk[:n]
			if err := tx.Create(&piece).Error; err != nil {
				return err
			}
			chunk = chunk[n:]
		}
	}
	return nil
}

// padded returns xs grown to the next power of two by repeating its last
// element. pgx prepares and caches each distinct SQL text per connection;
// an IN list of any length would be a new text each time, crowding the
// hot statements out of that cache. Padding keeps the texts to a handful.
// Repeated values in an IN list or a CASE change nothing.
func padded[T any](xs []T) []T {
	if len(xs) == 0 {
		return xs
	}
	n := 1 << bits.Len(uint(len(xs)-1))
	out := slices.Grow(slices.Clip(xs), n-len(xs))
	for len(out) < n {
		out = append(out, xs[len(xs)-1])
	}
	return out
}

// inLists yields the IN lists of a batch statement over ids: the distinct
// ids, at most inChunk at a time, each list padded (see padded).
func inLists(ids []string) iter.Seq[[]string] {
	return func(yield func([]string) bool) {
		for chunk := range slices.Chunk(uniqueIDs(ids), inChunk) {
			if !yield(padded(chunk)) {
				return
			}
		}
	}
}

// updateInvocations runs "UPDATE invocations SET <set> WHERE command_id = ?
// AND instance_id IN (ids) AND <cond> RETURNING instance_id" once per IN
// list of ids (see inLists) and returns the instance IDs it updated, in the
// order the database returned them.
func updateInvocations(tx *gorm.DB, commandID string, ids []string, set string, setArgs []any, cond string, condArgs ...any) ([]string, error) {
	var updated []string
	for list := range inLists(ids) {
		args := slices.Concat(setArgs, []any{commandID, list}, condArgs)
		var got []string
		err := tx.Raw("UPDATE invocations SET "+set+
			" WHERE command_id = ? AND instance_id IN ? AND "+cond+" RETURNING instance_id", args...).
			Scan(&got).Error
		if err != nil {
			return nil, err
		}
		updated = append(updated, got...)
	}
	return updated, nil
}

// byteLength is the SQL expression for the length in bytes of the text
// column col: length() counts characters on PostgreSQL, and on SQLite
// unless the value is a blob.
func (s *Store) byteLength(col string) string {
	if s.dialect == DialectPostgres {
		return "octet_length(COALESCE(" + col + ", ''))"
	}
	return "length(CAST(COALESCE(" + col + ", '') AS BLOB))"
}

// sameLengthUTF8 replaces each byte of an invalid UTF-8 sequence, and each
// NUL, with '?'. PostgreSQL text can hold neither, and keeping the byte
// length keeps the agent's stream offsets valid. A character split across
// two chunks is lost this way (as "??" + "?"); agents split on character
// boundaries.
func sameLengthUTF8(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r == 0 {
			b = append(b, '?')
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return string(b)
}

// capOutput returns the part of data that fits in a stream holding cur bytes
// with a cap of maxBytes (0 or less: no cap), cut at a character boundary,
// and whether anything was cut.
func capOutput(data string, cur int64, maxBytes int) (string, bool) {
	if maxBytes <= 0 || data == "" {
		return data, false
	}
	room := int64(maxBytes) - cur
	if room <= 0 {
		return "", true
	}
	if int64(len(data)) <= room {
		return data, false
	}
	i := int(room)
	for i > 0 && !utf8.RuneStart(data[i]) {
		i--
	}
	return data[:i], true
}

// CreateCommand inserts c. Empty Status and StatusDetails default to
// "Pending", a zero RequestedAt to now. A duplicate CommandID yields
// ErrAlreadyExists.
func (s *Store) CreateCommand(ctx context.Context, c *Command) error {
	op := fmt.Sprintf("create command %s", c.CommandID)
	if c.CommandID == "" {
		return classify(op, invalid("command ID is empty"))
	}
	if c.RequestedAt.IsZero() {
		c.RequestedAt = s.db.NowFunc()
	}
	c.RequestedAt = c.RequestedAt.UTC()
	if c.FinishedAt != nil {
		t := c.FinishedAt.UTC()
		c.FinishedAt = &t
	}
	if c.Status == "" {
		c.Status = statusPending
	}
	if c.StatusDetails == "" {
		c.StatusDetails = statusPending
	}
	return classify(op, s.db.WithContext(ctx).Create(c).Error)
}

// GetCommand returns the command, or ErrNotFound.
func (s *Store) GetCommand(ctx context.Context, id string) (Command, error) {
	var c Command
	if err := s.db.WithContext(ctx).Where("command_id = ?", id).Take(&c).Error; err != nil {
		return Command{}, classify(fmt.Sprintf("get command %s", id), err)
	}
	return c, nil
}

// ListCommands returns one page of the commands matching f, newest first
// (RequestedAt, then CommandID, descending), and the token of the next page
// ("" on the last page). A malformed NextToken yields ErrInvalidArgument.
func (s *Store) ListCommands(ctx context.Context, f CommandFilter) ([]Command, string, error) {
	const op = "list commands"
	limit := pageSize(f.MaxResults)
	q := s.db.WithContext(ctx).Model(&Command{})
	if f.CommandID != "" {
		q = q.Where("command_id = ?", f.CommandID)
	}
	if len(f.Statuses) > 0 {
		q = q.Where("status IN ?", f.Statuses)
	}
	if f.DocumentName != "" {
		q = q.Where("document_name = ?", f.DocumentName)
	}
	if f.InstanceID != "" {
		q = q.Where("EXISTS (SELECT 1 FROM invocations i WHERE i.command_id = commands.command_id AND i.instance_id = ?)", f.InstanceID)
	}
	if !f.RequestedAfter.IsZero() {
		q = q.Where("requested_at >= ?", f.RequestedAfter.UTC())
	}
	if !f.RequestedBefore.IsZero() {
		q = q.Where("requested_at < ?", f.RequestedBefore.UTC())
	}
	if f.NextToken != "" {
		t, keys, err := parseTimeCursor(f.NextToken, 1)
		if err != nil {
			return nil, "", classify(op, err)
		}
		q = q.Where("(requested_at < ? OR (requested_at = ? AND command_id < ?))", t, t, keys[0])
	}
	var cs []Command
	if err := q.Order("requested_at DESC, command_id DESC").Limit(limit + 1).Find(&cs).Error; err != nil {
		return nil, "", classify(op, err)
	}
	next := ""
	if len(cs) > limit {
		cs = cs[:limit]
		next = timeCursor(cs[limit-1].RequestedAt, cs[limit-1].CommandID)
	}
	return cs, next, nil
}

// UpdateCommandStatus sets the command's status, details and counters (the
// counters replace the stored ones), and FinishedAt when finishedAt is not
// nil. A command that is finished already (FinishedAt set) is left alone
// and no error is returned: a late progress report cannot move it back, and
// finishing twice is harmless. An unknown command yields ErrNotFound.
func (s *Store) UpdateCommandStatus(ctx context.Context, id, status, details string, counters CommandCounters, finishedAt *time.Time) error {
	op := fmt.Sprintf("update status of command %s", id)
	updates := map[string]any{
		"status":                   status,
		"status_details":           details,
		"target_count":             counters.TargetCount,
		"completed_count":          counters.CompletedCount,
		"error_count":              counters.ErrorCount,
		"delivery_timed_out_count": counters.DeliveryTimedOutCount,
	}
	if finishedAt != nil {
		updates["finished_at"] = finishedAt.UTC()
	}
	db := s.db.WithContext(ctx)
	res := db.Model(&Command{}).Where("command_id = ? AND finished_at IS NULL", id).Updates(updates)
	if res.Error != nil {
		return classify(op, res.Error)
	}
	if res.RowsAffected > 0 {
		return nil
	}
	var n int64
	if err := db.Model(&Command{}).Where("command_id = ?", id).Count(&n).Error; err != nil {
		return classify(op, err)
	}
	if n == 0 {
		return classify(op, ErrNotFound)
	}
	return nil // finished already
}

// CreateInvocations inserts rows as invocations of commandID, in one
// transaction, and sets the command's TargetCount to the number of its
// invocations. The caller fills InstanceID, InstanceName, DocumentName,
// Status and StatusDetails ("Pending"; empty defaults to that) and
// RequestedAt (zero: now); CommandID is set here. Rows that exist already
// are left alone, so a retried call is harmless. Only the fields above are
// written (see invocationInsertColumns). Rows are inserted 500 per
// statement on PostgreSQL, 50 on SQLite (see insertRows). An unknown
// command yields ErrNotFound.
func (s *Store) CreateInvocations(ctx context.Context, commandID string, rows []Invocation) error {
	op := fmt.Sprintf("create %d invocations of command %s", len(rows), commandID)
	now := s.db.NowFunc()
	batch := make([]Invocation, len(rows))
	for i, r := range rows {
		r.CommandID = commandID
		if r.Status == "" {
			r.Status = statusPending
		}
		if r.StatusDetails == "" {
			r.StatusDetails = statusPending
		}
		if r.RequestedAt.IsZero() {
			r.RequestedAt = now
		}
		r.RequestedAt = r.RequestedAt.UTC()
		batch[i] = r
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for chunk := range slices.Chunk(batch, s.insertRows(len(invocationInsertColumns))) {
			err := tx.Select(invocationInsertColumns).Clauses(clause.OnConflict{DoNothing: true}).Create(&chunk).Error
			if err != nil {
				return err
			}
		}
		res := tx.Model(&Command{}).Where("command_id = ?", commandID).Updates(map[string]any{
			"target_count": gorm.Expr("(SELECT COUNT(*) FROM invocations WHERE command_id = ?)", commandID),
		})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
	return classify(op, err)
}

// QueueInvocations releases invocations of commandID for delivery: for each
// instance ID → payload it sets Payload and DispatchedAt = now, unless the
// invocation was dispatched already or is terminal. Instance IDs without an
// invocation are ignored. Invocations sharing a payload are updated 500 per
// statement, all in one transaction.
func (s *Store) QueueInvocations(ctx context.Context, commandID string, payloads map[string]string, now time.Time) error {
	op := fmt.Sprintf("queue %d invocations of command %s", len(payloads), commandID)
	now = now.UTC()
	byPayload := make(map[string][]string)
	for id, p := range payloads {
		byPayload[p] = append(byPayload[p], id)
	}
	keys := make([]string, 0, len(byPayload))
	for p := range byPayload {
		keys = append(keys, p)
	}
	slices.Sort(keys)
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, p := range keys {
			ids := byPayload[p]
			slices.Sort(ids)
			for list := range inLists(ids) {
				err := tx.Model(&Invocation{}).
					Where("command_id = ? AND instance_id IN ? AND dispatched_at IS NULL AND status NOT IN ?",
						commandID, list, terminalStatuses).
					Updates(map[string]any{"payload": p, "dispatched_at": now}).Error
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
	return classify(op, err)
}

// SetInvocationStatuses applies each change to commandID's invocation when
// its current status is one of onlyFrom (empty: any non-terminal status),
// writes one InvocationEvent per applied change and returns the applied
// changes, grouped by status and details in order of first appearance, in
// input order within a group. The workflow uses it for Delayed,
// Undeliverable and Terminated.
func (s *Store) SetInvocationStatuses(ctx context.Context, commandID string, changes []StatusChange, onlyFrom []string, now time.Time) ([]StatusChange, error) {
	op := fmt.Sprintf("set status of %d invocations of command %s", len(changes), commandID)
	now = now.UTC()
	cond, condArg := "status NOT IN ?", any(terminalStatuses)
	if len(onlyFrom) > 0 {
		cond, condArg = "status IN ?", any(onlyFrom)
	}
	type target struct{ status, details string }
	var order []target
	groups := make(map[target][]string)
	for _, c := range changes {
		k := target{c.Status, c.StatusDetails}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], c.InstanceID)
	}
	var applied []StatusChange
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		applied = nil
		if err := s.lockCommandEvents(tx, commandID); err != nil {
			return err
		}
		for _, k := range order {
			updated, err := updateInvocations(tx, commandID, groups[k],
				"status = ?, status_details = ?, updated_at = ?", []any{k.status, k.details, now},
				cond, condArg)
			if err != nil {
				return err
			}
			for _, id := range inInputOrder(groups[k], updated) {
				applied = append(applied, StatusChange{InstanceID: id, Status: k.status, StatusDetails: k.details})
			}
		}
		return s.insertEvents(tx, commandID, applied, now)
	})
	if err != nil {
		return nil, classify(op, err)
	}
	return applied, nil
}

// maxOutbox caps one Outbox read.
const maxOutbox = 10000

// Outbox returns up to limit (0: DefaultMaxResults; at most 10,000) items
// that gateways should send now, all for instances that are Online: first
// cancel requests for invocations that were sent and are not terminal,
// whose cancel was not passed on yet; then invocations dispatched but not
// sent, not terminal and not being cancelled, oldest dispatch first.
// Offline instances are left out so that they cannot fill the page; their
// agents get their items from Unacked when they reconnect.
func (s *Store) Outbox(ctx context.Context, limit int) ([]OutboxItem, error) {
	const op = "read outbox"
	if limit <= 0 {
		limit = DefaultMaxResults
	}
	limit = min(limit, maxOutbox)
	online := "JOIN instances ON instances.instance_id = invocations.instance_id AND instances.ping_status = ?"
	order := "invocations.dispatched_at, invocations.command_id, invocations.instance_id"
	db := s.db.WithContext(ctx)
	var cancels []OutboxItem
	err := db.Model(&Invocation{}).Select("invocations.command_id, invocations.instance_id").
		Joins(online, PingOnline).
		Where("invocations.cancel_requested = ? AND invocations.cancel_sent_at IS NULL AND invocations.sent_at IS NOT NULL AND invocations.status NOT IN ?",
			true, terminalStatuses).
		Order(order).Limit(limit).Scan(&cancels).Error
	if err != nil {
		return nil, classify(op, err)
	}
	for i := range cancels {
		cancels[i].Cancel = true
	}
	if len(cancels) >= limit {
		return cancels, nil
	}
	var sends []OutboxItem
	err = db.Model(&Invocation{}).Select("invocations.command_id, invocations.instance_id, invocations.payload").
		Joins(online, PingOnline).
		Where("invocations.sent_at IS NULL AND invocations.dispatched_at IS NOT NULL AND invocations.cancel_requested = ? AND invocations.status NOT IN ?",
			false, terminalStatuses).
		Order(order).Limit(limit - len(cancels)).Scan(&sends).Error
	if err != nil {
		return nil, classify(op, err)
	}
	return append(cancels, sends...), nil
}

// Unacked returns what a reconnecting agent on instanceID must be sent
// again: the invocations dispatched to it that it has not acknowledged, are
// not terminal and not being cancelled (oldest dispatch first), then cancel
// requests for its invocations that were sent, are not terminal and have
// CancelRequested set, whether or not the cancel was sent before.
func (s *Store) Unacked(ctx context.Context, instanceID string) ([]OutboxItem, error) {
	op := fmt.Sprintf("read unacknowledged invocations of instance %s", instanceID)
	db := s.db.WithContext(ctx)
	order := "dispatched_at, command_id"
	var sends []OutboxItem
	err := db.Model(&Invocation{}).Select("command_id, instance_id, payload").
		Where("instance_id = ? AND dispatched_at IS NOT NULL AND acked_at IS NULL AND cancel_requested = ? AND status NOT IN ?",
			instanceID, false, terminalStatuses).
		Order(order).Scan(&sends).Error
	if err != nil {
		return nil, classify(op, err)
	}
	var cancels []OutboxItem
	err = db.Model(&Invocation{}).Select("command_id, instance_id").
		Where("instance_id = ? AND cancel_requested = ? AND sent_at IS NOT NULL AND status NOT IN ?",
			instanceID, true, terminalStatuses).
		Order(order).Scan(&cancels).Error
	if err != nil {
		return nil, classify(op, err)
	}
	for i := range cancels {
		cancels[i].Cancel = true
	}
	return append(sends, cancels...), nil
}

// groupByCommand returns the instance IDs of keys per command ID, and the
// command IDs sorted.
func groupByCommand(keys []InvocationKey) ([]string, map[string][]string) {
	m := make(map[string][]string)
	for _, k := range keys {
		m[k.CommandID] = append(m[k.CommandID], k.InstanceID)
	}
	cmds := make([]string, 0, len(m))
	for c := range m {
		cmds = append(cmds, c)
	}
	slices.Sort(cmds)
	return cmds, m
}

// markKeys sets column to now on the invocations in keys where cond holds,
// in one transaction, command by command in command ID order, and returns
// the keys it set. With lock, each command's event lock is taken before its
// rows are touched (see lockCommandEvents). Delivery bookkeeping is not an
// edit, so UpdatedAt stays.
func (s *Store) markKeys(ctx context.Context, op string, keys []InvocationKey, lock bool, column, cond string, condArgs []any, now time.Time) ([]InvocationKey, error) {
	cmds, byCmd := groupByCommand(keys)
	var marked []InvocationKey
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		marked = nil
		for _, c := range cmds {
			if lock {
				if err := s.lockCommandEvents(tx, c); err != nil {
					return err
				}
			}
			ids, err := updateInvocations(tx, c, byCmd[c], column+" = ?", []any{now.UTC()}, cond, condArgs...)
			if err != nil {
				return err
			}
			for _, id := range ids {
				marked = append(marked, InvocationKey{CommandID: c, InstanceID: id})
			}
		}
		return nil
	})
	if err != nil {
		return nil, classify(op, err)
	}
	return marked, nil
}

// MarkSent records that a gateway wrote the invocations in keys to their
// agents' connections: SentAt = now where it is not set yet. Unknown keys
// are ignored.
func (s *Store) MarkSent(ctx context.Context, keys []InvocationKey, now time.Time) error {
	_, err := s.markKeys(ctx, fmt.Sprintf("mark %d invocations sent", len(keys)), keys, false,
		"sent_at", "sent_at IS NULL", nil, now)
	return err
}

// ClaimForSending marks the invocations in keys sent (SentAt = now) where
// they are still unsent, not cancelled and not terminal, and returns those
// it marked: only they may be written to an agent. Claiming before sending
// closes two races: a cancel that lands between a gateway's outbox read and
// its write (the claim fails, nothing runs), and two replicas sending the
// same item. A claimed item whose write fails is resent when the agent
// reconnects (Unacked).
func (s *Store) ClaimForSending(ctx context.Context, keys []InvocationKey, now time.Time) ([]InvocationKey, error) {
	return s.markKeys(ctx, fmt.Sprintf("claim %d invocations for sending", len(keys)), keys, true,
		"sent_at", "sent_at IS NULL AND cancel_requested = ? AND status NOT IN ?", []any{false, terminalStatuses}, now)
}

// MarkCancelSent records that a gateway passed the cancel requests of the
// invocations in keys on: CancelSentAt = now where a cancel is requested
// and CancelSentAt is not set yet. Unknown keys are ignored.
func (s *Store) MarkCancelSent(ctx context.Context, keys []InvocationKey, now time.Time) error {
	_, err := s.markKeys(ctx, fmt.Sprintf("mark %d invocation cancels sent", len(keys)), keys, false,
		"cancel_sent_at", "cancel_sent_at IS NULL AND cancel_requested = ?", []any{true}, now)
	return err
}

// InvocationAck is one agent acknowledgement, for AckInvocations.
type InvocationAck struct {
	InvocationKey
	// StartedAt is when the node started the invocation; zero when it has
	// not started yet.
	StartedAt time.Time
}

// AckOutcome is what AckInvocations did with one InvocationAck.
type AckOutcome struct {
	// Change is the status change the ack caused; nil when none (a
	// duplicate ack, an invocation already running or finished).
	Change *StatusChange
	// Err wraps ErrNotFound for an unknown invocation; nil otherwise.
	Err error
}

// InvocationCompletion is one final report, for CompleteInvocations.
type InvocationCompletion struct {
	InvocationKey
	Report InvocationReport
}

// CompletionOutcome is what CompleteInvocations did with one
// InvocationCompletion.
type CompletionOutcome struct {
	// Applied says the report was stored; false when the invocation was
	// terminal already (the first terminal state wins) or Err is set.
	Applied bool
	// Err wraps ErrNotFound for an unknown invocation, ErrInvalidArgument
	// for a report whose status is not terminal; nil otherwise.
	Err error
}

// byCommand returns the indexes 0..n-1 grouped by the command ID of
// key(i), in input order within a command, and the command IDs sorted:
// batch writers take the commands' event locks in that order, so that two
// batches can never wait for each other's locks.
func byCommand(n int, key func(i int) InvocationKey, keep func(i int) bool) ([]string, map[string][]int) {
	m := make(map[string][]int)
	for i := range n {
		if keep(i) {
			c := key(i).CommandID
			m[c] = append(m[c], i)
		}
	}
	cmds := make([]string, 0, len(m))
	for c := range m {
		cmds = append(cmds, c)
	}
	slices.Sort(cmds)
	return cmds, m
}

// timeParam is a placeholder for a time in a position where PostgreSQL
// cannot infer its type (a CASE branch).
func (s *Store) timeParam() string {
	if s.dialect == DialectPostgres {
		return "CAST(? AS timestamptz)"
	}
	return "?"
}

// AckInvocation records the agent's acknowledgement of k: AckedAt (and
// SentAt, if the gateway had not marked it) = now where not set yet, and
// StartedAt = startedAt where not set yet and startedAt is not zero. An
// invocation that is Pending or Delayed becomes InProgress ("In Progress"),
// with an event; the change is returned, nil otherwise (a duplicate ack, an
// invocation already running or finished). An unknown invocation yields
// ErrNotFound. It is AckInvocations of one.
func (s *Store) AckInvocation(ctx context.Context, k InvocationKey, startedAt time.Time, now time.Time) (*StatusChange, error) {
	out, err := s.AckInvocations(ctx, []InvocationAck{{InvocationKey: k, StartedAt: startedAt}}, now)
	if err != nil {
		return nil, err
	}
	return out[0].Change, out[0].Err
}

// AckInvocations applies many acknowledgements, each as AckInvocation
// would, in one transaction, and returns one outcome per ack in input
// order. An unknown invocation fails only its own item (AckOutcome.Err).
// Acks of one invocation repeated in the batch behave as if applied in
// input order: the first non-zero StartedAt wins and only the first can
// change the status. Per command, the event lock is taken once (all
// commands' locks first, in command ID order), then a few set-based
// UPDATEs cover up to 500 invocations each (fewer on SQLite, see
// insertRows) and the events are written in one insert.
func (s *Store) AckInvocations(ctx context.Context, acks []InvocationAck, now time.Time) ([]AckOutcome, error) {
	op := fmt.Sprintf("acknowledge %d invocations", len(acks))
	now = now.UTC()
	cmds, idx := byCommand(len(acks), func(i int) InvocationKey { return acks[i].InvocationKey },
		func(int) bool { return true })
	out := make([]AckOutcome, len(acks))
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		clear(out)
		for _, c := range cmds {
			if err := s.lockCommandEvents(tx, c); err != nil {
				return err
			}
		}
		inProgress := []any{statusInProgress, "In Progress", now}
		for _, c := range cmds {
			// Up to three parameters per ack (IN, WHEN, THEN), lists
			// padded to a power of two: 128 acks keep SQLite's statements
			// under 400 parameters (see insertRows).
			chunkSize := 512
			if s.dialect == DialectSQLite {
				chunkSize = 128
			}
			found := make(map[string]bool)
			for chunk := range slices.Chunk(idx[c], chunkSize) {
				var ids []string
				type when struct {
					id string
					at time.Time
				}
				var whens []when
				seen := make(map[string]bool)
				for _, i := range chunk {
					ids = append(ids, acks[i].InstanceID)
					if !acks[i].StartedAt.IsZero() && !seen[acks[i].InstanceID] {
						// The first ack in input order with a start time
						// wins, as with sequential acks.
						seen[acks[i].InstanceID] = true
						whens = append(whens, when{acks[i].InstanceID, acks[i].StartedAt.UTC()})
					}
				}
				set := "acked_at = COALESCE(acked_at, ?), sent_at = COALESCE(sent_at, ?)"
				args := []any{now, now}
				if len(whens) > 0 {
					set += ", started_at = COALESCE(started_at, CASE instance_id" +
						strings.Repeat(" WHEN ? THEN "+s.timeParam(), len(padded(whens))) + " END)"
					for _, w := range padded(whens) {
						args = append(args, w.id, w.at)
					}
				}
				var got []string
				err := tx.Raw("UPDATE invocations SET "+set+" WHERE command_id = ? AND instance_id IN ? RETURNING instance_id",
					append(args, c, padded(uniqueIDs(ids)))...).Scan(&got).Error
				if err != nil {
					return err
				}
				for _, id := range got {
					found[id] = true
				}
			}
			ids := make([]string, 0, len(idx[c]))
			for _, i := range idx[c] {
				ids = append(ids, acks[i].InstanceID)
			}
			got, err := updateInvocations(tx, c, ids, "status = ?, status_details = ?, updated_at = ?", inProgress,
				"status IN ?", []string{statusPending, statusDelayed})
			if err != nil {
				return err
			}
			changed := make(map[string]bool, len(got))
			for _, id := range got {
				changed[id] = true
			}
			var events []StatusChange
			for _, i := range idx[c] {
				k := acks[i].InvocationKey
				switch {
				case !found[k.InstanceID]:
					out[i].Err = classify(fmt.Sprintf("acknowledge invocation %s:%s", k.CommandID, k.InstanceID), ErrNotFound)
				case changed[k.InstanceID]:
					delete(changed, k.InstanceID) // a repeated ack changes nothing
					ch := StatusChange{InstanceID: k.InstanceID, Status: statusInProgress, StatusDetails: "In Progress"}
					out[i].Change = &ch
					events = append(events, ch)
				}
			}
			if err := s.insertEvents(tx, c, events, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, classify(op, err)
	}
	return out, nil
}

// AppendOutput appends data to stream ("stdout" or "stderr") of k when
// offset, the byte offset of data in the stream, equals the number of bytes
// stored. Data at an offset below that (a chunk resent after a reconnect)
// is ignored, except for any part beyond what is stored; an offset beyond
// it (a gap) yields ErrInvalidArgument. The stream is capped at maxBytes
// (0: no cap), cut at a character boundary; once cut, its *Truncated flag
// is set and later chunks are ignored. Invalid UTF-8 and NUL bytes are
// stored as '?' (see sameLengthUTF8). An unknown invocation yields
// ErrNotFound.
//
// Lengths are measured in bytes by SQL (octet_length on PostgreSQL,
// length(CAST(x AS BLOB)) on SQLite), so no separate length column is
// needed. The common case is one conditional UPDATE; appends to different
// streams or invocations never conflict, and a concurrent append to the
// same stream makes the loser re-read the length and retry.
func (s *Store) AppendOutput(ctx context.Context, k InvocationKey, stream string, offset int64, data string, maxBytes int) error {
	op := fmt.Sprintf("append %s of invocation %s:%s", stream, k.CommandID, k.InstanceID)
	var col, flag string
	switch stream {
	case streamStdout:
		col, flag = "stdout", "stdout_truncated"
	case streamStderr:
		col, flag = "stderr", "stderr_truncated"
	default:
		return classify(op, invalid("unknown output stream %q; want stdout or stderr", stream))
	}
	if offset < 0 {
		return classify(op, invalid("negative output offset %d", offset))
	}
	if data == "" {
		return nil
	}
	data = sameLengthUTF8(data)
	length := s.byteLength(col)
	db := s.db.WithContext(ctx)
	for range 20 {
		chunk, cut := capOutput(data, offset, maxBytes)
		set := col + " = COALESCE(" + col + ", '') || ?"
		args := []any{chunk}
		if cut {
			set += ", " + flag + " = ?"
			args = append(args, true)
		}
		args = append(args, k.CommandID, k.InstanceID, offset, false)
		res := db.Exec("UPDATE invocations SET "+set+
			" WHERE command_id = ? AND instance_id = ? AND "+length+" = ? AND "+flag+" = ?", args...)
		if res.Error != nil {
			return classify(op, res.Error)
		}
		if res.RowsAffected > 0 {
			return nil
		}
		var cur struct {
			N         int64
			Truncated bool
		}
		err := db.Model(&Invocation{}).Select(length+" AS n, "+flag+" AS truncated").
			Where("command_id = ? AND instance_id = ?", k.CommandID, k.InstanceID).Take(&cur).Error
		if err != nil {
			return classify(op, err)
		}
		switch {
		case cur.Truncated:
			return nil
		case offset > cur.N:
			return classify(op, invalid("output chunk at offset %d leaves a gap: %d bytes are stored", offset, cur.N))
		case offset+int64(len(data)) <= cur.N:
			return nil // stored already
		}
		// Partly stored (or a concurrent append won): append the rest.
		data = sameLengthUTF8(data[cur.N-offset:])
		offset = cur.N
	}
	return classify(op, fmt.Errorf("%w: too many concurrent appends to one stream", ErrUnavailable))
}

// CompleteInvocation records k's final report, unless the invocation is
// terminal already: then it returns false and changes nothing (the first
// terminal state wins). It sets Status, StatusDetails (empty: Status),
// ResponseCode, StepResults, StartedAt and EndedAt (when not zero), and
// AckedAt and SentAt where not set. A reported stdout or stderr longer than
// what streaming stored replaces it, capped at the command's MaxOutputBytes
// (0: no cap); the *Truncated flags are set when the report says so or the
// cap cut. One event is written. r.Status must be terminal
// (ErrInvalidArgument); an unknown invocation yields ErrNotFound. It is
// CompleteInvocations of one.
func (s *Store) CompleteInvocation(ctx context.Context, k InvocationKey, r InvocationReport, now time.Time) (bool, error) {
	out, err := s.CompleteInvocations(ctx, []InvocationCompletion{{InvocationKey: k, Report: r}}, now)
	if err != nil {
		return false, err
	}
	return out[0].Applied, out[0].Err
}

// completeSQL stores one final report; the COALESCE(?, col) parameters are
// NULL to keep the column. One fixed statement for every report.
const completeSQL = "UPDATE invocations SET status = ?, status_details = ?, response_code = ?, step_results = ?, " +
	"acked_at = COALESCE(acked_at, ?), sent_at = COALESCE(sent_at, ?), updated_at = ?, " +
	"started_at = COALESCE(?, started_at), ended_at = COALESCE(?, ended_at), " +
	"stdout = COALESCE(?, stdout), stderr = COALESCE(?, stderr), stdout_truncated = ?, stderr_truncated = ? " +
	"WHERE command_id = ? AND instance_id = ? AND status NOT IN ?"

// CompleteInvocations applies many final reports, each as
// CompleteInvocation would, in one transaction, and returns one outcome per
// report in input order. An unknown invocation or a non-terminal status
// fails only its own item (CompletionOutcome.Err). Reports of one
// invocation repeated in the batch behave as if applied in input order:
// the first wins. Per command, the event lock is taken once (all commands'
// locks first, in command ID order), the command's MaxOutputBytes and the
// invocations' current state are read in one query per 500 invocations,
// then each report is one UPDATE and the events are written in one insert.
func (s *Store) CompleteInvocations(ctx context.Context, reports []InvocationCompletion, now time.Time) ([]CompletionOutcome, error) {
	op := fmt.Sprintf("complete %d invocations", len(reports))
	now = now.UTC()
	itemOp := func(k InvocationKey) string {
		return fmt.Sprintf("complete invocation %s:%s", k.CommandID, k.InstanceID)
	}
	invalidAt := make([]error, len(reports))
	for i, r := range reports {
		if !isTerminal(r.Report.Status) {
			invalidAt[i] = classify(itemOp(r.InvocationKey), invalid("status %q is not terminal", r.Report.Status))
		}
	}
	cmds, idx := byCommand(len(reports), func(i int) InvocationKey { return reports[i].InvocationKey },
		func(i int) bool { return invalidAt[i] == nil })
	out := make([]CompletionOutcome, len(reports))
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for i := range out {
			out[i] = CompletionOutcome{Err: invalidAt[i]}
		}
		for _, c := range cmds {
			if err := s.lockCommandEvents(tx, c); err != nil {
				return err
			}
		}
		for _, c := range cmds {
			var maxes []int
			if err := tx.Model(&Command{}).Where("command_id = ?", c).Pluck("max_output_bytes", &maxes).Error; err != nil {
				return err
			}
			maxBytes := 0
			if len(maxes) > 0 {
				maxBytes = maxes[0]
			}
			type state struct {
				InstanceID      string
				Status          string
				StdoutLen       int64
				StderrLen       int64
				StdoutTruncated bool
				StderrTruncated bool
			}
			cur := make(map[string]*state)
			ids := make([]string, 0, len(idx[c]))
			for _, i := range idx[c] {
				ids = append(ids, reports[i].InstanceID)
			}
			for list := range inLists(ids) {
				var rows []state
				err := tx.Model(&Invocation{}).Clauses(clause.Locking{Strength: "UPDATE"}).
					Select("instance_id, status, "+s.byteLength("stdout")+" AS stdout_len, "+s.byteLength("stderr")+" AS stderr_len, stdout_truncated, stderr_truncated").
					Where("command_id = ? AND instance_id IN ?", c, list).Scan(&rows).Error
				if err != nil {
					return err
				}
				for _, r := range rows {
					cur[r.InstanceID] = &r
				}
			}
			var events []StatusChange
			for _, i := range idx[c] {
				k, r := reports[i].InvocationKey, reports[i].Report
				st := cur[k.InstanceID]
				if st == nil {
					out[i].Err = classify(itemOp(k), ErrNotFound)
					continue
				}
				if isTerminal(st.Status) {
					continue
				}
				if r.StatusDetails == "" {
					r.StatusDetails = r.Status
				}
				var started, ended any // nil keeps the column
				if !r.StartedAt.IsZero() {
					started = r.StartedAt.UTC()
				}
				if !r.EndedAt.IsZero() {
					ended = r.EndedAt.UTC()
				}
				stream := func(report string, stored int64, truncated bool) (any, bool) {
					text := sameLengthUTF8(report)
					if text == "" || int64(len(text)) <= stored {
						return nil, truncated
					}
					capped, cut := capOutput(text, 0, maxBytes)
					return capped, truncated || cut
				}
				stdout, stdoutTrunc := stream(r.Stdout, st.StdoutLen, st.StdoutTruncated || r.StdoutTruncated)
				stderr, stderrTrunc := stream(r.Stderr, st.StderrLen, st.StderrTruncated || r.StderrTruncated)
				res := tx.Exec(completeSQL, r.Status, r.StatusDetails, r.ResponseCode, r.StepResults,
					now, now, now, started, ended, stdout, stderr, stdoutTrunc, stderrTrunc,
					c, k.InstanceID, terminalStatuses)
				if res.Error != nil {
					return res.Error
				}
				if res.RowsAffected == 0 {
					continue
				}
				st.Status = r.Status // a repeated report in this batch finds it terminal
				out[i].Applied = true
				events = append(events, StatusChange{InstanceID: k.InstanceID, Status: r.Status, StatusDetails: r.StatusDetails})
			}
			if err := s.insertEvents(tx, c, events, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, classify(op, err)
	}
	return out, nil
}

// ExpireInvocations marks the listed invocations of commandID TimedOut with
// details, with an event each, when they are not terminal and either
// includeStarted is set or they were neither acknowledged nor started. It
// returns the status of every listed invocation that is terminal afterwards,
// including those that were terminal before, in input order, so the
// workflow can settle races with late results.
func (s *Store) ExpireInvocations(ctx context.Context, commandID string, ids []string, details string, includeStarted bool, now time.Time) ([]StatusChange, error) {
	op := fmt.Sprintf("expire %d invocations of command %s", len(ids), commandID)
	now = now.UTC()
	cond := "status NOT IN ?"
	if !includeStarted {
		cond += " AND acked_at IS NULL AND started_at IS NULL"
	}
	var final []StatusChange
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		final = nil
		if err := s.lockCommandEvents(tx, commandID); err != nil {
			return err
		}
		updated, err := updateInvocations(tx, commandID, ids,
			"status = ?, status_details = ?, updated_at = ?", []any{statusTimedOut, details, now},
			cond, terminalStatuses)
		if err != nil {
			return err
		}
		var events []StatusChange
		for _, id := range inInputOrder(ids, updated) {
			events = append(events, StatusChange{InstanceID: id, Status: statusTimedOut, StatusDetails: details})
		}
		if err := s.insertEvents(tx, commandID, events, now); err != nil {
			return err
		}
		byID := make(map[string]StatusChange)
		for list := range inLists(ids) {
			var rows []StatusChange
			err := tx.Model(&Invocation{}).Select("instance_id, status, status_details").
				Where("command_id = ? AND instance_id IN ? AND status IN ?", commandID, list, terminalStatuses).
				Scan(&rows).Error
			if err != nil {
				return err
			}
			for _, r := range rows {
				byID[r.InstanceID] = r
			}
		}
		for _, id := range uniqueIDs(ids) {
			if c, ok := byID[id]; ok {
				final = append(final, c)
			}
		}
		return nil
	})
	if err != nil {
		return nil, classify(op, err)
	}
	return final, nil
}

// CancelInvocations cancels the listed invocations of commandID. Those not
// terminal and never sent to an agent become Cancelled ("Cancelled"), with
// an event each, and are returned in input order. Those not terminal that
// were sent get CancelRequested, for the gateways to pass on (see Outbox);
// the agent reports their end.
func (s *Store) CancelInvocations(ctx context.Context, commandID string, ids []string, now time.Time) ([]StatusChange, error) {
	op := fmt.Sprintf("cancel %d invocations of command %s", len(ids), commandID)
	now = now.UTC()
	var cancelled []StatusChange
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		cancelled = nil
		if err := s.lockCommandEvents(tx, commandID); err != nil {
			return err
		}
		updated, err := updateInvocations(tx, commandID, ids,
			"status = ?, status_details = ?, updated_at = ?", []any{statusCancelled, statusCancelled, now},
			"status NOT IN ? AND sent_at IS NULL", terminalStatuses)
		if err != nil {
			return err
		}
		for _, id := range inInputOrder(ids, updated) {
			cancelled = append(cancelled, StatusChange{InstanceID: id, Status: statusCancelled, StatusDetails: statusCancelled})
		}
		if err := s.insertEvents(tx, commandID, cancelled, now); err != nil {
			return err
		}
		_, err = updateInvocations(tx, commandID, ids, "cancel_requested = ?, updated_at = ?", []any{true, now},
			"status NOT IN ? AND sent_at IS NOT NULL AND cancel_requested = ?", terminalStatuses, false)
		return err
	})
	if err != nil {
		return nil, classify(op, err)
	}
	return cancelled, nil
}

// InvocationEvents returns up to limit (0: DefaultMaxResults) events of
// commandID with an ID above after, by ID. The IDs of one command's events
// become visible in increasing order (see lockCommandEvents), so the last ID
// returned is a safe cursor.
func (s *Store) InvocationEvents(ctx context.Context, commandID string, after int64, limit int) ([]InvocationEvent, error) {
	var evs []InvocationEvent
	err := s.db.WithContext(ctx).Where("command_id = ? AND id > ?", commandID, after).
		Order("id").Limit(pageSize(limit)).Find(&evs).Error
	if err != nil {
		return nil, classify(fmt.Sprintf("read events of command %s", commandID), err)
	}
	return evs, nil
}

// GetInvocation returns the whole invocation, output included, or
// ErrNotFound.
func (s *Store) GetInvocation(ctx context.Context, k InvocationKey) (Invocation, error) {
	var inv Invocation
	err := s.db.WithContext(ctx).Where("command_id = ? AND instance_id = ?", k.CommandID, k.InstanceID).Take(&inv).Error
	if err != nil {
		return Invocation{}, classify(fmt.Sprintf("get invocation %s:%s", k.CommandID, k.InstanceID), err)
	}
	return inv, nil
}

// ListInvocations returns one page of the invocations matching f, newest
// first (RequestedAt descending, then CommandID and InstanceID ascending),
// and the token of the next page ("" on the last page). Payload, Stdout and
// Stderr are left empty to keep lists light; GetInvocation has them. A
// malformed NextToken yields ErrInvalidArgument.
func (s *Store) ListInvocations(ctx context.Context, f InvocationFilter) ([]Invocation, string, error) {
	const op = "list invocations"
	limit := pageSize(f.MaxResults)
	q := s.db.WithContext(ctx).Model(&Invocation{}).Select(invocationListColumns)
	if f.CommandID != "" {
		q = q.Where("command_id = ?", f.CommandID)
	}
	if f.InstanceID != "" {
		q = q.Where("instance_id = ?", f.InstanceID)
	}
	if len(f.Statuses) > 0 {
		q = q.Where("status IN ?", f.Statuses)
	}
	if f.DocumentName != "" {
		q = q.Where("document_name = ?", f.DocumentName)
	}
	if !f.RequestedAfter.IsZero() {
		q = q.Where("requested_at >= ?", f.RequestedAfter.UTC())
	}
	if !f.RequestedBefore.IsZero() {
		q = q.Where("requested_at < ?", f.RequestedBefore.UTC())
	}
	if f.NextToken != "" {
		t, keys, err := parseTimeCursor(f.NextToken, 2)
		if err != nil {
			return nil, "", classify(op, err)
		}
		q = q.Where("(requested_at < ? OR (requested_at = ? AND (command_id > ? OR (command_id = ? AND instance_id > ?))))",
			t, t, keys[0], keys[0], keys[1])
	}
	var invs []Invocation
	if err := q.Order("requested_at DESC, command_id, instance_id").Limit(limit + 1).Find(&invs).Error; err != nil {
		return nil, "", classify(op, err)
	}
	next := ""
	if len(invs) > limit {
		invs = invs[:limit]
		last := invs[limit-1]
		next = timeCursor(last.RequestedAt, last.CommandID, last.InstanceID)
	}
	return invs, next, nil
}

// CountInvocations returns the number of commandID's invocations per
// status.
func (s *Store) CountInvocations(ctx context.Context, commandID string) (map[string]int, error) {
	m, err := countBy(s.db.WithContext(ctx).Model(&Invocation{}).Where("command_id = ?", commandID), "status")
	if err != nil {
		return nil, classify(fmt.Sprintf("count invocations of command %s", commandID), err)
	}
	return m, nil
}

// InvocationGauges returns, for metrics, the number of invocations in
// flight (dispatched, acknowledged by the agent, not terminal) and the
// number queued for offline nodes (dispatched, not sent, not terminal, the
// instance not Online).
func (s *Store) InvocationGauges(ctx context.Context) (inFlight int, queuedOffline int, err error) {
	const op = "read invocation gauges"
	db := s.db.WithContext(ctx)
	var n int64
	err = db.Model(&Invocation{}).
		Where("dispatched_at IS NOT NULL AND acked_at IS NOT NULL AND status NOT IN ?", terminalStatuses).
		Count(&n).Error
	if err != nil {
		return 0, 0, classify(op, err)
	}
	inFlight = int(n)
	err = db.Model(&Invocation{}).
		Where("dispatched_at IS NOT NULL AND sent_at IS NULL AND status NOT IN ?", terminalStatuses).
		Where("NOT EXISTS (SELECT 1 FROM instances WHERE instances.instance_id = invocations.instance_id AND instances.ping_status = ?)", PingOnline).
		Count(&n).Error
	if err != nil {
		return 0, 0, classify(op, err)
	}
	return inFlight, int(n), nil
}
