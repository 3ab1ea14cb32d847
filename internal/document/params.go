package document

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ParamType is a parameter's type. Command documents accept only String and
// StringList (SSM rejects Integer, Boolean, MapList and StringMap there).
type ParamType string

// Parameter types.
const (
	TypeString     ParamType = "String"
	TypeStringList ParamType = "StringList"
)

// InterpolationEnvVar is the only non-empty Parameter.InterpolationType.
const InterpolationEnvVar = "ENV_VAR"

// paramNameRe is SSM's (and the agent's) parameter name rule.
var paramNameRe = regexp.MustCompile(`^[a-zA-Z0-9]+$`)

// Parameter is one declared document parameter.
type Parameter struct {
	Name        string    `json:"name"`
	Type        ParamType `json:"type"`
	Description string    `json:"description,omitempty"`
	// Default is nil when the parameter has no default, which makes it
	// required.
	Default        *Value   `json:"default,omitempty"`
	AllowedValues  []string `json:"allowedValues,omitempty"`
	AllowedPattern string   `json:"allowedPattern,omitempty"`
	DisplayType    string   `json:"displayType,omitempty"`
	// MinItems and MaxItems apply to StringList; MinChars and MaxChars to a
	// String's value and to each item of a StringList. nil means unset.
	MinItems *int `json:"minItems,omitempty"`
	MaxItems *int `json:"maxItems,omitempty"`
	MinChars *int `json:"minChars,omitempty"`
	MaxChars *int `json:"maxChars,omitempty"`
	// InterpolationType "ENV_VAR" (String parameters only) is modelled after
	// SSM's feature of the same name, with the safe behaviour: in the
	// runCommand of aws:runShellScript steps a placeholder of such a
	// parameter is NOT replaced by the value but by the shell reference
	// "${SSM_<name>}" (double-quoted), and the rendered step carries the
	// value in Step.Env["SSM_<name>"]. The value therefore never becomes
	// shell code. (SSM itself also splices the text, for old agents; we do
	// not.) Everywhere else (workingDirectory, timeoutSeconds, other
	// plugins, preconditions) the value is substituted as usual, since those
	// are not evaluated by a shell. allowedPattern still applies.
	InterpolationType string `json:"interpolationType,omitempty"`

	pattern *regexp.Regexp // AllowedPattern anchored to the whole value
}

// Required reports whether the parameter must be given (no default).
func (p *Parameter) Required() bool { return p.Default == nil }

// Value is a runtime parameter value: Text for a String, Items for a
// StringList. It marshals to JSON as the plain string or list.
type Value struct {
	Type  ParamType
	Text  string
	Items []string
}

// StringValue returns a String value.
func StringValue(s string) Value { return Value{Type: TypeString, Text: s} }

// ListValue returns a StringList value.
func ListValue(items ...string) Value {
	if items == nil {
		items = []string{}
	}
	return Value{Type: TypeStringList, Items: items}
}

// raw returns the value as the tree types interpolation works on.
func (v Value) raw() any {
	if v.Type == TypeStringList {
		l := make([]any, len(v.Items))
		for i, s := range v.Items {
			l[i] = s
		}
		return l
	}
	return v.Text
}

// size is the value's byte size, for the limits.
func (v Value) size() int {
	if v.Type == TypeStringList {
		n := 2
		for _, s := range v.Items {
			n += len(s) + 3
		}
		return n
	}
	return len(v.Text)
}

// MarshalJSON encodes a String as a JSON string and a StringList as an array.
func (v Value) MarshalJSON() ([]byte, error) {
	if v.Type == TypeStringList {
		items := v.Items
		if items == nil {
			items = []string{}
		}
		return json.Marshal(items)
	}
	return json.Marshal(v.Text)
}

// UnmarshalJSON accepts a JSON string (String) or array of strings
// (StringList).
func (v *Value) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*v = StringValue(s)
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("parameter value must be a string or a list of strings")
	}
	*v = ListValue(l...)
	return nil
}

