package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"
)

// migration is one step of the schema's history. Versions only grow; a
// released migration is never edited, a change is a new migration.
type migration struct {
	Version int
	Name    string
	// Up applies the step inside a transaction (PostgreSQL and SQLite both
	// have transactional DDL). It must use structs frozen for its version,
	// never the live models, so that replaying history on an empty database
	// always builds the same schema.
	Up func(tx *gorm.DB) error
}

// migrations is the schema's history, in order.
var migrations = []migration{
	{Version: 1, Name: "initial schema", Up: migrateV1},
	{Version: 2, Name: "run command", Up: migrateV2},
	{Version: 3, Name: "sessions", Up: migrateV3},
	{Version: 4, Name: "agent routes", Up: migrateV4},
}

// migrationLockID is the first key of the PostgreSQL advisory lock that
// serialises migrations; the second is a hash of the current schema, so
// replicas sharing a schema queue while separate schemas (tests) do not.
const migrationLockID = 0x666c6f74 // "flot"

// schemaMigrationV0 is the bookkeeping table, frozen.
type schemaMigrationV0 struct {
	Version   int `gorm:"primaryKey;autoIncrement:false"`
	Name      string
	AppliedAt time.Time
}

func (schemaMigrationV0) TableName() string { return "schema_migrations" }

// migrate applies the migrations in ms that the database lacks, each in its
// own transaction, recording them in schema_migrations. Concurrent callers
// (several replicas starting at once) are serialised: on PostgreSQL by a
// transaction-scoped advisory lock, on SQLite by the IMMEDIATE transactions
// the store opens, which take the database's write lock at BEGIN.
func migrate(ctx context.Context, db *gorm.DB, dialect string, log *slog.Logger, ms []migration) error {
	for i := 1; i < len(ms); i++ {
		if ms[i].Version <= ms[i-1].Version {
			return fmt.Errorf("migrate: versions out of order: %d after %d", ms[i].Version, ms[i-1].Version)
		}
	}
	db = db.WithContext(ctx)
	lock := func(tx *gorm.DB) error {
		if dialect != DialectPostgres {
			return nil
		}
		return tx.Exec("SELECT pg_advisory_xact_lock(?, hashtext(coalesce(current_schema(), '')))", migrationLockID).Error
	}
	err := db.Transaction(func(tx *gorm.DB) error {
		if err := lock(tx); err != nil {
			return err
		}
		if tx.Migrator().HasTable(&schemaMigrationV0{}) {
			return nil
		}
		return tx.Migrator().CreateTable(&schemaMigrationV0{})
	})
	if err != nil {
		return classify("migrate: create schema_migrations", err)
	}
	var applied []int
	if err := db.Model(&schemaMigrationV0{}).Order("version").Pluck("version", &applied).Error; err != nil {
		return classify("migrate: read schema_migrations", err)
	}
	done := make(map[int]bool, len(applied))
	for _, v := range applied {
		done[v] = true
	}
	if n := len(applied); n > 0 && len(ms) > 0 && applied[n-1] > ms[len(ms)-1].Version {
		// A newer binary migrated this database (a rolling upgrade in
		// progress, or a downgrade). Migrations only add, so carry on.
		log.WarnContext(ctx, "database schema is newer than this binary",
			"schemaVersion", applied[n-1], "knownVersion", ms[len(ms)-1].Version)
	}
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		err := db.Transaction(func(tx *gorm.DB) error {
			if err := lock(tx); err != nil {
				return err
			}
			// Another replica may have applied it while we waited.
			var n int64
			if err := tx.Model(&schemaMigrationV0{}).Where("version = ?", m.Version).Count(&n).Error; err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if err := m.Up(tx); err != nil {
				return err
			}
			return tx.Create(&schemaMigrationV0{Version: m.Version, Name: m.Name, AppliedAt: time.Now().UTC()}).Error
		})
		if err != nil {
			return classify(fmt.Sprintf("migrate: apply %d (%s)", m.Version, m.Name), err)
		}
		log.InfoContext(ctx, "applied database migration", "version", m.Version, "name", m.Name)
	}
	return nil
}

