package api

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// listQuery reads the query parameters of a list request. It keeps the
// first error and reads nothing after it, so a handler reads all its
// filters, checks once, and the client hears about the first bad one.
type listQuery struct {
	c   *gin.Context
	err error
}

// keep records err unless an earlier error is kept.
func (q *listQuery) keep(err error) {
	if q.err == nil {
		q.err = err
	}
}

// page reads maxResults and nextToken (see pageParams).
func (q *listQuery) page() (maxResults int, nextToken string) {
	if q.err == nil {
		maxResults, nextToken, q.err = pageParams(q.c)
	}
	return maxResults, nextToken
}

// oneOf reads the filter name (repeatable or comma-separated); every value
// must be in allowed, else format, given the value, is the error.
func (q *listQuery) oneOf(name string, allowed map[string]bool, format string) []string {
	if q.err != nil {
		return nil
	}
	var out []string
	for _, v := range multiQuery(q.c, name) {
		if !allowed[v] {
			q.err = badRequest(name, format, truncate(v, 30))
			return nil
		}
		out = append(out, v)
	}
	return out
}

// instanceID reads the optional instanceId filter.
func (q *listQuery) instanceID() string {
	id := q.c.Query("instanceId")
	if q.err != nil || id == "" {
		return ""
	}
	if !agentproto.ValidInstanceID(id) {
		q.err = badRequest("instanceId", "instanceId %q is not of the form mi-<17 hex digits>", truncate(id, 30))
		return ""
	}
	return id
}

// time reads the optional RFC 3339 time name (see timeQuery).
func (q *listQuery) time(name string) time.Time {
	if q.err != nil {
		return time.Time{}
	}
	t, err := timeQuery(q.c, name)
	q.err = err
	return t
}

// listPage answers a list request: with err, the error from reading its
// parameters, when there is one; else with the page list returns for f,
// each item converted by toJSON, under key, and the next page's token.
func listPage[F, T, J any](c *gin.Context, err error, list func(context.Context, F) ([]T, string, error), f F, key string, toJSON func(T) J) {
	if err != nil {
		fail(c, err)
		return
	}
	items, next, err := list(c.Request.Context(), f)
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]J, 0, len(items))
	for _, it := range items {
		out = append(out, toJSON(it))
	}
	c.JSON(http.StatusOK, gin.H{key: out, "nextToken": next})
}
