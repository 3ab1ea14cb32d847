package document_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/fleetops/fleetops/internal/document"
)

func TestInterpolate(t *testing.T) {
	params := map[string]document.Value{
		"commands": document.ListValue("echo a", "echo b"),
		"name":     document.StringValue("world"),
		"nested":   document.StringValue("{{ name }}"),
		"dollar":   document.StringValue("cost $$5 $HOME"),
		"html":     document.ListValue("a > b && c"),
	}
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"exact placeholder keeps list type", "{{ commands }}", []any{"echo a", "echo b"}},
		{"exact placeholder without spaces", "{{commands}}", []any{"echo a", "echo b"}},
		{"exact placeholder with tabs and newlines", "{{\t commands\n}}", []any{"echo a", "echo b"}},
		{"list element nests", []any{"{{ commands }}", "ls"}, []any{[]any{"echo a", "echo b"}, "ls"}},
		{"exact String", "{{ name }}", "world"},
		{"splice String", "hello {{ name }}!", "hello world!"},
		{"splice list as JSON", "run {{ commands }}", `run ["echo a","echo b"]`},
		{"splice JSON like encoding/json", "x{{ html }}", `x["a \u003e b \u0026\u0026 c"]`},
		{"several placeholders", "{{name}}-{{ name }}", "world-world"},
		{"single pass", "say {{ nested }}", "say {{ name }}"},
		{"single pass exact", "{{ nested }}", "{{ name }}"},
		{"$$ becomes $ when spliced", "echo {{ dollar }}", "echo cost $5 $HOME"},
		{"exact value kept verbatim", "{{ dollar }}", "cost $$5 $HOME"},
		{"undeclared left alone", "{{ other }} and {{ name }}", "{{ other }} and world"},
		{"go template left alone", "docker ps --format '{{.Names}}'", "docker ps --format '{{.Names}}'"},
		{"maps", map[string]any{"k": "{{ name }}", "n": json.Number("3")}, map[string]any{"k": "world", "n": json.Number("3")}},
		{"no placeholder", "plain", "plain"},
		{"unterminated", "{{ name ", "{{ name "},
		{"triple braces", "{{{ name }}}", "{world}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := document.Interpolate(tt.in, params)
			if err != nil {
				t.Fatalf("Interpolate: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestInterpolateErrors(t *testing.T) {
	params := map[string]document.Value{"big": document.StringValue(strings.Repeat("x", 60*1024))}
	if _, err := document.Interpolate("{{ ssm:/db/pass }}", params); err == nil || !strings.Contains(err.Error(), "Parameter Store") {
		t.Errorf("ssm reference: err = %v", err)
	}
	if _, err := document.Interpolate("a {{ssm-secure:x}}", params); err == nil {
		t.Errorf("ssm-secure reference accepted")
	}
	// 64 KB of placeholders × 60 KB values must not expand to gigabytes.
	in := strings.Repeat("{{big}}", 9000)
	if _, err := document.Interpolate(in, params); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("expansion bomb: err = %v", err)
	}
}

func TestFlattenCommands(t *testing.T) {
	got, err := document.FlattenCommands([]any{"a", []any{"b", "c"}, "d"})
	if err != nil || !reflect.DeepEqual(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("got %v, %v", got, err)
	}
	got, err = document.FlattenCommands("one\ntwo")
	if err != nil || !reflect.DeepEqual(got, []string{"one\ntwo"}) {
		t.Errorf("got %v, %v", got, err)
	}
	if _, err := document.FlattenCommands([]any{"a", json.Number("1")}); err == nil {
		t.Errorf("number accepted as a command")
	}
}

func render(t *testing.T, d *document.Document, given map[string][]string, platform string) []document.Step {
	t.Helper()
	vals, err := document.Resolve(d, given)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	steps, err := document.Render(d, vals, platform)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return steps
}

func TestRenderAWSRunShellScript(t *testing.T) {
	d, err := document.Builtin(document.RunShellScript)
	if err != nil {
		t.Fatal(err)
	}
	steps := render(t, d, map[string][]string{"commands": {"echo hello", "uname -a"}, "executionTimeout": {"600"}}, "Linux")
	if len(steps) != 1 {
		t.Fatalf("steps = %d", len(steps))
	}
	st := steps[0]
	if st.Action != "aws:runShellScript" || st.Name != "aws:runShellScript" || st.Skipped {
		t.Errorf("step = %+v", st)
	}
	sh, err := st.Shell()
	if err != nil {
		t.Fatal(err)
	}
	want := document.ShellInputs{Commands: []string{"echo hello", "uname -a"}, WorkingDirectory: "", TimeoutSeconds: 600}
	if !reflect.DeepEqual(sh, want) {
		t.Errorf("shell = %+v, want %+v", sh, want)
	}
	// The step survives the trip to the agent.
	b, err := json.Marshal(steps)
	if err != nil {
		t.Fatal(err)
	}
	var back []document.Step
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	sh2, err := back[0].Shell()
	if err != nil || !reflect.DeepEqual(sh2, want) {
		t.Errorf("after JSON: %+v, %v; want %+v", sh2, err, want)
	}
	if _, err := back[0].Download(); err == nil {
		t.Errorf("Download on a shell step succeeded")
	}

	// Schema 1.2: a step that cannot run on the platform is an error.
	vals, _ := document.Resolve(d, map[string][]string{"commands": {"ls"}})
	if _, err := document.Render(d, vals, "Windows"); !errors.Is(err, document.ErrIncompatiblePlatform) {
		t.Errorf("Windows: err = %v, want ErrIncompatiblePlatform", err)
	}
}

func TestExecutionTimeout(t *testing.T) {
	d, err := document.Builtin(document.RunShellScript)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		given map[string][]string
		want  int
	}{
		{map[string][]string{"commands": {"ls"}}, 3600},
		{map[string][]string{"commands": {"ls"}, "executionTimeout": {"600"}}, 600},
		{map[string][]string{"commands": {"ls"}, "executionTimeout": {"172800"}}, 172800},
	} {
		vals, err := document.Resolve(d, tt.given)
		if err != nil {
			t.Fatal(err)
		}
		if got := document.ExecutionTimeout(d, vals); got != tt.want {
			t.Errorf("ExecutionTimeout(%v) = %d, want %d", tt.given, got, tt.want)
		}
	}
	multi := mustParse(t, `schemaVersion: '2.2'
mainSteps:
  - {action: aws:runShellScript, name: a, inputs: {runCommand: ls, timeoutSeconds: 100}}
  - {action: aws:runShellScript, name: b, inputs: {runCommand: ls, timeoutSeconds: '4'}}
  - {action: aws:runShellScript, name: c, inputs: {runCommand: ls}}
  - {action: aws:downloadContent, name: d, inputs: {sourceType: HTTP, sourceInfo: {url: 'http://x/y'}}}
`)
	if got, want := document.ExecutionTimeout(multi, nil), 100+3600+3600+3600; got != want {
		t.Errorf("sum = %d, want %d", got, want)
	}
	noop, err := document.Builtin(document.Noop)
	if err != nil {
		t.Fatal(err)
	}
	if got := document.ExecutionTimeout(noop, nil); got != 0 {
		t.Errorf("noop timeout = %d", got)
	}
}

