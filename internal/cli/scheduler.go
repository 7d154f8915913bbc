package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sluice-media/sluice/internal/blockstore"
	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/dns"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/scheduler"
	"github.com/sluice-media/sluice/internal/sender"
	"github.com/sluice-media/sluice/internal/server"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/webui"
)

const schedulerSummary = `Runs a scheduler of the distributed sending cluster (docs/cluster.md). Players ask it for
a manifest; it opens a session and answers a per-session DASH MPD or HLS master whose URLs point
straight at the senders, each a content-steering pathway, with the session's token (valid while
the scheduler renews the session's grant at the senders, every third of --token-ttl):

  GET /s/<point>/manifest.mpd | /s/<point>/master.m3u8     open a session (?start=<s>: VOD deep link)
  GET /s/<point>/~<session>/...                            the session's manifests (reloads)
  GET /s/<point>/~<session>/steering.json                  its steering manifest (dead senders left out)

Per session and track it keeps three regions ahead of the play position — current (a send
request at the block's sender), alternative-send (--alt-send blocks staged at the sender and a
replica) and look-ahead (--look-ahead blocks pinned and preloaded into RAM) — batched per sender
per --tick with its lease, advanced by what the senders report sent, CMCD nor and playlist reloads.
The timeline comes from the origins (GET /<point>.isml/view.json), the senders from a static
list or etcd:

  sluice scheduler --origin http://origin:8080 --senders http://s1:9001,http://s2:9001,http://s3:9001 \
    --cluster-secret "$SLUICE_CLUSTER_SECRET"
  sluice scheduler --origin http://origin:8080 --etcd http://127.0.0.1:2379

Metrics (sluice_scheduler_*, and the senders' stats as sluice_cluster_*) are at /metrics.
With --owner-set-url, the HLS master also has a direct pathway whose segment URLs name each
block's owner set (its sender first, then the other owners), so that a request goes on at a
replica when a sender dies. --dns-listen answers those names over DNS (delegate the zone to the schedulers);
GET /internal/v1/owner-sets (signed with the cluster key) lists them in hosts(5) format.
/readyz answers 200 once a sender of the set answers batches and an origin answers the index
(signed with the cluster key), else 503 with the reasons.
/play?kind=dash&url=/s/<point>/manifest.mpd plays a session in the browser (--player-dir).`

// schedFlags are the flags of the scheduler's behaviour, shared by `sluice
// scheduler` and `sluice serve`. The cluster (senders, R, secret) comes
// from clusterFlags.
type schedFlags struct {
	cfg scheduler.Config
}

func (f *schedFlags) register(fs *flag.FlagSet) {
	d := scheduler.DefaultConfig()
	f.cfg = d
	fs.StringVar(&f.cfg.ID, "id", "", "scheduler ID at the senders (default sched-<host>-<random>)")
	fs.DurationVar(&f.cfg.Tick, "tick", 100*time.Millisecond, "timeslot: at most one batch per sender per tick")
	fs.DurationVar(&f.cfg.Lease, "lease", 3*time.Second, "lease of this scheduler's pins at each sender (renewed every batch)")
	fs.DurationVar(&f.cfg.RetryPeriod, "retry-period", 4*time.Second, "how long a sent block stays pinned for a retry")
	fs.IntVar(&f.cfg.AltSend, "alt-send", d.AltSend, "blocks of the alternative-send region (staged at the sender and a replica)")
	fs.IntVar(&f.cfg.LookAhead, "look-ahead", d.LookAhead, "blocks of the look-ahead region (pinned and preloaded)")
	fs.IntVar(&f.cfg.Guard, "guard", d.Guard, "blocks pinned at the play position on the other bitrates of a kind")
	fs.BoolVar(&f.cfg.NoPins, "no-pins", false, "no reservations at all (senders work as plain LRU caches; for comparison)")
	fs.IntVar(&f.cfg.LiveStart, "live-start", 4, "fragments behind the live edge a new live session is assumed to start")
	fs.DurationVar(&f.cfg.TokenTTL, "token-ttl", time.Minute, "how long senders accept a session's token without a renewal (renewed every third of it while the session lives; ended with it)")
	fs.DurationVar(&f.cfg.SteeringTTL, "steering-ttl", 2*time.Second, "TTL of the sessions' content steering manifests (how often players ask which senders to use)")
	fs.IntVar(&f.cfg.Pathways, "pathways", 8, "most senders a session's manifests name as pathways (content steering; at most 16)")
	fs.DurationVar(&f.cfg.Idle, "session-idle", time.Minute, "end a session after this long without a manifest request or a sent block")
}

