package store

import (
	"context"

	"fmt"
	"slices"
	"strings"
)

// Target is one SSM target entry: Key is InstanceIds, tag:<key>, tag-key or
// resource-groups:Name. Entries are ANDed, the values of one entry ORed.
type Target struct {
	Key    string
	Values []string
}

// ValidateTargetKey checks one entry's key and value count, naming the
// problem.
func ValidateTargetKey(t Target) error {
	switch {
	case t.Key == "InstanceIds" || t.Key == "instanceids", t.Key == "tag-key":
	case strings.HasPrefix(t.Key, "tag:") && len(t.Key) > len("tag:"):
	case t.Key == "resource-groups:Name":
		if len(t.Values) != 1 {
			return fmt.Errorf("%w: target resource-groups:Name takes exactly one group name, got %d", ErrInvalidArgument, len(t.Values))
		}
	default:
		return fmt.Errorf("%w: unsupported target key %q (use InstanceIds, tag:<key>, tag-key or resource-groups:Name)", ErrInvalidArgument, t.Key)
	}
	if len(t.Values) == 0 {
		return fmt.Errorf("%w: target %s has no values", ErrInvalidArgument, t.Key)
	}
	return nil
}

// ResolveTargets returns the nodes the target entries select, ordered by
// instance ID. Deregistered nodes never match. An unknown resource group is
// ErrNotFound; a bad key is ErrInvalidArgument.
func (s *Store) ResolveTargets(ctx context.Context, targets []Target) ([]Instance, error) {
	const op = "resolve targets"
	f := InstanceFilter{PingStatuses: []string{PingOnline, PingConnectionLost}, MaxResults: MaxMaxResults}
	var idSets [][]string
	for _, t := range targets {
		if err := ValidateTargetKey(t); err != nil {
			return nil, err
		}
		switch {
		case t.Key == "InstanceIds" || t.Key == "instanceids":
			if !slices.Contains(t.Values, "*") {
				idSets = append(idSets, t.Values)
			}
		case t.Key == "tag-key":
			for _, k := range t.Values {
				f.Tags = append(f.Tags, TagFilter{Key: k})
			}
		case strings.HasPrefix(t.Key, "tag:"):
			f.Tags = append(f.Tags, TagFilter{Key: strings.TrimPrefix(t.Key, "tag:"), Values: t.Values})
		case t.Key == "resource-groups:Name":
			g, err := s.GetGroup(ctx, t.Values[0])
			if err != nil {
				return nil, classify(op, err)
			}
			filters, err := g.Filters()
			if err != nil {
				return nil, classify(op, err)
			}
			f.Tags = append(f.Tags, filters...)
		}
	}
	if len(idSets) > 0 {
		ids := slices.Clone(idSets[0])
		for _, set := range idSets[1:] {
			ids = slices.DeleteFunc(ids, func(id string) bool { return !slices.Contains(set, id) })
		}
		if len(ids) == 0 {
			return nil, nil
		}
		f.InstanceIDs = ids
	}
	var out []Instance
	for {
		page, next, err := s.ListInstances(ctx, f)
		if err != nil {
			return nil, classify(op, err)
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		f.NextToken = next
	}
}

// InstancesByID returns the named instances that exist, keyed by ID.
func (s *Store) InstancesByID(ctx context.Context, ids []string) (map[string]Instance, error) {
	out := make(map[string]Instance, len(ids))
	for chunk := range slices.Chunk(ids, MaxMaxResults) {
		list, _, err := s.ListInstances(ctx, InstanceFilter{InstanceIDs: chunk, MaxResults: MaxMaxResults})
		if err != nil {
			return nil, classify("look up instances", err)
		}
		for _, n := range list {
			out[n.InstanceID] = n
		}
	}
	return out, nil
}

// CountCommandsByStatus counts commands by status, for metrics.
func (s *Store) CountCommandsByStatus(ctx context.Context) (map[string]int, error) {
	m, err := countBy(s.db.WithContext(ctx).Model(&Command{}), "status")
	if err != nil {
		return nil, classify("count commands", err)
	}
	return m, nil
}
