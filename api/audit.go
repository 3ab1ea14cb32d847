package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fleetops/fleetops/internal/store"
)

const (
	ctxAuditAction   = "fleetops.audit.action"
	ctxAuditResource = "fleetops.audit.resource"
)

// auditAs names the action and resource of the current request for the
// audit log; mutating handlers call it before doing anything.
func auditAs(c *gin.Context, action, resource string) {
	c.Set(ctxAuditAction, action)
	c.Set(ctxAuditResource, resource)
}

// audit writes one entry per mutating request once the handler is done,
// failures included: a refused change is as interesting as an accepted one.
func (s *Server) audit() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		switch c.Request.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return
		}
		action := c.GetString(ctxAuditAction)
		if action == "" {
			action = c.Request.Method + " " + c.FullPath()
		}
		s.record(c, actor(c), action, c.GetString(ctxAuditResource), c.Writer.Status())
	}
}

// record appends an audit event. It uses a context detached from the
// request's cancellation so a client hanging up does not erase its trace.
func (s *Server) record(c *gin.Context, who, action, resource string, status int) {
	outcome := "success"
	if status >= 300 {
		outcome = "failure:" + strconv.Itoa(status)
	}
	ev := &store.AuditEvent{
		Time:     s.cfg.Now().UTC(),
		Actor:    who,
		Action:   action,
		Resource: resource,
		SourceIP: c.ClientIP(),
		Outcome:  outcome,
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), 5*time.Second)
	defer cancel()
	if err := s.cfg.Store.AppendAudit(ctx, ev); err != nil {
		s.log.Error("audit write failed", "action", action, "resource", resource, "err", err)
	}
}

type auditEventJSON struct {
	ID       uint64    `json:"id"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"`
	Action   string    `json:"action"`
	Resource string    `json:"resource"`
	SourceIP string    `json:"sourceIp"`
	Outcome  string    `json:"outcome"`
}

func (s *Server) listAudit(c *gin.Context) {
	f := store.AuditFilter{
		Actor:    c.Query("actor"),
		Action:   c.Query("action"),
		Resource: c.Query("resource"),
	}
	var err error
	if f.MaxResults, f.NextToken, err = pageParams(c); err != nil {
		fail(c, err)
		return
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := c.Query(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				fail(c, badRequest(p.name, "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", p.name))
				return
			}
			*p.dst = t
		}
	}
	events, next, err := s.cfg.Store.ListAudit(c.Request.Context(), f)
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]auditEventJSON, 0, len(events))
	for _, e := range events {
		out = append(out, auditEventJSON{ID: e.ID, Time: e.Time, Actor: e.Actor, Action: e.Action, Resource: e.Resource, SourceIP: e.SourceIP, Outcome: e.Outcome})
	}
	c.JSON(http.StatusOK, gin.H{"events": out, "nextToken": next})
}

// pageParams reads maxResults (1–1000) and nextToken.
func pageParams(c *gin.Context) (int, string, error) {
	max := 0
	if v := c.Query("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return 0, "", badRequest("maxResults", "maxResults must be an integer from 1 to 1000")
		}
		max = n
	}
	token := c.Query("nextToken")
	if len(token) > 512 {
		return 0, "", badRequest("nextToken", "nextToken is not valid")
	}
	return max, token, nil
}