// config returns the scheduler configuration for a cluster.
func (f *schedFlags) config(cc config.Cluster) (scheduler.Config, error) {
	c := f.cfg
	if cc.Secret == "" {
		return c, errors.New("a cluster secret is required: --cluster-secret or $SLUICE_CLUSTER_SECRET")
	}
	c.Secret = []byte(cc.Secret)
	c.Replicas = cc.Replicas
	return c, nil
}

func runScheduler(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("scheduler", "[flags]", stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sluice scheduler [flags]\n\n%s\n\nFlags:\n", schedulerSummary)
		fs.PrintDefaults()
	}
	var sf schedFlags
	sf.register(fs)
	var cf clusterFlags
	cf.register(fs)
	listen := fs.String("listen", "127.0.0.1:8090", "address to listen on")
	advertise := fs.String("advertise", "", "base URL senders reach this scheduler at, to fetch session playlists for their players (default http://<listen address>, the loopback for an unspecified host: set it when senders run elsewhere)")
	var origins stringsFlag
	fs.Var(&origins, "origin", "origin base URL to read the timeline from (repeatable, in order of preference)")
	playerDir := fs.String("player-dir", defaultPlayerDir(), "npm-installed players (dashjs, hls.js, shaka-player) for /play")
	fs.StringVar(&sf.cfg.OwnerSetURL, "owner-set-url", "", "name blocks by owner set: e.g. http://{owners}.senders.example:9001, a name resolving to every owner (docs/cluster.md)")
	dnsListen := fs.String("dns-listen", "", "answer the owner-set names of --owner-set-url over DNS (UDP) at this address, e.g. 0.0.0.0:53")
	writeTimeout := writeTimeoutFlag(fs)
	metricsListen := fs.String("metrics-listen", "", "serve /metrics on this address only (e.g. a private interface), not on --listen")
	var of openFlags
	of.register(fs)
	var sgn signedFlags
	sgn.register(fs)
	rf := roleFlags{}
	fs.StringVar(&rf.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&rf.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cc := cf.cluster(fs, config.Cluster{})
	if !cc.Enabled() {
		return errors.New("name the senders: --senders or --etcd")
	}
	if err := cc.Validate(); err != nil {
		return err
	}
	cfg, err := sf.config(cc)
	if err != nil {
		return err
	}
	if len(origins) == 0 {
		return errors.New("--origin is required (where the timeline comes from)")
	}
	log, err := rf.logger(stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	scfg := config.Defaults()
	scfg.Listen = *listen
	scfg.WriteTimeout = *writeTimeout
	scfg.MetricsListen = *metricsListen
	srv, err := server.New(scfg, server.Roles{}, log)
	if err != nil {
		return err
	}
	set, closeSet, err := OpenMembers(ctx, cc, srv.Metrics.Registry, log)
	if err != nil {
		return err
	}
	defer closeSet()
	tl := &scheduler.OriginTimeline{Origins: origins, Client: &http.Client{Timeout: 5 * time.Second}, Secret: cfg.Secret}
	cfg.URL = strings.TrimSuffix(*advertise, "/")
	if cfg.URL == "" {
		cfg.URL = "http://" + listenURLHost(*listen)
	}
	sched, err := scheduler.New(cfg, tl, set, srv.Metrics.Registry, log)
	if err != nil {
		return err
	}
	sessions, err := sgn.guard(fs, sched, srv, log)
	if err != nil {
		return err
	}
	ui := webui.New(nil, *playerDir, log)
	ui.SetCluster(sched) // the status page: the cluster panel
	srv.SetHome(schedulerHome(of.limit(sessions, srv, log), sched, ui))
	// /readyz: a live sender answered and an origin answered the index.
	srv.AddCheck(sched.Ready)
	if *dnsListen != "" {
		if err := serveOwnerSetDNS(ctx, sched, *dnsListen, log); err != nil {
			return err
		}
	}
	go sched.Run(ctx)
	return srv.Serve(ctx, func(addr string) {
		log.Info("sluice scheduler listening", "addr", addr, "id", sched.ID(), "origins", []string(origins),
			"senders", len(set.Members()), "no_pins", cfg.NoPins)
		fmt.Fprintf(stdout, "Sluice scheduler on http://%s: /s/<point>/manifest.mpd | /s/<point>/master.m3u8\n", addr)
	})
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

// serveOwnerSetDNS answers the scheduler's owner-set names over UDP at
// addr until ctx ends.
func serveOwnerSetDNS(ctx context.Context, sched *scheduler.Scheduler, addr string, log *slog.Logger) error {
	zone := sched.Zone()
	if zone == "" {
		return errors.New("--dns-listen needs --owner-set-url with a domain after {owners} (e.g. http://{owners}.senders.example:9001)")
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	srv := &dns.Server{Zone: zone, Lookup: sched.LookupOwnerSet, Log: log}
	go func() {
		if err := srv.ServeUDP(ctx, pc); err != nil {
			log.Error("owner-set DNS stopped", "err", err)
		}
	}()
	log.Info("owner-set DNS listening", "addr", pc.LocalAddr().String(), "zone", zone)
	return nil
}

// schedulerHome routes /s/ to sessions (the scheduler behind its limits),
// the owner-set listing to the scheduler and the player page (/play,
// /player/) to ui; anything else is 404.
func schedulerHome(sessions http.Handler, sched *scheduler.Scheduler, ui http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(scheduler.Prefix, sessions)
	mux.HandleFunc("GET /internal/v1/owner-sets", sched.OwnerSetHosts)
	mux.Handle("/play", ui)
	mux.Handle("/player/", ui)
	mux.Handle("GET /{$}", ui)
	mux.Handle("GET /status.json", ui)
	return mux
}

// localCluster is the single-node cluster of `sluice serve`: one sender
// whose mass storage is the origin's own store (no second copy of any
// block), and one scheduler over it, both on the server's own address, so
// that the single-node default takes the same path as a cluster: players
// get per-session manifests from /s/ and fetch every segment from the
// sender at /b/, which the scheduler reserves ahead of them over the
// sender's internal API.
type localCluster struct {
	sched    *scheduler.Scheduler
	sessions http.Handler // sched behind its limits (nil: sched)
	snd      *sender.Sender
	bs       *blockstore.Store
	set      *lateSet
}

// newLocalCluster builds the sender (RAM budget ram) and the scheduler of a
// server with a store. They start with start.
func newLocalCluster(srv *server.Server, cfg config.Config, sf schedFlags, ram int64, secret string, log *slog.Logger) (*localCluster, error) {
	if secret == "" {
		var b [16]byte
		rand.Read(b[:])
		secret = hex.EncodeToString(b[:])
	}
	bs, err := blockstore.New(blockstore.Options{Backend: &storeBackend{st: srv.Store}, RAMBudget: ram, Log: log})
	if err != nil {
		return nil, err
	}
	sc := sf.cfg
	sc.Secret, sc.Replicas = []byte(secret), 1
	if sc.ID == "" {
		sc.ID = "local"
	}
	// Segment URLs on the host the player asked: /b/...
	sc.ClientURL = func(membership.Member) string { return "" }
	set := newLateSet()
	tl := scheduler.StoreTimeline{Store: srv.Store, DVR: cfg.DVR}
	sched, err := scheduler.New(sc, tl, set, srv.Metrics.Registry, log)
	if err != nil {
		bs.Close()
		return nil, err
	}
	// The sender answers its players' session playlists with the
	// scheduler in process.
	snd, err := sender.New(sender.Options{ID: "local", Secret: []byte(secret), Store: bs, Registry: srv.Metrics.Registry,
		Playlists: sched, Log: log})
	if err != nil {
		bs.Close()
		return nil, err
	}
	return &localCluster{sched: sched, snd: snd, bs: bs, set: set}, nil
}

// handler routes /s/ to the scheduler, the sender's client and internal
// URLs to the sender and everything else to next.
func (lc *localCluster) handler(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	lc.snd.Routes(mux)
	var sessions http.Handler = lc.sched
	if lc.sessions != nil {
		sessions = lc.sessions
	}
	mux.Handle(scheduler.Prefix, sessions)
	mux.Handle("/", next)
	return mux
}

// start runs the sender and the scheduler until ctx ends; addr is the
// server's bound address, where the scheduler finds the sender.
func (lc *localCluster) start(ctx context.Context, addr string) {
	lc.snd.SetURL("http://" + addr)
	lc.set.set(membership.Member{ID: "local", URL: "http://" + addr})
	go lc.snd.Run(ctx)
	go func() {
		lc.sched.Run(ctx)
		lc.bs.Close()
	}()
}

// lateSet is a sender set whose one member is known once the server has
// bound its address.
type lateSet struct {
	mu      sync.Mutex
	ms      []membership.Member
	changed chan struct{}
}

func newLateSet() *lateSet { return &lateSet{changed: make(chan struct{})} }

func (l *lateSet) set(ms ...membership.Member) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ms = ms
	close(l.changed)
	l.changed = make(chan struct{})
}

// Members implements membership.Set.
func (l *lateSet) Members() []membership.Member {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]membership.Member(nil), l.ms...)
}

// Changed implements membership.Set.
func (l *lateSet) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// storeBackend is a blockstore.Backend over the origin's store: every
// fragment of every point is a block, read in place (sendfile from the
// store's files); nothing is written to it.
type storeBackend struct {
	st *store.Store
}

var errReadOnly = errors.New("the local sender reads the origin's store; blocks are not written to it")

// PutBlock implements blockstore.Backend.
func (b *storeBackend) PutBlock(context.Context, cluster.BlockID, []byte) (bool, error) {
	return false, errReadOnly
}

// OpenBlock implements blockstore.Backend.
func (b *storeBackend) OpenBlock(_ context.Context, id cluster.BlockID) (blockstore.Object, error) {
	p, err := b.st.Point(id.Point)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", id, blockstore.ErrNotFound)
	}
	f, ref, err := p.OpenFragment(id.Track, id.Start)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("block %s: %w", id, blockstore.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return fileObject{f, ref.Size}, nil
}

// StatBlock implements blockstore.Backend.
func (b *storeBackend) StatBlock(_ context.Context, id cluster.BlockID) (int64, error) {
	p, err := b.st.Point(id.Point)
	if err != nil {
		return 0, fmt.Errorf("block %s: %w", id, blockstore.ErrNotFound)
	}
	ref, err := p.Lookup(id.Track, id.Start)
	if err != nil {
		return 0, fmt.Errorf("block %s: %w", id, blockstore.ErrNotFound)
	}
	return ref.Size, nil
}

// PutInit implements blockstore.Backend.
func (b *storeBackend) PutInit(context.Context, string, string, []byte, string) error {
	return errReadOnly
}

// Init implements blockstore.Backend.
func (b *storeBackend) Init(_ context.Context, point, track string) ([]byte, string, error) {
	p, err := b.st.Point(point)
	if err != nil {
		return nil, "", fmt.Errorf("init %s/%s: %w", point, track, blockstore.ErrNotFound)
	}
	data, err := p.Init(track)
	if err != nil || len(data) == 0 {
		return nil, "", fmt.Errorf("init %s/%s: %w", point, track, blockstore.ErrNotFound)
	}
	ct := "video/mp4"
	if info, err := p.TrackInfo(track); err == nil && info.Kind == "audio" {
		ct = "audio/mp4"
	}
	return data, ct, nil
}

// Blocks implements blockstore.Backend: the fragments of every point.
func (b *storeBackend) Blocks() int {
	n := 0
	for _, name := range b.st.Points() {
		if p, err := b.st.Point(name); err == nil {
			for _, t := range p.View(0).Tracks {
				n += len(t.Frags)
			}
		}
	}
	return n
}

// fileObject is a stored fragment opened for reading.
type fileObject struct {
	f    *os.File
	size int64
}

func (o fileObject) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }
func (o fileObject) Close() error                            { return o.f.Close() }
func (o fileObject) Size() int64                             { return o.size }
func (o fileObject) File() *os.File                          { return o.f }
