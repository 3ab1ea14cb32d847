package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fleetops/fleetops/internal/document"
	"github.com/fleetops/fleetops/internal/store"
)

// Document owners, as SSM's DocumentIdentifier.Owner.
const (
	ownerBuiltin = "Amazon"
	ownerSelf    = "Self"
)

// documentJSON is SSM's DocumentDescription in lowerCamel, plus the content
// when asked for one version.
type documentJSON struct {
	Name            string                `json:"name"`
	Owner           string                `json:"owner"`
	DocumentType    string                `json:"documentType"`
	DocumentFormat  string                `json:"documentFormat"`
	SchemaVersion   string                `json:"schemaVersion"`
	Description     string                `json:"description"`
	DocumentVersion string                `json:"documentVersion"`
	DefaultVersion  string                `json:"defaultVersion"`
	LatestVersion   string                `json:"latestVersion"`
	Hash            string                `json:"hash"`
	HashType        string                `json:"hashType"`
	CreatedDate     time.Time             `json:"createdDate"`
	Parameters      []*document.Parameter `json:"parameters"`
	Content         string                `json:"content,omitempty"`
}

// loadedDocument is a document version resolved from the built-ins or the
// store, parsed.
type loadedDocument struct {
	doc *document.Document
	// session is set instead of doc for Session documents.
	session *document.SessionDocument
	row     store.Document
	head    store.DocumentHead
	builtin bool
}

func (d loadedDocument) json(withContent bool) documentJSON {
	owner := ownerSelf
	if d.builtin {
		owner = ownerBuiltin
	}
	params := []*document.Parameter{}
	schema, description := "", ""
	if d.doc != nil {
		for _, n := range d.doc.ParameterNames() {
			params = append(params, d.doc.Parameters[n])
		}
		schema, description = d.doc.SchemaVersion, d.doc.Description
	} else if d.session != nil {
		schema, description = d.session.SchemaVersion, d.session.Description
	}
	out := documentJSON{
		Name: d.row.Name, Owner: owner, DocumentType: d.row.DocumentType, DocumentFormat: d.row.DocumentFormat,
		SchemaVersion: schema, Description: description,
		DocumentVersion: strconv.Itoa(d.row.Version), DefaultVersion: strconv.Itoa(d.head.DefaultVersion),
		LatestVersion: strconv.Itoa(d.head.LatestVersion), Hash: d.row.Hash, HashType: "Sha256",
		CreatedDate: d.row.CreatedAt.UTC(), Parameters: params,
	}
	if withContent {
		out.Content = d.row.Content
	}
	return out
}

