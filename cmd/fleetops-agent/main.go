// Command fleetops-agent is the fleetops host agent: it registers the host
// with an activation code, then holds an outbound connection to the server's
// agent gateway. Every flag can also be set from the environment as
// FLEETOPS_AGENT_<FLAG_IN_UPPER_SNAKE_CASE>, e.g. FLEETOPS_AGENT_STATE_DIR;
// a flag on the command line wins over the environment.
//
// Exit codes: 0 success, 1 error, 2 registration refused by the server,
// 3 the server deregistered this node (do not restart blindly).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fleetops/fleetops/agent"
	"github.com/fleetops/fleetops/agent/agentproto"
)

// Exit codes.
const (
	exitOK           = 0
	exitError        = 1
	exitRefused      = 2
	exitDeregistered = 3
)

const (
	envPrefix       = "FLEETOPS_AGENT_"
	defaultStateDir = "/var/lib/fleetops-agent"
	// shutdownTimeout bounds the wait for killed invocations at exit.
	shutdownTimeout = 15 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// exitErr carries an exit code out of a command.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

// execute runs the CLI and returns the process exit code. Tests call it
// in-process with their own streams and environment.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	root := newRootCmd(stdout, stderr, lookupEnv)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "fleetops-agent:", err)
	var ee *exitErr
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitError
}

// cli holds what the subcommands share.
type cli struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	logLevel       string
	log            *slog.Logger
}

func newRootCmd(stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) *cobra.Command {
	c := &cli{stdout: stdout, stderr: stderr, lookupEnv: lookupEnv}
	root := &cobra.Command{
		Use:   "fleetops-agent",
		Short: "The fleetops host agent",
		Long: "fleetops-agent registers this host with a fleetops server and keeps an outbound\n" +
			"connection to it. Every flag can also be set as FLEETOPS_AGENT_<FLAG>, e.g.\n" +
			"FLEETOPS_AGENT_STATE_DIR; the command line wins.",
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: c.setup,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.AddCommand(c.registerCmd(), c.runCmd(), c.swarmCmd(), c.versionCmd())
	annotateEnv(root)
	return root
}

// setup applies environment variables to flags not given on the command
// line, then builds the logger.
func (c *cli) setup(cmd *cobra.Command, _ []string) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := envName(f.Name)
		if v, ok := c.lookupEnv(name); ok {
			if serr := cmd.Flags().Set(f.Name, v); serr != nil {
				err = fmt.Errorf("environment %s: %w", name, serr)
			}
		}
	})
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	c.log = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level}))
	return nil
}

func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// annotateEnv appends each flag's environment variable to its help text.
func annotateEnv(cmd *cobra.Command) {
	add := func(f *pflag.Flag) {
		if f.Name != "help" && !strings.Contains(f.Usage, envPrefix) {
			f.Usage += " [env " + envName(f.Name) + "]"
		}
	}
	cmd.LocalFlags().VisitAll(add)
	cmd.PersistentFlags().VisitAll(add)
	for _, sub := range cmd.Commands() {
		annotateEnv(sub)
	}
}

type registerFlags struct {
	server, activationID, activationCode, stateDir, name string
	caFile, fingerprint                                  string
	insecure                                             bool
}

