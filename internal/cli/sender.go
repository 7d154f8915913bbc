package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/server"
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

The status page at / (and /status.json) shows the sender's RAM used and pinned, sessions,
RAM hit ratio and refused look-aheads, beside /metrics (on --metrics-listen when set: keep
both off a public --listen that way).

  sluice sender --listen 127.0.0.1:9001 --data ./s1 --ram 512M --cluster-secret S \
      --etcd http://127.0.0.1:2379`

// senderRole is `sluice sender`.
func senderRole() role {
	return role{name: "sender", summary: senderSummary, roles: server.Roles{Sender: true},
		flags: []flagGroup{senderFlags, pacingFlags, etcdFlags}}
}

func runSender(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return senderRole().run(ctx, args, stdout, stderr)
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
	c := config.Defaults()
	clusterFlags(fs, &c)
	conc := fs.Int("concurrency", 4, "blocks written at a time")
	verbose := fs.Bool("v", false, "debug logging")
	pos, err := toolArgs(fs, args, 2, "need a data directory and an asset name")
	if err != nil {
		return err
	}
	log := toolLogger(stderr, *verbose)
	cc := c.Cluster
	if cc.Secret == "" {
		cc.Secret = os.Getenv("SLUICE_CLUSTER_SECRET")
	}
	t0 := time.Now()
	res, err := server.LoadAsset(ctx, cc, pos[0], pos[1], *conc, log)
	if res.Senders == 0 && err != nil {
		return err
	}
	fmt.Fprintf(stdout, "loaded %s: %d blocks to %d senders (R=%d): %d copies, %d failed, %d inits, in %s\n",
		pos[1], res.Blocks, res.Senders, cc.Replicas, res.Stats.Copies, res.Stats.Failures, res.Stats.Inits, time.Since(t0).Round(time.Millisecond))
	return err
}
