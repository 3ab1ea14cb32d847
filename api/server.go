// Package api is the fleetops HTTP surface: the operator API under /v1, the
// agent endpoints, health and metrics, the install script and the web
// console. Handlers are thin: they authenticate, validate and call the store,
// the gateway or Temporal.
package api

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fleetops/fleetops/internal/gateway"
	"github.com/fleetops/fleetops/internal/store"
)

// Store is the persistence the API needs; *store.Store implements it.
type Store interface {
	Ping(ctx context.Context) error

	CreateActivation(ctx context.Context, a *store.Activation) error
	ListActivations(ctx context.Context) ([]store.Activation, error)
	DeleteActivation(ctx context.Context, id string) error
	RegisterInstance(ctx context.Context, activationID, codeHash string, inst *store.Instance, now time.Time) error

	GetInstance(ctx context.Context, id string) (*store.Instance, error)
	ListInstances(ctx context.Context, f store.InstanceFilter) ([]store.Instance, string, error)
	AuthenticateInstance(ctx context.Context, id, secretHash string) (*store.Instance, error)
	TagInstance(ctx context.Context, id string, tags map[string]string) error
	UntagInstance(ctx context.Context, id string, keys []string) error
	DeregisterInstance(ctx context.Context, id string) error
	CountInstancesBy(ctx context.Context, column string) (map[string]int, error)

	CreateGroup(ctx context.Context, g *store.ResourceGroup) error
	GetGroup(ctx context.Context, name string) (*store.ResourceGroup, error)
	ListGroups(ctx context.Context) ([]store.ResourceGroup, error)
	DeleteGroup(ctx context.Context, name string) error

	CreateAPIToken(ctx context.Context, t *store.APIToken) error
	ListAPITokens(ctx context.Context) ([]store.APIToken, error)
	RevokeAPIToken(ctx context.Context, id string, now time.Time) error
	AuthenticateToken(ctx context.Context, hash string, now time.Time) (*store.APIToken, error)

	AppendAudit(ctx context.Context, e *store.AuditEvent) error
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, string, error)

	CreateDocument(ctx context.Context, d *store.Document) error
	UpdateDocument(ctx context.Context, d *store.Document) error
	GetDocument(ctx context.Context, name string, version int) (store.Document, store.DocumentHead, error)
	SetDefaultDocumentVersion(ctx context.Context, name string, version int) error
	ListDocuments(ctx context.Context, f store.DocumentFilter) ([]store.DocumentHead, string, error)
	DocumentVersions(ctx context.Context, name string) ([]store.Document, error)
	DeleteDocument(ctx context.Context, name string, version int) error

	ResolveTargets(ctx context.Context, targets []store.Target) ([]store.Instance, error)
	InstancesByID(ctx context.Context, ids []string) (map[string]store.Instance, error)
	CreateCommand(ctx context.Context, c *store.Command) error
	GetCommand(ctx context.Context, id string) (store.Command, error)
	ListCommands(ctx context.Context, f store.CommandFilter) ([]store.Command, string, error)
	UpdateCommandStatus(ctx context.Context, id, status, details string, c store.CommandCounters, finishedAt *time.Time) error
	CreateInvocations(ctx context.Context, commandID string, rows []store.Invocation) error
	GetInvocation(ctx context.Context, k store.InvocationKey) (store.Invocation, error)
	ListInvocations(ctx context.Context, f store.InvocationFilter) ([]store.Invocation, string, error)
	CountInvocations(ctx context.Context, commandID string) (map[string]int, error)
	InvocationGauges(ctx context.Context) (inFlight, queuedOffline int, err error)
	CountCommandsByStatus(ctx context.Context) (map[string]int, error)

	CreateSession(ctx context.Context, s *store.Session) error
	GetSession(ctx context.Context, id string) (store.Session, error)
	ListSessions(ctx context.Context, f store.SessionFilter) ([]store.Session, string, error)
	ConsumeStreamToken(ctx context.Context, id, tokenHash string, now time.Time) (store.Session, error)
	SetStreamToken(ctx context.Context, id, tokenHash string, expiresAt time.Time) error
	EndSession(ctx context.Context, id, status, details string, now time.Time) error
	CountActiveSessions(ctx context.Context, target string) (int, error)
	CountActiveSessionsByStatus(ctx context.Context) (map[string]int, error)
	GetAgentRoute(ctx context.Context, instanceID string) (string, error)
	CountActiveSessionsVia(ctx context.Context, gatewayURL string) (int, error)
	Recording(ctx context.Context, id string) (string, error)
}

