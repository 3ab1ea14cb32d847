package gateway

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/agent/datachannel"
)

// Session statuses (SSM's SessionStatus).
const (
	SessionConnecting   = "Connecting"
	SessionConnected    = "Connected"
	SessionDisconnected = "Disconnected"
	SessionTerminated   = "Terminated"
	SessionFailed       = "Failed"
)

// SessionInfo is what the bridge needs to know of a session row.
type SessionInfo struct {
	SessionID    string
	Target       string
	Kind         string
	RunAsUser    string
	ShellProfile string
	Command      string
	Host         string
	Port         int
	Recording    bool
	RecordInput  bool
	// IdleTimeout is the session's idle timeout; activity is reported to
	// the workflow often enough to keep a busy session alive.
	IdleTimeout time.Duration
	// Connection numbers the client connections of a session (1 for the
	// first, 2 after a resume...), so the workflow can tell a late
	// disconnect of an old connection from the current one's.
	Connection int
}

// SessionStore is what the bridge needs from the database.
type SessionStore interface {
	SetSessionStatus(ctx context.Context, id, status, details string, now time.Time) error
	SessionsToClose(ctx context.Context, ids []string) ([]string, error)
	AppendRecording(ctx context.Context, id, data string, maxBytes int64) (bool, error)
	MarkRecordingTruncated(ctx context.Context, id string) error
}

// SessionEvents reports what happens to a session to its lifecycle
// workflow, which owns the timers and the end.
type SessionEvents interface {
	SessionConnected(ctx context.Context, id string, connection int) error
	SessionDisconnected(ctx context.Context, id string, connection int) error
	SessionActivity(ctx context.Context, id string) error
	SessionEnded(ctx context.Context, id, status, details string, exitCode *int) error
}

// LogSink receives every session's stream as it passes, for log
// pipelines; nil means none.
type LogSink interface {
	Write(rec SessionLogRecord)
}

// SessionLogRecord is one chunk of a session's stream.
type SessionLogRecord struct {
	SessionID string    `json:"sessionId"`
	Target    string    `json:"target"`
	Time      time.Time `json:"time"`
	Stream    string    `json:"stream"` // "output" or "input"
	Data      string    `json:"data"`
}

// BridgeConfig configures a SessionBridge.
type BridgeConfig struct {
	Store  SessionStore
	Events SessionEvents
	Logger *slog.Logger
	Sink   LogSink
	// OpenTimeout bounds the wait for the agent's data channel (default 15s).
	OpenTimeout time.Duration
	// ResumeBuffer is the output kept for a disconnected client (1 MiB).
	ResumeBuffer int
	// RecordingCap bounds a session's stored recording (default 10 MiB).
	RecordingCap int64
	// ActivityEvery throttles activity reports to the workflow (30s).
	ActivityEvery time.Duration
	// PollInterval is how often terminate requests are read (500ms).
	PollInterval time.Duration
	// Registerer receives the bridge's metrics; nil means none.
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// SessionBridge joins operators' stream WebSockets to agents' data
// channels. Session bytes pass only through here: never through Temporal
// or the agent's control connection.
type SessionBridge struct {
	cfg BridgeConfig
	g   *Gateway
	log *slog.Logger

	mu       sync.Mutex
	sessions map[string]*liveSession

	ended *prometheus.CounterVec // by kind and status
	bytes *prometheus.CounterVec // by direction: input (client → node) or output
}

// NewSessionBridge registers the session control handlers on g.
func NewSessionBridge(g *Gateway, cfg BridgeConfig) (*SessionBridge, error) {
	if cfg.Store == nil || cfg.Events == nil {
		return nil, errors.New("session bridge: Store and Events are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	setDefault := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	setDefault(&cfg.OpenTimeout, 15*time.Second)
	setDefault(&cfg.ActivityEvery, 30*time.Second)
	setDefault(&cfg.PollInterval, 500*time.Millisecond)
	if cfg.ResumeBuffer <= 0 {
		cfg.ResumeBuffer = 1 << 20
	}
	if cfg.RecordingCap <= 0 {
		cfg.RecordingCap = 10 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &SessionBridge{cfg: cfg, g: g, log: cfg.Logger.With("component", "session-bridge"), sessions: map[string]*liveSession{},
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetops_sessions_ended_total",
			Help: "Sessions this server bridged that ended, by kind and final status.",
		}, []string{"kind", "status"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetops_session_bytes_total",
			Help: "Session data bridged, by direction: input (client to node) or output (node to client).",
		}, []string{"direction"}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{b.ended, b.bytes} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("session bridge metrics: %w", err)
			}
		}
	}
	g.Handle(agentproto.TypeSessionOpened, b.onOpened)
	return b, nil
}

// Active counts the sessions bridged by this replica.
func (b *SessionBridge) Active() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sessions)
}

