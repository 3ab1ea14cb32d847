package document_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fleetops/fleetops/internal/document"
)

// TestParseHostileBounded feeds worst-case shapes of maximum size; each must
// fail cleanly and quickly.
func TestParseHostileBounded(t *testing.T) {
	n := document.MaxDocumentBytes/2 - 16
	tests := map[string]string{
		"deep YAML flow":    strings.Repeat("[", n) + strings.Repeat("]", n),
		"deep YAML block":   strings.Repeat("- ", n/2),
		"deep JSON":         strings.Repeat(`{"a":`, n/5) + "1" + strings.Repeat("}", n/5),
		"many keys":         "schemaVersion: '2.2'\n" + strings.Repeat("? x\n", n/4),
		"long scalar":       "schemaVersion: '" + strings.Repeat("9", 2*n) + "'\n",
		"many placeholders": "schemaVersion: '2.2'\nmainSteps:\n  - {action: aws:runShellScript, name: s, inputs: {runCommand: '" + strings.Repeat("{{a}}", n/3) + "'}}\n",
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := document.Parse([]byte(content), document.FormatAuto)
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("took %v", el)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, document.ErrInvalidDocument) {
				t.Errorf("err = %v", err)
			}
		})
	}
}
