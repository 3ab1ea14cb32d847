package document

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Actions (plugins) this package knows. Any other action is rejected at
// Parse, naming the step.
const (
	ActionRunShellScript   = "aws:runShellScript"
	ActionRunDocument      = "aws:runDocument"
	ActionDownloadContent  = "aws:downloadContent"
	ActionNoop             = "fleetops:noop" // FleetOps agent only; built-in documents only
	DocumentTypeSSM        = "SSMDocument"
	DocumentTypeLocalPath  = "LocalPath"
	SourceTypeHTTP         = "HTTP"
	SourceTypeSSMDocument  = "SSMDocument"
	maxCommandsPerShellRun = 10000
)

type actionSpec struct {
	inputs    map[string]bool
	platforms map[string]bool // nil: every platform
	internal  bool            // only in built-in documents
	// check validates the inputs at Parse time, placeholders intact.
	check func(d *Document, in map[string]any) error
	// normalize validates the interpolated inputs and returns their
	// canonical form for the rendered Step.
	normalize func(in map[string]any) (map[string]any, error)
	// timeout is the step's timeout in seconds, for ExecutionTimeout.
	timeout func(in map[string]any) int
}

func set(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

var actions = map[string]actionSpec{
	ActionRunShellScript: {
		inputs:    set("runCommand", "workingDirectory", "timeoutSeconds"),
		platforms: set(PlatformLinux, PlatformMacOS),
		check:     checkShell,
		normalize: func(in map[string]any) (map[string]any, error) {
			s, err := shellInputs(in)
			if err != nil {
				return nil, err
			}
			cmds := make([]any, len(s.Commands))
			for i, c := range s.Commands {
				cmds[i] = c
			}
			return map[string]any{"runCommand": cmds, "workingDirectory": s.WorkingDirectory, "timeoutSeconds": s.TimeoutSeconds}, nil
		},
		timeout: func(in map[string]any) int { return effectiveTimeout(in["timeoutSeconds"]) },
	},
	ActionRunDocument: {
		inputs: set("documentType", "documentPath", "documentParameters"),
		check:  checkRunDocument,
		normalize: func(in map[string]any) (map[string]any, error) {
			r, err := runDocumentInputs(in)
			if err != nil {
				return nil, err
			}
			return map[string]any{"documentType": r.DocumentType, "documentPath": r.DocumentPath, "documentParameters": r.DocumentParameters}, nil
		},
		timeout: func(map[string]any) int { return DefaultTimeoutSeconds },
	},
	ActionDownloadContent: {
		inputs: set("sourceType", "sourceInfo", "destinationPath"),
		check:  checkDownload,
		normalize: func(in map[string]any) (map[string]any, error) {
			r, err := downloadInputs(in)
			if err != nil {
				return nil, err
			}
			return map[string]any{"sourceType": r.SourceType, "sourceInfo": r.SourceInfo, "destinationPath": r.DestinationPath}, nil
		},
		timeout: func(map[string]any) int { return DefaultTimeoutSeconds },
	},
	ActionNoop: {
		inputs:    set(),
		internal:  true,
		check:     func(*Document, map[string]any) error { return nil },
		normalize: func(map[string]any) (map[string]any, error) { return map[string]any{}, nil },
		timeout:   func(map[string]any) int { return 0 },
	},
}

func supportedActions() string {
	var names []string
	for n, s := range actions {
		if !s.internal {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// ---- Parse-time checks (placeholders intact) ----

// checkStringInput checks an optional or required string input. A value
// that is exactly a placeholder of a declared StringList is an error since
// it would become a list.
func checkStringInput(d *Document, in map[string]any, key string, required bool) (literal string, isLiteral bool, err error) {
	v, ok := in[key]
	if !ok {
		if required {
			return "", false, fmt.Errorf("input %q is required", key)
		}
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, fmt.Errorf("input %q must be a string, got %s", key, treeKind(v))
	}
	if err := d.checkScalarPlaceholder(key, s); err != nil {
		return "", false, err
	}
	if strings.Contains(s, "{{") {
		return s, false, nil
	}
	if required && s == "" {
		return "", false, fmt.Errorf("input %q must not be empty", key)
	}
	return s, true, nil
}

func (d *Document) checkScalarPlaceholder(key, s string) error {
	if name, ok := exactPlaceholder(s); ok {
		if p, ok := d.Parameters[name]; ok && p.Type == TypeStringList {
			return fmt.Errorf("input %q takes a string, but parameter %q is a StringList", key, name)
		}
	}
	return nil
}

func checkShell(d *Document, in map[string]any) error {
	rc, ok := in["runCommand"]
	if !ok {
		return errors.New(`input "runCommand" is required`)
	}
	switch t := rc.(type) {
	case string:
	case []any:
		for i, e := range t {
			if _, ok := e.(string); !ok {
				return fmt.Errorf("runCommand[%d] must be a string, got %s", i, treeKind(e))
			}
		}
	default:
		return fmt.Errorf("input \"runCommand\" must be a list of strings, got %s", treeKind(rc))
	}
	if _, _, err := checkStringInput(d, in, "workingDirectory", false); err != nil {
		return err
	}
	if v, ok := in["timeoutSeconds"]; ok {
		switch t := v.(type) {
		case json.Number:
			if _, err := strconv.ParseInt(t.String(), 10, 64); err != nil {
				return fmt.Errorf("input \"timeoutSeconds\" must be an integer, got %s", t)
			}
		case string:
			if err := d.checkScalarPlaceholder("timeoutSeconds", t); err != nil {
				return err
			}
			if !strings.Contains(t, "{{") {
				if _, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64); err != nil {
					return fmt.Errorf("input \"timeoutSeconds\" must be an integer, got %q", truncate(t, 32))
				}
			}
		default:
			return fmt.Errorf("input \"timeoutSeconds\" must be a string or number, got %s", treeKind(v))
		}
	}
	return nil
}

func checkRunDocument(d *Document, in map[string]any) error {
	dt, dtLit, err := checkStringInput(d, in, "documentType", true)
	if err != nil {
		return err
	}
	if dtLit && dt != DocumentTypeSSM && dt != DocumentTypeLocalPath {
		return fmt.Errorf("documentType must be SSMDocument or LocalPath, not %q", truncate(dt, 32))
	}
	path, pathLit, err := checkStringInput(d, in, "documentPath", true)
	if err != nil {
		return err
	}
	if dtLit && pathLit && dt == DocumentTypeSSM {
		if _, _, err := parseDocumentRef(path); err != nil {
			return fmt.Errorf("documentPath: %v", err)
		}
	}
	if v, ok := in["documentParameters"]; ok {
		if err := checkStringMap(d, "documentParameters", v); err != nil {
			return err
		}
	}
	return nil
}

func checkDownload(d *Document, in map[string]any) error {
	st, stLit, err := checkStringInput(d, in, "sourceType", true)
	if err != nil {
		return err
	}
	if stLit {
		if err := checkSourceType(st); err != nil {
			return err
		}
	}
	si, ok := in["sourceInfo"]
	if !ok {
		return errors.New(`input "sourceInfo" is required`)
	}
	if err := checkStringMap(d, "sourceInfo", si); err != nil {
		return err
	}
	if _, _, err := checkStringInput(d, in, "destinationPath", false); err != nil {
		return err
	}
	// Check the literal parts now; anything with placeholders is checked
	// again after interpolation in Render.
	if stLit && !containsPlaceholder(si, 0) {
		m, err := stringMap("sourceInfo", si)
		if err != nil {
			return err
		}
		if _, err := downloadSource(st, m); err != nil {
			return err
		}
	}
	return nil
}

func checkSourceType(st string) error {
	switch st {
	case SourceTypeHTTP, SourceTypeSSMDocument:
		return nil
	case "GitHub", "Git", "S3":
		return fmt.Errorf("sourceType %s is not supported (HTTP or SSMDocument)", st)
	default:
		return fmt.Errorf("sourceType must be HTTP or SSMDocument, not %q", truncate(st, 32))
	}
}

// checkStringMap accepts a map or a string (a JSON object, or a
// placeholder that will produce one), as SSM does for StringMap inputs.
func checkStringMap(d *Document, key string, v any) error {
	switch t := v.(type) {
	case map[string]any:
		return nil
	case string:
		if err := d.checkScalarPlaceholder(key, t); err != nil {
			return err
		}
		if strings.Contains(t, "{{") {
			return nil
		}
		_, err := stringMap(key, t)
		return err
	default:
		return fmt.Errorf("input %q must be a map, got %s", key, treeKind(v))
	}
}

func containsPlaceholder(v any, depth int) bool {
	if depth > MaxDepth {
		return true
	}
	switch t := v.(type) {
	case string:
		return strings.Contains(t, "{{")
	case []any:
		for _, e := range t {
			if containsPlaceholder(e, depth+1) {
				return true
			}
		}
	case map[string]any:
		for _, e := range t {
			if containsPlaceholder(e, depth+1) {
				return true
			}
		}
	}
	return false
}

// ---- Render-time inputs and the typed accessors ----

// ShellInputs are the inputs of an aws:runShellScript step.
type ShellInputs struct {
	// Commands are the command lines, flattened (see FlattenCommands).
	Commands         []string
	WorkingDirectory string
	// TimeoutSeconds is the effective timeout: the agent accepts 5 to
	// 172800 and uses 3600 for anything else, including a missing or
	// non-numeric value.
	TimeoutSeconds int
}

// RunDocumentInputs are the inputs of an aws:runDocument step.
type RunDocumentInputs struct {
	DocumentType       string         // SSMDocument or LocalPath
	DocumentPath       string         // document name[:version], or a local path
	DocumentParameters map[string]any // parameters of the nested document
}

// DownloadInputs are the inputs of an aws:downloadContent step.
type DownloadInputs struct {
	SourceType      string         // HTTP or SSMDocument
	SourceInfo      map[string]any // as given
	URL             string         // HTTP: sourceInfo.url
	DocumentName    string         // SSMDocument: sourceInfo.name without version
	DocumentVersion string         // SSMDocument: the version after ":", if any
	DestinationPath string
}

func shellInputs(in map[string]any) (ShellInputs, error) {
	var s ShellInputs
	rc, ok := in["runCommand"]
	if !ok {
		return s, errors.New(`input "runCommand" is required`)
	}
	cmds, err := FlattenCommands(rc)
	if err != nil {
		return s, fmt.Errorf("runCommand: %v", err)
	}
	if len(cmds) > maxCommandsPerShellRun {
		return s, fmt.Errorf("runCommand has more than %d lines", maxCommandsPerShellRun)
	}
	s.Commands = cmds
	if wd, ok := in["workingDirectory"]; ok && wd != nil {
		str, ok := wd.(string)
		if !ok {
			return s, fmt.Errorf("workingDirectory must be a string, got %s", treeKind(wd))
		}
		if strings.IndexByte(str, 0) >= 0 {
			return s, errors.New("workingDirectory contains a NUL byte")
		}
		s.WorkingDirectory = str
	}
	s.TimeoutSeconds = effectiveTimeout(in["timeoutSeconds"])
	return s, nil
}

// effectiveTimeout applies the agent's rule to a timeoutSeconds input.
func effectiveTimeout(v any) int {
	text, ok := scalarText(v)
	if !ok {
		return DefaultTimeoutSeconds
	}
	if _, isBool := v.(bool); isBool {
		return DefaultTimeoutSeconds
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
	if err != nil || f != math.Trunc(f) || f < MinTimeoutSeconds || f > MaxTimeoutSeconds {
		return DefaultTimeoutSeconds
	}
	return int(f)
}

func runDocumentInputs(in map[string]any) (RunDocumentInputs, error) {
	var r RunDocumentInputs
	var err error
	if r.DocumentType, err = requiredString(in, "documentType"); err != nil {
		return r, err
	}
	if r.DocumentPath, err = requiredString(in, "documentPath"); err != nil {
		return r, err
	}
	switch r.DocumentType {
	case DocumentTypeSSM:
		if _, _, err := parseDocumentRef(r.DocumentPath); err != nil {
			return r, fmt.Errorf("documentPath: %v", err)
		}
	case DocumentTypeLocalPath:
		if strings.IndexByte(r.DocumentPath, 0) >= 0 {
			return r, errors.New("documentPath contains a NUL byte")
		}
	default:
		return r, fmt.Errorf("documentType must be SSMDocument or LocalPath, not %q", truncate(r.DocumentType, 32))
	}
	r.DocumentParameters = map[string]any{}
	if v, ok := in["documentParameters"]; ok && v != nil {
		m, err := stringMap("documentParameters", v)
		if err != nil {
			return r, err
		}
		r.DocumentParameters = m
	}
	return r, nil
}

func downloadInputs(in map[string]any) (DownloadInputs, error) {
	var r DownloadInputs
	var err error
	if r.SourceType, err = requiredString(in, "sourceType"); err != nil {
		return r, err
	}
	if err := checkSourceType(r.SourceType); err != nil {
		return r, err
	}
	si, ok := in["sourceInfo"]
	if !ok {
		return r, errors.New(`input "sourceInfo" is required`)
	}
	if r.SourceInfo, err = stringMap("sourceInfo", si); err != nil {
		return r, err
	}
	src, err := downloadSource(r.SourceType, r.SourceInfo)
	if err != nil {
		return r, err
	}
	r.URL, r.DocumentName, r.DocumentVersion = src.url, src.name, src.version
	if v, ok := in["destinationPath"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return r, fmt.Errorf("destinationPath must be a string, got %s", treeKind(v))
		}
		if strings.IndexByte(s, 0) >= 0 {
			return r, errors.New("destinationPath contains a NUL byte")
		}
		r.DestinationPath = s
	}
	return r, nil
}

type source struct{ url, name, version string }

func downloadSource(sourceType string, info map[string]any) (source, error) {
	var src source
	switch sourceType {
	case SourceTypeHTTP:
		u, ok := info["url"].(string)
		if !ok || u == "" {
			return src, errors.New("sourceInfo.url is required for sourceType HTTP")
		}
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return src, fmt.Errorf("sourceInfo.url %q is not an http(s) URL", truncate(u, 200))
		}
		src.url = u
	case SourceTypeSSMDocument:
		n, ok := info["name"].(string)
		if !ok || n == "" {
			return src, errors.New("sourceInfo.name is required for sourceType SSMDocument")
		}
		name, version, err := parseDocumentRef(n)
		if err != nil {
			return src, fmt.Errorf("sourceInfo.name: %v", err)
		}
		src.name, src.version = name, version
	}
	return src, nil
}

// parseDocumentRef splits "name" or "name:version". Names may be any valid
// document name, reserved prefixes included (AWS's documents can be run);
// versions are a number, $LATEST or $DEFAULT. ARNs (shared documents) are
// not supported.
func parseDocumentRef(ref string) (name, version string, err error) {
	if strings.HasPrefix(ref, "arn:") {
		return "", "", errors.New("document ARNs are not supported; use the document name")
	}
	name, version, hasVersion := strings.Cut(ref, ":")
	if err := ValidateName(name, true); err != nil {
		return "", "", err
	}
	if hasVersion && !versionRe.MatchString(version) {
		return "", "", fmt.Errorf("document version %q must be a number, $LATEST or $DEFAULT", truncate(version, 32))
	}
	return name, version, nil
}

func requiredString(in map[string]any, key string) (string, error) {
	v, ok := in[key]
	if !ok {
		return "", fmt.Errorf("input %q is required", key)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("input %q must be a string, got %s", key, treeKind(v))
	}
	if s == "" {
		return "", fmt.Errorf("input %q must not be empty", key)
	}
	return s, nil
}

// stringMap accepts a map, or a string holding a JSON object.
func stringMap(key string, v any) (map[string]any, error) {
	switch t := v.(type) {
	case map[string]any:
		return t, nil
	case string:
		if len(t) > MaxDocumentBytes {
			return nil, fmt.Errorf("input %q is larger than %d bytes", key, MaxDocumentBytes)
		}
		tree, err := decodeJSON([]byte(t))
		if err != nil {
			return nil, fmt.Errorf("input %q must be a map or a JSON object string: %v", key, err)
		}
		m, ok := tree.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("input %q must be a map or a JSON object string, got a %s", key, treeKind(tree))
		}
		return m, nil
	default:
		return nil, fmt.Errorf("input %q must be a map, got %s", key, treeKind(v))
	}
}
