package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/store"
)

// instanceJSON is a managed node as the API shows it (SSM's
// InstanceInformation, in lowerCamel).
type instanceJSON struct {
	InstanceID      string            `json:"instanceId"`
	Name            string            `json:"name"`
	Hostname        string            `json:"hostname"`
	PingStatus      string            `json:"pingStatus"`
	LastPingAt      time.Time         `json:"lastPingAt"`
	PlatformType    string            `json:"platformType"`
	PlatformName    string            `json:"platformName"`
	PlatformVersion string            `json:"platformVersion"`
	Kernel          string            `json:"kernel"`
	Architecture    string            `json:"architecture"`
	IPAddresses     []string          `json:"ipAddresses"`
	AgentVersion    string            `json:"agentVersion"`
	ActivationID    string            `json:"activationId"`
	RegisteredAt    time.Time         `json:"registeredAt"`
	Tags            map[string]string `json:"tags"`
}

func toInstanceJSON(in store.Instance) instanceJSON {
	ips := in.IPs()
	if ips == nil {
		ips = []string{}
	}
	return instanceJSON{
		InstanceID:      in.InstanceID,
		Name:            in.Name,
		Hostname:        in.Hostname,
		PingStatus:      in.PingStatus,
		LastPingAt:      in.LastPingAt.UTC(),
		PlatformType:    in.PlatformType,
		PlatformName:    in.PlatformName,
		PlatformVersion: in.PlatformVersion,
		Kernel:          in.Kernel,
		Architecture:    in.Architecture,
		IPAddresses:     ips,
		AgentVersion:    in.AgentVersion,
		ActivationID:    in.ActivationID,
		RegisteredAt:    in.RegisteredAt.UTC(),
		Tags:            in.TagMap(),
	}
}

var pingStatuses = map[string]bool{store.PingOnline: true, store.PingConnectionLost: true, store.PingInactive: true}

// listInstances filters by pingStatus, platformType, platformName (each
// repeatable or comma-separated), tag=Key=V1,V2 and tagKey=Key (repeatable,
// ANDed).
func (s *Server) listInstances(c *gin.Context) {
	q := listQuery{c: c}
	var f store.InstanceFilter
	f.MaxResults, f.NextToken = q.page()
	f.PingStatuses = q.oneOf("pingStatus", pingStatuses, "pingStatus %q must be Online, ConnectionLost or Inactive")
	if q.err != nil {
		fail(c, q.err)
		return
	}
	f.PlatformTypes = multiQuery(c, "platformType")
	f.PlatformNames = c.QueryArray("platformName")
	for _, id := range multiQuery(c, "instanceId") {
		if !agentproto.ValidInstanceID(id) {
			fail(c, badRequest("instanceId", "instance ID %q must look like mi-0123456789abcdef0", truncate(id, 30)))
			return
		}
		f.InstanceIDs = append(f.InstanceIDs, id)
	}
	for _, t := range c.QueryArray("tag") {
		k, vals, err := parseTagFilter("tag", t)
		if err != nil {
			fail(c, err)
			return
		}
		if vals == nil {
			fail(c, badRequest("tag", "tag filter %q must be Key=Value[,Value...]; use tagKey for key presence", truncate(t, 40)))
			return
		}
		f.Tags = append(f.Tags, store.TagFilter{Key: k, Values: vals})
	}
	for _, k := range c.QueryArray("tagKey") {
		if err := validateTagKey("tagKey", k); err != nil {
			fail(c, err)
			return
		}
		f.Tags = append(f.Tags, store.TagFilter{Key: k})
	}
	if len(f.Tags) > 5 {
		fail(c, badRequest("tag", "at most 5 tag filters"))
		return
	}
	listPage(c, nil, s.cfg.Store.ListInstances, f, "instances", toInstanceJSON)
}

// multiQuery reads a query parameter given several times or comma-separated.
func multiQuery(c *gin.Context, name string) []string {
	var out []string
	for _, v := range c.QueryArray(name) {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// instanceParam validates the :id path parameter.
func instanceParam(c *gin.Context) (string, bool) {
	id := c.Param("id")
	if !agentproto.ValidInstanceID(id) {
		fail(c, badRequest("instanceId", "instance ID %q must look like mi-0123456789abcdef0", truncate(id, 30)))
		return "", false
	}
	return id, true
}

func (s *Server) getInstance(c *gin.Context) {
	id, ok := instanceParam(c)
	if !ok {
		return
	}
	s.writeInstance(c, id)
}

func (s *Server) writeInstance(c *gin.Context, id string) {
	in, err := s.cfg.Store.GetInstance(c.Request.Context(), id)
	if err != nil {
		fail(c, instanceError(err, id))
		return
	}
	c.JSON(http.StatusOK, toInstanceJSON(*in))
}

func instanceError(err error, id string) error {
	return notFoundAs(err, "InvalidInstanceId", "instance %s does not exist", id)
}

type tagRequest struct {
	Tags map[string]string `json:"tags"`
}

func (s *Server) tagInstance(c *gin.Context) {
	id, ok := instanceParam(c)
	if !ok {
		return
	}
	auditAs(c, "AddTagsToResource", "instance/"+id)
	var req tagRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if len(req.Tags) == 0 {
		fail(c, badRequest("tags", "tags must hold at least one Key: Value"))
		return
	}
	if err := validateTags("tags", req.Tags); err != nil {
		fail(c, err)
		return
	}
	if err := s.cfg.Store.TagInstance(c.Request.Context(), id, req.Tags); err != nil {
		fail(c, instanceError(err, id))
		return
	}
	s.writeInstance(c, id)
}

type untagRequest struct {
	Keys []string `json:"keys"`
}

func (s *Server) untagInstance(c *gin.Context) {
	id, ok := instanceParam(c)
	if !ok {
		return
	}
	auditAs(c, "RemoveTagsFromResource", "instance/"+id)
	var req untagRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if len(req.Keys) == 0 || len(req.Keys) > maxTagsPerResource {
		fail(c, badRequest("keys", "keys must list 1 to %d tag keys", maxTagsPerResource))
		return
	}
	for _, k := range req.Keys {
		if err := validateTagKey("keys", k); err != nil {
			fail(c, err)
			return
		}
	}
	if err := s.cfg.Store.UntagInstance(c.Request.Context(), id, req.Keys); err != nil {
		fail(c, instanceError(err, id))
		return
	}
	s.writeInstance(c, id)
}

func (s *Server) deregisterInstance(c *gin.Context) {
	id, ok := instanceParam(c)
	if !ok {
		return
	}
	auditAs(c, "DeregisterManagedInstance", "instance/"+id)
	if err := s.cfg.Store.DeregisterInstance(c.Request.Context(), id); err != nil {
		fail(c, instanceError(err, id))
		return
	}
	// This replica may hold the connection; others notice at the next
	// heartbeat flush, when the store reports the node Inactive.
	s.cfg.Gateway.Kick(id, "instance deregistered")
	s.writeInstance(c, id)
}

func (s *Server) fleetSummary(c *gin.Context) {
	byStatus, err := s.cfg.Store.CountInstancesBy(c.Request.Context(), "ping_status")
	if err != nil {
		fail(c, err)
		return
	}
	byPlatform, err := s.cfg.Store.CountInstancesBy(c.Request.Context(), "platform_name")
	if err != nil {
		fail(c, err)
		return
	}
	total := 0
	for _, n := range byStatus {
		total += n
	}
	c.JSON(http.StatusOK, gin.H{"total": total, "byPingStatus": byStatus, "byPlatform": byPlatform})
}