func (c *cli) registerCmd() *cobra.Command {
	var f registerFlags
	cmd := &cobra.Command{
		Use:   "register",
		Short: "Register this host with a fleetops server using an activation",
		Long: "Register exchanges an activation (ID and code) for this node's identity and\n" +
			"stores it in the state dir. Running it again for the same server is a no-op.\n" +
			"Prefer FLEETOPS_AGENT_ACTIVATION_CODE over the flag to keep the code out of ps.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.register(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "", "server base URL, e.g. https://fleet.example.com (required)")
	fl.StringVar(&f.activationID, "activation-id", "", "activation ID (required)")
	fl.StringVar(&f.activationCode, "activation-code", "", "activation code (required; never logged)")
	fl.StringVar(&f.stateDir, "state-dir", defaultStateDir, "directory holding the agent's identity")
	fl.StringVar(&f.name, "name", "", "name to report for this host instead of its hostname")
	fl.StringVar(&f.caFile, "ca-file", "", "PEM CA bundle to verify the server with, instead of the system roots")
	fl.StringVar(&f.fingerprint, "server-fingerprint", "", "pin the server's leaf certificate: sha256:<hex of SHA-256 of its DER>")
	fl.BoolVar(&f.insecure, "insecure", false, "allow plain http:// to a non-loopback server")
	cmd.MarkFlagsMutuallyExclusive("ca-file", "server-fingerprint")
	return cmd
}

func (c *cli) register(ctx context.Context, f registerFlags) error {
	if f.server == "" {
		return errors.New("--server is required")
	}
	existing, err := agent.LoadIdentity(f.stateDir)
	switch {
	case err == nil && existing.SameServer(f.server):
		fmt.Fprintf(c.stdout, "already registered as %s\n", existing.InstanceID)
		return nil
	case err == nil:
		fmt.Fprintf(c.stderr, "note: replacing identity %s (server %s) once registration succeeds\n", existing.InstanceID, existing.ServerURL)
	case !errors.Is(err, agent.ErrNotRegistered):
		fmt.Fprintf(c.stderr, "note: ignoring unreadable identity: %v\n", err)
	}
	if f.activationID == "" {
		return errors.New("--activation-id is required")
	}
	if f.activationCode == "" {
		return errors.New("--activation-code is required")
	}
	host := agent.HostInfo()
	if f.name != "" {
		host.Hostname = f.name
	}
	id, err := agent.Register(ctx, agent.RegisterConfig{
		ServerURL:      f.server,
		ActivationID:   f.activationID,
		ActivationCode: f.activationCode,
		Transport:      agent.Transport{CAFile: f.caFile, ServerFingerprint: f.fingerprint, Insecure: f.insecure},
		Host:           host,
	})
	var refused *agent.RefusedError
	if errors.As(err, &refused) {
		return &exitErr{code: exitRefused, err: err}
	}
	if err != nil {
		return err
	}
	if err := agent.SaveIdentity(f.stateDir, id); err != nil {
		return fmt.Errorf("registered as %s but could not save the identity: %w", id.InstanceID, err)
	}
	fmt.Fprintf(c.stdout, "registered as %s\n", id.InstanceID)
	return nil
}

// sessionFlags configure the Session Manager side of `run`.
type sessionFlags struct {
	maxSessions int
	allowRoot   bool
	user        string
}

func (c *cli) runCmd() *cobra.Command {
	var stateDir string
	var sf sessionFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Connect to the server and stay connected until SIGINT/SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := agent.LoadIdentity(stateDir)
			if errors.Is(err, agent.ErrNotRegistered) {
				return fmt.Errorf("this host is not registered (no identity in %s): run `fleetops-agent register --server URL --activation-id ID --activation-code CODE` first", stateDir)
			}
			if err != nil {
				return err
			}
			c.log.Info("fleetops-agent starting", "version", agent.Version, "instanceId", id.InstanceID, "server", id.ServerURL)
			err = agent.RunNode(cmd.Context(), agent.NodeConfig{
				Identity: id, StateDir: stateDir, Logger: c.log, ShutdownTimeout: shutdownTimeout,
				Sessions: agent.SessionConfig{MaxSessions: sf.maxSessions, SessionUser: sf.user, AllowRootSessions: sf.allowRoot},
			})
			if errors.Is(err, agent.ErrDeregistered) {
				return &exitErr{code: exitDeregistered, err: err}
			}
			if err != nil {
				return err
			}
			c.log.Info("fleetops-agent stopped")
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", defaultStateDir, "directory holding the agent's identity and invocation records")
	cmd.Flags().IntVar(&sf.maxSessions, "max-sessions", agent.DefaultMaxSessions, "most Session Manager sessions open at once on this node")
	cmd.Flags().BoolVar(&sf.allowRoot, "allow-root-sessions", false, "allow sessions to run as root (refused by default)")
	cmd.Flags().StringVar(&sf.user, "session-user", agent.DefaultSessionUser, "OS user sessions run as when the agent runs as root (created if missing)")
	return cmd
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the agent version",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintf(c.stdout, "fleetops-agent %s (protocol %d, %s %s/%s)\n",
				agent.Version, agentproto.ProtocolVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