// Run closes sessions whose end was decided elsewhere (terminate, timers)
// until ctx ends.
func (b *SessionBridge) Run(ctx context.Context) error {
	t := time.NewTicker(b.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.mu.Lock()
			live := make([]*liveSession, 0, len(b.sessions))
			for _, s := range b.sessions {
				live = append(live, s)
			}
			b.mu.Unlock()
			for _, s := range live {
				s.shutdown("server shutting down")
			}
			return nil
		case <-t.C:
		}
		b.mu.Lock()
		ids := make([]string, 0, len(b.sessions))
		for id := range b.sessions {
			ids = append(ids, id)
		}
		b.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		closing, err := b.cfg.Store.SessionsToClose(ctx, ids)
		if err != nil {
			b.log.Warn("read session terminations", "err", err)
			continue
		}
		for _, id := range closing {
			if s := b.get(id); s != nil {
				s.shutdown("session terminated")
			}
		}
	}
}

// Bridges reports whether this replica bridges the session now.
func (b *SessionBridge) Bridges(sessionID string) bool { return b.get(sessionID) != nil }

func (b *SessionBridge) get(id string) *liveSession {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sessions[id]
}

// ErrTargetNotConnected means the session's node holds no control
// connection to this replica.
var ErrTargetNotConnected = errors.New("target is not connected to this server")

// ServeClient upgrades an operator's stream request (already authorised by
// its single-use session token) and runs the session: a new one opens a
// data channel on the agent; a disconnected one is resumed.
func (b *SessionBridge) ServeClient(w http.ResponseWriter, r *http.Request, info SessionInfo) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled, OriginPatterns: []string{r.Host}})
	if err != nil {
		b.log.Warn("client upgrade failed", "sessionId", info.SessionID, "err", err)
		return
	}
	ws := newChannel(conn)
	ctx := context.WithoutCancel(r.Context())

	if s := b.get(info.SessionID); s != nil {
		s.attach(ctx, ws, info.Connection)
		return
	}
	cols, _ := strconv.Atoi(r.URL.Query().Get("cols"))
	rows, _ := strconv.Atoi(r.URL.Query().Get("rows"))
	s, err := b.open(ctx, info, cols, rows)
	if err != nil {
		b.log.Info("session failed to open", "sessionId", info.SessionID, "err", err)
		// The status is written before the client hears, so a client that
		// asks right after the close sees Failed.
		_ = b.cfg.Store.SetSessionStatus(ctx, info.SessionID, SessionFailed, truncate(err.Error(), 200), b.cfg.Now())
		b.ended.WithLabelValues(info.Kind, SessionFailed).Inc()
		_ = ws.WriteFrame(ctx, agentproto.FrameClose, []byte(err.Error()))
		_ = ws.Close(websocket.StatusNormalClosure, "")
		_ = b.cfg.Events.SessionEnded(ctx, info.SessionID, SessionFailed, truncate(err.Error(), 200), nil)
		return
	}
	s.attach(ctx, ws, info.Connection)
}