// parseDocumentVersion reads SSM's DocumentVersion: "", "$DEFAULT",
// "$LATEST" or a positive integer. 0 means the default, -1 the latest.
func parseDocumentVersion(field, v string) (int, error) {
	switch v {
	case "", "$DEFAULT":
		return 0, nil
	case "$LATEST":
		return -1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || strconv.Itoa(n) != v {
		return 0, badRequest(field, "%s %q must be $DEFAULT, $LATEST or a version number", field, truncate(v, 20))
	}
	return n, nil
}

// loadDocument resolves name at version (see parseDocumentVersion) from the
// built-ins, then the store. Unknown names and versions are 400
// InvalidDocument / InvalidDocumentVersion, as SendCommand reports them.
func (s *Server) loadDocument(ctx context.Context, name string, version int) (loadedDocument, error) {
	if document.IsBuiltin(name) {
		if version > 1 {
			return loadedDocument{}, &Error{Status: http.StatusBadRequest, Code: "InvalidDocumentVersion", Field: "documentVersion",
				Message: "built-in document " + name + " has only version 1"}
		}
		doc, err := document.Builtin(name)
		if err != nil {
			return loadedDocument{}, err
		}
		content := document.Builtins()[name]
		format, _ := document.BuiltinFormat(name)
		return loadedDocument{doc: doc, builtin: true,
			row:  store.Document{Name: name, Version: 1, DocumentType: "Command", DocumentFormat: string(format), Content: string(content), Hash: sha256Hex(content)},
			head: store.DocumentHead{Name: name, DefaultVersion: 1, LatestVersion: 1}}, nil
	}
	var (
		row  store.Document
		head store.DocumentHead
		err  error
	)
	if version == -1 {
		if _, head, err = s.cfg.Store.GetDocument(ctx, name, 0); err == nil {
			row, head, err = s.cfg.Store.GetDocument(ctx, name, head.LatestVersion)
		}
	} else {
		row, head, err = s.cfg.Store.GetDocument(ctx, name, version)
	}
	if errors.Is(err, store.ErrNotFound) {
		if version > 0 {
			if _, _, headErr := s.cfg.Store.GetDocument(ctx, name, 0); headErr == nil {
				return loadedDocument{}, &Error{Status: http.StatusBadRequest, Code: "InvalidDocumentVersion", Field: "documentVersion",
					Message: "document " + name + " has no version " + strconv.Itoa(version)}
			}
		}
		return loadedDocument{}, &Error{Status: http.StatusBadRequest, Code: "InvalidDocument", Field: "documentName",
			Message: "document " + truncate(name, 130) + " does not exist"}
	}
	if err != nil {
		return loadedDocument{}, err
	}
	if row.DocumentType == documentTypeSession {
		sd, err := document.ParseSession([]byte(row.Content), document.Format(row.DocumentFormat))
		if err != nil {
			return loadedDocument{}, err
		}
		return loadedDocument{session: sd, row: row, head: head}, nil
	}
	doc, err := document.Parse([]byte(row.Content), document.Format(row.DocumentFormat))
	if err != nil {
		return loadedDocument{}, err // stored content was valid when stored; a parser change is a server bug
	}
	return loadedDocument{doc: doc, row: row, head: head}, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

type documentRequest struct {
	Name           string `json:"name"`
	Content        string `json:"content"`
	DocumentFormat string `json:"documentFormat"`
	DocumentType   string `json:"documentType"`
}

// Document types we store.
const (
	documentTypeCommand = "Command"
	documentTypeSession = "Session"
)

// parsedContent is validated document content: one of the two parses.
type parsedContent struct {
	docType string
	format  string
	command *document.Document
	session *document.SessionDocument
}

func (p parsedContent) schemaAndDescription() (string, string) {
	if p.session != nil {
		return p.session.SchemaVersion, p.session.Description
	}
	return p.command.SchemaVersion, p.command.Description
}

// parseDocumentContent validates submitted content, naming the problem.
func parseDocumentContent(req documentRequest) (parsedContent, error) {
	switch req.DocumentType {
	case "", documentTypeCommand:
		req.DocumentType = documentTypeCommand
	case documentTypeSession:
	default:
		return parsedContent{}, badRequest("documentType", "documentType %q is not supported; use Command or Session", truncate(req.DocumentType, 30))
	}
	format := document.Format(strings.ToUpper(req.DocumentFormat))
	switch format {
	case document.FormatJSON, document.FormatYAML:
	case "":
		format = document.FormatJSON
		if !strings.HasPrefix(strings.TrimSpace(req.Content), "{") {
			format = document.FormatYAML
		}
	default:
		return parsedContent{}, badRequest("documentFormat", "documentFormat must be JSON or YAML")
	}
	if strings.TrimSpace(req.Content) == "" {
		return parsedContent{}, badRequest("content", "content is required")
	}
	p := parsedContent{docType: req.DocumentType, format: string(format)}
	var err error
	if p.docType == documentTypeSession {
		p.session, err = document.ParseSession([]byte(req.Content), format)
	} else {
		p.command, err = document.Parse([]byte(req.Content), format)
	}
	if err != nil {
		return parsedContent{}, &Error{Status: http.StatusBadRequest, Code: "InvalidDocumentContent", Field: "content", Message: err.Error()}
	}
	return p, nil
}

func (s *Server) createDocument(c *gin.Context) {
	var req documentRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	auditAs(c, "document.create", "document/"+truncate(req.Name, 128))
	if err := document.ValidateName(req.Name, false); err != nil || document.IsBuiltin(req.Name) {
		msg := "name is taken by a built-in document"
		if err != nil {
			msg = err.Error()
		}
		fail(c, badRequest("name", "%s", msg))
		return
	}
	parsed, err := parseDocumentContent(req)
	if err != nil {
		fail(c, err)
		return
	}
	schema, description := parsed.schemaAndDescription()
	row := store.Document{Name: req.Name, DocumentType: parsed.docType, DocumentFormat: parsed.format, SchemaVersion: schema,
		Description: truncate(description, 1024), Content: req.Content, Hash: sha256Hex([]byte(req.Content)),
		CreatedBy: actor(c), CreatedAt: s.cfg.Now().UTC()}
	if err := s.cfg.Store.CreateDocument(c.Request.Context(), &row); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			fail(c, &Error{Status: http.StatusConflict, Code: "DocumentAlreadyExists", Field: "name", Message: "document " + req.Name + " already exists; update it to add a version"})
			return
		}
		fail(c, err)
		return
	}
	d := loadedDocument{doc: parsed.command, session: parsed.session, row: row, head: store.DocumentHead{Name: row.Name, DefaultVersion: 1, LatestVersion: 1}}
	c.JSON(http.StatusCreated, gin.H{"document": d.json(false)})
}