func TestTimeoutRule(t *testing.T) {
	for _, tt := range []struct {
		in   any
		want int
	}{
		{"600", 600}, {"5", 5}, {"4", 3600}, {"172800", 172800}, {"172801", 3600}, {"", 3600},
		{"abc", 3600}, {float64(30), 30}, {json.Number("30"), 30}, {30.5, 3600}, {nil, 3600}, {true, 3600},
	} {
		st := document.Step{Action: "aws:runShellScript", Name: "s", Inputs: map[string]any{"runCommand": "ls", "timeoutSeconds": tt.in}}
		sh, err := st.Shell()
		if err != nil {
			t.Fatal(err)
		}
		if sh.TimeoutSeconds != tt.want {
			t.Errorf("timeoutSeconds %#v → %d, want %d", tt.in, sh.TimeoutSeconds, tt.want)
		}
	}
}

func TestRenderPreconditions(t *testing.T) {
	d := mustParse(t, string(readTestdata(t, "install-22.yaml")))
	tests := []struct {
		platform    string
		mode        string
		wantSkipped []bool
	}{
		{"Linux", "quick", []bool{false, true, false}},
		{"Linux", "full", []bool{false, false, false}},
		{"Windows", "full", []bool{true, true, false}}, // shell steps skipped: precondition, then plugin support
		{"MacOS", "full", []bool{true, false, false}},
	}
	for _, tt := range tests {
		steps := render(t, d, map[string][]string{"packageName": {"nginx"}, "mode": {tt.mode}, "extraCommands": {"nginx -v", "echo $$PATH"}}, tt.platform)
		var skipped []bool
		for _, s := range steps {
			skipped = append(skipped, s.Skipped)
			if s.Skipped && s.Inputs != nil {
				t.Errorf("skipped step %s has inputs", s.Name)
			}
		}
		if !reflect.DeepEqual(skipped, tt.wantSkipped) {
			t.Errorf("%s/%s: skipped = %v, want %v", tt.platform, tt.mode, skipped, tt.wantSkipped)
		}
		if tt.platform == "Linux" {
			sh, err := steps[0].Shell()
			if err != nil {
				t.Fatal(err)
			}
			want := document.ShellInputs{
				Commands:       []string{"apt-get install -y nginx", "nginx -v", "echo $$PATH", "docker ps --format '{{.Names}}'"},
				TimeoutSeconds: 600,
			}
			if !reflect.DeepEqual(sh, want) {
				t.Errorf("shell = %+v, want %+v", sh, want)
			}
		}
		dl, err := steps[2].Download()
		if err != nil {
			t.Fatal(err)
		}
		if dl.URL != "https://example.com/nginx.sh" || dl.DestinationPath != "/tmp/nginx" {
			t.Errorf("download = %+v", dl)
		}
	}

	// Schema 2.0: plugin incompatibility is an error instead of a skip.
	d20 := mustParse(t, "schemaVersion: '2.0'\nmainSteps:\n  - {action: aws:runShellScript, name: s, inputs: {runCommand: ls}}\n")
	if _, err := document.Render(d20, map[string]document.Value{}, "Windows"); !errors.Is(err, document.ErrIncompatiblePlatform) {
		t.Errorf("2.0 on Windows: err = %v", err)
	}
	if ok, err := d20.MainSteps[0].AppliesTo("Linux", nil); !ok || err != nil {
		t.Errorf("AppliesTo(Linux) = %v, %v", ok, err)
	}
	if _, err := d20.MainSteps[0].AppliesTo("Solaris", nil); err == nil {
		t.Errorf("unknown platform accepted")
	}
}

