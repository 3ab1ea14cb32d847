package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
	"github.com/fleetops/fleetops/workflows"
)

// recordingWorkflows records what the API asks Temporal for; these tests
// exercise the API, the e2e suite runs the real workflow.
type recordingWorkflows struct {
	mu       sync.Mutex
	started  []workflows.RunCommandInput
	cancels  []workflows.CancelRequest
	sessions []workflows.SessionInput
	startErr error
}

func (w *recordingWorkflows) StartCommand(_ context.Context, in workflows.RunCommandInput) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.startErr != nil {
		return w.startErr
	}
	w.started = append(w.started, in)
	return nil
}

func (w *recordingWorkflows) StartSession(_ context.Context, in workflows.SessionInput) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sessions = append(w.sessions, in)
	return nil
}

func (w *recordingWorkflows) TerminateSession(context.Context, string, string) error { return nil }

func (w *recordingWorkflows) CancelCommand(_ context.Context, _ string, req workflows.CancelRequest) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancels = append(w.cancels, req)
	return nil
}

// node registers one node and returns its ID.
func (e *env) node(tags string) string {
	e.t.Helper()
	id, code := e.createActivation(`{"registrationLimit":1,"tags":` + tags + `}`)
	r := e.register(id, code)
	if r.status != http.StatusCreated {
		e.t.Fatalf("register: %d %s", r.status, r.raw)
	}
	return r.body["instanceId"].(string)
}

const greetDoc = `schemaVersion: "2.2"
description: greet
parameters:
  who:
    type: String
    default: world
    allowedPattern: "^[a-z]+$"
  extra:
    type: StringList
    default: []
mainSteps:
  - action: aws:runShellScript
    name: greet
    inputs:
      runCommand: ["echo hello {{ who }}", "{{ extra }}"]
`

func TestDocumentsAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		body, _ := json.Marshal(map[string]string{"name": "Greet", "content": greetDoc})
		if r := e.do("POST", "/v1/documents", string(body)); r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.raw)
		}
		// Same content again is refused as an update, new content is version 2.
		up, _ := json.Marshal(map[string]string{"content": greetDoc})
		if r := e.do("PUT", "/v1/documents/Greet", string(up)); r.status != http.StatusBadRequest || r.errorCode() != "DuplicateDocumentContent" {
			t.Errorf("identical update: %d %s", r.status, r.raw)
		}
		up, _ = json.Marshal(map[string]string{"content": strings.Replace(greetDoc, "description: greet", "description: greet v2", 1)})
		r := e.do("PUT", "/v1/documents/Greet", string(up))
		doc, _ := r.body["document"].(map[string]any)
		if r.status != http.StatusOK || doc["documentVersion"] != "2" || doc["defaultVersion"] != "1" {
			t.Fatalf("update: %d %s", r.status, r.raw)
		}
		if r := e.do("GET", "/v1/documents/Greet?version=$LATEST", ""); !strings.Contains(r.raw, "greet v2") {
			t.Errorf("get $LATEST: %s", r.raw)
		}
		if r := e.do("GET", "/v1/documents/Greet", ""); strings.Contains(r.raw, "greet v2") {
			t.Errorf("get default returned version 2: %s", r.raw)
		}
		if r := e.do("DELETE", "/v1/documents/Greet?version=1", ""); r.status != http.StatusBadRequest {
			t.Errorf("deleting the default version: %d %s", r.status, r.raw)
		}
		if r := e.do("PUT", "/v1/documents/Greet/default-version", `{"documentVersion":"2"}`); r.status != http.StatusOK {
			t.Errorf("set default: %d %s", r.status, r.raw)
		}
		if r := e.do("GET", "/v1/documents/Greet/versions", ""); strings.Count(r.raw, "documentVersion") != 2 {
			t.Errorf("versions: %s", r.raw)
		}
		r = e.do("GET", "/v1/documents", "")
		if !strings.Contains(r.raw, `"AWS-RunShellScript"`) || !strings.Contains(r.raw, `"Greet"`) {
			t.Errorf("list lacks the built-in or the user document: %s", r.raw)
		}

		tests := []struct {
			name, method, path, body string
			status                   int
			field                    string
		}{
			{"reserved prefix", "POST", "/v1/documents", `{"name":"AWS-Mine","content":"{}"}`, 400, "name"},
			{"bad name", "POST", "/v1/documents", `{"name":"a b","content":"{}"}`, 400, "name"},
			{"unknown action", "POST", "/v1/documents", mustJSON(map[string]string{"name": "Bad1",
				"content": "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:formatDisk\n    name: x\n    inputs: {}\n"}), 400, "content"},
			{"not a document", "POST", "/v1/documents", `{"name":"Bad2","content":"[1,2"}`, 400, "content"},
			{"empty content", "POST", "/v1/documents", `{"name":"Bad3","content":""}`, 400, "content"},
			{"bad format", "POST", "/v1/documents", `{"name":"Bad4","content":"{}","documentFormat":"XML"}`, 400, "documentFormat"},
			{"duplicate name", "POST", "/v1/documents", mustJSON(map[string]string{"name": "Greet", "content": greetDoc}), 409, "name"},
			{"update built-in", "PUT", "/v1/documents/AWS-RunShellScript", mustJSON(map[string]string{"content": greetDoc}), 403, ""},
			{"unknown document", "GET", "/v1/documents/Nope", "", 404, ""},
			{"bad version", "GET", "/v1/documents/Greet?version=x", "", 400, "version"},
			{"missing version", "GET", "/v1/documents/Greet?version=9", "", 400, "documentVersion"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do(tt.method, tt.path, tt.body)
				if r.status != tt.status || r.errorField() != tt.field {
					t.Errorf("%s %s: %d field %q (%s), want %d field %q", tt.method, tt.path, r.status, r.errorField(), r.raw, tt.status, tt.field)
				}
			})
		}
	})
}

