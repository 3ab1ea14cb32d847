package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/gateway"
	"github.com/fleetops/fleetops/internal/store"
)

// registerAgent turns a valid activation into a managed node with its own
// credential. Refusals say exactly why, so an operator can fix the line.
func (s *Server) registerAgent(c *gin.Context) {
	var req agentproto.RegisterRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if req.ActivationID == "" || len(req.ActivationID) > 64 {
		fail(c, badRequest("activationId", "activationId is required"))
		return
	}
	if req.ActivationCode == "" || len(req.ActivationCode) > 256 {
		fail(c, badRequest("activationCode", "activationCode is required"))
		return
	}
	id, err := newInstanceID()
	if err != nil {
		fail(c, err)
		return
	}
	secret, err := randomToken(32)
	if err != nil {
		fail(c, err)
		return
	}
	now := s.cfg.Now().UTC()
	h := gateway.HostUpdateFrom(req.Host)
	inst := &store.Instance{
		InstanceID:      id,
		Name:            h.Hostname,
		Hostname:        h.Hostname,
		PlatformType:    h.PlatformType,
		PlatformName:    h.PlatformName,
		PlatformVersion: h.PlatformVersion,
		Kernel:          h.Kernel,
		Architecture:    h.Architecture,
		IPAddresses:     encodeIPs(h.IPAddresses),
		AgentVersion:    h.AgentVersion,
		ActivationID:    req.ActivationID,
		RegisteredAt:    now,
		LastPingAt:      now,
		// The node has not connected yet; it turns Online at its hello.
		PingStatus: store.PingConnectionLost,
		SecretHash: store.HashSecret(secret),
	}
	err = s.cfg.Store.RegisterInstance(c.Request.Context(), req.ActivationID, store.HashSecret(req.ActivationCode), inst, now)
	outcome := http.StatusCreated
	defer func() {
		s.metrics.registrations.WithLabelValues(registrationOutcome(err)).Inc()
		s.record(c, "activation:"+truncate(req.ActivationID, 64), "RegisterInstance", "instance/"+id, outcome)
	}()
	if err != nil {
		apiErr := registrationError(err)
		outcome = apiErr.Status
		fail(c, apiErr)
		return
	}
	c.JSON(http.StatusCreated, agentproto.RegisterResponse{InstanceID: id, Secret: secret})
}

func registrationError(err error) *Error {
	refused := func(code, msg string) *Error {
		return &Error{Status: http.StatusForbidden, Code: code, Message: msg}
	}
	switch {
	case errors.Is(err, store.ErrActivationNotFound):
		return refused("InvalidActivation", "activation not found: check the activation ID")
	case errors.Is(err, store.ErrInvalidActivationCode):
		return refused("InvalidActivation", "invalid activation code for this activation")
	case errors.Is(err, store.ErrActivationExpired):
		return refused("ActivationExpired", "activation expired: create a new activation")
	case errors.Is(err, store.ErrActivationExhausted):
		return refused("ActivationLimitExceeded", "activation registration limit reached: create a new activation or raise the limit")
	default:
		return classify(err)
	}
}

func registrationOutcome(err error) string {
	switch {
	case err == nil:
		return "registered"
	case errors.Is(err, store.ErrActivationNotFound), errors.Is(err, store.ErrInvalidActivationCode):
		return "invalid"
	case errors.Is(err, store.ErrActivationExpired):
		return "expired"
	case errors.Is(err, store.ErrActivationExhausted):
		return "exhausted"
	default:
		return "error"
	}
}

func encodeIPs(ips []string) string {
	if ips == nil {
		ips = []string{}
	}
	b, _ := json.Marshal(ips) // a []string always marshals
	return string(b)
}

// newInstanceID returns SSM's managed-node form: "mi-" and 17 hex digits.
func newInstanceID() (string, error) {
	b := make([]byte, 9)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	return "mi-" + hex.EncodeToString(b)[:17], nil
}

func (s *Server) connectAgent(c *gin.Context) {
	s.cfg.Gateway.Serve(c.Writer, c.Request, c.GetString(ctxInstanceID))
}
