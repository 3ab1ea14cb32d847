package store

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Session statuses (spec/sessions.md). Unlike SSM's, Disconnected is not
// final here: the client may resume within the grace period.
const (
	SessionConnecting   = "Connecting"
	SessionConnected    = "Connected"
	SessionDisconnected = "Disconnected"
	SessionTerminating  = "Terminating"
	SessionTerminated   = "Terminated"
	SessionFailed       = "Failed"
)

// Session kinds, the session document's sessionType (agentproto's
// SessionShell, SessionCommand and SessionPort, plus non-interactive
// commands).
const (
	SessionKindShell                  = "Standard_Stream"
	SessionKindInteractiveCommands    = "InteractiveCommands"
	SessionKindNonInteractiveCommands = "NonInteractiveCommands"
	SessionKindPort                   = "Port"
)

// ErrSessionEnded means the session is Terminated or Failed (or being
// terminated), so it cannot be resumed or joined. It is an
// ErrInvalidArgument, so callers that do not know it answer 400.
var ErrSessionEnded = fmt.Errorf("%w: session has ended", ErrInvalidArgument)

// endedSessionStatuses are the statuses a session never leaves.
var endedSessionStatuses = []string{SessionTerminated, SessionFailed}

// Session is one Session Manager session: a shell, command or port
// forwarding on a managed node, bridged by a server replica and owned by a
// Session workflow.
type Session struct {
	// SessionID is "<owner>-<16 hex>".
	SessionID string `gorm:"primaryKey;size:96"`
	// Target is the instance ID of the node.
	Target string `gorm:"size:32;not null;index:idx_sessions_target"`
	// Owner is the sanitized name of the API token that started it.
	Owner        string `gorm:"size:128;index:idx_sessions_owner"`
	Reason       string `gorm:"size:256"`
	DocumentName string `gorm:"size:128"`
	// Kind is one of the SessionKind* constants.
	Kind string `gorm:"size:32;not null"`
	// Status is one of the Session* status constants; Details says why it
	// is what it is (e.g. "idle timeout").
	Status    string `gorm:"size:16;not null;index:idx_sessions_status"`
	Details   string `gorm:"size:256"`
	RunAsUser string `gorm:"size:64"`
	// ShellProfile runs at the start of a shell (the document's
	// shellProfile.linux).
	ShellProfile string `gorm:"type:text"`
	// Command is the command of an InteractiveCommands or
	// NonInteractiveCommands session.
	Command string `gorm:"type:text"`
	// Host and Port are the destination of a Port session (Host empty:
	// the node itself).
	Host string `gorm:"size:256"`
	Port int
	// IdleTimeoutSeconds and MaxDurationSeconds are the document's
	// idleSessionTimeout and maxSessionDuration (0: none), in seconds.
	IdleTimeoutSeconds int
	MaxDurationSeconds int
	// RecordingEnabled says the bridge records output (asciicast v2);
	// RecordInput that it records keystrokes too.
	RecordingEnabled bool `gorm:"not null;default:false"`
	RecordInput      bool `gorm:"not null;default:false"`
	// StreamTokenHash is the SHA-256 (hex, HashSecret) of the single-use
	// stream token; it is valid until StreamTokenExpiresAt and only while
	// StreamTokenUsed is false (see ConsumeStreamToken).
	StreamTokenHash      string `gorm:"size:64"`
	StreamTokenExpiresAt time.Time
	StreamTokenUsed      bool `gorm:"not null;default:false"`
	// Connections counts the stream connections accepted so far; each
	// ConsumeStreamToken increments it and the bridge passes the new value
	// to the workflow's connected/disconnected signals, so the workflow can
	// tell a stale disconnect from the current connection's.
	Connections int `gorm:"not null;default:0"`
	// TerminateRequested tells every bridge to close the session (see
	// SessionsToClose).
	TerminateRequested bool   `gorm:"not null;default:false"`
	SourceIP           string `gorm:"size:64"`
	// StartedAt is when the session was created; ConnectedAt when its
	// stream first connected; EndedAt when it became Terminated or Failed.
	StartedAt   time.Time `gorm:"index:idx_sessions_started_at"`
	ConnectedAt *time.Time
	EndedAt     *time.Time
	// ExitCode is the exit code of the shell or command, when it exited.
	ExitCode *int
	// RecordingBytes is the size of the stored recording;
	// RecordingTruncated says a chunk was refused because of the cap.
	RecordingBytes     int64 `gorm:"not null;default:0"`
	RecordingTruncated bool  `gorm:"not null;default:false"`
	UpdatedAt          time.Time
}