func TestSendCommand(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		wf := &recordingWorkflows{}
		e := newEnvWith(t, st, wf)
		web := e.node(`{"Env":"prod","Role":"web"}`)
		db := e.node(`{"Env":"prod","Role":"db"}`)
		dev := e.node(`{"Env":"dev","Role":"web"}`)
		body, _ := json.Marshal(map[string]string{"name": "Greet", "content": greetDoc})
		e.do("POST", "/v1/documents", string(body))

		// Targets AND across entries, OR within one.
		r := e.do("POST", "/v1/commands", `{"documentName":"Greet","targets":[{"key":"tag:Env","values":["prod","dev"]},{"key":"tag:Role","values":["web"]}],
			"parameters":{"who":"ops","extra":["uptime","id"]},"maxConcurrency":"10%","maxErrors":"1","comment":"deploy"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("send: %d %s", r.status, r.raw)
		}
		cmd := r.body["command"].(map[string]any)
		id := cmd["commandId"].(string)
		if len(wf.started) != 1 {
			t.Fatalf("workflow started %d times", len(wf.started))
		}
		in := wf.started[0]
		if in.CommandID != id || in.MaxConcurrency != "10%" || in.MaxErrors != "1" || in.TimeoutSeconds != 3600 || in.ExecutionTimeoutSeconds != 3600 {
			t.Errorf("workflow input %+v", in)
		}
		if got := strings.Join(in.InstanceIDs, ","); got != strings.Join(sorted(web, dev), ",") {
			t.Errorf("resolved %s, want web nodes %s", got, strings.Join(sorted(web, dev), ","))
		}
		// Invocations are readable the moment send returns.
		r = e.do("GET", "/v1/commands/"+id+"/invocations", "")
		if n := len(r.body["invocations"].([]any)); n != 2 {
			t.Errorf("%d invocations after send, want 2: %s", n, r.raw)
		}
		r = e.do("GET", "/v1/commands/"+id+"/invocations/"+web, "")
		if inv := r.body["invocation"].(map[string]any); inv["status"] != "Pending" || inv["responseCode"] != float64(-1) {
			t.Errorf("invocation %s", r.raw)
		}
		// The rendered steps splice parameters, flatten lists.
		c, err := st.GetCommand(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		var steps map[string][]agentproto.Step
		if err := json.Unmarshal([]byte(c.Steps), &steps); err != nil {
			t.Fatal(err)
		}
		if got := string(steps["Linux"][0].Inputs); !strings.Contains(got, `"runCommand":["echo hello ops","uptime","id"]`) {
			t.Errorf("rendered inputs %s", got)
		}
		if r := e.do("GET", "/v1/commands?instanceId="+db, ""); len(r.body["commands"].([]any)) != 0 {
			t.Errorf("db node has commands: %s", r.raw)
		}
		if r := e.do("GET", "/v1/commands?status=Pending&documentName=Greet", ""); len(r.body["commands"].([]any)) != 1 {
			t.Errorf("filter by status and document: %s", r.raw)
		}
		if r := e.do("POST", "/v1/commands/"+id+"/cancel", `{"instanceIds":["`+web+`"]}`); r.status != http.StatusAccepted || len(wf.cancels) != 1 {
			t.Errorf("cancel: %d %s", r.status, r.raw)
		}

		tests := []struct {
			name, body string
			code       string
			field      string
		}{
			{"no document", `{"instanceIds":["` + web + `"]}`, "InvalidParameters", "documentName"},
			{"unknown document", `{"documentName":"Nope","instanceIds":["` + web + `"]}`, "InvalidDocument", "documentName"},
			{"unknown version", `{"documentName":"Greet","documentVersion":"7","instanceIds":["` + web + `"]}`, "InvalidDocumentVersion", "documentVersion"},
			{"no targets", `{"documentName":"Greet"}`, "InvalidParameters", "instanceIds"},
			{"both", `{"documentName":"Greet","instanceIds":["` + web + `"],"targets":[{"key":"tag:A","values":["b"]}]}`, "InvalidParameters", "targets"},
			{"bad id", `{"documentName":"Greet","instanceIds":["i-123"]}`, "InvalidInstanceId", "instanceIds[0]"},
			{"duplicate id", `{"documentName":"Greet","instanceIds":["` + web + `","` + web + `"]}`, "DuplicateInstanceId", "instanceIds[1]"},
			{"unknown node", `{"documentName":"Greet","instanceIds":["mi-00000000000000000"]}`, "InvalidInstanceId", "instanceIds[0]"},
			{"bad target key", `{"documentName":"Greet","targets":[{"key":"color","values":["b"]}]}`, "InvalidParameters", "targets[0]"},
			{"unknown group", `{"documentName":"Greet","targets":[{"key":"resource-groups:Name","values":["nope"]}]}`, "InvalidParameters", "targets"},
			{"bad concurrency", `{"documentName":"Greet","instanceIds":["` + web + `"],"maxConcurrency":"0"}`, "InvalidParameters", "maxConcurrency"},
			{"bad errors", `{"documentName":"Greet","instanceIds":["` + web + `"],"maxErrors":"101%"}`, "InvalidParameters", "maxErrors"},
			{"short timeout", `{"documentName":"Greet","instanceIds":["` + web + `"],"timeoutSeconds":5}`, "InvalidParameters", "timeoutSeconds"},
			{"long comment", `{"documentName":"Greet","instanceIds":["` + web + `"],"comment":"` + strings.Repeat("x", 101) + `"}`, "InvalidParameters", "comment"},
			{"pattern", `{"documentName":"Greet","instanceIds":["` + web + `"],"parameters":{"who":"$(id)"}}`, "InvalidParameters", "parameters.who"},
			{"unknown parameter", `{"documentName":"Greet","instanceIds":["` + web + `"],"parameters":{"whom":"x"}}`, "InvalidParameters", "parameters.whom"},
			{"list for string", `{"documentName":"Greet","instanceIds":["` + web + `"],"parameters":{"who":["a","b"]}}`, "InvalidParameters", "parameters.who"},
			{"unknown field", `{"documentName":"Greet","instanceIds":["` + web + `"],"color":"red"}`, "InvalidParameters", "color"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := len(wf.started)
				r := e.do("POST", "/v1/commands", tt.body)
				if r.status != http.StatusBadRequest || r.errorCode() != tt.code || r.errorField() != tt.field {
					t.Errorf("%d %s field %q (%s), want 400 %s field %q", r.status, r.errorCode(), r.errorField(), r.raw, tt.code, tt.field)
				}
				if len(wf.started) != before {
					t.Error("a refused command started a workflow")
				}
			})
		}

		// Temporal down: 503, and the command is not left looking alive.
		wf.startErr = errors.New("connection refused")
		r = e.do("POST", "/v1/commands", `{"documentName":"AWS-RunShellScript","instanceIds":["`+web+`"],"parameters":{"commands":["true"]}}`)
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("send with Temporal down: %d %s", r.status, r.raw)
		}
		r = e.do("GET", "/v1/commands?documentName=AWS-RunShellScript", "")
		list := r.body["commands"].([]any)
		if len(list) != 1 || list[0].(map[string]any)["status"] != "Failed" {
			t.Errorf("command after a failed start: %s", r.raw)
		}
	})
}

func sorted(s ...string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSendCommandExpandsStoredDocuments(t *testing.T) {
	st := storetest.OpenDialect(t, "sqlite")
	wf := &recordingWorkflows{}
	e := newEnvWith(t, st, wf)
	node := e.node(`{"Env":"prod"}`)
	inner := "schemaVersion: '2.2'\nparameters:\n  msg: {type: String}\nmainSteps:\n  - action: aws:runShellScript\n    name: say\n    inputs:\n      runCommand: ['echo {{ msg }}']\n"
	outer := `schemaVersion: '2.2'
mainSteps:
  - action: aws:runDocument
    name: nested
    inputs:
      documentType: SSMDocument
      documentPath: Inner
      documentParameters: {msg: hi}
  - action: aws:downloadContent
    name: fetch
    inputs:
      sourceType: SSMDocument
      sourceInfo: '{"name":"Inner:1"}'
      destinationPath: docs
`
	for name, content := range map[string]string{"Inner": inner, "Outer": outer} {
		if r := e.do("POST", "/v1/documents", mustJSON(map[string]string{"name": name, "content": content})); r.status != http.StatusCreated {
			t.Fatalf("create %s: %d %s", name, r.status, r.raw)
		}
	}
	r := e.do("POST", "/v1/commands", `{"documentName":"Outer","instanceIds":["`+node+`"]}`)
	if r.status != http.StatusCreated {
		t.Fatalf("send: %d %s", r.status, r.raw)
	}
	c, err := st.GetCommand(context.Background(), wf.started[0].CommandID)
	if err != nil {
		t.Fatal(err)
	}
	var steps map[string][]agentproto.Step
	if err := json.Unmarshal([]byte(c.Steps), &steps); err != nil {
		t.Fatal(err)
	}
	linux := steps["Linux"]
	if len(linux) != 2 || linux[0].Name != "nested.say" || !strings.Contains(string(linux[0].Inputs), `"echo hi"`) {
		t.Fatalf("aws:runDocument not expanded: %+v", linux)
	}
	if !strings.Contains(string(linux[1].Inputs), `"documentContent":`) || !strings.Contains(string(linux[1].Inputs), `"documentName":"Inner"`) {
		t.Errorf("aws:downloadContent from a stored document carries no content: %s", linux[1].Inputs)
	}
	// A nested document that does not exist is refused at send time.
	bad := strings.Replace(outer, "documentPath: Inner", "documentPath: Missing", 1)
	e.do("PUT", "/v1/documents/Outer", mustJSON(map[string]string{"content": bad}))
	if r := e.do("POST", "/v1/commands", `{"documentName":"Outer","documentVersion":"$LATEST","instanceIds":["`+node+`"]}`); r.status != http.StatusBadRequest {
		t.Errorf("missing nested document: %d %s", r.status, r.raw)
	}
}
