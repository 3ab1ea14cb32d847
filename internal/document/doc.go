// Package document parses, validates and interpolates SSM Command documents
// (schema 1.2, 2.0 and 2.2), the way AWS Systems Manager and its agent do,
// so that AWS's own documents (AWS-RunShellScript) load unchanged.
//
// The flow is the one of SendCommand:
//
//	doc, err := document.Parse(content, document.FormatAuto) // CreateDocument / SendCommand validation
//	vals, err := document.Resolve(doc, req.Parameters)         // defaults, required, allowed*, min/max
//	steps, err := document.Render(doc, vals, "Linux")          // what the agent runs
//
// This package is linked into the host agent, so it imports only the standard
// library and gopkg.in/yaml.v3. Every input is treated as hostile: nothing
// here panics on any content, and memory and time are bounded by the limits
// below (content size, nesting depth, rendered size).
//
// Where the reference (shared/reference/aws-ssm-behaviour.md) is silent the
// choices are documented next to the code; the main ones:
//
//   - allowedPattern is matched against the whole value (like Java's
//     String.matches in the SSM API) using Go's RE2 syntax; Java-only syntax
//     (lookaround, backreferences, possessive quantifiers) is rejected at
//     Parse.
//   - minChars/maxChars count Unicode code points (Java counts UTF-16 units).
//   - Placeholders naming an undeclared parameter are left as they are (the
//     agent only replaces declared parameters); {{ssm:…}} and
//     {{ssm-secure:…}} references are rejected as unsupported.
//   - interpolationType ENV_VAR: see Parameter.InterpolationType.
//   - ExecutionTimeout is the sum of the steps' timeouts.
package document

import (
	"errors"
	"fmt"
)

// Limits. They bound memory and time on hostile input; the ones AWS
// documents are taken from it.
const (
	// MaxDocumentBytes is SSM's document size quota (64 KB).
	MaxDocumentBytes = 64 * 1024
	// MaxParameterBytes bounds the total size of the runtime parameter
	// values of one command; SSM counts them against the same 64 KB.
	MaxParameterBytes = 64 * 1024
	// MaxRenderedBytes bounds the size of interpolated output: a 64 KB
	// document with thousands of placeholders must not expand to gigabytes.
	MaxRenderedBytes = 1024 * 1024
	// MaxSteps bounds mainSteps (AWS publishes no figure; real documents
	// have a handful of steps).
	MaxSteps = 100
	// MaxParameters bounds the parameters a document declares.
	MaxParameters = 100
	// MaxDepth bounds the nesting of maps and lists in a document. The
	// deepest legitimate shape (schema 1.2 runtimeConfig with nested
	// documentParameters) stays well under it.
	MaxDepth = 20
	// MaxPatternBytes bounds allowedPattern (Parameter Store uses 1024 too).
	MaxPatternBytes = 1024
	// DefaultTimeoutSeconds is the agent's default and fallback plugin
	// timeout.
	DefaultTimeoutSeconds = 3600
	// MinTimeoutSeconds and MaxTimeoutSeconds are the plugin timeouts the
	// agent accepts; anything else falls back to DefaultTimeoutSeconds.
	MinTimeoutSeconds = 5
	MaxTimeoutSeconds = 172800
)

// Sentinel errors, for errors.Is in the API's error mapping.
var (
	// ErrInvalidDocument is matched by every content error from Parse and
	// Render (InvalidDocumentContent in SSM).
	ErrInvalidDocument = errors.New("invalid document")
	// ErrDocumentTooLarge is matched when content exceeds MaxDocumentBytes
	// (MaxDocumentSizeExceeded in SSM); it also matches ErrInvalidDocument.
	ErrDocumentTooLarge = errors.New("document too large")
	// ErrInvalidName is matched by ValidateName's errors.
	ErrInvalidName = errors.New("invalid document name")
	// ErrInvalidParameters is matched by every *ParamError
	// (InvalidParameters in SSM).
	ErrInvalidParameters = errors.New("invalid parameters")
	// ErrIncompatiblePlatform is returned by Render when a step of a schema
	// 1.2 or 2.0 document cannot run on the platform (2.2 skips the step).
	ErrIncompatiblePlatform = errors.New("step incompatible with platform")
	// ErrUnknownDocument is returned by Builtin for names it does not know.
	ErrUnknownDocument = errors.New("unknown built-in document")
)

// DocumentError is a content error located in the document. Path is a
// dotted path such as "mainSteps[1].inputs.runCommand" ("" for the whole
// document). It matches ErrInvalidDocument.
type DocumentError struct {
	Path   string
	Reason string
}

func (e *DocumentError) Error() string {
	if e.Path == "" {
		return "invalid document: " + e.Reason
	}
	return "invalid document: " + e.Path + ": " + e.Reason
}

// Is makes errors.Is(err, ErrInvalidDocument) hold.
func (e *DocumentError) Is(target error) bool { return target == ErrInvalidDocument }

func docErr(path, format string, args ...any) error {
	return &DocumentError{Path: path, Reason: fmt.Sprintf(format, args...)}
}

// ParamError is a problem with one runtime parameter. The API answers it
// with 400 and the field "parameters.<Param>". It matches
// ErrInvalidParameters.
type ParamError struct {
	Param  string
	Reason string
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("parameter %q: %s", e.Param, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidParameters) hold.
func (e *ParamError) Is(target error) bool { return target == ErrInvalidParameters }

func paramErr(name, format string, args ...any) error {
	return &ParamError{Param: name, Reason: fmt.Sprintf(format, args...)}
}