// Ended reports whether the session is Terminated or Failed.
func (s Session) Ended() bool { return slices.Contains(endedSessionStatuses, s.Status) }

// SessionRecordingChunk is one piece of a session's recording; the
// recording is the concatenation of its chunks in Seq order (from 1).
type SessionRecordingChunk struct {
	SessionID string `gorm:"primaryKey;size:96"`
	Seq       int64  `gorm:"primaryKey;autoIncrement:false"`
	Data      string `gorm:"type:text;not null"`
	CreatedAt time.Time
}

// SessionFilter selects sessions for ListSessions, newest first.
type SessionFilter struct {
	// Active selects the sessions that have not ended (SSM's state
	// Active); false selects those that have, Terminated or Failed (state
	// History). DescribeSessions has no "both".
	Active bool
	// Target and Owner, when set, must match exactly.
	Target string
	Owner  string
	// Statuses, when set, keeps only these statuses.
	Statuses []string
	// After (inclusive) and Before (exclusive) bound StartedAt; zero values
	// don't filter.
	After  time.Time
	Before time.Time
	// MaxResults is the page size (0: DefaultMaxResults, capped at
	// MaxMaxResults); NextToken continues a previous page.
	MaxResults int
	NextToken  string
}

// CreateSession inserts sess. An empty Status defaults to Connecting, a
// zero StartedAt to now. A duplicate SessionID yields ErrAlreadyExists; an
// empty SessionID or Target, ErrInvalidArgument.
func (s *Store) CreateSession(ctx context.Context, sess *Session) error {
	op := fmt.Sprintf("create session %s", sess.SessionID)
	switch {
	case sess.SessionID == "":
		return classify(op, invalid("session ID is empty"))
	case sess.Target == "":
		return classify(op, invalid("session target is empty"))
	}
	if sess.Status == "" {
		sess.Status = SessionConnecting
	}
	if sess.StartedAt.IsZero() {
		sess.StartedAt = s.db.NowFunc()
	}
	sess.StartedAt = sess.StartedAt.UTC()
	sess.StreamTokenExpiresAt = sess.StreamTokenExpiresAt.UTC()
	for _, t := range []**time.Time{&sess.ConnectedAt, &sess.EndedAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	return classify(op, s.db.WithContext(ctx).Create(sess).Error)
}

// GetSession returns the session, or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (Session, error) {
	var sess Session
	if err := s.db.WithContext(ctx).Where("session_id = ?", id).Take(&sess).Error; err != nil {
		return Session{}, classify(fmt.Sprintf("get session %s", id), err)
	}
	return sess, nil
}

