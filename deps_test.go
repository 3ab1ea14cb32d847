// Package fleetops_test enforces the import direction of shared/DESIGN.md:
// arrows point down the package table, never back up, and the agent binary
// links no server dependencies.
package fleetops_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/fleetops/fleetops"

// allowed lists, for each of our packages, the other packages of this module
// it may import directly. A package missing here may import nothing of ours.
var allowed = map[string][]string{
	"agent/agentproto":     {},
	"internal/document":    {},
	"internal/store":       {},
	"internal/obs":         {},
	"internal/config":      {},
	"internal/certs":       {},
	"internal/temporaldev": {},
	"internal/gateway":     {"internal/store", "agent/agentproto", "agent/datachannel"},
	"agent/datachannel":    {"agent/agentproto"},
	"agent":                {"agent/agentproto", "agent/datachannel", "internal/document"},
	"workflows":            {"internal/document"},
	// activities implement the workflows' activity contracts, so they use
	// the input and result types declared next to the workflow.
	"activities": {"internal/store", "internal/gateway", "internal/document", "workflows", "agent/agentproto"},
	"api":        {"internal/gateway", "internal/store", "internal/document", "workflows", "agent/agentproto"},
	"worker":     {"workflows", "activities", "internal/store", "internal/gateway"},
	"ui":         {},
	"deploy":     {},
}

// Test helpers and the binaries' wiring may import anything.
var unrestricted = []string{"cmd/", "internal/storetest", "internal/store/storetest", "internal/browsertest", "internal/e2e", "internal/testenv"}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T, args ...string) []pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestImportDirection(t *testing.T) {
	for _, p := range listPackages(t, "./...") {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if rel == "" || slices.ContainsFunc(unrestricted, func(u string) bool { return strings.HasPrefix(rel, u) }) {
			continue
		}
		may, known := allowed[rel]
		if !known {
			t.Errorf("package %s is not in the import-direction table of deps_test.go (and DESIGN.md): add it", rel)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			target := strings.TrimPrefix(imp, module+"/")
			if !slices.Contains(may, target) {
				t.Errorf("%s imports %s, which DESIGN.md's import direction forbids", rel, target)
			}
		}
	}
}

func TestAgentBinaryLinksNoServerDependencies(t *testing.T) {
	forbidden := []string{"gorm.io/", "github.com/gin-gonic/", "go.temporal.io/", "github.com/prometheus/", "github.com/spf13/viper", module + "/internal/store", module + "/api"}
	for _, p := range listPackages(t, "-deps", "./cmd/fleetops-agent") {
		for _, f := range forbidden {
			if strings.HasPrefix(p.ImportPath, f) {
				t.Errorf("the agent binary links %s (forbidden prefix %s)", p.ImportPath, f)
			}
		}
	}
}

func TestWorkflowsStayDeterministic(t *testing.T) {
	// Workflow code must not reach for I/O or the store; the SDK's
	// workflowcheck covers the finer rules in `make lint`.
	forbidden := []string{"gorm.io/", "github.com/gin-gonic/", "net/http", "os/exec", "database/sql"}
	for _, p := range listPackages(t, "./workflows") {
		for _, imp := range p.Imports {
			for _, f := range forbidden {
				if strings.HasPrefix(imp, f) {
					t.Errorf("workflows imports %s", imp)
				}
			}
		}
	}
}
