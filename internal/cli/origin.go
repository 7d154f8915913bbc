package cli

import (
	"context"
	"errors"
	"io"

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

// originRole is `sluice origin`.
func originRole() role {
	return role{name: "origin", summary: originSummary, roles: server.Roles{Ingest: true, Origin: true},
		flags: []flagGroup{storeFlags, pacingFlags, standbyFlags, pullFlags, signedFlags, clusterFlags},
		check: checkOrigin}
}

func runOrigin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return originRole().run(ctx, args, stdout, stderr)
}

// checkOrigin checks what an origin needs of its peers: the points to
// pull, and the secret of a cluster it forwards to.
func checkOrigin(c *config.Config) error {
	if len(c.Ingests) > 0 && len(c.Points) == 0 {
		return errors.New("--ingest needs the points to pull: --point name[:token] or points: in the configuration")
	}
	if c.Cluster.Enabled() && c.Cluster.Secret == "" {
		return errors.New("--senders/--etcd need a cluster secret: --cluster-secret or $SLUICE_CLUSTER_SECRET")
	}
	return nil
}