// ListSessions returns one page of the sessions matching f, newest first
// (StartedAt, then SessionID, descending), and the token of the next page
// ("" on the last page). A malformed NextToken yields ErrInvalidArgument.
func (s *Store) ListSessions(ctx context.Context, f SessionFilter) ([]Session, string, error) {
	const op = "list sessions"
	limit := pageSize(f.MaxResults)
	q := s.db.WithContext(ctx).Model(&Session{})
	if f.Active {
		q = q.Where("status NOT IN ?", endedSessionStatuses)
	} else {
		q = q.Where("status IN ?", endedSessionStatuses)
	}
	if f.Target != "" {
		q = q.Where("target = ?", f.Target)
	}
	if f.Owner != "" {
		q = q.Where("owner = ?", f.Owner)
	}
	if len(f.Statuses) > 0 {
		q = q.Where("status IN ?", f.Statuses)
	}
	if !f.After.IsZero() {
		q = q.Where("started_at >= ?", f.After.UTC())
	}
	if !f.Before.IsZero() {
		q = q.Where("started_at < ?", f.Before.UTC())
	}
	if f.NextToken != "" {
		t, keys, err := parseTimeCursor(f.NextToken, 1)
		if err != nil {
			return nil, "", classify(op, err)
		}
		q = q.Where("(started_at < ? OR (started_at = ? AND session_id < ?))", t, t, keys[0])
	}
	var out []Session
	if err := q.Order("started_at DESC, session_id DESC").Limit(limit + 1).Find(&out).Error; err != nil {
		return nil, "", classify(op, err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = timeCursor(out[limit-1].StartedAt, out[limit-1].SessionID)
	}
	return out, next, nil
}

// ConsumeStreamToken spends the session's stream token: in one statement
// it checks that tokenHash (HashSecret of the presented token) matches, that
// the token is unused and not expired at now, and that the session has not
// ended and is not being terminated; then it marks the token used and
// increments Connections. It returns the updated session. Any failed check,
// including an unknown session or an empty hash, yields ErrUnauthorized, so
// a token works exactly once.
func (s *Store) ConsumeStreamToken(ctx context.Context, sessionID, tokenHash string, now time.Time) (Session, error) {
	op := fmt.Sprintf("consume stream token of session %s", sessionID)
	if tokenHash == "" {
		return Session{}, classify(op, ErrUnauthorized)
	}
	db := s.db.WithContext(ctx)
	res := db.Model(&Session{}).
		Where("session_id = ? AND stream_token_hash = ? AND stream_token_used = ? AND stream_token_expires_at > ? AND ended_at IS NULL AND terminate_requested = ?",
			sessionID, tokenHash, false, now.UTC(), false).
		Updates(map[string]any{
			"stream_token_used": true,
			"connections":       gorm.Expr("connections + 1"),
			"updated_at":        now.UTC(),
		})
	if res.Error != nil {
		return Session{}, classify(op, res.Error)
	}
	if res.RowsAffected == 0 {
		return Session{}, classify(op, ErrUnauthorized)
	}
	sess, err := s.GetSession(ctx, sessionID)
	if err != nil {
		return Session{}, classify(op, err)
	}
	return sess, nil
}

// SetStreamToken gives the session a new, unused stream token (for a
// resume): its hash and expiry. An unknown session yields ErrNotFound; one
// that has ended or is being terminated, ErrSessionEnded.
func (s *Store) SetStreamToken(ctx context.Context, id, tokenHash string, expiresAt time.Time) error {
	op := fmt.Sprintf("set stream token of session %s", id)
	if tokenHash == "" {
		return classify(op, invalid("stream token hash is empty"))
	}
	res := s.db.WithContext(ctx).Model(&Session{}).
		Where("session_id = ? AND ended_at IS NULL AND terminate_requested = ?", id, false).
		Updates(map[string]any{
			"stream_token_hash":       tokenHash,
			"stream_token_expires_at": expiresAt.UTC(),
			"stream_token_used":       false,
		})
	if res.Error != nil {
		return classify(op, res.Error)
	}
	if res.RowsAffected > 0 {
		return nil
	}
	if _, err := s.GetSession(ctx, id); err != nil {
		return classify(op, err)
	}
	return classify(op, ErrSessionEnded)
}

// sessionTransitions lists, for each status SetSessionStatus may set, the
// statuses it may replace. Ended sessions never change; a session being
// terminated only ends; Connecting is only the initial status.
var sessionTransitions = map[string][]string{
	SessionConnecting:   {SessionConnecting},
	SessionConnected:    {SessionConnecting, SessionConnected, SessionDisconnected},
	SessionDisconnected: {SessionConnecting, SessionConnected, SessionDisconnected},
	SessionTerminating:  {SessionConnecting, SessionConnected, SessionDisconnected, SessionTerminating},
	SessionTerminated:   {SessionConnecting, SessionConnected, SessionDisconnected, SessionTerminating},
	SessionFailed:       {SessionConnecting, SessionConnected, SessionDisconnected, SessionTerminating},
}

// SetSessionStatus sets the session's status and details when the
// transition is allowed. Allowed:
// Connecting, Connected and Disconnected move among Connected and
// Disconnected; anything not ended may become Terminating, Terminated or
// Failed; Terminating only ends; Terminated and Failed never change. A
// refused transition is not an error (a late report must not move a
// session back). Connected sets ConnectedAt the first time; Terminating
// sets TerminateRequested; Terminated and Failed set EndedAt and
// TerminateRequested, as EndSession does. An unknown status yields
// ErrInvalidArgument, an unknown session ErrNotFound.
func (s *Store) SetSessionStatus(ctx context.Context, id, status, details string, now time.Time) error {
	_, err := s.setSessionStatus(ctx, id, status, details, now)
	return err
}

// setSessionStatus is SetSessionStatus, reporting whether it applied.
func (s *Store) setSessionStatus(ctx context.Context, id, status, details string, now time.Time) (bool, error) {
	op := fmt.Sprintf("set status of session %s to %s", id, status)
	from, ok := sessionTransitions[status]
	if !ok {
		return false, classify(op, invalid("unknown session status %q", status))
	}
	now = now.UTC()
	updates := map[string]any{"status": status, "details": details, "updated_at": now}
	switch status {
	case SessionConnected:
		updates["connected_at"] = gorm.Expr("COALESCE(connected_at, ?)", now)
	case SessionTerminating:
		updates["terminate_requested"] = true
	case SessionTerminated, SessionFailed:
		updates["terminate_requested"] = true
		updates["ended_at"] = now
	}
	db := s.db.WithContext(ctx)
	res := db.Model(&Session{}).Where("session_id = ? AND status IN ?", id, from).Updates(updates)
	if res.Error != nil {
		return false, classify(op, res.Error)
	}
	if res.RowsAffected > 0 {
		return true, nil
	}
	if _, err := s.GetSession(ctx, id); err != nil {
		return false, classify(op, err)
	}
	return false, nil
}

// RequestTerminate asks every bridge to close the session: status
// Terminating, TerminateRequested set, details recorded. A session that
// has ended or is being terminated already is left alone (the first reason
// stays). An unknown session yields ErrNotFound.
func (s *Store) RequestTerminate(ctx context.Context, id, details string, now time.Time) error {
	op := fmt.Sprintf("request termination of session %s", id)
	db := s.db.WithContext(ctx)
	res := db.Model(&Session{}).
		Where("session_id = ? AND ended_at IS NULL AND terminate_requested = ?", id, false).
		Updates(map[string]any{
			"status": SessionTerminating, "details": details,
			"terminate_requested": true, "updated_at": now.UTC(),
		})
	if res.Error != nil {
		return classify(op, res.Error)
	}
	if res.RowsAffected > 0 {
		return nil
	}
	_, err := s.GetSession(ctx, id)
	return classify(op, err)
}

// EndSession marks the session ended: status (Terminated or Failed),
// details, EndedAt = now and TerminateRequested, so bridges close it. A
// session that has ended already is left alone (idempotent). Another status
// yields ErrInvalidArgument, an unknown session ErrNotFound.
func (s *Store) EndSession(ctx context.Context, id, status, details string, now time.Time) error {
	op := fmt.Sprintf("end session %s", id)
	if !slices.Contains(endedSessionStatuses, status) {
		return classify(op, invalid("session end status %q; want Terminated or Failed", status))
	}
	_, err := s.setSessionStatus(ctx, id, status, details, now)
	return classify(op, err)
}

// SetSessionExitCode records the exit code of the session's shell or
// command; the first one recorded stays. An unknown session yields
// ErrNotFound.
func (s *Store) SetSessionExitCode(ctx context.Context, id string, code int) error {
	op := fmt.Sprintf("set exit code of session %s", id)
	db := s.db.WithContext(ctx)
	res := db.Model(&Session{}).Where("session_id = ? AND exit_code IS NULL", id).Update("exit_code", code)
	if res.Error != nil {
		return classify(op, res.Error)
	}
	if res.RowsAffected > 0 {
		return nil
	}
	_, err := s.GetSession(ctx, id)
	return classify(op, err)
}

// SessionsToClose returns those of ids whose session is being terminated
// or has ended, in the order of ids, each once. Unknown IDs are left out.
// Bridges poll it for the sessions they hold.
func (s *Store) SessionsToClose(ctx context.Context, ids []string) ([]string, error) {
	const op = "find sessions to close"
	var closing []string
	db := s.db.WithContext(ctx)
	for list := range inLists(ids) {
		var got []string
		err := db.Model(&Session{}).
			Where("session_id IN ? AND (terminate_requested = ? OR ended_at IS NOT NULL)", list, true).
			Pluck("session_id", &got).Error
		if err != nil {
			return nil, classify(op, err)
		}
		closing = append(closing, got...)
	}
	return inInputOrder(ids, closing), nil
}

// CountActiveSessions counts the sessions that have not ended on target,
// or on all targets when target is "".
func (s *Store) CountActiveSessions(ctx context.Context, target string) (int, error) {
	q := s.db.WithContext(ctx).Model(&Session{}).Where("status NOT IN ?", endedSessionStatuses)
	if target != "" {
		q = q.Where("target = ?", target)
	}
	var n int64
	if err := q.Count(&n).Error; err != nil {
		return 0, classify("count active sessions", err)
	}
	return int(n), nil
}

// CountActiveSessionsByStatus counts the sessions that have not ended, by
// status, for metrics.
func (s *Store) CountActiveSessionsByStatus(ctx context.Context) (map[string]int, error) {
	m, err := countBy(s.db.WithContext(ctx).Model(&Session{}).Where("status NOT IN ?", endedSessionStatuses), "status")
	if err != nil {
		return nil, classify("count sessions", err)
	}
	return m, nil
}

// MarkRecordingTruncated records that the session's recording stopped at
// the size cap.
func (s *Store) MarkRecordingTruncated(ctx context.Context, id string) error {
	err := s.db.WithContext(ctx).Model(&Session{}).Where("session_id = ?", id).
		Updates(map[string]any{"recording_truncated": true, "updated_at": s.db.NowFunc()}).Error
	return classify("mark recording truncated", err)
}

// AppendRecording appends data as the session's next recording chunk and
// adds its length to RecordingBytes. With maxBytes > 0 it refuses a chunk
// that would take the recording past maxBytes: it marks the recording
// truncated, writes nothing and returns true, as it does for every later
// capped append. An uncapped append (maxBytes <= 0) is always written, so
// the writer can add a final marker after the cap was hit. Chunks are
// whole units (asciicast lines): never cut. Appends to one session are
// serialised, so one writer's chunks keep their order. Invalid UTF-8 and
// NUL bytes are replaced by '?'. An unknown session yields ErrNotFound.
func (s *Store) AppendRecording(ctx context.Context, id, data string, maxBytes int64) (truncated bool, err error) {
	op := fmt.Sprintf("append recording of session %s", id)
	if data == "" {
		return false, nil
	}
	data = sameLengthUTF8(data)
	now := s.db.NowFunc()
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		truncated = false
		// The row lock serialises appends on PostgreSQL; SQLite's
		// IMMEDIATE transactions serialise all writers already.
		var cur struct {
			RecordingBytes     int64
			RecordingTruncated bool
		}
		q := tx.Model(&Session{}).Select("recording_bytes", "recording_truncated").Where("session_id = ?", id)
		if s.dialect == DialectPostgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Take(&cur).Error; err != nil {
			return err
		}
		if maxBytes > 0 && (cur.RecordingTruncated || cur.RecordingBytes+int64(len(data)) > maxBytes) {
			truncated = true
			if cur.RecordingTruncated {
				return nil
			}
			return tx.Model(&Session{}).Where("session_id = ?", id).
				Updates(map[string]any{"recording_truncated": true, "updated_at": now}).Error
		}
		var seq int64
		if err := tx.Model(&SessionRecordingChunk{}).Select("COALESCE(MAX(seq), 0)").
			Where("session_id = ?", id).Scan(&seq).Error; err != nil {
			return err
		}
		chunk := SessionRecordingChunk{SessionID: id, Seq: seq + 1, Data: data, CreatedAt: now}
		if err := tx.Create(&chunk).Error; err != nil {
			return err
		}
		return tx.Model(&Session{}).Where("session_id = ?", id).Updates(map[string]any{
			"recording_bytes": gorm.Expr("recording_bytes + ?", int64(len(data))),
			"updated_at":      now,
		}).Error
	})
	if err != nil {
		return false, classify(op, err)
	}
	return truncated, nil
}

