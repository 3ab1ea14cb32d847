package store

import (
	"context"
	"encoding/json"
	"fmt"
)

// Filters decodes Query. An empty Query has no filters.
func (g ResourceGroup) Filters() ([]TagFilter, error) {
	if g.Query == "" {
		return nil, nil
	}
	var fs []TagFilter
	if err := json.Unmarshal([]byte(g.Query), &fs); err != nil {
		return nil, fmt.Errorf("resource group %s: decode query: %w", g.Name, err)
	}
	return fs, nil
}

// CreateGroup inserts g. Query must be a JSON array of at least one
// TagFilter, each with a key (ErrInvalidArgument otherwise): a group that
// matched every instance by accident would be a dangerous command target.
// A duplicate name yields ErrAlreadyExists. CreatedAt defaults to now.
func (s *Store) CreateGroup(ctx context.Context, g *ResourceGroup) error {
	op := fmt.Sprintf("create resource group %s", g.Name)
	if g.Name == "" {
		return classify(op, invalid("resource group name is empty"))
	}
	var fs []TagFilter
	if err := json.Unmarshal([]byte(g.Query), &fs); err != nil {
		return classify(op, invalid("query is not a JSON array of tag filters: %v", err))
	}
	if len(fs) == 0 {
		return classify(op, invalid("query needs at least one tag filter"))
	}
	for i, f := range fs {
		if f.Key == "" {
			return classify(op, invalid("tag filter %d has an empty key", i))
		}
	}
	g.CreatedAt = g.CreatedAt.UTC()
	return classify(op, s.db.WithContext(ctx).Create(g).Error)
}

// GetGroup returns the named group, or ErrNotFound.
func (s *Store) GetGroup(ctx context.Context, name string) (*ResourceGroup, error) {
	var g ResourceGroup
	if err := s.db.WithContext(ctx).Where("name = ?", name).Take(&g).Error; err != nil {
		return nil, classify(fmt.Sprintf("get resource group %s", name), err)
	}
	return &g, nil
}

// ListGroups returns every group, by name.
func (s *Store) ListGroups(ctx context.Context) ([]ResourceGroup, error) {
	var gs []ResourceGroup
	if err := s.db.WithContext(ctx).Order("name").Find(&gs).Error; err != nil {
		return nil, classify("list resource groups", err)
	}
	return gs, nil
}

// DeleteGroup deletes the named group, or returns ErrNotFound.
func (s *Store) DeleteGroup(ctx context.Context, name string) error {
	op := fmt.Sprintf("delete resource group %s", name)
	res := s.db.WithContext(ctx).Where("name = ?", name).Delete(&ResourceGroup{})
	if res.Error != nil {
		return classify(op, res.Error)
	}
	if res.RowsAffected == 0 {
		return classify(op, ErrNotFound)
	}
	return nil
}
