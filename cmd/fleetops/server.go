package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"github.com/fleetops/fleetops/api"
	"github.com/fleetops/fleetops/deploy"
	"github.com/fleetops/fleetops/internal/certs"
	"github.com/fleetops/fleetops/internal/gateway"
	"github.com/fleetops/fleetops/internal/obs"
	"github.com/fleetops/fleetops/internal/store"
	"github.com/fleetops/fleetops/ui"
	"github.com/fleetops/fleetops/workflows"
)

// serverOptions are the flags of `fleetops server` (and of `dev`).
type serverOptions struct {
	dataDir             string
	listen              string
	publicURL           string
	advertiseURL        string
	databaseURL         string
	temporal            temporalOptions
	temporalUIURL       string
	tlsCert             string
	tlsKey              string
	tlsSelfSigned       bool
	insecure            bool
	heartbeat           time.Duration
	connectionLostAfter time.Duration
	agentBinaryDir      string
	trustedProxies      []string
	log                 logOptions
	sessions            sessionOptions
}

// sessionOptions are the Session Manager preferences and outputs.
type sessionOptions struct {
	idleTimeout     time.Duration
	maxDuration     time.Duration
	runAsUser       string
	shellProfile    string
	recording       bool
	recordInput     bool
	docsMayUnrecord bool
	recordingCap    int64
	maxPerNode      int
	maxPerServer    int
	logSink         string
	webhookURL      string
	webhookSecret   string
}

type temporalOptions struct {
	address   string
	namespace string
	taskQueue string
}

type logOptions struct {
	format string
	level  string
}

func (l logOptions) logger() (*slog.Logger, error) {
	return obs.NewLogger(os.Stderr, l.format, l.level)
}

func addLogFlags(cmd *cobra.Command, o *logOptions) {
	cmd.Flags().StringVar(&o.format, "log-format", "text", "log format: text or json")
	cmd.Flags().StringVar(&o.level, "log-level", "info", "log level: debug, info, warn, error")
}

func addTemporalFlags(cmd *cobra.Command, o *temporalOptions) {
	cmd.Flags().StringVar(&o.address, "temporal-address", "127.0.0.1:7233", "Temporal frontend host:port")
	cmd.Flags().StringVar(&o.namespace, "temporal-namespace", "default", "Temporal namespace")
	cmd.Flags().StringVar(&o.taskQueue, "temporal-task-queue", "fleetops", "Temporal task queue of the fleetops worker")
}

func addServerFlags(cmd *cobra.Command, o *serverOptions) {
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", ".fleetops", "directory for the admin token, generated certificates and the embedded database")
	f.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to serve the API, agent gateway and console on")
	f.StringVar(&o.publicURL, "public-url", "", "URL agents and browsers reach this server at (default: derived from --listen)")
	f.StringVar(&o.advertiseURL, "advertise-url", "", "with several replicas: the URL other replicas reach this one at, so sessions reach agents connected to any replica")
	f.StringVar(&o.databaseURL, "database-url", "", "sqlite:///path/file.db or postgres://… (default: sqlite in --data-dir)")
	f.StringVar(&o.temporalUIURL, "temporal-ui-url", "http://127.0.0.1:8233", "Temporal Web UI linked from the console")
	f.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate (PEM) to serve HTTPS with")
	f.StringVar(&o.tlsKey, "tls-key", "", "TLS private key (PEM)")
	f.BoolVar(&o.tlsSelfSigned, "tls-self-signed", false, "generate a CA and server certificate into --data-dir/tls and serve HTTPS")
	f.BoolVar(&o.insecure, "insecure", false, "allow plain HTTP on a non-loopback address")
	f.DurationVar(&o.heartbeat, "heartbeat-interval", 20*time.Second, "how often agents send heartbeats")
	f.DurationVar(&o.connectionLostAfter, "connection-lost-after", time.Minute, "mark a node ConnectionLost after this long without a heartbeat")
	f.StringVar(&o.agentBinaryDir, "agent-binary-dir", "", "directory with fleetops-agent binaries to serve (default: next to this executable)")
	f.StringSliceVar(&o.trustedProxies, "trusted-proxies", nil, "reverse proxies (IPs or CIDRs) whose X-Forwarded-For is believed for audit source addresses")
	f.DurationVar(&o.sessions.idleTimeout, "session-idle-timeout", 20*time.Minute, "end a session after this long without input or output")
	f.DurationVar(&o.sessions.maxDuration, "session-max-duration", 0, "end every session after this long (0: no limit)")
	f.StringVar(&o.sessions.runAsUser, "session-run-as-user", "", "OS user for shells (default: the agent's session user, fleetops-session)")
	f.StringVar(&o.sessions.shellProfile, "session-shell-profile", "", "commands run at the start of every shell")
	f.BoolVar(&o.sessions.recording, "session-recording", true, "record shell sessions (asciicast v2)")
	f.BoolVar(&o.sessions.recordInput, "session-record-input", false, "also record keystrokes (may capture secrets typed at prompts)")
	f.BoolVar(&o.sessions.docsMayUnrecord, "session-documents-may-disable-recording", false, "let Session documents (recordingEnabled/recordInput: false) turn off recording the server turns on")
	f.Int64Var(&o.sessions.recordingCap, "session-recording-cap", 10<<20, "bytes of recording kept per session")
	f.IntVar(&o.sessions.maxPerNode, "session-max-per-node", 5, "active sessions allowed per node")
	f.IntVar(&o.sessions.maxPerServer, "session-max-per-server", 1000, "active sessions this server bridges (all of them, unless replicas use --advertise-url)")
	f.StringVar(&o.sessions.logSink, "session-log-sink", "", "also stream session I/O as JSON lines: stdout or file:PATH")
	f.StringVar(&o.sessions.webhookURL, "audit-webhook-url", "", "POST session audit events (HMAC-signed JSON) to this URL")
	f.StringVar(&o.sessions.webhookSecret, "audit-webhook-secret", "", "HMAC-SHA256 key for --audit-webhook-url signatures")
	addLogFlags(cmd, &o.log)
	addTemporalFlags(cmd, &o.temporal)
}

