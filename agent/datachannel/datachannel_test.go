package datachannel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/yamux"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// pair returns the two ends of one data channel: client (dialed, like the
// agent and the CLI) and server (accepted) over a real HTTP server.
func pair(t testing.TB, opts *Options) (client, server *Conn) {
	t.Helper()
	accepted := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "yes", r.Header.Get("X-Test"))
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		accepted <- ws
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := Dial(ctx, srv.URL+"/data", &websocket.DialOptions{HTTPHeader: http.Header{"X-Test": {"yes"}}}, opts)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	t.Cleanup(func() { _ = c.CloseNow() })
	select {
	case ws := <-accepted:
		s := New(ws, opts)
		t.Cleanup(func() { _ = s.CloseNow() })
		return c, s
	case <-ctx.Done():
		t.Fatal("server never accepted")
		return nil, nil
	}
}

func TestFramesRoundTrip(t *testing.T) {
	ctx := context.Background()
	c, s := pair(t, nil)
	frames := []struct {
		typ     byte
		payload []byte
	}{
		{agentproto.FrameData, []byte("ls -l\r")},
		{agentproto.FrameResize, []byte(`{"cols":120,"rows":40}`)},
		{agentproto.FrameData, nil},
		{agentproto.FrameExit, []byte(`{"code":7}`)},
		{agentproto.FrameClose, []byte("bye")},
	}
	for _, f := range frames {
		require.NoError(t, c.WriteFrame(ctx, f.typ, f.payload))
	}
	for _, want := range frames {
		typ, p, err := s.ReadFrame(ctx)
		require.NoError(t, err)
		assert.Equal(t, want.typ, typ)
		assert.Equal(t, string(want.payload), string(p))
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close(websocket.StatusNormalClosure, "") }()
	_, _, err := s.ReadFrame(ctx)
	assert.ErrorIs(t, err, io.EOF, "a normal closure reads as EOF")
	require.NoError(t, <-closed)
}

func TestConcurrentWritesDoNotInterleave(t *testing.T) {
	ctx := context.Background()
	c, s := pair(t, nil)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			p := bytes.Repeat([]byte{byte('a' + w)}, 10000)
			for range each {
				assert.NoError(t, c.WriteFrame(ctx, agentproto.FrameData, p))
			}
		})
	}
	for range writers * each {
		typ, p, err := s.ReadFrame(ctx)
		require.NoError(t, err)
		require.Equal(t, agentproto.FrameData, typ)
		require.Len(t, p, 10000)
		require.Equal(t, bytes.Repeat(p[:1], 10000), p, "a frame mixes two writers")
	}
	wg.Wait()
}

func TestLimits(t *testing.T) {
	ctx := context.Background()
	c, s := pair(t, &Options{ReadLimit: 1000})
	err := c.WriteFrame(ctx, agentproto.FrameData, make([]byte, agentproto.MaxFrameBytes))
	assert.ErrorIs(t, err, ErrFrameTooLarge)
	require.NoError(t, c.WriteFrame(ctx, agentproto.FrameData, make([]byte, 999)))
	_, p, err := s.ReadFrame(ctx)
	require.NoError(t, err)
	assert.Len(t, p, 999)
	require.NoError(t, c.WriteFrame(ctx, agentproto.FrameData, make([]byte, 1000)))
	_, _, err = s.ReadFrame(ctx)
	assert.Error(t, err, "a message over the read limit fails the read")
}

func TestMalformedFrames(t *testing.T) {
	ctx := context.Background()
	c, s := pair(t, nil)
	require.NoError(t, c.ws.Write(ctx, websocket.MessageText, []byte("\x00hello")))
	_, _, err := s.ReadFrame(ctx)
	assert.ErrorIs(t, err, ErrMalformedFrame)
	require.NoError(t, c.ws.Write(ctx, websocket.MessageBinary, nil))
	_, _, err = s.ReadFrame(ctx)
	assert.ErrorIs(t, err, ErrMalformedFrame)
}

func TestStreamCarriesDataAndHandsOverOtherFrames(t *testing.T) {
	ctx := context.Background()
	c, s := pair(t, nil)
	var got []string
	st := s.Stream(ctx, func(typ byte, p []byte) error {
		got = append(got, string([]byte{'0' + typ})+":"+string(p))
		return nil
	})
	require.NoError(t, c.WriteFrame(ctx, agentproto.FrameData, []byte("hello ")))
	require.NoError(t, c.WriteFrame(ctx, agentproto.FrameResize, []byte("r")))
	require.NoError(t, c.WriteFrame(ctx, agentproto.FrameData, []byte("world")))
	require.NoError(t, c.WriteFrame(ctx, agentproto.FrameClose, []byte("done")))
	b, err := io.ReadAll(st)
	require.NoError(t, err, "FrameClose reads as EOF")
	assert.Equal(t, "hello world", string(b))
	assert.Equal(t, []string{"1:r", "4:done"}, got)
}

