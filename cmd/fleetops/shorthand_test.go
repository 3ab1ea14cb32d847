package main

import (
	"reflect"
	"testing"
)

func TestParseTargets(t *testing.T) {
	tests := []struct {
		in      []string
		want    []map[string]any
		wantErr bool
	}{
		{[]string{"Key=tag:Env,Values=dev,prod"}, []map[string]any{{"key": "tag:Env", "values": []string{"dev", "prod"}}}, false},
		{[]string{"Key=InstanceIds,Values=mi-0123456789abcdef0"}, []map[string]any{{"key": "InstanceIds", "values": []string{"mi-0123456789abcdef0"}}}, false},
		{[]string{`[{"Key":"tag:Env","Values":["dev"]},{"Key":"tag-key","Values":["Role"]}]`},
			[]map[string]any{{"key": "tag:Env", "values": []string{"dev"}}, {"key": "tag-key", "values": []string{"Role"}}}, false},
		{[]string{"Key=tag:Env,Values=dev", "Key=resource-groups:Name,Values=web"},
			[]map[string]any{{"key": "tag:Env", "values": []string{"dev"}}, {"key": "resource-groups:Name", "values": []string{"web"}}}, false},
		{[]string{"tag:Env=dev"}, nil, true},
		{[]string{"Key=tag:Env"}, nil, true},
		{[]string{`[{"Key":`}, nil, true},
	}
	for _, tt := range tests {
		got, err := parseTargets(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseTargets(%q) error %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseTargets(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseParameters(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string][]string
		wantErr bool
	}{
		{`{"commands":["uptime"],"executionTimeout":["3600"]}`, map[string][]string{"commands": {"uptime"}, "executionTimeout": {"3600"}}, false},
		{`{"commands":"uptime"}`, map[string][]string{"commands": {"uptime"}}, false},
		{`commands=["echo a, b","ls"],executionTimeout=60`, map[string][]string{"commands": {"echo a, b", "ls"}, "executionTimeout": {"60"}}, false},
		{`commands=[uptime,whoami]`, map[string][]string{"commands": {"uptime", "whoami"}}, false},
		{`commands="echo hi"`, map[string][]string{"commands": {"echo hi"}}, false},
		{`commands`, nil, true},
		{`{"commands":[1]}`, nil, true},
		{`{`, nil, true},
	}
	for _, tt := range tests {
		got, err := parseParameters(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseParameters(%q) error %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseParameters(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzParseParameters(f *testing.F) {
	for _, s := range []string{`{"commands":["uptime"]}`, `commands=["a","b"],x=1`, `a='b,c'`, `[`, `a=[b,[c]]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseParameters(s)
		_, _ = parseTargets([]string{s})
	})
}
