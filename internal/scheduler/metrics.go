package scheduler

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/cluster"
)

// metrics are the scheduler's Prometheus metrics.
type metrics struct {
	sessions      *prometheus.GaugeVec   // type (live, vod)
	sessionEvents *prometheus.CounterVec // event (opened, adopted, expired)
	manifests     *prometheus.CounterVec // format (dash, hls-master, hls-media), result
	pins          *prometheus.GaugeVec   // role (send, lookahead): pins this scheduler holds
	ops           *prometheus.CounterVec // op (lookahead, send, cancel)
	refused       *prometheus.CounterVec // reason (refused, missing)
	unpinned      prometheus.Counter
	batches       *prometheus.CounterVec   // sender, result (ok, error)
	batchSeconds  *prometheus.HistogramVec // lookahead (yes, no)
	sent          *prometheus.CounterVec   // source (ram, disk): sent reports
	sentBytes     prometheus.Counter
	liveSenders   prometheus.Gauge
	senderDown    *prometheus.CounterVec // sender
	tickSeconds   prometheus.Histogram

	// Mirrored from the senders' /internal/v1/stats.
	senderPinnedBlocks *prometheus.GaugeVec // sender
	senderPinnedBytes  *prometheus.GaugeVec
	senderRAMBytes     *prometheus.GaugeVec
	senderRAMBudget    *prometheus.GaugeVec
	senderSends        *prometheus.GaugeVec // sender, source (ram, disk)
	senderRefused      *prometheus.GaugeVec
	senderLeaseExpiry  *prometheus.GaugeVec
	ramHitRatio        prometheus.Gauge

	// Series resolved once (a label lookup hashes its values on every
	// call): ops by op, sent blocks by source (0 disk, 1 ram), manifests
	// by format and result.
	opCount   [opCancel + 1]prometheus.Counter
	sentCount [2]prometheus.Counter
	manifest  map[string][2]prometheus.Counter // format -> ok, error
}

// manifestFormats are the formats of sluice_scheduler_manifests_total.
var manifestFormats = []string{"dash", "hls-master", "hls-media", "hls-pathway", "steering"}