// open asks the agent for a data channel and waits for it.
func (b *SessionBridge) open(ctx context.Context, info SessionInfo, cols, rows int) (*liveSession, error) {
	if !b.g.IsConnected(info.Target) {
		return nil, fmt.Errorf("%w: %s", ErrTargetNotConnected, info.Target)
	}
	token, err := randomToken()
	if err != nil {
		return nil, err
	}
	s := &liveSession{
		b: b, info: info, channelToken: token,
		agentReady: make(chan *datachannel.Conn, 1), opened: make(chan string, 1),
		done: make(chan struct{}), cols: max(cols, 80), rows: max(rows, 24),
	}
	b.mu.Lock()
	if _, dup := b.sessions[info.SessionID]; dup {
		b.mu.Unlock()
		return nil, errors.New("session is already open")
	}
	b.sessions[info.SessionID] = s
	b.mu.Unlock()
	fail := func(err error) (*liveSession, error) {
		b.mu.Lock()
		delete(b.sessions, info.SessionID)
		b.mu.Unlock()
		return nil, err
	}
	env, err := agentproto.NewEnvelope(agentproto.TypeOpenSession, agentproto.OpenSession{
		SessionID: info.SessionID, ChannelToken: token, Kind: info.Kind, RunAsUser: info.RunAsUser,
		ShellProfile: info.ShellProfile, Command: info.Command, Cols: s.cols, Rows: s.rows, Host: info.Host, Port: info.Port,
	})
	if err != nil {
		return fail(err)
	}
	if err := b.g.Send(ctx, info.Target, env); err != nil {
		return fail(fmt.Errorf("ask the agent to open the session: %w", err))
	}
	timer := time.NewTimer(b.cfg.OpenTimeout)
	defer timer.Stop()
	select {
	case msg := <-s.opened:
		if msg != "" {
			return fail(fmt.Errorf("the agent refused the session: %s", msg))
		}
		select {
		case ws := <-s.agentReady:
			s.agent = ws
		case <-timer.C:
			return fail(errors.New("the agent did not open a data channel in time"))
		}
	case ws := <-s.agentReady:
		s.agent = ws
	case <-timer.C:
		return fail(errors.New("the agent did not answer in time"))
	}
	if info.Recording && info.Kind != agentproto.SessionPort {
		s.rec = newRecorder(b, info.SessionID, s.cols, s.rows, b.cfg.Now())
	}
	go s.pumpAgent(ctx)
	return s, nil
}

// onOpened receives the agent's answer to OpenSession.
func (b *SessionBridge) onOpened(_ context.Context, instanceID string, env agentproto.Envelope) error {
	var m agentproto.SessionOpened
	if err := env.Decode(&m); err != nil {
		return err
	}
	s := b.get(m.SessionID)
	if s == nil || s.info.Target != instanceID {
		return fmt.Errorf("session_opened for unknown session %q", truncate(m.SessionID, 100))
	}
	select {
	case s.opened <- m.Error:
	default:
	}
	return nil
}