func TestRenderEnvVar(t *testing.T) {
	d := mustParse(t, `schemaVersion: '2.2'
parameters:
  msg:
    type: String
    interpolationType: ENV_VAR
    allowedPattern: '[^"]*'
  dir:
    type: String
    interpolationType: ENV_VAR
    default: /srv
mainSteps:
  - action: aws:runShellScript
    name: say
    inputs:
      workingDirectory: '{{ dir }}'
      runCommand:
        - echo {{ msg }}
        - '{{ msg }}'
  - action: aws:downloadContent
    name: get
    inputs:
      sourceType: HTTP
      sourceInfo: {url: 'https://example.com/?q={{ msg }}'}
`)
	evil := "x; rm -rf / $(id) `id`"
	steps := render(t, d, map[string][]string{"msg": {evil}}, "Linux")
	sh, err := steps[0].Shell()
	if err != nil {
		t.Fatal(err)
	}
	want := document.ShellInputs{Commands: []string{`echo "${SSM_msg}"`, `"${SSM_msg}"`}, WorkingDirectory: "/srv", TimeoutSeconds: 3600}
	if !reflect.DeepEqual(sh, want) {
		t.Errorf("shell = %+v, want %+v", sh, want)
	}
	if wantEnv := map[string]string{"SSM_msg": evil, "SSM_dir": "/srv"}; !reflect.DeepEqual(steps[0].Env, wantEnv) {
		t.Errorf("env = %v, want %v", steps[0].Env, wantEnv)
	}
	if steps[1].Env != nil {
		t.Errorf("non-shell step got env %v", steps[1].Env)
	}
	// Outside runCommand the value is substituted as text.
	if dl, _ := steps[1].Download(); dl.URL != "https://example.com/?q="+evil {
		t.Errorf("url = %q", dl.URL)
	}
	// allowedPattern still applies to ENV_VAR parameters.
	if _, err := document.Resolve(d, map[string][]string{"msg": {`say "hi"`}}); err == nil {
		t.Errorf("allowedPattern ignored for ENV_VAR")
	}
}

