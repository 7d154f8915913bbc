package cli

import (
	"flag"
	"strings"

	"github.com/sluice-media/sluice/internal/config"
)

// A flag group binds a set of flags to fields of the configuration: each
// flag is written once, as a Var on the field it sets, with the field's
// built-in value as its default. parseRole lays the YAML file under the
// flags by parsing twice (see there).
type flagGroup func(fs *flag.FlagSet, c *config.Config)

// listFlag binds a repeatable (or, with comma, comma-separated) flag to a
// []string field: given flags replace the file's list.
type listFlag struct {
	p     *[]string
	comma bool
	set   bool
}

func (l *listFlag) String() string {
	if l == nil || l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l *listFlag) Set(s string) error {
	if !l.set {
		*l.p, l.set = nil, true
	}
	if l.comma {
		*l.p = append(*l.p, splitList(s)...)
	} else {
		*l.p = append(*l.p, s)
	}
	return nil
}

// reparse forgets that the flag was set, before the flags are parsed
// again over the file.
func (l *listFlag) reparse() { l.set = false }

func listVar(fs *flag.FlagSet, p *[]string, name, usage string) {
	fs.Var(&listFlag{p: p}, name, usage)
}

func commaVar(fs *flag.FlagSet, p *[]string, name, usage string) {
	fs.Var(&listFlag{p: p, comma: true}, name, usage)
}

// pointFlag adds repeated --point name[:token] flags to the points, each
// unless the file configures it already.
type pointFlag struct{ p *[]config.Point }

func (f pointFlag) String() string {
	if f.p == nil {
		return ""
	}
	names := make([]string, len(*f.p))
	for i, pt := range *f.p {
		names[i] = pt.Name
	}
	return strings.Join(names, ",")
}

func (f pointFlag) Set(s string) error {
	pt, err := config.ParsePointFlag(s)
	if err != nil {
		return err
	}
	for _, have := range *f.p {
		if have.Name == pt.Name {
			return nil
		}
	}
	*f.p = append(*f.p, pt)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// commonFlags are the flags of every serving role: listening, logging,
// metrics and the write-progress bound. (/healthz and /readyz need no
// flag: every role answers them.)
func commonFlags(fs *flag.FlagSet, c *config.Config) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "address to listen on")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "log level: debug, info, warn, error")
	fs.StringVar(&c.Log.Format, "log-format", c.Log.Format, "log format: text or json")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "serve /metrics (and the status page of a scheduler or sender) on this address only (e.g. a private interface), not on --listen")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "close a response that makes no progress (its client reads nothing) for this long (0: never)")
	fs.StringVar(&c.HTTPEngine, "http-engine", c.HTTPEngine, "HTTP/1.1 server of --listen: eventloop (players' GET/HEAD on an event loop, the rest on net/http) or nethttp")
	fs.StringVar(&c.TLSListen, "tls-listen", c.TLSListen, "also serve HTTPS (HTTP/2 and HTTP/1.1) on this address, with --tls-cert and --tls-key")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate (with its chain) of --tls-listen; reloaded when the file changes")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key of --tls-cert")
}

// storeFlags are the flags of the roles over a data directory of
// publishing points (ingest, origin, serve): points, manifests and the
// bounds of pushes (docs/ingest.md, "Limits").
func storeFlags(fs *flag.FlagSet, c *config.Config) {
	fs.StringVar(&c.Data, "data", c.Data, "data directory (fragments, indexes, assets)")
	fs.Var(pointFlag{&c.Points}, "point", "publishing point that accepts pushes, as name or name:token (repeatable)")
	fs.DurationVar(&c.DVRWindow, "dvr", c.DVRWindow, "DVR window of live manifests")
	fs.IntVar(&c.LookAhead, "lookahead", c.LookAhead, "Smooth LookAheadFragmentCount: tfrf entries per live fragment")
	fs.Var(&c.MaxBox, "max-box", "largest `size` of a box accepted in an ingest body (docs/config.md, sizes)")
	fs.StringVar(&c.OnRestart, "on-restart", c.OnRestart, "what an encoder restart (a push whose times go back into what is stored) does to a point that names no on_restart: continue (place it after what is stored), archive (also cut what was before into an on-demand asset) or refuse (409)")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "enable the admin API (/api/points/<pp>/cut) for this bearer token; when empty, $SLUICE_ADMIN_TOKEN or the config's admin_token")
	fs.Float64Var(&c.PushRate, "push-rate", c.PushRate, "ingest requests (POST/PUT) one client address may start per second and point; more get 429 with Retry-After (0: no limit)")
	fs.IntVar(&c.PushBurst, "push-burst", c.PushBurst, "burst of --push-rate: requests a client may start at once")
	fs.DurationVar(&c.IngestIdle, "ingest-idle", c.IngestIdle, "abort a push (408) that delivers no header, fragment or end of stream for this long")
	fs.Int64Var(&c.IngestMinRate, "ingest-min-rate", c.IngestMinRate, "while a box of a push is arriving, abort the push (408) when fewer than this many bytes/s arrive over --ingest-rate-window (0: off)")
	fs.DurationVar(&c.IngestRateWindow, "ingest-rate-window", c.IngestRateWindow, "window of --ingest-min-rate")
	fs.Var(&c.IngestMemory, "ingest-memory", "memory budget (`size`) of the box buffers of all pushes together, e.g. 512MiB; over it the push holding the most gets 503 with Retry-After (0: unbounded)")
	fs.IntVar(&c.MaxPushes, "max-pushes", c.MaxPushes, "concurrent pushes per publishing point; one more gets 503 with Retry-After (0: unbounded)")
	fs.DurationVar(&c.StreamExpiry, "stream-expiry", c.StreamExpiry, "remove a stream that never received a fragment this long after its last push, and list a live stream that received nothing for this long as abandoned (0: never)")
	fs.Var(&c.MinFree, "min-free", "free space (`size`) the data directory needs for /readyz to answer ready, e.g. 64MiB")
}

