package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/blockstore"
	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/dns"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/scheduler"
	"github.com/sluice-media/sluice/internal/sender"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/webui"
)

// setupCluster assembles the roles of the sending cluster the process
// runs: a scheduler, a sender, or the single-node cluster of `sluice
// serve`; and the status page or player page.
func (s *Server) setupCluster(ctx context.Context, roles Roles) error {
	if roles.StatusPage {
		s.h.home = webui.New(s.Store, s.cfg.PlayerDir, s.log)
	}
	if roles.Demo && !s.cfg.Serve.NoDemo && s.Store != nil {
		base := "http://" + s.ln.Addr().String()
		s.start = append(s.start, func(ctx context.Context) error {
			go startDemo(ctx, s, base, s.log)
			return nil
		})
	}
	switch {
	case roles.Local:
		if err := s.setupLocal(); err != nil {
			return err
		}
	case roles.Scheduler:
		if err := s.setupScheduler(ctx); err != nil {
			return err
		}
	}
	if roles.Sender {
		return s.setupSender()
	}
	return nil
}

// schedulerConfig is the scheduler.Config of c for a cluster with secret
// and R replicas.
func schedulerConfig(c config.Scheduler, secret string, replicas int) scheduler.Config {
	sc := scheduler.DefaultConfig()
	sc.ID, sc.Tick, sc.Lease, sc.RetryPeriod = c.ID, c.Tick, c.Lease, c.RetryPeriod
	sc.AltSend, sc.LookAhead, sc.Guard, sc.NoPins, sc.LiveStart = c.AltSend, c.LookAhead, c.Guard, c.NoPins, c.LiveStart
	sc.TokenTTL, sc.SteeringTTL, sc.Pathways, sc.Idle = c.TokenTTL, c.SteeringTTL, c.Pathways, c.SessionIdle
	sc.OwnerSetURL = c.OwnerSetURL
	sc.Secret, sc.Replicas = []byte(secret), replicas
	return sc
}

// setupScheduler assembles the scheduler role (docs/cluster.md): sessions
// over the senders cfg.Cluster names (a static list or etcd, waiting for
// the first listing) and the timeline of cfg.Scheduler.Origins, behind the
// per-client open limit and the signed-URL check; the owner-set listing,
// the player page, and the owner-set DNS server when configured. /readyz
// answers 200 once a sender of the set answers batches and an origin
// answers the index. The status page (/, beside /metrics) is the cluster
// panel of its senders.
func (s *Server) setupScheduler(ctx context.Context) error {
	c, sc := s.cfg.Cluster, s.cfg.Scheduler
	if !c.Enabled() {
		return errors.New("name the senders: --senders or --etcd")
	}
	if c.Secret == "" {
		return errors.New("a cluster secret is required: --cluster-secret or $SLUICE_CLUSTER_SECRET")
	}
	if len(sc.Origins) == 0 {
		return errors.New("--origin is required (where the timeline comes from)")
	}
	cfg := schedulerConfig(sc, c.Secret, c.Replicas)
	if sc.SenderPlayerURL != "" {
		f, err := scheduler.PlayerURL(sc.SenderPlayerURL)
		if err != nil {
			return err
		}
		cfg.ClientURL = f
	}
	cfg.URL = strings.TrimSuffix(sc.Advertise, "/")
	if cfg.URL == "" {
		cfg.URL = "http://" + listenURLHost(s.ln.Addr().String())
	}
	set, closeSet, err := openSenders(ctx, c, s.Metrics.Registry, s.log)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, closeSet)
	tl := &scheduler.OriginTimeline{Origins: sc.Origins, Client: &http.Client{Timeout: 5 * time.Second}, Secret: cfg.Secret}
	sched, err := scheduler.New(cfg, tl, set, s.Metrics.Registry, s.log)
	if err != nil {
		return err
	}
	if err := s.sessions(sched); err != nil {
		return err
	}
	s.h.ownerSet = http.HandlerFunc(sched.OwnerSetHosts)
	s.h.player = webui.New(nil, s.cfg.PlayerDir, s.log)
	// The status page: the cluster panel of the scheduler's senders (on
	// the page of the process's store when it has one).
	if ui, ok := s.h.home.(*webui.Handler); ok {
		ui.SetCluster(sched)
	} else {
		ui := webui.New(nil, "", s.log)
		ui.SetCluster(sched)
		s.h.status = ui
	}
	// /readyz: a live sender answered and an origin answered the index.
	s.addCheck(sched.Ready)
	if sc.DNSListen != "" {
		if err := s.ownerSetDNS(sched, sc.DNSListen); err != nil {
			return err
		}
	}
	s.start = append(s.start, func(ctx context.Context) error {
		go sched.Run(ctx)
		s.log.Info("scheduler", "id", sched.ID(), "origins", sc.Origins, "senders", len(set.Members()), "no_pins", cfg.NoPins)
		return nil
	})
	return nil
}

