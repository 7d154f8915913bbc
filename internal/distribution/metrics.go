package distribution

import "github.com/prometheus/client_golang/prometheus"

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
	m := &metricSet{
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_distribution_upstream_requests_total",
			Help: "Requests to origins, by origin and outcome (ok, 4xx, 304, 5xx, error, broken, resumed, resume_refused, 404_retry).",
		}, []string{"origin", "outcome"}),
		upstreamBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_distribution_upstream_bytes_total", Help: "Response body bytes received from origins.",
		}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_distribution_failovers_total", Help: "Upstream attempts made on a further origin within one fetch.",
		}),
		originUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_distribution_origin_up", Help: "1 while the origin's circuit breaker is closed, 0 during its back-off.",
		}, []string{"origin"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_distribution_cache_lookups_total",
			Help: "Client requests by object kind and cache result (hit, miss, coalesced, stale).",
		}, []string{"kind", "result"}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_distribution_coalesced_waiters_total",
			Help: "Client requests that joined an upstream fetch already in progress instead of making their own.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_distribution_refused_total",
			Help: "Requests answered 404 without going upstream, by reason.",
		}, []string{"reason"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_distribution_cache_evictions_total",
			Help: "Cache entries dropped, by reason (budget, window, expired).",
		}, []string{"reason"}),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_distribution_served_bytes_total",
			Help: "Body bytes sent to clients, by source (cache, upstream: streamed from a fetch in progress).",
		}, []string{"source"}),
	}
	objs := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_distribution_cache_objects", Help: "Entries in the cache.",
	}, func() float64 { n, _ := objects(); return float64(n) })
	bytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_distribution_cache_bytes", Help: "Bytes held by the cache (bodies plus overhead).",
	}, func() float64 { _, b := objects(); return float64(b) })
	fl := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_distribution_upstream_in_flight", Help: "Upstream fetches in progress.",
	}, func() float64 { return float64(inFlight()) })
	for _, c := range []prometheus.Collector{m.upstream, m.upstreamBytes, m.failovers, m.originUp, m.lookups,
		m.coalesced, m.refused, m.evictions, m.served, objs, bytes, fl} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
