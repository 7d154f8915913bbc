package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/blockstore"
	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/httpx"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/metrics"
	"github.com/sluice-media/sluice/internal/pacing"
	"github.com/sluice-media/sluice/internal/placement"
	"github.com/sluice-media/sluice/internal/sender"
	"github.com/sluice-media/sluice/internal/server"
	"github.com/sluice-media/sluice/internal/store"
)

const senderSummary = `Holds a share of the blocks (fragments) of every track of the cluster and sends them
straight to players (docs/architecture.md, docs/cluster.md): blocks are written to it by origins and
'sluice sender-load' (PUT /internal/v1/blocks/...), schedulers pin them ahead of each
session in batches (POST /internal/v1/batch) and hand players URLs
/b/<token>/<point>/<track>/<start>.m4s, which it serves after checking the token.

Blocks live in --data; up to --ram bytes of them are kept in RAM (sealed memfds, outside
the Go heap, sent with sendfile). Pinned blocks are never evicted; when RAM is full of
pinned blocks further look-aheads are refused. A scheduler's pins are dropped when its
lease expires.

With --etcd the sender registers itself under --etcd-prefix with a lease of --etcd-ttl
and keeps it alive; killed, it leaves the set within the TTL. Its record is signed with the
cluster key, and origins and schedulers use it only once it answered their challenge
(GET /internal/v1/proof): --advertise must be the URL they reach it at. Internal requests
must be signed with the cluster key for that host:port (or the listen address); the secret
never travels. etcd over TLS with a user: --etcd-ca, --etcd-cert, --etcd-key, --etcd-user,
--etcd-password-file (or $SLUICE_ETCD_PASSWORD); docs/topologies.md.

  sluice sender --listen 127.0.0.1:9001 --data ./s1 --ram 512M --cluster-secret S \
      --etcd http://127.0.0.1:2379`

