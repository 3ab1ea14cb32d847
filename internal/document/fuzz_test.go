package document

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// addSeeds adds small documents only: Go's minimizer is quadratic in the
// input size, so large seeds (the real AWS-RunShellScript, testdata) make
// workers spend whole minutes minimizing instead of fuzzing. The unit tests
// cover the large documents.
func addSeeds(f *testing.F) {
	for _, s := range []string{
		`{"schemaVersion":"1.2","parameters":{"commands":{"type":"StringList","minItems":1},"t":{"type":"String","default":"3600","allowedPattern":"[1-9][0-9]{0,4}"}},"runtimeConfig":{"aws:runShellScript":{"properties":[{"id":"0.aws:runShellScript","runCommand":"{{ commands }}","timeoutSeconds":"{{ t }}"}]}}}`,
		"schemaVersion: '2.2'\nmainSteps:\n  - {action: aws:runShellScript, name: s, inputs: {runCommand: ['{{ a }}', 'x {{a}}'], timeoutSeconds: '{{ a }}'}}\nparameters:\n  a: {type: StringList, default: [x, '$$y']}\n",
		"schemaVersion: '2.2'\nparameters:\n  m: {type: String, default: hi, interpolationType: ENV_VAR}\nmainSteps:\n  - {action: aws:runShellScript, name: s, precondition: {StringEquals: ['{{ m }}', hi]}, inputs: {runCommand: 'echo {{ m }}'}}\n",
		"schemaVersion: '2.2'\nparameters:\n  i: {type: String, default: '{\"url\":\"http://h/p\"}'}\nmainSteps:\n  - {action: aws:downloadContent, name: d, inputs: {sourceType: HTTP, sourceInfo: '{{ i }}'}}\n  - {action: aws:runDocument, name: r, inputs: {documentType: LocalPath, documentPath: p, documentParameters: {a: [1]}}}\n",
		"a: &a [1]\nb: *a\n",
		"{\"schemaVersion\": \"2.0\", \"mainSteps\": [{\"action\": \"aws:runShellScript\", \"name\": \"x\", \"inputs\": {\"runCommand\": [\"ls\"]}}]}",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
		"schemaVersion: 2.2\nx: !!float .nan\n",
	} {
		f.Add([]byte(s))
	}
}

// FuzzParse feeds arbitrary content through the whole pipeline: Parse,
// Resolve with defaults, Render on each platform, ExecutionTimeout, and the
// JSON trip to the agent. Nothing may panic; errors must be typed.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, content []byte) {
		// FormatAuto covers both decoders (JSON first for "{", YAML
		// otherwise or as the fallback); one format per exec keeps execs
		// cheap.
		for _, format := range []Format{FormatAuto} {
			d, err := Parse(content, format)
			if err != nil {
				if !errors.Is(err, ErrInvalidDocument) {
					t.Fatalf("Parse error %v does not match ErrInvalidDocument", err)
				}
				continue
			}
			if d.SchemaVersion != Schema12 && d.SchemaVersion != Schema20 && d.SchemaVersion != Schema22 {
				t.Fatalf("accepted schema %q", d.SchemaVersion)
			}
			if len(d.MainSteps) == 0 || len(d.MainSteps) > MaxSteps {
				t.Fatalf("accepted %d steps", len(d.MainSteps))
			}
			// Every declared parameter gets its default or a fixed value.
			given := map[string][]string{}
			for name, p := range d.Parameters {
				if p.Default == nil {
					given[name] = []string{"v"}
				}
			}
			vals, err := Resolve(d, given)
			if err != nil {
				if !errors.Is(err, ErrInvalidParameters) {
					t.Fatalf("Resolve error %v is not a ParamError", err)
				}
				continue
			}
			_ = ExecutionTimeout(d, vals)
			for _, platform := range []string{PlatformLinux, PlatformWindows} {
				steps, err := Render(d, vals, platform)
				if err != nil {
					if !errors.Is(err, ErrInvalidDocument) && !errors.Is(err, ErrIncompatiblePlatform) && !errors.Is(err, ErrInvalidParameters) {
						t.Fatalf("Render error %v is untyped", err)
					}
					continue
				}
				b, err := json.Marshal(steps)
				if err != nil {
					t.Fatalf("marshal steps: %v", err)
				}
				var back []Step
				if err := json.Unmarshal(b, &back); err != nil {
					t.Fatalf("unmarshal steps: %v", err)
				}
				for i, s := range back {
					if s.Skipped {
						continue
					}
					var err error
					switch s.Action {
					case ActionRunShellScript:
						var a, b ShellInputs
						if a, err = steps[i].Shell(); err == nil {
							if b, err = s.Shell(); err == nil && !reflect.DeepEqual(a, b) {
								t.Fatalf("shell inputs changed over JSON: %+v vs %+v", a, b)
							}
						}
					case ActionRunDocument:
						_, err = s.RunDocument()
					case ActionDownloadContent:
						_, err = s.Download()
					}
					if err != nil {
						t.Fatalf("rendered step %q does not read back: %v", s.Name, err)
					}
				}
			}
		}
	})
}