// Resolve checks the runtime parameters given for doc (SSM's SendCommand
// Parameters, name → values) and returns the value of every declared
// parameter: unknown names are rejected, defaults applied, parameters
// without a default required, and allowedValues, allowedPattern,
// minItems/maxItems and minChars/maxChars enforced, defaults included. A
// String parameter takes exactly one value. Every error is a *ParamError
// naming the parameter; errors are deterministic (names checked in order).
func Resolve(doc *Document, given map[string][]string) (map[string]Value, error) {
	if doc == nil {
		return nil, fmt.Errorf("resolve parameters: nil document")
	}
	for _, name := range sortedKeys(given) {
		if _, ok := doc.Parameters[name]; !ok {
			return nil, paramErr(name, "unknown parameter (the document does not declare it)")
		}
	}
	out := make(map[string]Value, len(doc.Parameters))
	total := 0
	for _, name := range doc.ParameterNames() {
		p := doc.Parameters[name]
		var v Value
		if g, ok := given[name]; ok {
			switch p.Type {
			case TypeString:
				if len(g) != 1 {
					return nil, paramErr(name, "is a String parameter and takes exactly one value, got %d", len(g))
				}
				v = StringValue(g[0])
			default:
				v = ListValue(slices.Clone(g)...)
			}
		} else if p.Default != nil {
			v = cloneValue(*p.Default)
		} else {
			return nil, paramErr(name, "is required (it has no default)")
		}
		if err := p.check(v); err != nil {
			return nil, err
		}
		total += v.size()
		if total > MaxParameterBytes {
			return nil, paramErr(name, "parameter values exceed %d bytes in total", MaxParameterBytes)
		}
		out[name] = v
	}
	return out, nil
}

// ResolveAny is Resolve for loosely typed input such as a decoded JSON
// body: each value may be a string, a list of strings, or a number or
// boolean (taken as its text; JSON numbers are printed without exponent
// when integral).
func ResolveAny(doc *Document, given map[string]any) (map[string]Value, error) {
	conv := make(map[string][]string, len(given))
	for _, name := range sortedKeys(given) {
		l, err := anyToStrings(given[name])
		if err != nil {
			return nil, paramErr(name, "%v", err)
		}
		conv[name] = l
	}
	return Resolve(doc, conv)
}

func anyToStrings(v any) ([]string, error) {
	switch t := v.(type) {
	case []string:
		return t, nil
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := scalarText(e)
			if !ok {
				return nil, fmt.Errorf("list items must be strings, got %s", treeKind(e))
			}
			out = append(out, s)
		}
		return out, nil
	case Value:
		if t.Type == TypeStringList {
			return t.Items, nil
		}
		return []string{t.Text}, nil
	default:
		s, ok := scalarText(v)
		if !ok {
			return nil, fmt.Errorf("value must be a string or a list of strings, got %s", treeKind(v))
		}
		return []string{s}, nil
	}
}

// scalarText returns the text of a string, number or boolean.
func scalarText(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case json.Number:
		return t.String(), true
	case bool:
		return strconv.FormatBool(t), true
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return "", false
		}
		return strconv.FormatFloat(t, 'f', -1, 64), true
	case int:
		return strconv.Itoa(t), true
	case int64:
		return strconv.FormatInt(t, 10), true
	default:
		return "", false
	}
}

func cloneValue(v Value) Value {
	if v.Type == TypeStringList {
		return ListValue(slices.Clone(v.Items)...)
	}
	return v
}

