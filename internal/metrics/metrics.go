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
	Pushes           *prometheus.CounterVec // point, status: every finished push by its final status
	Restarts         *prometheus.CounterVec // point, policy: encoder restarts detected
	Requests         *prometheus.CounterVec // kind, code
	BytesOut         *prometheus.CounterVec // kind
	FragmentsPruned  prometheus.Counter
	PullConnections  prometheus.Gauge
	ManifestRenderNs *prometheus.HistogramVec // format

	// Pacing of media responses (internal/pacing).
	PacingResponses *prometheus.CounterVec   // source (spec, rtp, estimate, first, probe, urgent, off, none, shared)
	PacingBytes     *prometheus.CounterVec   // pacing (paced, unpaced)
	PacingRate      *prometheus.HistogramVec // source; applied rate in bit/s
	PacingRetrans   *prometheus.HistogramVec // pacing; retransmitted segments per response
	PacingMalformed prometheus.Counter
	PacingCPU       prometheus.Gauge
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
		Pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_ingest_pushes_total", Help: "Finished pushes by publishing point and final HTTP status (200: the body was consumed to its end, or the encoder closed the connection right after the end of stream).",
		}, []string{"point", "status"}),
		Restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_encoder_restarts_total", Help: "Encoder restarts detected (a push whose times go back into what is stored), by publishing point and the policy applied (continue, archive, refuse).",
		}, []string{"point", "policy"}),
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
		PacingResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_pacing_responses_total", Help: "Media responses by what decided their pacing (spec, rtp, estimate; first, probe, urgent, off, none, shared: unpaced).",
		}, []string{"source"}),
		PacingBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_pacing_bytes_total", Help: "Media response body bytes sent paced and unpaced.",
		}, []string{"pacing"}),
		PacingRate: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_pacing_rate_bits_per_second", Help: "Pacing rates applied to media responses (SO_MAX_PACING_RATE, TCP payload).",
			Buckets: prometheus.ExponentialBuckets(250e3, 2, 14),
		}, []string{"source"}),
		PacingRetrans: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_pacing_retransmits_per_response", Help: "Retransmitted segments per media response (TCP_INFO, counted when the next request on the connection starts).",
			Buckets: []float64{0, 1, 2, 5, 10, 20, 50, 100, 200, 500},
		}, []string{"pacing"}),
		PacingMalformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_pacing_malformed_total", Help: "Media requests whose CMCD or Sluice-Pacing input was (partly) malformed and ignored.",
		}),
		PacingCPU: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_pacing_cpu_load", Help: "Machine CPU load (0..1) as the pacer sees it (/proc/stat, smoothed).",
		}),
	}
	r.MustRegister(m.FragmentsIn, m.BytesIn, m.IngestErrors, m.ActivePushes, m.Pushes, m.Restarts, m.Requests, m.BytesOut,
		m.FragmentsPruned, m.PullConnections, m.ManifestRenderNs,
		m.PacingResponses, m.PacingBytes, m.PacingRate, m.PacingRetrans, m.PacingMalformed, m.PacingCPU,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
