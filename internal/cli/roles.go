package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/server"
)

// pointFlags collects repeated --point name[:token] flags.
type pointFlags []config.Point

func (p *pointFlags) String() string {
	names := make([]string, len(*p))
	for i, pt := range *p {
		names[i] = pt.Name
	}
	return strings.Join(names, ",")
}

func (p *pointFlags) Set(s string) error {
	pt, err := config.ParsePointFlag(s)
	if err != nil {
		return err
	}
	*p = append(*p, pt)
	return nil
}

// roleFlags are the flags every server role shares.
type roleFlags struct {
	file      string
	listen    string
	data      string
	points    pointFlags
	dvr       time.Duration
	lookahead int
	pacing    string
	maxBox    int64
	limits    limitFlags
	logFormat string
	logLevel  string
	adminTok  string
	onRestart string
	metrics   string
	pushRate  float64
	pushBurst int
	signed    signedFlags
}

func (rf *roleFlags) register(fs *flag.FlagSet) {
	d := config.Defaults()
	fs.StringVar(&rf.file, "config", "", "YAML configuration file (flags override it)")
	fs.StringVar(&rf.listen, "listen", d.Listen, "address to listen on")
	fs.StringVar(&rf.data, "data", d.Data, "data directory (fragments, indexes, assets)")
	fs.Var(&rf.points, "point", "publishing point that accepts pushes, as name or name:token (repeatable)")
	fs.DurationVar(&rf.dvr, "dvr", d.DVRWindow, "DVR window of live manifests")
	fs.IntVar(&rf.lookahead, "lookahead", d.LookAhead, "Smooth LookAheadFragmentCount: tfrf entries per live fragment")
	fs.StringVar(&rf.pacing, "pacing", d.Pacing.Mode, "TCP pacing of media responses: off, client (the player's CMCD rtp or Sluice-Pacing header), server (the server's bottleneck estimate) or both; YAML pacing: for the details (docs/pacing.md)")
	fs.Int64Var(&rf.maxBox, "max-box", d.MaxBox, "largest box accepted in an ingest body, in bytes")
	rf.limits.register(fs)
	fs.StringVar(&rf.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&rf.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&rf.onRestart, "on-restart", d.OnRestart, "what an encoder restart (a push whose times go back into what is stored) does to a point that names no on_restart: continue (place it after what is stored), archive (also cut what was before into an on-demand asset) or refuse (409)")
	fs.StringVar(&rf.adminTok, "admin-token", "", "enable the admin API (/api/points/<pp>/cut) for this bearer token; when empty, $SLUICE_ADMIN_TOKEN or the config's admin_token")
	fs.StringVar(&rf.metrics, "metrics-listen", "", "serve /metrics on this address only (e.g. a private interface), not on --listen")
	fs.Float64Var(&rf.pushRate, "push-rate", d.PushRate, "ingest requests (POST/PUT) one client address may start per second and point; more get 429 with Retry-After (0: no limit)")
	fs.IntVar(&rf.pushBurst, "push-burst", d.PushBurst, "burst of --push-rate: requests a client may start at once")
	rf.signed.register(fs)
}

// config merges the file (if any), the defaults and the flags that were set.
func (rf *roleFlags) config(fs *flag.FlagSet) (config.Config, error) {
	c := config.Defaults()
	if rf.file != "" {
		var err error
		if c, err = config.Load(rf.file); err != nil {
			return c, err
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "listen":
			c.Listen = rf.listen
		case "data":
			c.Data = rf.data
		case "dvr":
			c.DVRWindow = rf.dvr
		case "lookahead":
			c.LookAhead = rf.lookahead
		case "pacing":
			c.Pacing.Mode = rf.pacing
		case "max-box":
			c.MaxBox = rf.maxBox
		case "admin-token":
			c.AdminToken = rf.adminTok
		case "on-restart":
			c.OnRestart = rf.onRestart
		case "metrics-listen":
			c.MetricsListen = rf.metrics
		case "push-rate":
			c.PushRate = rf.pushRate
		case "push-burst":
			c.PushBurst = rf.pushBurst
		}
	})
	c = rf.limits.apply(fs, c)
	c.SignedURLs = rf.signed.apply(fs, c.SignedURLs)
	if c.AdminToken == "" {
		c.AdminToken = os.Getenv("SLUICE_ADMIN_TOKEN")
	}
	for _, p := range rf.points {
		if _, ok := c.Point(p.Name); !ok {
			c.Points = append(c.Points, p)
		}
	}
	return c, c.Validate()
}

func (rf *roleFlags) logger(stderr io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(rf.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch rf.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json")
}

// roleExtras registers a command's own flags on fs, next to the shared role
// flags, and returns what lays them over the merged configuration after the
// flags are parsed (nil: nothing to lay).
type roleExtras func(fs *flag.FlagSet) func(config.Config) (config.Config, error)

// parseRole parses args as the shared role flags plus the extras of the
// command name (summary heads its usage) and returns the merged
// configuration and the logger the flags ask for.
func parseRole(name, summary string, args []string, stderr io.Writer, extras roleExtras) (config.Config, *slog.Logger, error) {
	fs := newFlags(name, "[flags]", stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sluice %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	var rf roleFlags
	rf.register(fs)
	var apply func(config.Config) (config.Config, error)
	if extras != nil {
		apply = extras(fs)
	}
	if err := fs.Parse(args); err != nil {
		return config.Config{}, nil, err
	}
	cfg, err := rf.config(fs)
	if err != nil {
		return cfg, nil, err
	}
	if apply != nil {
		if cfg, err = apply(cfg); err != nil {
			return cfg, nil, err
		}
	}
	log, err := rf.logger(stderr)
	return cfg, log, err
}

// runRole parses the shared flags and serves the given roles until ctx ends.
func runRole(ctx context.Context, name, summary string, roles server.Roles, args []string, stdout, stderr io.Writer) error {
	cfg, log, err := parseRole(name, summary, args, stderr, func(fs *flag.FlagSet) func(config.Config) (config.Config, error) {
		pf := registerPeerFlags(fs, name, roles)
		cf := registerClusterFlags(fs, name)
		return func(cfg config.Config) (config.Config, error) {
			cfg, err := pf.apply(fs, cfg, name)
			if err != nil {
				return cfg, err
			}
			return cf.apply(fs, cfg)
		}
	})
	if err != nil {
		return err
	}
	srv, err := server.New(cfg, roles, log)
	if err != nil {
		return err
	}
	memoryLimit(cfg, log)
	return srv.Serve(ctx, func(addr string) {
		log.Info("sluice "+name+" listening", "addr", addr, "data", cfg.Data, "points", len(cfg.Points))
	})
}
