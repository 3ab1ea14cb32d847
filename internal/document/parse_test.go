package document_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fleetops/fleetops/internal/document"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read testdata: %v", err)
	}
	return b
}

func mustParse(t testing.TB, content string) *document.Document {
	t.Helper()
	d, err := document.Parse([]byte(content), document.FormatAuto)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

func TestParseValid(t *testing.T) {
	yamlDoc := readTestdata(t, "install-22.yaml")
	jsonDoc := readTestdata(t, "install-22.json")
	tests := []struct {
		name    string
		content []byte
		format  document.Format
	}{
		{"2.2 YAML", yamlDoc, document.FormatYAML},
		{"2.2 YAML auto", yamlDoc, document.FormatAuto},
		{"2.2 JSON", jsonDoc, document.FormatJSON},
		{"2.2 JSON auto", jsonDoc, document.FormatAuto},
		{"2.2 JSON read as YAML", jsonDoc, document.FormatYAML},
	}
	var first *document.Document
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := document.Parse(tt.content, tt.format)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got, want := d.SchemaVersion, "2.2"; got != want {
				t.Errorf("schemaVersion = %q, want %q", got, want)
			}
			if got, want := d.ParameterNames(), []string{"extraCommands", "mode", "packageName", "timeout"}; !reflect.DeepEqual(got, want) {
				t.Errorf("parameters = %v, want %v", got, want)
			}
			if !d.Parameters["packageName"].Required() || d.Parameters["mode"].Required() {
				t.Errorf("required flags wrong")
			}
			var names []string
			for _, s := range d.MainSteps {
				names = append(names, s.Name)
			}
			if want := []string{"installLinux", "fullCheck", "fetch"}; !reflect.DeepEqual(names, want) {
				t.Errorf("steps = %v, want %v", names, want)
			}
			if got := d.MainSteps[1].OnFailure; got != "exit" {
				t.Errorf("onFailure = %q, want exit", got)
			}
			if _, ok := d.MainSteps[1].Inputs["onFailure"]; ok {
				t.Errorf("shared input onFailure left in Inputs")
			}
			if got, want := *d.MainSteps[0].Precondition, (document.Precondition{Left: "platformType", Right: "Linux"}); got != want {
				t.Errorf("precondition = %+v, want %+v", got, want)
			}
			// YAML and JSON give the same document.
			if first == nil {
				first = d
			} else if !reflect.DeepEqual(first.MainSteps, d.MainSteps) {
				t.Errorf("steps differ from the first format's:\n got %#v\nwant %#v", d.MainSteps, first.MainSteps)
			}
		})
	}
}

func TestParseAWSRunShellScript(t *testing.T) {
	// AWS's own document (schema 1.2, runtimeConfig) loads through the
	// ordinary Parse, unchanged.
	content := document.Builtins()[document.RunShellScript]
	d, err := document.Parse(content, document.FormatJSON)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if d.SchemaVersion != "1.2" || len(d.MainSteps) != 1 {
		t.Fatalf("got schema %s with %d steps", d.SchemaVersion, len(d.MainSteps))
	}
	s := d.MainSteps[0]
	if s.Action != "aws:runShellScript" || s.Name != "aws:runShellScript" || s.ID != "0.aws:runShellScript" {
		t.Errorf("step = %+v", s)
	}
	want := map[string]any{"runCommand": "{{ commands }}", "workingDirectory": "{{ workingDirectory }}", "timeoutSeconds": "{{ executionTimeout }}"}
	if !reflect.DeepEqual(s.Inputs, want) {
		t.Errorf("inputs = %v, want %v", s.Inputs, want)
	}
	p := d.Parameters["executionTimeout"]
	if p.Default == nil || p.Default.Text != "3600" || p.AllowedPattern == "" {
		t.Errorf("executionTimeout = %+v", p)
	}
	if c := d.Parameters["commands"]; c.Type != document.TypeStringList || *c.MinItems != 1 || c.DisplayType != "textarea" || !c.Required() {
		t.Errorf("commands = %+v", c)
	}
	if w := d.Parameters["workingDirectory"]; *w.MaxChars != 4096 || w.Default == nil || w.Default.Text != "" {
		t.Errorf("workingDirectory = %+v", w)
	}
}