func newServerCmd() *cobra.Command {
	var o serverOptions
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the API, agent gateway and web console (stateless; run several replicas)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := o.log.logger()
			if err != nil {
				return err
			}
			srv, err := startServer(cmd.Context(), o, log)
			if err != nil {
				return err
			}
			return srv.wait()
		},
	}
	addServerFlags(cmd, &o)
	return cmd
}

// runningServer is a started server; wait blocks until it stops.
type runningServer struct {
	url    string
	wait   func() error
	store  *store.Store
	tc     client.Client
	caFile string
	// wake makes the gateway deliver queued invocations now.
	wake func()
}

// startServer opens the database, bootstraps the admin token, and starts
// serving. It returns once the listener is bound.
func startServer(ctx context.Context, o serverOptions, log *slog.Logger) (*runningServer, error) {
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	dbURL := o.databaseURL
	if dbURL == "" {
		abs, err := filepath.Abs(filepath.Join(o.dataDir, "fleetops.db"))
		if err != nil {
			return nil, err
		}
		dbURL = "sqlite://" + abs
	}
	st, err := store.Open(ctx, dbURL, log)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := writeAdminToken(ctx, st, o.dataDir, log); err != nil {
		st.Close()
		return nil, err
	}

	tlsCfg, caFile, err := serverTLS(o)
	if err != nil {
		st.Close()
		return nil, err
	}
	if tlsCfg == nil && !o.insecure && !isLoopback(o.listen) {
		st.Close()
		return nil, fmt.Errorf("refusing plain HTTP on non-loopback address %s: give --tls-cert/--tls-key or --tls-self-signed, or --insecure behind a TLS-terminating proxy", o.listen)
	}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	publicURL := o.publicURL
	if publicURL == "" {
		publicURL = scheme + "://" + advertisedAddr(ln.Addr().String())
	}
	publicURL = strings.TrimRight(publicURL, "/")

	tc, err := client.NewLazyClient(client.Options{
		HostPort:  o.temporal.address,
		Namespace: o.temporal.namespace,
		Logger:    newTemporalLogger(log),
	})
	if err != nil {
		ln.Close()
		st.Close()
		return nil, fmt.Errorf("temporal client: %w", err)
	}

	reg := obs.NewRegistry()
	advertiseURL := strings.TrimRight(o.advertiseURL, "/")
	var routes gateway.RouteStore
	if advertiseURL != "" {
		if u, err := url.Parse(advertiseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ln.Close()
			st.Close()
			return nil, fmt.Errorf("--advertise-url %q: want http(s)://host:port", o.advertiseURL)
		}
		routes = st
	}
	gw, err := gateway.New(gateway.Config{
		Store:               st,
		Logger:              log,
		Registerer:          reg,
		Heartbeat:           o.heartbeat,
		ConnectionLostAfter: o.connectionLostAfter,
		Routes:              routes,
		ReplicaURL:          advertiseURL,
	})
	if err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	relay, err := gateway.NewCommandRelay(gw, gateway.RelayConfig{Store: st, Logger: log, Registerer: reg})
	if err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	wf := temporalWorkflows{client: tc, taskQueue: o.temporal.taskQueue}
	sink, err := openLogSink(o.sessions.logSink)
	if err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	bridge, err := gateway.NewSessionBridge(gw, gateway.BridgeConfig{
		Store: st, Events: wf, Logger: log, Sink: sink, RecordingCap: o.sessions.recordingCap, Registerer: reg,
	})
	if err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	var webhook *api.Webhook
	if o.sessions.webhookURL != "" {
		if o.sessions.webhookSecret == "" {
			ln.Close()
			st.Close()
			return nil, errors.New("--audit-webhook-url needs --audit-webhook-secret to sign deliveries")
		}
		webhook = &api.Webhook{URL: o.sessions.webhookURL, Secret: o.sessions.webhookSecret, Logger: log}
	}
	binDir := o.agentBinaryDir
	if binDir == "" {
		if exe, err := os.Executable(); err == nil {
			binDir = filepath.Dir(exe)
		}
	}
	apiCfg := api.Config{
		Store:         st,
		Gateway:       gw,
		Temporal:      temporalHealth{tc},
		Workflows:     wf,
		SessionBridge: bridge,
		Webhook:       webhook,
		Sessions: api.SessionPreferences{
			IdleTimeout: o.sessions.idleTimeout, MaxDuration: o.sessions.maxDuration,
			RunAsUser: o.sessions.runAsUser, ShellProfile: o.sessions.shellProfile,
			Recording: o.sessions.recording, RecordInput: o.sessions.recordInput,
			DocumentsMayDisableRecording: o.sessions.docsMayUnrecord,
			MaxPerNode:                   o.sessions.maxPerNode, MaxPerServer: o.sessions.maxPerServer,
		},
		Logger:         log,
		Registry:       reg,
		Console:        ui.Handler(),
		InstallFiles:   deploy.Files,
		AgentBinaryDir: binDir,
		PublicURL:      publicURL,
		TemporalUIURL:  o.temporalUIURL,
		TrustedProxies: o.trustedProxies,
		ReplicaURL:     advertiseURL,
		Version:        version,
	}
	if tlsCfg != nil {
		certFile := o.tlsCert
		if certFile == "" {
			certFile = filepath.Join(o.dataDir, "tls", "server.pem")
		}
		if apiCfg.ServerFingerprint, err = certs.Fingerprint(certFile); err != nil {
			return nil, err
		}
		if apiCfg.ServerKeyPin, err = certs.KeyPin(certFile); err != nil {
			return nil, err
		}
		if apiCfg.ReplicaTransport, err = replicaTransport(certFile); err != nil {
			return nil, err
		}
	}
	handler, err := api.New(apiCfg)
	if err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	httpSrv := &http.Server{
		Handler:           handler,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return gw.Run(gctx) })
	g.Go(func() error { return relay.Run(gctx) })
	g.Go(func() error { return bridge.Run(gctx) })
	g.Go(func() error {
		var err error
		if tlsCfg != nil {
			err = httpSrv.ServeTLS(ln, "", "")
		} else {
			err = httpSrv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
	g.Go(func() error {
		<-gctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 10*time.Second)
		defer cancel()
		return httpSrv.Shutdown(shutdownCtx)
	})
	log.Info("fleetops server listening", "url", publicURL, "fingerprint", apiCfg.ServerFingerprint)
	return &runningServer{
		url:    publicURL,
		store:  st,
		tc:     tc,
		caFile: caFile,
		wake:   relay.Wake,
		wait: func() error {
			err := g.Wait()
			tc.Close()
			st.Close()
			return err
		},
	}, nil
}

// writeAdminToken creates the admin token on first start and writes it once
// to DATA_DIR/admin.token (0600); the database keeps only its hash.
func writeAdminToken(ctx context.Context, st *store.Store, dataDir string, log *slog.Logger) error {
	token, err := api.BootstrapAdminToken(ctx, st, time.Now().UTC())
	if err != nil {
		return err
	}
	if token == "" {
		return nil
	}
	path := filepath.Join(dataDir, "admin.token")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	log.Info("created the admin API token", "file", path)
	return nil
}

// serverTLS returns the TLS configuration, if any, and the CA file clients
// of a self-signed setup should trust.
func serverTLS(o serverOptions) (*tls.Config, string, error) {
	certFile, keyFile, caFile := o.tlsCert, o.tlsKey, ""
	switch {
	case o.tlsSelfSigned && (certFile != "" || keyFile != ""):
		return nil, "", errors.New("give either --tls-self-signed or --tls-cert/--tls-key, not both")
	case o.tlsSelfSigned:
		host, _, _ := net.SplitHostPort(o.listen)
		hosts := []string{host}
		if h, err := os.Hostname(); err == nil {
			hosts = append(hosts, h)
		}
		files, err := certs.EnsureSelfSigned(filepath.Join(o.dataDir, "tls"), hosts, time.Now())
		if err != nil {
			return nil, "", err
		}
		certFile, keyFile, caFile = files.Cert, files.Key, files.CA
	case certFile == "" && keyFile == "":
		return nil, "", nil
	case certFile == "" || keyFile == "":
		return nil, "", errors.New("--tls-cert and --tls-key go together")
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("load TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, caFile, nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// advertisedAddr turns a wildcard listen address into one others can dial.
func advertisedAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}

type temporalHealth struct{ c client.Client }

func (t temporalHealth) CheckHealth(ctx context.Context) error {
	_, err := t.c.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err
}

// temporalWorkflows starts and signals fleetops workflows for the API.
type temporalWorkflows struct {
	client    client.Client
	taskQueue string
}

func (t temporalWorkflows) StartCommand(ctx context.Context, in workflows.RunCommandInput) error {
	_, err := t.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        workflows.CommandWorkflowID(in.CommandID),
		TaskQueue: t.taskQueue,
		// A command ends by itself at its deadlines; this only bounds a
		// workflow that something kept from ending.
		WorkflowExecutionTimeout: time.Duration(in.TimeoutSeconds+in.ExecutionTimeoutSeconds)*time.Second + 24*time.Hour,
	}, workflows.RunCommandWorkflowName, in)
	return err
}

func (t temporalWorkflows) StartSession(ctx context.Context, in workflows.SessionInput) error {
	_, err := t.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        workflows.SessionWorkflowID(in.SessionID),
		TaskQueue: t.taskQueue,
	}, workflows.SessionWorkflowName, in)
	return err
}