// pacingFlags: the TCP pacing of media responses (origin, sender).
func pacingFlags(fs *flag.FlagSet, c *config.Config) {
	fs.StringVar(&c.Pacing.Mode, "pacing", c.Pacing.Mode, "TCP pacing of media responses: off, client (the player's CMCD rtp or Sluice-Pacing header), server (the server's bottleneck estimate) or both; YAML pacing: for the details (docs/pacing.md)")
}

// signedFlags require signed player URLs (origin, distribution, serve,
// scheduler; docs/origin.md).
func signedFlags(fs *flag.FlagSet, c *config.Config) {
	fs.BoolVar(&c.SignedURLs.Require, "signed-urls", c.SignedURLs.Require, "player requests need a signed URL (?st= token or its cookie; mint them with 'sluice sign-url'): 403 otherwise")
	fs.StringVar(&c.SignedURLs.KeyFile, "url-key-file", c.SignedURLs.KeyFile, "file holding the signing key of player URLs (default $SLUICE_URL_KEY)")
	commaVar(fs, &c.SignedURLs.Points, "signed-points", "comma-separated points that need signed URLs (default: every point)")
}

// standbyFlags: the push proxy of the roles that take pushes (ingest,
// origin).
func standbyFlags(fs *flag.FlagSet, c *config.Config) {
	fs.StringVar(&c.Standby, "standby", c.Standby, "push proxy: forward every push to this standby ingest (base URL, e.g. http://ingest-b:8080)")
	if c.StandbyBuffer == 0 {
		c.StandbyBuffer = 8 << 20
	}
	fs.Var(&c.StandbyBuffer, "standby-buffer", "`size` of a push queued for the standby before the proxy connection is dropped (it then catches up from the store)")
}

// pullFlags: the origin's pull from ingests.
func pullFlags(fs *flag.FlagSet, c *config.Config) {
	listVar(fs, &c.Ingests, "ingest", "pull the configured points from this ingest (base URL; repeatable, in order of preference)")
	fs.DurationVar(&c.PullStall, "pull-stall", c.PullStall, "fail a pull over to the next ingest when it stores nothing for this long (0: two fragment durations, at least 3 s)")
	fs.IntVar(&c.MaxPulls, "max-pulls", c.MaxPulls, "streams pulled from ingests at a time; live streams first, the rest when a pull ends (0: unbounded)")
}

// etcdFlags: the etcd connection of a cluster, its TLS and
// authentication, and the cluster secret (every role that talks to the
// cluster). The etcd password comes from a file or $SLUICE_ETCD_PASSWORD,
// never from the command line.
func etcdFlags(fs *flag.FlagSet, c *config.Config) {
	k := &c.Cluster
	commaVar(fs, &k.Etcd, "etcd", "comma-separated etcd endpoints of the sender set (a sender registers there; the others take the senders from there)")
	fs.StringVar(&k.EtcdPrefix, "etcd-prefix", k.EtcdPrefix, "etcd key prefix of the sender set")
	fs.StringVar(&k.Secret, "cluster-secret", k.Secret, "cluster secret for the internal API and session tokens (default $SLUICE_CLUSTER_SECRET)")
	fs.StringVar(&k.EtcdTLS.CA, "etcd-ca", k.EtcdTLS.CA, "PEM file of the CA that signed etcd's certificate (https:// etcd endpoints; default: the system's roots)")
	fs.StringVar(&k.EtcdTLS.Cert, "etcd-cert", k.EtcdTLS.Cert, "PEM client certificate for an etcd that checks client certificates (--client-cert-auth)")
	fs.StringVar(&k.EtcdTLS.Key, "etcd-key", k.EtcdTLS.Key, "PEM key of --etcd-cert")
	fs.StringVar(&k.EtcdUser, "etcd-user", k.EtcdUser, "etcd user, for an etcd with authentication enabled; the password comes from --etcd-password-file or $SLUICE_ETCD_PASSWORD")
	fs.StringVar(&k.EtcdPasswordFile, "etcd-password-file", k.EtcdPasswordFile, "file holding the password of --etcd-user (default $SLUICE_ETCD_PASSWORD)")
}

