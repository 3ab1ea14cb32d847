package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// Step actions the agent implements. aws:runDocument is expanded by the
// server and never reaches the agent.
const (
	ActionRunShellScript  = "aws:runShellScript"
	ActionDownloadContent = "aws:downloadContent"
	ActionNoop            = "fleetops:noop"
)

// Plugin runs one step. It writes the step's output to env.Stdout and
// env.Stderr and returns the step's exit code (-1 if nothing was started).
// When ctx ends it stops promptly and returns context.Cause(ctx) (or an
// error wrapping it), so the runner can tell a timeout (ErrTimedOut) from a
// cancel (ErrCancelled). Any other error fails the step and is noted on
// stderr.
type Plugin func(ctx context.Context, step agentproto.Step, env StepEnv) (exitCode int, err error)

// StepEnv is what a Plugin gets besides its step.
type StepEnv struct {
	InvocationID string
	// Stdout and Stderr capture the step's output; writes never fail.
	Stdout, Stderr io.Writer
	// WorkDir is the invocation's own directory, shared by its steps: the
	// default working directory and the base of relative paths. It does
	// not exist until a plugin creates it (MkdirAll, 0700).
	WorkDir string
}

// Shell step timeouts, as the SSM agent applies them (reference 1.4): a
// timeoutSeconds outside 5..172800, or missing, means 3600.
const (
	DefaultStepTimeout = 3600 * time.Second
	minStepTimeout     = 5
	maxStepTimeout     = 172800
)

// MaxDownloadBytes bounds a file fetched by aws:downloadContent.
const MaxDownloadBytes = 100 << 20

// pipeWaitDelay bounds how long a step waits for its output pipes after
// the shell exited: a background child that keeps them open (a daemon
// started without redirecting its output) does not hold the step forever.
const pipeWaitDelay = 2 * time.Second

// DefaultPlugins returns the plugins of a real agent.
func DefaultPlugins(killGrace time.Duration, client *http.Client) map[string]Plugin {
	return map[string]Plugin{
		ActionRunShellScript:  ShellPlugin(killGrace),
		ActionDownloadContent: DownloadPlugin(client),
		ActionNoop:            NoopPlugin,
	}
}

// NoopPlugin succeeds at once without starting anything (fleetops:noop,
// used by the load harness to measure dispatch).
func NoopPlugin(context.Context, agentproto.Step, StepEnv) (int, error) { return 0, nil }

// shellInputs are aws:runShellScript's inputs.
type shellInputs struct {
	RunCommand       json.RawMessage `json:"runCommand"`
	WorkingDirectory string          `json:"workingDirectory"`
	TimeoutSeconds   json.RawMessage `json:"timeoutSeconds"`
}

// ShellPlugin implements aws:runShellScript: the runCommand lines joined
// into one script, run by /bin/sh (no -e: as in SSM, the exit code is the
// last command's) in its own process group, with the step's Env added to
// the agent's environment. On timeout or cancel the whole group gets
// SIGTERM, then SIGKILL after killGrace.
func ShellPlugin(killGrace time.Duration) Plugin {
	return func(ctx context.Context, step agentproto.Step, env StepEnv) (int, error) {
		var in shellInputs
		if err := decodeInputs(step.Inputs, &in); err != nil {
			return -1, err
		}
		lines, err := flattenCommands(in.RunCommand)
		if err != nil {
			return -1, err
		}
		if err := os.MkdirAll(env.WorkDir, 0o700); err != nil {
			return -1, fmt.Errorf("create work dir: %w", err)
		}
		dir := env.WorkDir
		if wd := in.WorkingDirectory; wd != "" {
			if !filepath.IsAbs(wd) {
				wd = filepath.Join(env.WorkDir, wd)
			}
			if fi, err := os.Stat(wd); err != nil || !fi.IsDir() {
				return -1, fmt.Errorf("working directory %q does not exist or is not a directory", in.WorkingDirectory)
			}
			dir = wd
		}
		environ, err := stepEnviron(withInvocationEnv(step.Env, env.InvocationID))
		if err != nil {
			return -1, err
		}
		script, err := writeScript(env.WorkDir, strings.Join(lines, "\n")+"\n")
		if err != nil {
			return -1, err
		}
		defer os.Remove(script)

		ctx, cancel := context.WithTimeoutCause(ctx, stepTimeout(in.TimeoutSeconds), errStepTimeout)
		defer cancel()
		cmd := exec.Command("/bin/sh", script)
		cmd.Dir, cmd.Env = dir, environ
		cmd.Stdin = nil // /dev/null
		cmd.Stdout, cmd.Stderr = env.Stdout, env.Stderr
		cmd.WaitDelay = pipeWaitDelay
		return runProcessGroup(ctx, cmd, killGrace)
	}
}

