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
	for _, c := range append([]prometheus.Collector{m.requestDuration, m.registrations, m.forwards}, storeCollectors(st)...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// countCollector reports a store count by status as a gauge at scrape
// time, so every replica reports the same fleet-wide figure. Every status
// in statuses is reported, zero included.
type countCollector struct {
	desc     *prometheus.Desc
	statuses []string
	count    func(ctx context.Context) (map[string]int, error)
}

func (cc *countCollector) Describe(ch chan<- *prometheus.Desc) { ch <- cc.desc }

func (cc *countCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := cc.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(cc.desc, err)
		return
	}
	for _, st := range cc.statuses {
		ch <- prometheus.MustNewConstMetric(cc.desc, prometheus.GaugeValue, float64(counts[st]), st)
	}
}

// storeCollectors are the fleet-wide gauges read from the store.
func storeCollectors(st Store) []prometheus.Collector {
	return []prometheus.Collector{
		&countCollector{
			desc:     prometheus.NewDesc("fleetops_nodes", "Managed nodes by ping status.", []string{"ping_status"}, nil),
			statuses: []string{store.PingOnline, store.PingConnectionLost, store.PingInactive},
			count:    func(ctx context.Context) (map[string]int, error) { return st.CountInstancesBy(ctx, "ping_status") },
		},
		&countCollector{
			desc:     prometheus.NewDesc("fleetops_commands", "Commands by status.", []string{"status"}, nil),
			statuses: []string{"Pending", "InProgress", "Success", "Cancelled", "Failed", "TimedOut", "Cancelling"},
			count:    st.CountCommandsByStatus,
		},
		&countCollector{
			desc:     prometheus.NewDesc("fleetops_sessions", "Sessions that have not ended, by status.", []string{"status"}, nil),
			statuses: []string{store.SessionConnecting, store.SessionConnected, store.SessionDisconnected, store.SessionTerminating},
			count:    st.CountActiveSessionsByStatus,
		},
		&invocationCollector{store: st},
	}
}

// invocationCollector reports the invocations in flight and queued for
// offline nodes, from the store at scrape time.
type invocationCollector struct{ store Store }

var (
	inFlightDesc      = prometheus.NewDesc("fleetops_invocations_in_flight", "Invocations delivered to a node and not finished.", nil, nil)
	queuedOfflineDesc = prometheus.NewDesc("fleetops_invocations_queued_offline", "Invocations waiting in the outbox for a node that is not connected.", nil, nil)
)

func (ic *invocationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- inFlightDesc
	ch <- queuedOfflineDesc
}

func (ic *invocationCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	inFlight, queued, err := ic.store.InvocationGauges(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(inFlightDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(inFlight))
	ch <- prometheus.MustNewConstMetric(queuedOfflineDesc, prometheus.GaugeValue, float64(queued))
}

// hostMatches reports whether a download name asks for this server's own
// platform, whose plain fleetops-agent build can then be served.
func hostMatches(name string) bool {
	return name == "fleetops-agent-linux-"+runtime.GOARCH
}
