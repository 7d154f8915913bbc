package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/server"
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

Metrics (sluice_scheduler_*, and the senders' stats as sluice_cluster_*) are at /metrics; the
status page at / (and /status.json) shows the sessions and every sender's RAM used and pinned,
sessions, RAM hit ratio and refused look-aheads, beside /metrics (on --metrics-listen when set).
With --owner-set-url, the HLS master also has a direct pathway whose segment URLs name each
block's owner set (its sender first, then the other owners), so that a request goes on at a
replica when a sender dies. --dns-listen answers those names over DNS (delegate the zone to the schedulers);
GET /internal/v1/owner-sets (signed with the cluster key) lists them in hosts(5) format.
/readyz answers 200 once a sender of the set answers batches and an origin answers the index
(signed with the cluster key), else 503 with the reasons.
/play?kind=dash&url=/s/<point>/manifest.mpd plays a session in the browser (--player-dir).`

// schedulerRole is `sluice scheduler`.
func schedulerRole() role {
	return role{name: "scheduler", summary: schedulerSummary, roles: server.Roles{Scheduler: true},
		flags: []flagGroup{schedulerFlags, signedFlags, clusterFlags},
		started: func(_ context.Context, _ *server.Server, cfg config.Config, addr string, stdout io.Writer, _ *slog.Logger) {
			fmt.Fprintf(stdout, "Sluice scheduler on http://%s: /s/<point>/manifest.mpd | /s/<point>/master.m3u8\n", addr)
			if cfg.MetricsListen == "" {
				fmt.Fprintf(stdout, "  status page: http://%s/\n", addr)
			}
		}}
}

func runScheduler(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return schedulerRole().run(ctx, args, stdout, stderr)
}
