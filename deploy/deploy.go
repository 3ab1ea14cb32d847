// Package deploy holds the files that put fleetops on hosts: the agent
// install script and systemd units. The server embeds Files to serve
// GET /install.sh and the agent's unit.
package deploy

import "embed"

// Files holds install.sh and fleetops-agent.service.
//
//go:embed install.sh fleetops-agent.service
var Files embed.FS