// check validates a value against the parameter's constraints.
func (p *Parameter) check(v Value) error {
	if v.Type != p.Type {
		return paramErr(p.Name, "must be a %s, got a %s", p.Type, v.Type)
	}
	items := v.Items
	if p.Type == TypeString {
		items = []string{v.Text}
	} else {
		if p.MinItems != nil && len(items) < *p.MinItems {
			return paramErr(p.Name, "needs at least %d item(s), got %d", *p.MinItems, len(items))
		}
		if p.MaxItems != nil && len(items) > *p.MaxItems {
			return paramErr(p.Name, "takes at most %d item(s), got %d", *p.MaxItems, len(items))
		}
	}
	for i, s := range items {
		what := "value"
		if p.Type == TypeStringList {
			what = fmt.Sprintf("item %d", i)
		}
		if hasStoreRef(s) {
			return paramErr(p.Name, "%s: Parameter Store references ({{ssm:…}}, {{ssm-secure:…}}) are not supported", what)
		}
		if p.InterpolationType == InterpolationEnvVar && strings.IndexByte(s, 0) >= 0 {
			return paramErr(p.Name, "%s: contains a NUL byte, which an environment variable cannot hold", what)
		}
		if len(p.AllowedValues) > 0 && !slices.Contains(p.AllowedValues, s) {
			return paramErr(p.Name, "%s %q is not one of the allowed values %q", what, truncate(s, 80), truncatedList(p.AllowedValues))
		}
		if p.pattern != nil && !p.pattern.MatchString(s) {
			return paramErr(p.Name, "%s %q does not match the allowed pattern %q", what, truncate(s, 80), truncate(p.AllowedPattern, 200))
		}
		n := utf8.RuneCountInString(s)
		if p.MinChars != nil && n < *p.MinChars {
			return paramErr(p.Name, "%s needs at least %d character(s), got %d", what, *p.MinChars, n)
		}
		if p.MaxChars != nil && n > *p.MaxChars {
			return paramErr(p.Name, "%s takes at most %d character(s), got %d", what, *p.MaxChars, n)
		}
	}
	return nil
}

