package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/document"
	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/workflows"
)

// Workflows starts and signals the durable operations on Temporal.
type Workflows interface {
	StartCommand(ctx context.Context, in workflows.RunCommandInput) error
	CancelCommand(ctx context.Context, commandID string, req workflows.CancelRequest) error
	StartSession(ctx context.Context, in workflows.SessionInput) error
	TerminateSession(ctx context.Context, sessionID, by string) error
}

// requireWorkflows fails the request with 503 when the server runs without
// Temporal, and reports whether the handler may go on.
func (s *Server) requireWorkflows(c *gin.Context) bool {
	if s.cfg.Workflows == nil {
		fail(c, &Error{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "Temporal is not configured on this server"})
		return false
	}
	return true
}

// temporalDown is the 503 for a call to Temporal that failed; action says
// what could not be done.
func temporalDown(action string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "cannot " + action + ": Temporal is unavailable; retry later"}
}

// SendCommand limits (reference 1.1) and ours.
const (
	maxInstanceIDs        = 50
	maxTargets            = 5
	maxTargetValues       = 50
	minTimeoutSeconds     = 30
	maxTimeoutSeconds     = 2592000
	defaultTimeoutSeconds = 3600
	maxCommentChars       = 100
	// DefaultMaxOutputBytes is the output kept per stream per invocation.
	DefaultMaxOutputBytes = 1 << 20
	// stdoutChars and stderrChars are what the invocation view returns,
	// as GetCommandInvocation (reference 1.6); the output endpoint has all.
	stdoutChars = 24000
	stderrChars = 8000
	// maxNestedDocuments bounds aws:runDocument expansion.
	maxNestedDocuments = 3
)

// platforms are those a document is rendered for at send time.
var platforms = []string{document.PlatformLinux, document.PlatformMacOS, document.PlatformWindows}

type targetJSON struct {
	Key    string   `json:"key"`
	Values []string `json:"values"`
}

type sendCommandRequest struct {
	DocumentName    string         `json:"documentName"`
	DocumentVersion string         `json:"documentVersion"`
	InstanceIDs     []string       `json:"instanceIds"`
	Targets         []targetJSON   `json:"targets"`
	Parameters      map[string]any `json:"parameters"`
	MaxConcurrency  string         `json:"maxConcurrency"`
	MaxErrors       string         `json:"maxErrors"`
	TimeoutSeconds  int            `json:"timeoutSeconds"`
	Comment         string         `json:"comment"`
	// MaxOutputBytes overrides the stored output per stream (1 KiB–16 MiB).
	MaxOutputBytes int `json:"maxOutputBytes"`
}

// commandJSON is SSM's Command in lowerCamel.
type commandJSON struct {
	CommandID               string              `json:"commandId"`
	DocumentName            string              `json:"documentName"`
	DocumentVersion         string              `json:"documentVersion"`
	Comment                 string              `json:"comment"`
	Parameters              map[string][]string `json:"parameters"`
	InstanceIDs             []string            `json:"instanceIds"`
	Targets                 []targetJSON        `json:"targets"`
	MaxConcurrency          string              `json:"maxConcurrency"`
	MaxErrors               string              `json:"maxErrors"`
	TimeoutSeconds          int                 `json:"timeoutSeconds"`
	ExecutionTimeoutSeconds int                 `json:"executionTimeoutSeconds"`
	RequestedDateTime       time.Time           `json:"requestedDateTime"`
	ExpiresAfter            time.Time           `json:"expiresAfter"`
	FinishedDateTime        *time.Time          `json:"finishedDateTime,omitempty"`
	Status                  string              `json:"status"`
	StatusDetails           string              `json:"statusDetails"`
	TargetCount             int                 `json:"targetCount"`
	CompletedCount          int                 `json:"completedCount"`
	ErrorCount              int                 `json:"errorCount"`
	DeliveryTimedOutCount   int                 `json:"deliveryTimedOutCount"`
	RequestedBy             string              `json:"requestedBy"`
}

