package document

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Schema versions of Command documents.
const (
	Schema12 = "1.2"
	Schema20 = "2.0"
	Schema22 = "2.2"
)

// Platform types (SSM's PlatformType and precondition values).
const (
	PlatformLinux   = "Linux"
	PlatformMacOS   = "MacOS"
	PlatformWindows = "Windows"
)

// Document is a parsed and validated Command document. It is not modified
// after Parse, so one Document may be rendered concurrently. Schema 1.2
// runtimeConfig plugins are normalized into MainSteps, so callers see one
// step model whatever the schema.
type Document struct {
	SchemaVersion string                `json:"schemaVersion"`
	Description   string                `json:"description,omitempty"`
	Parameters    map[string]*Parameter `json:"parameters,omitempty"`
	MainSteps     []*MainStep           `json:"mainSteps"`

	builtin bool
}

// MainStep is one step of a document before interpolation.
type MainStep struct {
	Action string `json:"action"`
	// Name is unique in the document; it is the PluginName of the results.
	// For a schema 1.2 plugin it is the plugin name ("aws:runShellScript"),
	// or the property id when a plugin has several properties.
	Name string `json:"name"`
	// ID is the schema 1.2 property id ("0.aws:runShellScript").
	ID string `json:"id,omitempty"`
	// Inputs are the plugin's inputs as decoded (placeholders intact),
	// without the shared inputs below.
	Inputs       map[string]any `json:"inputs,omitempty"`
	Precondition *Precondition  `json:"precondition,omitempty"`
	OnFailure    string         `json:"onFailure,omitempty"`   // "", "exit" or "successAndExit"
	OnSuccess    string         `json:"onSuccess,omitempty"`   // "" or "exit"
	FinallyStep  bool           `json:"finallyStep,omitempty"` // last step only
}

// Precondition is a step's `StringEquals: [Left, Right]`. Left is
// "platformType" or a "{{ param }}" placeholder of a String parameter.
type Precondition struct {
	Left  string `json:"left"`
	Right string `json:"right"`
}

var (
	docNameRe  = regexp.MustCompile(`^[a-zA-Z0-9_\-.]{3,128}$`)
	stepNameRe = regexp.MustCompile(`^[a-zA-Z0-9_\-.]{1,128}$`)
	versionRe  = regexp.MustCompile(`^([1-9][0-9]{0,8}|\$LATEST|\$DEFAULT)$`)
)

// reservedPrefixes may begin only built-in document names (case-insensitive).
// SSM reserves aws, amazon and amzn; we also reserve fleetops for our own
// built-ins (FleetOps-Noop) so a user document can never shadow one.
var reservedPrefixes = []string{"aws", "amazon", "amzn", "fleetops"}

// ValidateName checks a document name: ^[a-zA-Z0-9_\-.]{3,128}$, and, unless
// builtin, none of the reserved prefixes aws, amazon, amzn (SSM's, which
// covers AWSEC2…) and fleetops, case-insensitively. Errors match
// ErrInvalidName.
func ValidateName(name string, builtin bool) error {
	if !docNameRe.MatchString(name) {
		return fmt.Errorf("%w: %q must be 3 to 128 characters, each a letter, a digit, _, - or a dot", ErrInvalidName, truncate(name, 140))
	}
	if !builtin {
		lower := strings.ToLower(name)
		for _, p := range reservedPrefixes {
			if strings.HasPrefix(lower, p) {
				return fmt.Errorf("%w: %q starts with the reserved prefix %q", ErrInvalidName, name, p)
			}
		}
	}
	return nil
}

// Parse decodes and validates Command document content (YAML or JSON,
// schema 1.2, 2.0 or 2.2). Errors match ErrInvalidDocument (and
// ErrDocumentTooLarge for oversize content) and are *DocumentError values
// naming the offending field, step and action. Actions only our agent runs
// (fleetops:*) are accepted in built-in documents only.
func Parse(content []byte, format Format) (*Document, error) {
	return parse(content, format, false)
}

// decodeRoot bounds, decodes and returns the top-level map of a document
// of either kind.
func decodeRoot(content []byte, format Format) (map[string]any, error) {
	if len(content) > MaxDocumentBytes {
		return nil, fmt.Errorf("%w: %w: %d bytes, the limit is %d", ErrInvalidDocument, ErrDocumentTooLarge, len(content), MaxDocumentBytes)
	}
	tree, err := decodeTree(content, format)
	if err != nil {
		return nil, err
	}
	root, ok := tree.(map[string]any)
	if !ok {
		return nil, docErr("", "the top level must be a map, got %s", treeKind(tree))
	}
	return root, nil
}

