// Package metrics holds the Prometheus metrics of one Sluice process, in a
// registry of its own (no global state), and serves them at /metrics.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the counters and gauges every role updates.
type Metrics struct {
	Registry *prometheus.Registry

	FragmentsIn      *prometheus.CounterVec // point, result (added, duplicate, differs)
	BytesIn          *prometheus.CounterVec // point
	IngestErrors     *prometheus.CounterVec // point, status
	ActivePushes     prometheus.Gauge
	Requests         *prometheus.CounterVec // kind, code
	BytesOut         *prometheus.CounterVec // kind
	FragmentsPruned  prometheus.Counter
	PullConnections  prometheus.Gauge
	ManifestRenderNs *prometheus.HistogramVec // format
}

// New creates the metrics in a fresh registry with the Go and process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		FragmentsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_fragments_in_total", Help: "Fragments received by ingest, by publishing point and result.",
		}, []string{"point", "result"}),
		BytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_ingest_bytes_total", Help: "Fragment bytes received by ingest.",
		}, []string{"point"}),
		IngestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_ingest_errors_total", Help: "Ingest requests refused or aborted, by HTTP status.",
		}, []string{"point", "status"}),
		ActivePushes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_active_pushes", Help: "Encoder push requests in progress.",
		}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_requests_total", Help: "Client requests by kind (manifest, fragment, init, pull, other) and status code.",
		}, []string{"kind", "code"}),
		BytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_bytes_out_total", Help: "Response body bytes sent to clients, by kind.",
		}, []string{"kind"}),
		FragmentsPruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_fragments_pruned_total", Help: "Fragments deleted by archive retention.",
		}),
		PullConnections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_pull_connections", Help: "Open Streams() pulls served by this ingest.",
		}),
		ManifestRenderNs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_manifest_render_seconds", Help: "Time to render a manifest.",
			Buckets: prometheus.ExponentialBuckets(20e-6, 2.5, 10),
		}, []string{"format"}),
	}
	r.MustRegister(m.FragmentsIn, m.BytesIn, m.IngestErrors, m.ActivePushes, m.Requests, m.BytesOut,
		m.FragmentsPruned, m.PullConnections, m.ManifestRenderNs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
