package distribution

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/metrics"
)

// metricSet is the distribution's Prometheus metrics, registered in the
// process registry (no global state).
type metricSet struct {
	upstream      *prometheus.CounterVec // origin, outcome
	upstreamBytes prometheus.Counter
	failovers     prometheus.Counter
	originUp      *prometheus.GaugeVec   // origin
	lookups       *prometheus.CounterVec // kind, result
	coalesced     prometheus.Counter
	refused       *prometheus.CounterVec // reason
	evictions     *prometheus.CounterVec // reason
	served        *prometheus.CounterVec // source
}

func newMetrics(reg prometheus.Registerer, objects func() (int, int64), inFlight func() int) (*metricSet, error) {
	f := metrics.NewFactory(reg)
	m := &metricSet{
		upstream:      f.CounterVec("sluice_distribution_upstream_requests_total", "Requests to origins, by origin and outcome (ok, 4xx, 304, 5xx, error, broken, resumed, resume_refused, 404_retry).", "origin", "outcome"),
		upstreamBytes: f.Counter("sluice_distribution_upstream_bytes_total", "Response body bytes received from origins."),
		failovers:     f.Counter("sluice_distribution_failovers_total", "Upstream attempts made on a further origin within one fetch."),
		originUp:      f.GaugeVec("sluice_distribution_origin_up", "1 while the origin's circuit breaker is closed, 0 during its back-off.", "origin"),
		lookups:       f.CounterVec("sluice_distribution_cache_lookups_total", "Client requests by object kind and cache result (hit, miss, coalesced, stale).", "kind", "result"),
		coalesced:     f.Counter("sluice_distribution_coalesced_waiters_total", "Client requests that joined an upstream fetch already in progress instead of making their own."),
		refused:       f.CounterVec("sluice_distribution_refused_total", "Requests answered 404 without going upstream, by reason.", "reason"),
		evictions:     f.CounterVec("sluice_distribution_cache_evictions_total", "Cache entries dropped, by reason (budget, window, expired).", "reason"),
		served:        f.CounterVec("sluice_distribution_served_bytes_total", "Body bytes sent to clients, by source (cache, upstream: streamed from a fetch in progress).", "source"),
	}
	f.GaugeFunc("sluice_distribution_cache_objects", "Entries in the cache.", func() float64 { n, _ := objects(); return float64(n) })
	f.GaugeFunc("sluice_distribution_cache_bytes", "Bytes held by the cache (bodies plus overhead).", func() float64 { _, b := objects(); return float64(b) })
	f.GaugeFunc("sluice_distribution_upstream_in_flight", "Upstream fetches in progress.", func() float64 { return float64(inFlight()) })
	if err := f.Err(); err != nil {
		return nil, err
	}
	return m, nil
}
