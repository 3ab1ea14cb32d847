package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/document"
	"github.com/fleetops/fleetops/internal/gateway"
	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/workflows"
)

// SessionBridge joins stream WebSockets to agents' data channels.
type SessionBridge interface {
	ServeClient(w http.ResponseWriter, r *http.Request, info gateway.SessionInfo)
	ServeAgent(w http.ResponseWriter, r *http.Request, instanceID, sessionID string)
	// Bridges reports whether this replica bridges the session now.
	Bridges(sessionID string) bool
}

// SessionPreferences are the server's Session Manager settings, SSM's
// SSM-SessionManagerRunShell preferences.
type SessionPreferences struct {
	IdleTimeout  time.Duration // default 20 min
	MaxDuration  time.Duration // 0: none
	RunAsUser    string        // "": the agent's default session user
	ShellProfile string
	Recording    bool
	RecordInput  bool
	// DocumentsMayDisableRecording lets a Session document turn off the
	// recording (or input recording) the server's settings turn on; by
	// default documents can only turn recording on.
	DocumentsMayDisableRecording bool
	// MaxPerNode and MaxPerServer bound active sessions (5 and 1000).
	MaxPerNode   int
	MaxPerServer int
	// TokenTTL is how long a stream token may be used (60 s).
	TokenTTL time.Duration
}

func (p *SessionPreferences) setDefaults() {
	if p.IdleTimeout <= 0 {
		p.IdleTimeout = 20 * time.Minute
	}
	if p.MaxPerNode <= 0 {
		p.MaxPerNode = 5
	}
	if p.MaxPerServer <= 0 {
		p.MaxPerServer = 1000
	}
	if p.TokenTTL <= 0 {
		p.TokenTTL = time.Minute
	}
}

// with layers a Session document's preferences over the server's. The
// server's settings are policy a document can tighten but not loosen: a
// document may shorten the maximum duration and turn recording on, never
// lengthen the server's maximum, nor turn its recording off unless
// DocumentsMayDisableRecording says it may.
func (p SessionPreferences) with(d document.SessionPreferences) SessionPreferences {
	if d.IdleTimeoutMinutes > 0 {
		p.IdleTimeout = time.Duration(d.IdleTimeoutMinutes) * time.Minute
	}
	if m := time.Duration(d.MaxDurationMinutes) * time.Minute; m > 0 && (p.MaxDuration == 0 || m < p.MaxDuration) {
		p.MaxDuration = m
	}
	if d.RunAsEnabled {
		p.RunAsUser = d.RunAsDefaultUser
	}
	if d.ShellProfileLinux != "" {
		p.ShellProfile = d.ShellProfileLinux
	}
	setFlag := func(dst *bool, doc *bool) {
		if doc != nil && (*doc || p.DocumentsMayDisableRecording) {
			*dst = *doc
		}
	}
	setFlag(&p.Recording, d.RecordingEnabled)
	setFlag(&p.RecordInput, d.RecordInput)
	return p
}

// sessionPreferences loads the stored Session document name. A missing
// document is nil unless required; a Command document is a 400.
func (s *Server) sessionPreferences(ctx context.Context, name string, required bool) (*document.SessionPreferences, error) {
	row, _, err := s.cfg.Store.GetDocument(ctx, name, 0)
	switch {
	case errors.Is(err, store.ErrNotFound) && !required:
		return nil, nil
	case errors.Is(err, store.ErrNotFound):
		return nil, &Error{Status: http.StatusBadRequest, Code: "InvalidDocument", Field: "documentName",
			Message: fmt.Sprintf("document %q does not exist; use a stored Session document or %s, %s, %s or %s", truncate(name, 100), docRunShell, docInteractive, docPortForward, docPortForwardHost)}
	case err != nil:
		return nil, err
	case row.DocumentType != documentTypeSession:
		return nil, &Error{Status: http.StatusBadRequest, Code: "InvalidDocument", Field: "documentName",
			Message: fmt.Sprintf("document %s is a %s document, not a Session document", truncate(name, 100), row.DocumentType)}
	}
	d, err := document.ParseSession([]byte(row.Content), document.Format(row.DocumentFormat))
	if err != nil {
		return nil, err // stored content was valid when stored; a parser change is a server bug
	}
	return &d.Preferences, nil
}