func TestParseErrors(t *testing.T) {
	const step = "mainSteps:\n  - action: aws:runShellScript\n    name: s1\n    inputs:\n      runCommand: [echo]\n"
	tests := []struct {
		name    string
		content string
		want    string // substring of the error
	}{
		{"unknown action", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runMagic\n    name: wizard\n", `step "wizard": unknown action "aws:runMagic"`},
		{"duplicate step names", "schemaVersion: '2.2'\n" + step + "  - action: aws:runShellScript\n    name: s1\n    inputs: {runCommand: [ls]}\n", `duplicate step name "s1"`},
		{"bad step name", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runShellScript\n    name: 'has space'\n    inputs: {runCommand: [ls]}\n", "mainSteps[0].name"},
		{"missing step name", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runShellScript\n    inputs: {runCommand: [ls]}\n", "mainSteps[0].name"},
		{"Integer parameter", "schemaVersion: '2.2'\nparameters:\n  n: {type: Integer}\n" + step, "Integer parameters are not allowed in Command documents"},
		{"unknown parameter type", "schemaVersion: '2.2'\nparameters:\n  n: {type: Strin}\n" + step, `unknown type "Strin"`},
		{"missing parameter type", "schemaVersion: '2.2'\nparameters:\n  n: {default: x}\n" + step, "parameters.n.type"},
		{"bad parameter name", "schemaVersion: '2.2'\nparameters:\n  my-param: {type: String}\n" + step, "parameter names must match"},
		{"unknown parameter key", "schemaVersion: '2.2'\nparameters:\n  p: {type: String, requried: true}\n" + step, `unknown key "requried"`},
		{"minItems on String", "schemaVersion: '2.2'\nparameters:\n  p: {type: String, minItems: 1}\n" + step, "applies to StringList parameters only"},
		{"negative maxChars", "schemaVersion: '2.2'\nparameters:\n  p: {type: String, maxChars: -1}\n" + step, "non-negative integer"},
		{"min above max", "schemaVersion: '2.2'\nparameters:\n  p: {type: StringList, minItems: 3, maxItems: 2}\n" + step, "minItems is greater than maxItems"},
		{"Java-only pattern", "schemaVersion: '2.2'\nparameters:\n  p: {type: String, allowedPattern: '(?=a)a'}\n" + step, "not a valid Go (RE2) regular expression"},
		{"default not allowed", "schemaVersion: '2.2'\nparameters:\n  p: {type: String, default: c, allowedValues: [a, b]}\n" + step, "parameters.p.default"},
		{"bad displayType", "schemaVersion: '2.2'\nparameters:\n  p: {type: String, displayType: big}\n" + step, "textfield or textarea"},
		{"ENV_VAR on StringList", "schemaVersion: '2.2'\nparameters:\n  p: {type: StringList, interpolationType: ENV_VAR}\n" + step, "String parameters only"},
		{"automation schema", "schemaVersion: '0.3'\n" + step, "Automation schema"},
		{"unknown schema", "schemaVersion: '9.9'\n" + step, "unsupported schema version"},
		{"missing schema", step, "schemaVersion: is required"},
		{"no mainSteps", "schemaVersion: '2.2'\n", "mainSteps: is required"},
		{"empty mainSteps", "schemaVersion: '2.2'\nmainSteps: []\n", "non-empty list"},
		{"runtimeConfig in 2.2", "schemaVersion: '2.2'\nruntimeConfig: {}\n" + step, "runtimeConfig belongs to schema 1.2"},
		{"mainSteps in 1.2", "schemaVersion: '1.2'\n" + step, "schema 1.2 uses runtimeConfig"},
		{"unknown top-level key", "schemaVersion: '2.2'\nassumeRole: x\n" + step, `unknown top-level key "assumeRole"`},
		{"precondition in 2.0", "schemaVersion: '2.0'\nmainSteps:\n  - action: aws:runShellScript\n    name: s\n    precondition: {StringEquals: [platformType, Linux]}\n    inputs: {runCommand: [ls]}\n", "precondition requires schemaVersion 2.2"},
		{"precondition bad platform", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runShellScript\n    name: s\n    precondition: {StringEquals: [platformType, linux]}\n    inputs: {runCommand: [ls]}\n", "Linux, MacOS or Windows"},
		{"precondition bad operator", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runShellScript\n    name: s\n    precondition: {StringLike: [platformType, Linux]}\n    inputs: {runCommand: [ls]}\n", "only StringEquals"},
		{"precondition undeclared param", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runShellScript\n    name: s\n    precondition: {StringEquals: ['{{ os }}', Linux]}\n    inputs: {runCommand: [ls]}\n", `parameter "os" is not declared`},
		{"internal action in user document", "schemaVersion: '2.2'\nmainSteps:\n  - action: fleetops:noop\n    name: n\n", "reserved for built-in documents"},
		{"unknown input", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runShellScript\n    name: s\n    inputs: {commands: [ls]}\n", `step "s" (aws:runShellScript): unknown input "commands"`},
		{"missing runCommand", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runShellScript\n    name: s\n    inputs: {workingDirectory: /tmp}\n", `"runCommand" is required`},
		{"runCommand of numbers", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runShellScript\n    name: s\n    inputs: {runCommand: [1]}\n", "runCommand[0] must be a string"},
		{"literal bad timeout", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runShellScript\n    name: s\n    inputs: {runCommand: [ls], timeoutSeconds: soon}\n", "must be an integer"},
		{"StringList into a string input", "schemaVersion: '2.2'\nparameters:\n  c: {type: StringList}\nmainSteps:\n  - action: aws:runShellScript\n    name: s\n    inputs: {runCommand: [ls], workingDirectory: '{{ c }}'}\n", `parameter "c" is a StringList`},
		{"bad onFailure", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runShellScript\n    name: s\n    inputs: {runCommand: [ls], onFailure: retry}\n", "onFailure must be exit or successAndExit"},
		{"finallyStep not last", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runShellScript\n    name: a\n    inputs: {runCommand: [ls], finallyStep: true}\n  - action: aws:runShellScript\n    name: b\n    inputs: {runCommand: [ls]}\n", "last step only"},
		{"parameter store reference", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runShellScript\n    name: s\n    inputs: {runCommand: ['echo {{ ssm:/db/password }}']}\n", "unsupported Parameter Store reference"},
		{"parameter store default", "schemaVersion: '2.2'\nparameters:\n  p: {type: String, default: '{{ssm:x}}'}\n" + step, "Parameter Store references"},
		{"S3 download", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:downloadContent\n    name: d\n    inputs: {sourceType: S3, sourceInfo: {path: 'https://b.s3/x'}}\n", "sourceType S3 is not supported"},
		{"HTTP without url", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:downloadContent\n    name: d\n    inputs: {sourceType: HTTP, sourceInfo: {path: x}}\n", "sourceInfo.url is required"},
		{"HTTP bad url", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:downloadContent\n    name: d\n    inputs: {sourceType: HTTP, sourceInfo: '{\"url\": \"file:///etc/passwd\"}'}\n", "not an http(s) URL"},
		{"sourceInfo not JSON", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:downloadContent\n    name: d\n    inputs: {sourceType: HTTP, sourceInfo: 'url=x'}\n", "JSON object string"},
		{"SSMDocument bad version", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:downloadContent\n    name: d\n    inputs: {sourceType: SSMDocument, sourceInfo: {name: 'MyDoc:latest'}}\n", "must be a number, $LATEST or $DEFAULT"},
		{"runDocument bad type", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runDocument\n    name: r\n    inputs: {documentType: S3, documentPath: x}\n", "SSMDocument or LocalPath"},
		{"runDocument missing path", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runDocument\n    name: r\n    inputs: {documentType: LocalPath}\n", `"documentPath" is required`},
		{"YAML alias", "schemaVersion: &v '2.2'\ndescription: *v\n" + step, "aliases are not supported"},
		{"YAML merge key", "schemaVersion: '2.2'\nparameters:\n  p:\n    <<: {type: String}\n" + step, "merge keys"},
		{"YAML duplicate key", "schemaVersion: '2.2'\nschemaVersion: '2.2'\n" + step, `duplicate key "schemaVersion"`},
		{"JSON duplicate key", `{"schemaVersion": "2.2", "schemaVersion": "2.2", "mainSteps": []}`, `duplicate key "schemaVersion"`},
		{"two YAML documents", "schemaVersion: '2.2'\n" + step + "---\nfoo: bar\n", "more than one YAML document"},
		{"custom YAML tag", "schemaVersion: !!binary aGVsbG8=\n" + step, "unsupported YAML tag"},
		{"not a map", "- a\n- b\n", "top level must be a map"},
		{"empty", "", "empty document"},
		{"invalid JSON", `{"schemaVersion": "2.2",`, "invalid"},
		{"deep nesting", "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runDocument\n    name: r\n    inputs: {documentType: LocalPath, documentPath: x, documentParameters: " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "}\n", "nesting deeper than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := document.Parse([]byte(tt.content), document.FormatAuto)
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tt.want)
			}
			if !errors.Is(err, document.ErrInvalidDocument) {
				t.Errorf("error %v does not match ErrInvalidDocument", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseOversize(t *testing.T) {
	content := "schemaVersion: '2.2'\ndescription: " + strings.Repeat("x", document.MaxDocumentBytes) + "\n"
	_, err := document.Parse([]byte(content), document.FormatYAML)
	if !errors.Is(err, document.ErrDocumentTooLarge) || !errors.Is(err, document.ErrInvalidDocument) {
		t.Fatalf("err = %v, want ErrDocumentTooLarge and ErrInvalidDocument", err)
	}
}

func TestParseTooManySteps(t *testing.T) {
	var b strings.Builder
	b.WriteString("schemaVersion: '2.2'\nmainSteps:\n")
	for i := 0; i <= document.MaxSteps; i++ {
		b.WriteString("  - {action: aws:runShellScript, name: s" + strings.Repeat("x", i) + ", inputs: {runCommand: [ls]}}\n")
	}
	_, err := document.Parse([]byte(b.String()), document.FormatYAML)
	if err == nil || !strings.Contains(err.Error(), "the limit is 100") {
		t.Fatalf("err = %v, want the step limit", err)
	}
}

func TestParseBillionLaughs(t *testing.T) {
	content := `schemaVersion: '2.2'
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
mainSteps: *i
`
	_, err := document.Parse([]byte(content), document.FormatYAML)
	if err == nil || !strings.Contains(err.Error(), "aliases are not supported") {
		t.Fatalf("err = %v, want aliases rejected", err)
	}
}

func TestParseLenientScalars(t *testing.T) {
	// Unquoted YAML numbers where SSM expects strings are taken as text.
	d := mustParse(t, `schemaVersion: 2.2
parameters:
  timeout:
    type: String
    default: 600
mainSteps:
  - action: aws:runShellScript
    name: s
    inputs:
      runCommand: ls
      timeoutSeconds: 30
`)
	if d.SchemaVersion != "2.2" || d.Parameters["timeout"].Default.Text != "600" {
		t.Errorf("got schema %q default %+v", d.SchemaVersion, d.Parameters["timeout"].Default)
	}
}

func TestParseOtherActions(t *testing.T) {
	d := mustParse(t, `schemaVersion: '2.2'
parameters:
  info: {type: String, default: '{"name": "AWS-RunShellScript:$LATEST"}'}
mainSteps:
  - action: aws:runDocument
    name: nested
    inputs:
      documentType: SSMDocument
      documentPath: MyDoc:3
      documentParameters: '{"commands": ["echo hi"]}'
  - action: aws:runDocument
    name: local
    inputs:
      documentType: LocalPath
      documentPath: docs/run.json
      documentParameters: {commands: [ls]}
  - action: aws:downloadContent
    name: get
    inputs:
      sourceType: SSMDocument
      sourceInfo: '{{ info }}'
      destinationPath: /tmp/doc
`)
	if len(d.MainSteps) != 3 {
		t.Fatalf("steps = %d", len(d.MainSteps))
	}
}

func TestBuiltins(t *testing.T) {
	names := document.BuiltinNames()
	if want := []string{"AWS-RunShellScript", "FleetOps-Noop"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("BuiltinNames = %v, want %v", names, want)
	}
	for _, n := range names {
		if _, err := document.Builtin(n); err != nil {
			t.Errorf("Builtin(%s): %v", n, err)
		}
		if !document.IsBuiltin(n) {
			t.Errorf("IsBuiltin(%s) = false", n)
		}
		if err := document.ValidateName(n, true); err != nil {
			t.Errorf("ValidateName(%s, true): %v", n, err)
		}
	}
	// The no-op action is reserved: the same content fails the user path.
	if _, err := document.Parse(document.Builtins()[document.Noop], document.FormatYAML); err == nil {
		t.Errorf("user Parse accepted fleetops:noop")
	}
	for _, n := range []string{"Nope", "../builtin/AWS-RunShellScript", ""} {
		if _, err := document.Builtin(n); !errors.Is(err, document.ErrUnknownDocument) {
			t.Errorf("Builtin(%q) err = %v, want ErrUnknownDocument", n, err)
		}
	}
	// Builtins returns copies.
	document.Builtins()[document.RunShellScript][0] = 'X'
	if document.Builtins()[document.RunShellScript][0] != '{' {
		t.Errorf("Builtins shares its slices")
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name    string
		builtin bool
		ok      bool
	}{
		{"MyDocument", false, true},
		{"my_doc-1.2", false, true},
		{"abc", false, true},
		{"ab", false, false},
		{strings.Repeat("a", 128), false, true},
		{strings.Repeat("a", 129), false, false},
		{"has space", false, false},
		{"name:1", false, false},
		{"AWS-RunShellScript", false, false},
		{"AWS-RunShellScript", true, true},
		{"awsome-doc", false, false}, // the prefix rule is literal, as in SSM
		{"Amazon-Thing", false, false},
		{"AMZN-x", false, false},
		{"AWSEC2-Foo", false, false},
		{"FleetOps-Mine", false, false},
		{"MyAWSDoc", false, true},
		{"", true, false},
	}
	for _, tt := range tests {
		err := document.ValidateName(tt.name, tt.builtin)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q, %v) = %v, want ok=%v", tt.name, tt.builtin, err, tt.ok)
		}
		if err != nil && !errors.Is(err, document.ErrInvalidName) {
			t.Errorf("ValidateName(%q) error %v does not match ErrInvalidName", tt.name, err)
		}
	}
}
