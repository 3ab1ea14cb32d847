// Package agent is the fleetops host agent: registration with an activation
// code, the identity kept in the state dir, host facts, the connection loop
// that holds one outbound WebSocket to the server's agent gateway, and the
// CommandRunner that runs Run Command invocations (plugins
// aws:runShellScript, aws:downloadContent, fleetops:noop) at most once each,
// and the SessionManager that runs Session Manager sessions (shells and
// interactive commands in a PTY, port forwarding over yamux) on data
// channels the server asks for.
//
// The package has no global state. Everything is configured through Config /
// RegisterConfig values (logger, HTTP client, random source, durations), so one
// process can run thousands of Agents side by side (the swarm load harness) and
// tests can make timing deterministic.
//
// The agent binary must stay small: this package imports the standard library,
// agent/agentproto, agent/datachannel, github.com/coder/websocket,
// github.com/creack/pty and github.com/hashicorp/yamux, and nothing that
// pulls in gorm, gin, the Temporal SDK or prometheus.
package agent

// Version is the agent's semantic version, reported as HostInfo.AgentVersion.
const Version = "0.1.0"
