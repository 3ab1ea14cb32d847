package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/agent/datachannel"
)

func newSessionCmd() *cobra.Command {
	o := &clientOptions{}
	sessTable := &table{
		headers: []string{"SESSION ID", "TARGET", "OWNER", "STATUS", "DOCUMENT", "STARTED", "ENDED", "REASON", "DETAILS"},
		row:     fields("sessionId", "target", "owner", "status", "documentName", "startDate", "endDate", "reason", "details"),
	}

	var target, reason, document, command string
	start := &cobra.Command{
		Use:   "start --target mi-…",
		Short: "Open a shell (or run --command) on a node; exits with the remote exit code",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := map[string]any{"target": target, "reason": reason}
			if command != "" {
				if document == "" {
					document = "AWS-StartInteractiveCommand"
				}
				req["parameters"] = map[string][]string{"command": {command}}
			}
			if document != "" {
				req["documentName"] = document
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			id, token, err := startSession(cmd.Context(), c, req)
			if err != nil {
				return err
			}
			code, err := runTerminal(cmd.Context(), c, id, token, os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
	start.Flags().StringVar(&target, "target", "", "the node (mi-…)")
	start.Flags().StringVar(&reason, "reason", "", "why, for the audit log (up to 256 characters)")
	start.Flags().StringVar(&document, "document", "", "session document (default SSM-SessionManagerRunShell)")
	start.Flags().StringVar(&command, "command", "", "run this command instead of a shell, with its output streamed")
	_ = start.MarkFlagRequired("target")

	var state, status, owner, after, before string
	list := &cobra.Command{
		Use:   "list",
		Short: "List active sessions (or --state History)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"state": {state}}
			setIf(q, "target", target)
			setIf(q, "status", status)
			setIf(q, "owner", owner)
			for name, v := range map[string]string{"after": after, "before": before} {
				t, err := sinceOrTime(v, time.Now())
				if err != nil {
					return fmt.Errorf("--%s: %w", name, err)
				}
				setIf(q, name, t)
			}
			return call(cmd, o, http.MethodGet, "/v1/sessions", q, nil, "sessions", sessTable)
		},
	}
	list.Flags().StringVar(&state, "state", "Active", "Active or History")
	list.Flags().StringVar(&target, "target", "", "only sessions on this node")
	list.Flags().StringVar(&status, "status", "", "only sessions in this status")
	list.Flags().StringVar(&owner, "owner", "", "only sessions started by this caller")
	list.Flags().StringVar(&after, "after", "", "only sessions started after this RFC 3339 time, or this long ago (e.g. 24h)")
	list.Flags().StringVar(&before, "before", "", "only sessions started before this RFC 3339 time, or this long ago")

	describe := &cobra.Command{
		Use:   "describe SESSION_ID",
		Short: "Show one session",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, o, http.MethodGet, "/v1/sessions/"+url.PathEscape(args[0]), nil, nil, "session", sessTable)
		},
	}
	terminate := &cobra.Command{
		Use:   "terminate SESSION_ID",
		Short: "End a session for good",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := call(cmd, o, http.MethodPost, "/v1/sessions/"+url.PathEscape(args[0])+"/terminate", nil, map[string]any{}, "", nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "terminated", args[0])
			return nil
		},
	}
	var exportFile string
	export := &cobra.Command{
		Use:   "export SESSION_ID [--file F.cast]",
		Short: "Write a session's asciicast v2 recording",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rec, err := fetchRecording(cmd.Context(), o, args[0])
			if err != nil {
				return err
			}
			if exportFile == "" || exportFile == "-" {
				_, err = cmd.OutOrStdout().Write(rec)
				return err
			}
			return os.WriteFile(exportFile, rec, 0o600)
		},
	}
	export.Flags().StringVarP(&exportFile, "file", "f", "", "output file (default standard output)")
	var speed float64
	var maxIdle time.Duration
	replay := &cobra.Command{
		Use:   "replay SESSION_ID",
		Short: "Play a session's recording back in this terminal, with its timing",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rec, err := fetchRecording(cmd.Context(), o, args[0])
			if err != nil {
				return err
			}
			return replayCast(cmd.Context(), rec, cmd.OutOrStdout(), speed, maxIdle)
		},
	}
	replay.Flags().Float64Var(&speed, "speed", 1, "playback speed factor")
	replay.Flags().DurationVar(&maxIdle, "max-idle", 2*time.Second, "cap pauses at this length (0: keep them)")

	return cliCmd("session", "Shells and port forwarding to nodes without SSH (Session Manager)", o,
		start, list, describe, terminate, export, replay, newPortForwardCmd(o))
}

