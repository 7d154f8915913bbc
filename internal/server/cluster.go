package server

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/placement"
)

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
	var set membership.Set
	if len(c.Etcd) > 0 {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		es, err := membership.Etcd(ectx, membership.EtcdConfig{Endpoints: c.Etcd, Prefix: c.EtcdPrefix, Log: s.log})
		cancel()
		if err != nil {
			return err
		}
		go func() {
			<-ctx.Done()
			es.Close()
		}()
		set = es
	} else {
		ms, err := membership.ParseList(strings.Join(c.Senders, ","))
		if err != nil {
			return err
		}
		if set, err = membership.Static(ms...); err != nil {
			return err
		}
	}
	w, err := placement.NewWriter(placement.WriterOptions{
		Members: set, Replicas: c.Replicas, Client: placement.NewClient([]byte(secret), nil), Log: s.log,
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
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_cluster_senders", Help: "Senders in the cluster's set."},
			func() float64 { return float64(len(set.Members())) }),
	} {
		if err := s.Metrics.Registry.Register(col); err != nil {
			return err
		}
	}
	s.Store.OnFragment(w.StoreHook(s.Store))
	go w.Run(ctx)
	s.log.Info("forwarding fragments to the cluster's senders", "senders", len(set.Members()), "replicas", c.Replicas, "etcd", len(c.Etcd) > 0)
	return nil
}
