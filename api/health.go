package api

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetops/fleetops/internal/store"
)

func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz reports ready only when the database and Temporal answer.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	checks := gin.H{}
	ready := true
	if err := s.cfg.Store.Ping(ctx); err != nil {
		checks["database"] = "unavailable"
		ready = false
	} else {
		checks["database"] = "ok"
	}
	if s.cfg.Temporal != nil {
		if err := s.cfg.Temporal.CheckHealth(ctx); err != nil {
			checks["temporal"] = "unavailable"
			ready = false
		} else {
			checks["temporal"] = "ok"
		}
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, gin.H{"ready": ready, "checks": checks})
}

func (s *Server) consoleConfig(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"temporalUiUrl": s.cfg.TemporalUIURL, "version": s.cfg.Version})
}

func (s *Server) installScript(c *gin.Context) {
	if s.cfg.InstallFiles == nil {
		fail(c, notFound("NotFound", "install script not configured"))
		return
	}
	b, err := fs.ReadFile(s.cfg.InstallFiles, "install.sh")
	if err != nil {
		fail(c, err)
		return
	}
	c.Data(http.StatusOK, "text/x-shellscript; charset=utf-8", b)
}

var downloadName = regexp.MustCompile(`^fleetops-agent(-linux-(amd64|arm64))?$|^fleetops-agent\.service$`)

// download serves agent binaries from AgentBinaryDir and the systemd unit.
func (s *Server) download(c *gin.Context) {
	name := c.Param("file")
	if !downloadName.MatchString(name) {
		fail(c, notFound("NotFound", "no download named %q", truncate(name, 40)))
		return
	}
	if name == "fleetops-agent.service" && s.cfg.InstallFiles != nil {
		b, err := fs.ReadFile(s.cfg.InstallFiles, name)
		if err != nil {
			fail(c, err)
			return
		}
		c.Data(http.StatusOK, "text/plain; charset=utf-8", b)
		return
	}
	if s.cfg.AgentBinaryDir == "" {
		fail(c, notFound("NotFound", "agent binaries are not served by this server"))
		return
	}
	// fleetops-agent-linux-<arch> falls back to the plain build when it
	// matches this server's own platform.
	for _, candidate := range []string{name, "fleetops-agent"} {
		path := filepath.Join(s.cfg.AgentBinaryDir, candidate)
		if _, err := os.Stat(path); err == nil {
			if candidate != name && !hostMatches(name) {
				break
			}
			c.FileAttachment(path, name)
			return
		} else if !errors.Is(err, fs.ErrNotExist) {
			fail(c, err)
			return
		}
	}
	fail(c, notFound("NotFound", "no agent binary %s on this server", name))
}

type metrics struct {
	requestDuration *prometheus.HistogramVec
	registrations   *prometheus.CounterVec
	forwards        *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, st Store) (*metrics, error) {
	m := &metrics{
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fleetops_api_request_duration_seconds",
			Help:    "API request duration by method, route and status.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route", "status"}),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetops_registrations_total",
			Help: "Agent registration attempts by outcome.",
		}, []string{"outcome"}),
		forwards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetops_session_forwards_total",
			Help: "Session connections forwarded to the replica holding the node's agent, by kind: stream (an operator's) or data_channel (an agent's).",
		}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.requestDuration, m.registrations, m.forwards, &nodeCollector{store: st}, &commandCollector{store: st}, &sessionCollector{store: st}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// nodeCollector reports nodes by ping status from the store at scrape time,
// so every replica reports the same fleet-wide figure.
type nodeCollector struct{ store Store }

var nodesDesc = prometheus.NewDesc("fleetops_nodes", "Managed nodes by ping status.", []string{"ping_status"}, nil)

func (n *nodeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- nodesDesc }

func (n *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := n.store.CountInstancesBy(ctx, "ping_status")
	if err != nil {
		ch <- prometheus.NewInvalidMetric(nodesDesc, err)
		return
	}
	for _, st := range []string{"Online", "ConnectionLost", "Inactive"} {
		ch <- prometheus.MustNewConstMetric(nodesDesc, prometheus.GaugeValue, float64(counts[st]), st)
	}
}

// commandCollector reports commands by status and the invocations in flight
// and queued for offline nodes, from the store at scrape time.
type commandCollector struct{ store Store }

var (
	commandsDesc      = prometheus.NewDesc("fleetops_commands", "Commands by status.", []string{"status"}, nil)
	inFlightDesc      = prometheus.NewDesc("fleetops_invocations_in_flight", "Invocations delivered to a node and not finished.", nil, nil)
	queuedOfflineDesc = prometheus.NewDesc("fleetops_invocations_queued_offline", "Invocations waiting in the outbox for a node that is not connected.", nil, nil)
)

func (cc *commandCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- commandsDesc
	ch <- inFlightDesc
	ch <- queuedOfflineDesc
}

func (cc *commandCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := cc.store.CountCommandsByStatus(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(commandsDesc, err)
	} else {
		for _, st := range []string{"Pending", "InProgress", "Success", "Cancelled", "Failed", "TimedOut", "Cancelling"} {
			ch <- prometheus.MustNewConstMetric(commandsDesc, prometheus.GaugeValue, float64(counts[st]), st)
		}
	}
	inFlight, queued, err := cc.store.InvocationGauges(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(inFlightDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(inFlight))
	ch <- prometheus.MustNewConstMetric(queuedOfflineDesc, prometheus.GaugeValue, float64(queued))
}

// sessionCollector reports active sessions by status from the store at
// scrape time (fleet-wide, whichever replica bridges them).
type sessionCollector struct{ store Store }

var sessionsDesc = prometheus.NewDesc("fleetops_sessions", "Sessions that have not ended, by status.", []string{"status"}, nil)

func (sc *sessionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- sessionsDesc }

func (sc *sessionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := sc.store.CountActiveSessionsByStatus(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(sessionsDesc, err)
		return
	}
	for _, st := range []string{store.SessionConnecting, store.SessionConnected, store.SessionDisconnected, store.SessionTerminating} {
		ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(counts[st]), st)
	}
}

// hostMatches reports whether a download name asks for this server's own
// platform, whose plain fleetops-agent build can then be served.
func hostMatches(name string) bool {
	return name == "fleetops-agent-linux-"+runtime.GOARCH
}
