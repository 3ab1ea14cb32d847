package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// ErrRegistrationRefused matches (errors.Is) every *RefusedError.
var ErrRegistrationRefused = errors.New("registration refused")

// RefusedError is the server's refusal of a registration: expired or
// exhausted activation, wrong code, bad input. Body is the server's
// ErrorBody; Body.Message is meant for the operator.
type RefusedError struct {
	StatusCode int
	Body       agentproto.ErrorBody
}

func (e *RefusedError) Error() string {
	msg := e.Body.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("registration refused: %s", msg)
}

// Is makes errors.Is(err, ErrRegistrationRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRegistrationRefused }

// RegisterConfig configures Register.
type RegisterConfig struct {
	// ServerURL is the server's base URL, e.g. https://fleet.example.com.
	ServerURL string
	// ActivationID and ActivationCode come from the operator's activation.
	// The code is never logged.
	ActivationID   string
	ActivationCode string
	// Transport says how to trust the server.
	Transport Transport
	// Host is reported to the server. Zero: HostInfo() is collected.
	Host agentproto.HostInfo
	// HTTPClient overrides the client built from Transport (tests, swarm).
	HTTPClient *http.Client
	// Timeout bounds the whole registration call. Default 60s.
	Timeout time.Duration
	// Now stamps Identity.RegisteredAt. Default time.Now.
	Now func() time.Time
}

// CheckAndSetDefaults validates the configuration and fills in defaults.
func (c *RegisterConfig) CheckAndSetDefaults() error {
	if c.ActivationID == "" {
		return errors.New("activation ID is required")
	}
	if c.ActivationCode == "" {
		return errors.New("activation code is required")
	}
	if err := c.Transport.Check(); err != nil {
		return err
	}
	if err := c.Transport.CheckURL(c.ServerURL); err != nil {
		return err
	}
	if c.Host.PlatformType == "" && c.Host.Hostname == "" {
		c.Host = HostInfo()
	}
	if c.HTTPClient == nil {
		hc, err := c.Transport.HTTPClient()
		if err != nil {
			return err
		}
		c.HTTPClient = hc
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// maxErrorBody bounds how much of a refusal body is read.
const maxErrorBody = 64 << 10

// Register exchanges an activation for a node identity (POST
// agentproto.PathRegister). It does not touch the state dir; callers persist
// the result with SaveIdentity. A refusal by the server is a *RefusedError.
func Register(ctx context.Context, cfg RegisterConfig) (Identity, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return Identity{}, err
	}
	base, _ := parseServerURL(cfg.ServerURL) // checked by CheckURL
	body, err := json.Marshal(agentproto.RegisterRequest{
		ActivationID:   cfg.ActivationID,
		ActivationCode: cfg.ActivationCode,
		Host:           cfg.Host,
	})
	if err != nil {
		return Identity{}, fmt.Errorf("marshal register request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint(base, agentproto.PathRegister), bytes.NewReader(body))
	if err != nil {
		return Identity{}, fmt.Errorf("build register request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "fleetops-agent/"+Version)
	resp, err := cfg.HTTPClient.Do(req)
	if err != nil {
		return Identity{}, fmt.Errorf("register with %s: %w", base.Redacted(), err)
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		rerr := &RefusedError{StatusCode: resp.StatusCode}
		var er agentproto.ErrorResponse
		if b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody)); json.Unmarshal(b, &er) == nil {
			rerr.Body = er.Error
		}
		if resp.StatusCode >= 500 ||
			(rerr.Body.Message == "" && resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusForbidden) {
			// Not a refusal but a broken or unexpected server (or a proxy
			// in the way): report it as a plain error.
			return Identity{}, fmt.Errorf("register with %s: unexpected HTTP %d", base.Redacted(), resp.StatusCode)
		}
		return Identity{}, rerr
	}
	var rr agentproto.RegisterResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, agentproto.MaxMessageBytes)).Decode(&rr); err != nil {
		return Identity{}, fmt.Errorf("decode register response: %w", err)
	}
	id := Identity{
		InstanceID:        rr.InstanceID,
		Secret:            rr.Secret,
		ServerURL:         base.String(),
		CAFile:            cfg.Transport.CAFile,
		ServerFingerprint: cfg.Transport.ServerFingerprint,
		Insecure:          cfg.Transport.Insecure,
		RegisteredAt:      cfg.Now().UTC(),
	}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("server answered an unusable identity: %w", err)
	}
	return id, nil
}
