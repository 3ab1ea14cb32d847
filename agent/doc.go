// Package agent is the fleetops host agent: registration with an activation
// code, the identity kept in the state dir, host facts, the connection loop
// that holds one outbound WebSocket to the server's agent gateway, and the
// CommandRunner that runs Run Command invocations (plugins
// aws:runShellScript, aws:downloadContent, fleetops:noop) at most once each.
//
// The package has no global state. Everything is configured through Config /
// RegisterConfig values (logger, HTTP client, random source, durations), so one
// process can run thousands of Agents side by side (the swarm load harness) and
// tests can make timing deterministic.
//
// The agent binary must stay small: this package imports the standard library,
// agent/agentproto and github.com/coder/websocket, and nothing that pulls in
// gorm, gin, the Temporal SDK or prometheus.
package agent

// Version is the agent's semantic version, reported as HostInfo.AgentVersion.
const Version = "0.1.0"
