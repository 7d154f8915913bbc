package sender

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/metrics"
)

// senderMetrics are the sender's Prometheus metrics (docs/cluster.md, "Metrics":
// pinned blocks and bytes, RAM hit ratio of sends, preload latency, refused
// look-aheads, lease expiries).
type senderMetrics struct {
	sends          *prometheus.CounterVec // from: ram, disk
	sendBytes      *prometheus.CounterVec // from
	requests       *prometheus.CounterVec // kind: lookahead, send, cancel; result: ok, refused, missing
	pinsReleased   *prometheus.CounterVec // reason: cancel, lease
	tokenRefused   *prometheus.CounterVec // reason
	leaseExpiries  prometheus.Counter
	preload        prometheus.Histogram
	batches        prometheus.Counter
	batchSeconds   prometheus.Histogram
	blocksIn       prometheus.Counter
	blockBytesIn   prometheus.Counter
	unauthorized   prometheus.Counter
	invalidUploads *prometheus.CounterVec // kind: block, init
	unattributed   prometheus.Counter
	deleted        *prometheus.CounterVec // result: deleted, absent, deferred
	fallbacks      prometheus.Counter
	redirects      *prometheus.CounterVec // kind: block, init
	playlists      *prometheus.CounterVec // result: ok, shared, error
	grants         prometheus.Counter
	orphans        prometheus.Counter
	parts          *prometheus.CounterVec // result: ram, growing, missing, timeout
	partsIn        prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, s *Sender) (*senderMetrics, error) {
	f := metrics.NewFactory(reg)
	m := &senderMetrics{
		sends:         f.CounterVec("sluice_sender_sends_total", "Block responses sent to players, by where the block was read from (ram, disk).", "from"),
		sendBytes:     f.CounterVec("sluice_sender_send_bytes_total", "Block response body bytes, by where the block was read from.", "from"),
		requests:      f.CounterVec("sluice_sender_requests_total", "Scheduler requests in batches, by kind (lookahead, send, cancel) and result (ok, refused, missing).", "kind", "result"),
		pinsReleased:  f.CounterVec("sluice_sender_pins_released_total", "Pins released, by reason (cancel, lease: the scheduler's lease expired).", "reason"),
		tokenRefused:  f.CounterVec("sluice_sender_token_refusals_total", "Client requests refused with 403, by token problem.", "reason"),
		leaseExpiries: f.Counter("sluice_sender_lease_expiries_total", "Scheduler leases that expired (their pins were dropped)."),
		preload: f.Histogram("sluice_sender_preload_seconds", "Time to load a block from mass storage into RAM (queueing included).",
			prometheus.ExponentialBuckets(50e-6, 2.5, 12)),
		batches: f.Counter("sluice_sender_batches_total", "Scheduler batches handled."),
		batchSeconds: f.Histogram("sluice_sender_batch_seconds", "Time to apply one scheduler batch.",
			prometheus.ExponentialBuckets(10e-6, 3, 10)),
		blocksIn:     f.Counter("sluice_sender_blocks_stored_total", "Blocks written to this sender (new ones)."),
		blockBytesIn: f.Counter("sluice_sender_block_bytes_stored_total", "Bytes of blocks written to this sender."),
		unauthorized: f.Counter("sluice_sender_unauthorized_total", "Internal requests refused: not signed with the cluster key for this sender, replayed, or out of the time window (sluice_cluster_auth_refusals_total has the reasons)."),
		invalidUploads: f.CounterVec("sluice_sender_invalid_uploads_total", "Uploads refused with 400: a block that is not the fragment its key names, a track header that is not a CMAF header.",
			"kind"),
		unattributed: f.Counter("sluice_sender_unattributed_sends_total", "Sends for sessions no scheduler named to this sender (no sent-report)."),
		fallbacks:    f.Counter("sluice_sender_fallback_requests_total", "Client requests for an owner-set host name that names this sender but not first: the player could not connect to the first owner."),
		redirects: f.CounterVec("sluice_sender_redirects_total", "Client requests for a block (or header) this sender does not hold, answered with a redirect to a live owner, by kind (block, init).",
			"kind"),
		playlists: f.CounterVec("sluice_sender_playlists_total", "Session media playlists served to players on this sender's pathway, by result (ok: fetched from a scheduler; shared: answered with the copy a scheduler marked as its point's shared one; error).",
			"result"),
		grants:  f.Counter("sluice_sender_session_grants_total", "Session grants (and renewals) received from schedulers."),
		orphans: f.Counter("sluice_sender_orphan_reports_total", "Sessions reported to a scheduler for adoption (their own scheduler stopped renewing them while players used them)."),
		parts: f.CounterVec("sluice_sender_parts_total", "Low-latency responses from the parts kept in RAM, by result (ram: a part; growing: a block in progress, or just complete, sent from its parts; missing: a part not kept, 404; timeout: a hinted part that did not arrive, 503).",
			"result"),
		partsIn: f.Counter("sluice_sender_parts_in_total", "Parts of live fragments in progress received from the origin and kept in RAM."),
		deleted: f.CounterVec("sluice_sender_deleted_blocks_total", "Blocks named in delete requests, by result (deleted; absent: not held; deferred: deleted from mass storage, pinned in RAM until the last pin goes).",
			"result"),
	}
	f.GaugeFunc("sluice_sender_pinned_blocks", "Blocks with a non-zero usage counter.", func() float64 { return float64(s.st.Stats().PinnedBlocks) })
	f.GaugeFunc("sluice_sender_pinned_bytes", "Bytes of pinned blocks in RAM or being loaded.", func() float64 { return float64(s.st.Stats().PinnedBytes) })
	f.GaugeFunc("sluice_sender_pins", "(scheduler, session, block) pins held.", func() float64 { return float64(s.st.Stats().Pins) })
	f.GaugeFunc("sluice_sender_ram_bytes", "Bytes of blocks in RAM or being loaded.", func() float64 { return float64(s.st.Stats().RAMBytes) })
	f.GaugeFunc("sluice_sender_ram_budget_bytes", "RAM budget of the block store.", func() float64 { return float64(s.st.Stats().RAMBudget) })
	f.GaugeFunc("sluice_sender_blocks", "Blocks held in mass storage.", func() float64 { return float64(s.st.Stats().Blocks) })
	f.GaugeFunc("sluice_sender_schedulers", "Schedulers holding a lease.", func() float64 { return float64(s.st.Stats().Schedulers) })
	f.GaugeFunc("sluice_sender_ram_hit_ratio", "Share of block responses served from RAM since start.", func() float64 {
		r, d := s.sendsRAM.Load(), s.sendsDisk.Load()
		if r+d == 0 {
			return 0
		}
		return float64(r) / float64(r+d)
	})
	f.GaugeFunc("sluice_sender_sessions", "Sessions valid at this sender (granted and not expired).", func() float64 { return float64(s.validSessions()) })
	f.CounterFunc("sluice_sender_refused_total", "Look-ahead and send requests refused because RAM is full of pinned blocks.", func() float64 { return float64(s.refused.Load()) })
	f.CounterFunc("sluice_sender_evictions_total", "Unpinned blocks evicted from RAM.", func() float64 { return float64(s.st.Stats().Evictions) })
	if err := f.Err(); err != nil {
		return nil, fmt.Errorf("sender metrics: %w", err)
	}
	return m, nil
}
