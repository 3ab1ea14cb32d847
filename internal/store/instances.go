package store

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Limits of instance queries and tags.
const (
	// DefaultMaxResults is the page size when a filter's MaxResults is 0.
	DefaultMaxResults = 50
	// MaxMaxResults caps any page size.
	MaxMaxResults = 1000
	// MaxTagsPerInstance is the most tags one instance may carry (SSM's limit).
	MaxTagsPerInstance = 50
	// MaxTagKeyLen and MaxTagValueLen bound a tag's key and value, in bytes.
	MaxTagKeyLen   = 128
	MaxTagValueLen = 256
	// inChunk bounds the IN lists of batch statements, well below SQLite's
	// and PostgreSQL's parameter limits.
	inChunk = 500
)

// InstanceFilter selects instances for ListInstances. Every non-empty field
// narrows the result (AND); the values inside one field are alternatives (OR).
type InstanceFilter struct {
	InstanceIDs   []string
	PingStatuses  []string
	PlatformTypes []string
	PlatformNames []string
	// Tags are ANDed across filters, values ORed within one; a filter with
	// no Values matches instances that have the key at all.
	Tags []TagFilter
	// MaxResults is the page size: 0 means DefaultMaxResults, larger than
	// MaxMaxResults means MaxMaxResults.
	MaxResults int
	// NextToken continues a previous page; it is opaque to callers.
	NextToken string
}

// HostUpdate is what an agent reports about its host when it connects.
type HostUpdate struct {
	Hostname        string
	PlatformType    string
	PlatformName    string
	PlatformVersion string
	Kernel          string
	Architecture    string
	AgentVersion    string
	IPAddresses     []string
}

// IPs decodes IPAddresses. A malformed or empty column yields nil.
func (i Instance) IPs() []string {
	if i.IPAddresses == "" {
		return nil
	}
	var ips []string
	if err := json.Unmarshal([]byte(i.IPAddresses), &ips); err != nil {
		return nil
	}
	return ips
}

// TagMap returns the instance's tags as a map (empty, never nil).
func (i Instance) TagMap() map[string]string {
	m := make(map[string]string, len(i.Tags))
	for _, t := range i.Tags {
		m[t.Key] = t.Value
	}
	return m
}

func pageSize(n int) int {
	switch {
	case n <= 0:
		return DefaultMaxResults
	case n > MaxMaxResults:
		return MaxMaxResults
	}
	return n
}

func encodeToken(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func decodeToken(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) == 0 {
		return "", invalid("malformed NextToken")
	}
	return string(b), nil
}

// GetInstance returns the instance with its Tags, or ErrNotFound.
func (s *Store) GetInstance(ctx context.Context, id string) (*Instance, error) {
	var inst Instance
	err := s.db.WithContext(ctx).Preload("Tags", tagsByKey).Where("instance_id = ?", id).Take(&inst).Error
	if err != nil {
		return nil, classify(fmt.Sprintf("get instance %s", id), err)
	}
	return &inst, nil
}

// applyTagFilters narrows q (over instances) to instances matching every
// filter in fs.
func applyTagFilters(q *gorm.DB, fs []TagFilter) (*gorm.DB, error) {
	for _, f := range fs {
		if f.Key == "" {
			return nil, invalid("tag filter with an empty key")
		}
		if len(f.Values) == 0 {
			q = q.Where(`EXISTS (SELECT 1 FROM instance_tags it WHERE it.instance_id = instances.instance_id AND it."key" = ?)`, f.Key)
		} else {
			q = q.Where(`EXISTS (SELECT 1 FROM instance_tags it WHERE it.instance_id = instances.instance_id AND it."key" = ? AND it."value" IN ?)`, f.Key, f.Values)
		}
	}
	return q, nil
}

// ListInstances returns one page of the instances matching f, ordered by
// instance ID, with their Tags, and the token of the next page ("" on the
// last page). A malformed NextToken yields ErrInvalidArgument.
func (s *Store) ListInstances(ctx context.Context, f InstanceFilter) ([]Instance, string, error) {
	const op = "list instances"
	limit := pageSize(f.MaxResults)
	q := s.db.WithContext(ctx).Model(&Instance{})
	if len(f.InstanceIDs) > 0 {
		q = q.Where("instance_id IN ?", f.InstanceIDs)
	}
	if len(f.PingStatuses) > 0 {
		q = q.Where("ping_status IN ?", f.PingStatuses)
	}
	if len(f.PlatformTypes) > 0 {
		q = q.Where("platform_type IN ?", f.PlatformTypes)
	}
	if len(f.PlatformNames) > 0 {
		q = q.Where("platform_name IN ?", f.PlatformNames)
	}
	q, err := applyTagFilters(q, f.Tags)
	if err != nil {
		return nil, "", classify(op, err)
	}
	if f.NextToken != "" {
		after, err := decodeToken(f.NextToken)
		if err != nil {
			return nil, "", classify(op, err)
		}
		q = q.Where("instance_id > ?", after)
	}
	var items []Instance
	if err := q.Preload("Tags", tagsByKey).Order("instance_id").Limit(limit + 1).Find(&items).Error; err != nil {
		return nil, "", classify(op, err)
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = encodeToken(items[limit-1].InstanceID)
	}
	return items, next, nil
}

