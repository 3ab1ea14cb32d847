package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/api"
	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/internal/store/storetest"
)

// noGateway stands in for the agent hub: these tests exercise the operator
// API and registration, not agent connections (the e2e suite does).
type noGateway struct{ kicked []string }

func (g *noGateway) Serve(w http.ResponseWriter, _ *http.Request, _ string) {
	w.WriteHeader(http.StatusTeapot)
}
func (g *noGateway) Kick(id, _ string)       { g.kicked = append(g.kicked, id) }
func (g *noGateway) IsConnected(string) bool { return false }

type env struct {
	t     *testing.T
	st    *store.Store
	srv   *httptest.Server
	token string
	now   time.Time
}

func newEnv(t *testing.T, st *store.Store) *env {
	t.Helper()
	return newEnvWith(t, st, nil)
}

// newEnvWith is newEnv with a Workflows implementation for command tests.
func newEnvWith(t *testing.T, st *store.Store, wf api.Workflows) *env {
	t.Helper()
	return newEnvConfig(t, st, func(c *api.Config) { c.Workflows = wf })
}

// newEnvConfig is newEnv with the config adjusted by configure.
func newEnvConfig(t *testing.T, st *store.Store, configure func(*api.Config)) *env {
	t.Helper()
	e := &env{t: t, st: st, now: time.Now().UTC()}
	token, err := api.BootstrapAdminToken(context.Background(), st, e.now)
	if err != nil || token == "" {
		t.Fatalf("bootstrap admin token: %q %v", token, err)
	}
	e.token = token
	cfg := api.Config{
		Store:     st,
		Gateway:   &noGateway{},
		Registry:  prometheus.NewRegistry(),
		PublicURL: "http://fleet.test",
		Now:       func() time.Time { return e.now },
	}
	configure(&cfg)
	h, err := api.New(cfg)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

type response struct {
	status int
	body   map[string]any
	raw    string
}

func (r response) errorField() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["field"].(string)
	return s
}

func (r response) errorCode() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (e *env) do(method, path, body string, headers ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	r := response{status: resp.StatusCode, raw: buf.String()}
	_ = json.Unmarshal(buf.Bytes(), &r.body)
	return r
}

func (e *env) createActivation(body string) (id, code string) {
	e.t.Helper()
	r := e.do("POST", "/v1/activations", body)
	if r.status != http.StatusCreated {
		e.t.Fatalf("create activation: %d %s", r.status, r.raw)
	}
	return r.body["activationId"].(string), r.body["activationCode"].(string)
}

func (e *env) register(id, code string) response {
	e.t.Helper()
	b, _ := json.Marshal(agentproto.RegisterRequest{ActivationID: id, ActivationCode: code,
		Host: agentproto.HostInfo{Hostname: "h1", PlatformType: "Linux", PlatformName: "Debian GNU/Linux", PlatformVersion: "12"}})
	return e.do("POST", agentproto.PathRegister, string(b), "Authorization", "")
}

func TestAuthentication(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		tests := []struct {
			name       string
			path       string
			headers    []string
			wantStatus int
			wantCode   string
		}{
			{"no token", "/v1/instances", []string{"Authorization", ""}, 401, "Unauthorized"},
			{"wrong token", "/v1/instances", []string{"Authorization", "Bearer fo_nope"}, 401, "Unauthorized"},
			{"basic auth", "/v1/instances", []string{"Authorization", "Basic YTpi"}, 401, "Unauthorized"},
			{"valid token", "/v1/instances", nil, 200, ""},
			{"agent route without credentials", agentproto.PathConnect, []string{"Authorization", ""}, 401, "Unauthorized"},
			{"agent route with bad credentials", agentproto.PathConnect, []string{agentproto.HeaderInstanceID, "mi-0123456789abcdef0", "Authorization", "Bearer x"}, 403, "AccessDenied"},
			{"agent route with an operator token", agentproto.PathConnect, nil, 401, "Unauthorized"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do("GET", tt.path, "", tt.headers...)
				if r.status != tt.wantStatus || r.errorCode() != tt.wantCode {
					t.Errorf("got %d %q (%s), want %d %q", r.status, r.errorCode(), r.raw, tt.wantStatus, tt.wantCode)
				}
			})
		}

		// A revoked token stops working at once.
		r := e.do("POST", "/v1/tokens", `{"name":"ci"}`)
		if r.status != 201 {
			t.Fatalf("create token: %d %s", r.status, r.raw)
		}
		tok, id := r.body["token"].(string), r.body["id"].(string)
		if got := e.do("GET", "/v1/instances", "", "Authorization", "Bearer "+tok); got.status != 200 {
			t.Fatalf("new token refused: %d", got.status)
		}
		if got := e.do("DELETE", "/v1/tokens/"+id, ""); got.status != 204 {
			t.Fatalf("revoke: %d %s", got.status, got.raw)
		}
		if got := e.do("GET", "/v1/instances", "", "Authorization", "Bearer "+tok); got.status != 401 {
			t.Errorf("revoked token: got %d, want 401", got.status)
		}
		if strings.Contains(e.do("GET", "/v1/tokens", "").raw, tok) {
			t.Error("token list shows a token's secret")
		}
	})
}

