package api

import (
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// Tag rules follow AWS: keys 1–128 and values 0–256 characters of letters,
// digits, spaces and _.:/=+-@; keys may not use the reserved aws: prefix.
var tagChars = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)

const maxTagsPerResource = 50

func validateTagKey(field, k string) error {
	n := utf8.RuneCountInString(k)
	switch {
	case n == 0:
		return badRequest(field, "tag key must not be empty")
	case n > 128:
		return badRequest(field, "tag key %q is longer than 128 characters", truncate(k, 40))
	case !tagChars.MatchString(k):
		return badRequest(field, "tag key %q may only contain letters, digits, spaces and _.:/=+-@", truncate(k, 40))
	case strings.HasPrefix(strings.ToLower(k), "aws:"):
		return badRequest(field, "tag key %q uses the reserved prefix aws:", truncate(k, 40))
	}
	return nil
}

func validateTagValue(field, v string) error {
	switch {
	case utf8.RuneCountInString(v) > 256:
		return badRequest(field, "tag value %q is longer than 256 characters", truncate(v, 40))
	case !tagChars.MatchString(v):
		return badRequest(field, "tag value %q may only contain letters, digits, spaces and _.:/=+-@", truncate(v, 40))
	}
	return nil
}

func validateTags(field string, tags map[string]string) error {
	if len(tags) > maxTagsPerResource {
		return badRequest(field, "at most %d tags are allowed, got %d", maxTagsPerResource, len(tags))
	}
	for _, k := range sortedKeys(tags) {
		if err := validateTagKey(field+"."+k, k); err != nil {
			return err
		}
		if err := validateTagValue(field+"."+k, tags[k]); err != nil {
			return err
		}
	}
	return nil
}

// validateText checks an optional free-text field's length and that it is
// valid UTF-8 without control characters other than newline and tab.
func validateText(field, s string, maxLen int) error {
	if !utf8.ValidString(s) {
		return badRequest(field, "%s must be valid UTF-8", field)
	}
	if n := utf8.RuneCountInString(s); n > maxLen {
		return badRequest(field, "%s is %d characters long; the maximum is %d", field, n, maxLen)
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' {
			return badRequest(field, "%s contains control character %U", field, r)
		}
	}
	return nil
}

var namePattern = regexp.MustCompile(`^[a-zA-Z0-9_\-.]{1,128}$`)

func validateName(field, s string) error {
	if !namePattern.MatchString(s) {
		return badRequest(field, "%s %q must be 1–128 characters of letters, digits and _-.", field, truncate(s, 40))
	}
	return nil
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parseTagFilter parses "Key=V1,V2" (values ORed) or "Key" (key present).
func parseTagFilter(field, s string) (key string, values []string, err error) {
	k, v, hasValues := strings.Cut(s, "=")
	if err := validateTagKey(field, k); err != nil {
		return "", nil, err
	}
	if !hasValues {
		return k, nil, nil
	}
	for _, val := range strings.Split(v, ",") {
		if err := validateTagValue(field, val); err != nil {
			return "", nil, err
		}
		values = append(values, val)
	}
	if len(values) > 50 {
		return "", nil, badRequest(field, "at most 50 values per tag filter")
	}
	return k, values, nil
}