// Gateway is the agent connection hub as the API sees it.
type Gateway interface {
	Serve(w http.ResponseWriter, r *http.Request, instanceID string)
	Kick(instanceID, reason string)
	IsConnected(instanceID string) bool
}

var _ Gateway = (*gateway.Gateway)(nil)

// HealthChecker reports whether a dependency (Temporal) is reachable.
type HealthChecker interface {
	CheckHealth(ctx context.Context) error
}

// Config configures the API server.
type Config struct {
	Store    Store
	Gateway  Gateway
	Temporal HealthChecker
	// Workflows starts and cancels commands and sessions; nil answers 503
	// for them.
	Workflows Workflows
	// SessionBridge bridges session streams; nil disables sessions.
	SessionBridge SessionBridge
	// Sessions are the Session Manager preferences.
	Sessions SessionPreferences
	// Webhook receives session audit events; nil sends none.
	Webhook *Webhook
	Logger  *slog.Logger
	// Registry receives the API's metrics and is served on /metrics.
	Registry *prometheus.Registry
	// Console serves the web console at /; nil serves none.
	Console http.Handler
	// InstallFiles holds install.sh and the systemd unit (deploy.Files).
	InstallFiles fs.FS
	// AgentBinaryDir holds fleetops-agent binaries served under
	// /downloads/ (fleetops-agent-linux-amd64 or plain fleetops-agent).
	AgentBinaryDir string
	// PublicURL is how agents reach this server, used in install lines.
	PublicURL string
	// ServerFingerprint is "sha256:<hex>" of the TLS leaf, printed in
	// install lines so agents can pin it; empty without TLS.
	ServerFingerprint string
	// ServerKeyPin is curl's --pinnedpubkey form ("sha256//<base64>") of
	// the TLS key, used by install lines; empty without TLS.
	ServerKeyPin string
	// TemporalUIURL is linked from the console.
	TemporalUIURL string
	// TrustedProxies are the addresses or CIDRs of reverse proxies whose
	// X-Forwarded-For headers are believed; none by default.
	TrustedProxies []string
	// ReplicaURL is the URL other replicas reach this one at. With it, a
	// session stream or data channel for an agent connected to another
	// replica is forwarded there (the route is in the store); empty (a
	// single replica) forwards nothing.
	ReplicaURL string
	// ReplicaTransport carries forwarded requests; http.DefaultTransport
	// when nil.
	ReplicaTransport http.RoundTripper
	// Version is the server version shown in the console.
	Version string
	// Now is the clock.
	Now func() time.Time
}

// CheckAndSetDefaults validates the configuration and fills defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Store == nil || c.Gateway == nil {
		return errors.New("api: Store and Gateway are required")
	}
	if c.Registry == nil {
		return errors.New("api: Registry is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Sessions.setDefaults()
	return nil
}

// Server holds the API's dependencies; its methods are the handlers.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	engine  *gin.Engine
}

