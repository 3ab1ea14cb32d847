// Package agentproto defines the wire contract between fleetops-agent and the
// server's agent gateway.
//
// The agent only dials out. It registers once over plain HTTPS (POST
// PathRegister) and then holds one long-lived WebSocket (PathConnect) on which
// both sides exchange JSON Envelopes. Every connection carries the agent's
// credentials in the HTTP headers of the upgrade request.
//
// Compatibility rule: this package only grows. Fields and message types are
// added, never renamed or removed; each is documented with who sets it and
// since which ProtocolVersion it exists. A peer ignores message types and
// fields it does not know.
//
// This package imports only the standard library: it is linked into the agent
// binary, which must stay small.
package agentproto

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// ProtocolVersion is the version the code in this tree speaks. It only grows.
const ProtocolVersion = 1

// HTTP endpoints served by the gateway.
const (
	// PathRegister takes a RegisterRequest and answers a RegisterResponse
	// (201) or an ErrorResponse (400 bad input, 403 refused activation).
	PathRegister = "/agent/v1/register"
	// PathConnect is the WebSocket upgrade endpoint. The request carries
	// HeaderInstanceID and "Authorization: Bearer <secret>".
	PathConnect = "/agent/v1/connect"
)

// HeaderInstanceID names the header carrying the agent's instance ID on every
// authenticated agent request; the secret travels as a bearer token.
const HeaderInstanceID = "X-Fleetops-Instance-Id"

// instanceIDPattern is SSM's managed-node ID format: "mi-" and 17 hex digits.
var instanceIDPattern = regexp.MustCompile(`^mi-[0-9a-f]{17}$`)

// ValidInstanceID reports whether id has the managed-node ID format.
func ValidInstanceID(id string) bool { return instanceIDPattern.MatchString(id) }

// HostInfo describes the host an agent runs on. The agent sets it at
// registration, in Hello, and whenever it changes. Since v1.
type HostInfo struct {
	// Hostname is os.Hostname().
	Hostname string `json:"hostname"`
	// PlatformType is "Linux" (SSM's PlatformType enum).
	PlatformType string `json:"platformType"`
	// PlatformName and PlatformVersion come from /etc/os-release NAME and
	// VERSION_ID, e.g. "Debian GNU/Linux" and "12".
	PlatformName    string `json:"platformName"`
	PlatformVersion string `json:"platformVersion"`
	// Kernel is the kernel release (uname -r).
	Kernel string `json:"kernel"`
	// Architecture is GOARCH-style: "amd64", "arm64".
	Architecture string `json:"architecture"`
	// IPAddresses lists the host's non-loopback unicast addresses.
	IPAddresses []string `json:"ipAddresses"`
	// AgentVersion is the agent's semantic version, e.g. "0.1.0".
	AgentVersion string `json:"agentVersion"`
}

// RegisterRequest is sent by `fleetops-agent register`. Since v1.
type RegisterRequest struct {
	ActivationID   string   `json:"activationId"`
	ActivationCode string   `json:"activationCode"`
	Host           HostInfo `json:"host"`
}

// RegisterResponse is the server's answer to a successful registration.
// Since v1.
type RegisterResponse struct {
	// InstanceID is the new node's "mi-" ID.
	InstanceID string `json:"instanceId"`
	// Secret is the node's credential. The server keeps only its hash; the
	// agent stores it in its state dir (mode 0600) and sends it on every
	// connection. It is never the activation code.
	Secret string `json:"secret"`
}

// ErrorResponse is the JSON body of every non-2xx answer, from the agent
// endpoints and the operator API alike.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody carries a machine-readable code, a human message and, for bad
// input, the offending field.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e ErrorBody) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (field %s)", e.Code, e.Message, e.Field)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Message types carried in Envelope.Type.
const (
	// TypeHello is the agent's first message on a connection; payload Hello.
	TypeHello = "hello"
	// TypeWelcome is the server's answer to Hello; payload Welcome.
	TypeWelcome = "welcome"
	// TypeHeartbeat is sent by the agent every Welcome.HeartbeatSeconds;
	// payload Heartbeat. The server answers nothing: WebSocket pings cover
	// liveness of the transport, heartbeats drive the node's PingStatus.
	TypeHeartbeat = "heartbeat"
	// TypeDisconnect is sent by the server before it closes a connection it
	// will not accept again (node deregistered); payload Disconnect. The
	// agent stops reconnecting.
	TypeDisconnect = "disconnect"
)

// Envelope frames every WebSocket message in both directions.
type Envelope struct {
	// Type is one of the Type* constants.
	Type string `json:"type"`
	// ID identifies a message that expects a reply; empty otherwise.
	ID string `json:"id,omitempty"`
	// Payload is the type-specific body.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// NewEnvelope marshals payload into an Envelope of the given type.
func NewEnvelope(typ string, payload any) (Envelope, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return Envelope{}, fmt.Errorf("marshal %s payload: %w", typ, err)
	}
	return Envelope{Type: typ, Payload: raw}, nil
}

// Decode unmarshals the envelope's payload into v.
func (e Envelope) Decode(v any) error {
	if len(e.Payload) == 0 {
		return fmt.Errorf("%s message has no payload", e.Type)
	}
	if err := json.Unmarshal(e.Payload, v); err != nil {
		return fmt.Errorf("decode %s payload: %w", e.Type, err)
	}
	return nil
}

// MaxMessageBytes bounds one WebSocket message in either direction; larger
// messages close the connection.
const MaxMessageBytes = 4 << 20

// Hello opens a connection (agent → server). Since v1.
type Hello struct {
	ProtocolVersion int      `json:"protocolVersion"`
	Host            HostInfo `json:"host"`
}

