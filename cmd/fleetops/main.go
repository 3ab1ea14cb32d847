// Command fleetops is the fleetops server, worker, embedded dev stack and
// CLI in one binary:
//
//	fleetops dev                 server + worker + local agent + Temporal dev server
//	fleetops server | worker     the two halves, for production and replicas
//	fleetops <noun> <verb>       the CLI (activation, instance, group, token, audit)
//
// Every flag also reads from a FLEETOPS_<FLAG> environment variable (dashes
// become underscores) and from the YAML/JSON/TOML file named by --config.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newRootCmd().ExecuteContext(ctx)
	if err != nil {
		var exit exitError
		if errors.As(err, &exit) {
			os.Exit(exit.code)
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// exitError ends the process with a specific code after its message was
// already printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "fleetops",
		Short:         "Self-hosted fleet operations: run commands, open sessions, patch and audit any Linux fleet",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return bindConfig(cmd)
		},
	}
	root.PersistentFlags().String("config", "", "configuration file (YAML, JSON or TOML); keys are flag names")
	root.AddCommand(
		newServerCmd(),
		newWorkerCmd(),
		newDevCmd(),
		newActivationCmd(),
		newInstanceCmd(),
		newGroupCmd(),
		newTokenCmd(),
		newAuditCmd(),
		newDocumentCmd(),
		newCommandCmd(),
		newSessionCmd(),
	)
	return root
}

// bindConfig fills every flag the user did not set from FLEETOPS_* and the
// config file, in that order of precedence: flag > env > file > default.
func bindConfig(cmd *cobra.Command) error {
	v := viper.New()
	v.SetEnvPrefix("FLEETOPS")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if path, _ := cmd.Flags().GetString("config"); path != "" || os.Getenv("FLEETOPS_CONFIG") != "" {
		if path == "" {
			path = os.Getenv("FLEETOPS_CONFIG")
		}
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("read config file %s: %w", path, err)
		}
	}
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" || !v.IsSet(f.Name) {
			return
		}
		val := v.Get(f.Name)
		var s string
		switch x := val.(type) {
		case []any:
			parts := make([]string, 0, len(x))
			for _, p := range x {
				parts = append(parts, fmt.Sprint(p))
			}
			s = strings.Join(parts, ",")
		default:
			s = fmt.Sprint(x)
		}
		if err := cmd.Flags().Set(f.Name, s); err != nil {
			errs = append(errs, fmt.Errorf("config %s=%q: %w", f.Name, s, err))
		}
	})
	return errors.Join(errs...)
}
