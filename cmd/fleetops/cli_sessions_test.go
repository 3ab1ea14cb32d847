package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// fakeSessionServer serves /v1/sessions/s-1 (GET: status), .../resume
// (POST: a new token) and .../stream (the WebSocket, handled by the streams
// in order, one per connection, each checking its token).
type fakeSessionServer struct {
	t       *testing.T
	status  string
	streams []func(ws *websocket.Conn)
	mu      sync.Mutex
	next    int
	// resumeGate, if set, holds resume requests until it is closed.
	resumeGate chan struct{}
}

func (f *fakeSessionServer) start() *apiClient {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sessions/s-1", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"session": map[string]any{"status": f.status}})
	})
	mux.HandleFunc("POST /v1/sessions/s-1/resume", func(w http.ResponseWriter, r *http.Request) {
		if f.resumeGate != nil {
			<-f.resumeGate
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"tokenValue": "tok" + string(rune('1'+f.next))})
	})
	mux.HandleFunc("/v1/sessions/s-1/stream", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		i := f.next
		f.next++
		f.mu.Unlock()
		if i >= len(f.streams) || r.Header.Get("Authorization") != "Bearer tok"+string(rune('1'+i)) {
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(agentproto.ErrorResponse{Error: agentproto.ErrorBody{Code: "AccessDeniedException", Message: "bad stream token"}})
			return
		}
		ws, err := websocket.Accept(w, r, nil)
		if !assert.NoError(f.t, err) {
			return
		}
		defer ws.CloseNow()
		f.streams[i](ws)
	})
	srv := httptest.NewServer(mux)
	f.t.Cleanup(srv.Close)
	return &apiClient{base: srv.URL, token: "api", http: srv.Client()}
}

func frame(typ byte, payload string) []byte { return append([]byte{typ}, payload...) }

// pipeStdin returns the read end of a pipe (not a terminal) as stdin.
func pipeStdin(t *testing.T) (stdin, input *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	return r, w
}

// signalWriter is a buffer that closes first when written to.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first chan struct{}
	once  sync.Once
}

func newSignalWriter() *signalWriter { return &signalWriter{first: make(chan struct{})} }

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.once.Do(func() { close(w.first) })
	return w.buf.Write(p)
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// A piped session: input goes out as FrameData, its end as Ctrl-D; what
// is not a frame is skipped; stdout and stderr frames are split; the exit
// code comes from FrameExit.
func TestRunTerminalPiped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	typed := make(chan string, 1)
	f := &fakeSessionServer{t: t}
	f.streams = []func(*websocket.Conn){func(ws *websocket.Conn) {
		if !assert.NoError(t, ws.Write(ctx, websocket.MessageBinary, frame(agentproto.FrameData, "$ "))) {
			return
		}
		var got bytes.Buffer
		for {
			typ, b, err := ws.Read(ctx)
			if !assert.NoError(t, err) || !assert.Equal(t, websocket.MessageBinary, typ) {
				return
			}
			assert.Equal(t, agentproto.FrameData, b[0])
			got.Write(b[1:])
			if bytes.HasSuffix(got.Bytes(), endOfInput) {
				break
			}
		}
		typed <- got.String()
		for _, m := range []struct {
			typ websocket.MessageType
			b   []byte
		}{
			{websocket.MessageText, []byte("not a frame")},
			{websocket.MessageBinary, nil},
			{websocket.MessageBinary, frame(agentproto.FrameData, "out")},
			{websocket.MessageBinary, frame(agentproto.FrameStderr, "err")},
			{websocket.MessageBinary, frame(agentproto.FrameExit, `{"code":3}`)},
			{websocket.MessageBinary, frame(agentproto.FrameClose, "exited")},
		} {
			if !assert.NoError(t, ws.Write(ctx, m.typ, m.b)) {
				return
			}
		}
		_ = ws.Close(websocket.StatusNormalClosure, "")
	}}
	c := f.start()
	stdin, input := pipeStdin(t)
	stdout, stderr := newSignalWriter(), newSignalWriter()
	go func() {
		// Once the prompt is out the connection is current: type, then
		// end the input.
		<-stdout.first
		_, _ = input.WriteString("echo hi\n")
		_ = input.Close()
	}()

	code, err := runTerminal(ctx, c, "s-1", "tok1", stdin, stdout, stderr)
	require.NoError(t, err)
	assert.Equal(t, 3, code)
	assert.Equal(t, "echo hi\n\x04", <-typed)
	assert.Equal(t, "$ out", stdout.String())
	assert.Equal(t, "err", stderr.String(), "no close message when there is an exit code")
}

