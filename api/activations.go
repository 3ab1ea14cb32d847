package api

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/fleetops/fleetops/internal/store"
)

// SSM's limits: 1–1000 registrations, expiry at most 30 days ahead,
// default 24 hours.
const (
	maxRegistrationLimit = 1000
	defaultActivationTTL = 24 * time.Hour
	maxActivationTTL     = 30 * 24 * time.Hour
)

type createActivationRequest struct {
	Description         string            `json:"description"`
	DefaultInstanceName string            `json:"defaultInstanceName"`
	RegistrationLimit   *int              `json:"registrationLimit"`
	ExpiresIn           string            `json:"expiresIn"`
	ExpirationDate      *time.Time        `json:"expirationDate"`
	Tags                map[string]string `json:"tags"`
}

type activationJSON struct {
	ActivationID        string            `json:"activationId"`
	Description         string            `json:"description"`
	DefaultInstanceName string            `json:"defaultInstanceName"`
	RegistrationLimit   int               `json:"registrationLimit"`
	RegistrationsCount  int               `json:"registrationsCount"`
	ExpirationDate      time.Time         `json:"expirationDate"`
	Expired             bool              `json:"expired"`
	CreatedDate         time.Time         `json:"createdDate"`
	Tags                map[string]string `json:"tags"`
}

type createActivationResponse struct {
	activationJSON
	// ActivationCode is shown once; only its hash is stored.
	ActivationCode    string `json:"activationCode"`
	ServerURL         string `json:"serverUrl"`
	ServerFingerprint string `json:"serverFingerprint,omitempty"`
	InstallCommand    string `json:"installCommand"`
}

func (s *Server) createActivation(c *gin.Context) {
	auditAs(c, "CreateActivation", "")
	var req createActivationRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	now := s.cfg.Now().UTC()
	a, err := req.toActivation(now)
	if err != nil {
		fail(c, err)
		return
	}
	code, err := randomToken(30)
	if err != nil {
		fail(c, err)
		return
	}
	a.CodeHash = store.HashSecret(code)
	auditAs(c, "CreateActivation", "activation/"+a.ID)
	if err := s.cfg.Store.CreateActivation(c.Request.Context(), a); err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, createActivationResponse{
		activationJSON:    toActivationJSON(*a, now),
		ActivationCode:    code,
		ServerURL:         s.cfg.PublicURL,
		ServerFingerprint: s.cfg.ServerFingerprint,
		InstallCommand:    s.installCommand(a.ID, code),
	})
}

func (req createActivationRequest) toActivation(now time.Time) (*store.Activation, error) {
	if err := validateText("description", req.Description, 256); err != nil {
		return nil, err
	}
	if err := validateText("defaultInstanceName", req.DefaultInstanceName, 256); err != nil {
		return nil, err
	}
	limit := 1
	if req.RegistrationLimit != nil {
		limit = *req.RegistrationLimit
		if limit < 1 || limit > maxRegistrationLimit {
			return nil, badRequest("registrationLimit", "registrationLimit must be from 1 to %d, got %d", maxRegistrationLimit, limit)
		}
	}
	expires := now.Add(defaultActivationTTL)
	switch {
	case req.ExpiresIn != "" && req.ExpirationDate != nil:
		return nil, badRequest("expiresIn", "give expiresIn or expirationDate, not both")
	case req.ExpiresIn != "":
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil {
			return nil, badRequest("expiresIn", "expiresIn %q is not a duration such as 24h or 90m", truncate(req.ExpiresIn, 20))
		}
		expires = now.Add(d)
	case req.ExpirationDate != nil:
		expires = req.ExpirationDate.UTC()
	}
	if !expires.After(now) {
		return nil, badRequest("expiresIn", "the activation must expire in the future")
	}
	if expires.Sub(now) > maxActivationTTL {
		return nil, badRequest("expiresIn", "the activation may expire at most 30 days from now")
	}
	if err := validateTags("tags", req.Tags); err != nil {
		return nil, err
	}
	a := &store.Activation{
		ID:                  uuid.NewString(),
		Description:         req.Description,
		DefaultInstanceName: req.DefaultInstanceName,
		RegistrationLimit:   limit,
		ExpiresAt:           expires,
		CreatedAt:           now,
	}
	for _, k := range sortedKeys(req.Tags) {
		a.Tags = append(a.Tags, store.ActivationTag{ActivationID: a.ID, Key: k, Value: req.Tags[k]})
	}
	return a, nil
}

func toActivationJSON(a store.Activation, now time.Time) activationJSON {
	tags := map[string]string{}
	for _, t := range a.Tags {
		tags[t.Key] = t.Value
	}
	return activationJSON{
		ActivationID:        a.ID,
		Description:         a.Description,
		DefaultInstanceName: a.DefaultInstanceName,
		RegistrationLimit:   a.RegistrationLimit,
		RegistrationsCount:  a.RegistrationsCount,
		ExpirationDate:      a.ExpiresAt.UTC(),
		Expired:             !now.Before(a.ExpiresAt),
		CreatedDate:         a.CreatedAt.UTC(),
		Tags:                tags,
	}
}

func (s *Server) listActivations(c *gin.Context) {
	list, err := s.cfg.Store.ListActivations(c)
	if err != nil {
		fail(c, err)
		return
	}
	now := s.cfg.Now()
	out := make([]activationJSON, 0, len(list))
	for _, a := range list {
		out = append(out, toActivationJSON(a, now))
	}
	c.JSON(http.StatusOK, gin.H{"activations": out})
}

func (s *Server) deleteActivation(c *gin.Context) {
	id := c.Param("id")
	auditAs(c, "DeleteActivation", "activation/"+id)
	if _, err := uuid.Parse(id); err != nil {
		fail(c, badRequest("activationId", "activation ID %q is not a UUID", truncate(id, 40)))
		return
	}
	if err := s.cfg.Store.DeleteActivation(c.Request.Context(), id); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// installCommand is the one line that joins a host to the fleet. With TLS
// and a self-signed certificate, curl pins the server's public key and the
// agent pins its certificate, so neither trusts the network.
func (s *Server) installCommand(activationID, code string) string {
	fetch := "curl -fsSL"
	if s.cfg.ServerKeyPin != "" {
		fetch = "curl -fsSL -k --pinnedpubkey " + s.cfg.ServerKeyPin
	}
	line := fmt.Sprintf("%s %s/install.sh | sudo sh -s -- --server %s --activation-id %s --activation-code %s",
		fetch, s.cfg.PublicURL, s.cfg.PublicURL, activationID, code)
	if s.cfg.ServerFingerprint != "" {
		line += " --server-fingerprint " + s.cfg.ServerFingerprint
	}
	if s.cfg.ServerKeyPin != "" {
		line += " --pinned-pubkey " + s.cfg.ServerKeyPin
	}
	return line
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
