package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func newDocumentCmd() *cobra.Command {
	o := &clientOptions{}
	var (
		file, format, docType string
		version               string
		owner                 string
	)
	readContent := func() (string, error) {
		if file == "" {
			return "", fmt.Errorf("--file is required (use - for standard input)")
		}
		var b []byte
		var err error
		if file == "-" {
			b, err = readAllLimited(os.Stdin)
		} else {
			b, err = os.ReadFile(file)
		}
		if err != nil {
			return "", fmt.Errorf("read document: %w", err)
		}
		return string(b), nil
	}
	docTable := &table{
		headers: []string{"NAME", "OWNER", "VERSION", "DEFAULT", "LATEST", "SCHEMA", "FORMAT", "DESCRIPTION"},
		row:     fields("name", "owner", "documentVersion", "defaultVersion", "latestVersion", "schemaVersion", "documentFormat", "description"),
	}

	create := &cobra.Command{
		Use:   "create NAME --file FILE [--type Session]",
		Short: "Create a document as version 1: Command (schema 2.2, 2.0 or 1.2) or Session (schema 1.0 Standard_Stream preferences)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			content, err := readContent()
			if err != nil {
				return err
			}
			return call(cmd, o, http.MethodPost, "/v1/documents", nil,
				map[string]any{"name": args[0], "content": content, "documentFormat": format, "documentType": docType}, "document", docTable)
		},
	}
	update := &cobra.Command{
		Use:   "update NAME --file FILE",
		Short: "Add a new version of a document (the default version stays until you change it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			content, err := readContent()
			if err != nil {
				return err
			}
			return call(cmd, o, http.MethodPut, "/v1/documents/"+url.PathEscape(args[0]), nil,
				map[string]any{"content": content, "documentFormat": format}, "document", docTable)
		},
	}
	create.Flags().StringVar(&docType, "type", "Command", "Command, or Session for session preferences (idle timeout, run-as, shell profile, recording)")
	for _, c := range []*cobra.Command{create, update} {
		c.Flags().StringVarP(&file, "file", "f", "", "document file, or - for standard input")
		c.Flags().StringVar(&format, "format", "", "YAML or JSON (default: detected)")
	}
	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a document version and its content ($DEFAULT unless --version)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var out map[string]any
			if err := c.do(cmd.Context(), http.MethodGet, "/v1/documents/"+url.PathEscape(args[0]), url.Values{"version": {version}}, nil, &out); err != nil {
				return err
			}
			if o.output != "table" {
				return render(cmd.OutOrStdout(), o.output, out, "", nil)
			}
			doc, _ := out["document"].(map[string]any)
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s version %s (default %s, latest %s), schema %s, %s, sha256 %s\n",
				doc["name"], doc["documentVersion"], doc["defaultVersion"], doc["latestVersion"], doc["schemaVersion"], doc["documentFormat"], doc["hash"])
			fmt.Fprintln(w, strings.TrimRight(fmt.Sprint(doc["content"]), "\n"))
			return nil
		},
	}
	get.Flags().StringVar(&version, "version", "", "version number, $DEFAULT or $LATEST")
	list := &cobra.Command{
		Use:   "list",
		Short: "List documents: built-ins and yours",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, o, http.MethodGet, "/v1/documents", url.Values{"owner": {owner}}, nil, "documents", docTable)
		},
	}
	list.Flags().StringVar(&owner, "owner", "", "Self or Amazon (built-ins); default both")
	versions := &cobra.Command{
		Use:   "versions NAME",
		Short: "List a document's versions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, o, http.MethodGet, "/v1/documents/"+url.PathEscape(args[0])+"/versions", nil, nil, "versions", &table{
				headers: []string{"VERSION", "DEFAULT", "CREATED", "CREATED BY", "FORMAT", "SHA256"},
				row:     fields("documentVersion", "isDefaultVersion", "createdDate", "createdBy", "documentFormat", "hash"),
			})
		},
	}
	setDefault := &cobra.Command{
		Use:   "set-default NAME VERSION",
		Short: "Make VERSION the document's default version",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, o, http.MethodPut, "/v1/documents/"+url.PathEscape(args[0])+"/default-version", nil,
				map[string]any{"documentVersion": args[1]}, "document", docTable)
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a document (all versions, or one with --version)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if version != "" {
				q.Set("version", version)
			}
			if err := call(cmd, o, http.MethodDelete, "/v1/documents/"+url.PathEscape(args[0]), q, nil, "", nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "deleted document", args[0])
			return nil
		},
	}
	del.Flags().StringVar(&version, "version", "", "delete only this version (not the default)")
	return cliCmd("document", "Manage Command documents", o, create, update, get, list, versions, setDefault, del)
}
