package store

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// AuditFilter selects audit events for ListAudit. Empty fields don't filter.
type AuditFilter struct {
	Actor    string
	Action   string
	Resource string
	// Since (inclusive) and Until (exclusive) bound the event time.
	Since time.Time
	Until time.Time
	// MaxResults is the page size: 0 means DefaultMaxResults, larger than
	// MaxMaxResults means MaxMaxResults.
	MaxResults int
	// NextToken continues a previous page; it is opaque to callers.
	NextToken string
}

// AppendAudit appends e and sets e.ID. A zero Time defaults to now.
func (s *Store) AppendAudit(ctx context.Context, e *AuditEvent) error {
	if e.Time.IsZero() {
		e.Time = s.db.NowFunc()
	}
	e.Time = e.Time.UTC()
	return classify(fmt.Sprintf("append audit event %s", e.Action), s.db.WithContext(ctx).Create(e).Error)
}

// ListAudit returns one page of the events matching f, newest (most
// recently appended) first, and the token of the next page ("" on the last
// page). A malformed NextToken yields ErrInvalidArgument.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, string, error) {
	const op = "list audit events"
	limit := pageSize(f.MaxResults)
	q := s.db.WithContext(ctx).Model(&AuditEvent{})
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if f.Resource != "" {
		q = q.Where("resource = ?", f.Resource)
	}
	if !f.Since.IsZero() {
		q = q.Where(`"time" >= ?`, f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where(`"time" < ?`, f.Until.UTC())
	}
	if f.NextToken != "" {
		raw, err := decodeToken(f.NextToken)
		if err != nil {
			return nil, "", classify(op, err)
		}
		before, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			return nil, "", classify(op, invalid("malformed NextToken"))
		}
		q = q.Where("id < ?", before)
	}
	var es []AuditEvent
	if err := q.Order("id DESC").Limit(limit + 1).Find(&es).Error; err != nil {
		return nil, "", classify(op, err)
	}
	next := ""
	if len(es) > limit {
		es = es[:limit]
		next = encodeToken(strconv.FormatUint(es[limit-1].ID, 10))
	}
	return es, next, nil
}