// ServeAgent accepts an agent's data channel for a session this replica
// asked it to open; anything else is refused.
func (b *SessionBridge) ServeAgent(w http.ResponseWriter, r *http.Request, instanceID, sessionID string) {
	s := b.get(sessionID)
	token := r.Header.Get(agentproto.HeaderChannelToken)
	if s == nil || s.info.Target != instanceID || token == "" || !s.takeToken(token) {
		writeJSONError(w, http.StatusForbidden, "AccessDenied", "no data channel was requested for this session")
		return
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	ws := newChannel(conn)
	select {
	case s.agentReady <- ws:
	default:
		_ = ws.Close(websocket.StatusPolicyViolation, "duplicate data channel")
		return
	}
	// The handler must not return while the bridge uses the connection.
	<-s.done
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(agentproto.ErrorResponse{Error: agentproto.ErrorBody{Code: code, Message: msg}})
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// liveSession is one bridged session.
type liveSession struct {
	b    *SessionBridge
	info SessionInfo

	channelToken string
	tokenUsed    bool
	agentReady   chan *datachannel.Conn
	opened       chan string
	agent        *datachannel.Conn
	rec          *recorder
	cols, rows   int

	mu           sync.Mutex
	client       *datachannel.Conn
	clientGone   chan struct{} // closed when the current client leaves
	buffer       []byte        // output held for a disconnected client
	lastReported time.Time
	ended        bool
	done         chan struct{}
	exitCode     *int
}

func (s *liveSession) takeToken(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokenUsed || subtle.ConstantTimeCompare([]byte(token), []byte(s.channelToken)) != 1 {
		return false
	}
	s.tokenUsed = true
	return true
}

// attach makes ws the session's client and pumps its frames to the agent
// until it leaves.
func (s *liveSession) attach(ctx context.Context, ws *datachannel.Conn, connection int) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		_ = ws.WriteFrame(ctx, agentproto.FrameClose, []byte("session ended"))
		_ = ws.Close(websocket.StatusNormalClosure, "")
		return
	}
	if s.client != nil {
		_ = s.client.Close(websocket.StatusGoingAway, "replaced by a resumed connection")
	}
	s.client = ws
	gone := make(chan struct{})
	s.clientGone = gone
	pending := s.buffer
	s.buffer = nil
	s.mu.Unlock()

	now := s.b.cfg.Now()
	_ = s.b.cfg.Store.SetSessionStatus(ctx, s.info.SessionID, SessionConnected, "", now)
	if err := s.b.cfg.Events.SessionConnected(ctx, s.info.SessionID, connection); err != nil {
		s.b.log.Warn("report session connected", "sessionId", s.info.SessionID, "err", err)
	}
	// Output held while disconnected is replayed in frames: it may exceed
	// one frame's limit.
	for chunk := range slices.Chunk(pending, agentproto.MaxFrameBytes/2) {
		if ws.WriteFrame(ctx, agentproto.FrameData, chunk) != nil {
			break
		}
	}

	closedByClient := s.pumpClient(ctx, ws)
	close(gone)
	if closedByClient {
		// Confirm the end (so the client does not take the closing
		// connection for a blip) and answer its close handshake now: it
		// waits for this.
		_ = ws.WriteFrame(ctx, agentproto.FrameClose, []byte("closed by the client"))
		_ = ws.Close(websocket.StatusNormalClosure, "")
	} else {
		_ = ws.CloseNow()
	}

	s.mu.Lock()
	current := s.client == ws
	if current {
		s.client = nil
	}
	ended := s.ended
	s.mu.Unlock()
	if !current || ended {
		return
	}
	if closedByClient {
		s.end(ctx, SessionTerminated, "closed by the client", nil)
		return
	}
	// A network blip: keep the agent side, let the workflow's grace decide.
	_ = s.b.cfg.Store.SetSessionStatus(ctx, s.info.SessionID, SessionDisconnected, "client connection lost", s.b.cfg.Now())
	_ = s.b.cfg.Events.SessionDisconnected(ctx, s.info.SessionID, connection)
}

// pumpClient forwards the client's frames to the agent. It reports whether
// the client ended the session on purpose (FrameClose).
func (s *liveSession) pumpClient(ctx context.Context, ws *datachannel.Conn) bool {
	for {
		typ, payload, err := readFrame(ctx, ws)
		if err != nil {
			return false
		}
		switch typ {
		case agentproto.FrameData:
			s.activity(ctx)
			s.b.bytes.WithLabelValues("input").Add(float64(len(payload)))
			if s.rec != nil && s.info.RecordInput {
				s.rec.event("i", payload)
			}
			s.sink("input", payload)
		case agentproto.FrameResize:
			var rs agentproto.Resize
			if json.Unmarshal(payload, &rs) != nil || rs.Cols <= 0 || rs.Rows <= 0 || rs.Cols > 10000 || rs.Rows > 10000 {
				continue
			}
			if s.rec != nil {
				s.rec.event("r", []byte(fmt.Sprintf("%dx%d", rs.Cols, rs.Rows)))
			}
		case agentproto.FrameClose:
			_ = s.agent.WriteFrame(ctx, agentproto.FrameClose, nil)
			return true
		default:
			continue // clients do not send exit or stderr frames
		}
		if err := s.agent.WriteFrame(ctx, typ, payload); err != nil {
			return false
		}
	}
}