func toCommandJSON(c store.Command) commandJSON {
	out := commandJSON{
		CommandID: c.CommandID, DocumentName: c.DocumentName, DocumentVersion: strconv.Itoa(c.DocumentVersion),
		Comment: c.Comment, MaxConcurrency: c.MaxConcurrency, MaxErrors: c.MaxErrors,
		TimeoutSeconds: c.TimeoutSeconds, ExecutionTimeoutSeconds: c.ExecutionTimeoutSeconds,
		RequestedDateTime: c.RequestedAt.UTC(),
		ExpiresAfter:      c.RequestedAt.UTC().Add(time.Duration(c.TimeoutSeconds+c.ExecutionTimeoutSeconds) * time.Second),
		Status:            c.Status, StatusDetails: c.StatusDetails,
		TargetCount: c.TargetCount, CompletedCount: c.CompletedCount, ErrorCount: c.ErrorCount,
		DeliveryTimedOutCount: c.DeliveryTimedOutCount, RequestedBy: c.RequestedBy,
		Parameters: map[string][]string{}, InstanceIDs: []string{}, Targets: []targetJSON{},
	}
	if c.FinishedAt != nil {
		t := c.FinishedAt.UTC()
		out.FinishedDateTime = &t
	}
	_ = json.Unmarshal([]byte(c.Parameters), &out.Parameters)
	_ = json.Unmarshal([]byte(c.InstanceIDs), &out.InstanceIDs)
	_ = json.Unmarshal([]byte(c.Targets), &out.Targets)
	return out
}

