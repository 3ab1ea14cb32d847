package agent

import (
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// outputCapture keeps the first max bytes of one output stream (stdout or
// stderr) of an invocation, across its steps, and remembers how much of it
// was already streamed.
//
// The captured text is always valid UTF-8: invalid bytes become U+FFFD as
// they arrive, and a rune split across writes is held back until complete.
// That way JSON does not rewrite the text on the wire, so an offset means
// the same on both sides, and a chunk boundary never splits a rune.
type outputCapture struct {
	max int

	mu      sync.Mutex
	buf     []byte
	partial []byte // incomplete trailing rune of the last write
	dropped int64  // bytes not kept because buf was full
	sent    int    // buf[:sent] was handed to the streamer
	notify  func(unsent int)
}

func newOutputCapture(max int) *outputCapture { return &outputCapture{max: max} }

// Write never fails, so a process is never blocked or killed by its
// output: beyond max the bytes are counted and dropped.
func (c *outputCapture) Write(p []byte) (int, error) {
	n := len(p)
	c.mu.Lock()
	if len(c.buf) >= c.max {
		c.dropped += int64(len(p))
		c.mu.Unlock()
		return n, nil
	}
	if len(c.partial) > 0 {
		p = append(c.partial, p...) // partial is ours; p may alias it now
		c.partial = nil
	}
	for len(p) > 0 && len(c.buf) < c.max {
		i := validPrefix(p)
		c.appendLocked(p[:i])
		p = p[i:]
		if len(p) == 0 {
			break
		}
		if !utf8.FullRune(p) {
			c.partial = append([]byte(nil), p...)
			p = nil
			break
		}
		c.appendLocked([]byte(string(utf8.RuneError)))
		p = p[1:]
	}
	c.dropped += int64(len(p))
	unsent := len(c.buf) - c.sent
	notify := c.notify
	c.mu.Unlock()
	if notify != nil {
		notify(unsent)
	}
	return n, nil
}

// validPrefix returns the length of p's longest prefix of complete, valid
// runes.
func validPrefix(p []byte) int {
	i := 0
	for i < len(p) {
		if p[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return i
}

// appendLocked appends valid UTF-8, cutting at a rune boundary at max.
func (c *outputCapture) appendLocked(b []byte) {
	room := c.max - len(c.buf)
	if len(b) > room {
		cut := room
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		c.dropped += int64(len(b) - cut)
		b = b[:cut]
		c.max = len(c.buf) + cut // full: later writes are dropped whole
	}
	c.buf = append(c.buf, b...)
}

// endStep turns a rune left incomplete by a finished process into U+FFFD.
func (c *outputCapture) endStep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.partial) > 0 {
		k := len(c.partial)
		c.partial = nil
		for range k {
			if len(c.buf) >= c.max {
				c.dropped++
				continue
			}
			c.appendLocked([]byte(string(utf8.RuneError)))
		}
	}
}

// mark reports the current length and drop count, to delimit a step.
func (c *outputCapture) mark() (length int, dropped int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buf), c.dropped
}

// since returns the text captured from offset from, and whether bytes were
// dropped since the drop count was d.
func (c *outputCapture) since(from int, d int64) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf[from:]), c.dropped > d
}

// unsent returns the captured text not yet streamed and its offset, and
// marks it streamed. At most limit bytes are taken, cut at a rune boundary.
func (c *outputCapture) unsent(limit int) (data string, offset int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	end := len(c.buf)
	if end-c.sent > limit {
		end = c.sent + limit
		for end > c.sent && !utf8.RuneStart(c.buf[end]) {
			end--
		}
	}
	offset = c.sent
	data = string(c.buf[c.sent:end])
	c.sent = end
	return data, offset
}

func (c *outputCapture) setNotify(f func(unsent int)) {
	c.mu.Lock()
	c.notify = f
	c.mu.Unlock()
}

// streamer sends one step's new output as command_output chunks, every
// FlushInterval or as soon as FlushBytes are waiting, until stopped.
type streamer struct {
	r        *CommandRunner
	id, step string
	outs     [2]*outputCapture
	wake     chan struct{}
	done     chan struct{}
	finished chan struct{}
}

var streamNames = [2]string{agentproto.StreamStdout, agentproto.StreamStderr}

func (r *CommandRunner) startStreamer(id, step string, stdout, stderr *outputCapture) *streamer {
	s := &streamer{r: r, id: id, step: step, outs: [2]*outputCapture{stdout, stderr},
		wake: make(chan struct{}, 1), done: make(chan struct{}), finished: make(chan struct{})}
	for _, c := range s.outs {
		c.setNotify(func(unsent int) {
			if unsent >= r.cfg.FlushBytes {
				select {
				case s.wake <- struct{}{}:
				default:
				}
			}
		})
	}
	go s.loop()
	return s
}

func (s *streamer) loop() {
	defer close(s.finished)
	t := time.NewTicker(s.r.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.wake:
		case <-s.done:
			s.flush()
			return
		}
		s.flush()
	}
}

// stop sends what is left and waits for the streamer to end.
func (s *streamer) stop() {
	for _, c := range s.outs {
		c.setNotify(nil)
	}
	close(s.done)
	<-s.finished
}

func (s *streamer) flush() {
	for i, c := range s.outs {
		for {
			data, off := c.unsent(maxChunkBytes)
			if data == "" {
				break
			}
			// A chunk that cannot be sent is dropped: the result has it.
			_ = s.r.sendMsg(agentproto.TypeCommandOutput, agentproto.CommandOutput{
				InvocationID: s.id, Step: s.step, Stream: streamNames[i], Offset: int64(off), Data: data,
			})
		}
	}
}