func parse(content []byte, format Format, builtin bool) (*Document, error) {
	root, err := decodeRoot(content, format)
	if err != nil {
		return nil, err
	}
	d := &Document{builtin: builtin, Parameters: map[string]*Parameter{}}
	sv, ok := root["schemaVersion"]
	if !ok {
		return nil, docErr("schemaVersion", "is required")
	}
	d.SchemaVersion, _ = scalarText(sv)
	switch d.SchemaVersion {
	case Schema12, Schema20, Schema22:
	case "0.3":
		return nil, docErr("schemaVersion", "0.3 is an Automation schema; Command documents use 1.2, 2.0 or 2.2")
	default:
		return nil, docErr("schemaVersion", "unsupported schema version %q (Command documents use 1.2, 2.0 or 2.2)", truncate(d.SchemaVersion, 32))
	}
	for _, k := range sortedKeys(root) {
		switch k {
		case "schemaVersion", "description", "parameters":
		case "runtimeConfig":
			if d.SchemaVersion != Schema12 {
				return nil, docErr(k, "runtimeConfig belongs to schema 1.2; schema %s uses mainSteps", d.SchemaVersion)
			}
		case "mainSteps":
			if d.SchemaVersion == Schema12 {
				return nil, docErr(k, "schema 1.2 uses runtimeConfig, not mainSteps")
			}
		default:
			return nil, docErr("", "unknown top-level key %q", truncate(k, 64))
		}
	}
	if desc, ok := root["description"]; ok {
		s, ok := scalarText(desc)
		if !ok && desc != nil {
			return nil, docErr("description", "must be a string")
		}
		d.Description = s
	}
	if err := d.parseParameters(root["parameters"]); err != nil {
		return nil, err
	}
	if d.SchemaVersion == Schema12 {
		err = d.parseRuntimeConfig(root["runtimeConfig"])
	} else {
		err = d.parseMainSteps(root["mainSteps"])
	}
	if err != nil {
		return nil, err
	}
	for i, s := range d.MainSteps {
		if err := d.checkStep(fmt.Sprintf("mainSteps[%d]", i), s); err != nil {
			return nil, err
		}
		if s.FinallyStep && i != len(d.MainSteps)-1 {
			return nil, docErr(fmt.Sprintf("mainSteps[%d]", i), "step %q: finallyStep is allowed on the last step only", s.Name)
		}
	}
	return d, nil
}

// ParameterNames returns the declared parameter names, sorted.
func (d *Document) ParameterNames() []string { return sortedKeys(d.Parameters) }

func (d *Document) parseParameters(raw any) error {
	if raw == nil {
		return nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return docErr("parameters", "must be a map, got %s", treeKind(raw))
	}
	if len(m) > MaxParameters {
		return docErr("parameters", "declares %d parameters, the limit is %d", len(m), MaxParameters)
	}
	for _, name := range sortedKeys(m) {
		p, err := parseParameter(name, m[name])
		if err != nil {
			return err
		}
		d.Parameters[name] = p
	}
	return nil
}

func (d *Document) parseMainSteps(raw any) error {
	l, ok := raw.([]any)
	if !ok || len(l) == 0 {
		return docErr("mainSteps", "is required and must be a non-empty list")
	}
	if len(l) > MaxSteps {
		return docErr("mainSteps", "has %d steps, the limit is %d", len(l), MaxSteps)
	}
	seen := map[string]bool{}
	for i, e := range l {
		path := fmt.Sprintf("mainSteps[%d]", i)
		m, ok := e.(map[string]any)
		if !ok {
			return docErr(path, "must be a map, got %s", treeKind(e))
		}
		for _, k := range sortedKeys(m) {
			switch k {
			case "action", "name", "inputs", "precondition":
			default:
				return docErr(path, "unknown key %q", truncate(k, 64))
			}
		}
		s := &MainStep{}
		s.Name, _ = m["name"].(string)
		if !stepNameRe.MatchString(s.Name) {
			return docErr(path+".name", "is required and must be 1 to 128 characters of a-z, A-Z, 0-9, _, - and .")
		}
		if seen[s.Name] {
			return docErr(path+".name", "duplicate step name %q", s.Name)
		}
		seen[s.Name] = true
		s.Action, _ = m["action"].(string)
		if s.Action == "" {
			return docErr(path+".action", "step %q: action is required", s.Name)
		}
		if in, ok := m["inputs"]; ok && in != nil {
			im, ok := in.(map[string]any)
			if !ok {
				return docErr(path+".inputs", "step %q: inputs must be a map, got %s", s.Name, treeKind(in))
			}
			s.Inputs = im
		}
		if pc, ok := m["precondition"]; ok {
			if d.SchemaVersion != Schema22 {
				return docErr(path+".precondition", "step %q: precondition requires schemaVersion 2.2", s.Name)
			}
			p, err := d.parsePrecondition(pc)
			if err != nil {
				return docErr(path+".precondition", "step %q: %v", s.Name, err)
			}
			s.Precondition = p
		}
		d.MainSteps = append(d.MainSteps, s)
	}
	return nil
}