// FuzzInterpolate checks the substitution rules on arbitrary templates and
// values: no panic, bounded output, single pass, and text without "{{" is
// untouched.
func FuzzInterpolate(f *testing.F) {
	for _, s := range [][3]string{
		{"{{ s }}", "a", "b"},
		{"x {{ l }} y {{s}}", "{{ s }}", "$$"},
		{"{{ l }}", "a", "b"},
		{"{{{{ s }}}}", "}}", "{{"},
		{"{{ ssm:/a }}", "a", "b"},
		{"{{ nope }} {{.Names}}", "a", "b"},
		{"{{ e }} and {{e}}", "$(id)", "b"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, tmpl, a, b string) {
		params := map[string]Value{"s": StringValue(a), "l": ListValue(a, b), "e": StringValue(b)}
		input := map[string]any{"x": tmpl, "y": []any{tmpl, []any{tmpl}}}
		out, err := Interpolate(input, params)
		if err != nil {
			if !strings.Contains(tmpl, "{{") {
				t.Fatalf("error without placeholders: %v", err)
			}
			return
		}
		if _, err := json.Marshal(out); err != nil {
			t.Fatalf("output does not marshal: %v", err)
		}
		x := out.(map[string]any)["x"]
		if !strings.Contains(tmpl, "{{") && x != tmpl {
			t.Fatalf("text without placeholders changed: %q → %#v", tmpl, x)
		}
		// Single pass: interpolating a lone placeholder yields the value
		// itself, whatever it contains.
		if got, err := Interpolate("{{ s }}", params); err != nil || got != a {
			t.Fatalf("exact placeholder = %#v, %v; want %q", got, err, a)
		}
		// Splicing a String whose value has no "$$" yields exactly the value.
		if !strings.Contains(a, "$$") {
			if got, err := Interpolate("<{{ s }}>", params); err != nil || got != "<"+a+">" {
				t.Fatalf("splice = %#v, %v; want %q", got, err, "<"+a+">")
			}
		}
		// Shell context with ENV_VAR: the value never appears in runCommand.
		in := &interpolator{vals: map[string]Value{"s": StringValue(a), "e": StringValue(b)}, envVar: map[string]bool{"e": true}}
		sh, err := in.value([]any{tmpl}, 1, true)
		if err != nil {
			return
		}
		cmds, err := FlattenCommands(sh)
		if err != nil {
			t.Fatalf("flatten: %v", err)
		}
		if len(b) > 8 && !strings.Contains(tmpl, b) && !strings.Contains(a, b) {
			for _, c := range cmds {
				if strings.Contains(c, b) {
					t.Fatalf("ENV_VAR value %q spliced into %q", b, c)
				}
			}
		}
		if sz := len(strings.Join(cmds, "")); sz > MaxRenderedBytes {
			t.Fatalf("output %d bytes over the bound", sz)
		}
	})
}
