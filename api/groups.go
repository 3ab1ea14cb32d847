package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fleetops/fleetops/internal/store"
)

// A resource group is a saved tag query: filters ANDed across keys, values
// ORed within a filter, a filter without values matching key presence.
type groupJSON struct {
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Query       []store.TagFilter `json:"query"`
	CreatedAt   time.Time         `json:"createdAt"`
}

type createGroupRequest struct {
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Query       []store.TagFilter `json:"query"`
}

func (s *Server) createGroup(c *gin.Context) {
	auditAs(c, "CreateGroup", "")
	var req createGroupRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	auditAs(c, "CreateGroup", "group/"+truncate(req.Name, 128))
	if err := validateName("name", req.Name); err != nil {
		fail(c, err)
		return
	}
	if err := validateText("description", req.Description, 512); err != nil {
		fail(c, err)
		return
	}
	if err := validateQuery(req.Query); err != nil {
		fail(c, err)
		return
	}
	q, err := json.Marshal(req.Query)
	if err != nil {
		fail(c, err)
		return
	}
	g := &store.ResourceGroup{Name: req.Name, Description: req.Description, Query: string(q), CreatedAt: s.cfg.Now().UTC()}
	if err := s.cfg.Store.CreateGroup(c.Request.Context(), g); err != nil {
		if apiErr := classify(err); apiErr.Status == http.StatusConflict {
			err = &Error{Status: http.StatusConflict, Code: "AlreadyExistsException", Field: "name", Message: "a group named " + req.Name + " already exists"}
		}
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, toGroupJSON(*g))
}

func validateQuery(q []store.TagFilter) error {
	if len(q) == 0 || len(q) > 5 {
		return badRequest("query", "query must hold 1 to 5 tag filters")
	}
	seen := map[string]bool{}
	for _, f := range q {
		if err := validateTagKey("query.key", f.Key); err != nil {
			return err
		}
		if seen[f.Key] {
			return badRequest("query.key", "tag key %q appears twice; list its values in one filter", truncate(f.Key, 40))
		}
		seen[f.Key] = true
		if len(f.Values) > 50 {
			return badRequest("query.values", "at most 50 values per tag filter")
		}
		for _, v := range f.Values {
			if err := validateTagValue("query.values", v); err != nil {
				return err
			}
		}
	}
	return nil
}

func toGroupJSON(g store.ResourceGroup) groupJSON {
	q, _ := g.Filters() // validated on the way in
	return groupJSON{Name: g.Name, Description: g.Description, Query: q, CreatedAt: g.CreatedAt.UTC()}
}

func (s *Server) groupParam(c *gin.Context) (string, bool) {
	name := c.Param("name")
	if err := validateName("name", name); err != nil {
		fail(c, err)
		return "", false
	}
	return name, true
}

func groupError(err error, name string) error {
	return notFoundAs(err, "DoesNotExistException", "group %s does not exist", name)
}

func (s *Server) listGroups(c *gin.Context) {
	list, err := s.cfg.Store.ListGroups(c)
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]groupJSON, 0, len(list))
	for _, g := range list {
		out = append(out, toGroupJSON(g))
	}
	c.JSON(http.StatusOK, gin.H{"groups": out})
}

func (s *Server) getGroup(c *gin.Context) {
	name, ok := s.groupParam(c)
	if !ok {
		return
	}
	g, err := s.cfg.Store.GetGroup(c.Request.Context(), name)
	if err != nil {
		fail(c, groupError(err, name))
		return
	}
	c.JSON(http.StatusOK, toGroupJSON(*g))
}

func (s *Server) deleteGroup(c *gin.Context) {
	name, ok := s.groupParam(c)
	if !ok {
		return
	}
	auditAs(c, "DeleteGroup", "group/"+name)
	if err := s.cfg.Store.DeleteGroup(c.Request.Context(), name); err != nil {
		fail(c, groupError(err, name))
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) groupMembers(c *gin.Context) {
	name, ok := s.groupParam(c)
	if !ok {
		return
	}
	g, err := s.cfg.Store.GetGroup(c.Request.Context(), name)
	if err != nil {
		fail(c, groupError(err, name))
		return
	}
	q, err := g.Filters()
	if err != nil {
		fail(c, err)
		return
	}
	f := store.InstanceFilter{Tags: q}
	f.MaxResults, f.NextToken, err = pageParams(c)
	listPage(c, err, s.cfg.Store.ListInstances, f, "instances", toInstanceJSON)
}