func TestBadInputNamesTheField(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		long := strings.Repeat("x", 300)
		tests := []struct {
			name, method, path, body string
			wantStatus               int
			wantField                string
		}{
			{"malformed JSON", "POST", "/v1/activations", `{"registrationLimit": `, 400, ""},
			{"not an object", "POST", "/v1/activations", `[1,2]`, 400, ""},
			{"trailing data", "POST", "/v1/activations", `{} {}`, 400, ""},
			{"unknown field", "POST", "/v1/activations", `{"registrationLimt": 3}`, 400, "registrationLimt"},
			{"wrong type", "POST", "/v1/activations", `{"registrationLimit": "3"}`, 400, "registrationLimit"},
			{"limit too high", "POST", "/v1/activations", `{"registrationLimit": 1001}`, 400, "registrationLimit"},
			{"limit zero", "POST", "/v1/activations", `{"registrationLimit": 0}`, 400, "registrationLimit"},
			{"expiry too far", "POST", "/v1/activations", `{"expiresIn": "800h"}`, 400, "expiresIn"},
			{"expiry not a duration", "POST", "/v1/activations", `{"expiresIn": "tomorrow"}`, 400, "expiresIn"},
			{"oversize description", "POST", "/v1/activations", `{"description": "` + long + `"}`, 400, "description"},
			{"bad tag key", "POST", "/v1/activations", `{"tags": {"bad*key": "v"}}`, 400, "tags.bad*key"},
			{"reserved tag key", "POST", "/v1/activations", `{"tags": {"aws:x": "v"}}`, 400, "tags.aws:x"},
			{"oversize tag value", "POST", "/v1/activations", `{"tags": {"k": "` + long + `"}}`, 400, "tags.k"},
			{"bad instance ID", "GET", "/v1/instances/i-123", "", 400, "instanceId"},
			{"bad ping status", "GET", "/v1/instances?pingStatus=Up", "", 400, "pingStatus"},
			{"bad page size", "GET", "/v1/instances?maxResults=0", "", 400, "maxResults"},
			{"bad tag filter", "GET", "/v1/instances?tag=a*b=c", "", 400, "tag"},
			{"malformed page token", "GET", "/v1/instances?nextToken=garbage!!", "", 400, "nextToken"},
			{"group without query", "POST", "/v1/groups", `{"name":"web"}`, 400, "query"},
			{"group bad name", "POST", "/v1/groups", `{"name":"a b","query":[{"key":"Env","values":["p"]}]}`, 400, "name"},
			{"unknown instance", "GET", "/v1/instances/mi-0123456789abcdef0", "", 404, ""},
			{"oversize body", "POST", "/v1/activations", `{"description":"` + strings.Repeat("y", 2<<20) + `"}`, 413, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do(tt.method, tt.path, tt.body)
				if r.status != tt.wantStatus || r.errorField() != tt.wantField {
					t.Errorf("got %d field %q (%s), want %d field %q", r.status, r.errorField(), truncate(r.raw), tt.wantStatus, tt.wantField)
				}
				if msg, _ := r.body["error"].(map[string]any)["message"].(string); msg == "" {
					t.Errorf("error body has no message: %s", truncate(r.raw))
				}
			})
		}
		// Nothing half-written: no activation was created by any of them.
		if r := e.do("GET", "/v1/activations", ""); len(r.body["activations"].([]any)) != 0 {
			t.Errorf("bad requests left activations behind: %s", r.raw)
		}
	})
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func TestRegistrationRefusals(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		id, code := e.createActivation(`{"registrationLimit": 1, "expiresIn": "1h", "tags": {"Env": "prod"}}`)

		if r := e.register(id, "wrong-code-wrong-code"); r.status != 403 || !strings.Contains(r.raw, "invalid activation code") {
			t.Errorf("wrong code: %d %s", r.status, r.raw)
		}
		if r := e.register("3f1c1b8e-0000-4000-8000-000000000000", code); r.status != 403 || !strings.Contains(r.raw, "activation not found") {
			t.Errorf("unknown activation: %d %s", r.status, r.raw)
		}
		r := e.register(id, code)
		if r.status != 201 {
			t.Fatalf("register: %d %s", r.status, r.raw)
		}
		instanceID := r.body["instanceId"].(string)
		if !agentproto.ValidInstanceID(instanceID) || r.body["secret"] == "" {
			t.Fatalf("register answered %s", r.raw)
		}
		if r := e.register(id, code); r.status != 403 || !strings.Contains(r.raw, "registration limit reached") {
			t.Errorf("exhausted: %d %s", r.status, r.raw)
		}
		inst := e.do("GET", "/v1/instances/"+instanceID, "")
		if tags := inst.body["tags"].(map[string]any); tags["Env"] != "prod" {
			t.Errorf("instance tags %v, want the activation's", tags)
		}

		id2, code2 := e.createActivation(`{"registrationLimit": 5, "expiresIn": "1h"}`)
		e.now = e.now.Add(2 * time.Hour)
		if r := e.register(id2, code2); r.status != 403 || !strings.Contains(r.raw, "activation expired") {
			t.Errorf("expired: %d %s", r.status, r.raw)
		}
		list := e.do("GET", "/v1/activations", "")
		for _, a := range list.body["activations"].([]any) {
			if a.(map[string]any)["expired"] != true {
				t.Errorf("activation %v should show as expired", a)
			}
		}
		if r := e.do("DELETE", "/v1/activations/"+id2, ""); r.status != 204 {
			t.Errorf("delete activation: %d %s", r.status, r.raw)
		}
		if r := e.do("DELETE", "/v1/activations/"+id2, ""); r.status != 404 {
			t.Errorf("delete twice: %d %s", r.status, r.raw)
		}
	})
}