// validate checks everything about a send request that needs no database,
// naming the field at fault.
func (req *sendCommandRequest) validate() error {
	if req.DocumentName == "" {
		return badRequest("documentName", "documentName is required")
	}
	if _, err := parseDocumentVersion("documentVersion", req.DocumentVersion); err != nil {
		return err
	}
	switch {
	case len(req.InstanceIDs) > 0 && len(req.Targets) > 0:
		return badRequest("targets", "give instanceIds or targets, not both")
	case len(req.InstanceIDs) == 0 && len(req.Targets) == 0:
		return badRequest("instanceIds", "instanceIds or targets is required")
	case len(req.InstanceIDs) > maxInstanceIDs:
		return badRequest("instanceIds", "at most %d instanceIds; use targets for more", maxInstanceIDs)
	case len(req.Targets) > maxTargets:
		return badRequest("targets", "at most %d targets", maxTargets)
	}
	seen := map[string]bool{}
	for i, id := range req.InstanceIDs {
		if !agentproto.ValidInstanceID(id) {
			return &Error{Status: http.StatusBadRequest, Code: "InvalidInstanceId", Field: fmt.Sprintf("instanceIds[%d]", i),
				Message: fmt.Sprintf("instance ID %q is not of the form mi-<17 hex digits>", truncate(id, 30))}
		}
		if seen[id] {
			return &Error{Status: http.StatusBadRequest, Code: "DuplicateInstanceId", Field: fmt.Sprintf("instanceIds[%d]", i),
				Message: fmt.Sprintf("instance ID %s is listed twice", id)}
		}
		seen[id] = true
	}
	for i, t := range req.Targets {
		field := fmt.Sprintf("targets[%d]", i)
		if len(t.Values) > maxTargetValues {
			return badRequest(field+".values", "a target takes at most %d values", maxTargetValues)
		}
		if err := store.ValidateTargetKey(store.Target{Key: t.Key, Values: t.Values}); err != nil {
			return badRequest(field, "%s", strings.TrimPrefix(err.Error(), store.ErrInvalidArgument.Error()+": "))
		}
		for j, v := range t.Values {
			if err := validateText(fmt.Sprintf("%s.values[%d]", field, j), v, 256); err != nil {
				return err
			}
		}
	}
	if req.MaxConcurrency == "" {
		req.MaxConcurrency = "50"
	}
	if req.MaxErrors == "" {
		req.MaxErrors = "0"
	}
	if _, err := workflows.ParseRate(req.MaxConcurrency, false); err != nil {
		return badRequest("maxConcurrency", "%v", err)
	}
	if _, err := workflows.ParseRate(req.MaxErrors, true); err != nil {
		return badRequest("maxErrors", "%v", err)
	}
	if req.TimeoutSeconds == 0 {
		req.TimeoutSeconds = defaultTimeoutSeconds
	}
	if req.TimeoutSeconds < minTimeoutSeconds || req.TimeoutSeconds > maxTimeoutSeconds {
		return badRequest("timeoutSeconds", "timeoutSeconds must be from %d to %d", minTimeoutSeconds, maxTimeoutSeconds)
	}
	if err := validateText("comment", req.Comment, maxCommentChars); err != nil {
		return err
	}
	if req.MaxOutputBytes == 0 {
		req.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if req.MaxOutputBytes < 1<<10 || req.MaxOutputBytes > 16<<20 {
		return badRequest("maxOutputBytes", "maxOutputBytes must be from 1024 to 16777216")
	}
	return nil
}

// sendCommand is SendCommand: it validates the request, renders the document
// for every platform, resolves the targets, writes the command and its
// Pending invocations, then starts the RunCommand workflow. The invocations
// are readable when it returns.
func (s *Server) sendCommand(c *gin.Context) {
	ctx := c.Request.Context()
	var req sendCommandRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	commandID := uuid.NewString()
	auditAs(c, "command.send", "command/"+commandID)
	if err := req.validate(); err != nil {
		fail(c, err)
		return
	}
	if !s.requireWorkflows(c) {
		return
	}
	version, _ := parseDocumentVersion("documentVersion", req.DocumentVersion)
	d, err := s.loadDocument(ctx, req.DocumentName, version)
	if err != nil {
		fail(c, err)
		return
	}
	if d.doc == nil {
		fail(c, &Error{Status: http.StatusBadRequest, Code: "InvalidDocument", Field: "documentName",
			Message: fmt.Sprintf("%s is a %s document; Run Command needs a Command document", d.row.Name, d.row.DocumentType)})
		return
	}
	params, err := document.ResolveAny(d.doc, req.Parameters)
	if err != nil {
		fail(c, paramError(err))
		return
	}
	steps, err := s.renderAll(ctx, d.doc, params, 0)
	if err != nil {
		fail(c, err)
		return
	}
	nodes, err := s.resolveNodes(ctx, req)
	if err != nil {
		fail(c, err)
		return
	}

	now := s.cfg.Now().UTC()
	cmd := store.Command{
		CommandID: commandID, DocumentName: d.row.Name, DocumentVersion: d.row.Version, DocumentHash: d.row.Hash,
		Comment: req.Comment, Parameters: mustJSON(paramStrings(params)), InstanceIDs: mustJSON(nonNil(req.InstanceIDs)),
		Targets: mustJSON(nonNilTargets(req.Targets)), MaxConcurrency: req.MaxConcurrency, MaxErrors: req.MaxErrors,
		TimeoutSeconds: req.TimeoutSeconds, ExecutionTimeoutSeconds: document.ExecutionTimeout(d.doc, params),
		MaxOutputBytes: req.MaxOutputBytes, Steps: mustJSON(steps),
		Status: workflows.StatusPending, StatusDetails: workflows.DetailsPending,
		RequestedBy: actor(c), RequestedAt: now,
	}
	if err := s.cfg.Store.CreateCommand(ctx, &cmd); err != nil {
		fail(c, err)
		return
	}
	ids := make([]string, len(nodes))
	rows := make([]store.Invocation, len(nodes))
	for i, n := range nodes {
		ids[i] = n.InstanceID
		rows[i] = store.Invocation{CommandID: commandID, InstanceID: n.InstanceID, InstanceName: firstNonEmpty(n.Name, n.Hostname),
			DocumentName: cmd.DocumentName, Status: workflows.StatusPending, StatusDetails: workflows.DetailsPending, RequestedAt: now}
	}
	if err := s.cfg.Store.CreateInvocations(ctx, commandID, rows); err != nil {
		fail(c, err)
		return
	}
	cmd.TargetCount = len(ids)
	err = s.cfg.Workflows.StartCommand(ctx, workflows.RunCommandInput{
		CommandID: commandID, DocumentName: cmd.DocumentName, InstanceIDs: ids,
		MaxConcurrency: req.MaxConcurrency, MaxErrors: req.MaxErrors,
		TimeoutSeconds: req.TimeoutSeconds, ExecutionTimeoutSeconds: cmd.ExecutionTimeoutSeconds,
	})
	if err != nil {
		// Leave no command that looks alive but will never run.
		s.log.Error("start command workflow", "commandId", commandID, "err", err)
		finished := s.cfg.Now().UTC()
		_ = s.cfg.Store.UpdateCommandStatus(context.WithoutCancel(ctx), commandID, workflows.StatusFailed, workflows.DetailsFailed,
			store.CommandCounters{TargetCount: len(ids)}, &finished)
		fail(c, temporalDown("start the command"))
		return
	}
	c.JSON(http.StatusCreated, gin.H{"command": toCommandJSON(cmd)})
}

// resolveNodes returns the command's targets. Named instances must exist
// (InvalidInstanceId otherwise), as SendCommand checks.
func (s *Server) resolveNodes(ctx context.Context, req sendCommandRequest) ([]store.Instance, error) {
	if len(req.InstanceIDs) > 0 {
		found, err := s.cfg.Store.InstancesByID(ctx, req.InstanceIDs)
		if err != nil {
			return nil, err
		}
		out := make([]store.Instance, 0, len(req.InstanceIDs))
		for i, id := range req.InstanceIDs {
			n, ok := found[id]
			if !ok || n.PingStatus == store.PingInactive {
				return nil, &Error{Status: http.StatusBadRequest, Code: "InvalidInstanceId", Field: fmt.Sprintf("instanceIds[%d]", i),
					Message: fmt.Sprintf("instance %s is not a registered managed node", id)}
			}
			out = append(out, n)
		}
		return out, nil
	}
	targets := make([]store.Target, len(req.Targets))
	for i, t := range req.Targets {
		targets[i] = store.Target{Key: t.Key, Values: t.Values}
	}
	nodes, err := s.cfg.Store.ResolveTargets(ctx, targets)
	if errors.Is(err, store.ErrNotFound) {
		return nil, badRequest("targets", "resource group does not exist")
	}
	return nodes, err
}

// renderAll renders doc for every platform into agent steps, expanding
// aws:runDocument steps that name stored documents. A platform the
// document cannot run on is left out (its nodes end Invalid Platform).
func (s *Server) renderAll(ctx context.Context, doc *document.Document, params map[string]document.Value, depth int) (map[string][]agentproto.Step, error) {
	out := map[string][]agentproto.Step{}
	for _, p := range platforms {
		steps, err := s.render(ctx, doc, params, p, depth)
		if errors.Is(err, document.ErrIncompatiblePlatform) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[p] = steps
	}
	return out, nil
}

func (s *Server) render(ctx context.Context, doc *document.Document, params map[string]document.Value, platform string, depth int) ([]agentproto.Step, error) {
	rendered, err := document.Render(doc, params, platform)
	if err != nil {
		return nil, renderError(err)
	}
	var out []agentproto.Step
	for _, st := range rendered {
		if st.Action == document.ActionRunDocument && !st.Skipped {
			nested, err := s.expandRunDocument(ctx, st, platform, depth)
			if err != nil {
				return nil, err
			}
			out = append(out, nested...)
			continue
		}
		if st.Action == document.ActionDownloadContent && !st.Skipped {
			if err := s.attachDocument(ctx, st); err != nil {
				return nil, err
			}
		}
		inputs, err := json.Marshal(st.Inputs)
		if err != nil {
			return nil, fmt.Errorf("encode step %s: %w", st.Name, err)
		}
		out = append(out, agentproto.Step{Name: st.Name, Action: st.Action, Skipped: st.Skipped, Inputs: inputs, Env: st.Env})
	}
	return out, nil
}

// expandRunDocument replaces an aws:runDocument step by the steps of the
// stored document it names, rendered with its documentParameters; the
// nested steps are named "<step>.<nested step>".
func (s *Server) expandRunDocument(ctx context.Context, st document.Step, platform string, depth int) ([]agentproto.Step, error) {
	in, err := st.RunDocument()
	if err != nil {
		return nil, renderError(err)
	}
	if in.DocumentType != "SSMDocument" {
		return nil, badRequest("documentName", "step %s: aws:runDocument documentType %q is not supported; use SSMDocument", st.Name, in.DocumentType)
	}
	if depth+1 > maxNestedDocuments {
		return nil, badRequest("documentName", "step %s: aws:runDocument nests more than %d documents", st.Name, maxNestedDocuments)
	}
	name, ver, _ := strings.Cut(in.DocumentPath, ":")
	version, err := parseDocumentVersion("documentPath", ver)
	if err != nil {
		return nil, err
	}
	nested, err := s.loadDocument(ctx, name, version)
	if err != nil {
		return nil, fmt.Errorf("step %s: %w", st.Name, err)
	}
	if nested.doc == nil {
		return nil, badRequest("documentName", "step %s: %s is not a Command document", st.Name, name)
	}
	params, err := document.ResolveAny(nested.doc, in.DocumentParameters)
	if err != nil {
		return nil, paramError(fmt.Errorf("step %s: %w", st.Name, err))
	}
	steps, err := s.render(ctx, nested.doc, params, platform, depth+1)
	if err != nil {
		return nil, err
	}
	for i := range steps {
		steps[i].Name = st.Name + "." + steps[i].Name
	}
	return steps, nil
}

// attachDocument resolves an aws:downloadContent step whose source is a
// stored document and puts its content in the step, so the agent needs no
// access to the document store.
func (s *Server) attachDocument(ctx context.Context, st document.Step) error {
	in, err := st.Download()
	if err != nil {
		return renderError(err)
	}
	if in.SourceType != "SSMDocument" {
		return nil
	}
	version, err := parseDocumentVersion("sourceInfo.name", in.DocumentVersion)
	if err != nil {
		return err
	}
	d, err := s.loadDocument(ctx, in.DocumentName, version)
	if err != nil {
		return fmt.Errorf("step %s: %w", st.Name, err)
	}
	st.Inputs["documentName"] = d.row.Name
	st.Inputs["documentContent"] = d.row.Content
	return nil
}

// paramError maps a document parameter problem to 400 naming
// parameters.<name>, as SSM's InvalidParameters.
func paramError(err error) error {
	var pe *document.ParamError
	if errors.As(err, &pe) {
		return &Error{Status: http.StatusBadRequest, Code: "InvalidParameters", Field: "parameters." + pe.Param, Message: err.Error()}
	}
	return err
}

func renderError(err error) error {
	if errors.Is(err, document.ErrIncompatiblePlatform) {
		return err
	}
	if errors.Is(err, document.ErrInvalidParameters) {
		return paramError(err)
	}
	if errors.Is(err, document.ErrInvalidDocument) {
		return &Error{Status: http.StatusBadRequest, Code: "InvalidDocument", Field: "documentName", Message: err.Error()}
	}
	return err
}

func paramStrings(params map[string]document.Value) map[string][]string {
	out := make(map[string][]string, len(params))
	for k, v := range params {
		if v.Type == document.TypeStringList {
			out[k] = v.Items
		} else {
			out[k] = []string{v.Text}
		}
	}
	return out
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain data is encoded here
	}
	return string(b)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilTargets(t []targetJSON) []targetJSON {
	if t == nil {
		return []targetJSON{}
	}
	return t
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// commandStatusFilters are ListCommands' status filter values (reference
// 1.7); the detail tokens select by StatusDetails.
var commandStatusFilters = map[string]bool{
	"Pending": true, "InProgress": true, "Success": true, "Cancelled": true, "Failed": true, "TimedOut": true, "Cancelling": true,
}

func timeQuery(c *gin.Context, name string) (time.Time, error) {
	v := c.Query(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, badRequest(name, "%s must be an RFC 3339 time such as 2026-11-30T12:00:00Z", name)
	}
	return t, nil
}

var commandIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func commandIDParam(c *gin.Context) (string, error) {
	id := c.Param("id")
	if !commandIDPattern.MatchString(id) {
		return "", &Error{Status: http.StatusNotFound, Code: "InvalidCommandId", Message: fmt.Sprintf("no command %q", truncate(id, 40))}
	}
	return id, nil
}

func (s *Server) listCommands(c *gin.Context) {
	q := listQuery{c: c}
	var f store.CommandFilter
	f.MaxResults, f.NextToken = q.page()
	f.Statuses = q.oneOf("status", commandStatusFilters, "status %q must be one of Pending, InProgress, Success, Cancelled, Failed, TimedOut, Cancelling")
	f.DocumentName = c.Query("documentName")
	f.InstanceID = q.instanceID()
	f.RequestedAfter = q.time("invokedAfter")
	f.RequestedBefore = q.time("invokedBefore")
	listPage(c, q.err, s.cfg.Store.ListCommands, f, "commands", toCommandJSON)
}

// command looks up the command id, failing the request (InvalidCommandId
// when there is none) and returning false when it cannot.
func (s *Server) command(c *gin.Context, id string) (store.Command, bool) {
	cmd, err := s.cfg.Store.GetCommand(c.Request.Context(), id)
	if err != nil {
		fail(c, notFoundAs(err, "InvalidCommandId", "no command %s", id))
		return store.Command{}, false
	}
	return cmd, true
}

func (s *Server) getCommand(c *gin.Context) {
	id, err := commandIDParam(c)
	if err != nil {
		fail(c, err)
		return
	}
	cmd, ok := s.command(c, id)
	if !ok {
		return
	}
	counts, err := s.cfg.Store.CountInvocations(c.Request.Context(), id)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"command": toCommandJSON(cmd), "invocationsByStatus": counts})
}

