package document

import (
	"embed"
	"fmt"
	"path"
	"sort"
	"strings"
)

// The built-in documents, one file per document named <name>.json or
// <name>.yaml. AWS-RunShellScript is AWS's own document, verbatim (schema
// 1.2 runtimeConfig), so commands written for AWS run unchanged.
//
//go:embed builtin/*.json builtin/*.yaml
var builtinFS embed.FS

// Built-in document names.
const (
	RunShellScript = "AWS-RunShellScript"
	Noop           = "FleetOps-Noop"
)

func builtinFile(name string) (content []byte, format Format, ok bool) {
	for _, f := range []struct {
		ext    string
		format Format
	}{{".json", FormatJSON}, {".yaml", FormatYAML}} {
		if b, err := builtinFS.ReadFile("builtin/" + name + f.ext); err == nil {
			return b, f.format, true
		}
	}
	return nil, "", false
}

// Builtins returns the content of every built-in document by name. The
// slices are copies; callers may keep or change them.
func Builtins() map[string][]byte {
	out := map[string][]byte{}
	for _, n := range BuiltinNames() {
		b, _, _ := builtinFile(n)
		out[n] = append([]byte(nil), b...)
	}
	return out
}

// BuiltinNames returns the names of the built-in documents, sorted.
func BuiltinNames() []string {
	entries, _ := builtinFS.ReadDir("builtin")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), path.Ext(e.Name())))
	}
	sort.Strings(names)
	return names
}

// IsBuiltin reports whether name is a built-in document.
func IsBuiltin(name string) bool {
	_, _, ok := builtinFile(name)
	return ok && ValidateName(name, true) == nil
}

// Builtin parses the named built-in document. Built-ins may use actions
// reserved to them (fleetops:noop). Each call returns a fresh Document.
func Builtin(name string) (*Document, error) {
	if ValidateName(name, true) != nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDocument, truncate(name, 140))
	}
	b, format, ok := builtinFile(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDocument, name)
	}
	d, err := parse(b, format, true)
	if err != nil {
		return nil, fmt.Errorf("built-in document %s: %w", name, err)
	}
	return d, nil
}

// BuiltinFormat returns the content format of a built-in document.
func BuiltinFormat(name string) (Format, bool) {
	_, f, ok := builtinFile(name)
	return f, ok
}
