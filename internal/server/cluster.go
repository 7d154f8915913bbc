package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/placement"
)

// EtcdConfig is the etcd connection of a cluster configuration: its
// endpoints and prefix, TLS files, user and password (from the password
// file or $SLUICE_ETCD_PASSWORD).
func EtcdConfig(c config.Cluster, log *slog.Logger) (membership.EtcdConfig, error) {
	ec := membership.EtcdConfig{Endpoints: c.Etcd, Prefix: c.EtcdPrefix, Log: log}
	ec, err := ec.Credentials(membership.TLSFiles{CA: c.EtcdTLS.CA, Cert: c.EtcdTLS.Cert, Key: c.EtcdTLS.Key},
		c.EtcdUser, c.EtcdPasswordFile)
	if err != nil {
		return ec, fmt.Errorf("cluster: %w", err)
	}
	return ec, nil
}

// OpenSenders returns the sender set a cluster configuration names, for a
// role that sends to it (an origin's writer, a scheduler, sender-load):
// the static list or the etcd set, each member only once it proved that
// it holds the cluster key (membership.Open; etcd records must be signed
// with it). Ignored records and members are logged and counted in reg
// (sluice_cluster_member_rejections_total). Call the returned function to
// release it.
func OpenSenders(ctx context.Context, c config.Cluster, reg prometheus.Registerer, log *slog.Logger) (membership.Set, func(), error) {
	if c.Secret == "" {
		return nil, nil, errors.New("cluster: a secret is required (cluster.secret, --cluster-secret or $SLUICE_CLUSTER_SECRET)")
	}
	oc := membership.OpenConfig{Keys: clusterauth.NewKeys([]byte(c.Secret)), Log: log,
		Rejected: clusterauth.NewMetrics(reg).MemberRejected}
	if len(c.Etcd) > 0 {
		ec, err := EtcdConfig(c, log)
		if err != nil {
			return nil, nil, err
		}
		oc.Etcd = &ec
	} else {
		ms, err := membership.ParseList(strings.Join(c.Senders, ","))
		if err != nil {
			return nil, nil, err
		}
		oc.Static = ms
	}
	return membership.Open(ctx, oc)
}

// startCluster makes a process with a store and a cluster configuration
// (cfg.Cluster: an origin with --senders or --etcd) forward every fragment
// it stores to the fragment's R owners among the senders, and each track's
// header to every sender (internal/placement; docs/cluster.md). It runs
// until ctx ends.
func (s *Server) startCluster(ctx context.Context) error {
	c := s.cfg.Cluster
	if s.Store == nil || !c.Enabled() {
		return nil
	}
	secret := c.Secret
	if secret == "" {
		secret = os.Getenv("SLUICE_CLUSTER_SECRET")
	}
	if secret == "" {
		return errors.New("cluster: a secret is required (cluster.secret, --cluster-secret or $SLUICE_CLUSTER_SECRET)")
	}
	c.Secret = secret
	set, closeSet, err := OpenSenders(ctx, c, s.Metrics.Registry, s.log)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		closeSet()
	}()
	w, err := placement.NewWriter(placement.WriterOptions{
		Members: set, Replicas: c.Replicas, Client: placement.NewClient([]byte(secret), nil), Log: s.log,
		// The store holds every block: a sender that joins, or answers
		// again, gets from it what it owns and lacks.
		Store: s.Store, Window: s.cfg.DVR,
	})
	if err != nil {
		return err
	}
	stat := func(name, help string, f func(placement.WriterStats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(w.Stats())) })
	}
	for _, col := range []prometheus.Collector{
		stat("sluice_cluster_blocks_written_total", "Fragments written to at least one of their owner senders.", func(st placement.WriterStats) int64 { return st.Blocks }),
		stat("sluice_cluster_block_copies_total", "Block PUTs to owner senders that succeeded.", func(st placement.WriterStats) int64 { return st.Copies }),
		stat("sluice_cluster_block_failures_total", "Block PUTs to owner senders that failed after retries.", func(st placement.WriterStats) int64 { return st.Failures }),
		stat("sluice_cluster_blocks_dropped_total", "Fragments not forwarded because the placement queue was full.", func(st placement.WriterStats) int64 { return st.Dropped }),
		stat("sluice_cluster_block_fallbacks_total", "Block copies written to a later owner because an earlier one failed or did not answer.", func(st placement.WriterStats) int64 { return st.Fallbacks }),
		stat("sluice_cluster_sender_down_total", "Times the placement writer took a sender that did not answer out of its targets.", func(st placement.WriterStats) int64 { return st.Downs }),
		stat("sluice_cluster_rebalance_runs_total", "Rebalances finished (every live sender checked for the blocks it owns).", func(st placement.WriterStats) int64 { return st.RebalanceRuns }),
		stat("sluice_cluster_rebalance_blocks_total", "Blocks the rebalance wrote to owners that lacked them.", func(st placement.WriterStats) int64 { return st.RebalanceBlocks }),
		stat("sluice_cluster_rebalance_bytes_total", "Bytes of the blocks the rebalance wrote.", func(st placement.WriterStats) int64 { return st.RebalanceBytes }),
		stat("sluice_cluster_rebalance_failures_total", "Rebalance writes that failed.", func(st placement.WriterStats) int64 { return st.RebalanceFailures }),
		stat("sluice_cluster_rebalance_deleted_copies_total", "Block copies the rebalance deleted from senders that do not own them (every owner held the block).", func(st placement.WriterStats) int64 { return st.RebalanceDeletes }),
		stat("sluice_cluster_deleted_blocks_total", "Pruned blocks (retention) deleted on a sender, or deferred there because pinned.", func(st placement.WriterStats) int64 { return st.Deletes }),
		stat("sluice_cluster_delete_failures_total", "Pruned blocks a sender failed to delete (kept for its next rebalance).", func(st placement.WriterStats) int64 { return st.DeleteFailures }),
		stat("sluice_cluster_deletes_dropped_total", "Pruned blocks not deleted on the senders: delete queue full or a sender's pending list over its bound.", func(st placement.WriterStats) int64 { return st.DeletesDropped }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_cluster_pending_deletes", Help: "Pruned blocks kept for senders that missed their deletion (sent by their next rebalance)."},
			func() float64 { return float64(w.PendingDeletes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_cluster_senders", Help: "Senders in the cluster's set."},
			func() float64 { return float64(len(set.Members())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_cluster_writer_live_senders", Help: "Senders of the set the placement writer writes to (those that answer)."},
			func() float64 { return float64(w.LiveSenders()) }),
	} {
		if err := s.Metrics.Registry.Register(col); err != nil {
			return err
		}
	}
	s.Store.OnFragment(w.StoreHook(s.Store))
	// Retention deletes a fragment's copies on the senders with it.
	s.Store.OnPrune(w.PruneHook())
	go w.Run(ctx)
	s.log.Info("forwarding fragments to the cluster's senders", "senders", len(set.Members()), "replicas", c.Replicas, "etcd", len(c.Etcd) > 0)
	return nil
}
