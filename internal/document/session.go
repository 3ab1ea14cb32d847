package document

import (
	"strconv"
	"strings"
)

// SessionPreferences are the inputs of a Session document of sessionType
// Standard_Stream (SSM's SSM-SessionManagerRunShell preferences), plus two
// fleetops inputs: recordingEnabled and recordInput.
type SessionPreferences struct {
	// IdleTimeoutMinutes is 1–60; 0 keeps the server's default.
	IdleTimeoutMinutes int
	// MaxDurationMinutes is 1–1440; 0 means no limit.
	MaxDurationMinutes int
	RunAsEnabled       bool
	RunAsDefaultUser   string
	ShellProfileLinux  string
	// RecordingEnabled and RecordInput are nil when the document leaves
	// them to the server.
	RecordingEnabled *bool
	RecordInput      *bool
}

// SessionDocument is a parsed Session document (schema 1.0).
type SessionDocument struct {
	SchemaVersion string
	Description   string
	SessionType   string
	Preferences   SessionPreferences
}

// sessionInputs are the inputs a Standard_Stream document may carry; the
// S3 and CloudWatch ones are accepted (so AWS's documents load) and ignored.
var sessionInputs = map[string]bool{
	"idleSessionTimeout": true, "maxSessionDuration": true, "runAsEnabled": true, "runAsDefaultUser": true,
	"shellProfile": true, "recordingEnabled": true, "recordInput": true,
	"s3BucketName": true, "s3KeyPrefix": true, "s3EncryptionEnabled": true, "cloudWatchLogGroupName": true,
	"cloudWatchEncryptionEnabled": true, "cloudWatchStreamingEnabled": true, "kmsKeyId": true,
}

// ParseSession decodes and validates a Session document. Only
// Standard_Stream (shell preferences) documents can be stored: commands and
// port forwarding use the built-in AWS-Start* documents. Errors are
// *DocumentError values naming the field.
func ParseSession(content []byte, format Format) (*SessionDocument, error) {
	root, err := decodeRoot(content, format)
	if err != nil {
		return nil, err
	}
	d := &SessionDocument{}
	for _, k := range sortedKeys(root) {
		switch k {
		case "schemaVersion", "description", "sessionType", "inputs":
		default:
			return nil, docErr("", "unknown top-level key %q for a Session document", truncate(k, 64))
		}
	}
	if d.SchemaVersion, _ = scalarText(root["schemaVersion"]); d.SchemaVersion != "1.0" {
		return nil, docErr("schemaVersion", "Session documents use schema 1.0, got %q", truncate(d.SchemaVersion, 32))
	}
	d.Description, _ = scalarText(root["description"])
	if d.SessionType, _ = scalarText(root["sessionType"]); d.SessionType != "Standard_Stream" {
		return nil, docErr("sessionType", "only Standard_Stream (shell preferences) documents can be stored, got %q", truncate(d.SessionType, 40))
	}
	in, ok := root["inputs"].(map[string]any)
	if !ok && root["inputs"] != nil {
		return nil, docErr("inputs", "must be a map")
	}
	for _, k := range sortedKeys(in) {
		if !sessionInputs[k] {
			return nil, docErr("inputs."+truncate(k, 64), "unknown input")
		}
	}
	p := &d.Preferences
	if p.IdleTimeoutMinutes, err = minutesInput(in, "idleSessionTimeout", 60); err != nil {
		return nil, err
	}
	if p.MaxDurationMinutes, err = minutesInput(in, "maxSessionDuration", 1440); err != nil {
		return nil, err
	}
	if p.RunAsEnabled, _, err = boolInput(in, "runAsEnabled"); err != nil {
		return nil, err
	}
	if v, ok := in["runAsDefaultUser"]; ok && v != nil {
		u, _ := scalarText(v)
		if u != "" && !validUserName(u) {
			return nil, docErr("inputs.runAsDefaultUser", "%q is not a valid user name", truncate(u, 40))
		}
		p.RunAsDefaultUser = u
	}
	if p.RunAsEnabled && p.RunAsDefaultUser == "" {
		return nil, docErr("inputs.runAsDefaultUser", "is required when runAsEnabled is true")
	}
	if sp, ok := in["shellProfile"]; ok && sp != nil {
		m, ok := sp.(map[string]any)
		if !ok {
			return nil, docErr("inputs.shellProfile", "must be a map with linux and windows entries")
		}
		p.ShellProfileLinux, _ = scalarText(m["linux"])
	}
	for _, f := range []struct {
		name string
		dst  **bool
	}{{"recordingEnabled", &p.RecordingEnabled}, {"recordInput", &p.RecordInput}} {
		v, set, err := boolInput(in, f.name)
		if err != nil {
			return nil, err
		}
		if set {
			*f.dst = &v
		}
	}
	return d, nil
}

func minutesInput(in map[string]any, name string, maxMinutes int) (int, error) {
	v, ok := in[name]
	if !ok || v == nil {
		return 0, nil
	}
	s, _ := scalarText(v)
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > maxMinutes {
		return 0, docErr("inputs."+name, "must be a whole number of minutes from 1 to %d", maxMinutes)
	}
	return n, nil
}

func boolInput(in map[string]any, name string) (value, set bool, err error) {
	v, ok := in[name]
	if !ok || v == nil {
		return false, false, nil
	}
	if b, ok := v.(bool); ok {
		return b, true, nil
	}
	s, _ := scalarText(v)
	b, perr := strconv.ParseBool(s)
	if perr != nil {
		return false, false, docErr("inputs."+name, "must be true or false")
	}
	return b, true, nil
}

// validUserName is the portable POSIX user name rule.
func validUserName(u string) bool {
	if len(u) > 32 || u == "" || u[0] == '-' {
		return false
	}
	for _, c := range u {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
