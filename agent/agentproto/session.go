package agentproto

// Session Manager wire contract. The bytes of a session never pass through
// Temporal or the control channel: for each session the server asks the
// agent, over its authenticated control connection, to open a data channel;
// the agent dials a second WebSocket (PathSessionData) for that session
// only, and the server bridges it to the client's stream WebSocket.
//
// Data channel framing (client ↔ server ↔ agent), one WebSocket binary
// message per frame: the first byte is the Frame* type, the rest its
// payload. Shell and command sessions use FrameData/FrameResize/FrameExit/
// FrameClose/FrameStderr. Port sessions carry a yamux session
// (github.com/hashicorp/yamux) end to end between the CLI (client side,
// yamux client) and the agent (yamux server), inside FrameData frames:
// every yamux stream is one forwarded TCP connection, each with its own
// flow control; the server relays the frames without looking inside.

const (
	// PathSessionData is the agent's data channel endpoint; the session ID
	// follows ("/agent/v1/sessions/<id>/data"). The upgrade request carries
	// the agent's credentials and HeaderChannelToken.
	PathSessionData = "/agent/v1/sessions/"
	// HeaderChannelToken carries the one-time token of OpenSession.
	HeaderChannelToken = "X-Fleetops-Channel-Token"
)

// Control messages for sessions.
const (
	// TypeOpenSession asks the agent to open a data channel (server →
	// agent); payload OpenSession.
	TypeOpenSession = "open_session"
	// TypeSessionOpened reports that the agent started the session or why
	// it could not (agent → server); payload SessionOpened.
	TypeSessionOpened = "session_opened"
	// TypeCloseSession asks the agent to end a session (server → agent);
	// payload CloseSession.
	TypeCloseSession = "close_session"
)

// Session kinds.
const (
	SessionShell   = "Standard_Stream"
	SessionCommand = "InteractiveCommands"
	SessionPort    = "Port"
)

// OpenSession starts a session on the agent. Since v1.
type OpenSession struct {
	SessionID string `json:"sessionId"`
	// ChannelToken authorises exactly one data channel for this session;
	// the agent refuses to dial without one and the server refuses any
	// data channel that does not present it.
	ChannelToken string `json:"channelToken"`
	Kind         string `json:"kind"`
	// RunAsUser is the OS user for shells and commands; empty means the
	// agent's default session user (created if missing).
	RunAsUser string `json:"runAsUser,omitempty"`
	// ShellProfile runs at the start of a shell.
	ShellProfile string `json:"shellProfile,omitempty"`
	// Command is the command of an InteractiveCommands session.
	Command string `json:"command,omitempty"`
	Cols    int    `json:"cols,omitempty"`
	Rows    int    `json:"rows,omitempty"`
	// Host and Port are the destination of a Port session.
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"`
}

// SessionOpened answers OpenSession. Since v1.
type SessionOpened struct {
	SessionID string `json:"sessionId"`
	// Error is empty on success.
	Error string `json:"error,omitempty"`
}

// CloseSession ends a session on the agent. Since v1.
type CloseSession struct {
	SessionID string `json:"sessionId"`
	Reason    string `json:"reason,omitempty"`
}

// Data channel frame types (first byte of each binary message).
const (
	// FrameData carries terminal bytes: input toward the agent, output
	// toward the client; for Port sessions, yamux bytes.
	FrameData byte = 0
	// FrameResize carries a Resize as JSON (client → agent).
	FrameResize byte = 1
	// FrameExit carries an Exit as JSON (agent → client), sent once when
	// the shell or command ends, before the channel closes.
	FrameExit byte = 2
	// FrameStderr carries the standard error of a non-interactive command
	// (agent → client).
	FrameStderr byte = 3
	// FrameClose ends the session from either side; payload optional text.
	FrameClose byte = 4
)

// Resize is a terminal size change.
type Resize struct {
	Cols int `json:"cols"`
	Rows int `json:"rows"`
}

// Exit reports how a shell or command ended.
type Exit struct {
	Code int `json:"code"`
	// Signal is set when a signal ended the process.
	Signal string `json:"signal,omitempty"`
}

// DeniedForwardHosts are the addresses port forwarding refuses on the node,
// as SSM's DeniedPortForwardingRemoteIPs: cloud metadata and time services.
var DeniedForwardHosts = []string{
	"169.254.169.254", "169.254.169.253", "169.254.169.123", "169.254.170.2",
	"fd00:ec2::254", "fd00:ec2::253", "fd00:ec2::123", "metadata.google.internal",
}

// MaxFrameBytes bounds one data channel message (the type byte and its
// payload) in every hop: the agent, the server bridge and the client set
// it as their WebSocket read limit, and senders split FrameData into
// smaller frames. Since v1.
const MaxFrameBytes = 1 << 20
