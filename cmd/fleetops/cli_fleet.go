package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// cliCmd wires a noun's verbs to one shared set of client flags.
func cliCmd(use, short string, o *clientOptions, verbs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short}
	addClientFlags(cmd, o)
	cmd.AddCommand(verbs...)
	return cmd
}

// call runs one API call and prints its answer.
func call(cmd *cobra.Command, o *clientOptions, method, path string, q url.Values, in any, listKey string, t *table) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	var out any
	if err := c.do(cmd.Context(), method, path, q, in, &out); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return render(cmd.OutOrStdout(), o.output, out, listKey, t)
}

func newActivationCmd() *cobra.Command {
	o := &clientOptions{}
	var (
		limit       int
		expiresIn   string
		tags        []string
		description string
		defaultName string
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a hybrid activation; prints its ID, one-time code and install line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tm, err := parseKV(tags)
			if err != nil {
				return err
			}
			req := map[string]any{"registrationLimit": limit, "expiresIn": expiresIn, "description": description, "defaultInstanceName": defaultName}
			if len(tm) > 0 {
				req["tags"] = tm
			}
			return call(cmd, o, http.MethodPost, "/v1/activations", nil, req, "", nil)
		},
	}
	create.Flags().IntVar(&limit, "registration-limit", 1, "how many hosts may register with it (1–1000)")
	create.Flags().StringVar(&expiresIn, "expires-in", "24h", "how long it stays valid (at most 720h)")
	create.Flags().StringArrayVar(&tags, "tag", nil, "KEY=VALUE tag copied onto every registered node (repeatable)")
	create.Flags().StringVar(&description, "description", "", "free-text description")
	create.Flags().StringVar(&defaultName, "default-instance-name", "", "name given to registered nodes")

	list := &cobra.Command{
		Use:   "list",
		Short: "List activations with their registrations and expiry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, o, http.MethodGet, "/v1/activations", nil, nil, "activations", &table{
				headers: []string{"ACTIVATION ID", "DESCRIPTION", "REGISTRATIONS", "LIMIT", "EXPIRES", "EXPIRED", "TAGS"},
				row:     fields("activationId", "description", "registrationsCount", "registrationLimit", "expirationDate", "expired", "tags"),
			})
		},
	}
	del := &cobra.Command{
		Use:     "delete ID",
		Aliases: []string{"revoke"},
		Short:   "Delete (revoke) an activation; registered nodes stay",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := call(cmd, o, http.MethodDelete, "/v1/activations/"+url.PathEscape(args[0]), nil, nil, "", nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "deleted activation", args[0])
			return nil
		},
	}
	return cliCmd("activation", "Manage hybrid activations that register new nodes", o, create, list, del)
}

var instanceTable = &table{
	headers: []string{"INSTANCE ID", "NAME", "PING STATUS", "PLATFORM", "VERSION", "AGENT", "IP", "LAST PING", "TAGS"},
	row:     fields("instanceId", "name", "pingStatus", "platformName", "platformVersion", "agentVersion", "ipAddresses", "lastPingAt", "tags"),
}

