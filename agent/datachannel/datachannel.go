// Package datachannel speaks the session data channel framing of
// agent/agentproto over a WebSocket (github.com/coder/websocket): one binary
// message per frame, the first byte the agentproto.Frame* type, the rest its
// payload.
//
// Both ends of a session use it: the agent (which dials the server's
// PathSessionData endpoint) and the CLI (which dials the client stream
// endpoint). A Conn reads and writes whole frames; Stream turns the FrameData
// frames of a Conn into a byte stream, which is what a Port session's yamux
// session runs over (see YamuxConfig).
//
// The package imports only the standard library, agent/agentproto,
// coder/websocket and hashicorp/yamux: it is linked into the agent binary.
package datachannel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// ErrMalformedFrame is returned for a message that is not a frame: a text
// message, or an empty binary one.
var ErrMalformedFrame = errors.New("malformed data channel frame")

// ErrUnexpectedFrame is returned (wrapped, with the type) by Stream.Read for a
// frame that is neither FrameData nor FrameClose when the Stream has no frame
// handler.
var ErrUnexpectedFrame = errors.New("unexpected data channel frame")

// ErrFrameTooLarge is returned by WriteFrame for a payload that does not fit
// in one frame (agentproto.MaxFrameBytes with the type byte).
var ErrFrameTooLarge = errors.New("data channel frame too large")

// DefaultWriteTimeout is Options.WriteTimeout's default.
const DefaultWriteTimeout = 60 * time.Second

// DefaultStreamFrameBytes is Options.StreamFrameBytes's default: large enough
// that a yamux header and a 64 KiB yamux data frame (and, when the socket is
// busy, several of them) travel in one WebSocket message.
const DefaultStreamFrameBytes = 256 << 10

// Options tune a Conn. The zero value takes the defaults.
type Options struct {
	// ReadLimit bounds one incoming message (type byte included); a larger
	// one fails the read and closes the connection. Default
	// agentproto.MaxFrameBytes.
	ReadLimit int64
	// WriteTimeout bounds the write of one frame; a frame that cannot be
	// written within it closes the connection (a stalled peer must not
	// hang the writer forever). Default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// StreamFrameBytes is the largest FrameData payload a Stream writes;
	// at most agentproto.MaxFrameBytes-1. Default DefaultStreamFrameBytes.
	StreamFrameBytes int
}

// Conn is one data channel. WriteFrame, Ping and Close are safe for
// concurrent use (whole frames never interleave). A Conn has one reader:
// either ReadFrame or a Stream, not both.
type Conn struct {
	ws   *websocket.Conn
	opts Options
}

// New wraps an established WebSocket (from websocket.Dial or Accept) as a
// data channel and sets its read limit. opts may be nil.
func New(ws *websocket.Conn, opts *Options) *Conn {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.ReadLimit <= 0 {
		o.ReadLimit = agentproto.MaxFrameBytes
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.StreamFrameBytes <= 0 {
		o.StreamFrameBytes = DefaultStreamFrameBytes
	}
	o.StreamFrameBytes = min(o.StreamFrameBytes, agentproto.MaxFrameBytes-1)
	ws.SetReadLimit(o.ReadLimit)
	return &Conn{ws: ws, opts: o}
}

// Dial opens a data channel WebSocket at url (http, https, ws or wss) with
// dopts (HTTP client, headers) and wraps it with New. On failure the HTTP
// response, if any, tells why (e.g. 401); its body is already closed.
func Dial(ctx context.Context, url string, dopts *websocket.DialOptions, opts *Options) (*Conn, *http.Response, error) {
	ws, resp, err := websocket.Dial(ctx, url, dopts)
	if err != nil {
		return nil, resp, err
	}
	return New(ws, opts), resp, nil
}

// WriteFrame writes one frame. payload may be empty. A frame that cannot be
// written within Options.WriteTimeout, or whose ctx ends mid-write, closes
// the connection.
func (c *Conn) WriteFrame(ctx context.Context, typ byte, payload []byte) error {
	if 1+len(payload) > agentproto.MaxFrameBytes {
		return fmt.Errorf("%w: %d byte payload", ErrFrameTooLarge, len(payload))
	}
	msg := make([]byte, 1+len(payload))
	msg[0] = typ
	copy(msg[1:], payload)
	return c.writeMessage(ctx, msg)
}

// writeMessage writes an encoded frame (type byte first).
func (c *Conn) writeMessage(ctx context.Context, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.WriteTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageBinary, msg); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// ReadFrame reads the next frame. The payload belongs to the caller. A
// WebSocket closed by the peer with a normal closure reads as io.EOF;
// other close statuses come back as errors that websocket.CloseStatus
// understands. If ctx ends while ReadFrame waits, the connection is closed
// (coder/websocket's rule): use a context that lives as long as the channel.
func (c *Conn) ReadFrame(ctx context.Context) (typ byte, payload []byte, err error) {
	mt, msg, err := c.ws.Read(ctx)
	if err != nil {
		return 0, nil, readErr(err)
	}
	if mt != websocket.MessageBinary || len(msg) == 0 {
		return 0, nil, ErrMalformedFrame
	}
	return msg[0], msg[1:], nil
}

// Ping sends a WebSocket ping and waits for the pong. It needs a concurrent
// reader (ReadFrame or a Stream being read) to see the pong.
func (c *Conn) Ping(ctx context.Context) error { return c.ws.Ping(ctx) }

// Close closes the WebSocket with a close handshake (bounded by
// coder/websocket's timeouts). It does not send FrameClose: a peer that
// sees the WebSocket go without one may treat it as a network blip.
func (c *Conn) Close(code websocket.StatusCode, reason string) error {
	return c.ws.Close(code, reason)
}

// CloseNow drops the connection without a close handshake.
func (c *Conn) CloseNow() error { return c.ws.CloseNow() }

// readErr maps a normal closure to io.EOF.
func readErr(err error) error {
	if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
		return io.EOF
	}
	return err
}
