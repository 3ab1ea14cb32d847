package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/store"
)

// Context keys set by the auth middlewares.
const (
	ctxActor      = "fleetops.actor"
	ctxInstanceID = "fleetops.instanceId"
)

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	token = strings.TrimSpace(token)
	return token, ok && token != ""
}

func unauthorized(msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "Unauthorized", Message: msg}
}

// operatorAuth requires a valid, unrevoked API token.
func (s *Server) operatorAuth() gin.HandlerFunc {
	return func(c *gin.Context) {
		token, ok := bearer(c.Request)
		if !ok {
			c.Header("WWW-Authenticate", `Bearer realm="fleetops"`)
			fail(c, unauthorized("an API token is required: send Authorization: Bearer <token>"))
			return
		}
		t, err := s.cfg.Store.AuthenticateToken(c.Request.Context(), store.HashSecret(token), s.cfg.Now())
		switch {
		case errors.Is(err, store.ErrUnauthorized):
			c.Header("WWW-Authenticate", `Bearer realm="fleetops", error="invalid_token"`)
			fail(c, unauthorized("the API token is invalid or revoked"))
			return
		case err != nil:
			fail(c, err)
			return
		}
		c.Set(ctxActor, "token:"+t.Name)
		c.Next()
	}
}

// agentAuth requires an agent's instance ID and secret, and records the
// instance so handlers can only act on the agent's own messages.
func (s *Server) agentAuth() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(agentproto.HeaderInstanceID)
		secret, ok := bearer(c.Request)
		if !ok || !agentproto.ValidInstanceID(id) {
			fail(c, unauthorized("agent credentials are required: "+agentproto.HeaderInstanceID+" and Authorization: Bearer <secret>"))
			return
		}
		inst, err := s.cfg.Store.AuthenticateInstance(c.Request.Context(), id, store.HashSecret(secret))
		switch {
		case errors.Is(err, store.ErrUnauthorized):
			fail(c, &Error{Status: http.StatusForbidden, Code: "AccessDenied", Message: "agent credentials are invalid or the node is deregistered; register again"})
			return
		case err != nil:
			fail(c, err)
			return
		}
		c.Set(ctxInstanceID, inst.InstanceID)
		c.Next()
	}
}

func actor(c *gin.Context) string {
	if a := c.GetString(ctxActor); a != "" {
		return a
	}
	return "anonymous"
}