// Session documents, as SSM names them.
const (
	docRunShell        = "SSM-SessionManagerRunShell"
	docInteractive     = "AWS-StartInteractiveCommand"
	docPortForward     = "AWS-StartPortForwardingSession"
	docPortForwardHost = "AWS-StartPortForwardingSessionToRemoteHost"
)

type startSessionRequest struct {
	Target       string              `json:"target"`
	DocumentName string              `json:"documentName"`
	Reason       string              `json:"reason"`
	Parameters   map[string][]string `json:"parameters"`
}

// sessionJSON is SSM's Session in lowerCamel.
type sessionJSON struct {
	SessionID          string     `json:"sessionId"`
	Target             string     `json:"target"`
	Owner              string     `json:"owner"`
	Status             string     `json:"status"`
	Reason             string     `json:"reason"`
	DocumentName       string     `json:"documentName"`
	Kind               string     `json:"kind"`
	StartDate          time.Time  `json:"startDate"`
	EndDate            *time.Time `json:"endDate,omitempty"`
	Details            string     `json:"details"`
	IdleSessionTimeout int        `json:"idleSessionTimeoutSeconds"`
	MaxSessionDuration int        `json:"maxSessionDurationSeconds"`
	RecordingBytes     int64      `json:"recordingBytes"`
	// RecordingTruncated says the recording stopped at the size cap.
	RecordingTruncated bool `json:"recordingTruncated"`
}

func toSessionJSON(s store.Session) sessionJSON {
	return sessionJSON{
		SessionID: s.SessionID, Target: s.Target, Owner: s.Owner, Status: s.Status, Reason: s.Reason,
		DocumentName: s.DocumentName, Kind: s.Kind, StartDate: s.StartedAt.UTC(), EndDate: utc(s.EndedAt),
		Details: s.Details, IdleSessionTimeout: s.IdleTimeoutSeconds, MaxSessionDuration: s.MaxDurationSeconds,
		RecordingBytes: s.RecordingBytes, RecordingTruncated: s.RecordingTruncated,
	}
}

var ownerChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// newSessionID is SSM's "<caller>-<random>".
func newSessionID(owner string) (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	prefix := ownerChars.ReplaceAllString(owner, "-")
	prefix = strings.Trim(prefix, "-")
	if len(prefix) > 64 {
		prefix = prefix[:64]
	}
	if prefix == "" {
		prefix = "session"
	}
	return prefix + "-" + hex.EncodeToString(b), nil
}