// sessions routes /s/ to sched behind the per-client open limit and the
// signed-URL check of cfg.SignedURLs (opens and reloads of sessions of
// the covered points).
func (s *Server) sessions(sched *scheduler.Scheduler) error {
	c := s.cfg.SignedURLs
	guard, _, err := signedURLGuard(c, s.Metrics.Registry, s.log, func(r *http.Request) bool {
		return c.Covers(scheduler.PointOf(r.URL.Path)) && !scheduler.SessionResource(r.URL.Path)
	})
	if err != nil {
		return err
	}
	s.h.sessions = scheduler.LimitOpens(guard(sched), s.cfg.Scheduler.OpenRate, s.cfg.Scheduler.OpenBurst, s.Metrics.Registry, s.log)
	return nil
}

// setupLocal assembles the single-node cluster of `sluice serve`: one
// sender whose mass storage is the origin's own store (no second copy of
// any block), and one scheduler over it, both on the server's own
// address, so that the single-node default takes the same path as a
// cluster: players get per-session manifests from /s/ and fetch every
// segment from the sender at /b/, which the scheduler reserves ahead of
// them over the sender's internal API. The cluster secret is random.
func (s *Server) setupLocal() error {
	if s.Store == nil {
		return errors.New("server: the local cluster needs the store (ingest or origin role)")
	}
	var b [16]byte
	rand.Read(b[:])
	secret := hex.EncodeToString(b[:])
	base := "http://" + s.ln.Addr().String()
	bs, err := blockstore.New(blockstore.Options{Backend: blockstore.NewStoreBackend(s.Store), RAMBudget: int64(s.cfg.Sender.RAM), Log: s.log})
	if err != nil {
		return err
	}
	s.closers = append(s.closers, func() { bs.Close() })
	sc := schedulerConfig(s.cfg.Scheduler, secret, 1)
	if sc.ID == "" {
		sc.ID = "local"
	}
	// Segment URLs on the host the player asked: /b/...
	sc.ClientURL = func(membership.Member) string { return "" }
	set, err := membership.Static(membership.Member{ID: "local", URL: base})
	if err != nil {
		return err
	}
	tl := scheduler.StoreTimeline{Store: s.Store, DVR: s.cfg.DVR}
	sched, err := scheduler.New(sc, tl, set, s.Metrics.Registry, s.log)
	if err != nil {
		return err
	}
	if ui, ok := s.h.home.(*webui.Handler); ok {
		ui.SetCluster(sched) // the status page's cluster panel
	}
	// The sender answers its players' session playlists with the
	// scheduler in process.
	snd, err := sender.New(sender.Options{ID: "local", Secret: []byte(secret), URL: base, Store: bs,
		Registry: s.Metrics.Registry, Playlists: sched, Log: s.log})
	if err != nil {
		return err
	}
	// Low latency: the local sender keeps the parts of the fragments in
	// progress, handed over in process as a cluster's origin forwards
	// them to its senders.
	s.Store.OnPart(func(ev store.PartEvent) {
		if ev.Complete {
			snd.CompleteParts(ev.Point, ev.Track, ev.FragStart, ev.End)
			return
		}
		snd.AddPart(ev.Point, ev.Track, ev.FragStart, ev.Index, ev.Ref, ev.Data)
	})
	mux := http.NewServeMux()
	snd.Routes(mux)
	s.h.sender = mux
	if err := s.sessions(sched); err != nil {
		return err
	}
	s.start = append(s.start, func(ctx context.Context) error {
		go snd.Run(ctx)
		go sched.Run(ctx)
		return nil
	})
	return nil
}

// listenURLHost is the host:port of a listen address as other processes on
// this machine reach it (an empty or unspecified host is the loopback).
func listenURLHost(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// ownerSetDNS listens at addr (UDP) and, once the server serves,
// answers the scheduler's owner-set names there until ctx ends.
func (s *Server) ownerSetDNS(sched *scheduler.Scheduler, addr string) error {
	zone := sched.Zone()
	if zone == "" {
		return errors.New("--dns-listen needs --owner-set-url with a domain after {owners} (e.g. http://{owners}.senders.example:9001)")
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	s.closers = append(s.closers, func() { pc.Close() })
	srv := &dns.Server{Zone: zone, Lookup: sched.LookupOwnerSet, Log: s.log}
	s.start = append(s.start, func(ctx context.Context) error {
		go func() {
			if err := srv.ServeUDP(ctx, pc); err != nil && ctx.Err() == nil {
				s.log.Error("owner-set DNS stopped", "err", err)
			}
		}()
		s.log.Info("owner-set DNS listening", "addr", pc.LocalAddr().String(), "zone", zone)
		return nil
	})
	return nil
}