// invocationJSON is SSM's CommandInvocation / GetCommandInvocation merged,
// in lowerCamel.
type invocationJSON struct {
	CommandID             string                  `json:"commandId"`
	InstanceID            string                  `json:"instanceId"`
	InstanceName          string                  `json:"instanceName"`
	DocumentName          string                  `json:"documentName"`
	RequestedDateTime     time.Time               `json:"requestedDateTime"`
	Status                string                  `json:"status"`
	StatusDetails         string                  `json:"statusDetails"`
	ResponseCode          int                     `json:"responseCode"`
	ExecutionStartDate    *time.Time              `json:"executionStartDateTime,omitempty"`
	ExecutionEndDate      *time.Time              `json:"executionEndDateTime,omitempty"`
	StandardOutputContent *string                 `json:"standardOutputContent,omitempty"`
	StandardErrorContent  *string                 `json:"standardErrorContent,omitempty"`
	StandardOutputBytes   *int                    `json:"standardOutputBytes,omitempty"`
	StandardErrorBytes    *int                    `json:"standardErrorBytes,omitempty"`
	CommandPlugins        []agentproto.StepResult `json:"commandPlugins,omitempty"`
}

func toInvocationJSON(inv store.Invocation, detail bool) invocationJSON {
	out := invocationJSON{
		CommandID: inv.CommandID, InstanceID: inv.InstanceID, InstanceName: inv.InstanceName, DocumentName: inv.DocumentName,
		RequestedDateTime: inv.RequestedAt.UTC(), Status: inv.Status, StatusDetails: inv.StatusDetails, ResponseCode: inv.ResponseCode,
		ExecutionStartDate: utc(inv.StartedAt), ExecutionEndDate: utc(inv.EndedAt),
	}
	if detail {
		stdout, stderr := firstChars(inv.Stdout, stdoutChars), firstChars(inv.Stderr, stderrChars)
		nOut, nErr := len(inv.Stdout), len(inv.Stderr)
		out.StandardOutputContent, out.StandardErrorContent = &stdout, &stderr
		out.StandardOutputBytes, out.StandardErrorBytes = &nOut, &nErr
		_ = json.Unmarshal([]byte(inv.StepResults), &out.CommandPlugins)
	}
	return out
}