// clusterFlags name a cluster's senders (origin, scheduler, sender-load):
// a static list or etcd, R and the secret.
func clusterFlags(fs *flag.FlagSet, c *config.Config) {
	commaVar(fs, &c.Cluster.Senders, "senders", "senders of the cluster: comma-separated base URLs (or id=URL); blocks are written to their owners")
	fs.IntVar(&c.Cluster.Replicas, "replicas", c.Cluster.Replicas, "replication factor R: the owners of each block")
	etcdFlags(fs, c)
}

// distributionFlags: the cache in front of the origins.
func distributionFlags(fs *flag.FlagSet, c *config.Config) {
	d := &c.Distribution
	listVar(fs, &d.Origins, "origin", "origin base URL, e.g. http://origin-1:8080 (repeatable; tried in this order)")
	fs.DurationVar(&d.Window, "window", d.Window, "keep this much of each live channel in the cache (fragments behind the live edge by more are dropped)")
	fs.Var(&d.CacheBytes, "cache-size", "RAM budget (`size`) of the cache, e.g. 512MiB or 2G (docs/config.md, sizes)")
	fs.Var(&d.MaxObject, "max-object", "largest response (`size`) that is cached")
	fs.IntVar(&d.Slack, "slack", d.Slack, "fragment durations past the live edge (or before the DVR window) a fragment request may lie and still go upstream")
	fs.DurationVar(&d.UpstreamTimeout, "upstream-timeout", d.UpstreamTimeout, "fail over when an origin takes longer than this for a response header or pauses its body as long")
	fs.DurationVar(&d.Backoff, "backoff", d.Backoff, "first circuit-breaker pause of a failed origin (doubles per failure, at most 8x)")
	fs.DurationVar(&d.KeepAlive, "keepalive", d.KeepAlive, "while players are active, ask each origin for /healthz this often, keeping a connection open (0: off)")
	fs.DurationVar(&d.ManifestRefresh, "manifest-refresh", d.ManifestRefresh, "answer a live manifest that is due to change (max-age=0) from the cache this long before revalidating it upstream (0: never keep it)")
}

// openFlags: the per-client limit on session opens (/s/) of a scheduler
// (scheduler, serve).
func openFlags(fs *flag.FlagSet, c *config.Config) {
	s := &c.Scheduler
	fs.Float64Var(&s.OpenRate, "open-rate", s.OpenRate, "sessions one client address may open per second (/s/<point>/manifest.mpd or master.m3u8); more get 429 with Retry-After (0: no limit)")
	fs.IntVar(&s.OpenBurst, "open-burst", s.OpenBurst, "burst of --open-rate: sessions a client may open at once")
}

// playerDirFlag: the npm-installed players of the status page and /play.
func playerDirFlag(fs *flag.FlagSet, c *config.Config) {
	if c.PlayerDir == "" {
		c.PlayerDir = defaultPlayerDir()
	}
	fs.StringVar(&c.PlayerDir, "player-dir", c.PlayerDir, "directory holding the npm-installed players (dashjs, hls.js, shaka-player) for the status page and /play")
}