func TestRenderOtherActions(t *testing.T) {
	d := mustParse(t, `schemaVersion: '2.2'
parameters:
  info: {type: String, default: '{"name": "AWS-RunShellScript:$LATEST"}'}
  cmds: {type: StringList, default: [ls]}
mainSteps:
  - action: aws:runDocument
    name: nested
    inputs:
      documentType: SSMDocument
      documentPath: MyDoc:3
      documentParameters: '{"commands": {{ cmds }}}'
  - action: aws:downloadContent
    name: get
    inputs:
      sourceType: SSMDocument
      sourceInfo: '{{ info }}'
`)
	steps := render(t, d, map[string][]string{"cmds": {"echo 1", "echo 2"}}, "Windows")
	rd, err := steps[0].RunDocument()
	if err != nil {
		t.Fatal(err)
	}
	if rd.DocumentType != "SSMDocument" || rd.DocumentPath != "MyDoc:3" || !reflect.DeepEqual(rd.DocumentParameters, map[string]any{"commands": []any{"echo 1", "echo 2"}}) {
		t.Errorf("runDocument = %+v", rd)
	}
	dl, err := steps[1].Download()
	if err != nil {
		t.Fatal(err)
	}
	if dl.DocumentName != "AWS-RunShellScript" || dl.DocumentVersion != "$LATEST" {
		t.Errorf("download = %+v", dl)
	}
	// A parameter that turns sourceInfo into garbage fails at Render.
	vals, _ := document.Resolve(d, map[string][]string{"info": {"not json"}})
	_, err = document.Render(d, vals, "Linux")
	if !errors.Is(err, document.ErrInvalidDocument) || !strings.Contains(err.Error(), `step "get"`) {
		t.Errorf("err = %v", err)
	}
}

func TestRenderNoop(t *testing.T) {
	d, err := document.Builtin(document.Noop)
	if err != nil {
		t.Fatal(err)
	}
	steps := render(t, d, nil, "Windows")
	if len(steps) != 1 || steps[0].Action != document.ActionNoop || steps[0].Skipped {
		t.Errorf("steps = %+v", steps)
	}
}

func TestRenderChecksParams(t *testing.T) {
	d, err := document.Builtin(document.RunShellScript)
	if err != nil {
		t.Fatal(err)
	}
	var pe *document.ParamError
	_, err = document.Render(d, map[string]document.Value{}, "Linux")
	if !errors.As(err, &pe) {
		t.Errorf("missing values: err = %v", err)
	}
	_, err = document.Render(d, map[string]document.Value{
		"commands": document.StringValue("ls"), "workingDirectory": document.StringValue(""), "executionTimeout": document.StringValue("1"),
	}, "Linux")
	if !errors.As(err, &pe) || pe.Param != "commands" {
		t.Errorf("mistyped value: err = %v", err)
	}
	if _, err := document.Render(nil, nil, "Linux"); err == nil {
		t.Errorf("nil document accepted")
	}
}
