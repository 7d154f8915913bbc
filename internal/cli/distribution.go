package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/server"
)

const distributionSummary = `Runs a distribution server: a regional caching reverse proxy in front of one or
more origins that understands Sluice's URLs and manifests. It fetches from an
origin only when a player asks, makes one upstream request for any number of
concurrent misses of the same URL, keeps the last --window of each live channel
in RAM (--cache-size), answers 404 itself for fragments the channel's manifest
cannot contain, and fails over between origins (in the order given) within one
player request. Players use the same URLs as on the origin:

  sluice distribution --listen :8090 --origin http://origin-1:8080 --origin http://origin-2:8080
  ffprobe http://127.0.0.1:8090/live.isml/manifest.mpd

Metrics (sluice_distribution_*) are at /metrics, health at /healthz and /readyz.
See docs/distribution.md.`

// stringsFlag collects a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string { return strings.Join(*s, ",") }

func (s *stringsFlag) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// sizeFlag is a byte count with an optional k/M/G (1000s) or KiB/MiB/GiB
// (1024s) suffix.
type sizeFlag int64

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s), 10) }

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

func parseSize(v string) (int64, error) {
	t := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q: want bytes with an optional k, M, G, KiB, MiB or GiB suffix", v)
	}
	return int64(f * float64(mult)), nil
}

// runDistribution implements `sluice distribution`.
func runDistribution(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("distribution", "[flags]", stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sluice distribution [flags]\n\n%s\n\nFlags:\n", distributionSummary)
		fs.PrintDefaults()
	}
	d := config.Defaults()
	var (
		origins stringsFlag
		rf      roleFlags
	)
	file := fs.String("config", "", "YAML configuration file (flags override it; keys under distribution:)")
	listen := fs.String("listen", d.Listen, "address to listen on")
	fs.Var(&origins, "origin", "origin base URL, e.g. http://origin-1:8080 (repeatable; tried in this order)")
	window := fs.Duration("window", d.Distribution.Window, "keep this much of each live channel in the cache (fragments behind the live edge by more are dropped)")
	cacheSize := sizeFlag(d.Distribution.CacheBytes)
	fs.Var(&cacheSize, "cache-size", "RAM budget of the cache, e.g. 512MiB or 2G")
	maxObject := sizeFlag(d.Distribution.MaxObject)
	fs.Var(&maxObject, "max-object", "largest response that is cached")
	slack := fs.Int("slack", d.Distribution.Slack, "fragment durations past the live edge (or before the DVR window) a fragment request may lie and still go upstream")
	timeout := fs.Duration("upstream-timeout", d.Distribution.UpstreamTimeout, "fail over when an origin takes longer than this for a response header or pauses its body as long")
	backoff := fs.Duration("backoff", d.Distribution.Backoff, "first circuit-breaker pause of a failed origin (doubles per failure, at most 8x)")
	keepAlive := fs.Duration("keepalive", d.Distribution.KeepAlive, "while players are active, ask each origin for /healthz this often, keeping a connection open (0: off)")
	writeTimeout := writeTimeoutFlag(fs)
	fs.StringVar(&rf.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&rf.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	metricsListen := fs.String("metrics-listen", "", "serve /metrics on this address only (e.g. a private interface), not on --listen")
	rf.signed.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg := config.Defaults()
	if *file != "" {
		var err error
		if cfg, err = config.Load(*file); err != nil {
			return err
		}
	}
	if cfg.Role != "" && cfg.Role != "distribution" {
		return fmt.Errorf("the configuration is for role %q, not %q", cfg.Role, "distribution")
	}
	dc := &cfg.Distribution
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "listen":
			cfg.Listen = *listen
		case "window":
			dc.Window = *window
		case "cache-size":
			dc.CacheBytes = int64(cacheSize)
		case "max-object":
			dc.MaxObject = int64(maxObject)
		case "slack":
			dc.Slack = *slack
		case "upstream-timeout":
			dc.UpstreamTimeout = *timeout
		case "backoff":
			dc.Backoff = *backoff
		case "keepalive":
			dc.KeepAlive = *keepAlive
		case "write-timeout":
			cfg.WriteTimeout = *writeTimeout
		case "metrics-listen":
			cfg.MetricsListen = *metricsListen
		}
	})
	cfg.SignedURLs = rf.signed.apply(fs, cfg.SignedURLs)
	if len(origins) > 0 {
		dc.Origins = origins
	}
	if len(dc.Origins) == 0 {
		fs.Usage()
		return fmt.Errorf("no origin: give --origin (or distribution.origins in --config)")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := rf.logger(stderr)
	if err != nil {
		return err
	}
	srv, err := server.New(cfg, server.Roles{Distribution: true}, log)
	if err != nil {
		return err
	}
	return srv.Serve(ctx, func(addr string) {
		log.Info("sluice distribution listening", "addr", addr, "origins", dc.Origins,
			"window", dc.Window, "cache_bytes", dc.CacheBytes)
	})
}
