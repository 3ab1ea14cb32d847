package document

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// placeholderRe finds {{ … }} placeholders; group 1 is the inner text without
// the surrounding whitespace. Only inner texts that name a parameter being
// substituted are replaced; anything else ({{.Names}} in a docker format
// string, an undeclared name) stays as written, like the agent does.
var placeholderRe = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)

// Interpolate substitutes parameter values into a decoded input tree
// (map[string]any, []any, strings, other scalars) the way the SSM agent
// does, and returns a new tree; input is not modified:
//
//   - A string that is exactly one placeholder "{{ name }}" becomes the raw
//     value with its type kept: a StringList becomes a []any of strings (so
//     runCommand: ["{{ commands }}"] nests a list; see FlattenCommands). Its
//     text is not altered.
//   - Inside a longer string a String value is spliced as is and a
//     StringList as its JSON (encoding/json, like the agent, so <, > and &
//     are \u-escaped); in spliced text "$$" becomes "$" (the agent passes
//     the value as a regexp replacement template; unlike it, we do not also
//     erase "$1"/"$name" sequences).
//   - Substitution is single-pass: text coming from a value is never
//     scanned again.
//   - Placeholders naming anything not in params are left unchanged, except
//     Parameter Store references ({{ssm:…}}, {{ssm-secure:…}}), which are an
//     error.
//
// Output is bounded by MaxRenderedBytes.
func Interpolate(input any, params map[string]Value) (any, error) {
	in := &interpolator{vals: params}
	return in.value(input, 0, false)
}

type interpolator struct {
	vals map[string]Value
	// envVar holds the ENV_VAR parameters; in shell context their
	// placeholders become shell references instead of values.
	envVar map[string]bool
	size   int
}

func (in *interpolator) grow(n int) error {
	in.size += n
	if in.size > MaxRenderedBytes {
		return fmt.Errorf("interpolated content exceeds %d bytes", MaxRenderedBytes)
	}
	return nil
}

func (in *interpolator) value(v any, depth int, shell bool) (any, error) {
	if depth > MaxDepth+2 {
		return nil, fmt.Errorf("nesting deeper than %d levels", MaxDepth)
	}
	switch t := v.(type) {
	case string:
		return in.str(t, shell)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			r, err := in.value(e, depth+1, shell)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case []string:
		out := make([]any, len(t))
		for i, e := range t {
			r, err := in.str(e, shell)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			r, err := in.value(e, depth+1, shell)
			if err != nil {
				return nil, err
			}
			if err := in.grow(len(k)); err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	default:
		return v, nil
	}
}

// envRef is what an ENV_VAR placeholder becomes in shell context.
func envRef(name string) string { return `"${SSM_` + name + `}"` }

// EnvVarName is the environment variable carrying an ENV_VAR parameter.
func EnvVarName(param string) string { return "SSM_" + param }

func (in *interpolator) str(s string, shell bool) (any, error) {
	if !strings.Contains(s, "{{") {
		return s, in.grow(len(s))
	}
	locs := placeholderRe.FindAllStringSubmatchIndex(s, -1)
	// Exactly one placeholder: the value keeps its type.
	if len(locs) == 1 && locs[0][0] == 0 && locs[0][1] == len(s) {
		name := s[locs[0][2]:locs[0][3]]
		if v, ok := in.lookup(name); ok {
			if shell && in.envVar[name] {
				r := envRef(name)
				return r, in.grow(len(r))
			}
			return v.raw(), in.grow(v.size())
		}
	}
	var b strings.Builder
	last := 0
	for _, loc := range locs {
		name := s[loc[2]:loc[3]]
		if isStoreRef(name) {
			return nil, fmt.Errorf("unsupported Parameter Store reference {{%s}}", truncate(name, 80))
		}
		v, ok := in.lookup(name)
		if !ok {
			continue // not ours: left as written
		}
		var text string
		switch {
		case shell && in.envVar[name]:
			text = envRef(name)
		case v.Type == TypeStringList:
			items := v.Items
			if items == nil {
				items = []string{}
			}
			j, err := json.Marshal(items)
			if err != nil {
				return nil, err
			}
			text = strings.ReplaceAll(string(j), "$$", "$")
		default:
			text = strings.ReplaceAll(v.Text, "$$", "$")
		}
		if err := in.grow(loc[0] - last + len(text)); err != nil {
			return nil, err
		}
		b.WriteString(s[last:loc[0]])
		b.WriteString(text)
		last = loc[1]
	}
	if err := in.grow(len(s) - last); err != nil {
		return nil, err
	}
	b.WriteString(s[last:])
	return b.String(), nil
}

func (in *interpolator) lookup(name string) (Value, bool) {
	if !paramNameRe.MatchString(name) {
		return Value{}, false
	}
	v, ok := in.vals[name]
	return v, ok
}

func isStoreRef(inner string) bool {
	return strings.HasPrefix(inner, "ssm:") || strings.HasPrefix(inner, "ssm-secure:")
}

// exactPlaceholder returns the parameter name when s is exactly one
// placeholder of a well-formed parameter name.
func exactPlaceholder(s string) (string, bool) {
	loc := placeholderRe.FindStringSubmatchIndex(s)
	if loc == nil || loc[0] != 0 || loc[1] != len(s) {
		return "", false
	}
	name := s[loc[2]:loc[3]]
	return name, paramNameRe.MatchString(name)
}

// FlattenCommands turns a runCommand input into the command lines: a string
// is one command (it may span lines), a list is flattened recursively, so
// the nested list an exact "{{ commands }}" placeholder produces comes out
// flat. Any non-string item is an error.
func FlattenCommands(v any) ([]string, error) {
	var out []string
	if err := flatten(v, 0, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

func flatten(v any, depth int, out *[]string) error {
	if depth > MaxDepth {
		return fmt.Errorf("nested deeper than %d levels", MaxDepth)
	}
	switch t := v.(type) {
	case string:
		*out = append(*out, t)
	case []string:
		*out = append(*out, t...)
	case []any:
		for _, e := range t {
			if err := flatten(e, depth+1, out); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("commands must be strings, got %s", treeKind(v))
	}
	return nil
}
