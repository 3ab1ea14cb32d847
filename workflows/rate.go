package workflows

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DefaultMaxConcurrency and DefaultMaxErrors are SSM's SendCommand defaults,
// applied when a request leaves the fields empty.
const (
	DefaultMaxConcurrency = "50"
	DefaultMaxErrors      = "0"
)

// ErrInvalidRate is wrapped by ParseRate errors so the API can map them to a
// 400 InvalidParameters without matching strings.
var ErrInvalidRate = errors.New("invalid rate")

// The exact SendCommand patterns (botocore service model, ≤7 characters).
// MaxErrors additionally accepts 0 and single-digit percentages including 0%.
var (
	maxConcurrencyPattern = regexp.MustCompile(`^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$`)
	maxErrorsPattern      = regexp.MustCompile(`^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$`)
)

// Rate is a parsed MaxConcurrency or MaxErrors value: an absolute count or a
// percentage of the resolved target count. The percentage can only be turned
// into a number once targets are resolved, hence Of.
type Rate struct {
	// Value is the count, or the percentage when Percent is set.
	Value int `json:"value"`
	// Percent says Value is a percentage (0–100) of the target count.
	Percent bool `json:"percent,omitempty"`
	// errors selects the MaxErrors rounding (floor, may be 0) instead of the
	// MaxConcurrency one (floor, at least 1).
	errors bool
}

// RateError says which field was wrong, so the API can name it in its 400.
type RateError struct {
	// Field is "MaxConcurrency" or "MaxErrors".
	Field string
	// Value is the rejected input.
	Value string
}

// Error implements error.
func (e *RateError) Error() string {
	return fmt.Sprintf("%s %q must be a positive count or percentage of at most 7 characters, e.g. 10 or 25%%", e.Field, e.Value)
}

// Unwrap lets errors.Is(err, ErrInvalidRate) classify it.
func (e *RateError) Unwrap() error { return ErrInvalidRate }

// ParseRate validates s with SSM's MaxConcurrency (isErrors false) or
// MaxErrors (isErrors true) pattern. It is pure so the API can reject bad
// requests with a 400 before a workflow is started.
func ParseRate(s string, isErrors bool) (Rate, error) {
	field, re := "MaxConcurrency", maxConcurrencyPattern
	if isErrors {
		field, re = "MaxErrors", maxErrorsPattern
	}
	if len(s) > 7 || !re.MatchString(s) {
		return Rate{}, &RateError{Field: field, Value: s}
	}
	r := Rate{errors: isErrors}
	num := s
	if strings.HasSuffix(s, "%") {
		r.Percent = true
		num = strings.TrimSuffix(s, "%")
	}
	v, err := strconv.Atoi(num)
	if err != nil { // unreachable after the regexp; kept so a regexp change cannot panic
		return Rate{}, &RateError{Field: field, Value: s}
	}
	r.Value = v
	return r, nil
}

// Of returns the absolute limit for a command with the given target count.
// Percentages round down (reference 1.3: floor; "10% of 50 stops on the 6th
// error"); a concurrency never drops below 1 or no target could ever run.
func (r Rate) Of(targets int) int {
	n := r.Value
	if r.Percent {
		n = r.Value * targets / 100
	}
	if !r.errors && n < 1 {
		n = 1
	}
	return n
}

// String renders the rate the way SSM accepts it.
func (r Rate) String() string {
	if r.Percent {
		return strconv.Itoa(r.Value) + "%"
	}
	return strconv.Itoa(r.Value)
}