func newInstanceCmd() *cobra.Command {
	o := &clientOptions{}
	var (
		pingStatus []string
		tagFilters []string
		tagKeys    []string
		platform   []string
		platType   []string
		maxResults int
		nextToken  string
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List managed nodes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for _, s := range pingStatus {
				q.Add("pingStatus", s)
			}
			for _, t := range tagFilters {
				q.Add("tag", t)
			}
			for _, k := range tagKeys {
				q.Add("tagKey", k)
			}
			for _, p := range platform {
				q.Add("platformName", p)
			}
			for _, p := range platType {
				q.Add("platformType", p)
			}
			if maxResults > 0 {
				q.Set("maxResults", fmt.Sprint(maxResults))
			}
			if nextToken != "" {
				q.Set("nextToken", nextToken)
			}
			return call(cmd, o, http.MethodGet, "/v1/instances", q, nil, "instances", instanceTable)
		},
	}
	list.Flags().StringSliceVar(&pingStatus, "ping-status", nil, "Online, ConnectionLost or Inactive (comma-separated ORs)")
	list.Flags().StringArrayVar(&tagFilters, "tag", nil, "KEY=V1,V2 tag filter (repeatable; filters AND, values OR)")
	list.Flags().StringArrayVar(&tagKeys, "tag-key", nil, "nodes that have this tag key (repeatable)")
	list.Flags().StringArrayVar(&platform, "platform", nil, "platform name, e.g. \"Debian GNU/Linux\" (repeatable)")
	list.Flags().StringArrayVar(&platType, "platform-type", nil, "platform type, e.g. Linux")
	list.Flags().IntVar(&maxResults, "max-results", 0, "page size (1–1000, default 50)")
	list.Flags().StringVar(&nextToken, "next-token", "", "continue a previous listing")

	get := &cobra.Command{
		Use:   "get INSTANCE_ID",
		Short: "Show one managed node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, o, http.MethodGet, "/v1/instances/"+url.PathEscape(args[0]), nil, nil, "", nil)
		},
	}
	tag := &cobra.Command{
		Use:   "tag INSTANCE_ID KEY=VALUE...",
		Short: "Add or replace tags on a node",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			tm, err := parseKV(args[1:])
			if err != nil {
				return err
			}
			return call(cmd, o, http.MethodPost, "/v1/instances/"+url.PathEscape(args[0])+"/tags", nil, map[string]any{"tags": tm}, "", instanceTable)
		},
	}
	untag := &cobra.Command{
		Use:   "untag INSTANCE_ID KEY...",
		Short: "Remove tags from a node",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, o, http.MethodPost, "/v1/instances/"+url.PathEscape(args[0])+"/untag", nil, map[string]any{"keys": args[1:]}, "", instanceTable)
		},
	}
	dereg := &cobra.Command{
		Use:   "deregister INSTANCE_ID",
		Short: "Deregister a node: it turns Inactive and its agent can no longer connect",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, o, http.MethodPost, "/v1/instances/"+url.PathEscape(args[0])+"/deregister", nil, nil, "", instanceTable)
		},
	}
	return cliCmd("instance", "Inspect and manage managed nodes", o, list, get, tag, untag, dereg)
}

// parseGroupQuery reads "tag:Key=V1,V2" or "tag-key:Key" terms.
func parseGroupQuery(terms []string) ([]map[string]any, error) {
	var out []map[string]any
	for _, term := range terms {
		for _, part := range splitTerms(term) {
			switch {
			case strings.HasPrefix(part, "tag:"):
				k, v, ok := strings.Cut(strings.TrimPrefix(part, "tag:"), "=")
				if !ok || k == "" || v == "" {
					return nil, fmt.Errorf("query term %q must be tag:KEY=V1,V2", part)
				}
				out = append(out, map[string]any{"key": k, "values": strings.Split(v, ",")})
			case strings.HasPrefix(part, "tag-key:"):
				out = append(out, map[string]any{"key": strings.TrimPrefix(part, "tag-key:"), "values": []string{}})
			default:
				return nil, fmt.Errorf("query term %q must start with tag:KEY=VALUE or tag-key:KEY", part)
			}
		}
	}
	return out, nil
}