func utc(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// firstChars returns the first n characters (not bytes) of s.
func firstChars(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// invocationStatusFilters are ListCommandInvocations' status values.
var invocationStatusFilters = map[string]bool{
	"Pending": true, "InProgress": true, "Delayed": true, "Success": true, "Cancelled": true, "Failed": true, "TimedOut": true, "Cancelling": true,
}

func (s *Server) listInvocations(c *gin.Context) {
	q := listQuery{c: c}
	var f store.InvocationFilter
	f.MaxResults, f.NextToken = q.page()
	if c.Param("id") != "" && q.err == nil {
		f.CommandID, q.err = commandIDParam(c)
	}
	f.Statuses = q.oneOf("status", invocationStatusFilters, "status %q must be one of Pending, InProgress, Delayed, Success, Cancelled, Failed, TimedOut")
	f.InstanceID = q.instanceID()
	f.DocumentName = c.Query("documentName")
	f.RequestedAfter = q.time("invokedAfter")
	f.RequestedBefore = q.time("invokedBefore")
	listPage(c, q.err, s.cfg.Store.ListInvocations, f, "invocations",
		func(inv store.Invocation) invocationJSON { return toInvocationJSON(inv, false) })
}

func (s *Server) invocation(c *gin.Context) (store.Invocation, bool) {
	id, err := commandIDParam(c)
	if err != nil {
		fail(c, err)
		return store.Invocation{}, false
	}
	inst := c.Param("instanceId")
	if !agentproto.ValidInstanceID(inst) {
		fail(c, &Error{Status: http.StatusNotFound, Code: "InvalidInstanceId", Message: fmt.Sprintf("instance ID %q is not of the form mi-<17 hex digits>", truncate(inst, 30))})
		return store.Invocation{}, false
	}
	inv, err := s.cfg.Store.GetInvocation(c.Request.Context(), store.InvocationKey{CommandID: id, InstanceID: inst})
	if err != nil {
		fail(c, notFoundAs(err, "InvocationDoesNotExist", "command %s has no invocation on %s", id, inst))
		return store.Invocation{}, false
	}
	return inv, true
}

func (s *Server) getInvocation(c *gin.Context) {
	if inv, ok := s.invocation(c); ok {
		c.JSON(http.StatusOK, gin.H{"invocation": toInvocationJSON(inv, true)})
	}
}

// invocationOutput returns a whole stored stream as text, from byte offset
// `offset` on, so `--follow` can tail it. Headers tell the stream's length
// and whether the invocation is finished.
func (s *Server) invocationOutput(c *gin.Context) {
	inv, ok := s.invocation(c)
	if !ok {
		return
	}
	text, truncated := inv.Stdout, inv.StdoutTruncated
	switch c.DefaultQuery("stream", "stdout") {
	case "stdout":
	case "stderr":
		text, truncated = inv.Stderr, inv.StderrTruncated
	default:
		fail(c, badRequest("stream", "stream must be stdout or stderr"))
		return
	}
	offset := 0
	if v := c.Query("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			fail(c, badRequest("offset", "offset must be a byte offset"))
			return
		}
		offset = min(n, len(text))
	}
	c.Header("X-Fleetops-Output-Length", strconv.Itoa(len(text)))
	c.Header("X-Fleetops-Output-Truncated", strconv.FormatBool(truncated))
	c.Header("X-Fleetops-Invocation-Status", inv.Status)
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(text[offset:]))
}