func TestTagsGroupsAndAudit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		e := newEnv(t, st)
		id, code := e.createActivation(`{"registrationLimit": 4}`)
		var nodes []string
		for range 4 {
			r := e.register(id, code)
			if r.status != 201 {
				t.Fatalf("register: %d %s", r.status, r.raw)
			}
			nodes = append(nodes, r.body["instanceId"].(string))
		}
		tags := []string{
			`{"tags":{"Env":"prod","Role":"web"}}`,
			`{"tags":{"Env":"staging","Role":"web"}}`,
			`{"tags":{"Env":"prod","Role":"db"}}`,
			`{"tags":{"Env":"dev"}}`,
		}
		for i, body := range tags {
			if r := e.do("POST", "/v1/instances/"+nodes[i]+"/tags", body); r.status != 200 {
				t.Fatalf("tag: %d %s", r.status, r.raw)
			}
		}
		r := e.do("POST", "/v1/groups", `{"name":"web","query":[{"key":"Env","values":["prod","staging"]},{"key":"Role","values":["web"]}]}`)
		if r.status != 201 {
			t.Fatalf("create group: %d %s", r.status, r.raw)
		}
		if r := e.do("POST", "/v1/groups", `{"name":"web","query":[{"key":"Env","values":["prod"]}]}`); r.status != 409 {
			t.Errorf("duplicate group: %d %s", r.status, r.raw)
		}
		members := e.do("GET", "/v1/groups/web/members", "")
		got := map[string]bool{}
		for _, in := range members.body["instances"].([]any) {
			got[in.(map[string]any)["instanceId"].(string)] = true
		}
		if len(got) != 2 || !got[nodes[0]] || !got[nodes[1]] {
			t.Errorf("group members = %v, want nodes 0 and 1 (Env prod OR staging, AND Role web)", got)
		}

		if r := e.do("POST", "/v1/instances/"+nodes[0]+"/untag", `{"keys":["Role"]}`); r.status != 200 || r.body["tags"].(map[string]any)["Role"] != nil {
			t.Errorf("untag: %d %s", r.status, r.raw)
		}
		if r := e.do("POST", "/v1/instances/"+nodes[3]+"/deregister", ""); r.status != 200 || r.body["pingStatus"] != "Inactive" {
			t.Errorf("deregister: %d %s", r.status, r.raw)
		}
		if r := e.do("GET", "/v1/instances?pingStatus=Inactive", ""); len(r.body["instances"].([]any)) != 1 {
			t.Errorf("filter Inactive: %s", r.raw)
		}
		_ = e.do("POST", "/v1/activations", `{"registrationLimit": -1}`)

		audit := e.do("GET", "/v1/audit?maxResults=100", "")
		seen := map[string]string{}
		for _, ev := range audit.body["events"].([]any) {
			m := ev.(map[string]any)
			if m["sourceIp"] == "" || m["time"] == "" {
				t.Errorf("audit event lacks source or time: %v", m)
			}
			seen[m["action"].(string)+" "+m["outcome"].(string)] = m["actor"].(string)
		}
		for _, want := range []string{
			"CreateActivation success", "RegisterInstance success", "AddTagsToResource success",
			"CreateGroup success", "CreateGroup failure:409", "RemoveTagsFromResource success",
			"DeregisterManagedInstance success", "CreateActivation failure:400",
		} {
			if _, ok := seen[want]; !ok {
				t.Errorf("audit log lacks %q; has %v", want, seen)
			}
		}
		if seen["CreateActivation success"] != "token:admin" {
			t.Errorf("CreateActivation actor = %q, want token:admin", seen["CreateActivation success"])
		}
	})
}

func TestDatabaseDownIs503(t *testing.T) {
	st := storetest.Open(t)
	e := newEnv(t, st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/instances", "/readyz"} {
		if r := e.do("GET", path, ""); r.status != http.StatusServiceUnavailable {
			t.Errorf("%s with the database down: %d %s, want 503", path, r.status, r.raw)
		}
	}
	if r := e.register("3f1c1b8e-0000-4000-8000-000000000000", "code-code-code-code"); r.status != http.StatusServiceUnavailable {
		t.Errorf("register with the database down: %d %s, want 503", r.status, r.raw)
	}
}
