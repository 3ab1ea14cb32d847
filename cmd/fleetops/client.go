package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// clientOptions are the flags every CLI command shares.
type clientOptions struct {
	server  string
	token   string
	dataDir string
	caFile  string
	output  string
}

func addClientFlags(cmd *cobra.Command, o *clientOptions) {
	f := cmd.PersistentFlags()
	f.StringVar(&o.server, "server", "", "fleetops server URL (default http://127.0.0.1:8080, or the local dev stack)")
	f.StringVar(&o.token, "token", "", "API token (default: DATA_DIR/admin.token of the local dev stack)")
	f.StringVar(&o.dataDir, "data-dir", ".fleetops", "local dev data dir to fall back to for the token and CA")
	f.StringVar(&o.caFile, "ca-file", "", "CA certificate to verify the server with (default: DATA_DIR/tls/ca.pem when present)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table, json or yaml")
}

// apiClient calls the operator API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func (o clientOptions) client() (*apiClient, error) {
	switch o.output {
	case "table", "json", "yaml":
	default:
		return nil, fmt.Errorf("output format %q: want table, json or yaml", o.output)
	}
	server := o.server
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	token := o.token
	if token == "" {
		b, err := os.ReadFile(filepath.Join(o.dataDir, "admin.token"))
		if err != nil {
			return nil, errors.New("no API token: pass --token or FLEETOPS_TOKEN, or run from the directory holding the dev stack's .fleetops/admin.token")
		}
		token = strings.TrimSpace(string(b))
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	caFile := o.caFile
	if caFile == "" {
		if p := filepath.Join(o.dataDir, "tls", "ca.pem"); fileExists(p) {
			caFile = p
		}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &apiClient{base: strings.TrimRight(server, "/"), token: token, http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// do sends in as JSON (if non-nil) and decodes the answer into out (if
// non-nil). Non-2xx answers become errors carrying the server's message.
func (c *apiClient) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	b, _, err := c.raw(ctx, method, path, query, in)
	if err != nil {
		return err
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode response: %w", err)
		}
	}
	return nil
}

// raw is do without decoding: it returns the body and headers.
func (c *apiClient) raw(ctx context.Context, method, path string, query url.Values, in any) ([]byte, http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e agentproto.ErrorResponse
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return nil, nil, e.Error
		}
		return nil, nil, fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	return b, resp.Header, nil
}

// table describes how to print a list as columns.
type table struct {
	headers []string
	row     func(item map[string]any) []string
}

// render prints v (decoded JSON) in the chosen format. For table output,
// listKey names the array to print ("" prints v itself as one row, or as
// key/value pairs when t is nil).
func render(w io.Writer, format string, v any, listKey string, t *table) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		return yaml.NewEncoder(w).Encode(v)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	m, _ := v.(map[string]any)
	if t == nil {
		for _, k := range sortedMapKeys(m) {
			fmt.Fprintf(tw, "%s:\t%s\n", k, cell(m[k]))
		}
		return nil
	}
	var items []any
	if listKey == "" {
		items = []any{v}
	} else {
		items, _ = m[listKey].([]any)
	}
	fmt.Fprintln(tw, strings.Join(t.headers, "\t"))
	for _, it := range items {
		im, _ := it.(map[string]any)
		fmt.Fprintln(tw, strings.Join(t.row(im), "\t"))
	}
	if next, _ := m["nextToken"].(string); next != "" {
		fmt.Fprintf(tw, "(more results: --next-token %s)\n", next)
	}
	return nil
}

// cell formats one JSON value for a table.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return "-"
		}
		return x
	case float64:
		return fmt.Sprintf("%g", x)
	case bool:
		return fmt.Sprint(x)
	case []any:
		parts := make([]string, 0, len(x))
		for _, p := range x {
			parts = append(parts, cell(p))
		}
		return strings.Join(parts, ",")
	case map[string]any:
		parts := make([]string, 0, len(x))
		for _, k := range sortedMapKeys(x) {
			parts = append(parts, k+"="+cell(x[k]))
		}
		if len(parts) == 0 {
			return "-"
		}
		return strings.Join(parts, ",")
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

func sortedMapKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fields returns a row function printing the named JSON fields.
func fields(names ...string) func(map[string]any) []string {
	return func(m map[string]any) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = cell(m[n])
		}
		return out
	}
}

// parseKV parses K=V pairs (tags).
func parseKV(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("tag %q must be KEY=VALUE", p)
		}
		out[k] = v
	}
	return out, nil
}