// parseRuntimeConfig normalizes schema 1.2's
// runtimeConfig{plugin: {properties: [{id, …inputs}]}} into steps. Go maps
// lose the document's key order, so plugins run in name order (AWS's own
// 1.2 documents have a single plugin; the agent itself iterates a map).
func (d *Document) parseRuntimeConfig(raw any) error {
	m, ok := raw.(map[string]any)
	if !ok || len(m) == 0 {
		return docErr("runtimeConfig", "is required in schema 1.2 and must be a non-empty map")
	}
	seen := map[string]bool{}
	for _, plugin := range sortedKeys(m) {
		path := "runtimeConfig." + truncate(plugin, 64)
		pm, ok := m[plugin].(map[string]any)
		if !ok {
			return docErr(path, "must be a map with properties")
		}
		for _, k := range sortedKeys(pm) {
			if k != "properties" {
				return docErr(path, "unknown key %q", truncate(k, 64))
			}
		}
		var props []any
		switch p := pm["properties"].(type) {
		case []any:
			props = p
		case map[string]any:
			props = []any{p}
		default:
			return docErr(path+".properties", "is required and must be a list of maps")
		}
		if len(props) == 0 {
			return docErr(path+".properties", "is empty")
		}
		for i, e := range props {
			ppath := fmt.Sprintf("%s.properties[%d]", path, i)
			pr, ok := e.(map[string]any)
			if !ok {
				return docErr(ppath, "must be a map, got %s", treeKind(e))
			}
			s := &MainStep{Action: plugin, Name: plugin, Inputs: map[string]any{}}
			for _, k := range sortedKeys(pr) {
				v := pr[k]
				if k == "id" {
					id, ok := v.(string)
					if !ok || id == "" || len(id) > 128 {
						return docErr(ppath+".id", "must be a non-empty string of at most 128 bytes")
					}
					s.ID = id
					continue
				}
				s.Inputs[k] = v
			}
			if len(props) > 1 {
				if s.ID == "" {
					return docErr(ppath+".id", "is required when a plugin has several properties")
				}
				s.Name = s.ID
			}
			if seen[s.Name] {
				return docErr(ppath, "duplicate step name %q", truncate(s.Name, 128))
			}
			seen[s.Name] = true
			d.MainSteps = append(d.MainSteps, s)
			if len(d.MainSteps) > MaxSteps {
				return docErr("runtimeConfig", "more than %d steps", MaxSteps)
			}
		}
	}
	return nil
}

func (d *Document) parsePrecondition(raw any) (*Precondition, error) {
	m, ok := raw.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, errors.New("must be a map with the single key StringEquals")
	}
	l, ok := m["StringEquals"].([]any)
	if !ok {
		return nil, errors.New("only StringEquals is supported")
	}
	if len(l) != 2 {
		return nil, errors.New("the StringEquals operands must be exactly two strings [lhs, rhs]")
	}
	left, ok1 := l[0].(string)
	right, ok2 := l[1].(string)
	if !ok1 || !ok2 {
		return nil, errors.New("the StringEquals operands must be exactly two strings [lhs, rhs]")
	}
	if left == "platformType" {
		switch right {
		case PlatformLinux, PlatformMacOS, PlatformWindows:
		default:
			return nil, fmt.Errorf("platformType must be compared with Linux, MacOS or Windows, not %q", truncate(right, 64))
		}
		return &Precondition{Left: left, Right: right}, nil
	}
	name, ok := exactPlaceholder(left)
	if !ok {
		return nil, fmt.Errorf("the left operand must be platformType or a {{ parameter }}, not %q", truncate(left, 64))
	}
	p, ok := d.Parameters[name]
	if !ok {
		return nil, fmt.Errorf("parameter %q is not declared", name)
	}
	if p.Type != TypeString {
		return nil, fmt.Errorf("parameter %q must be a String to be compared", name)
	}
	if strings.Contains(right, "{{") {
		return nil, errors.New("the right operand must be a literal")
	}
	return &Precondition{Left: left, Right: right}, nil
}

