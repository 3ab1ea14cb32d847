package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/fleetops/fleetops/api"
	"github.com/fleetops/fleetops/internal/gateway"
	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
	"github.com/fleetops/fleetops/workflows"
)

// noBridge satisfies api.SessionBridge; these tests stop before a stream.
type noBridge struct{}

func (noBridge) ServeClient(http.ResponseWriter, *http.Request, gateway.SessionInfo) {}
func (noBridge) ServeAgent(http.ResponseWriter, *http.Request, string, string)       {}
func (noBridge) Bridges(string) bool                                                 { return false }

const (
	strictPrefsDoc = `schemaVersion: "1.0"
description: short, recorded shells as deploy
sessionType: Standard_Stream
inputs:
  idleSessionTimeout: "5"
  maxSessionDuration: "30"
  runAsEnabled: true
  runAsDefaultUser: deploy
  shellProfile:
    linux: "cd /srv"
  recordingEnabled: true
  recordInput: true
`
	loosePrefsDoc = `schemaVersion: "1.0"
sessionType: Standard_Stream
inputs:
  maxSessionDuration: "1440"
  recordingEnabled: false
`
	accountPrefsDoc = `schemaVersion: "1.0"
sessionType: Standard_Stream
inputs:
  idleSessionTimeout: "7"
`
)