// pumpAgent forwards the agent's frames to the client (or the resume
// buffer) until the data channel closes, then ends the session.
func (s *liveSession) pumpAgent(ctx context.Context) {
	details := "the agent closed the session"
	for {
		typ, payload, err := readFrame(ctx, s.agent)
		if err != nil {
			break
		}
		switch typ {
		case agentproto.FrameData, agentproto.FrameStderr:
			s.activity(ctx)
			s.b.bytes.WithLabelValues("output").Add(float64(len(payload)))
			if s.rec != nil {
				s.rec.event("o", payload)
			}
			s.sink("output", payload)
		case agentproto.FrameExit:
			var ex agentproto.Exit
			if json.Unmarshal(payload, &ex) == nil {
				code := ex.Code
				s.mu.Lock()
				s.exitCode = &code
				s.mu.Unlock()
				details = fmt.Sprintf("exited with code %d", code)
			}
		}
		s.toClient(ctx, typ, payload)
		if typ == agentproto.FrameClose {
			break
		}
	}
	s.mu.Lock()
	code := s.exitCode
	s.mu.Unlock()
	s.end(ctx, SessionTerminated, details, code)
}

// toClient writes a frame to the attached client, or keeps output for a
// client that will resume (dropping the oldest past ResumeBuffer).
func (s *liveSession) toClient(ctx context.Context, typ byte, payload []byte) {
	s.mu.Lock()
	ws := s.client
	if ws == nil {
		if typ == agentproto.FrameData {
			s.buffer = append(s.buffer, payload...)
			if over := len(s.buffer) - s.b.cfg.ResumeBuffer; over > 0 {
				s.buffer = s.buffer[over:]
			}
		}
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	_ = ws.WriteFrame(ctx, typ, payload)
}

func (s *liveSession) activity(ctx context.Context) {
	now := s.b.cfg.Now()
	s.mu.Lock()
	every := s.b.cfg.ActivityEvery
	if idle := s.info.IdleTimeout; idle > 0 && idle/3 < every {
		every = idle / 3
	}
	due := now.Sub(s.lastReported) >= every
	if due {
		s.lastReported = now
	}
	s.mu.Unlock()
	if due {
		go func() {
			if err := s.b.cfg.Events.SessionActivity(ctx, s.info.SessionID); err != nil {
				s.b.log.Debug("report session activity", "sessionId", s.info.SessionID, "err", err)
			}
		}()
	}
}

func (s *liveSession) sink(stream string, data []byte) {
	if s.b.cfg.Sink == nil {
		return
	}
	s.b.cfg.Sink.Write(SessionLogRecord{SessionID: s.info.SessionID, Target: s.info.Target, Time: s.b.cfg.Now().UTC(), Stream: stream, Data: string(data)})
}

// end closes both sides once and reports the end to the workflow.
func (s *liveSession) end(ctx context.Context, status, details string, exitCode *int) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	client := s.client
	s.client = nil
	s.mu.Unlock()
	s.b.ended.WithLabelValues(s.info.Kind, status).Inc()

	// The recording is complete before the client hears of the end, so
	// an export right after the client exits has all of it.
	if s.rec != nil {
		s.rec.close()
	}
	if client != nil {
		_ = client.WriteFrame(ctx, agentproto.FrameClose, []byte(details))
		_ = client.Close(websocket.StatusNormalClosure, "")
	}
	_ = s.agent.Close(websocket.StatusNormalClosure, "")
	s.b.mu.Lock()
	delete(s.b.sessions, s.info.SessionID)
	s.b.mu.Unlock()
	close(s.done)
	if err := s.b.cfg.Events.SessionEnded(ctx, s.info.SessionID, status, details, exitCode); err != nil {
		s.b.log.Warn("report session end", "sessionId", s.info.SessionID, "err", err)
	}
}

// shutdown ends a session decided elsewhere: the agent is told, the client
// sees why.
func (s *liveSession) shutdown(reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if env, err := agentproto.NewEnvelope(agentproto.TypeCloseSession, agentproto.CloseSession{SessionID: s.info.SessionID, Reason: reason}); err == nil {
		_ = s.b.g.Send(ctx, s.info.Target, env)
	}
	s.end(ctx, SessionTerminated, reason, nil)
}

// newChannel wraps a session WebSocket (client or agent side) as a data
// channel: frames of at most agentproto.MaxFrameBytes, and a write that
// stalls for 30 s closes the connection.
func newChannel(ws *websocket.Conn) *datachannel.Conn {
	return datachannel.New(ws, &datachannel.Options{WriteTimeout: 30 * time.Second})
}

