package placement

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/metrics"
)

// RegisterMetrics registers the writer's metrics in reg: counters of its
// Stats (sluice_cluster_*_total: blocks and copies written, failures,
// fallbacks, rebalances, deletes), the deletes it keeps pending, and the
// size of the sender set and of its live part.
func (w *Writer) RegisterMetrics(reg prometheus.Registerer, set membership.Set) error {
	f := metrics.NewFactory(reg)
	stat := func(name, help string, v func(WriterStats) int64) {
		f.CounterFunc(name, help, func() float64 { return float64(v(w.Stats())) })
	}
	stat("sluice_cluster_blocks_written_total", "Fragments written to at least one of their owner senders.", func(st WriterStats) int64 { return st.Blocks })
	stat("sluice_cluster_block_copies_total", "Block PUTs to owner senders that succeeded.", func(st WriterStats) int64 { return st.Copies })
	stat("sluice_cluster_block_failures_total", "Block PUTs to owner senders that failed after retries.", func(st WriterStats) int64 { return st.Failures })
	stat("sluice_cluster_blocks_dropped_total", "Fragments not forwarded because the placement queue was full.", func(st WriterStats) int64 { return st.Dropped })
	stat("sluice_cluster_block_fallbacks_total", "Block copies written to a later owner because an earlier one failed or did not answer.", func(st WriterStats) int64 { return st.Fallbacks })
	stat("sluice_cluster_sender_down_total", "Times the placement writer took a sender that did not answer out of its targets.", func(st WriterStats) int64 { return st.Downs })
	stat("sluice_cluster_rebalance_runs_total", "Rebalances finished (every live sender checked for the blocks it owns).", func(st WriterStats) int64 { return st.RebalanceRuns })
	stat("sluice_cluster_rebalance_blocks_total", "Blocks the rebalance wrote to owners that lacked them.", func(st WriterStats) int64 { return st.RebalanceBlocks })
	stat("sluice_cluster_rebalance_bytes_total", "Bytes of the blocks the rebalance wrote.", func(st WriterStats) int64 { return st.RebalanceBytes })
	stat("sluice_cluster_rebalance_failures_total", "Rebalance writes that failed.", func(st WriterStats) int64 { return st.RebalanceFailures })
	stat("sluice_cluster_rebalance_deleted_copies_total", "Block copies the rebalance deleted from senders that do not own them (every owner held the block).", func(st WriterStats) int64 { return st.RebalanceDeletes })
	stat("sluice_cluster_deleted_blocks_total", "Pruned blocks (retention) deleted on a sender, or deferred there because pinned.", func(st WriterStats) int64 { return st.Deletes })
	stat("sluice_cluster_delete_failures_total", "Pruned blocks a sender failed to delete (kept for its next rebalance).", func(st WriterStats) int64 { return st.DeleteFailures })
	stat("sluice_cluster_deletes_dropped_total", "Pruned blocks not deleted on the senders: delete queue full or a sender's pending list over its bound.", func(st WriterStats) int64 { return st.DeletesDropped })
	stat("sluice_cluster_parts_forwarded_total", "Parts of live fragments in progress forwarded to a sender (every sender gets every part).", func(st WriterStats) int64 { return st.Parts })
	stat("sluice_cluster_part_failures_total", "Part and fragment-end forwards that failed (not retried: the complete block follows).", func(st WriterStats) int64 { return st.PartFailures })
	stat("sluice_cluster_parts_dropped_total", "Part events dropped because a sender's part queue was full.", func(st WriterStats) int64 { return st.PartsDropped })
	f.GaugeFunc("sluice_cluster_pending_deletes", "Pruned blocks kept for senders that missed their deletion (sent by their next rebalance).",
		func() float64 { return float64(w.PendingDeletes()) })
	f.GaugeFunc("sluice_cluster_senders", "Senders in the cluster's set.",
		func() float64 { return float64(len(set.Members())) })
	f.GaugeFunc("sluice_cluster_writer_live_senders", "Senders of the set the placement writer writes to (those that answer).",
		func() float64 { return float64(w.LiveSenders()) })
	return f.Err()
}
