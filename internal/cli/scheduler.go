package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/scheduler"
	"github.com/sluice-media/sluice/internal/server"
	"github.com/sluice-media/sluice/internal/webui"
)

const schedulerSummary = `Runs a scheduler of the distributed sending cluster (docs/cluster.md). Players ask it for
a manifest; it opens a session and answers a per-session DASH MPD or HLS playlist whose
segment URLs point straight at the sender that holds each block, with a signed token:

  GET /s/<point>/manifest.mpd | /s/<point>/master.m3u8     open a session (?start=<s>: VOD deep link)
  GET /s/<point>/~<session>/...                            the session's manifests (reloads)

Per session and track it keeps three regions ahead of the play position — current (a send
request at the block's sender), alternative-send (--alt-send blocks staged at the sender and a
replica) and look-ahead (--look-ahead blocks pinned and preloaded into RAM) — batched per sender
per --tick with its lease, advanced by what the senders report sent and by playlist reloads.
The timeline comes from the origins (GET /<point>.isml/view.json), the senders from a static
list or etcd:

  sluice scheduler --origin http://origin:8080 --senders http://s1:9001,http://s2:9001,http://s3:9001 \
    --cluster-secret "$SLUICE_CLUSTER_SECRET"
  sluice scheduler --origin http://origin:8080 --etcd http://127.0.0.1:2379

Metrics (sluice_scheduler_*, and the senders' stats as sluice_cluster_*) are at /metrics.
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
	fs.DurationVar(&f.cfg.TokenTTL, "token-ttl", 10*time.Minute, "lifetime of segment tokens in live manifests (VOD: plus twice the duration)")
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
	var origins stringsFlag
	fs.Var(&origins, "origin", "origin base URL to read the timeline from (repeatable, in order of preference)")
	playerDir := fs.String("player-dir", defaultPlayerDir(), "npm-installed players (dashjs, hls.js) for /play")
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
	set, closeSet, err := OpenMembers(ctx, cc, log)
	if err != nil {
		return err
	}
	defer closeSet()
	scfg := config.Defaults()
	scfg.Listen = *listen
	srv, err := server.New(scfg, server.Roles{}, log)
	if err != nil {
		return err
	}
	tl := &scheduler.OriginTimeline{Origins: origins, Client: &http.Client{Timeout: 5 * time.Second}}
	sched, err := scheduler.New(cfg, tl, set, srv.Metrics.Registry, log)
	if err != nil {
		return err
	}
	srv.SetHome(schedulerHome(sched, webui.New(nil, *playerDir, log)))
	go sched.Run(ctx)
	return srv.Serve(ctx, func(addr string) {
		log.Info("sluice scheduler listening", "addr", addr, "id", sched.ID(), "origins", []string(origins),
			"senders", len(set.Members()), "no_pins", cfg.NoPins)
		fmt.Fprintf(stdout, "Sluice scheduler on http://%s: /s/<point>/manifest.mpd | /s/<point>/master.m3u8\n", addr)
	})
}

// schedulerHome routes /s/ to the scheduler and the player page (/play,
// /player/) to ui; anything else is 404.
func schedulerHome(sched http.Handler, ui http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(scheduler.Prefix, sched)
	mux.Handle("/play", ui)
	mux.Handle("/player/", ui)
	return mux
}