// New builds the HTTP handler.
func New(cfg Config) (*Server, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registry, cfg.Store)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "api"), metrics: m}
	s.engine = s.routes()
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// Audit source addresses come from the TCP peer unless the operator
	// names the proxies whose X-Forwarded-For may be believed.
	if err := r.SetTrustedProxies(s.cfg.TrustedProxies); err != nil {
		s.log.Error("invalid trusted proxies; trusting none", "err", err)
		_ = r.SetTrustedProxies(nil)
	}
	r.Use(s.recoverer(), s.observe())
	r.HandleMethodNotAllowed = true
	r.NoRoute(func(c *gin.Context) {
		if s.cfg.Console != nil && c.Request.Method == http.MethodGet && !isAPIPath(c.Request.URL.Path) {
			s.cfg.Console.ServeHTTP(c.Writer, c.Request)
			return
		}
		fail(c, notFound("NotFound", "no route for %s %s", c.Request.Method, c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		fail(c, &Error{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: "method not allowed"})
	})

	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})))
	r.GET("/install.sh", s.installScript)
	r.GET("/downloads/:file", s.download)

	agent := r.Group("/agent/v1")
	agent.POST("/register", s.registerAgent)
	agent.GET("/connect", s.agentAuth(), s.connectAgent)
	agent.GET("/sessions/:id/data", s.agentAuth(), s.sessionData)
	// The stream authenticates with the session's own single-use token.
	r.GET("/v1/sessions/:id/stream", s.streamSession)

	v1 := r.Group("/v1", s.operatorAuth(), s.audit())
	v1.GET("/console/config", s.consoleConfig)
	v1.GET("/fleet/summary", s.fleetSummary)

	v1.POST("/activations", s.createActivation)
	v1.GET("/activations", s.listActivations)
	v1.DELETE("/activations/:id", s.deleteActivation)

	v1.GET("/instances", s.listInstances)
	v1.GET("/instances/:id", s.getInstance)
	v1.POST("/instances/:id/tags", s.tagInstance)
	v1.POST("/instances/:id/untag", s.untagInstance)
	v1.POST("/instances/:id/deregister", s.deregisterInstance)

	v1.POST("/groups", s.createGroup)
	v1.GET("/groups", s.listGroups)
	v1.GET("/groups/:name", s.getGroup)
	v1.DELETE("/groups/:name", s.deleteGroup)
	v1.GET("/groups/:name/members", s.groupMembers)

	v1.POST("/tokens", s.createToken)
	v1.GET("/tokens", s.listTokens)
	v1.DELETE("/tokens/:id", s.revokeToken)

	v1.GET("/audit", s.listAudit)

	v1.POST("/documents", s.createDocument)
	v1.GET("/documents", s.listDocuments)
	v1.GET("/documents/:name", s.getDocument)
	v1.PUT("/documents/:name", s.updateDocument)
	v1.DELETE("/documents/:name", s.deleteDocument)
	v1.GET("/documents/:name/versions", s.documentVersions)
	v1.PUT("/documents/:name/default-version", s.setDefaultDocumentVersion)

	v1.POST("/commands", s.sendCommand)
	v1.GET("/commands", s.listCommands)
	v1.GET("/commands/:id", s.getCommand)
	v1.POST("/commands/:id/cancel", s.cancelCommand)
	v1.GET("/commands/:id/invocations", s.listInvocations)
	v1.GET("/commands/:id/invocations/:instanceId", s.getInvocation)
	v1.GET("/commands/:id/invocations/:instanceId/output", s.invocationOutput)
	v1.GET("/invocations", s.listInvocations)

	v1.POST("/sessions", s.startSession)
	v1.GET("/sessions", s.listSessions)
	v1.GET("/sessions/:id", s.getSession)
	v1.POST("/sessions/:id/resume", s.resumeSession)
	v1.POST("/sessions/:id/terminate", s.terminateSession)
	v1.GET("/sessions/:id/recording", s.sessionRecording)
	return r
}

func isAPIPath(p string) bool {
	for _, prefix := range []string{"/v1/", "/agent/"} {
		if len(p) >= len(prefix) && p[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}

// recoverer turns a panic into a 500 without leaking its value.
func (s *Server) recoverer() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panic", "path", c.FullPath(), "panic", v)
				fail(c, &Error{Status: http.StatusInternalServerError, Code: "InternalServerError", Message: "internal server error"})
			}
		}()
		c.Next()
	}
}

// observe records the request duration metric and logs failures.
func (s *Server) observe() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := s.cfg.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		s.metrics.requestDuration.WithLabelValues(c.Request.Method, route, statusLabel(status)).Observe(s.cfg.Now().Sub(start).Seconds())
		for _, e := range c.Errors {
			s.log.Error("request failed", "method", c.Request.Method, "route", route, "status", status, "err", e.Err)
		}
	}
}

func statusLabel(code int) string {
	return http.StatusText(code)
}
