package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/server"
)

const originSummary = `Serves players from the data directory: Smooth (/<pp>.isml/Manifest), DASH (/<pp>.isml/manifest.mpd)
and HLS (/<pp>.isml/master.m3u8) from the same stored fragments, and takes encoder pushes
for the configured publishing points.

With --ingest (repeatable; YAML ingests:) it pulls every configured point from those ingests:
StreamManifest, then Streams(<id>) for each stream, from the first one reachable; on a failure
(connection lost, body ended without end of stream, nothing stored for about two fragment
durations) it resumes from the next one with StartTime, so the archive has no gap and no
duplicate. /readyz answers 200 once an ingest is reachable and every live stream it pulls is connected
(at most --max-pulls streams, live ones first).

  sluice origin --point live --ingest http://ingest-a:8080 --ingest http://ingest-b:8080`

func runOrigin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runRole(ctx, "origin", originSummary, server.Roles{Ingest: true, Origin: true}, args, stdout, stderr)
}

// peerFlags are the flags that name a role's peers; which ones a command
// has depends on its role.
type peerFlags struct {
	ingests       urlFlags
	standby       string
	standbyBuffer int64
	pullStall     time.Duration
	maxPulls      int
}

// urlFlags collects a repeated URL flag.
type urlFlags []string

func (u *urlFlags) String() string { return strings.Join(*u, ",") }

func (u *urlFlags) Set(s string) error {
	*u = append(*u, s)
	return nil
}

// registerPeerFlags adds the peer flags of a role: --standby for roles that
// take pushes, --ingest and --pull-stall for the origin.
func registerPeerFlags(fs *flag.FlagSet, name string, roles server.Roles) *peerFlags {
	pf := &peerFlags{}
	if roles.Ingest {
		fs.StringVar(&pf.standby, "standby", "", "push proxy: forward every push to this standby ingest (base URL, e.g. http://ingest-b:8080)")
		fs.Int64Var(&pf.standbyBuffer, "standby-buffer", 8<<20, "bytes of a push queued for the standby before the proxy connection is dropped (it then catches up from the store)")
	}
	if name == "origin" {
		fs.Var(&pf.ingests, "ingest", "pull the configured points from this ingest (base URL; repeatable, in order of preference)")
		fs.DurationVar(&pf.pullStall, "pull-stall", 0, "fail a pull over to the next ingest when it stores nothing for this long (0: two fragment durations, at least 3 s)")
		fs.IntVar(&pf.maxPulls, "max-pulls", config.Defaults().MaxPulls, "streams pulled from ingests at a time; live streams first, the rest when a pull ends (0: unbounded)")
	}
	return pf
}

// apply lays the peer flags that were set over cfg and checks that a
// configuration file naming a role names this one.
func (pf *peerFlags) apply(fs *flag.FlagSet, cfg config.Config, name string) (config.Config, error) {
	if cfg.Role != "" && cfg.Role != name {
		return cfg, fmt.Errorf("the configuration is for role %q, not %q", cfg.Role, name)
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "ingest":
			cfg.Ingests = append([]string(nil), pf.ingests...)
		case "standby":
			cfg.Standby = pf.standby
		case "standby-buffer":
			cfg.StandbyBuffer = pf.standbyBuffer
		case "pull-stall":
			cfg.PullStall = pf.pullStall
		case "max-pulls":
			cfg.MaxPulls = pf.maxPulls
		}
	})
	if len(cfg.Ingests) > 0 && len(cfg.Points) == 0 {
		return cfg, fmt.Errorf("--ingest needs the points to pull: --point name[:token] or points: in the configuration")
	}
	return cfg, cfg.Validate()
}