// splitTerms splits "tag:A=x,y;tag:B=z" on semicolons; commas stay with the
// values they list.
func splitTerms(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ";") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func newGroupCmd() *cobra.Command {
	o := &clientOptions{}
	var query []string
	var description string
	groupTable := &table{headers: []string{"NAME", "DESCRIPTION", "QUERY", "CREATED"}, row: func(m map[string]any) []string {
		var terms []string
		q, _ := m["query"].([]any)
		for _, f := range q {
			fm, _ := f.(map[string]any)
			vals := cell(fm["values"])
			if vals == "-" || vals == "" {
				terms = append(terms, "tag-key:"+cell(fm["key"]))
			} else {
				terms = append(terms, "tag:"+cell(fm["key"])+"="+vals)
			}
		}
		return []string{cell(m["name"]), cell(m["description"]), strings.Join(terms, ";"), cell(m["createdAt"])}
	}}
	create := &cobra.Command{
		Use:   "create NAME --query tag:Env=prod,staging [--query tag:Role=web]",
		Short: "Create a resource group from a tag query (keys AND, values OR)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := parseGroupQuery(query)
			if err != nil {
				return err
			}
			return call(cmd, o, http.MethodPost, "/v1/groups", nil, map[string]any{"name": args[0], "description": description, "query": q}, "", groupTable)
		},
	}
	create.Flags().StringArrayVar(&query, "query", nil, "tag:KEY=V1,V2 or tag-key:KEY; repeat or separate with ';' to AND")
	create.Flags().StringVar(&description, "description", "", "free-text description")
	_ = create.MarkFlagRequired("query")
	list := &cobra.Command{
		Use: "list", Short: "List resource groups", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, o, http.MethodGet, "/v1/groups", nil, nil, "groups", groupTable)
		},
	}
	get := &cobra.Command{
		Use: "get NAME", Short: "Show a resource group", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, o, http.MethodGet, "/v1/groups/"+url.PathEscape(args[0]), nil, nil, "", groupTable)
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a resource group", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := call(cmd, o, http.MethodDelete, "/v1/groups/"+url.PathEscape(args[0]), nil, nil, "", nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "deleted group", args[0])
			return nil
		},
	}
	members := &cobra.Command{
		Use: "members NAME", Short: "List the nodes a resource group matches now", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, o, http.MethodGet, "/v1/groups/"+url.PathEscape(args[0])+"/members", url.Values{"maxResults": {"1000"}}, nil, "instances", instanceTable)
		},
	}
	return cliCmd("group", "Manage resource groups (saved tag queries)", o, create, list, get, del, members)
}

func newTokenCmd() *cobra.Command {
	o := &clientOptions{}
	tokenTable := &table{headers: []string{"ID", "NAME", "CREATED", "LAST USED", "REVOKED", "TOKEN"}, row: fields("id", "name", "createdAt", "lastUsedAt", "revokedAt", "token")}
	create := &cobra.Command{
		Use: "create NAME", Short: "Create an API token; it is shown once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, o, http.MethodPost, "/v1/tokens", nil, map[string]any{"name": args[0]}, "", tokenTable)
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "List API tokens", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, o, http.MethodGet, "/v1/tokens", nil, nil, "tokens", tokenTable)
		},
	}
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke an API token", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := call(cmd, o, http.MethodDelete, "/v1/tokens/"+url.PathEscape(args[0]), nil, nil, "", nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "revoked token", args[0])
			return nil
		},
	}
	return cliCmd("token", "Manage API tokens", o, create, list, revoke)
}

func newAuditCmd() *cobra.Command {
	o := &clientOptions{}
	var actor, action, resource, since, until, nextToken string
	var maxResults int
	list := &cobra.Command{
		Use: "list", Short: "List audit events, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"actor": actor, "action": action, "resource": resource, "since": since, "until": until, "nextToken": nextToken} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if maxResults > 0 {
				q.Set("maxResults", fmt.Sprint(maxResults))
			}
			return call(cmd, o, http.MethodGet, "/v1/audit", q, nil, "events", &table{
				headers: []string{"TIME", "ACTOR", "ACTION", "RESOURCE", "SOURCE", "OUTCOME"},
				row:     fields("time", "actor", "action", "resource", "sourceIp", "outcome"),
			})
		},
	}
	list.Flags().StringVar(&actor, "actor", "", "only this actor, e.g. token:admin")
	list.Flags().StringVar(&action, "action", "", "only this action, e.g. CreateActivation")
	list.Flags().StringVar(&resource, "resource", "", "only this resource, e.g. instance/mi-…")
	list.Flags().StringVar(&since, "since", "", "RFC 3339 time")
	list.Flags().StringVar(&until, "until", "", "RFC 3339 time")
	list.Flags().IntVar(&maxResults, "max-results", 0, "page size (1–1000)")
	list.Flags().StringVar(&nextToken, "next-token", "", "continue a previous listing")
	return cliCmd("audit", "Read the audit log", o, list)
}