func fetchRecording(ctx context.Context, o *clientOptions, id string) ([]byte, error) {
	c, err := o.client()
	if err != nil {
		return nil, err
	}
	b, _, err := c.raw(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id)+"/recording", nil, nil)
	return b, err
}

// dialStream opens a session's stream WebSocket with its token as a data
// channel; opts tunes it (nil: the datachannel defaults).
func dialStream(ctx context.Context, c *apiClient, id, token string, cols, rows int, opts *datachannel.Options) (*datachannel.Conn, error) {
	u := c.base + "/v1/sessions/" + url.PathEscape(id) + "/stream"
	if cols > 0 && rows > 0 {
		u += "?cols=" + strconv.Itoa(cols) + "&rows=" + strconv.Itoa(rows)
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	conn, resp, err := datachannel.Dial(ctx, u, &websocket.DialOptions{HTTPClient: &http.Client{Transport: c.http.Transport}, HTTPHeader: h,
		CompressionMode: websocket.CompressionDisabled}, opts)
	if err != nil {
		if resp != nil && resp.Body != nil {
			var e agentproto.ErrorResponse
			if json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e) == nil && e.Error.Message != "" {
				return nil, e.Error
			}
		}
		return nil, fmt.Errorf("open session stream: %w", err)
	}
	return conn, nil
}

// inputFrameBytes is the most standard input one FrameData carries.
const inputFrameBytes = 32 << 10

// runTerminal bridges this terminal to a session until it ends, resuming
// after a network blip, and returns the remote exit code.
func runTerminal(ctx context.Context, c *apiClient, id, token string, stdin *os.File, stdout, stderr io.Writer) (int, error) {
	fd := int(stdin.Fd())
	tty := term.IsTerminal(fd)
	cols, rows := 0, 0
	if tty {
		cols, rows, _ = term.GetSize(fd)
		old, err := term.MakeRaw(fd)
		if err != nil {
			return 0, fmt.Errorf("raw terminal: %w", err)
		}
		defer func() { _ = term.Restore(fd, old) }()
	}

	// The terminal's channel reads messages up to agentproto.MaxMessageBytes,
	// the limit the CLI has always set on its stream.
	opts := &datachannel.Options{ReadLimit: agentproto.MaxMessageBytes}
	var (
		mu         sync.Mutex
		ws         *datachannel.Conn
		pending    []byte // typed while no connection is up; sent on connect
		inputEnded bool   // stdin ended while no connection was up
	)
	current := func() *datachannel.Conn {
		mu.Lock()
		defer mu.Unlock()
		return ws
	}
	// Keystrokes go to whichever connection is current.
	go func() {
		buf := make([]byte, inputFrameBytes)
		for {
			n, err := stdin.Read(buf)
			if n > 0 {
				mu.Lock()
				conn := ws
				if conn == nil {
					pending = append(pending, buf[:n]...)
				}
				mu.Unlock()
				if conn != nil {
					_ = conn.WriteFrame(ctx, agentproto.FrameData, buf[:n])
				}
			}
			if err != nil {
				mu.Lock()
				conn := ws
				inputEnded = conn == nil
				mu.Unlock()
				if conn != nil && !tty {
					_ = conn.WriteFrame(ctx, agentproto.FrameData, endOfInput)
				}
				return
			}
		}
	}()
	if tty {
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if w, h, err := term.GetSize(fd); err == nil {
					if conn := current(); conn != nil {
						b, _ := json.Marshal(agentproto.Resize{Cols: w, Rows: h})
						_ = conn.WriteFrame(ctx, agentproto.FrameResize, b)
					}
				}
			}
		}()
	}

	exitCode := 0
	for attempt := 0; ; attempt++ {
		conn, err := dialStream(ctx, c, id, token, cols, rows, opts)
		if err != nil {
			return 0, err
		}
		// What was typed meanwhile goes first, before the connection is
		// published to the keystroke reader, so input keeps its order; in
		// frames no larger than the keystroke ones, since what piled up
		// during a long outage may not fit in one.
		mu.Lock()
		for chunk := range slices.Chunk(pending, inputFrameBytes) {
			_ = conn.WriteFrame(ctx, agentproto.FrameData, chunk)
		}
		pending = nil
		if inputEnded && !tty {
			_ = conn.WriteFrame(ctx, agentproto.FrameData, endOfInput)
		}
		ws = conn
		mu.Unlock()
		ended, code, closeMsg, err := readSession(ctx, conn, stdout, stderr)
		mu.Lock()
		ws = nil
		mu.Unlock()
		_ = conn.CloseNow()
		if code != nil {
			exitCode = *code
		}
		if ended {
			if code == nil {
				if closeMsg != "" {
					fmt.Fprintf(stderr, "\r\nsession ended: %s\r\n", closeMsg)
				}
				if sessionFailed(ctx, c, id) {
					return exitSessionFailed, nil
				}
			}
			return exitCode, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		// The connection dropped without an end: resume the session.
		fmt.Fprintf(stderr, "\r\nconnection lost (%v); resuming…\r\n", err)
		token, err = resume(ctx, c, id, attempt)
		if err != nil {
			return 0, err
		}
	}
}