// AuthenticateInstance returns the instance whose agent presents the secret
// hashing to secretHash (compared in constant time). An unknown id, an empty
// or wrong hash and a deregistered (Inactive) instance all yield
// ErrUnauthorized, indistinguishably. Tags are not loaded.
func (s *Store) AuthenticateInstance(ctx context.Context, id, secretHash string) (*Instance, error) {
	op := fmt.Sprintf("authenticate instance %s", id)
	if secretHash == "" {
		return nil, classify(op, ErrUnauthorized)
	}
	var inst Instance
	err := s.db.WithContext(ctx).Where("instance_id = ?", id).Take(&inst).Error
	if err != nil {
		if isNotFound(err) {
			return nil, classify(op, ErrUnauthorized)
		}
		return nil, classify(op, err)
	}
	if inst.SecretHash == "" || inst.PingStatus == PingInactive ||
		subtle.ConstantTimeCompare([]byte(secretHash), []byte(inst.SecretHash)) != 1 {
		return nil, classify(op, ErrUnauthorized)
	}
	return &inst, nil
}

// UpdateInstanceHost records what the agent reports about its host, marks
// the instance Online and sets LastPingAt to now. An unknown instance yields
// ErrNotFound; a deregistered one is left alone and yields ErrUnauthorized.
func (s *Store) UpdateInstanceHost(ctx context.Context, id string, h HostUpdate, now time.Time) error {
	op := fmt.Sprintf("update host of instance %s", id)
	ips := h.IPAddresses
	if ips == nil {
		ips = []string{}
	}
	ipJSON, err := json.Marshal(ips)
	if err != nil {
		return classify(op, err)
	}
	res := s.db.WithContext(ctx).Model(&Instance{}).
		Where("instance_id = ? AND ping_status <> ?", id, PingInactive).
		Updates(map[string]any{
			"hostname":         h.Hostname,
			"platform_type":    h.PlatformType,
			"platform_name":    h.PlatformName,
			"platform_version": h.PlatformVersion,
			"kernel":           h.Kernel,
			"architecture":     h.Architecture,
			"agent_version":    h.AgentVersion,
			"ip_addresses":     string(ipJSON),
			"ping_status":      PingOnline,
			"last_ping_at":     now.UTC(),
		})
	if res.Error != nil {
		return classify(op, res.Error)
	}
	if res.RowsAffected == 0 {
		return classify(op, s.missingOrInactive(ctx, id))
	}
	return nil
}

// missingOrInactive explains why a statement guarded by
// "ping_status <> Inactive" touched no row.
func (s *Store) missingOrInactive(ctx context.Context, id string) error {
	var n int64
	if err := s.db.WithContext(ctx).Model(&Instance{}).Where("instance_id = ?", id).Count(&n).Error; err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return fmt.Errorf("instance is deregistered: %w", ErrUnauthorized)
}

// TouchInstances records a heartbeat from each of ids: LastPingAt = now and
// PingStatus = Online, except for deregistered instances. It returns the ids
// that are deregistered or unknown, in input order, so the gateway can
// disconnect them. Large batches are split into statements of at most 500 ids.
func (s *Store) TouchInstances(ctx context.Context, ids []string, now time.Time) ([]string, error) {
	const op = "touch instances"
	uniq := slices.Clone(ids)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	live := make(map[string]bool, len(uniq))
	db := s.db.WithContext(ctx)
	for chunk := range slices.Chunk(uniq, inChunk) {
		// UpdateColumns: a heartbeat is not an edit, so UpdatedAt stays.
		err := db.Model(&Instance{}).
			Where("instance_id IN ? AND ping_status <> ?", chunk, PingInactive).
			UpdateColumns(map[string]any{"last_ping_at": now.UTC(), "ping_status": PingOnline}).Error
		if err != nil {
			return nil, classify(op, err)
		}
		var found []string
		err = db.Model(&Instance{}).
			Where("instance_id IN ? AND ping_status <> ?", chunk, PingInactive).
			Pluck("instance_id", &found).Error
		if err != nil {
			return nil, classify(op, err)
		}
		for _, id := range found {
			live[id] = true
		}
	}
	var inactive []string
	seen := make(map[string]bool)
	for _, id := range ids {
		if !live[id] && !seen[id] {
			seen[id] = true
			inactive = append(inactive, id)
		}
	}
	return inactive, nil
}

