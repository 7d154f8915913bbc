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
	PartsIn          *prometheus.CounterVec // point: chunks published as parts of open fragments
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
	f := NewFactory(r)
	m := &Metrics{
		Registry:     r,
		FragmentsIn:  f.CounterVec("sluice_fragments_in_total", "Fragments received by ingest, by publishing point and result.", "point", "result"),
		BytesIn:      f.CounterVec("sluice_ingest_bytes_total", "Fragment bytes received by ingest.", "point"),
		PartsIn:      f.CounterVec("sluice_parts_in_total", "Chunks of a chunked push published as parts of a fragment still being received, by publishing point.", "point"),
		IngestErrors: f.CounterVec("sluice_ingest_errors_total", "Ingest requests refused or aborted, by HTTP status.", "point", "status"),
		ActivePushes: f.Gauge("sluice_active_pushes", "Encoder push requests in progress."),
		Pushes: f.CounterVec("sluice_ingest_pushes_total", "Finished pushes by publishing point and final HTTP status (200: the body was consumed to its end, or the encoder closed the connection right after the end of stream).",
			"point", "status"),
		Restarts: f.CounterVec("sluice_encoder_restarts_total", "Encoder restarts detected (a push whose times go back into what is stored), by publishing point and the policy applied (continue, archive, refuse).",
			"point", "policy"),
		Requests:        f.CounterVec("sluice_requests_total", "Client requests by kind (manifest, fragment, part, init, pull, other) and status code.", "kind", "code"),
		BytesOut:        f.CounterVec("sluice_bytes_out_total", "Response body bytes sent to clients, by kind.", "kind"),
		FragmentsPruned: f.Counter("sluice_fragments_pruned_total", "Fragments deleted by archive retention."),
		PullConnections: f.Gauge("sluice_pull_connections", "Open Streams() pulls served by this ingest."),
		ManifestRenderNs: f.HistogramVec("sluice_manifest_render_seconds", "Time to render a manifest.",
			prometheus.ExponentialBuckets(20e-6, 2.5, 10), "format"),
		PacingResponses: f.CounterVec("sluice_pacing_responses_total", "Media responses by what decided their pacing (spec, rtp, estimate; first, probe, urgent, off, none, shared: unpaced).",
			"source"),
		PacingBytes: f.CounterVec("sluice_pacing_bytes_total", "Media response body bytes sent paced and unpaced.", "pacing"),
		PacingRate: f.HistogramVec("sluice_pacing_rate_bits_per_second", "Pacing rates applied to media responses (SO_MAX_PACING_RATE, TCP payload).",
			prometheus.ExponentialBuckets(250e3, 2, 14), "source"),
		PacingRetrans: f.HistogramVec("sluice_pacing_retransmits_per_response", "Retransmitted segments per media response (TCP_INFO, counted when the next request on the connection starts).",
			[]float64{0, 1, 2, 5, 10, 20, 50, 100, 200, 500}, "pacing"),
		PacingMalformed: f.Counter("sluice_pacing_malformed_total", "Media requests whose CMCD or Sluice-Pacing input was (partly) malformed and ignored."),
		PacingCPU:       f.Gauge("sluice_pacing_cpu_load", "Machine CPU load (0..1) as the pacer sees it (/proc/stat, smoothed)."),
	}
	f.Register(collectors.NewGoCollector())
	f.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := f.Err(); err != nil {
		panic(err) // a fresh registry: only a programming error gets here
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