// Version 1: the initial schema, as models.go defined it at the time.

type activationV1 struct {
	ID                  string `gorm:"primaryKey;size:36"`
	CodeHash            string `gorm:"size:64;not null"`
	Description         string `gorm:"size:256"`
	DefaultInstanceName string `gorm:"size:256"`
	RegistrationLimit   int    `gorm:"not null"`
	RegistrationsCount  int    `gorm:"not null;default:0"`
	ExpiresAt           time.Time
	CreatedAt           time.Time
	Tags                []activationTagV1 `gorm:"foreignKey:ActivationID;constraint:OnDelete:CASCADE"`
}

func (activationV1) TableName() string { return "activations" }

type activationTagV1 struct {
	ActivationID string `gorm:"primaryKey;size:36"`
	Key          string `gorm:"primaryKey;size:128"`
	Value        string `gorm:"size:256;not null"`
}

func (activationTagV1) TableName() string { return "activation_tags" }

type instanceV1 struct {
	InstanceID      string `gorm:"primaryKey;size:20"`
	Name            string `gorm:"size:256"`
	Hostname        string `gorm:"size:256"`
	PlatformType    string `gorm:"size:32;index:idx_instances_platform_type"`
	PlatformName    string `gorm:"size:128;index:idx_instances_platform_name"`
	PlatformVersion string `gorm:"size:64"`
	Kernel          string `gorm:"size:128"`
	Architecture    string `gorm:"size:32"`
	IPAddresses     string `gorm:"type:text"`
	AgentVersion    string `gorm:"size:32"`
	ActivationID    string `gorm:"size:36;index:idx_instances_activation_id"`
	RegisteredAt    time.Time
	LastPingAt      time.Time `gorm:"index:idx_instances_last_ping_at"`
	PingStatus      string    `gorm:"size:16;index:idx_instances_ping_status;not null"`
	SecretHash      string    `gorm:"size:64"`
	UpdatedAt       time.Time
	Tags            []instanceTagV1 `gorm:"foreignKey:InstanceID;constraint:OnDelete:CASCADE"`
}

func (instanceV1) TableName() string { return "instances" }

type instanceTagV1 struct {
	InstanceID string `gorm:"primaryKey;size:20"`
	Key        string `gorm:"primaryKey;size:128;index:idx_instance_tags_kv,priority:1"`
	Value      string `gorm:"size:256;not null;index:idx_instance_tags_kv,priority:2"`
}

func (instanceTagV1) TableName() string { return "instance_tags" }

type resourceGroupV1 struct {
	Name        string `gorm:"primaryKey;size:128"`
	Description string `gorm:"size:512"`
	Query       string `gorm:"type:text;not null"`
	CreatedAt   time.Time
}

func (resourceGroupV1) TableName() string { return "resource_groups" }