// A dropped connection resumes with a new token; a FrameClose without an
// exit code prints its message, and a Failed session exits 255.
func TestRunTerminalResumeAndFailed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := &fakeSessionServer{t: t, status: "Failed"}
	f.streams = []func(*websocket.Conn){
		func(ws *websocket.Conn) {
			assert.NoError(t, ws.Write(ctx, websocket.MessageBinary, frame(agentproto.FrameData, "one ")))
			// Dropped without FrameClose: a network blip.
		},
		func(ws *websocket.Conn) {
			assert.NoError(t, ws.Write(ctx, websocket.MessageBinary, frame(agentproto.FrameData, "two")))
			assert.NoError(t, ws.Write(ctx, websocket.MessageBinary, frame(agentproto.FrameClose, "agent refused")))
			_ = ws.Close(websocket.StatusNormalClosure, "")
		},
	}
	c := f.start()
	stdin, _ := pipeStdin(t)
	stdout, stderr := newSignalWriter(), newSignalWriter()

	code, err := runTerminal(ctx, c, "s-1", "tok1", stdin, stdout, stderr)
	require.NoError(t, err)
	assert.Equal(t, exitSessionFailed, code)
	assert.Equal(t, "one two", stdout.String())
	assert.Contains(t, stderr.String(), "connection lost")
	assert.Contains(t, stderr.String(), "session ended: agent refused")
}

// Input typed and ended while the connection is down reaches the resumed
// connection first, in order, and its end still reaches the remote side.
func TestRunTerminalInputDuringOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	received := make(chan string, 1)
	f := &fakeSessionServer{t: t, status: "Terminated", resumeGate: make(chan struct{})}
	f.streams = []func(*websocket.Conn){
		func(*websocket.Conn) {}, // dropped at once: a network blip
		func(ws *websocket.Conn) {
			var got bytes.Buffer
			for {
				_, b, err := ws.Read(ctx)
				if !assert.NoError(t, err) {
					return
				}
				got.WriteByte(b[0])
				got.Write(b[1:])
				if bytes.HasSuffix(got.Bytes(), endOfInput) {
					break
				}
			}
			received <- got.String()
			_ = ws.Write(ctx, websocket.MessageBinary, frame(agentproto.FrameExit, `{"code":0}`))
			_ = ws.Write(ctx, websocket.MessageBinary, frame(agentproto.FrameClose, ""))
			_ = ws.Close(websocket.StatusNormalClosure, "")
		},
	}
	c := f.start()
	stdin, input := pipeStdin(t)
	stdout, stderr := newSignalWriter(), newSignalWriter()
	go func() {
		<-stderr.first // "connection lost": the resume waits at the gate
		_, _ = input.WriteString("typed during the outage\n")
		_ = input.Close()
		time.Sleep(200 * time.Millisecond) // let the reader take it in
		close(f.resumeGate)
	}()

	code, err := runTerminal(ctx, c, "s-1", "tok1", stdin, stdout, stderr)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
	want := string(frame(agentproto.FrameData, "typed during the outage\n")) + string(frame(agentproto.FrameData, "\x04"))
	assert.Equal(t, want, <-received)
}

// A refused stream shows the server's error.
func TestDialStreamError(t *testing.T) {
	f := &fakeSessionServer{t: t}
	c := f.start()
	_, err := dialStream(context.Background(), c, "s-1", "wrong", 80, 24, nil)
	var body agentproto.ErrorBody
	require.ErrorAs(t, err, &body)
	assert.Equal(t, "bad stream token", body.Message)
}

func TestSinceOrTime(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct{ in, want, err string }{
		{"", "", ""},
		{"24h", "2026-11-30T12:00:00Z", ""},
		{"90m", "2026-12-01T10:30:00Z", ""},
		{"2026-11-29T08:00:00Z", "2026-11-29T08:00:00Z", ""},
		{"yesterday", "", "neither an RFC 3339 time"},
	} {
		got, err := sinceOrTime(tt.in, now)
		if tt.err != "" {
			assert.ErrorContains(t, err, tt.err, tt.in)
			continue
		}
		assert.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
}