func truncatedList(l []string) []string {
	if len(l) > 10 {
		l = append(slices.Clone(l[:10]), "…")
	}
	return l
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// storeRefRe finds Parameter Store references, which we do not resolve.
var storeRefRe = regexp.MustCompile(`\{\{\s*ssm(-secure)?:`)

func hasStoreRef(s string) bool {
	return strings.Contains(s, "{{") && storeRefRe.MatchString(s)
}

// parseParameter builds a Parameter from its decoded definition.
func parseParameter(name string, raw any) (*Parameter, error) {
	path := "parameters." + truncate(name, 128)
	if !paramNameRe.MatchString(name) {
		return nil, docErr(path, "parameter names must match ^[a-zA-Z0-9]+$")
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, docErr(path, "must be a map, got %s", treeKind(raw))
	}
	p := &Parameter{Name: name}
	for _, k := range sortedKeys(m) {
		switch k {
		case "type", "description", "default", "allowedValues", "allowedPattern", "displayType",
			"minItems", "maxItems", "minChars", "maxChars", "interpolationType":
		default:
			return nil, docErr(path, "unknown key %q", truncate(k, 64))
		}
	}
	t, ok := m["type"].(string)
	if !ok {
		return nil, docErr(path+".type", "is required and must be String or StringList")
	}
	switch ParamType(t) {
	case TypeString, TypeStringList:
		p.Type = ParamType(t)
	case "Integer", "Boolean", "MapList", "StringMap":
		return nil, docErr(path+".type", "%s parameters are not allowed in Command documents (String or StringList only)", t)
	default:
		return nil, docErr(path+".type", "unknown type %q (want String or StringList)", truncate(t, 64))
	}
	if d, ok := m["description"]; ok {
		s, ok := scalarText(d)
		if !ok {
			return nil, docErr(path+".description", "must be a string")
		}
		p.Description = s
	}
	if d, ok := m["displayType"]; ok {
		s, _ := d.(string)
		if s != "textfield" && s != "textarea" {
			return nil, docErr(path+".displayType", "must be textfield or textarea")
		}
		p.DisplayType = s
	}
	if it, ok := m["interpolationType"]; ok {
		s, _ := it.(string)
		if s != InterpolationEnvVar {
			return nil, docErr(path+".interpolationType", "the only supported value is ENV_VAR")
		}
		if p.Type != TypeString {
			return nil, docErr(path+".interpolationType", "ENV_VAR applies to String parameters only")
		}
		p.InterpolationType = s
	}
	if av, ok := m["allowedValues"]; ok {
		l, ok := av.([]any)
		if !ok {
			return nil, docErr(path+".allowedValues", "must be a list of strings")
		}
		for _, e := range l {
			s, ok := scalarText(e)
			if !ok {
				return nil, docErr(path+".allowedValues", "must be a list of strings")
			}
			p.AllowedValues = append(p.AllowedValues, s)
		}
	}
	if ap, ok := m["allowedPattern"]; ok {
		s, ok := ap.(string)
		if !ok {
			return nil, docErr(path+".allowedPattern", "must be a string")
		}
		if len(s) > MaxPatternBytes {
			return nil, docErr(path+".allowedPattern", "longer than %d bytes", MaxPatternBytes)
		}
		// SSM's API checks the whole value with Java's regex (String.matches);
		// we anchor the same way, in Go's RE2 syntax. Java-only constructs
		// (lookahead/lookbehind, backreferences, possessive quantifiers,
		// atomic groups) do not compile and are reported here.
		re, err := regexp.Compile(`^(?:` + s + `)$`)
		if err != nil {
			return nil, docErr(path+".allowedPattern", "not a valid Go (RE2) regular expression — SSM accepts Java syntax, but lookaround, backreferences and possessive quantifiers are not supported here: %v", err)
		}
		p.AllowedPattern, p.pattern = s, re
	}
	for _, b := range []struct {
		key  string
		dst  **int
		list bool
	}{{"minItems", &p.MinItems, true}, {"maxItems", &p.MaxItems, true}, {"minChars", &p.MinChars, false}, {"maxChars", &p.MaxChars, false}} {
		raw, ok := m[b.key]
		if !ok {
			continue
		}
		if b.list && p.Type != TypeStringList {
			return nil, docErr(path+"."+b.key, "applies to StringList parameters only")
		}
		n, ok := nonNegInt(raw)
		if !ok {
			return nil, docErr(path+"."+b.key, "must be a non-negative integer")
		}
		*b.dst = &n
	}
	if p.MinItems != nil && p.MaxItems != nil && *p.MinItems > *p.MaxItems {
		return nil, docErr(path, "minItems is greater than maxItems")
	}
	if p.MinChars != nil && p.MaxChars != nil && *p.MinChars > *p.MaxChars {
		return nil, docErr(path, "minChars is greater than maxChars")
	}
	if d, ok := m["default"]; ok {
		v, err := defaultValue(p.Type, d)
		if err != nil {
			return nil, docErr(path+".default", "%v", err)
		}
		if err := p.check(v); err != nil {
			var pe *ParamError
			if errors.As(err, &pe) {
				return nil, docErr(path+".default", "%s", pe.Reason)
			}
			return nil, err
		}
		p.Default = &v
	}
	return p, nil
}

// defaultValue converts a decoded default. A scalar default of a StringList
// is taken as a one-item list, and numbers or booleans as their text
// (YAML authors write `default: 3600`).
func defaultValue(t ParamType, d any) (Value, error) {
	if t == TypeString {
		s, ok := scalarText(d)
		if !ok {
			return Value{}, fmt.Errorf("must be a string for a String parameter, got %s", treeKind(d))
		}
		return StringValue(s), nil
	}
	l, err := anyToStrings(d)
	if err != nil {
		return Value{}, err
	}
	return ListValue(l...), nil
}

// nonNegInt accepts an integral number or numeric string in [0, 1<<31).
func nonNegInt(v any) (int, bool) {
	s, ok := scalarText(v)
	if !ok {
		return 0, false
	}
	if _, isBool := v.(bool); isBool {
		return 0, false
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && f >= 0 && f < 1<<31 {
		return int(f), true
	}
	return 0, false
}