// runSender implements `sluice sender`.
func runSender(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sender", "[flags]", stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sluice sender [flags]\n\n%s\n\nFlags:\n", senderSummary)
		fs.PrintDefaults()
	}
	listen := fs.String("listen", "127.0.0.1:9001", "address to listen on")
	data := fs.String("data", "./sender-data", "block directory (mass storage)")
	ram := fs.String("ram", "256M", "RAM budget of the block cache (bytes; K, M, G suffixes are powers of 1024)")
	id := fs.String("id", "", "sender ID for placement (default: host:port of --advertise)")
	advertise := fs.String("advertise", "", "base URL schedulers and players use for this sender (default: http://<listen address>)")
	secretFlag := fs.String("cluster-secret", "", "cluster secret for the internal API and session tokens (default $SLUICE_CLUSTER_SECRET)")
	etcd := fs.String("etcd", "", "comma-separated etcd endpoints: register this sender there (default: no registration)")
	prefix := fs.String("etcd-prefix", membership.DefaultPrefix, "etcd key prefix of the sender set")
	ttl := fs.Duration("etcd-ttl", 3*time.Second, "etcd lease TTL of the registration: a dead sender leaves the set after this long")
	var ef etcdFlags
	ef.register(fs)
	metricsListen := fs.String("metrics-listen", "", "serve /metrics on this address only (e.g. a private interface), not on --listen")
	lease := fs.Duration("lease", 10*time.Second, "scheduler lease when a batch names none")
	grace := fs.Duration("session-grace", 30*time.Second, "accept tokens of sessions this sender holds no grant for this long after they opened, and after the sender started (the schedulers grant them again)")
	preloaders := fs.Int("preloaders", 4, "concurrent loads from disk into RAM")
	noAdmit := fs.Bool("no-admit", false, "do not load blocks into RAM on a miss (only look-aheads fill RAM)")
	ramSend := fs.String("ram-send", "sendfile", "how RAM blocks are sent: sendfile (from the memfd) or copy (write from a read-only mapping of it)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	pacingMode := fs.String("pacing", config.PacingDefaults().Mode, "TCP pacing of block responses: off, client, server or both (docs/pacing.md)")
	writeTimeout := writeTimeoutFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	budget, err := parseBytes(*ram)
	if err != nil || budget <= 0 {
		return fmt.Errorf("--ram %q: want a positive size such as 512M", *ram)
	}
	if *ramSend != "sendfile" && *ramSend != "copy" {
		return fmt.Errorf("--ram-send %q: want sendfile or copy", *ramSend)
	}
	secret := clusterSecret(*secretFlag)
	if secret == "" {
		return errors.New("a cluster secret is required: --cluster-secret or $SLUICE_CLUSTER_SECRET")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	base := *advertise
	if base == "" {
		base = "http://" + ln.Addr().String()
	}
	self, err := membership.FromURL(base)
	if err != nil {
		return err
	}
	if *id != "" {
		self.ID = *id
	}
	disk, err := blockstore.OpenDisk(*data)
	if err != nil {
		return err
	}
	pc := config.PacingDefaults()
	pc.Mode = *pacingMode
	if err := pc.Validate(); err != nil {
		return fmt.Errorf("--pacing: %w", err)
	}
	// One registry for the sender's and the pacer's metrics (it has the Go
	// and process collectors already).
	m := metrics.New()
	reg := m.Registry
	pacer := pacing.New(pc, m, log)
	var snd atomic.Pointer[sender.Sender]
	bs, err := blockstore.New(blockstore.Options{
		Backend: disk, RAMBudget: budget, Preloaders: *preloaders, NoAdmitOnMiss: *noAdmit, CopyRAM: *ramSend == "copy",
		DefaultLease: *lease, Log: log,
		OnPreload: func(d time.Duration, err error) {
			if s := snd.Load(); s != nil {
				s.ObservePreload(d, err)
			}
		},
	})
	if err != nil {
		return err
	}
	defer bs.Close()
	var registration atomic.Pointer[membership.Registration]
	ready := func() error {
		if *etcd == "" {
			return nil
		}
		if r := registration.Load(); r == nil || !r.Registered() {
			return errors.New("not registered in etcd")
		}
		return nil
	}
	// Internal requests must be signed for the advertised host:port or
	// the listen address.
	s, err := sender.New(sender.Options{
		ID: self.ID, Secret: []byte(secret), URL: self.URL, Names: []string{ln.Addr().String()},
		Store: bs, Registry: reg, DefaultLease: *lease, SessionGrace: *grace, Ready: ready, Log: log,
	})
	if err != nil {
		return err
	}
	snd.Store(s)
	var h http.Handler = s.Handler()
	if *metricsListen != "" {
		h = withoutMetrics(h)
	}
	srv := &http.Server{
		// Blocks go to players through the same pacer as the origin's; a
		// response whose client stops reading is closed after
		// --write-timeout without progress.
		Handler: httpx.WriteProgress(pacer.Middleware(h, func(r *http.Request) bool {
			return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/b/")
		}), *writeTimeout, server.MinPace(pc)),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnContext:       pacing.ConnContext,
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.Run(rctx)
	go pacer.Run(rctx)
	if *metricsListen != "" {
		if err := server.ServeMetrics(rctx, *metricsListen, m.Handler(), log); err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("sluice sender listening", "addr", ln.Addr().String(), "id", self.ID, "url", self.URL,
		"data", *data, "ram_budget", budget, "blocks", disk.Blocks())
	if *etcd != "" {
		// The record is signed with the cluster key: origins and schedulers
		// ignore records that are not.
		ec, err := server.EtcdConfig(ef.apply(fs, config.Cluster{Etcd: splitList(*etcd), EtcdPrefix: *prefix}), log)
		if err != nil {
			srv.Close()
			return err
		}
		ec.Keys = clusterauth.NewKeys([]byte(secret))
		r, err := membership.Register(rctx, ec, self, *ttl)
		if err != nil {
			srv.Close()
			return err
		}
		registration.Store(r)
		defer r.Close()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Leave the set first, so writers and schedulers stop naming us.
	if r := registration.Load(); r != nil {
		if err := r.Close(); err != nil {
			log.Warn("leave etcd", "err", err)
		}
		registration.Store(nil)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer scancel()
	srv.Shutdown(sctx)
	return nil
}

// withoutMetrics answers 404 for /metrics (served on its own address).
func withoutMetrics(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

const senderLoadSynopsis = `[flags] <data-dir> <asset>

Writes an on-demand asset of a data directory (made by 'sluice import' or an archive cut)
to the senders of a cluster: every track header to every sender, every fragment to its
R owners (rendezvous hashing over the sender IDs, as the schedulers compute it). Blocks a
sender already holds are kept (the first copy wins), so it can be run again after the
sender set changed.

  sluice sender-load --senders http://127.0.0.1:9001,http://127.0.0.1:9002 \
      --replicas 2 --cluster-secret S ./data movies/demo`

// runSenderLoad implements `sluice sender-load`.
func runSenderLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sender-load", senderLoadSynopsis, stderr)
	var cf clusterFlags
	cf.register(fs)
	conc := fs.Int("concurrency", 4, "blocks written at a time")
	verbose := fs.Bool("v", false, "debug logging")
	pos, err := parseToolArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fs.Usage()
		return errors.New("need a data directory and an asset name")
	}
	log := toolLogger(stderr, *verbose)
	cc := cf.cluster(fs, config.Cluster{})
	if !cc.Enabled() {
		return errors.New("name the senders: --senders or --etcd")
	}
	if err := cc.Validate(); err != nil {
		return err
	}
	st, err := store.OpenShared(pos[0], log)
	if err != nil {
		return err
	}
	set, closeSet, err := OpenMembers(ctx, cc, nil, log)
	if err != nil {
		return err
	}
	defer closeSet()
	w, err := placement.NewWriter(placement.WriterOptions{
		Members: set, Replicas: cc.Replicas, Client: placement.NewClient([]byte(cc.Secret), nil), Log: log,
	})
	if err != nil {
		return err
	}
	t0 := time.Now()
	n, err := w.LoadAsset(ctx, st, pos[1], *conc, nil)
	ws := w.Stats()
	fmt.Fprintf(stdout, "loaded %s: %d blocks to %d senders (R=%d): %d copies, %d failed, %d inits, in %s\n",
		pos[1], n, len(set.Members()), cc.Replicas, ws.Copies, ws.Failures, ws.Inits, time.Since(t0).Round(time.Millisecond))
	return err
}

// clusterFlags are the flags that name a cluster's senders (origin,
// sender-load).
type clusterFlags struct {
	senders, etcd, prefix, secret string
	replicas                      int
	auth                          etcdFlags
}

func (cf *clusterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&cf.senders, "senders", "", "senders of the cluster: comma-separated base URLs (or id=URL); blocks are written to their owners")
	fs.StringVar(&cf.etcd, "etcd", "", "comma-separated etcd endpoints: take the senders from the set registered there")
	fs.StringVar(&cf.prefix, "etcd-prefix", membership.DefaultPrefix, "etcd key prefix of the sender set")
	fs.IntVar(&cf.replicas, "replicas", 2, "replication factor R: the owners of each block")
	fs.StringVar(&cf.secret, "cluster-secret", "", "cluster secret (default $SLUICE_CLUSTER_SECRET)")
	cf.auth.register(fs)
}

// etcdFlags are the TLS and authentication flags of a connection to etcd
// (every role that talks to etcd). The password comes from a file or
// $SLUICE_ETCD_PASSWORD, never from the command line.
type etcdFlags struct {
	ca, cert, key, user, passwordFile string
}

func (ef *etcdFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&ef.ca, "etcd-ca", "", "PEM file of the CA that signed etcd's certificate (https:// etcd endpoints; default: the system's roots)")
	fs.StringVar(&ef.cert, "etcd-cert", "", "PEM client certificate for an etcd that checks client certificates (--client-cert-auth)")
	fs.StringVar(&ef.key, "etcd-key", "", "PEM key of --etcd-cert")
	fs.StringVar(&ef.user, "etcd-user", "", "etcd user, for an etcd with authentication enabled; the password comes from --etcd-password-file or $SLUICE_ETCD_PASSWORD")
	fs.StringVar(&ef.passwordFile, "etcd-password-file", "", "file holding the password of --etcd-user (default $SLUICE_ETCD_PASSWORD)")
}

// apply lays the etcd flags that were set over c.
func (ef *etcdFlags) apply(fs *flag.FlagSet, c config.Cluster) config.Cluster {
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "etcd-ca":
			c.EtcdTLS.CA = ef.ca
		case "etcd-cert":
			c.EtcdTLS.Cert = ef.cert
		case "etcd-key":
			c.EtcdTLS.Key = ef.key
		case "etcd-user":
			c.EtcdUser = ef.user
		case "etcd-password-file":
			c.EtcdPasswordFile = ef.passwordFile
		}
	})
	return c
}

