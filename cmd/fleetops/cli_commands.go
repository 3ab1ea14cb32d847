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
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// finalStatuses are the command statuses that end it.
var finalStatuses = map[string]bool{"Success": true, "Failed": true, "TimedOut": true, "Cancelled": true}

// commandView is what --wait and --follow read of a command.
type commandView struct {
	Command struct {
		CommandID             string `json:"commandId"`
		Status                string `json:"status"`
		StatusDetails         string `json:"statusDetails"`
		TargetCount           int    `json:"targetCount"`
		CompletedCount        int    `json:"completedCount"`
		ErrorCount            int    `json:"errorCount"`
		DeliveryTimedOutCount int    `json:"deliveryTimedOutCount"`
	} `json:"command"`
}

func newCommandCmd() *cobra.Command {
	o := &clientOptions{}
	cmdTable := &table{
		headers: []string{"COMMAND ID", "DOCUMENT", "STATUS", "DETAILS", "TARGETS", "COMPLETED", "ERRORS", "REQUESTED", "COMMENT"},
		row:     fields("commandId", "documentName", "status", "statusDetails", "targetCount", "completedCount", "errorCount", "requestedDateTime", "comment"),
	}
	invTable := &table{
		headers: []string{"INSTANCE ID", "NAME", "STATUS", "DETAILS", "CODE", "STARTED", "ENDED"},
		row:     fields("instanceId", "instanceName", "status", "statusDetails", "responseCode", "executionStartDateTime", "executionEndDateTime"),
	}

	// send
	var (
		document, documentVersion, instanceIDs, parameters, comment string
		maxConcurrency, maxErrors                                   string
		targets, params                                             []string
		timeoutSeconds                                              int
		wait, follow                                                bool
	)
	send := &cobra.Command{
		Use:   "send --document NAME (--instance-ids a,b | --targets Key=tag:Env,Values=dev)",
		Short: "Run a document on nodes (SendCommand); --wait shows progress, --follow streams output",
		Example: `  fleetops command send --document AWS-RunShellScript --targets Key=tag:Env,Values=dev \
      --parameters 'commands=["uptime"]' --max-concurrency 10% --max-errors 1 --wait
  fleetops command send --document AWS-RunShellScript --instance-ids mi-0123456789abcdef0 --param commands='df -h' --follow`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := map[string]any{
				"documentName": document, "documentVersion": documentVersion, "comment": comment,
				"maxConcurrency": maxConcurrency, "maxErrors": maxErrors, "timeoutSeconds": timeoutSeconds,
			}
			if instanceIDs != "" {
				req["instanceIds"] = strings.Split(instanceIDs, ",")
			}
			if len(targets) > 0 {
				t, err := parseTargets(targets)
				if err != nil {
					return err
				}
				req["targets"] = t
			}
			p, err := parseParameters(parameters)
			if err != nil {
				return err
			}
			for _, kv := range params {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--param %q: want name=value", kv)
				}
				p[k] = append(p[k], v)
			}
			if len(p) > 0 {
				req["parameters"] = p
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var out commandView
			var raw map[string]any
			b, _, err := c.raw(cmd.Context(), http.MethodPost, "/v1/commands", nil, req)
			if err != nil {
				return err
			}
			if err := decodeJSON(b, &out, &raw); err != nil {
				return err
			}
			id := out.Command.CommandID
			if !wait && !follow {
				return render(cmd.OutOrStdout(), o.output, raw, "command", cmdTable)
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "command", id)
			var final commandView
			if follow {
				final, err = followCommand(cmd.Context(), c, id, cmd.OutOrStdout())
			} else {
				final, err = waitCommand(cmd.Context(), c, id, cmd.ErrOrStderr())
			}
			if err != nil {
				return err
			}
			fc := final.Command
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s (%s) — %d targets, %d completed, %d errors, %d delivery timed out\n",
				id, fc.Status, fc.StatusDetails, fc.TargetCount, fc.CompletedCount, fc.ErrorCount, fc.DeliveryTimedOutCount)
			if fc.Status != "Success" {
				return exitError{code: 2}
			}
			return nil
		},
	}
	f := send.Flags()
	f.StringVar(&document, "document", "", "document name (e.g. AWS-RunShellScript)")
	f.StringVar(&documentVersion, "document-version", "", "version number, $DEFAULT or $LATEST")
	f.StringVar(&instanceIDs, "instance-ids", "", "comma-separated instance IDs (at most 50)")
	f.StringArrayVar(&targets, "targets", nil, "target, aws CLI shorthand Key=tag:Env,Values=dev,prod or JSON (repeatable; ANDed)")
	f.StringVar(&parameters, "parameters", "", `parameters, aws CLI shorthand commands=["uptime"] or JSON {"commands":["uptime"]}`)
	f.StringArrayVar(&params, "param", nil, "one parameter value name=value (repeatable; repeats build a list)")
	f.StringVar(&maxConcurrency, "max-concurrency", "50", "how many nodes run at once: a number or a percentage")
	f.StringVar(&maxErrors, "max-errors", "0", "errors after which no more nodes are sent the command: a number or a percentage")
	f.IntVar(&timeoutSeconds, "timeout-seconds", 3600, "delivery timeout: a node that has not started by then never runs it")
	f.StringVar(&comment, "comment", "", "free text, up to 100 characters")
	f.BoolVar(&wait, "wait", false, "wait for the command to end, showing progress; exit 0 only on Success")
	f.BoolVar(&follow, "follow", false, "stream every node's output as it is produced; exit 0 only on Success")
	_ = send.MarkFlagRequired("document")

	// list
	var status, docFilter, instFilter, after, before string
	var maxResults int
	list := &cobra.Command{
		Use:   "list",
		Short: "List commands, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			setIf(q, "status", status)
			setIf(q, "documentName", docFilter)
			setIf(q, "instanceId", instFilter)
			setIf(q, "invokedAfter", after)
			setIf(q, "invokedBefore", before)
			if maxResults > 0 {
				q.Set("maxResults", strconv.Itoa(maxResults))
			}
			return call(cmd, o, http.MethodGet, "/v1/commands", q, nil, "commands", cmdTable)
		},
	}
	list.Flags().StringVar(&status, "status", "", "filter by status (Pending, InProgress, Success, Failed, TimedOut, Cancelled, Cancelling)")
	list.Flags().StringVar(&docFilter, "document", "", "filter by document name")
	list.Flags().StringVar(&instFilter, "instance-id", "", "only commands that ran on this node")
	list.Flags().StringVar(&after, "after", "", "requested after (RFC 3339)")
	list.Flags().StringVar(&before, "before", "", "requested before (RFC 3339)")
	list.Flags().IntVar(&maxResults, "max-results", 0, "page size (1–1000)")

	get := &cobra.Command{
		Use:   "get COMMAND_ID",
		Short: "Show a command with its counters",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, o, http.MethodGet, "/v1/commands/"+url.PathEscape(args[0]), nil, nil, "command", cmdTable)
		},
	}

	var invStatus, invInstance string
	invocations := &cobra.Command{
		Use:   "invocations COMMAND_ID",
		Short: "List a command's invocations (one per node)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			setIf(q, "status", invStatus)
			setIf(q, "instanceId", invInstance)
			if maxResults > 0 {
				q.Set("maxResults", strconv.Itoa(maxResults))
			}
			return call(cmd, o, http.MethodGet, "/v1/commands/"+url.PathEscape(args[0])+"/invocations", q, nil, "invocations", invTable)
		},
	}
	invocations.Flags().StringVar(&invStatus, "status", "", "filter by invocation status")
	invocations.Flags().StringVar(&invInstance, "instance-id", "", "filter by node")
	invocations.Flags().IntVar(&maxResults, "max-results", 0, "page size (1–1000)")

	var outInstance, stream string
	output := &cobra.Command{
		Use:   "output COMMAND_ID --instance-id ID",
		Short: "Print the whole stored output of one node's invocation",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			b, h, err := c.raw(cmd.Context(), http.MethodGet,
				"/v1/commands/"+url.PathEscape(args[0])+"/invocations/"+url.PathEscape(outInstance)+"/output", url.Values{"stream": {stream}}, nil)
			if err != nil {
				return err
			}
			if _, err := cmd.OutOrStdout().Write(b); err != nil {
				return err
			}
			if h.Get("X-Fleetops-Output-Truncated") == "true" {
				fmt.Fprintln(cmd.ErrOrStderr(), "(output truncated at the command's maxOutputBytes)")
			}
			return nil
		},
	}
	output.Flags().StringVar(&outInstance, "instance-id", "", "the node")
	output.Flags().StringVar(&stream, "stream", "stdout", "stdout or stderr")
	_ = output.MarkFlagRequired("instance-id")

	var cancelIDs string
	cancel := &cobra.Command{
		Use:   "cancel COMMAND_ID",
		Short: "Cancel a command, or only its invocations on --instance-ids",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			if cancelIDs != "" {
				body["instanceIds"] = strings.Split(cancelIDs, ",")
			}
			if err := call(cmd, o, http.MethodPost, "/v1/commands/"+url.PathEscape(args[0])+"/cancel", nil, body, "", nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "cancel requested for", args[0])
			return nil
		},
	}
	cancel.Flags().StringVar(&cancelIDs, "instance-ids", "", "comma-separated nodes to cancel on (default: all)")

	return cliCmd("command", "Run documents on nodes and read the results (Run Command)", o, send, list, get, invocations, output, cancel)
}

