package sender

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
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
	playlists      *prometheus.CounterVec // result: ok, error
	grants         prometheus.Counter
	orphans        prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, s *Sender) (*senderMetrics, error) {
	m := &senderMetrics{
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sender_sends_total", Help: "Block responses sent to players, by where the block was read from (ram, disk).",
		}, []string{"from"}),
		sendBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sender_send_bytes_total", Help: "Block response body bytes, by where the block was read from.",
		}, []string{"from"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sender_requests_total", Help: "Scheduler requests in batches, by kind (lookahead, send, cancel) and result (ok, refused, missing).",
		}, []string{"kind", "result"}),
		pinsReleased: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sender_pins_released_total", Help: "Pins released, by reason (cancel, lease: the scheduler's lease expired).",
		}, []string{"reason"}),
		tokenRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sender_token_refusals_total", Help: "Client requests refused with 403, by token problem.",
		}, []string{"reason"}),
		leaseExpiries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sender_lease_expiries_total", Help: "Scheduler leases that expired (their pins were dropped).",
		}),
		preload: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_sender_preload_seconds", Help: "Time to load a block from mass storage into RAM (queueing included).",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2.5, 12),
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sender_batches_total", Help: "Scheduler batches handled.",
		}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_sender_batch_seconds", Help: "Time to apply one scheduler batch.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 3, 10),
		}),
		blocksIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sender_blocks_stored_total", Help: "Blocks written to this sender (new ones).",
		}),
		blockBytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sender_block_bytes_stored_total", Help: "Bytes of blocks written to this sender.",
		}),
		unauthorized: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sender_unauthorized_total", Help: "Internal requests refused: not signed with the cluster key for this sender, replayed, or out of the time window (sluice_cluster_auth_refusals_total has the reasons).",
		}),
		invalidUploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sender_invalid_uploads_total", Help: "Uploads refused with 400: a block that is not the fragment its key names, a track header that is not a CMAF header.",
		}, []string{"kind"}),
		unattributed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sender_unattributed_sends_total", Help: "Sends for sessions no scheduler named to this sender (no sent-report).",
		}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sender_fallback_requests_total", Help: "Client requests for an owner-set host name that names this sender but not first: the player could not connect to the first owner.",
		}),
		redirects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sender_redirects_total", Help: "Client requests for a block (or header) this sender does not hold, answered with a redirect to a live owner, by kind (block, init).",
		}, []string{"kind"}),
		playlists: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sender_playlists_total", Help: "Session media playlists served to players on this sender's pathway (fetched from a scheduler), by result (ok, error).",
		}, []string{"result"}),
		grants: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sender_session_grants_total", Help: "Session grants (and renewals) received from schedulers.",
		}),
		orphans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sender_orphan_reports_total", Help: "Sessions reported to a scheduler for adoption (their own scheduler stopped renewing them while players used them).",
		}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sender_deleted_blocks_total", Help: "Blocks named in delete requests, by result (deleted; absent: not held; deferred: deleted from mass storage, pinned in RAM until the last pin goes).",
		}, []string{"result"}),
	}
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_sender_pinned_blocks", Help: "Blocks with a non-zero usage counter.",
		}, func() float64 { return float64(s.st.Stats().PinnedBlocks) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_sender_pinned_bytes", Help: "Bytes of pinned blocks in RAM or being loaded.",
		}, func() float64 { return float64(s.st.Stats().PinnedBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_sender_pins", Help: "(scheduler, session, block) pins held.",
		}, func() float64 { return float64(s.st.Stats().Pins) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_sender_ram_bytes", Help: "Bytes of blocks in RAM or being loaded.",
		}, func() float64 { return float64(s.st.Stats().RAMBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_sender_ram_budget_bytes", Help: "RAM budget of the block store.",
		}, func() float64 { return float64(s.st.Stats().RAMBudget) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_sender_blocks", Help: "Blocks held in mass storage.",
		}, func() float64 { return float64(s.st.Stats().Blocks) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_sender_schedulers", Help: "Schedulers holding a lease.",
		}, func() float64 { return float64(s.st.Stats().Schedulers) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_sender_ram_hit_ratio", Help: "Share of block responses served from RAM since start.",
		}, func() float64 {
			r, d := s.sendsRAM.Load(), s.sendsDisk.Load()
			if r+d == 0 {
				return 0
			}
			return float64(r) / float64(r+d)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_sender_sessions", Help: "Sessions valid at this sender (granted and not expired).",
		}, func() float64 { return float64(s.validSessions()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sluice_sender_refused_total", Help: "Look-ahead and send requests refused because RAM is full of pinned blocks.",
		}, func() float64 { return float64(s.refused.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sluice_sender_evictions_total", Help: "Unpinned blocks evicted from RAM.",
		}, func() float64 { return float64(s.st.Stats().Evictions) }),
	}
	for _, c := range append(gauges, m.sends, m.sendBytes, m.requests, m.pinsReleased, m.tokenRefused,
		m.leaseExpiries, m.preload, m.batches, m.batchSeconds, m.blocksIn, m.blockBytesIn, m.unauthorized, m.invalidUploads, m.unattributed, m.deleted, m.fallbacks,
		m.redirects, m.playlists, m.grants, m.orphans) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register sender metrics: %w", err)
		}
	}
	return m, nil
}
