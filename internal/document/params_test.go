package document_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/fleetops/fleetops/internal/document"
)

const paramsDoc = `schemaVersion: '2.2'
parameters:
  name:
    type: String
    allowedPattern: '[a-z]+'
    minChars: 2
    maxChars: 8
  color:
    type: String
    default: red
    allowedValues: [red, green]
  tags:
    type: StringList
    default: [a]
    minItems: 1
    maxItems: 3
    maxChars: 4
  note:
    type: String
    default: ""
mainSteps:
  - action: aws:runShellScript
    name: s
    inputs: {runCommand: ['echo {{ name }} {{ color }} {{ tags }} {{ note }}']}
`

func TestResolve(t *testing.T) {
	d := mustParse(t, paramsDoc)
	tests := []struct {
		name      string
		given     map[string][]string
		want      map[string]document.Value
		wantParam string // "" when no error is expected
		wantIn    string
	}{
		{
			name:  "defaults",
			given: map[string][]string{"name": {"bob"}},
			want: map[string]document.Value{
				"name": document.StringValue("bob"), "color": document.StringValue("red"),
				"tags": document.ListValue("a"), "note": document.StringValue(""),
			},
		},
		{
			name:  "all given",
			given: map[string][]string{"name": {"alice"}, "color": {"green"}, "tags": {"x", "yy", "zzz"}, "note": {"hi"}},
			want: map[string]document.Value{
				"name": document.StringValue("alice"), "color": document.StringValue("green"),
				"tags": document.ListValue("x", "yy", "zzz"), "note": document.StringValue("hi"),
			},
		},
		{name: "required missing", given: map[string][]string{}, wantParam: "name", wantIn: "required"},
		{name: "unknown", given: map[string][]string{"name": {"bob"}, "colour": {"red"}}, wantParam: "colour", wantIn: "unknown parameter"},
		{name: "String with two values", given: map[string][]string{"name": {"a", "b"}}, wantParam: "name", wantIn: "exactly one value"},
		{name: "String with no value", given: map[string][]string{"name": {}}, wantParam: "name", wantIn: "exactly one value"},
		{name: "allowedValues", given: map[string][]string{"name": {"bob"}, "color": {"blue"}}, wantParam: "color", wantIn: "not one of the allowed values"},
		{name: "allowedPattern", given: map[string][]string{"name": {"Bob"}}, wantParam: "name", wantIn: "does not match the allowed pattern"},
		{name: "allowedPattern is anchored", given: map[string][]string{"name": {"bob;rm"}}, wantParam: "name", wantIn: "does not match"},
		{name: "minChars", given: map[string][]string{"name": {"b"}}, wantParam: "name", wantIn: "at least 2 character"},
		{name: "maxChars", given: map[string][]string{"name": {"abcdefghi"}}, wantParam: "name", wantIn: "at most 8 character"},
		{name: "minItems", given: map[string][]string{"name": {"bob"}, "tags": {}}, wantParam: "tags", wantIn: "at least 1 item"},
		{name: "maxItems", given: map[string][]string{"name": {"bob"}, "tags": {"a", "b", "c", "d"}}, wantParam: "tags", wantIn: "at most 3 item"},
		{name: "maxChars per item", given: map[string][]string{"name": {"bob"}, "tags": {"ok", "toolong"}}, wantParam: "tags", wantIn: "item 1 takes at most 4"},
		{name: "store reference", given: map[string][]string{"name": {"bob"}, "note": {"{{ssm:/x}}"}}, wantParam: "note", wantIn: "Parameter Store"},
		{name: "total size", given: map[string][]string{"name": {"bob"}, "note": {strings.Repeat("x", document.MaxParameterBytes)}}, wantParam: "note", wantIn: "in total"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := document.Resolve(d, tt.given)
			if tt.wantParam == "" {
				if err != nil {
					t.Fatalf("Resolve: %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %#v, want %#v", got, tt.want)
				}
				return
			}
			var pe *document.ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParamError", err)
			}
			if !errors.Is(err, document.ErrInvalidParameters) {
				t.Errorf("err does not match ErrInvalidParameters")
			}
			if pe.Param != tt.wantParam || !strings.Contains(pe.Reason, tt.wantIn) {
				t.Errorf("err = %v, want param %q and reason containing %q", err, tt.wantParam, tt.wantIn)
			}
		})
	}
}

func TestResolveAWSRunShellScriptTimeout(t *testing.T) {
	d, err := document.Builtin(document.RunShellScript)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		timeout string
		ok      bool
	}{
		{"1", true}, {"600", true}, {"99999", true}, {"169999", true}, {"172799", true}, {"172800", true},
		{"172801", false}, {"999999", false}, {"0", false}, {"0600", false}, {"abc", false}, {"", false}, {"60s", false},
	} {
		_, err := document.Resolve(d, map[string][]string{"commands": {"ls"}, "executionTimeout": {tt.timeout}})
		if (err == nil) != tt.ok {
			t.Errorf("executionTimeout %q: err = %v, want ok=%v", tt.timeout, err, tt.ok)
		}
	}
	if _, err := document.Resolve(d, map[string][]string{"commands": {}}); err == nil {
		t.Errorf("empty commands accepted despite minItems 1")
	}
}

func TestResolveAny(t *testing.T) {
	d, err := document.Builtin(document.RunShellScript)
	if err != nil {
		t.Fatal(err)
	}
	var given map[string]any
	if err := json.Unmarshal([]byte(`{"commands": ["echo hi", "ls"], "executionTimeout": 600, "workingDirectory": "/tmp"}`), &given); err != nil {
		t.Fatal(err)
	}
	got, err := document.ResolveAny(d, given)
	if err != nil {
		t.Fatalf("ResolveAny: %v", err)
	}
	want := map[string]document.Value{
		"commands":         document.ListValue("echo hi", "ls"),
		"executionTimeout": document.StringValue("600"),
		"workingDirectory": document.StringValue("/tmp"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
	_, err = document.ResolveAny(d, map[string]any{"commands": map[string]any{"a": 1}})
	var pe *document.ParamError
	if !errors.As(err, &pe) || pe.Param != "commands" {
		t.Errorf("err = %v, want a ParamError on commands", err)
	}
}

func TestValueJSON(t *testing.T) {
	in := map[string]document.Value{"s": document.StringValue("x"), "l": document.ListValue("a", "b"), "e": document.ListValue()}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"e":[],"l":["a","b"],"s":"x"}`; got != want {
		t.Errorf("marshal = %s, want %s", got, want)
	}
	var out map[string]document.Value
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip = %#v, want %#v", out, in)
	}
	var v document.Value
	if err := json.Unmarshal([]byte(`{"a":1}`), &v); err == nil {
		t.Errorf("object accepted as a Value")
	}
}