func TestStreamWithoutHandlerRefusesOtherFrames(t *testing.T) {
	ctx := context.Background()
	c, s := pair(t, nil)
	st := s.Stream(ctx, nil)
	require.NoError(t, c.WriteFrame(ctx, agentproto.FrameResize, []byte("{}")))
	_, err := st.Read(make([]byte, 10))
	assert.ErrorIs(t, err, ErrUnexpectedFrame)
}

func TestStreamHandlerErrorEndsReads(t *testing.T) {
	ctx := context.Background()
	c, s := pair(t, nil)
	boom := errors.New("boom")
	st := s.Stream(ctx, func(byte, []byte) error { return boom })
	require.NoError(t, c.WriteFrame(ctx, agentproto.FrameExit, []byte("{}")))
	_, err := st.Read(make([]byte, 10))
	assert.ErrorIs(t, err, boom)
	_, err = st.Read(make([]byte, 10))
	assert.ErrorIs(t, err, boom, "sticky")
}

func TestStreamWritesCoalesceAndCloseSendsFrameClose(t *testing.T) {
	ctx := context.Background()
	c, s := pair(t, &Options{StreamFrameBytes: 1000})
	st := c.Stream(ctx, nil)
	want := make([]byte, 0, 5000)
	for i := range 500 { // 500 writes of 10 bytes
		p := bytes.Repeat([]byte{byte(i)}, 10)
		want = append(want, p...)
		n, err := st.Write(p)
		require.NoError(t, err)
		require.Equal(t, 10, n)
	}
	closed := make(chan error, 1)
	go func() { closed <- st.Close() }()
	var got []byte
	frames := 0
	for {
		typ, p, err := s.ReadFrame(ctx)
		require.NoError(t, err)
		if typ == agentproto.FrameClose {
			break
		}
		require.Equal(t, agentproto.FrameData, typ)
		require.LessOrEqual(t, len(p), 1000, "frames respect StreamFrameBytes")
		got = append(got, p...)
		frames++
	}
	assert.Equal(t, want, got)
	assert.Less(t, frames, 500, "small writes are coalesced")
	_, _, err := s.ReadFrame(ctx)
	assert.ErrorIs(t, err, io.EOF, "then a normal closure")
	require.NoError(t, <-closed)
	_, err = st.Write([]byte("x"))
	assert.Error(t, err, "write after close")
}

func TestStreamWriteFailsAfterPeerIsGone(t *testing.T) {
	ctx := context.Background()
	c, s := pair(t, nil)
	st := c.Stream(ctx, nil)
	require.NoError(t, s.CloseNow())
	go func() { _, _ = io.Copy(io.Discard, st) }() // reads notice the loss
	require.Eventually(t, func() bool {
		_, err := st.Write(make([]byte, 1000))
		return err != nil
	}, 10*time.Second, 5*time.Millisecond)
	_ = st.Close()
}

func TestYamuxOverStreams(t *testing.T) {
	ctx := context.Background()
	c, s := pair(t, nil)
	client, err := yamux.Client(c.Stream(ctx, nil), YamuxConfig())
	require.NoError(t, err)
	server, err := yamux.Server(s.Stream(ctx, nil), YamuxConfig())
	require.NoError(t, err)
	go func() {
		for {
			st, err := server.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				_, _ = io.Copy(st, st)
				_ = st.Close()
			}()
		}
	}()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			st, err := client.OpenStream()
			if !assert.NoError(t, err) {
				return
			}
			want := bytes.Repeat([]byte{byte(i)}, 300<<10)
			go func() { _, _ = st.Write(want); _ = st.Close() }()
			got, err := io.ReadAll(st)
			assert.NoError(t, err)
			assert.True(t, bytes.Equal(want, got), "stream %d", i)
		})
	}
	wg.Wait()
	require.NoError(t, client.Close())
	select {
	case <-server.CloseChan():
	case <-time.After(10 * time.Second):
		t.Fatal("closing the client's session did not end the server's")
	}
}