// checkStep validates a step's action, shared inputs and plugin inputs.
func (d *Document) checkStep(path string, s *MainStep) error {
	spec, ok := actions[s.Action]
	if !ok {
		return docErr(path+".action", "step %q: unknown action %q (supported: %s)", truncate(s.Name, 128), truncate(s.Action, 64), supportedActions())
	}
	if spec.internal && !d.builtin {
		return docErr(path+".action", "step %q: action %q is reserved for built-in documents", s.Name, s.Action)
	}
	if err := s.takeSharedInputs(); err != nil {
		return docErr(path+".inputs", "step %q (%s): %v", s.Name, s.Action, err)
	}
	for _, k := range sortedKeys(s.Inputs) {
		if !spec.inputs[k] {
			return docErr(path+".inputs", "step %q (%s): unknown input %q", s.Name, s.Action, truncate(k, 64))
		}
	}
	if err := checkStrings(s.Inputs, 0); err != nil {
		return docErr(path+".inputs", "step %q (%s): %v", s.Name, s.Action, err)
	}
	if err := spec.check(d, s.Inputs); err != nil {
		return docErr(path+".inputs", "step %q (%s): %v", s.Name, s.Action, err)
	}
	return nil
}

// takeSharedInputs moves onFailure, onSuccess and finallyStep out of the
// inputs. They must be literals.
func (s *MainStep) takeSharedInputs() error {
	if v, ok := s.Inputs["onFailure"]; ok {
		str, _ := v.(string)
		if str != "exit" && str != "successAndExit" {
			return errors.New("onFailure must be exit or successAndExit")
		}
		s.OnFailure = str
		delete(s.Inputs, "onFailure")
	}
	if v, ok := s.Inputs["onSuccess"]; ok {
		if str, _ := v.(string); str != "exit" {
			return errors.New("onSuccess must be exit")
		}
		s.OnSuccess = "exit"
		delete(s.Inputs, "onSuccess")
	}
	if v, ok := s.Inputs["finallyStep"]; ok {
		switch v {
		case true, "true":
			s.FinallyStep = true
		case false, "false":
		default:
			return errors.New("finallyStep must be true or false")
		}
		delete(s.Inputs, "finallyStep")
	}
	return nil
}

// checkStrings rejects Parameter Store references anywhere in the inputs.
func checkStrings(v any, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("nesting deeper than %d levels", MaxDepth)
	}
	switch t := v.(type) {
	case string:
		if hasStoreRef(t) {
			return errors.New("unsupported Parameter Store reference ({{ssm:…}} and {{ssm-secure:…}} are not resolved here)")
		}
	case []any:
		for _, e := range t {
			if err := checkStrings(e, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		for _, e := range t {
			if err := checkStrings(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// AppliesTo reports whether the step runs on platformType (Linux, MacOS or
// Windows): its plugin must support the platform and its precondition, if
// any, must hold (a "{{ param }}" left operand is compared after
// substitution from params). Under schema 2.2 a step that does not apply is
// skipped; under 1.2 and 2.0 it is an error (see Render).
func (s *MainStep) AppliesTo(platformType string, params map[string]Value) (bool, error) {
	switch platformType {
	case PlatformLinux, PlatformMacOS, PlatformWindows:
	default:
		return false, fmt.Errorf("unknown platform type %q (want Linux, MacOS or Windows)", truncate(platformType, 64))
	}
	if spec, ok := actions[s.Action]; ok && spec.platforms != nil && !spec.platforms[platformType] {
		return false, nil
	}
	if s.Precondition == nil {
		return true, nil
	}
	if s.Precondition.Left == "platformType" {
		return platformType == s.Precondition.Right, nil
	}
	name, _ := exactPlaceholder(s.Precondition.Left)
	v, ok := params[name]
	if !ok {
		return false, paramErr(name, "has no value (call Resolve first)")
	}
	return v.Type == TypeString && v.Text == s.Precondition.Right, nil
}