// MarkConnectionLost moves Online instances whose last heartbeat is older
// than lastPingBefore to ConnectionLost and returns how many moved. It is one
// conditional UPDATE, so running it from several replicas at once is safe.
func (s *Store) MarkConnectionLost(ctx context.Context, lastPingBefore time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Model(&Instance{}).
		Where("ping_status = ? AND last_ping_at < ?", PingOnline, lastPingBefore.UTC()).
		UpdateColumn("ping_status", PingConnectionLost)
	if res.Error != nil {
		return 0, classify("mark instances connection lost", res.Error)
	}
	return res.RowsAffected, nil
}

// TagInstance adds tags to the instance or overwrites their values. The
// instance may carry at most MaxTagsPerInstance tags afterwards; more yields
// ErrInvalidArgument and changes nothing. An unknown instance yields
// ErrNotFound.
func (s *Store) TagInstance(ctx context.Context, id string, tags map[string]string) error {
	op := fmt.Sprintf("tag instance %s", id)
	keys := make([]string, 0, len(tags))
	for k, v := range tags {
		if err := checkTag(k, v); err != nil {
			return classify(op, err)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Lock the instance row (PostgreSQL; SQLite's IMMEDIATE transaction
		// holds the whole database) so that concurrent taggings cannot
		// together pass the limit.
		var inst Instance
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Select("instance_id").
			Where("instance_id = ?", id).Take(&inst).Error; err != nil {
			return err
		}
		var existing []string
		if err := tx.Model(&InstanceTag{}).Where("instance_id = ?", id).Pluck("key", &existing).Error; err != nil {
			return err
		}
		total := len(keys)
		for _, k := range existing {
			if _, ok := tags[k]; !ok {
				total++
			}
		}
		if total > MaxTagsPerInstance {
			return invalid("instance %s would have %d tags; at most %d are allowed", id, total, MaxTagsPerInstance)
		}
		if len(keys) == 0 {
			return nil
		}
		rows := make([]InstanceTag, 0, len(keys))
		for _, k := range keys {
			rows = append(rows, InstanceTag{InstanceID: id, Key: k, Value: tags[k]})
		}
		return tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "instance_id"}, {Name: "key"}},
			DoUpdates: clause.AssignmentColumns([]string{"value"}),
		}).Create(&rows).Error
	})
	return classify(op, err)
}

func checkTag(k, v string) error {
	switch {
	case k == "":
		return invalid("tag key is empty")
	case len(k) > MaxTagKeyLen:
		return invalid("tag key %.32q... is longer than %d bytes", k, MaxTagKeyLen)
	case len(v) > MaxTagValueLen:
		return invalid("value of tag %q is longer than %d bytes", k, MaxTagValueLen)
	}
	return nil
}

// UntagInstance removes the tags with the given keys; absent keys are
// ignored. An unknown instance yields ErrNotFound.
func (s *Store) UntagInstance(ctx context.Context, id string, keys []string) error {
	op := fmt.Sprintf("untag instance %s", id)
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Instance{}).Where("instance_id = ?", id).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		if len(keys) == 0 {
			return nil
		}
		return tx.Where(`instance_id = ? AND "key" IN ?`, id, keys).Delete(&InstanceTag{}).Error
	})
	return classify(op, err)
}

// DeregisterInstance marks the instance Inactive and clears its secret, so
// its agent can no longer authenticate. The row and its tags stay, for
// history. Deregistering twice is harmless. An unknown instance yields
// ErrNotFound.
func (s *Store) DeregisterInstance(ctx context.Context, id string) error {
	op := fmt.Sprintf("deregister instance %s", id)
	res := s.db.WithContext(ctx).Model(&Instance{}).Where("instance_id = ?", id).
		Updates(map[string]any{"ping_status": PingInactive, "secret_hash": ""})
	if res.Error != nil {
		return classify(op, res.Error)
	}
	if res.RowsAffected == 0 {
		return classify(op, ErrNotFound)
	}
	return nil
}

// countColumns are the columns CountInstancesBy may group by. The column
// name is spliced into SQL, so it must come from this list.
var countColumns = map[string]bool{"ping_status": true, "platform_name": true, "platform_type": true}

// CountInstancesBy counts instances grouped by column, one of "ping_status",
// "platform_name" or "platform_type" (anything else: ErrInvalidArgument).
func (s *Store) CountInstancesBy(ctx context.Context, column string) (map[string]int, error) {
	op := fmt.Sprintf("count instances by %q", column)
	if !countColumns[column] {
		return nil, classify(op, invalid("cannot count instances by %q; use ping_status, platform_name or platform_type", column))
	}
	m, err := countBy(s.db.WithContext(ctx).Model(&Instance{}), column)
	if err != nil {
		return nil, classify(op, err)
	}
	return m, nil
}