// registerClusterFlags adds the cluster flags to the origin's flags (nil
// for other roles).
func registerClusterFlags(fs *flag.FlagSet, name string) *clusterFlags {
	if name != "origin" {
		return nil
	}
	cf := &clusterFlags{}
	cf.register(fs)
	return cf
}

// apply lays the cluster flags that were set over cfg.Cluster (and the
// secret from $SLUICE_CLUSTER_SECRET) and validates it.
func (cf *clusterFlags) apply(fs *flag.FlagSet, cfg config.Config) (config.Config, error) {
	if cf == nil {
		return cfg, nil
	}
	cfg.Cluster = cf.cluster(fs, cfg.Cluster)
	if !cfg.Cluster.Enabled() {
		return cfg, nil
	}
	if cfg.Cluster.Secret == "" {
		return cfg, errors.New("--senders/--etcd need a cluster secret: --cluster-secret or $SLUICE_CLUSTER_SECRET")
	}
	return cfg, cfg.Cluster.Validate()
}

// cluster lays the cluster flags that were set over c.
func (cf *clusterFlags) cluster(fs *flag.FlagSet, c config.Cluster) config.Cluster {
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "senders":
			c.Senders = splitList(cf.senders)
		case "etcd":
			c.Etcd = splitList(cf.etcd)
		case "etcd-prefix":
			c.EtcdPrefix = cf.prefix
		case "replicas":
			c.Replicas = cf.replicas
		case "cluster-secret":
			c.Secret = cf.secret
		}
	})
	c = cf.auth.apply(fs, c)
	if c.Replicas == 0 {
		c.Replicas = cf.replicas
	}
	if c.Secret == "" {
		c.Secret = clusterSecret("")
	}
	return c
}

// OpenMembers returns the sender set a cluster configuration names (the
// static list, or the etcd set, waiting up to 10 s for the first listing),
// each member once it proved it holds the cluster key
// (server.OpenSenders); reg, if not nil, receives the rejection counter.
// Call the returned function to release it.
func OpenMembers(ctx context.Context, c config.Cluster, reg prometheus.Registerer, log *slog.Logger) (membership.Set, func(), error) {
	return server.OpenSenders(ctx, c, reg, log)
}

func clusterSecret(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return os.Getenv("SLUICE_CLUSTER_SECRET")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseBytes parses a byte count with an optional K, M, G or T suffix
// (powers of 1024; "MiB" and "MB" spellings accepted alike).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "IB"), "B")
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	return int64(v * float64(mult)), nil
}
