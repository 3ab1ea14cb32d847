package store

import (
	"context"
	"fmt"
	"time"
)

// tokenUseResolution is how stale APIToken.LastUsedAt may get: recording
// every use would turn each authenticated read into a write.
const tokenUseResolution = time.Minute

// CreateAPIToken inserts t (whose Hash is HashSecret of the token).
// CreatedAt defaults to now. A duplicate ID or hash yields ErrAlreadyExists.
func (s *Store) CreateAPIToken(ctx context.Context, t *APIToken) error {
	t.CreatedAt = t.CreatedAt.UTC()
	return classify(fmt.Sprintf("create API token %s", t.ID), s.db.WithContext(ctx).Create(t).Error)
}

// ListAPITokens returns every token, revoked ones included, oldest first.
func (s *Store) ListAPITokens(ctx context.Context) ([]APIToken, error) {
	var ts []APIToken
	if err := s.db.WithContext(ctx).Order("created_at").Order("id").Find(&ts).Error; err != nil {
		return nil, classify("list API tokens", err)
	}
	return ts, nil
}

// RevokeAPIToken marks the token revoked at now. Revoking a revoked token
// keeps the first revocation time. An unknown id yields ErrNotFound.
func (s *Store) RevokeAPIToken(ctx context.Context, id string, now time.Time) error {
	op := fmt.Sprintf("revoke API token %s", id)
	db := s.db.WithContext(ctx)
	res := db.Model(&APIToken{}).Where("id = ? AND revoked_at IS NULL", id).Update("revoked_at", now.UTC())
	if res.Error != nil {
		return classify(op, res.Error)
	}
	if res.RowsAffected > 0 {
		return nil
	}
	var n int64
	if err := db.Model(&APIToken{}).Where("id = ?", id).Count(&n).Error; err != nil {
		return classify(op, err)
	}
	if n == 0 {
		return classify(op, ErrNotFound)
	}
	return nil
}

// AuthenticateToken returns the unrevoked token whose Hash is hash, or
// ErrUnauthorized. The lookup is by an index on the hash; that leaks nothing
// about the token, which is a high-entropy secret that is never stored.
// LastUsedAt is advanced to now when it is more than a minute old (one
// conditional UPDATE, so replicas don't all write it).
func (s *Store) AuthenticateToken(ctx context.Context, hash string, now time.Time) (*APIToken, error) {
	const op = "authenticate API token"
	if hash == "" {
		return nil, classify(op, ErrUnauthorized)
	}
	now = now.UTC()
	db := s.db.WithContext(ctx)
	var t APIToken
	if err := db.Where("hash = ?", hash).Take(&t).Error; err != nil {
		if isNotFound(err) {
			return nil, classify(op, ErrUnauthorized)
		}
		return nil, classify(op, err)
	}
	if t.RevokedAt != nil {
		return nil, classify(fmt.Sprintf("%s %s", op, t.ID), fmt.Errorf("token revoked: %w", ErrUnauthorized))
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= tokenUseResolution {
		res := db.Model(&APIToken{}).
			Where("id = ? AND (last_used_at IS NULL OR last_used_at <= ?)", t.ID, now.Add(-tokenUseResolution)).
			UpdateColumn("last_used_at", now)
		if res.Error != nil {
			return nil, classify(op, res.Error)
		}
		if res.RowsAffected > 0 {
			t.LastUsedAt = &now
		}
	}
	return &t, nil
}

// CountAPITokens counts tokens, revoked ones included: revoking the last
// token must not re-open the bootstrap path that runs when there are none.
func (s *Store) CountAPITokens(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.WithContext(ctx).Model(&APIToken{}).Count(&n).Error; err != nil {
		return 0, classify("count API tokens", err)
	}
	return n, nil
}