// TestSessionDocumentPreferences checks how a session's settings come from
// the server's flags, the account document SSM-SessionManagerRunShell and a
// custom Standard_Stream document named in the request.
func TestSessionDocumentPreferences(t *testing.T) {
	st := storetest.OpenDialect(t, "sqlite")
	wf := &recordingWorkflows{}
	e := newEnvConfig(t, st, func(c *api.Config) {
		c.Workflows, c.SessionBridge = wf, noBridge{}
		c.Sessions = api.SessionPreferences{IdleTimeout: 20 * time.Minute, MaxDuration: time.Hour, MaxPerNode: 100}
	})
	target := e.node(`{}`)
	if _, err := st.TouchInstances(context.Background(), []string{target}, e.now); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct{ name, content, typ string }{
		{"Strict-Shell", strictPrefsDoc, "Session"},
		{"Loose-Shell", loosePrefsDoc, "Session"},
		{"Greet", greetDoc, "Command"},
	} {
		if r := e.do("POST", "/v1/documents", mustJSON(map[string]string{"name": d.name, "content": d.content, "documentType": d.typ})); r.status != http.StatusCreated {
			t.Fatalf("create %s: %d %s", d.name, r.status, r.raw)
		}
	}

	type want struct {
		idle, max        time.Duration
		runAs, profile   string
		record, recordIn bool
	}
	start := func(t *testing.T, doc string) store.Session {
		t.Helper()
		r := e.do("POST", "/v1/sessions", mustJSON(map[string]any{"target": target, "documentName": doc}))
		if r.status != http.StatusCreated {
			t.Fatalf("start %q: %d %s", doc, r.status, r.raw)
		}
		id := r.body["session"].(map[string]any)["sessionId"].(string)
		sess, err := st.GetSession(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return sess
	}
	check := func(t *testing.T, sess store.Session, w want) {
		t.Helper()
		got := want{time.Duration(sess.IdleTimeoutSeconds) * time.Second, time.Duration(sess.MaxDurationSeconds) * time.Second,
			sess.RunAsUser, sess.ShellProfile, sess.RecordingEnabled, sess.RecordInput}
		if got != w {
			t.Errorf("session settings = %+v, want %+v", got, w)
		}
		wf.mu.Lock()
		in := wf.sessions[len(wf.sessions)-1]
		wf.mu.Unlock()
		if in != (workflows.SessionInput{SessionID: sess.SessionID, IdleTimeout: w.idle, MaxDuration: w.max}) {
			t.Errorf("workflow input = %+v, want the session's own timers %v/%v", in, w.idle, w.max)
		}
	}
	serverDefaults := want{idle: 20 * time.Minute, max: time.Hour}

	t.Run("server flags without documents", func(t *testing.T) {
		check(t, start(t, ""), serverDefaults)
	})
	t.Run("custom document tightens and enables run-as", func(t *testing.T) {
		check(t, start(t, "Strict-Shell"), want{5 * time.Minute, 30 * time.Minute, "deploy", "cd /srv", true, true})
	})
	t.Run("custom document cannot loosen the server's policy", func(t *testing.T) {
		check(t, start(t, "Loose-Shell"), serverDefaults) // 1440 min > the server's hour; recording off is ignored
	})
	t.Run("account document applies to every session", func(t *testing.T) {
		if r := e.do("POST", "/v1/documents", mustJSON(map[string]string{"name": "SSM-SessionManagerRunShell", "content": accountPrefsDoc, "documentType": "Session"})); r.status != http.StatusCreated {
			t.Fatalf("create account preferences: %d %s", r.status, r.raw)
		}
		check(t, start(t, ""), want{idle: 7 * time.Minute, max: time.Hour})
		r := e.do("POST", "/v1/sessions", mustJSON(map[string]any{"target": target, "documentName": "AWS-StartInteractiveCommand",
			"parameters": map[string][]string{"command": {"uptime"}}}))
		if r.status != http.StatusCreated {
			t.Fatalf("interactive command: %d %s", r.status, r.raw)
		}
		if got := r.body["session"].(map[string]any)["idleSessionTimeoutSeconds"]; got != float64(7*60) {
			t.Errorf("interactive command idle timeout = %v, want the account document's 420", got)
		}
	})
	t.Run("a new version cannot change the type", func(t *testing.T) {
		r := e.do("PUT", "/v1/documents/Strict-Shell", mustJSON(map[string]string{"content": greetDoc, "documentType": "Command"}))
		if r.status != http.StatusBadRequest || r.errorField() != "documentType" {
			t.Errorf("retype: %d %s, want 400 on documentType", r.status, r.raw)
		}
	})
	for _, tc := range []struct{ doc, code string }{
		{"Greet", "InvalidDocument"},
		{"No-Such-Doc", "InvalidDocument"},
	} {
		t.Run("refuses "+tc.doc, func(t *testing.T) {
			r := e.do("POST", "/v1/sessions", mustJSON(map[string]any{"target": target, "documentName": tc.doc}))
			if r.status != http.StatusBadRequest || r.errorCode() != tc.code || r.errorField() != "documentName" {
				t.Errorf("start with %s: %d %s, want 400 %s on documentName", tc.doc, r.status, r.raw, tc.code)
			}
		})
	}
}

// With --session-documents-may-disable-recording a document's
// recordingEnabled: false is honoured; without it (above) it is not.
func TestSessionDocumentMayDisableRecordingWhenAllowed(t *testing.T) {
	for _, allowed := range []bool{false, true} {
		st := storetest.OpenDialect(t, "sqlite")
		e := newEnvConfig(t, st, func(c *api.Config) {
			c.Workflows, c.SessionBridge = &recordingWorkflows{}, noBridge{}
			c.Sessions = api.SessionPreferences{Recording: true, DocumentsMayDisableRecording: allowed}
		})
		target := e.node(`{}`)
		if _, err := st.TouchInstances(context.Background(), []string{target}, e.now); err != nil {
			t.Fatal(err)
		}
		if r := e.do("POST", "/v1/documents", mustJSON(map[string]string{"name": "Loose-Shell", "content": loosePrefsDoc, "documentType": "Session"})); r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.raw)
		}
		r := e.do("POST", "/v1/sessions", mustJSON(map[string]any{"target": target, "documentName": "Loose-Shell"}))
		if r.status != http.StatusCreated {
			t.Fatalf("start: %d %s", r.status, r.raw)
		}
		sess, err := st.GetSession(context.Background(), r.body["session"].(map[string]any)["sessionId"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if sess.RecordingEnabled == allowed {
			t.Errorf("documents may disable recording = %v: recording = %v", allowed, sess.RecordingEnabled)
		}
	}
}

// With several replicas, --session-max-per-server bounds the sessions of
// the replica that bridges them (the one holding the node's agent), not
// the whole deployment's.
func TestSessionLimitPerReplica(t *testing.T) {
	const here, there = "http://10.0.0.1:8080", "http://10.0.0.2:8080"
	st := storetest.OpenDialect(t, "sqlite")
	e := newEnvConfig(t, st, func(c *api.Config) {
		c.Workflows, c.SessionBridge, c.ReplicaURL = &recordingWorkflows{}, noBridge{}, here
		c.Sessions = api.SessionPreferences{MaxPerServer: 1, MaxPerNode: 5}
	})
	ctx := context.Background()
	nodeHere, nodeThere := e.node(`{}`), e.node(`{}`)
	if _, err := st.TouchInstances(ctx, []string{nodeHere, nodeThere}, e.now); err != nil {
		t.Fatal(err)
	}
	for id, replica := range map[string]string{nodeHere: here, nodeThere: there} {
		if err := st.SetAgentRoute(ctx, id, replica, e.now); err != nil {
			t.Fatal(err)
		}
	}
	start := func(target string) response {
		return e.do("POST", "/v1/sessions", mustJSON(map[string]any{"target": target}))
	}
	if r := start(nodeHere); r.status != http.StatusCreated {
		t.Fatalf("first session here: %d %s", r.status, r.raw)
	}
	if r := start(nodeThere); r.status != http.StatusCreated {
		t.Errorf("a session bridged by the other replica counts against its own limit: %d %s", r.status, r.raw)
	}
	if r := start(nodeHere); r.status != http.StatusTooManyRequests || r.errorCode() != "SessionLimitExceeded" {
		t.Errorf("second session on this replica: %d %s, want 429 SessionLimitExceeded", r.status, r.raw)
	}
}