func (t temporalWorkflows) TerminateSession(ctx context.Context, id, by string) error {
	return t.signalSession(ctx, id, workflows.SignalSessionTerminate, workflows.SessionTerminate{By: by, Reason: "terminate requested"})
}

// The session bridge's events become signals to the session's workflow.

func (t temporalWorkflows) SessionConnected(ctx context.Context, id string, n int) error {
	return t.signalSession(ctx, id, workflows.SignalSessionConnected, workflows.SessionConnection{Connection: n})
}

func (t temporalWorkflows) SessionDisconnected(ctx context.Context, id string, n int) error {
	return t.signalSession(ctx, id, workflows.SignalSessionDisconnected, workflows.SessionConnection{Connection: n})
}

func (t temporalWorkflows) SessionActivity(ctx context.Context, id string) error {
	return t.signalSession(ctx, id, workflows.SignalSessionActivity, nil)
}

func (t temporalWorkflows) SessionEnded(ctx context.Context, id, status, details string, code *int) error {
	return t.signalSession(ctx, id, workflows.SignalSessionEnded, workflows.SessionEnded{Status: status, Details: details, ExitCode: code})
}

func (t temporalWorkflows) signalSession(ctx context.Context, id, signal string, payload any) error {
	return t.client.SignalWorkflow(context.WithoutCancel(ctx), workflows.SessionWorkflowID(id), "", signal, payload)
}