// sessionFromRequest applies the session document and its parameters. The
// server's flags are the defaults; a stored SSM-SessionManagerRunShell
// document overrides them for every session (as SSM keeps account
// preferences in that document), and a custom Standard_Stream document
// named in the request overrides them for its shells.
func (s *Server) sessionFromRequest(ctx context.Context, req startSessionRequest) (store.Session, error) {
	p := s.cfg.Sessions
	custom := !slices.Contains([]string{"", docRunShell, docInteractive, docPortForward, docPortForwardHost}, req.DocumentName)
	prefsDoc := docRunShell
	if custom {
		prefsDoc = req.DocumentName
	}
	prefs, err := s.sessionPreferences(ctx, prefsDoc, custom)
	if err != nil {
		return store.Session{}, err
	}
	if prefs != nil {
		p = p.with(*prefs)
	}
	sess := store.Session{
		Target: req.Target, Reason: req.Reason, DocumentName: req.DocumentName,
		IdleTimeoutSeconds: int(p.IdleTimeout / time.Second), MaxDurationSeconds: int(p.MaxDuration / time.Second),
		RunAsUser: p.RunAsUser, ShellProfile: p.ShellProfile,
	}
	param := func(name, def string) (string, error) {
		v, ok := req.Parameters[name]
		switch {
		case !ok || len(v) == 0:
			return def, nil
		case len(v) > 1:
			return "", badRequest("parameters."+name, "parameter %s takes one value", name)
		}
		return v[0], nil
	}
	port := func(name, def string) (int, error) {
		v, err := param(name, def)
		if err != nil {
			return 0, err
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return 0, badRequest("parameters."+name, "%s must be a TCP port (1–65535)", name)
		}
		return n, nil
	}
	allowed := map[string]bool{}
	switch req.DocumentName {
	case docInteractive:
		sess.Kind = agentproto.SessionCommand
		allowed["command"] = true
		if sess.Command, err = param("command", ""); err == nil && strings.TrimSpace(sess.Command) == "" {
			err = badRequest("parameters.command", "parameter command is required")
		}
	case docPortForward, docPortForwardHost:
		sess.Kind = agentproto.SessionPort
		allowed["portNumber"], allowed["localPortNumber"] = true, true
		sess.Host = "localhost"
		if req.DocumentName == docPortForwardHost {
			allowed["host"] = true
			if sess.Host, err = param("host", ""); err == nil && (sess.Host == "" || len(sess.Host) > 253) {
				err = badRequest("parameters.host", "parameter host is required (a name or address on the node's network)")
			}
		}
		if err == nil {
			sess.Port, err = port("portNumber", "80")
		}
		if err == nil {
			_, err = port("localPortNumber", "1")
		}
	case "", docRunShell:
		sess.DocumentName = docRunShell
		fallthrough
	default: // a stored Standard_Stream document (sessionPreferences checked it): a shell
		sess.Kind = agentproto.SessionShell
	}
	if err != nil {
		return sess, err
	}
	if sess.Kind != agentproto.SessionPort { // port forwards carry no terminal to record
		sess.RecordingEnabled, sess.RecordInput = p.Recording, p.RecordInput
	}
	for name := range req.Parameters {
		if !allowed[name] {
			return sess, badRequest("parameters."+name, "document %s has no parameter %s", sess.DocumentName, truncate(name, 50))
		}
	}
	return sess, nil
}

func (s *Server) startSession(c *gin.Context) {
	ctx := c.Request.Context()
	var req startSessionRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	auditAs(c, "session.start", "instance/"+truncate(req.Target, 20))
	if !agentproto.ValidInstanceID(req.Target) {
		fail(c, badRequest("target", "target %q is not of the form mi-<17 hex digits>", truncate(req.Target, 30)))
		return
	}
	if err := validateText("reason", req.Reason, 256); err != nil {
		fail(c, err)
		return
	}
	sess, err := s.sessionFromRequest(ctx, req)
	if err != nil {
		fail(c, err)
		return
	}
	if s.cfg.Workflows == nil || s.cfg.SessionBridge == nil {
		fail(c, &Error{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "sessions are not available on this server"})
		return
	}
	inst, err := s.cfg.Store.GetInstance(ctx, req.Target)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, badRequest("target", "target %s is not a managed node", req.Target))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	if inst.PingStatus != store.PingOnline {
		fail(c, &Error{Status: http.StatusConflict, Code: "TargetNotConnected", Field: "target",
			Message: fmt.Sprintf("target %s is %s: its agent is not connected", req.Target, inst.PingStatus)})
		return
	}
	if err := s.checkSessionLimits(ctx, req.Target); err != nil {
		fail(c, err)
		return
	}
	owner := actor(c)
	if sess.SessionID, err = newSessionID(owner); err != nil {
		fail(c, err)
		return
	}
	token, err := randomToken(32)
	if err != nil {
		fail(c, err)
		return
	}
	now := s.cfg.Now().UTC()
	sess.Owner, sess.Status, sess.StartedAt, sess.SourceIP = owner, gateway.SessionConnecting, now, c.ClientIP()
	sess.StreamTokenHash, sess.StreamTokenExpiresAt = store.HashSecret(token), now.Add(s.cfg.Sessions.TokenTTL)
	auditAs(c, "session.start", "session/"+sess.SessionID+" target="+req.Target)
	if err := s.cfg.Store.CreateSession(ctx, &sess); err != nil {
		fail(c, err)
		return
	}
	err = s.cfg.Workflows.StartSession(ctx, workflows.SessionInput{
		SessionID: sess.SessionID, IdleTimeout: time.Duration(sess.IdleTimeoutSeconds) * time.Second,
		MaxDuration: time.Duration(sess.MaxDurationSeconds) * time.Second,
	})
	if err != nil {
		s.log.Error("start session workflow", "sessionId", sess.SessionID, "err", err)
		_ = s.cfg.Store.EndSession(context.WithoutCancel(ctx), sess.SessionID, gateway.SessionFailed, "could not start the session's workflow", s.cfg.Now())
		fail(c, temporalDown("start the session"))
		return
	}
	s.notify(c, "session.start", sess)
	c.JSON(http.StatusCreated, gin.H{"session": toSessionJSON(sess), "tokenValue": token, "streamUrl": streamURL(sess.SessionID)})
}

