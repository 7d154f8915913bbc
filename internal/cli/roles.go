package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/server"
)

// role is a serving command: the roles it runs (assembled by
// internal/server) and the flags it binds to the configuration.
type role struct {
	name, summary string
	roles         server.Roles
	flags         []flagGroup
	// check, if set, checks the merged configuration.
	check func(c *config.Config) error
	// started, if set, runs once the server serves at addr.
	started func(ctx context.Context, srv *server.Server, cfg config.Config, addr string, stdout io.Writer, log *slog.Logger)
}

// run parses args into the configuration and serves the role until ctx
// ends.
func (r role) run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := r.parse(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	srv, err := server.Open(ctx, cfg, r.roles, log)
	if err != nil {
		return err
	}
	return srv.Serve(ctx, func(addr string) {
		attrs := []any{"addr", addr}
		if r.roles.Ingest || r.roles.Origin || r.roles.Sender {
			attrs = append(attrs, "data", cfg.Data)
		}
		if r.roles.Ingest || r.roles.Origin {
			attrs = append(attrs, "points", len(cfg.Points))
		}
		log.Info("sluice "+r.name+" listening", attrs...)
		if r.started != nil {
			r.started(ctx, srv, cfg, addr, stdout, log)
		}
	})
}

// parse turns the flags and the YAML file (--config) into the role's
// configuration: built-in defaults (config.DefaultsFor), then the file,
// then the flags given. Every flag is bound once, to the field it sets:
// the flags are parsed once to find --config and again over the file's
// values, so that the flags given win.
func (r role) parse(args []string, stderr io.Writer) (config.Config, error) {
	fs := newFlags(r.name, "[flags]", stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sluice %s [flags]\n\n%s\n\nFlags:\n", r.name, r.summary)
		fs.PrintDefaults()
	}
	c := config.DefaultsFor(r.name)
	var file string
	fs.StringVar(&file, "config", "", "YAML configuration file (flags override it; docs/config.md)")
	commonFlags(fs, &c)
	for _, g := range r.flags {
		g(fs, &c)
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if file != "" {
		fc, err := config.LoadFor(r.name, file)
		if err != nil {
			return c, err
		}
		c = fc
		fs.VisitAll(func(f *flag.Flag) {
			if l, ok := f.Value.(*listFlag); ok {
				l.reparse()
			}
		})
		if err := fs.Parse(args); err != nil {
			return c, err
		}
	}
	if c.AdminToken == "" {
		c.AdminToken = os.Getenv("SLUICE_ADMIN_TOKEN")
	}
	if c.Cluster.Secret == "" {
		c.Cluster.Secret = os.Getenv("SLUICE_CLUSTER_SECRET")
	}
	if c.PlayerDir == "" {
		c.PlayerDir = defaultPlayerDir()
	}
	if c.Cluster.Replicas == 0 {
		c.Cluster.Replicas = config.Defaults().Cluster.Replicas
	}
	if r.check != nil {
		if err := r.check(&c); err != nil {
			return c, err
		}
	}
	return c, c.Validate()
}

// newLogger is the logger of --log-level and --log-format (log: in YAML).
func newLogger(l config.Log, stderr io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch l.Format {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json")
}