func (t temporalWorkflows) CancelCommand(ctx context.Context, commandID string, req workflows.CancelRequest) error {
	return t.client.SignalWorkflow(ctx, workflows.CommandWorkflowID(commandID), "", workflows.SignalCancel, req)
}

// jsonLinesSink writes session log records as JSON lines.
type jsonLinesSink struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (s *jsonLinesSink) Write(rec gateway.SessionLogRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.enc.Encode(rec)
}

// openLogSink opens --session-log-sink: "", "stdout" or "file:PATH".
func openLogSink(spec string) (gateway.LogSink, error) {
	switch {
	case spec == "":
		return nil, nil
	case spec == "stdout":
		return &jsonLinesSink{enc: json.NewEncoder(os.Stdout)}, nil
	case strings.HasPrefix(spec, "file:"):
		f, err := os.OpenFile(strings.TrimPrefix(spec, "file:"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("session log sink: %w", err)
		}
		return &jsonLinesSink{enc: json.NewEncoder(f)}, nil
	}
	return nil, fmt.Errorf("--session-log-sink %q: want stdout or file:PATH", spec)
}

// replicaTransport carries requests forwarded to other replicas: it trusts
// the system's roots and the certificates in this server's own certificate
// file (replicas share a certificate or its CA).
func replicaTransport(certFile string) (http.RoundTripper, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", certFile, err)
	}
	pool.AppendCertsFromPEM(pem)
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return t, nil
}