func streamURL(id string) string { return "/v1/sessions/" + id + "/stream" }

func (s *Server) checkSessionLimits(ctx context.Context, target string) error {
	n, err := s.cfg.Store.CountActiveSessions(ctx, target)
	if err != nil {
		return err
	}
	if n >= s.cfg.Sessions.MaxPerNode {
		return &Error{Status: http.StatusTooManyRequests, Code: "SessionLimitExceeded", Field: "target",
			Message: fmt.Sprintf("target %s already has %d active sessions (limit %d)", target, n, s.cfg.Sessions.MaxPerNode)}
	}
	if n, err = s.activeOnBridgingServer(ctx, target); err != nil {
		return err
	}
	if n >= s.cfg.Sessions.MaxPerServer {
		return &Error{Status: http.StatusTooManyRequests, Code: "SessionLimitExceeded",
			Message: fmt.Sprintf("the server that would bridge this session already bridges %d active sessions (limit %d)", n, s.cfg.Sessions.MaxPerServer)}
	}
	return nil
}

// activeOnBridgingServer counts the active sessions of the server that
// would bridge a session to target: with several replicas, the one holding
// its agent (each replica's limit is its own); otherwise all of them.
func (s *Server) activeOnBridgingServer(ctx context.Context, target string) (int, error) {
	if s.cfg.ReplicaURL != "" {
		route, err := s.cfg.Store.GetAgentRoute(ctx, target)
		if err == nil {
			return s.cfg.Store.CountActiveSessionsVia(ctx, route)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
	}
	return s.cfg.Store.CountActiveSessions(ctx, "")
}

func (s *Server) session(c *gin.Context) (store.Session, bool) {
	sess, err := s.cfg.Store.GetSession(c.Request.Context(), c.Param("id"))
	if err != nil {
		fail(c, notFoundAs(err, "DoesNotExistException", "no session %q", truncate(c.Param("id"), 100)))
		return store.Session{}, false
	}
	return sess, true
}

func (s *Server) getSession(c *gin.Context) {
	if sess, ok := s.session(c); ok {
		c.JSON(http.StatusOK, gin.H{"session": toSessionJSON(sess)})
	}
}

func (s *Server) listSessions(c *gin.Context) {
	q := listQuery{c: c}
	var f store.SessionFilter
	f.MaxResults, f.NextToken = q.page()
	switch c.DefaultQuery("state", "Active") {
	case "Active":
		f.Active = true
	case "History":
	default:
		q.keep(badRequest("state", "state must be Active or History"))
	}
	f.Target, f.Owner = c.Query("target"), c.Query("owner")
	f.Statuses = multiQuery(c, "status")
	f.After = q.time("after")
	f.Before = q.time("before")
	listPage(c, q.err, s.cfg.Store.ListSessions, f, "sessions", toSessionJSON)
}

// resumeSession issues a new stream token for a session whose client was
// disconnected (SSM's ResumeSession).
func (s *Server) resumeSession(c *gin.Context) {
	auditAs(c, "session.resume", "session/"+truncate(c.Param("id"), 100))
	sess, ok := s.session(c)
	if !ok {
		return
	}
	if sess.Status == gateway.SessionTerminated || sess.Status == gateway.SessionFailed || sess.EndedAt != nil {
		fail(c, notFound("DoesNotExistException", "session %s has ended", sess.SessionID))
		return
	}
	token, err := randomToken(32)
	if err != nil {
		fail(c, err)
		return
	}
	if err := s.cfg.Store.SetStreamToken(c.Request.Context(), sess.SessionID, store.HashSecret(token), s.cfg.Now().UTC().Add(s.cfg.Sessions.TokenTTL)); err != nil {
		fail(c, err)
		return
	}
	s.notify(c, "session.resume", sess)
	c.JSON(http.StatusOK, gin.H{"sessionId": sess.SessionID, "tokenValue": token, "streamUrl": streamURL(sess.SessionID)})
}

func (s *Server) terminateSession(c *gin.Context) {
	auditAs(c, "session.terminate", "session/"+truncate(c.Param("id"), 100))
	if !s.requireWorkflows(c) {
		return
	}
	sess, ok := s.session(c)
	if !ok {
		return
	}
	if sess.EndedAt == nil {
		if err := s.cfg.Workflows.TerminateSession(c.Request.Context(), sess.SessionID, actor(c)); err != nil {
			s.log.Error("signal session terminate", "sessionId", sess.SessionID, "err", err)
			fail(c, temporalDown("terminate the session"))
			return
		}
	}
	s.notify(c, "session.terminate", sess)
	c.JSON(http.StatusOK, gin.H{"sessionId": sess.SessionID})
}

func (s *Server) sessionRecording(c *gin.Context) {
	sess, ok := s.session(c)
	if !ok {
		return
	}
	rec, err := s.cfg.Store.Recording(c.Request.Context(), sess.SessionID)
	if err != nil {
		fail(c, err)
		return
	}
	if rec == "" {
		fail(c, notFound("DoesNotExistException", "session %s has no recording", sess.SessionID))
		return
	}
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.cast"`, sess.SessionID))
	c.Data(http.StatusOK, "application/x-asciicast", []byte(rec))
}

// streamSession is the client's stream WebSocket. Its credential is the
// session's single-use token (Authorization: Bearer, or ?token= for
// browsers), not an API token.
func (s *Server) streamSession(c *gin.Context) {
	token, ok := bearer(c.Request)
	if !ok {
		token = c.Query("token")
	}
	if token == "" {
		fail(c, unauthorized("a session token is required: start or resume the session to get one"))
		return
	}
	if s.forwardStream(c, c.Param("id")) {
		return
	}
	sess, err := s.cfg.Store.ConsumeStreamToken(c.Request.Context(), c.Param("id"), store.HashSecret(token), s.cfg.Now().UTC())
	if errors.Is(err, store.ErrUnauthorized) || errors.Is(err, store.ErrNotFound) {
		fail(c, unauthorized("the session token is invalid, expired or already used"))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	s.cfg.SessionBridge.ServeClient(c.Writer, c.Request, gateway.SessionInfo{
		SessionID: sess.SessionID, Target: sess.Target, Kind: sess.Kind, RunAsUser: sess.RunAsUser,
		ShellProfile: sess.ShellProfile, Command: sess.Command, Host: sess.Host, Port: sess.Port,
		Recording: sess.RecordingEnabled, RecordInput: sess.RecordInput, Connection: sess.Connections,
		IdleTimeout: time.Duration(sess.IdleTimeoutSeconds) * time.Second,
	})
}

// sessionData is an agent's data channel for a session.
func (s *Server) sessionData(c *gin.Context) {
	if s.cfg.SessionBridge == nil {
		fail(c, notFound("NotFound", "sessions are not available on this server"))
		return
	}
	instanceID, sessionID := c.GetString(ctxInstanceID), c.Param("id")
	if !s.cfg.SessionBridge.Bridges(sessionID) && s.forwardToAgentReplica(c, instanceID, "data_channel") {
		return
	}
	s.cfg.SessionBridge.ServeAgent(c.Writer, c.Request, instanceID, sessionID)
}