// readFrame reads the next frame, skipping messages that are not frames
// (text or empty) rather than ending the session over them.
func readFrame(ctx context.Context, c *datachannel.Conn) (byte, []byte, error) {
	for {
		typ, payload, err := c.ReadFrame(ctx)
		if errors.Is(err, datachannel.ErrMalformedFrame) {
			continue
		}
		return typ, payload, err
	}
}

// recordingFlushBytes is how much recording the recorder buffers before it
// stores a chunk early (it stores every 200 ms otherwise).
const recordingFlushBytes = 256 << 10

// recorder writes a session as an asciicast v2 recording, in chunks. It
// keeps to the cap itself, whole lines only, so a fast stream records up
// to the cap rather than losing a chunk that would cross it.
type recorder struct {
	b        *SessionBridge
	id       string
	start    time.Time
	mu       sync.Mutex
	pending  []byte // encoded lines not yet stored
	partial  []byte // an incomplete UTF-8 sequence carried to the next event
	accepted int64  // bytes of recording taken so far, header included
	full     bool   // the cap was reached: later events are dropped
	marked   bool   // the store knows the recording is truncated
	kick     chan struct{}
	stop     chan struct{}
	stopped  chan struct{}
}

func newRecorder(b *SessionBridge, id string, cols, rows int, start time.Time) *recorder {
	r := &recorder{b: b, id: id, start: start, kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	header, _ := json.Marshal(struct {
		Version   int               `json:"version"`
		Width     int               `json:"width"`
		Height    int               `json:"height"`
		Timestamp int64             `json:"timestamp"`
		Env       map[string]string `json:"env"`
	}{2, cols, rows, start.Unix(), map[string]string{"TERM": "xterm-256color", "SHELL": "/bin/bash"}})
	r.pending = append(header, '\n')
	r.accepted = int64(len(r.pending))
	go r.flushLoop()
	return r
}

// event appends one [time, code, data] line, keeping UTF-8 sequences split
// across chunks whole.
func (r *recorder) event(code string, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.full {
		return
	}
	if code == "o" {
		data = append(r.partial, data...)
		r.partial = nil
		if cut := incompleteSuffix(data); cut > 0 {
			r.partial = append([]byte(nil), data[len(data)-cut:]...)
			data = data[:len(data)-cut]
		}
	}
	line, _ := json.Marshal([]any{roundMillis(r.b.cfg.Now().Sub(r.start)), code, string(data)})
	if r.accepted+int64(len(line))+1 > r.b.cfg.RecordingCap {
		r.full = true
		r.kickFlush()
		return
	}
	r.accepted += int64(len(line)) + 1
	r.pending = append(append(r.pending, line...), '\n')
	if len(r.pending) >= recordingFlushBytes {
		r.kickFlush()
	}
}

func (r *recorder) kickFlush() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func roundMillis(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

// incompleteSuffix is the length of a trailing, unfinished UTF-8 sequence.
func incompleteSuffix(b []byte) int {
	for i := 1; i <= 3 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < 0x80 {
			return 0
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return i
			}
			return 0
		}
	}
	return 0
}

func (r *recorder) flushLoop() {
	defer close(r.stopped)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			r.flush()
			return
		case <-t.C:
			r.flush()
		case <-r.kick:
			r.flush()
		}
	}
}

func (r *recorder) flush() {
	r.mu.Lock()
	data := r.pending
	r.pending = nil
	markTruncated := r.full && !r.marked
	r.marked = r.full
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if len(data) > 0 {
		truncated, err := r.b.cfg.Store.AppendRecording(ctx, r.id, string(data), r.b.cfg.RecordingCap)
		if err != nil {
			r.b.log.Warn("store session recording", "sessionId", r.id, "err", err)
		}
		if truncated && !markTruncated { // the store's cap is a backstop
			r.mu.Lock()
			r.full, r.marked = true, true
			r.mu.Unlock()
		}
	}
	if markTruncated {
		if err := r.b.cfg.Store.MarkRecordingTruncated(ctx, r.id); err != nil {
			r.b.log.Warn("mark session recording truncated", "sessionId", r.id, "err", err)
		}
	}
}

func (r *recorder) close() {
	close(r.stop)
	<-r.stopped
}