// manifestDone counts a manifest served.
func (m *metrics) manifestDone(format string, ok bool) {
	c, found := m.manifest[format]
	switch {
	case !found && ok:
		m.manifests.WithLabelValues(format, "ok").Inc()
	case !found:
		m.manifests.WithLabelValues(format, "error").Inc()
	case ok:
		c[0].Inc()
	default:
		c[1].Inc()
	}
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_scheduler_sessions", Help: "Sessions this scheduler holds, by type (live, vod).",
		}, []string{"type"}),
		sessionEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_scheduler_session_events_total", Help: "Sessions opened, adopted from another scheduler, and expired.",
		}, []string{"event"}),
		manifests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_scheduler_manifests_total", Help: "Per-session manifests served, by format and result.",
		}, []string{"format", "result"}),
		pins: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_scheduler_pins", Help: "Block reservations this scheduler holds at senders, by role (send, lookahead).",
		}, []string{"role"}),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_scheduler_ops_total", Help: "Requests sent to senders in batches, by op (lookahead, send, cancel).",
		}, []string{"op"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_scheduler_refused_total", Help: "Reservations a sender did not take, by reason (refused: RAM full of pinned blocks; missing: block not held).",
		}, []string{"reason"}),
		unpinned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_scheduler_unpinned_blocks_total", Help: "Region blocks every owner refused: served without a pin.",
		}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_scheduler_batches_total", Help: "Batch requests to senders, by sender and result.",
		}, []string{"sender", "result"}),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_scheduler_batch_seconds", Help: "Round trip of a batch request; with look-aheads (lookahead=yes) it includes the sender's preload from mass storage.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2},
		}, []string{"lookahead"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_scheduler_sent_blocks_total", Help: "Blocks senders reported sent to this scheduler's sessions, by source (ram, disk).",
		}, []string{"source"}),
		sentBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_scheduler_sent_bytes_total", Help: "Bytes senders reported sent to this scheduler's sessions.",
		}),
		liveSenders: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_scheduler_live_senders", Help: "Senders in the live set (members that answer).",
		}),
		senderDown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_scheduler_sender_down_total", Help: "Times a sender left the live set because it did not answer.",
		}, []string{"sender"}),
		tickSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_scheduler_tick_seconds", Help: "CPU-bound work of one timeslot: reconciling sessions and building batches.",
			Buckets: []float64{.0001, .0002, .0005, .001, .002, .005, .01, .02, .05, .1},
		}),
		senderPinnedBlocks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_cluster_sender_pinned_blocks", Help: "Blocks with a non-zero usage counter at a sender (its stats).",
		}, []string{"sender"}),
		senderPinnedBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_cluster_sender_pinned_bytes", Help: "Bytes of pinned blocks at a sender (its stats).",
		}, []string{"sender"}),
		senderRAMBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_cluster_sender_ram_bytes", Help: "Bytes in a sender's RAM cache (its stats).",
		}, []string{"sender"}),
		senderRAMBudget: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_cluster_sender_ram_budget_bytes", Help: "A sender's RAM budget (its stats).",
		}, []string{"sender"}),
		senderSends: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_cluster_sender_sends", Help: "Blocks a sender has sent, by source (ram, disk) (its stats).",
		}, []string{"sender", "source"}),
		senderRefused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_cluster_sender_refused", Help: "Look-aheads and sends a sender refused, all schedulers (its stats).",
		}, []string{"sender"}),
		senderLeaseExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_cluster_sender_lease_expiries", Help: "Scheduler leases that expired at a sender (its stats).",
		}, []string{"sender"}),
		ramHitRatio: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_cluster_ram_hit_ratio", Help: "Sends from RAM over all sends, summed over the live senders' stats.",
		}),
	}
	for _, o := range []op{opLook, opSend, opCancel} {
		m.opCount[o] = m.ops.WithLabelValues(o.String())
	}
	m.sentCount = [2]prometheus.Counter{m.sent.WithLabelValues("disk"), m.sent.WithLabelValues("ram")}
	m.manifest = map[string][2]prometheus.Counter{}
	for _, f := range manifestFormats {
		m.manifest[f] = [2]prometheus.Counter{m.manifests.WithLabelValues(f, "ok"), m.manifests.WithLabelValues(f, "error")}
	}
	if reg != nil {
		reg.MustRegister(m.sessions, m.sessionEvents, m.manifests, m.pins, m.ops, m.refused, m.unpinned,
			m.batches, m.batchSeconds, m.sent, m.sentBytes, m.liveSenders, m.senderDown, m.tickSeconds,
			m.senderPinnedBlocks, m.senderPinnedBytes, m.senderRAMBytes, m.senderRAMBudget, m.senderSends,
			m.senderRefused, m.senderLeaseExpiry, m.ramHitRatio)
	}
	return m
}

// senderStats mirrors one sender's stats into the gauges.
func (m *metrics) senderStats(id string, st cluster.SenderStats) {
	m.senderPinnedBlocks.WithLabelValues(id).Set(float64(st.PinnedBlocks))
	m.senderPinnedBytes.WithLabelValues(id).Set(float64(st.PinnedBytes))
	m.senderRAMBytes.WithLabelValues(id).Set(float64(st.RAMBytes))
	m.senderRAMBudget.WithLabelValues(id).Set(float64(st.RAMBudget))
	m.senderSends.WithLabelValues(id, "ram").Set(float64(st.SendsRAM))
	m.senderSends.WithLabelValues(id, "disk").Set(float64(st.SendsDisk))
	m.senderRefused.WithLabelValues(id).Set(float64(st.Refused))
	m.senderLeaseExpiry.WithLabelValues(id).Set(float64(st.LeaseExpiries))
}

// forgetSender removes a departed sender's series.
func (m *metrics) forgetSender(id string) {
	for _, g := range []*prometheus.GaugeVec{m.senderPinnedBlocks, m.senderPinnedBytes, m.senderRAMBytes,
		m.senderRAMBudget, m.senderRefused, m.senderLeaseExpiry} {
		g.DeleteLabelValues(id)
	}
	m.senderSends.DeleteLabelValues(id, "ram")
	m.senderSends.DeleteLabelValues(id, "disk")
}
