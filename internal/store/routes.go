package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// AgentRoute records which server replica holds an agent's control
// connection, so that a replica receiving a session stream (or a data
// channel) for that agent forwards it to the one that can bridge it.
type AgentRoute struct {
	InstanceID string    `gorm:"primaryKey;size:20"`
	GatewayURL string    `gorm:"size:512;not null"`
	UpdatedAt  time.Time `gorm:"not null"`
}

// SetAgentRoute records that the replica at gatewayURL holds the agent's
// connection (a newer connection elsewhere overwrites it).
func (s *Store) SetAgentRoute(ctx context.Context, instanceID, gatewayURL string, now time.Time) error {
	route := AgentRoute{InstanceID: instanceID, GatewayURL: gatewayURL, UpdatedAt: now.UTC()}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "instance_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"gateway_url", "updated_at"}),
	}).Create(&route).Error
	return classify(fmt.Sprintf("record the route to instance %s", instanceID), err)
}

// ClearAgentRoute forgets the route if it still names gatewayURL: an agent
// that already reconnected to another replica keeps its new route.
func (s *Store) ClearAgentRoute(ctx context.Context, instanceID, gatewayURL string) error {
	err := s.db.WithContext(ctx).Where("instance_id = ? AND gateway_url = ?", instanceID, gatewayURL).Delete(&AgentRoute{}).Error
	return classify(fmt.Sprintf("clear the route to instance %s", instanceID), err)
}

// GetAgentRoute returns the URL of the replica holding the agent's
// connection, or ErrNotFound when no replica holds it.
func (s *Store) GetAgentRoute(ctx context.Context, instanceID string) (string, error) {
	var route AgentRoute
	err := s.db.WithContext(ctx).Where("instance_id = ?", instanceID).Take(&route).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", fmt.Errorf("route to instance %s: %w", instanceID, ErrNotFound)
	}
	if err != nil {
		return "", classify(fmt.Sprintf("read the route to instance %s", instanceID), err)
	}
	return route.GatewayURL, nil
}

// CountActiveSessionsVia counts the sessions that have not ended on the
// nodes whose agents the replica at gatewayURL holds: the sessions that
// replica bridges.
func (s *Store) CountActiveSessionsVia(ctx context.Context, gatewayURL string) (int, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Session{}).
		Joins("JOIN agent_routes ON agent_routes.instance_id = sessions.target").
		Where("agent_routes.gateway_url = ? AND sessions.status NOT IN ?", gatewayURL, endedSessionStatuses).
		Count(&n).Error
	if err != nil {
		return 0, classify("count the sessions bridged via "+gatewayURL, err)
	}
	return int(n), nil
}