// Welcome accepts a connection (server → agent). Since v1.
type Welcome struct {
	ProtocolVersion int `json:"protocolVersion"`
	// HeartbeatSeconds is how often the agent must send TypeHeartbeat.
	HeartbeatSeconds int `json:"heartbeatSeconds"`
	// ServerTime lets the agent log clock skew.
	ServerTime time.Time `json:"serverTime"`
}

// Heartbeat is the agent's periodic liveness report. Since v1.
type Heartbeat struct {
	// Host is set only when the host information changed since Hello.
	Host *HostInfo `json:"host,omitempty"`
}

// Disconnect tells the agent why the server is closing for good. Since v1.
type Disconnect struct {
	Reason string `json:"reason"`
}

// Run Command messages. An invocation is one command on one node; its ID is
// "<commandId>:<instanceId>" and is what the agent remembers so that a
// redelivered invocation never runs twice.
const (
	// TypeRunCommand asks the agent to run an invocation (server → agent);
	// payload RunCommand. The server sends it again after a reconnect until
	// the agent acknowledges it.
	TypeRunCommand = "run_command"
	// TypeCommandAck acknowledges a RunCommand (agent → server); payload
	// CommandAck. The agent sends it after it recorded the invocation ID,
	// and again, with the stored result, for an invocation it already ran.
	TypeCommandAck = "command_ack"
	// TypeCommandOutput streams output while a step runs (agent → server);
	// payload CommandOutput.
	TypeCommandOutput = "command_output"
	// TypeCommandResult reports a finished invocation (agent → server);
	// payload CommandResult. The agent resends it until the server answers
	// TypeCommandResultAck.
	TypeCommandResult = "command_result"
	// TypeCommandResultAck confirms the server stored a result (server →
	// agent); payload CommandResultAck.
	TypeCommandResultAck = "command_result_ack"
	// TypeCancelCommand asks the agent to kill a running invocation's
	// process group, or never to run a queued one (server → agent); payload
	// CancelCommand.
	TypeCancelCommand = "cancel_command"
)

// InvocationID is the ID of commandID's invocation on instanceID.
func InvocationID(commandID, instanceID string) string { return commandID + ":" + instanceID }

// Step is one rendered document step, parameters already substituted by the
// server. Since v1.
type Step struct {
	// Name is the step name (SSM's PluginName).
	Name string `json:"name"`
	// Action is the plugin, e.g. "aws:runShellScript".
	Action string `json:"action"`
	// Skipped is set when the step's precondition excludes this platform.
	Skipped bool `json:"skipped,omitempty"`
	// Inputs are the plugin inputs after interpolation.
	Inputs json.RawMessage `json:"inputs,omitempty"`
	// Env holds environment variables for ENV_VAR parameters: untrusted
	// values reach the script this way instead of as spliced text.
	Env map[string]string `json:"env,omitempty"`
}

// RunCommand carries one invocation to an agent. Since v1.
type RunCommand struct {
	InvocationID string `json:"invocationId"`
	CommandID    string `json:"commandId"`
	DocumentName string `json:"documentName"`
	Steps        []Step `json:"steps"`
	// ExecutionTimeoutSeconds bounds the whole invocation on the agent.
	ExecutionTimeoutSeconds int `json:"executionTimeoutSeconds"`
	// MaxOutputBytes caps the stdout and stderr kept per stream.
	MaxOutputBytes int `json:"maxOutputBytes"`
}

// CommandAck acknowledges a RunCommand. Since v1.
type CommandAck struct {
	InvocationID string `json:"invocationId"`
	// Duplicate is set when the agent had already seen the invocation; it
	// then re-sends the stored result if the invocation finished.
	Duplicate bool `json:"duplicate,omitempty"`
	// StartedAt is when the first step started (zero if not yet).
	StartedAt time.Time `json:"startedAt,omitzero"`
}

// Stream names used in CommandOutput.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// CommandOutput is a chunk of a running step's output. Chunks of one stream
// arrive in order; Offset is the byte offset of Data in that stream, so a
// chunk resent after a reconnect is recognised. Since v1.
type CommandOutput struct {
	InvocationID string `json:"invocationId"`
	Step         string `json:"step"`
	Stream       string `json:"stream"`
	Offset       int64  `json:"offset"`
	Data         string `json:"data"`
}

// Plugin (step) statuses, as in SSM's CommandPluginStatus.
const (
	StatusSuccess    = "Success"
	StatusFailed     = "Failed"
	StatusTimedOut   = "TimedOut"
	StatusCancelled  = "Cancelled"
	StatusSkipped    = "Skipped"
	StatusInProgress = "InProgress"
)

// StepResult is the outcome of one step. Since v1.
type StepResult struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	// ResponseCode is the exit code; -1 when the step never started.
	ResponseCode int       `json:"responseCode"`
	StartedAt    time.Time `json:"startedAt,omitzero"`
	EndedAt      time.Time `json:"endedAt,omitzero"`
	Stdout       string    `json:"stdout"`
	Stderr       string    `json:"stderr"`
	// Truncated is set when output past MaxOutputBytes was dropped.
	Truncated bool `json:"truncated,omitempty"`
}

// CommandResult is a finished invocation. Status is Success, Failed,
// TimedOut (execution timeout) or Cancelled. Since v1.
type CommandResult struct {
	InvocationID string       `json:"invocationId"`
	Status       string       `json:"status"`
	Steps        []StepResult `json:"steps"`
	StartedAt    time.Time    `json:"startedAt,omitzero"`
	EndedAt      time.Time    `json:"endedAt,omitzero"`
}

// CommandResultAck confirms a stored result. Since v1.
type CommandResultAck struct {
	InvocationID string `json:"invocationId"`
}

// CancelCommand cancels an invocation on the agent. Since v1.
type CancelCommand struct {
	InvocationID string `json:"invocationId"`
}