type apiTokenV1 struct {
	ID         string `gorm:"primaryKey;size:36"`
	Name       string `gorm:"size:128;not null"`
	Hash       string `gorm:"size:64;uniqueIndex:idx_api_tokens_hash;not null"`
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

func (apiTokenV1) TableName() string { return "api_tokens" }

type auditEventV1 struct {
	ID       uint64    `gorm:"primaryKey;autoIncrement"`
	Time     time.Time `gorm:"index:idx_audit_events_time;not null"`
	Actor    string    `gorm:"size:128;not null"`
	Action   string    `gorm:"size:128;index:idx_audit_events_action;not null"`
	Resource string    `gorm:"size:256"`
	SourceIP string    `gorm:"size:64"`
	Outcome  string    `gorm:"size:32;not null"`
	Detail   string    `gorm:"type:text"`
}

func (auditEventV1) TableName() string { return "audit_events" }

func migrateV1(tx *gorm.DB) error {
	// AutoMigrate orders the tables by their foreign keys. The parents are
	// listed first so that their has-many relations (and with them the
	// ON DELETE CASCADE constraints) are known when the children are created.
	return tx.Migrator().AutoMigrate(
		&activationV1{}, &activationTagV1{},
		&instanceV1{}, &instanceTagV1{},
		&resourceGroupV1{}, &apiTokenV1{}, &auditEventV1{},
	)
}

// Version 2: Run Command (documents, commands, invocations and their
// events), as commands.go defined them at the time.

type documentV2 struct {
	Name           string `gorm:"primaryKey;size:128"`
	Version        int    `gorm:"primaryKey;autoIncrement:false"`
	DocumentType   string `gorm:"size:32;not null"`
	DocumentFormat string `gorm:"size:8;not null"`
	SchemaVersion  string `gorm:"size:8"`
	Description    string `gorm:"size:1024"`
	Content        string `gorm:"type:text;not null"`
	Hash           string `gorm:"size:64;not null"`
	CreatedBy      string `gorm:"size:128"`
	CreatedAt      time.Time
}

func (documentV2) TableName() string { return "documents" }

type documentHeadV2 struct {
	Name           string `gorm:"primaryKey;size:128"`
	DocumentType   string `gorm:"size:32;not null;index:idx_document_heads_document_type"`
	DefaultVersion int    `gorm:"not null"`
	LatestVersion  int    `gorm:"not null"`
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

func (documentHeadV2) TableName() string { return "document_heads" }

type commandV2 struct {
	CommandID               string `gorm:"primaryKey;size:36"`
	DocumentName            string `gorm:"size:128;index:idx_commands_document_name"`
	DocumentVersion         int
	DocumentHash            string `gorm:"size:64"`
	Comment                 string `gorm:"size:100"`
	Parameters              string `gorm:"type:text"`
	InstanceIDs             string `gorm:"type:text"`
	Targets                 string `gorm:"type:text"`
	MaxConcurrency          string `gorm:"size:8"`
	MaxErrors               string `gorm:"size:8"`
	TimeoutSeconds          int
	ExecutionTimeoutSeconds int
	MaxOutputBytes          int
	Steps                   string `gorm:"type:text"`
	Status                  string `gorm:"size:16;index:idx_commands_status;not null"`
	StatusDetails           string `gorm:"size:100;not null"`
	TargetCount             int
	CompletedCount          int
	ErrorCount              int
	DeliveryTimedOutCount   int
	RequestedBy             string    `gorm:"size:128"`
	RequestedAt             time.Time `gorm:"index:idx_commands_requested_at"`
	FinishedAt              *time.Time
	UpdatedAt               time.Time
}

func (commandV2) TableName() string { return "commands" }

type invocationV2 struct {
	CommandID       string     `gorm:"primaryKey;size:36"`
	InstanceID      string     `gorm:"primaryKey;size:20;index:idx_invocations_instance_id"`
	InstanceName    string     `gorm:"size:256"`
	DocumentName    string     `gorm:"size:128"`
	Status          string     `gorm:"size:16;not null"`
	StatusDetails   string     `gorm:"size:100;not null"`
	RequestedAt     time.Time  `gorm:"index:idx_invocations_requested_at"`
	Payload         string     `gorm:"type:text"`
	DispatchedAt    *time.Time `gorm:"index:idx_invocations_outbox,priority:2"`
	SentAt          *time.Time `gorm:"index:idx_invocations_outbox,priority:1"`
	AckedAt         *time.Time
	StartedAt       *time.Time
	EndedAt         *time.Time
	CancelRequested bool       `gorm:"not null;default:false;index:idx_invocations_cancel,priority:1"`
	CancelSentAt    *time.Time `gorm:"index:idx_invocations_cancel,priority:2"`
	ResponseCode    int        `gorm:"not null;default:-1"`
	Stdout          string     `gorm:"type:text"`
	Stderr          string     `gorm:"type:text"`
	StdoutTruncated bool       `gorm:"not null;default:false"`
	StderrTruncated bool       `gorm:"not null;default:false"`
	StepResults     string     `gorm:"type:text"`
	UpdatedAt       time.Time
}

func (invocationV2) TableName() string { return "invocations" }

type invocationEventV2 struct {
	ID            int64  `gorm:"primaryKey;autoIncrement;index:idx_invocation_events_command,priority:2"`
	CommandID     string `gorm:"size:36;index:idx_invocation_events_command,priority:1;not null"`
	InstanceID    string `gorm:"size:20;not null"`
	Status        string `gorm:"size:16;not null"`
	StatusDetails string `gorm:"size:100;not null"`
	CreatedAt     time.Time
}

func (invocationEventV2) TableName() string { return "invocation_events" }

func migrateV2(tx *gorm.DB) error {
	return tx.Migrator().AutoMigrate(
		&documentV2{}, &documentHeadV2{},
		&commandV2{}, &invocationV2{}, &invocationEventV2{},
	)
}

// Version 3: Session Manager (sessions and their recordings), as
// sessions.go defined them at the time.

type sessionV3 struct {
	SessionID            string `gorm:"primaryKey;size:96"`
	Target               string `gorm:"size:32;not null;index:idx_sessions_target"`
	Owner                string `gorm:"size:128;index:idx_sessions_owner"`
	Reason               string `gorm:"size:256"`
	DocumentName         string `gorm:"size:128"`
	Kind                 string `gorm:"size:32;not null"`
	Status               string `gorm:"size:16;not null;index:idx_sessions_status"`
	Details              string `gorm:"size:256"`
	RunAsUser            string `gorm:"size:64"`
	ShellProfile         string `gorm:"type:text"`
	Command              string `gorm:"type:text"`
	Host                 string `gorm:"size:256"`
	Port                 int
	IdleTimeoutSeconds   int
	MaxDurationSeconds   int
	RecordingEnabled     bool   `gorm:"not null;default:false"`
	RecordInput          bool   `gorm:"not null;default:false"`
	StreamTokenHash      string `gorm:"size:64"`
	StreamTokenExpiresAt time.Time
	StreamTokenUsed      bool      `gorm:"not null;default:false"`
	Connections          int       `gorm:"not null;default:0"`
	TerminateRequested   bool      `gorm:"not null;default:false"`
	SourceIP             string    `gorm:"size:64"`
	StartedAt            time.Time `gorm:"index:idx_sessions_started_at"`
	ConnectedAt          *time.Time
	EndedAt              *time.Time
	ExitCode             *int
	RecordingBytes       int64 `gorm:"not null;default:0"`
	RecordingTruncated   bool  `gorm:"not null;default:false"`
	UpdatedAt            time.Time
}

func (sessionV3) TableName() string { return "sessions" }

type sessionRecordingChunkV3 struct {
	SessionID string `gorm:"primaryKey;size:96"`
	Seq       int64  `gorm:"primaryKey;autoIncrement:false"`
	Data      string `gorm:"type:text;not null"`
	CreatedAt time.Time
}

func (sessionRecordingChunkV3) TableName() string { return "session_recording_chunks" }

func migrateV3(tx *gorm.DB) error {
	return tx.Migrator().AutoMigrate(&sessionV3{}, &sessionRecordingChunkV3{})
}

// Version 4: which replica holds each agent's connection, as routes.go
// defined it at the time.

type agentRouteV4 struct {
	InstanceID string    `gorm:"primaryKey;size:20"`
	GatewayURL string    `gorm:"size:512;not null"`
	UpdatedAt  time.Time `gorm:"not null"`
}

func (agentRouteV4) TableName() string { return "agent_routes" }

func migrateV4(tx *gorm.DB) error {
	return tx.Migrator().AutoMigrate(&agentRouteV4{})
}
