package datachannel

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/yamux"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// closeFlushTimeout bounds how long Stream.Close waits for buffered data
// and FrameClose to be written.
const closeFlushTimeout = 5 * time.Second

// Stream is a byte stream over a Conn's FrameData frames: Read returns the
// payloads of incoming FrameData frames, Write sends FrameData frames. It is
// an io.ReadWriteCloser, the transport yamux needs for Port sessions.
//
// Writes are buffered and coalesced: Write copies into a buffer (at most
// Options.StreamFrameBytes) that a writer goroutine sends as one frame, so
// the many small writes of a yamux session (a 12-byte header, then a body)
// become few WebSocket messages. Write blocks only while that buffer is
// full; a write error is reported by a later Write or by Close.
//
// Incoming FrameClose ends the stream: Read returns io.EOF. Other frame
// types go to the handler given to Conn.Stream; without one, Read fails
// with ErrUnexpectedFrame.
type Stream struct {
	c       *Conn
	ctx     context.Context
	onFrame func(typ byte, payload []byte) error

	rmu  sync.Mutex
	cur  io.Reader // the rest of the FrameData message being read
	rerr error

	wmu        sync.Mutex
	wcond      *sync.Cond
	pending    []byte // a frame being filled: pending[0] is FrameData
	spare      []byte // the other buffer, nil while the writer sends it
	werr       error
	closed     bool
	writerDone chan struct{}
	stopAfter  func() bool

	closeOnce sync.Once
	closeErr  error
}

// Stream returns the byte stream of c's FrameData frames. ctx bounds every
// read and write: when it ends the connection is closed. onFrame, if not
// nil, receives every frame other than FrameData (FrameClose included,
// before Read returns io.EOF) on the reading goroutine; an error it
// returns is returned by Read, and every later Read. Use either a Stream or
// ReadFrame on a Conn, not both.
func (c *Conn) Stream(ctx context.Context, onFrame func(typ byte, payload []byte) error) *Stream {
	s := &Stream{
		c:          c,
		ctx:        ctx,
		onFrame:    onFrame,
		pending:    newFrameBuf(c.opts.StreamFrameBytes),
		spare:      newFrameBuf(c.opts.StreamFrameBytes),
		writerDone: make(chan struct{}),
	}
	s.wcond = sync.NewCond(&s.wmu)
	s.stopAfter = context.AfterFunc(ctx, func() {
		s.wmu.Lock()
		if s.werr == nil {
			s.werr = fmt.Errorf("data channel stream: %w", context.Cause(ctx))
		}
		s.wcond.Broadcast()
		s.wmu.Unlock()
	})
	go s.writeLoop()
	return s
}

func newFrameBuf(payload int) []byte {
	b := make([]byte, 1, 1+payload)
	b[0] = agentproto.FrameData
	return b
}

// Read reads FrameData payload bytes. See Stream for the other frames.
func (s *Stream) Read(p []byte) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for {
		if s.rerr != nil {
			return 0, s.rerr
		}
		if s.cur != nil {
			n, err := s.cur.Read(p)
			if err == io.EOF {
				s.cur, err = nil, nil
			}
			if err != nil {
				s.rerr = fmt.Errorf("read frame: %w", err)
			}
			if n > 0 || len(p) == 0 {
				return n, nil
			}
			continue
		}
		s.rerr = s.nextFrame()
	}
}

// nextFrame reads the next message: a FrameData one becomes s.cur, others
// are dispatched. It returns an error that ends the stream.
func (s *Stream) nextFrame() error {
	mt, r, err := s.c.ws.Reader(s.ctx)
	if err != nil {
		return readErr(err)
	}
	var typ [1]byte
	if _, err := io.ReadFull(r, typ[:]); err != nil || mt != websocket.MessageBinary {
		return ErrMalformedFrame
	}
	if typ[0] == agentproto.FrameData {
		s.cur = r
		return nil
	}
	payload, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read frame: %w", err)
	}
	if s.onFrame != nil {
		if err := s.onFrame(typ[0], payload); err != nil {
			return err
		}
	}
	switch {
	case typ[0] == agentproto.FrameClose:
		return io.EOF
	case s.onFrame == nil:
		return fmt.Errorf("%w: type %d", ErrUnexpectedFrame, typ[0])
	}
	return nil
}

// Write queues p to be sent in FrameData frames. It returns once p is
// buffered (not necessarily sent).
func (s *Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	limit := s.c.opts.StreamFrameBytes
	n := 0
	for len(p) > 0 {
		for s.werr == nil && !s.closed && len(s.pending)-1 >= limit {
			s.wcond.Wait()
		}
		if s.werr != nil {
			return n, s.werr
		}
		if s.closed {
			return n, io.ErrClosedPipe
		}
		k := min(len(p), limit-(len(s.pending)-1))
		s.pending = append(s.pending, p[:k]...)
		p, n = p[k:], n+k
		s.wcond.Broadcast()
	}
	return n, nil
}

// writeLoop sends the pending buffer whenever it holds data, swapping
// buffers so that Write can fill one while the other is on the wire.
func (s *Stream) writeLoop() {
	defer close(s.writerDone)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for {
		for len(s.pending) == 1 && !s.closed && s.werr == nil {
			s.wcond.Wait()
		}
		if s.werr != nil || len(s.pending) == 1 {
			return // failed, or closed with nothing left to send
		}
		msg := s.pending
		s.pending, s.spare = s.spare, nil
		s.wcond.Broadcast()
		s.wmu.Unlock()
		err := s.c.writeMessage(s.ctx, msg)
		s.wmu.Lock()
		s.spare = msg[:1]
		if err != nil && s.werr == nil {
			s.werr = err
			s.wcond.Broadcast()
		}
	}
}

// Close flushes buffered data (for at most a few seconds), sends FrameClose
// and closes the data channel. It is what yamux calls when its session
// ends. Close is idempotent.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.wmu.Lock()
		s.closed = true
		s.wcond.Broadcast()
		s.wmu.Unlock()
		t := time.NewTimer(closeFlushTimeout)
		defer t.Stop()
		select {
		case <-s.writerDone:
		case <-t.C:
			_ = s.c.CloseNow()
			<-s.writerDone
		}
		s.stopAfter()
		s.wmu.Lock()
		werr := s.werr
		s.wmu.Unlock()
		if werr == nil {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), closeFlushTimeout)
			_ = s.c.WriteFrame(ctx, agentproto.FrameClose, nil)
			cancel()
		}
		if err := s.c.Close(websocket.StatusNormalClosure, ""); err != nil && werr == nil {
			s.closeErr = err
		}
	})
	return s.closeErr
}

// YamuxConfig is the yamux configuration of both ends of a Port session
// (the agent is the yamux server, the CLI the client): 16 MiB stream
// windows so that one stream can fill a long fat pipe, no keepalive pings
// (the server owns session lifetime and idle timeouts, and a ping that
// cannot be answered while a client reconnects must not kill a tunnel),
// and no logging to stderr.
func YamuxConfig() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.AcceptBacklog = 256
	cfg.EnableKeepAlive = false
	cfg.MaxStreamWindowSize = 16 << 20
	cfg.ConnectionWriteTimeout = 30 * time.Second
	cfg.LogOutput = io.Discard
	return cfg
}
