package store

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// tagsByKey preloads tags in key order, so results are deterministic.
func tagsByKey(db *gorm.DB) *gorm.DB {
	return db.Order(clause.OrderByColumn{Column: clause.Column{Name: "key"}})
}

// CreateActivation inserts a with its Tags. CreatedAt defaults to now.
// A duplicate ID yields ErrAlreadyExists.
func (s *Store) CreateActivation(ctx context.Context, a *Activation) error {
	a.ExpiresAt = a.ExpiresAt.UTC()
	a.CreatedAt = a.CreatedAt.UTC()
	for i := range a.Tags {
		a.Tags[i].ActivationID = a.ID
	}
	err := s.db.WithContext(ctx).Create(a).Error
	return classify(fmt.Sprintf("create activation %s", a.ID), err)
}

// GetActivation returns the activation with its Tags, or ErrNotFound.
func (s *Store) GetActivation(ctx context.Context, id string) (*Activation, error) {
	var a Activation
	err := s.db.WithContext(ctx).Preload("Tags", tagsByKey).Where("id = ?", id).Take(&a).Error
	if err != nil {
		return nil, classify(fmt.Sprintf("get activation %s", id), err)
	}
	return &a, nil
}

// ListActivations returns every activation with its Tags, newest first.
func (s *Store) ListActivations(ctx context.Context) ([]Activation, error) {
	var as []Activation
	err := s.db.WithContext(ctx).Preload("Tags", tagsByKey).
		Order("created_at DESC").Order("id").Find(&as).Error
	if err != nil {
		return nil, classify("list activations", err)
	}
	return as, nil
}

// DeleteActivation deletes the activation and its tags, or returns
// ErrNotFound. Instances registered with it stay registered.
func (s *Store) DeleteActivation(ctx context.Context, id string) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The foreign key cascades too; deleting explicitly does not depend on it.
		if err := tx.Where("activation_id = ?", id).Delete(&ActivationTag{}).Error; err != nil {
			return err
		}
		res := tx.Where("id = ?", id).Delete(&Activation{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
	return classify(fmt.Sprintf("delete activation %s", id), err)
}

// RegisterInstance registers inst with activation activationID in one
// transaction. It checks, in this order, that the activation exists
// (ErrActivationNotFound), that codeHash matches it (constant-time;
// ErrInvalidActivationCode), that now is before ExpiresAt
// (ErrActivationExpired) and that a registration is left
// (ErrActivationExhausted). The count is taken with a conditional UPDATE, so
// concurrent registrations, from any number of replicas, never exceed the
// limit.
//
// The caller sets inst.InstanceID, SecretHash and PingStatus. RegisterInstance
// sets ActivationID, defaults Name to the activation's DefaultInstanceName,
// RegisteredAt and LastPingAt to now and an empty PingStatus to PingOnline,
// and copies the activation's tags onto the instance (inst.Tags on return).
// A taken InstanceID yields ErrAlreadyExists and consumes no registration.
func (s *Store) RegisterInstance(ctx context.Context, activationID, codeHash string, inst *Instance, now time.Time) error {
	op := fmt.Sprintf("register instance %s with activation %s", inst.InstanceID, activationID)
	if inst.InstanceID == "" {
		return classify(op, invalid("instance ID is required"))
	}
	now = now.UTC()
	var registered Instance
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var a Activation
		if err := tx.Preload("Tags", tagsByKey).Where("id = ?", activationID).Take(&a).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return ErrActivationNotFound
			}
			return err
		}
		if codeHash == "" || subtle.ConstantTimeCompare([]byte(codeHash), []byte(a.CodeHash)) != 1 {
			return ErrInvalidActivationCode
		}
		if !now.Before(a.ExpiresAt) {
			return ErrActivationExpired
		}
		res := tx.Model(&Activation{}).
			Where("id = ? AND registrations_count < registration_limit", activationID).
			UpdateColumn("registrations_count", gorm.Expr("registrations_count + 1"))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrActivationExhausted
		}
		row := *inst
		row.ActivationID = activationID
		if row.Name == "" {
			row.Name = a.DefaultInstanceName
		}
		if row.RegisteredAt.IsZero() {
			row.RegisteredAt = now
		}
		if row.LastPingAt.IsZero() {
			row.LastPingAt = now
		}
		row.RegisteredAt = row.RegisteredAt.UTC()
		row.LastPingAt = row.LastPingAt.UTC()
		if row.PingStatus == "" {
			row.PingStatus = PingOnline
		}
		if row.IPAddresses == "" {
			row.IPAddresses = "[]"
		}
		row.Tags = nil
		if err := tx.Omit(clause.Associations).Create(&row).Error; err != nil {
			return err
		}
		tags := make([]InstanceTag, 0, len(a.Tags))
		for _, t := range a.Tags {
			tags = append(tags, InstanceTag{InstanceID: row.InstanceID, Key: t.Key, Value: t.Value})
		}
		if len(tags) > 0 {
			if err := tx.Create(&tags).Error; err != nil {
				return err
			}
		}
		row.Tags = tags
		registered = row
		return nil
	})
	if err != nil {
		return classify(op, err)
	}
	*inst = registered
	return nil
}