func (s *Server) updateDocument(c *gin.Context) {
	name := c.Param("name")
	auditAs(c, "document.update", "document/"+truncate(name, 128))
	var req documentRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if req.Name != "" && req.Name != name {
		fail(c, badRequest("name", "name in the body must match the URL or be omitted"))
		return
	}
	if document.IsBuiltin(name) {
		fail(c, &Error{Status: http.StatusForbidden, Code: "AccessDenied", Message: "built-in documents cannot be changed"})
		return
	}
	if _, head, err := s.cfg.Store.GetDocument(c.Request.Context(), name, 0); err == nil {
		if req.DocumentType != "" && req.DocumentType != head.DocumentType {
			fail(c, badRequest("documentType", "document %s is a %s document; a new version cannot change its type", truncate(name, 130), head.DocumentType))
			return
		}
		req.DocumentType = head.DocumentType
	}
	parsed, err := parseDocumentContent(req)
	if err != nil {
		fail(c, err)
		return
	}
	schema, description := parsed.schemaAndDescription()
	row := store.Document{Name: name, DocumentType: parsed.docType, DocumentFormat: parsed.format, SchemaVersion: schema,
		Description: truncate(description, 1024), Content: req.Content, Hash: sha256Hex([]byte(req.Content)),
		CreatedBy: actor(c), CreatedAt: s.cfg.Now().UTC()}
	switch err := s.cfg.Store.UpdateDocument(c.Request.Context(), &row); {
	case errors.Is(err, store.ErrNotFound):
		fail(c, notFound("InvalidDocument", "document %s does not exist", truncate(name, 130)))
		return
	case errors.Is(err, store.ErrAlreadyExists):
		fail(c, &Error{Status: http.StatusBadRequest, Code: "DuplicateDocumentContent", Field: "content", Message: "the content is identical to the latest version"})
		return
	case err != nil:
		fail(c, err)
		return
	}
	d, err := s.loadDocument(c.Request.Context(), name, row.Version)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"document": d.json(false)})
}

func (s *Server) getDocument(c *gin.Context) {
	version, err := parseDocumentVersion("version", c.Query("version"))
	if err != nil {
		fail(c, err)
		return
	}
	d, err := s.loadDocument(c.Request.Context(), c.Param("name"), version)
	if err != nil {
		var apiErr *Error
		if errors.As(err, &apiErr) && apiErr.Code == "InvalidDocument" {
			apiErr.Status, apiErr.Field = http.StatusNotFound, ""
		}
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"document": d.json(true)})
}

func (s *Server) listDocuments(c *gin.Context) {
	max, token, err := pageParams(c)
	if err != nil {
		fail(c, err)
		return
	}
	prefix := c.Query("namePrefix")
	if err := validateText("namePrefix", prefix, 128); err != nil {
		fail(c, err)
		return
	}
	var out []documentJSON
	// Built-ins come first, on the first page only.
	if token == "" && c.Query("owner") != ownerSelf {
		for _, n := range document.BuiltinNames() {
			if strings.HasPrefix(n, prefix) {
				d, err := s.loadDocument(c.Request.Context(), n, 0)
				if err != nil {
					fail(c, err)
					return
				}
				out = append(out, d.json(false))
			}
		}
	}
	var next string
	if c.Query("owner") != ownerBuiltin {
		var heads []store.DocumentHead
		heads, next, err = s.cfg.Store.ListDocuments(c.Request.Context(), store.DocumentFilter{DocumentType: c.Query("documentType"), NamePrefix: prefix, MaxResults: max, NextToken: token})
		if err != nil {
			fail(c, err)
			return
		}
		for _, h := range heads {
			d, err := s.loadDocument(c.Request.Context(), h.Name, 0)
			if err != nil {
				fail(c, err)
				return
			}
			out = append(out, d.json(false))
		}
	}
	if out == nil {
		out = []documentJSON{}
	}
	c.JSON(http.StatusOK, gin.H{"documents": out, "nextToken": next})
}