func decodeInputs(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		raw = []byte("{}")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("invalid step inputs: %w", err)
	}
	return nil
}

// flattenCommands accepts runCommand as a string or a list of strings and
// nested lists (an interpolated StringList nests), as SSM does.
func flattenCommands(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New(`input "runCommand" is required`)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("runCommand: %w", err)
	}
	var out []string
	var walk func(v any, depth int) error
	walk = func(v any, depth int) error {
		switch t := v.(type) {
		case string:
			out = append(out, t)
		case []any:
			if depth > 8 {
				return errors.New("runCommand is nested too deeply")
			}
			for _, e := range t {
				if err := walk(e, depth+1); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("runCommand must be a string or a list of strings, got %T", v)
		}
		return nil
	}
	if err := walk(v, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// stepTimeout applies the SSM agent's rule to timeoutSeconds (a string or
// a number).
func stepTimeout(raw json.RawMessage) time.Duration {
	if len(raw) == 0 {
		return DefaultStepTimeout
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		text = string(raw)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
	if err != nil || f != math.Trunc(f) || f < minStepTimeout || f > maxStepTimeout {
		return DefaultStepTimeout
	}
	return time.Duration(f) * time.Second
}

// stepEnviron is the agent's environment plus the step's variables (which
// win over inherited ones).
func stepEnviron(vars map[string]string) ([]string, error) {
	env := os.Environ()
	keys := make([]string, 0, len(vars))
	for k := range vars {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(vars[k], 0) {
			return nil, fmt.Errorf("invalid environment variable %q", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	env = slices.DeleteFunc(env, func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		_, ok := vars[k]
		return ok
	})
	for _, k := range keys {
		env = append(env, k+"="+vars[k])
	}
	return env, nil
}

// withInvocationEnv adds the variables the SSM agent gives every script:
// AWS_SSM_INSTANCE_ID (this node) and, ours, FLEETOPS_COMMAND_ID. Document
// variables win over them.
func withInvocationEnv(vars map[string]string, invocationID string) map[string]string {
	cmd, inst, ok := strings.Cut(invocationID, ":")
	if !ok {
		return vars
	}
	out := map[string]string{"AWS_SSM_INSTANCE_ID": inst, "FLEETOPS_COMMAND_ID": cmd}
	maps.Copy(out, vars)
	return out
}

// writeScript writes the script to a new file (0700) in dir.
func writeScript(dir, script string) (string, error) {
	f, err := os.CreateTemp(dir, ".script-*.sh")
	if err != nil {
		return "", fmt.Errorf("create script: %w", err)
	}
	name := f.Name()
	err = f.Chmod(0o700)
	if err == nil {
		_, err = f.WriteString(script)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("write script: %w", err)
	}
	return name, nil
}

// downloadInputs are aws:downloadContent's inputs.
type downloadInputs struct {
	SourceType      string          `json:"sourceType"`
	SourceInfo      json.RawMessage `json:"sourceInfo"`
	DestinationPath string          `json:"destinationPath"`
	// For sourceType SSMDocument the server resolves the stored document
	// and sends it along: the agent never reads the document store.
	DocumentName    string `json:"documentName,omitempty"`
	DocumentContent string `json:"documentContent,omitempty"`
}

// DownloadPlugin implements aws:downloadContent for sourceType HTTP: the
// URL in sourceInfo.url is fetched (at most MaxDownloadBytes) into
// destinationPath, relative to the invocation's work dir. A destination
// that is a directory, or ends in "/", receives the URL's file name.
func DownloadPlugin(client *http.Client) Plugin {
	return func(ctx context.Context, step agentproto.Step, env StepEnv) (int, error) {
		var in downloadInputs
		if err := decodeInputs(step.Inputs, &in); err != nil {
			return -1, err
		}
		if in.SourceType == "SSMDocument" {
			return writeDocument(env, in)
		}
		if in.SourceType != "HTTP" {
			return -1, fmt.Errorf("sourceType %q is not supported by this agent (HTTP and SSMDocument)", in.SourceType)
		}
		info, err := stringMapInput(in.SourceInfo)
		if err != nil {
			return -1, err
		}
		u, err := url.Parse(info["url"])
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return -1, fmt.Errorf("sourceInfo.url %q is not an http(s) URL", info["url"])
		}
		ctx, cancel := context.WithTimeoutCause(ctx, DefaultStepTimeout, errStepTimeout)
		defer cancel()
		dest, err := downloadDestination(env.WorkDir, in.DestinationPath, u)
		if err != nil {
			return -1, err
		}
		n, err := download(ctx, client, u.String(), dest)
		if err != nil {
			if ctx.Err() != nil {
				return -1, context.Cause(ctx)
			}
			return 1, err
		}
		fmt.Fprintf(env.Stdout, "Content downloaded to %s (%d bytes)\n", dest, n)
		return 0, nil
	}
}

// stringMapInput accepts a JSON object or a string holding one.
func stringMapInput(raw json.RawMessage) (map[string]string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(s)
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, errors.New(`input "sourceInfo" must be an object of strings`)
	}
	return m, nil
}

func downloadDestination(workDir, dest string, u *url.URL) (string, error) {
	base := path.Base(u.Path)
	if base == "/" || base == "." || base == "" {
		base = "download"
	}
	if dest == "" {
		dest = workDir + string(filepath.Separator)
	}
	isDir := strings.HasSuffix(dest, "/")
	if !filepath.IsAbs(dest) {
		dest = filepath.Join(workDir, dest)
	}
	if fi, err := os.Stat(dest); err == nil && fi.IsDir() {
		isDir = true
	}
	if isDir {
		dest = filepath.Join(dest, base)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", fmt.Errorf("create destination dir: %w", err)
	}
	return dest, nil
}

// writeDocument saves a stored document the server sent with the step as
// <destination>/<name>.json (or at destinationPath when it names a file).
func writeDocument(env StepEnv, in downloadInputs) (int, error) {
	if in.DocumentName == "" || strings.ContainsAny(in.DocumentName, "/\\") {
		return -1, fmt.Errorf("sourceType SSMDocument without a resolved document")
	}
	dest, err := downloadDestination(env.WorkDir, in.DestinationPath, &url.URL{Path: "/" + in.DocumentName + ".json"})
	if err != nil {
		return -1, err
	}
	tmp := dest + ".tmp"
	if err := os.WriteFile(tmp, []byte(in.DocumentContent), 0o644); err != nil {
		return 1, fmt.Errorf("write %s: %w", dest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return 1, fmt.Errorf("write %s: %w", dest, err)
	}
	fmt.Fprintf(env.Stdout, "Content downloaded to %s (%d bytes)\n", dest, len(in.DocumentContent))
	return 0, nil
}

// download fetches rawURL into dest through a temp file in dest's dir.
func download(ctx context.Context, client *http.Client, rawURL, dest string) (n int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "fleetops-agent/"+Version)
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 0, fmt.Errorf("download: HTTP %d from %s", resp.StatusCode, (&url.URL{Scheme: req.URL.Scheme, Host: req.URL.Host, Path: req.URL.Path}).String())
	}
	if resp.ContentLength > MaxDownloadBytes {
		return 0, fmt.Errorf("download: content of %d bytes exceeds the %d byte limit", resp.ContentLength, MaxDownloadBytes)
	}
	f, err := os.CreateTemp(filepath.Dir(dest), ".download-*.tmp")
	if err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	n, err = io.Copy(f, io.LimitReader(resp.Body, MaxDownloadBytes+1))
	if err != nil {
		return n, fmt.Errorf("download: %w", err)
	}
	if n > MaxDownloadBytes {
		return n, fmt.Errorf("download: content exceeds the %d byte limit", MaxDownloadBytes)
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("download: %w", err)
	}
	if err := os.Rename(f.Name(), dest); err != nil {
		return n, fmt.Errorf("download: install %s: %w", dest, err)
	}
	return n, nil
}