func setIf(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

func decodeJSON(b []byte, outs ...any) error {
	for _, o := range outs {
		if err := json.Unmarshal(b, o); err != nil {
			return fmt.Errorf("decode response: %w", err)
		}
	}
	return nil
}

func getCommand(ctx context.Context, c *apiClient, id string) (commandView, error) {
	var v commandView
	err := c.do(ctx, http.MethodGet, "/v1/commands/"+url.PathEscape(id), nil, nil, &v)
	return v, err
}

// waitCommand polls the command until it ends, drawing a progress bar on a
// terminal and a line per change otherwise.
func waitCommand(ctx context.Context, c *apiClient, id string, w io.Writer) (commandView, error) {
	var bar *progressbar.ProgressBar
	tty := false
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		tty = true
	}
	last := ""
	for {
		v, err := getCommand(ctx, c, id)
		if err != nil {
			return v, err
		}
		cmd := v.Command
		if tty {
			if bar == nil && cmd.TargetCount > 0 {
				bar = progressbar.NewOptions(cmd.TargetCount, progressbar.OptionSetWriter(w),
					progressbar.OptionShowCount(), progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish())
			}
			if bar != nil {
				bar.Describe(fmt.Sprintf("%s, %d errors", cmd.Status, cmd.ErrorCount))
				_ = bar.Set(cmd.CompletedCount)
			}
		} else if line := fmt.Sprintf("%s: %d/%d done, %d errors", cmd.Status, cmd.CompletedCount, cmd.TargetCount, cmd.ErrorCount); line != last {
			fmt.Fprintln(w, line)
			last = line
		}
		if finalStatuses[cmd.Status] {
			if bar != nil {
				_ = bar.Finish()
			}
			return v, nil
		}
		if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
			return v, err
		}
	}
}