// schedulerFlags: the scheduler's timeline, regions and session URLs.
func schedulerFlags(fs *flag.FlagSet, c *config.Config) {
	s := &c.Scheduler
	listVar(fs, &s.Origins, "origin", "origin base URL to read the timeline from (repeatable, in order of preference)")
	fs.StringVar(&s.Advertise, "advertise", s.Advertise, "base URL senders reach this scheduler at, to fetch session playlists for their players (default http://<bound listen address>, the loopback for an unspecified host: set it when senders run elsewhere)")
	fs.StringVar(&s.ID, "id", s.ID, "scheduler ID at the senders (default sched-<host>-<random>)")
	fs.DurationVar(&s.Tick, "tick", s.Tick, "timeslot: at most one batch per sender per tick")
	fs.DurationVar(&s.Lease, "lease", s.Lease, "lease of this scheduler's pins at each sender (renewed every batch)")
	fs.DurationVar(&s.RetryPeriod, "retry-period", s.RetryPeriod, "how long a sent block stays pinned for a retry")
	fs.IntVar(&s.AltSend, "alt-send", s.AltSend, "blocks of the alternative-send region (staged at the sender and a replica)")
	fs.IntVar(&s.LookAhead, "look-ahead", s.LookAhead, "blocks of the look-ahead region (pinned and preloaded)")
	fs.IntVar(&s.Guard, "guard", s.Guard, "blocks pinned at the play position on the other bitrates of a kind")
	fs.BoolVar(&s.NoPins, "no-pins", s.NoPins, "no reservations at all (senders work as plain LRU caches; for comparison)")
	fs.IntVar(&s.LiveStart, "live-start", s.LiveStart, "fragments behind the live edge a new live session is assumed to start")
	tokenTTLFlag(fs, c)
	fs.DurationVar(&s.SteeringTTL, "steering-ttl", s.SteeringTTL, "TTL of the sessions' content steering manifests (how often players ask which senders to use)")
	fs.IntVar(&s.Pathways, "pathways", s.Pathways, "most senders a session's manifests name as pathways (content steering; at most 16)")
	fs.DurationVar(&s.SessionIdle, "session-idle", s.SessionIdle, "end a session after this long without a manifest request or a sent block")
	fs.StringVar(&s.SenderPlayerURL, "sender-player-url", s.SenderPlayerURL, "base URL players use for a sender, {host} standing for its member URL's host, e.g. https://{host}:8443 when the senders serve HTTPS there (--tls-listen); default: the member URL")
	fs.StringVar(&s.OwnerSetURL, "owner-set-url", s.OwnerSetURL, "name blocks by owner set: e.g. http://{owners}.senders.example:9001, a name resolving to every owner (docs/cluster.md)")
	fs.StringVar(&s.DNSListen, "dns-listen", s.DNSListen, "answer the owner-set names of --owner-set-url over DNS (UDP) at this address, e.g. 0.0.0.0:53")
	openFlags(fs, c)
	playerDirFlag(fs, c)
}

func tokenTTLFlag(fs *flag.FlagSet, c *config.Config) {
	fs.DurationVar(&c.Scheduler.TokenTTL, "token-ttl", c.Scheduler.TokenTTL, "how long senders accept a session's token without a renewal (renewed every third of it while the session lives; ended with it)")
}

// senderFlags: the sender's blocks, RAM and registration.
func senderFlags(fs *flag.FlagSet, c *config.Config) {
	s := &c.Sender
	fs.StringVar(&c.Data, "data", c.Data, "block directory (mass storage)")
	fs.Var(&s.RAM, "ram", "RAM budget (`size`) of the block cache, e.g. 512MiB (docs/config.md, sizes)")
	fs.StringVar(&s.ID, "id", s.ID, "sender ID for placement (default: host:port of --advertise)")
	fs.StringVar(&s.Advertise, "advertise", s.Advertise, "base URL schedulers and players use for this sender (default: http://<bound listen address>)")
	fs.DurationVar(&s.EtcdTTL, "etcd-ttl", s.EtcdTTL, "etcd lease TTL of the registration: a dead sender leaves the set after this long")
	fs.DurationVar(&s.Lease, "lease", s.Lease, "scheduler lease when a batch names none")
	fs.DurationVar(&s.SessionGrace, "session-grace", s.SessionGrace, "accept tokens of sessions this sender holds no grant for this long after they opened, and after the sender started (the schedulers grant them again)")
	fs.IntVar(&s.Preloaders, "preloaders", s.Preloaders, "concurrent loads from disk into RAM")
	fs.BoolVar(&s.NoAdmit, "no-admit", s.NoAdmit, "do not load blocks into RAM on a miss (only look-aheads fill RAM)")
	fs.StringVar(&s.RAMSend, "ram-send", s.RAMSend, "how RAM blocks are sent: sendfile (from the memfd) or copy (write from a read-only mapping of it)")
}

// serveFlags: what `sluice serve` adds to its roles.
func serveFlags(fs *flag.FlagSet, c *config.Config) {
	fs.BoolVar(&c.Serve.NoDemo, "no-demo", c.Serve.NoDemo, "do not start the demo channel and asset")
	fs.DurationVar(&c.Serve.DemoChunk, "demo-chunk", c.Serve.DemoChunk, "push the demo channel in CMAF chunks of this duration, e.g. 500ms, making it low-latency (LL-HLS parts, LL-DASH); 0: whole fragments")
	fs.BoolVar(&c.PointsAny, "points-any", c.PointsAny, "accept pushes to any publishing point name, not only the configured ones (--points-any=false: only the points of --point and the YAML, plus live and demo; docs/config.md)")
	playerDirFlag(fs, c)
	fs.Var(&c.Sender.RAM, "sender-ram", "RAM budget (`size`) of the in-process sender (blocks pinned ahead of the /s/ sessions)")
	tokenTTLFlag(fs, c)
	openFlags(fs, c)
}