func (s *Server) cancelCommand(c *gin.Context) {
	id, err := commandIDParam(c)
	if err != nil {
		fail(c, err)
		return
	}
	auditAs(c, "command.cancel", "command/"+id)
	var req struct {
		InstanceIDs []string `json:"instanceIds"`
	}
	if c.Request.ContentLength != 0 {
		if err := bindJSON(c, &req); err != nil {
			fail(c, err)
			return
		}
	}
	if len(req.InstanceIDs) > maxInstanceIDs {
		fail(c, badRequest("instanceIds", "at most %d instanceIds", maxInstanceIDs))
		return
	}
	for i, inst := range req.InstanceIDs {
		if !agentproto.ValidInstanceID(inst) {
			fail(c, &Error{Status: http.StatusBadRequest, Code: "InvalidInstanceId", Field: fmt.Sprintf("instanceIds[%d]", i), Message: fmt.Sprintf("instance ID %q is not of the form mi-<17 hex digits>", truncate(inst, 30))})
			return
		}
	}
	cmd, ok := s.command(c, id)
	if !ok {
		return
	}
	if cmd.FinishedAt != nil {
		fail(c, &Error{Status: http.StatusConflict, Code: "InvalidCommandId", Message: fmt.Sprintf("command %s already ended %s", id, cmd.Status)})
		return
	}
	if !s.requireWorkflows(c) {
		return
	}
	if err := s.cfg.Workflows.CancelCommand(c.Request.Context(), id, workflows.CancelRequest{InstanceIDs: req.InstanceIDs}); err != nil {
		s.log.Error("signal cancel", "commandId", id, "err", err)
		fail(c, temporalDown("cancel the command"))
		return
	}
	c.JSON(http.StatusAccepted, gin.H{})
}