// followCommand streams each node's stdout and stderr, prefixed with the
// node, until the command ends and every stream is drained.
func followCommand(ctx context.Context, c *apiClient, id string, w io.Writer) (commandView, error) {
	offsets := map[outputKey]int{}
	finished := map[string]bool{}
	for {
		v, err := getCommand(ctx, c, id)
		if err != nil {
			return v, err
		}
		done := finalStatuses[v.Command.Status]
		if err := printNewOutput(ctx, c, id, offsets, finished, w); err != nil {
			return v, err
		}
		if done {
			return v, nil
		}
		if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
			return v, err
		}
	}
}

// outputKey names one stream of one node's invocation output.
type outputKey struct{ inst, stream string }

// printNewOutput prints the output each invocation has added since offsets,
// a line at a time (a partial last line waits unless the invocation is
// over), and marks finished invocations.
func printNewOutput(ctx context.Context, c *apiClient, id string, offsets map[outputKey]int, finished map[string]bool, w io.Writer) error {
	var page struct {
		Invocations []struct {
			InstanceID string `json:"instanceId"`
			Status     string `json:"status"`
		} `json:"invocations"`
		NextToken string `json:"nextToken"`
	}
	q := url.Values{"maxResults": {"1000"}}
	for {
		if err := c.do(ctx, http.MethodGet, "/v1/commands/"+url.PathEscape(id)+"/invocations", q, nil, &page); err != nil {
			return err
		}
		for _, inv := range page.Invocations {
			if finished[inv.InstanceID] || inv.Status == "Pending" {
				continue
			}
			for _, stream := range []string{"stdout", "stderr"} {
				k := outputKey{inv.InstanceID, stream}
				b, _, err := c.raw(ctx, http.MethodGet, "/v1/commands/"+url.PathEscape(id)+"/invocations/"+inv.InstanceID+"/output",
					url.Values{"stream": {stream}, "offset": {strconv.Itoa(offsets[k])}}, nil)
				if err != nil {
					return err
				}
				// Print whole lines; keep a partial last line for later
				// unless the invocation is over.
				text := string(b)
				over := finalStatuses[inv.Status]
				if i := strings.LastIndexByte(text, '\n'); i >= 0 && !over {
					text = text[:i+1]
				} else if !over {
					text = ""
				}
				offsets[k] += len(text)
				prefix := "[" + inv.InstanceID + "] "
				if stream == "stderr" {
					prefix = "[" + inv.InstanceID + " stderr] "
				}
				for line := range strings.Lines(text) {
					fmt.Fprint(w, prefix+strings.TrimSuffix(line, "\n")+"\n")
				}
			}
			if finalStatuses[inv.Status] {
				finished[inv.InstanceID] = true
			}
		}
		if page.NextToken == "" {
			break
		}
		q.Set("nextToken", page.NextToken)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return errors.New("interrupted")
	case <-time.After(d):
		return nil
	}
}

// readAllLimited reads a document from standard input, up to 1 MiB.
func readAllLimited(r io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, 1<<20))
}
