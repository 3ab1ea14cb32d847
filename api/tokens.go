package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/fleetops/fleetops/internal/store"
)

// TokenPrefix marks fleetops API tokens so secret scanners can find leaks.
const TokenPrefix = "fo_"

// AdminTokenID is the fixed ID of the token created on first start, so that
// several replicas starting at once create it only once.
const AdminTokenID = "00000000-0000-0000-0000-00000000ad01"

// NewToken returns a fresh API token and its record (hash only).
func NewToken(name string, now time.Time) (string, *store.APIToken, error) {
	secret, err := randomToken(32)
	if err != nil {
		return "", nil, err
	}
	token := TokenPrefix + secret
	return token, &store.APIToken{ID: uuid.NewString(), Name: name, Hash: store.HashSecret(token), CreatedAt: now}, nil
}

// TokenCreator is the store method BootstrapAdminToken needs.
type TokenCreator interface {
	CreateAPIToken(ctx context.Context, t *store.APIToken) error
}

// BootstrapAdminToken creates the admin token if it does not exist yet and
// returns it; it returns "" when the token already existed.
func BootstrapAdminToken(ctx context.Context, st TokenCreator, now time.Time) (string, error) {
	token, rec, err := NewToken("admin", now)
	if err != nil {
		return "", err
	}
	rec.ID = AdminTokenID
	if err := st.CreateAPIToken(ctx, rec); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return "", nil
		}
		return "", fmt.Errorf("create admin token: %w", err)
	}
	return token, nil
}

type tokenJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
	// Token is only set in the answer to create.
	Token string `json:"token,omitempty"`
}

func toTokenJSON(t store.APIToken) tokenJSON {
	return tokenJSON{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt.UTC(), LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt}
}

type createTokenRequest struct {
	Name string `json:"name"`
}

func (s *Server) createToken(c *gin.Context) {
	auditAs(c, "CreateToken", "")
	var req createTokenRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if err := validateName("name", req.Name); err != nil {
		fail(c, err)
		return
	}
	token, rec, err := NewToken(req.Name, s.cfg.Now().UTC())
	if err != nil {
		fail(c, err)
		return
	}
	auditAs(c, "CreateToken", "token/"+rec.ID)
	if err := s.cfg.Store.CreateAPIToken(c.Request.Context(), rec); err != nil {
		fail(c, err)
		return
	}
	out := toTokenJSON(*rec)
	out.Token = token
	c.JSON(http.StatusCreated, out)
}

func (s *Server) listTokens(c *gin.Context) {
	list, err := s.cfg.Store.ListAPITokens(c)
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]tokenJSON, 0, len(list))
	for _, t := range list {
		out = append(out, toTokenJSON(t))
	}
	c.JSON(http.StatusOK, gin.H{"tokens": out})
}

func (s *Server) revokeToken(c *gin.Context) {
	id := c.Param("id")
	auditAs(c, "RevokeToken", "token/"+truncate(id, 40))
	if _, err := uuid.Parse(id); err != nil {
		fail(c, badRequest("id", "token ID %q is not a UUID", truncate(id, 40)))
		return
	}
	if err := s.cfg.Store.RevokeAPIToken(c.Request.Context(), id, s.cfg.Now().UTC()); err != nil {
		fail(c, notFoundAs(err, "DoesNotExistException", "token %s does not exist", id))
		return
	}
	c.Status(http.StatusNoContent)
}
