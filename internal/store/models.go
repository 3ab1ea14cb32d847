package store

import (
	"time"
)

// Ping statuses of a managed node, as in SSM's InstanceInformation.
const (
	PingOnline         = "Online"
	PingConnectionLost = "ConnectionLost"
	PingInactive       = "Inactive" // deregistered
)

// Activation is a hybrid activation: a one-time code that lets up to
// RegistrationLimit hosts register until ExpiresAt. Only the code's hash is
// stored.
type Activation struct {
	ID                  string `gorm:"primaryKey;size:36"`
	CodeHash            string `gorm:"size:64;not null"`
	Description         string `gorm:"size:256"`
	DefaultInstanceName string `gorm:"size:256"`
	RegistrationLimit   int    `gorm:"not null"`
	RegistrationsCount  int    `gorm:"not null;default:0"`
	ExpiresAt           time.Time
	CreatedAt           time.Time
	// Tags are copied onto every node registered with this activation.
	Tags []ActivationTag `gorm:"foreignKey:ActivationID;constraint:OnDelete:CASCADE"`
}

// ActivationTag is one key/value tag of an Activation.
type ActivationTag struct {
	ActivationID string `gorm:"primaryKey;size:36"`
	Key          string `gorm:"primaryKey;size:128"`
	Value        string `gorm:"size:256;not null"`
}

// Instance is a managed node.
type Instance struct {
	InstanceID      string `gorm:"primaryKey;size:20"`
	Name            string `gorm:"size:256"`
	Hostname        string `gorm:"size:256"`
	PlatformType    string `gorm:"size:32;index"`
	PlatformName    string `gorm:"size:128;index"`
	PlatformVersion string `gorm:"size:64"`
	Kernel          string `gorm:"size:128"`
	Architecture    string `gorm:"size:32"`
	// IPAddresses is a JSON array of strings.
	IPAddresses  string `gorm:"type:text"`
	AgentVersion string `gorm:"size:32"`
	ActivationID string `gorm:"size:36;index"`
	RegisteredAt time.Time
	LastPingAt   time.Time `gorm:"index"`
	PingStatus   string    `gorm:"size:16;index;not null"`
	// SecretHash is the SHA-256 (hex) of the agent's credential; cleared on
	// deregistration so the agent can no longer connect.
	SecretHash string `gorm:"size:64"`
	UpdatedAt  time.Time
	Tags       []InstanceTag `gorm:"foreignKey:InstanceID;constraint:OnDelete:CASCADE"`
}

// InstanceTag is one key/value tag of an Instance.
type InstanceTag struct {
	InstanceID string `gorm:"primaryKey;size:20"`
	Key        string `gorm:"primaryKey;size:128;index:idx_instance_tags_kv,priority:1"`
	Value      string `gorm:"size:256;not null;index:idx_instance_tags_kv,priority:2"`
}

// ResourceGroup is a named tag query over instances.
type ResourceGroup struct {
	Name        string `gorm:"primaryKey;size:128"`
	Description string `gorm:"size:512"`
	// Query is a JSON array of TagFilter.
	Query     string `gorm:"type:text;not null"`
	CreatedAt time.Time
}

// TagFilter matches instances whose tag Key has one of Values. Filters are
// ANDed across keys; values within one filter are ORed (SSM's rule). An empty
// Values matches any instance that has the key (SSM's tag-key).
type TagFilter struct {
	Key    string   `json:"key"`
	Values []string `json:"values"`
}

// APIToken is an operator bearer token. Only the hash is stored.
type APIToken struct {
	ID         string `gorm:"primaryKey;size:36"`
	Name       string `gorm:"size:128;not null"`
	Hash       string `gorm:"size:64;uniqueIndex;not null"`
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// AuditEvent records one mutating operation.
type AuditEvent struct {
	ID       uint64    `gorm:"primaryKey;autoIncrement"`
	Time     time.Time `gorm:"index;not null"`
	Actor    string    `gorm:"size:128;not null"`
	Action   string    `gorm:"size:128;index;not null"`
	Resource string    `gorm:"size:256"`
	SourceIP string    `gorm:"size:64"`
	Outcome  string    `gorm:"size:32;not null"` // "success" or "failure:<http status>"
	Detail   string    `gorm:"type:text"`
}

// SchemaMigration records an applied migration version.
type SchemaMigration struct {
	Version   int `gorm:"primaryKey;autoIncrement:false"`
	Name      string
	AppliedAt time.Time
}
