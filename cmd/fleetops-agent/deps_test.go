package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAgentDependencies keeps the agent binary small and the import direction
// of DESIGN.md intact: no gorm, gin, Temporal SDK, prometheus or viper, and
// nothing under internal/ except internal/document.
func TestAgentDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the go tool is needed to list the binary's dependencies")
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, string(out))
	forbidden := []string{"gorm.io/", "github.com/gin-gonic/", "go.temporal.io/", "github.com/prometheus/", "github.com/spf13/viper"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("fleetops-agent links %s", pkg)
			}
		}
		if strings.HasPrefix(pkg, "github.com/fleetops/fleetops/internal/") && !strings.HasPrefix(pkg, "github.com/fleetops/fleetops/internal/document") {
			t.Errorf("fleetops-agent links %s", pkg)
		}
	}
}