// recordingPage is how many chunks WriteRecording reads per query.
const recordingPage = 200

// WriteRecording writes the session's recording to w, chunk by chunk in Seq
// order, without holding it all in memory, and returns the bytes written.
// An unknown session yields ErrNotFound.
func (s *Store) WriteRecording(ctx context.Context, id string, w io.Writer) (int64, error) {
	op := fmt.Sprintf("read recording of session %s", id)
	if _, err := s.GetSession(ctx, id); err != nil {
		return 0, classify(op, err)
	}
	db := s.db.WithContext(ctx)
	var (
		written int64
		after   int64
	)
	for {
		var chunks []SessionRecordingChunk
		err := db.Where("session_id = ? AND seq > ?", id, after).Order("seq").Limit(recordingPage).Find(&chunks).Error
		if err != nil {
			return written, classify(op, err)
		}
		for _, c := range chunks {
			n, err := io.WriteString(w, c.Data)
			written += int64(n)
			if err != nil {
				return written, fmt.Errorf("%s: %w", op, err)
			}
			after = c.Seq
		}
		if len(chunks) < recordingPage {
			return written, nil
		}
	}
}

// Recording returns the session's whole recording (at most the cap
// AppendRecording enforced, plus any uncapped marker). An unknown session
// yields ErrNotFound.
func (s *Store) Recording(ctx context.Context, id string) (string, error) {
	var b strings.Builder
	if _, err := s.WriteRecording(ctx, id, &b); err != nil {
		return "", err
	}
	return b.String(), nil
}
