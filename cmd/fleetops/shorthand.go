package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The aws CLI's forms of --targets and --parameters, so an existing
// `aws ssm send-command` line works after changing the program name.

// parseTargets reads each --targets value: JSON (`[{"Key":"tag:Env",
// "Values":["dev"]}]`) or shorthand (`Key=tag:Env,Values=dev,prod`).
func parseTargets(args []string) ([]map[string]any, error) {
	var out []map[string]any
	for _, a := range args {
		a = strings.TrimSpace(a)
		if strings.HasPrefix(a, "[") || strings.HasPrefix(a, "{") {
			var list []struct {
				Key    string   `json:"Key"`
				Values []string `json:"Values"`
			}
			raw := a
			if strings.HasPrefix(a, "{") {
				raw = "[" + a + "]"
			}
			if err := json.Unmarshal([]byte(raw), &list); err != nil {
				return nil, fmt.Errorf("--targets %q: not valid JSON: %w", a, err)
			}
			for _, t := range list {
				out = append(out, map[string]any{"key": t.Key, "values": t.Values})
			}
			continue
		}
		// Shorthand: Key=K,Values=V1,V2 — everything after Values= is values.
		rest, ok := strings.CutPrefix(a, "Key=")
		if !ok {
			return nil, fmt.Errorf("--targets %q: want Key=<key>,Values=<v1>,<v2> or JSON", a)
		}
		key, vals, ok := strings.Cut(rest, ",Values=")
		if !ok || key == "" || vals == "" {
			return nil, fmt.Errorf("--targets %q: want Key=<key>,Values=<v1>,<v2> or JSON", a)
		}
		out = append(out, map[string]any{"key": key, "values": splitShorthandList(vals)})
	}
	return out, nil
}

// parseParameters reads --parameters: JSON (`{"commands":["uptime"]}`) or
// shorthand (`commands=["echo a","echo b"],executionTimeout=3600` or
// `commands=uptime`).
func parseParameters(s string) (map[string][]string, error) {
	out := map[string][]string{}
	s = strings.TrimSpace(s)
	if s == "" {
		return out, nil
	}
	if strings.HasPrefix(s, "{") {
		var raw map[string]any
		if err := json.Unmarshal([]byte(s), &raw); err != nil {
			return nil, fmt.Errorf("--parameters: not valid JSON: %w", err)
		}
		for k, v := range raw {
			switch v := v.(type) {
			case string:
				out[k] = []string{v}
			case []any:
				for _, item := range v {
					str, ok := item.(string)
					if !ok {
						return nil, fmt.Errorf("--parameters: %s must hold strings", k)
					}
					out[k] = append(out[k], str)
				}
			default:
				return nil, fmt.Errorf("--parameters: %s must be a string or a list of strings", k)
			}
		}
		return out, nil
	}
	for _, pair := range splitTopLevel(s) {
		name, value, ok := strings.Cut(pair, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--parameters: %q is not name=value", pair)
		}
		value = strings.TrimSpace(value)
		if strings.HasPrefix(value, "[") {
			var list []string
			if err := json.Unmarshal([]byte(value), &list); err == nil {
				out[name] = append(out[name], list...)
				continue
			}
			out[name] = append(out[name], splitShorthandList(strings.TrimSuffix(strings.TrimPrefix(value, "["), "]"))...)
			continue
		}
		out[name] = append(out[name], unquote(value))
	}
	return out, nil
}

// splitTopLevel splits on commas outside brackets and quotes.
func splitTopLevel(s string) []string {
	var parts []string
	depth, quote, start := 0, byte(0), 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '[':
			depth++
		case c == ']':
			depth--
		case c == ',' && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func splitShorthandList(s string) []string {
	var out []string
	for _, p := range splitTopLevel(s) {
		out = append(out, unquote(strings.TrimSpace(p)))
	}
	return out
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}
