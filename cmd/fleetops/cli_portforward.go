package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/yamux"
	"github.com/spf13/cobra"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/agent/datachannel"
)

// newPortForwardCmd forwards a local TCP port to a port on (or reachable
// from) a node. Every local connection is its own yamux stream, with its
// own flow control, inside one session.
func newPortForwardCmd(o *clientOptions) *cobra.Command {
	var (
		target, remoteHost, reason, bind string
		remotePort, localPort            int
	)
	cmd := &cobra.Command{
		Use:   "port-forward --target mi-… --remote-port N [--remote-host H] [--local-port L]",
		Short: "Forward a local TCP port through a session: many connections, no SSH, no inbound port",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			params := map[string][]string{"portNumber": {strconv.Itoa(remotePort)}}
			doc := "AWS-StartPortForwardingSession"
			if remoteHost != "" {
				doc = "AWS-StartPortForwardingSessionToRemoteHost"
				params["host"] = []string{remoteHost}
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(bind, strconv.Itoa(localPort)))
			if err != nil {
				return fmt.Errorf("listen on local port %d: %w", localPort, err)
			}
			defer ln.Close()
			c, err := o.client()
			if err != nil {
				return err
			}
			id, token, err := startSession(cmd.Context(), c,
				map[string]any{"target": target, "reason": reason, "documentName": doc, "parameters": params})
			if err != nil {
				return err
			}
			conn, err := dialStream(cmd.Context(), c, id, token, 0, 0, nil)
			if err != nil {
				return err
			}
			// The stream outlives an interrupt so that Ctrl-C can close the
			// session cleanly (a FrameClose ends it at once instead of
			// leaving it Disconnected for the resume grace).
			ctx, cancel := context.WithCancel(context.WithoutCancel(cmd.Context()))
			defer cancel()
			var closeMsg string
			stream := conn.Stream(ctx, func(typ byte, payload []byte) error {
				if typ == agentproto.FrameClose {
					closeMsg = string(payload)
				}
				return nil
			})
			mux, err := yamux.Client(stream, datachannel.YamuxConfig())
			if err != nil {
				_ = stream.Close()
				return fmt.Errorf("start multiplexer: %w", err)
			}
			defer mux.Close()
			fmt.Fprintf(cmd.ErrOrStderr(), "session %s: forwarding %s to %s:%d on %s\n",
				id, ln.Addr(), hostOr(remoteHost, "localhost"), remotePort, target)
			var interrupted atomic.Bool
			go func() {
				select {
				case <-cmd.Context().Done():
					interrupted.Store(true)
					_ = mux.Close() // closes the stream: FrameClose, then the WebSocket
				case <-mux.CloseChan():
				}
				ln.Close()
			}()
			var wg sync.WaitGroup
			for {
				local, err := ln.Accept()
				if err != nil {
					break
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					forward(local, mux)
				}()
			}
			wg.Wait()
			if closeMsg != "" {
				return fmt.Errorf("session ended: %s", closeMsg)
			}
			if interrupted.Load() {
				return nil
			}
			return errors.New("session ended")
		},
	}
	f := cmd.Flags()
	f.StringVar(&target, "target", "", "the node (mi-…)")
	f.IntVar(&remotePort, "remote-port", 0, "port to reach on the node (or on --remote-host)")
	f.StringVar(&remoteHost, "remote-host", "", "host to reach from the node (default: the node itself)")
	f.IntVar(&localPort, "local-port", 0, "local port to listen on (default: any free port)")
	f.StringVar(&bind, "bind", "127.0.0.1", "local address to listen on")
	f.StringVar(&reason, "reason", "", "why, for the audit log")
	_ = cmd.MarkFlagRequired("target")
	_ = cmd.MarkFlagRequired("remote-port")
	return cmd
}

// forward pipes one local connection through a new yamux stream, keeping
// half-closes so request/response protocols finish cleanly.
func forward(local net.Conn, mux *yamux.Session) {
	defer local.Close()
	remote, err := mux.OpenStream()
	if err != nil {
		return
	}
	defer remote.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(remote, local)
		_ = remote.Close() // yamux: a FIN for this direction
		close(done)
	}()
	_, _ = io.Copy(local, remote)
	if tc, ok := local.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	<-done
}

func hostOr(h, def string) string {
	if h == "" {
		return def
	}
	return h
}
