package document_test

import (
	"errors"
	"testing"

	"github.com/fleetops/fleetops/internal/document"
)

func TestParseSession(t *testing.T) {
	tests := []struct {
		name, content string
		wantErr       string
		check         func(t *testing.T, d *document.SessionDocument)
	}{
		{name: "preferences", content: `schemaVersion: "1.0"
description: team shell
sessionType: Standard_Stream
inputs:
  idleSessionTimeout: "15"
  maxSessionDuration: 120
  runAsEnabled: true
  runAsDefaultUser: ops
  shellProfile: {linux: "cd /srv", windows: ""}
  recordingEnabled: false
  s3BucketName: ""
`, check: func(t *testing.T, d *document.SessionDocument) {
			p := d.Preferences
			if p.IdleTimeoutMinutes != 15 || p.MaxDurationMinutes != 120 || !p.RunAsEnabled || p.RunAsDefaultUser != "ops" ||
				p.ShellProfileLinux != "cd /srv" || p.RecordingEnabled == nil || *p.RecordingEnabled || p.RecordInput != nil {
				t.Errorf("preferences %+v", p)
			}
		}},
		{name: "idle out of range", content: `{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"idleSessionTimeout":"61"}}`, wantErr: "inputs.idleSessionTimeout"},
		{name: "run as without user", content: `{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"runAsEnabled":true}}`, wantErr: "inputs.runAsDefaultUser"},
		{name: "bad user", content: `{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"runAsEnabled":true,"runAsDefaultUser":"a;rm -rf"}}`, wantErr: "inputs.runAsDefaultUser"},
		{name: "port type", content: `{"schemaVersion":"1.0","sessionType":"Port"}`, wantErr: "sessionType"},
		{name: "schema", content: `{"schemaVersion":"2.2","sessionType":"Standard_Stream"}`, wantErr: "schemaVersion"},
		{name: "unknown input", content: `{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"shell":"zsh"}}`, wantErr: "inputs.shell"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := document.ParseSession([]byte(tt.content), document.FormatAuto)
			if tt.wantErr != "" {
				var de *document.DocumentError
				if !errors.As(err, &de) || de.Path != tt.wantErr {
					t.Fatalf("error %v, want one at %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, d)
		})
	}
}

func FuzzParseSession(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"idleSessionTimeout":"20"}}`))
	f.Add([]byte("schemaVersion: '1.0'\nsessionType: Standard_Stream\ninputs: {shellProfile: {linux: x}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = document.ParseSession(b, document.FormatAuto)
	})
}
