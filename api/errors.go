package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/store"
)

// Error is an API error with its HTTP status, machine-readable code and,
// for bad input, the field at fault. Handlers return it through fail; any
// other error is mapped by statusOf and never shown to the client verbatim.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string { return e.Message }

func badRequest(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "InvalidParameters", Field: field, Message: fmt.Sprintf(format, args...)}
}

func notFound(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: code, Message: fmt.Sprintf(format, args...)}
}

// notFoundAs returns err with the store's ErrNotFound replaced by a 404 of
// code and message, so that each resource names itself; other errors, and
// nil, pass unchanged.
func notFoundAs(err error, code, format string, args ...any) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound(code, format, args...)
	}
	return err
}

// fail writes err as the JSON error body and aborts the request.
func fail(c *gin.Context, err error) {
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		apiErr = classify(err)
		if apiErr.Status >= 500 {
			// Internal details go to the log, not to the client.
			_ = c.Error(err)
		}
	}
	c.AbortWithStatusJSON(apiErr.Status, agentproto.ErrorResponse{Error: agentproto.ErrorBody{
		Code: apiErr.Code, Message: apiErr.Message, Field: apiErr.Field,
	}})
}

// classify maps store sentinels to API errors.
func classify(err error) *Error {
	switch {
	case errors.Is(err, store.ErrUnavailable):
		return &Error{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "the database is unavailable; retry later"}
	case errors.Is(err, store.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: "DoesNotExistException", Message: "the resource does not exist"}
	case errors.Is(err, store.ErrInvalidArgument):
		// What reaches here is a malformed page token; handlers name
		// every other invalid field themselves.
		return &Error{Status: http.StatusBadRequest, Code: "InvalidNextToken", Field: "nextToken", Message: "nextToken is not valid: pass the nextToken of the previous page of the same listing"}
	case errors.Is(err, store.ErrAlreadyExists):
		return &Error{Status: http.StatusConflict, Code: "AlreadyExistsException", Message: "the resource already exists"}
	default:
		return &Error{Status: http.StatusInternalServerError, Code: "InternalServerError", Message: "internal server error"}
	}
}

// maxBodyBytes bounds every request body.
const maxBodyBytes = 1 << 20

// bindJSON decodes the request body strictly into v: unknown fields, trailing
// data, wrong types and oversize bodies are 400s naming the problem.
func bindJSON(c *gin.Context, v any) error {
	body := http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return badRequest("", "request body must hold a single JSON object")
	}
	return nil
}

func decodeError(err error) *Error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return badRequest("", "request body is empty; a JSON object is required")
	case errors.As(err, &syntax):
		return badRequest("", "malformed JSON at byte %d", syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "malformed JSON: unexpected end of input")
	case errors.As(err, &typ):
		return badRequest(typ.Field, "field %q must be of JSON type %s", typ.Field, typ.Type.String())
	case errors.As(err, &tooBig):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "RequestTooLarge", Message: fmt.Sprintf("request body exceeds %d bytes", maxBodyBytes)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json exposes no typed error for unknown fields.
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest(field, "unknown field %q", field)
	default:
		return badRequest("", "invalid JSON body")
	}
}
