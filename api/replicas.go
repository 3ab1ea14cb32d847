package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/fleetops/fleetops/agent/agentproto"
	"github.com/fleetops/fleetops/internal/store"
)

// headerForwardedBy marks a request one replica forwarded to another; a
// forwarded request is never forwarded again, so a stale route cannot loop.
const headerForwardedBy = "X-Fleetops-Forwarded-By"

// forwardStream forwards a client's session stream to the replica holding
// the session's node, when that is another replica. It reports whether it
// answered the request. The token is left for that replica to consume.
func (s *Server) forwardStream(c *gin.Context, sessionID string) bool {
	if s.cfg.ReplicaURL == "" || s.cfg.SessionBridge.Bridges(sessionID) {
		return false
	}
	sess, err := s.cfg.Store.GetSession(c.Request.Context(), sessionID)
	if err != nil {
		return false // the token check answers unknown sessions
	}
	return s.forwardToAgentReplica(c, sess.Target, "stream")
}

// forwardToAgentReplica proxies the request (a WebSocket upgrade) to the
// replica that holds instanceID's control connection, if that is not this
// one. It reports whether it answered the request; kind labels the metric.
func (s *Server) forwardToAgentReplica(c *gin.Context, instanceID, kind string) bool {
	if s.cfg.ReplicaURL == "" || c.GetHeader(headerForwardedBy) != "" || s.cfg.Gateway.IsConnected(instanceID) {
		return false
	}
	replica, err := s.cfg.Store.GetAgentRoute(c.Request.Context(), instanceID)
	if errors.Is(err, store.ErrNotFound) || replica == s.cfg.ReplicaURL {
		return false // not connected anywhere: the bridge says so
	}
	if err != nil {
		fail(c, err)
		return true
	}
	target, err := url.Parse(replica)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		s.log.Error("unusable agent route", "instanceId", instanceID, "route", replica)
		return false
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(headerForwardedBy, s.cfg.ReplicaURL)
		},
		Transport: s.cfg.ReplicaTransport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			s.log.Warn("forward to the agent's replica", "instanceId", instanceID, "replica", replica, "err", err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			_ = json.NewEncoder(w).Encode(agentproto.ErrorResponse{Error: agentproto.ErrorBody{
				Code: "ReplicaUnavailable", Message: "the server replica holding the node's connection cannot be reached; retry",
			}})
		},
	}
	s.metrics.forwards.WithLabelValues(kind).Inc()
	proxy.ServeHTTP(c.Writer, c.Request)
	c.Abort()
	return true
}
