package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-media/sluice/internal/blockstore"
	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/sender"
	"github.com/sluice-media/sluice/internal/webui"
)

// setupSender assembles the sender role (docs/cluster.md): blocks in
// cfg.Data and up to cfg.Sender.RAM of them in RAM, the internal API and
// the players' /b/ URLs (paced like the origin's media), and, when
// cfg.Cluster names etcd, a registration there (signed with the cluster
// key) that Serve makes once it serves and withdraws first when it stops.
func (s *Server) setupSender() error {
	c, sc := s.cfg.Cluster, s.cfg.Sender
	if c.Secret == "" {
		return errors.New("a cluster secret is required: --cluster-secret or $SLUICE_CLUSTER_SECRET")
	}
	addr := s.ln.Addr().String()
	base := sc.Advertise
	if base == "" {
		base = "http://" + addr
	}
	self, err := membership.FromURL(base)
	if err != nil {
		return err
	}
	if sc.ID != "" {
		self.ID = sc.ID
	}
	disk, err := blockstore.OpenDisk(s.cfg.Data)
	if err != nil {
		return err
	}
	var snd atomic.Pointer[sender.Sender]
	bs, err := blockstore.New(blockstore.Options{
		Backend: disk, RAMBudget: int64(sc.RAM), Preloaders: sc.Preloaders, NoAdmitOnMiss: sc.NoAdmit,
		CopyRAM: sc.RAMSend == "copy", DefaultLease: sc.Lease, Log: s.log,
		OnPreload: func(d time.Duration, err error) {
			if s := snd.Load(); s != nil {
				s.ObservePreload(d, err)
			}
		},
	})
	if err != nil {
		return err
	}
	s.closers = append(s.closers, func() { bs.Close() })
	var registration atomic.Pointer[membership.Registration]
	registered := func() error {
		if len(c.Etcd) == 0 {
			return nil
		}
		if r := registration.Load(); r == nil || !r.Registered() {
			return errors.New("not registered in etcd")
		}
		return nil
	}
	// Internal requests must be signed for the advertised host:port or
	// the listen address.
	sn, err := sender.New(sender.Options{
		ID: self.ID, Secret: []byte(c.Secret), URL: self.URL, Names: []string{addr},
		Store: bs, Registry: s.Metrics.Registry, DefaultLease: sc.Lease, SessionGrace: sc.SessionGrace,
		Ready: registered, Log: s.log,
	})
	if err != nil {
		return err
	}
	snd.Store(sn)
	s.addCheck(sn.Ready)
	// The status page: the cluster panel of this sender.
	switch ui, ok := s.h.home.(*webui.Handler); {
	case s.roles.Scheduler: // the scheduler's panel lists it
	case ok:
		ui.SetSender(sn)
	default:
		ui := webui.New(nil, "", s.log)
		ui.SetSender(sn)
		s.h.status = ui
	}
	// Blocks go to players through the same pacer as the origin's.
	mux := http.NewServeMux()
	sn.Routes(mux)
	s.h.sender = s.pacer.Middleware(mux, func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/b/")
	})
	s.start = append(s.start, func(ctx context.Context) error {
		go sn.Run(ctx)
		s.log.Info("sender", "id", self.ID, "url", self.URL, "data", s.cfg.Data, "ram_budget", int64(sc.RAM), "blocks", disk.Blocks())
		if len(c.Etcd) == 0 {
			return nil
		}
		// The record is signed with the cluster key: origins and
		// schedulers ignore records that are not.
		ec, err := etcdConfig(c, s.log)
		if err != nil {
			return err
		}
		ec.Keys = clusterauth.NewKeys([]byte(c.Secret))
		r, err := membership.Register(ctx, ec, self, sc.EtcdTTL)
		if err != nil {
			return fmt.Errorf("register in etcd: %w", err)
		}
		registration.Store(r)
		return nil
	})
	// Leave the set first, so writers and schedulers stop naming us.
	s.stop = append(s.stop, func() {
		if r := registration.Swap(nil); r != nil {
			if err := r.Close(); err != nil {
				s.log.Warn("leave etcd", "err", err)
			}
		}
	})
	s.closers = append(s.closers, func() {
		if r := registration.Swap(nil); r != nil {
			r.Close()
		}
	})
	return nil
}