func (s *Server) documentVersions(c *gin.Context) {
	name := c.Param("name")
	type versionJSON struct {
		DocumentVersion  string    `json:"documentVersion"`
		IsDefaultVersion bool      `json:"isDefaultVersion"`
		CreatedDate      time.Time `json:"createdDate"`
		DocumentFormat   string    `json:"documentFormat"`
		Hash             string    `json:"hash"`
		CreatedBy        string    `json:"createdBy"`
	}
	if document.IsBuiltin(name) {
		d, err := s.loadDocument(c.Request.Context(), name, 0)
		if err != nil {
			fail(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"versions": []versionJSON{{DocumentVersion: "1", IsDefaultVersion: true, DocumentFormat: d.row.DocumentFormat, Hash: d.row.Hash}}})
		return
	}
	_, head, err := s.cfg.Store.GetDocument(c.Request.Context(), name, 0)
	if err == nil {
		var rows []store.Document
		if rows, err = s.cfg.Store.DocumentVersions(c.Request.Context(), name); err == nil {
			out := make([]versionJSON, 0, len(rows))
			for _, r := range rows {
				out = append(out, versionJSON{DocumentVersion: strconv.Itoa(r.Version), IsDefaultVersion: r.Version == head.DefaultVersion,
					CreatedDate: r.CreatedAt.UTC(), DocumentFormat: r.DocumentFormat, Hash: r.Hash, CreatedBy: r.CreatedBy})
			}
			c.JSON(http.StatusOK, gin.H{"versions": out})
			return
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		err = notFound("InvalidDocument", "document %s does not exist", truncate(name, 130))
	}
	fail(c, err)
}

func (s *Server) setDefaultDocumentVersion(c *gin.Context) {
	name := c.Param("name")
	auditAs(c, "document.setDefaultVersion", "document/"+truncate(name, 128))
	var req struct {
		DocumentVersion string `json:"documentVersion"`
	}
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	v, err := parseDocumentVersion("documentVersion", req.DocumentVersion)
	if err == nil && v <= 0 {
		err = badRequest("documentVersion", "documentVersion must be a version number")
	}
	if err != nil {
		fail(c, err)
		return
	}
	if err := s.cfg.Store.SetDefaultDocumentVersion(c.Request.Context(), name, v); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = notFound("InvalidDocumentVersion", "document %s has no version %d", truncate(name, 130), v)
		}
		fail(c, err)
		return
	}
	d, err := s.loadDocument(c.Request.Context(), name, v)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"document": d.json(false)})
}

func (s *Server) deleteDocument(c *gin.Context) {
	name := c.Param("name")
	auditAs(c, "document.delete", "document/"+truncate(name, 128))
	if document.IsBuiltin(name) {
		fail(c, &Error{Status: http.StatusForbidden, Code: "AccessDenied", Message: "built-in documents cannot be deleted"})
		return
	}
	version := 0
	if v := c.Query("version"); v != "" {
		n, err := parseDocumentVersion("version", v)
		if err == nil && n <= 0 {
			err = badRequest("version", "version must be a version number")
		}
		if err != nil {
			fail(c, err)
			return
		}
		version = n
	}
	if err := s.cfg.Store.DeleteDocument(c.Request.Context(), name, version); err != nil {
		switch {
		case errors.Is(err, store.ErrNotFound):
			err = notFound("InvalidDocument", "document %s (version %d) does not exist", truncate(name, 130), version)
		case errors.Is(err, store.ErrInvalidArgument):
			err = badRequest("version", "the default version cannot be deleted; make another version the default first")
		}
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
