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
	"github.com/sluice-media/sluice/internal/store"
)

// etcdConfig is the etcd connection of a cluster configuration: its
// endpoints and prefix, TLS files, user and password (from the password
// file or $SLUICE_ETCD_PASSWORD).
func etcdConfig(c config.Cluster, log *slog.Logger) (membership.EtcdConfig, error) {
	ec := membership.EtcdConfig{Endpoints: c.Etcd, Prefix: c.EtcdPrefix, Log: log}
	ec, err := ec.Credentials(membership.TLSFiles{CA: c.EtcdTLS.CA, Cert: c.EtcdTLS.Cert, Key: c.EtcdTLS.Key},
		c.EtcdUser, c.EtcdPasswordFile)
	if err != nil {
		return ec, fmt.Errorf("cluster: %w", err)
	}
	return ec, nil
}

// openSenders returns the sender set a cluster configuration names, for a
// role that sends to it (an origin's writer, a scheduler, sender-load):
// the static list or the etcd set, each member only once it proved that
// it holds the cluster key (membership.Open; etcd records must be signed
// with it). Ignored records and members are logged and counted in reg
// (sluice_cluster_member_rejections_total). Call the returned function to
// release it.
func openSenders(ctx context.Context, c config.Cluster, reg prometheus.Registerer, log *slog.Logger) (membership.Set, func(), error) {
	if c.Secret == "" {
		return nil, nil, errors.New("cluster: a secret is required (cluster.secret, --cluster-secret or $SLUICE_CLUSTER_SECRET)")
	}
	oc := membership.OpenConfig{Keys: clusterauth.NewKeys([]byte(c.Secret)), Log: log,
		Rejected: clusterauth.NewMetrics(reg).MemberRejected}
	if len(c.Etcd) > 0 {
		ec, err := etcdConfig(c, log)
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
	set, closeSet, err := openSenders(ctx, c, s.Metrics.Registry, s.log)
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
	if err := w.RegisterMetrics(s.Metrics.Registry, set); err != nil {
		return err
	}
	s.Store.OnFragment(w.StoreHook(s.Store))
	// Low latency: every part of a fragment in progress goes to every
	// sender.
	s.Store.OnPart(w.PartHook(s.Store))
	// Retention deletes a fragment's copies on the senders with it.
	s.Store.OnPrune(w.PruneHook())
	go w.Run(ctx)
	s.log.Info("forwarding fragments to the cluster's senders", "senders", len(set.Members()), "replicas", c.Replicas, "etcd", len(c.Etcd) > 0)
	return nil
}

// Loaded is what LoadAsset wrote.
type Loaded struct {
	Blocks  int                   // blocks of the asset written
	Senders int                   // senders in the set
	Stats   placement.WriterStats // copies, failures, headers
}

// LoadAsset writes the on-demand asset of the data directory dir to the
// senders c names (`sluice sender-load`): every track header to every
// sender, every fragment to its R owners, concurrency blocks at a time.
// Blocks a sender holds already are kept.
func LoadAsset(ctx context.Context, c config.Cluster, dir, asset string, concurrency int, log *slog.Logger) (Loaded, error) {
	if !c.Enabled() {
		return Loaded{}, errors.New("name the senders: --senders or --etcd")
	}
	if err := c.Validate(); err != nil {
		return Loaded{}, err
	}
	st, err := store.OpenShared(dir, log)
	if err != nil {
		return Loaded{}, err
	}
	set, closeSet, err := openSenders(ctx, c, nil, log)
	if err != nil {
		return Loaded{}, err
	}
	defer closeSet()
	w, err := placement.NewWriter(placement.WriterOptions{
		Members: set, Replicas: c.Replicas, Client: placement.NewClient([]byte(c.Secret), nil), Log: log,
	})
	if err != nil {
		return Loaded{}, err
	}
	n, err := w.LoadAsset(ctx, st, asset, concurrency, nil)
	return Loaded{Blocks: n, Senders: len(set.Members()), Stats: w.Stats()}, err
}