// startSession starts a session (POST /v1/sessions) and returns its ID
// and the single-use token that opens its stream.
func startSession(ctx context.Context, c *apiClient, req map[string]any) (id, token string, err error) {
	var started struct {
		Session    struct{ SessionID string } `json:"session"`
		TokenValue string                     `json:"tokenValue"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/sessions", nil, req, &started); err != nil {
		return "", "", err
	}
	return started.Session.SessionID, started.TokenValue, nil
}

// sinceOrTime reads an RFC 3339 time, or a duration meaning that long
// before now; "" stays "".
func sinceOrTime(v string, now time.Time) (string, error) {
	if v == "" {
		return "", nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d).UTC().Format(time.RFC3339), nil
	}
	if _, err := time.Parse(time.RFC3339, v); err != nil {
		return "", fmt.Errorf("%q is neither an RFC 3339 time (2026-11-30T12:00:00Z) nor a duration (24h)", v)
	}
	return v, nil
}

// endOfInput is what the end of piped input sends: Ctrl-D, the terminal's
// end of input, so the remote program reads EOF and the session ends when
// it exits, with its exit code. (Closing the session instead would kill a
// command still running.)
var endOfInput = []byte{0x04}

// exitSessionFailed is the CLI's exit code for a session that failed
// without a remote exit code (the agent refused it, say), as ssh exits 255
// when the connection fails.
const exitSessionFailed = 255

// sessionFailed reports whether the server recorded the session as Failed.
func sessionFailed(ctx context.Context, c *apiClient, id string) bool {
	var out struct {
		Session struct{ Status string } `json:"session"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id), nil, nil, &out)
	return err == nil && out.Session.Status == "Failed"
}

// readSession prints the session's frames until it ends or the connection
// drops. A message that is not a frame (text, or empty) is skipped.
func readSession(ctx context.Context, conn *datachannel.Conn, stdout, stderr io.Writer) (ended bool, code *int, closeMsg string, err error) {
	for {
		typ, payload, err := conn.ReadFrame(ctx)
		if errors.Is(err, datachannel.ErrMalformedFrame) {
			continue
		}
		if err != nil {
			return false, code, "", err
		}
		switch typ {
		case agentproto.FrameData:
			_, _ = stdout.Write(payload)
		case agentproto.FrameStderr:
			_, _ = stderr.Write(payload)
		case agentproto.FrameExit:
			var ex agentproto.Exit
			if json.Unmarshal(payload, &ex) == nil {
				c := ex.Code
				code = &c
			}
		case agentproto.FrameClose:
			return true, code, string(payload), nil
		}
	}
}

// resume asks for a new stream token, retrying for about a minute.
func resume(ctx context.Context, c *apiClient, id string, attempt int) (string, error) {
	if attempt > 20 {
		return "", errors.New("gave up resuming the session")
	}
	var lastErr error
	for i := 0; i < 10; i++ {
		var out struct {
			TokenValue string `json:"tokenValue"`
		}
		lastErr = c.do(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(id)+"/resume", nil, map[string]any{}, &out)
		if lastErr == nil {
			return out.TokenValue, nil
		}
		var apiErr agentproto.ErrorBody
		if errors.As(lastErr, &apiErr) && apiErr.Code == "DoesNotExistException" {
			return "", fmt.Errorf("the session ended while disconnected")
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Duration(i+1) * time.Second):
		}
	}
	return "", fmt.Errorf("resume session: %w", lastErr)
}

// replayCast plays an asciicast v2 recording's output events with their
// timing.
func replayCast(ctx context.Context, rec []byte, w io.Writer, speed float64, maxIdle time.Duration) error {
	if speed <= 0 {
		speed = 1
	}
	lines := strings.Split(string(rec), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "{") {
		return errors.New("not an asciicast v2 recording")
	}
	prev := 0.0
	for _, line := range lines[1:] {
		if line == "" {
			continue
		}
		var ev []any
		if err := json.Unmarshal([]byte(line), &ev); err != nil || len(ev) != 3 {
			continue
		}
		at, _ := ev[0].(float64)
		code, _ := ev[1].(string)
		data, _ := ev[2].(string)
		if code != "o" {
			continue
		}
		wait := time.Duration((at - prev) / speed * float64(time.Second))
		if maxIdle > 0 && wait > maxIdle {
			wait = maxIdle
		}
		prev = at
		if wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		if _, err := io.WriteString(w, data); err != nil {
			return err
		}
	}
	return nil
}
