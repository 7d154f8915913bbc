package cli

import (
	"context"
	"errors"
	"io"

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

// distributionRole is `sluice distribution`.
func distributionRole() role {
	return role{name: "distribution", summary: distributionSummary, roles: server.Roles{Distribution: true},
		flags: []flagGroup{distributionFlags, signedFlags},
		check: func(c *config.Config) error {
			if len(c.Distribution.Origins) == 0 {
				return errors.New("no origin: give --origin (or distribution.origins in --config)")
			}
			return nil
		}}
}

func runDistribution(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return distributionRole().run(ctx, args, stdout, stderr)
}
