package scheduler

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/cluster"
	imetrics "github.com/sluice-media/sluice/internal/metrics"
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
	senderReloads prometheus.Counter       // pathway playlist reloads senders answered from a shared copy
	batches       *prometheus.CounterVec   // sender, result (ok, error)
	batchSeconds  *prometheus.HistogramVec // lookahead (yes, no)
	sent          *prometheus.CounterVec   // source (ram, disk): sent reports
	sentBytes     prometheus.Counter
	liveSenders   prometheus.Gauge
	senderDown    *prometheus.CounterVec // sender
	reconciles    prometheus.Counter
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
	f := imetrics.NewFactory(reg)
	m := &metrics{
		sessions:           f.GaugeVec("sluice_scheduler_sessions", "Sessions this scheduler holds, by type (live, vod).", "type"),
		sessionEvents:      f.CounterVec("sluice_scheduler_session_events_total", "Sessions opened, adopted from another scheduler, and expired.", "event"),
		manifests:          f.CounterVec("sluice_scheduler_manifests_total", "Per-session manifests served, by format and result.", "format", "result"),
		senderReloads:      f.Counter("sluice_scheduler_sender_reloads_total", "Reloads of this scheduler's sessions' pathway playlists that senders answered from their shared copy and reported in batch results."),
		pins:               f.GaugeVec("sluice_scheduler_pins", "Block reservations this scheduler holds at senders, by role (send, lookahead).", "role"),
		ops:                f.CounterVec("sluice_scheduler_ops_total", "Requests sent to senders in batches, by op (lookahead, send, cancel).", "op"),
		refused:            f.CounterVec("sluice_scheduler_refused_total", "Reservations a sender did not take, by reason (refused: RAM full of pinned blocks; missing: block not held).", "reason"),
		unpinned:           f.Counter("sluice_scheduler_unpinned_blocks_total", "Region blocks every owner refused: served without a pin."),
		batches:            f.CounterVec("sluice_scheduler_batches_total", "Batch requests to senders, by sender and result.", "sender", "result"),
		batchSeconds:       f.HistogramVec("sluice_scheduler_batch_seconds", "Round trip of a batch request; with look-aheads (lookahead=yes) it includes the sender's preload from mass storage.", []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2}, "lookahead"),
		sent:               f.CounterVec("sluice_scheduler_sent_blocks_total", "Blocks senders reported sent to this scheduler's sessions, by source (ram, disk).", "source"),
		sentBytes:          f.Counter("sluice_scheduler_sent_bytes_total", "Bytes senders reported sent to this scheduler's sessions."),
		liveSenders:        f.Gauge("sluice_scheduler_live_senders", "Senders in the live set (members that answer)."),
		senderDown:         f.CounterVec("sluice_scheduler_sender_down_total", "Times a sender left the live set because it did not answer.", "sender"),
		reconciles:         f.Counter("sluice_scheduler_reconciles_total", "Sessions reconciled: their wanted reservations compared with those held."),
		tickSeconds:        f.Histogram("sluice_scheduler_tick_seconds", "CPU-bound work of one timeslot: reconciling sessions and building batches.", []float64{.0001, .0002, .0005, .001, .002, .005, .01, .02, .05, .1}),
		senderPinnedBlocks: f.GaugeVec("sluice_cluster_sender_pinned_blocks", "Blocks with a non-zero usage counter at a sender (its stats).", "sender"),
		senderPinnedBytes:  f.GaugeVec("sluice_cluster_sender_pinned_bytes", "Bytes of pinned blocks at a sender (its stats).", "sender"),
		senderRAMBytes:     f.GaugeVec("sluice_cluster_sender_ram_bytes", "Bytes in a sender's RAM cache (its stats).", "sender"),
		senderRAMBudget:    f.GaugeVec("sluice_cluster_sender_ram_budget_bytes", "A sender's RAM budget (its stats).", "sender"),
		senderSends:        f.GaugeVec("sluice_cluster_sender_sends", "Blocks a sender has sent, by source (ram, disk) (its stats).", "sender", "source"),
		senderRefused:      f.GaugeVec("sluice_cluster_sender_refused", "Look-aheads and sends a sender refused, all schedulers (its stats).", "sender"),
		senderLeaseExpiry:  f.GaugeVec("sluice_cluster_sender_lease_expiries", "Scheduler leases that expired at a sender (its stats).", "sender"),
		ramHitRatio:        f.Gauge("sluice_cluster_ram_hit_ratio", "Sends from RAM over all sends, summed over the live senders' stats."),
	}
	if err := f.Err(); err != nil {
		panic(err) // names are fixed: only a programming error gets here
	}
	for _, o := range []op{opLook, opSend, opCancel} {
		m.opCount[o] = m.ops.WithLabelValues(o.String())
	}
	m.sentCount = [2]prometheus.Counter{m.sent.WithLabelValues("disk"), m.sent.WithLabelValues("ram")}
	m.manifest = map[string][2]prometheus.Counter{}
	for _, format := range manifestFormats {
		m.manifest[format] = [2]prometheus.Counter{m.manifests.WithLabelValues(format, "ok"), m.manifests.WithLabelValues(format, "error")}
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
