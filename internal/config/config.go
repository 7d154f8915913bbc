// Package config holds the configuration of a Sluice process: flags, plus an
// optional YAML file whose values the flags override.
package config

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Point configures one publishing point.
type Point struct {
	Name string `yaml:"name"`
	// Token, when set, must be presented by encoders as "Authorization:
	// Bearer <token>" (or ?token=) on every ingest request.
	Token string `yaml:"token,omitempty"`
	// DVRWindow is how far back a live manifest reaches (0: the default).
	DVRWindow time.Duration `yaml:"dvr_window,omitempty"`
	// Archive is how long fragments are kept on disk (0: forever).
	Archive time.Duration `yaml:"archive,omitempty"`
	// OnRestart is what an encoder restart does to the point (a push whose
	// times go back into what is stored): RestartContinue,
	// RestartArchive or RestartRefuse; empty: Config.OnRestart.
	OnRestart string `yaml:"on_restart,omitempty"`
}

// Restart policies (Point.OnRestart, Config.OnRestart; docs/ingest.md).
const (
	// RestartContinue places the restarted encoder's fragments after what
	// is stored (times shifted by a whole number of seconds): one
	// presentation goes on, nothing is lost.
	RestartContinue = "continue"
	// RestartArchive does what RestartContinue does and also cuts the
	// presentation before the restart into an on-demand asset and removes
	// it from the point, which goes on with the new encoder session alone.
	RestartArchive = "archive"
	// RestartRefuse answers the restarted push 409 and stores nothing of
	// it; the point keeps what it had.
	RestartRefuse = "refuse"
)

func validRestart(s string) bool {
	return s == RestartContinue || s == RestartArchive || s == RestartRefuse
}

// Config is the configuration of one process.
type Config struct {
	Listen string  `yaml:"listen"`
	Data   string  `yaml:"data"`
	Points []Point `yaml:"points"`
	// PointsAny accepts pushes to any valid point name, not only to those
	// in Points (an unlisted name gets a point with the defaults: no token,
	// no archive limit). For a first try and for tests: `sluice serve`
	// turns it on (--points-any); the production roles leave it off, so a
	// typo in an encoder's URL is a 404 rather than a new channel.
	PointsAny bool `yaml:"points_any,omitempty"`
	// MaxBox bounds every box of an ingest body, in bytes.
	MaxBox ByteSize `yaml:"max_box"`
	// IngestIdle aborts a push that delivers no header, fragment or end of
	// stream for this long (408).
	IngestIdle time.Duration `yaml:"ingest_idle"`
	// IngestMinRate is the minimum receive rate of a push, in bytes/s,
	// judged over each IngestRateWindow while a box is arriving (408
	// below it); 0 disables it.
	IngestMinRate int64 `yaml:"ingest_min_rate"`
	// IngestRateWindow is the window of IngestMinRate.
	IngestRateWindow time.Duration `yaml:"ingest_rate_window"`
	// IngestMemory bounds the memory of the box buffers of all pushes
	// together, in bytes; a push over it gets 503 with Retry-After (0:
	// unbounded).
	IngestMemory ByteSize `yaml:"ingest_memory"`
	// MaxPushes bounds the concurrent pushes to one publishing point; one
	// more gets 503 with Retry-After (0: unbounded).
	MaxPushes int `yaml:"max_pushes"`
	// StreamExpiry: the record of a stream that never received a fragment
	// is removed this long after its last push (0: kept); a stream that
	// received fragments, has not ended and received nothing for this long
	// is listed as abandoned, which origins stop pulling once they hold
	// its fragments.
	StreamExpiry time.Duration `yaml:"stream_expiry"`
	// MaxPulls bounds the streams an origin pulls from ingests at a time
	// (0: unbounded).
	MaxPulls int `yaml:"max_pulls"`
	// WriteTimeout closes a response that makes no progress (the client
	// reads nothing) for this long (0: never).
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// HTTPEngine serves the listen address: eventloop (internal/evhttp:
	// bodiless GET and HEAD on an event loop, everything else handed to
	// net/http) or nethttp (net/http alone).
	HTTPEngine string `yaml:"http_engine"`
	// MinFree is the free space the data directory needs for /readyz to
	// answer ready, in bytes.
	MinFree ByteSize `yaml:"min_free"`
	// DVRWindow is the default DVR window of live manifests.
	DVRWindow time.Duration `yaml:"dvr_window"`
	// LookAhead is the Smooth LookAheadFragmentCount (tfrf entries).
	LookAhead int `yaml:"lookahead"`
	// OnRestart is the restart policy of points that name none.
	OnRestart string `yaml:"on_restart"`
	// Role, when set, names the role this configuration is for (ingest,
	// origin, distribution, serve, scheduler, sender); a process started as another role
	// refuses it.
	Role string `yaml:"role,omitempty"`
	// Ingests are the base URLs (http://host:port) of the ingests an origin
	// pulls every configured point from, in order of preference: the first
	// reachable one is used, the next one on failure.
	Ingests []string `yaml:"ingests,omitempty"`
	// Standby is the base URL of the standby ingest that this ingest
	// forwards every push to (push proxy). Empty: no forwarding.
	Standby string `yaml:"standby,omitempty"`
	// StandbyBuffer bounds the push bytes waiting to be forwarded to the
	// standby; a standby that falls this far behind is dropped until it has
	// caught up (0: 8 MiB).
	StandbyBuffer ByteSize `yaml:"standby_buffer,omitempty"`
	// PullStall: a pull from an ingest that stores no fragment for this
	// long fails over to the next ingest (0: two fragment durations, at
	// least 3 s).
	PullStall time.Duration `yaml:"pull_stall,omitempty"`
	// AdminToken enables the admin HTTP API (/api/..., e.g. archive cuts):
	// requests must carry "Authorization: Bearer <token>". Empty disables it.
	AdminToken string `yaml:"admin_token,omitempty"`
	// Distribution configures the distribution role.
	Distribution Distribution `yaml:"distribution"`
	// Pacing configures the TCP pacing of media responses (docs/pacing.md).
	Pacing Pacing `yaml:"pacing"`
	// Cluster names the senders an origin forwards every stored fragment
	// to (docs/cluster.md).
	Cluster Cluster `yaml:"cluster,omitempty"`
	// MetricsListen, when set, serves /metrics on this address only (not
	// on Listen), e.g. a private interface.
	MetricsListen string `yaml:"metrics_listen,omitempty"`
	// TLSListen, when set, serves everything Listen serves over HTTPS on
	// this address too (HTTP/2 and HTTP/1.1, by ALPN), with the PEM
	// certificate (chain) and key of TLSCert and TLSKey, reloaded when the
	// files change (internal/certfile).
	TLSListen string `yaml:"tls_listen,omitempty"`
	TLSCert   string `yaml:"tls_cert,omitempty"`
	TLSKey    string `yaml:"tls_key,omitempty"`
	// PushRate and PushBurst bound the ingest requests (POST/PUT) one
	// client address may start per second for one point: a token bucket
	// of PushBurst refilled at PushRate a second; more get 429 with
	// Retry-After. PushRate 0 (or negative) disables the limit.
	PushRate  float64 `yaml:"push_rate"`
	PushBurst int     `yaml:"push_burst"`
	// SignedURLs makes players' requests need a signed URL (origin and
	// distribution roles; docs/origin.md, "Signed player URLs").
	SignedURLs SignedURLs `yaml:"signed_urls,omitempty"`
	// Log configures the logging of every role.
	Log Log `yaml:"log"`
	// PlayerDir holds the npm-installed players (dashjs, hls.js,
	// shaka-player) of the status page and /play (serve, scheduler).
	PlayerDir string `yaml:"player_dir,omitempty"`
	// Scheduler, Sender and Serve configure those roles.
	Scheduler Scheduler `yaml:"scheduler"`
	Sender    Sender    `yaml:"sender"`
	Serve     Serve     `yaml:"serve,omitempty"`
}

// SignedURLs configures signed player URLs: off unless Require is set.
type SignedURLs struct {
	// Require refuses (403) player requests without a valid token.
	Require bool `yaml:"require,omitempty"`
	// KeyFile holds the signing key ($SLUICE_URL_KEY when empty).
	KeyFile string `yaml:"key_file,omitempty"`
	// Points limits the requirement to these points (every point when
	// empty).
	Points []string `yaml:"points,omitempty"`
}

// Covers reports whether point needs a signed URL.
func (s SignedURLs) Covers(point string) bool {
	if !s.Require {
		return false
	}
	if len(s.Points) == 0 {
		return true
	}
	for _, p := range s.Points {
		if p == point {
			return true
		}
	}
	return false
}

// Distribution configures the distribution role (a content-aware caching
// reverse proxy in front of origins).
type Distribution struct {
	// Origins are the base URLs of the origins, tried in this order.
	Origins []string `yaml:"origins"`
	// Window is how much of a live channel is kept in the cache: fragments
	// that end more than this before the live edge are dropped.
	Window time.Duration `yaml:"window"`
	// CacheBytes is the RAM budget of the cache.
	CacheBytes ByteSize `yaml:"cache_bytes"`
	// MaxObject is the largest response body that is cached.
	MaxObject ByteSize `yaml:"max_object"`
	// Slack is how many fragment durations past the live edge (or before
	// the DVR window) of the cached manifest a fragment request may lie
	// and still be passed to an origin.
	Slack int `yaml:"slack"`
	// UpstreamTimeout bounds the wait for an origin's response header and
	// any pause in its body; an origin that exceeds it is failed over.
	UpstreamTimeout time.Duration `yaml:"upstream_timeout"`
	// Backoff is the first circuit-breaker pause of a failed origin
	// (doubling per consecutive failure, at most 8x).
	Backoff time.Duration `yaml:"backoff"`
	// KeepAlive is the interval of the health request that keeps an idle
	// connection to each origin open while clients are active (0: off).
	KeepAlive time.Duration `yaml:"keepalive"`
	// ManifestRefresh is how long a manifest the origin marks as due to
	// change at once (max-age=0 with an ETag: a live manifest whose next
	// fragment is due within the second) is answered from the cache
	// before it is revalidated (0: not kept, every request goes upstream,
	// concurrent ones coalesced).
	ManifestRefresh time.Duration `yaml:"manifest_refresh"`
}

// Defaults returns the built-in configuration.
func Defaults() Config {
	return Config{
		Listen:           "127.0.0.1:8080",
		Data:             "data",
		MaxBox:           64 << 20,
		IngestIdle:       30 * time.Second,
		IngestMinRate:    1 << 10,
		IngestRateWindow: 10 * time.Second,
		IngestMemory:     256 << 20,
		MaxPushes:        32,
		StreamExpiry:     10 * time.Minute,
		MaxPulls:         64,
		WriteTimeout:     30 * time.Second,
		HTTPEngine:       EngineEventLoop,
		MinFree:          64 << 20,
		DVRWindow:        2 * time.Minute,
		LookAhead:        2,
		OnRestart:        RestartContinue,
		Distribution: Distribution{
			Window:          10 * time.Minute,
			CacheBytes:      512 << 20,
			MaxObject:       32 << 20,
			Slack:           3,
			UpstreamTimeout: 3 * time.Second,
			Backoff:         time.Second,
			KeepAlive:       20 * time.Second,
			ManifestRefresh: 25 * time.Millisecond,
		},
		Pacing:    PacingDefaults(),
		PushRate:  20,
		PushBurst: 100,
		Log:       Log{Level: "info", Format: "text"},
		Cluster:   Cluster{Replicas: 2, EtcdPrefix: DefaultEtcdPrefix},
		Scheduler: SchedulerDefaults(),
		Sender:    SenderDefaults(),
	}
}

// Load reads a YAML file over the defaults.
func Load(path string) (Config, error) {
	c := Defaults()
	if err := decodeFile(path, &c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// decodeFile lays the YAML file at path over c; unknown keys are errors.
func decodeFile(path string, c *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Validate checks the values that would otherwise fail later.
func (c Config) Validate() error {
	if c.MaxBox < 1024 {
		return fmt.Errorf("max_box %d is too small", c.MaxBox)
	}
	if c.LookAhead < 0 || c.LookAhead > 10 {
		return fmt.Errorf("lookahead %d out of range 0..10", c.LookAhead)
	}
	if c.Serve.DemoChunk < 0 {
		return fmt.Errorf("serve demo_chunk %v must not be negative", c.Serve.DemoChunk)
	}
	if err := c.validateLimits(); err != nil {
		return err
	}
	if c.PushRate > 0 && c.PushBurst < 1 {
		return fmt.Errorf("push_burst %d: at least 1 when push_rate is set", c.PushBurst)
	}
	if err := c.validatePeers(); err != nil {
		return err
	}
	if tls := []string{c.TLSListen, c.TLSCert, c.TLSKey}; slices.Contains(tls, "") && slices.ContainsFunc(tls, func(v string) bool { return v != "" }) {
		return fmt.Errorf("tls_listen, tls_cert and tls_key go together (HTTPS needs all three)")
	}
	if err := c.Pacing.Validate(); err != nil {
		return err
	}
	if err := c.Distribution.validate(); err != nil {
		return err
	}
	if err := c.Cluster.Validate(); err != nil {
		return err
	}
	if err := c.Log.validate(); err != nil {
		return err
	}
	if err := c.Scheduler.validate(); err != nil {
		return err
	}
	if err := c.Sender.validate(); err != nil {
		return err
	}
	if !validRestart(c.OnRestart) {
		return fmt.Errorf("on_restart %q: want continue, archive or refuse", c.OnRestart)
	}
	seen := map[string]bool{}
	for _, p := range c.Points {
		if p.Name == "" {
			return fmt.Errorf("a point without a name")
		}
		if p.OnRestart != "" && !validRestart(p.OnRestart) {
			return fmt.Errorf("point %q: on_restart %q: want continue, archive or refuse", p.Name, p.OnRestart)
		}
		if seen[p.Name] {
			return fmt.Errorf("point %q configured twice", p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

// The values of http_engine.
const (
	EngineEventLoop = "eventloop"
	EngineNetHTTP   = "nethttp"
)

// validateLimits checks the bounds of pushes, pulls and responses.
func (c Config) validateLimits() error {
	switch {
	case c.IngestIdle < 0 || c.IngestMinRate < 0 || c.IngestRateWindow < 0 || c.IngestMemory < 0 ||
		c.MaxPushes < 0 || c.StreamExpiry < 0 || c.MaxPulls < 0 || c.WriteTimeout < 0 || c.MinFree < 0:
		return fmt.Errorf("ingest_idle, ingest_min_rate, ingest_rate_window, ingest_memory, max_pushes, stream_expiry, max_pulls, write_timeout and min_free must not be negative")
	case c.IngestMinRate > 0 && c.IngestRateWindow < time.Second:
		return fmt.Errorf("ingest_rate_window %v: at least 1s when ingest_min_rate is set", c.IngestRateWindow)
	case c.HTTPEngine != EngineEventLoop && c.HTTPEngine != EngineNetHTTP:
		return fmt.Errorf("http_engine %q: want %s or %s", c.HTTPEngine, EngineEventLoop, EngineNetHTTP)
	case c.IngestMemory > 0 && c.IngestMemory < 2*c.MaxBox:
		return fmt.Errorf("ingest_memory %d is below twice max_box (%d): one push could not hold its largest box", c.IngestMemory, c.MaxBox)
	}
	return nil
}

// Roles a configuration file may name.
var roleNames = map[string]bool{"ingest": true, "origin": true, "distribution": true, "serve": true, "scheduler": true, "sender": true}

// validatePeers checks the role and the peer URLs (ingests, standby).
func (c Config) validatePeers() error {
	if c.Role != "" && !roleNames[c.Role] {
		return fmt.Errorf("role %q: want ingest, origin, distribution, serve, scheduler or sender", c.Role)
	}
	for _, in := range c.Ingests {
		if !isBaseURL(in) {
			return fmt.Errorf("ingest %q: want an http(s) base URL such as http://ingest-a:8080", in)
		}
	}
	if c.Standby != "" && !isBaseURL(c.Standby) {
		return fmt.Errorf("standby %q: want an http(s) base URL such as http://ingest-b:8080", c.Standby)
	}
	if c.StandbyBuffer < 0 || c.PullStall < 0 {
		return fmt.Errorf("standby_buffer and pull_stall must not be negative")
	}
	return nil
}

// isBaseURL accepts http(s)://host[:port][/prefix] without query or fragment.
// isPlayerURLTemplate reports whether s is a base URL with {host} in it
// (the scheduler checks the rest: internal/scheduler.PlayerURL).
func isPlayerURLTemplate(s string) bool {
	return strings.Contains(s, "{host}") && isBaseURL(strings.ReplaceAll(s, "{host}", "sender.invalid"))
}

func isBaseURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.RawQuery == "" && u.Fragment == ""
}

// Point returns the configuration of a named point: its entry in Points,
// or, when PointsAny is set, a point with the defaults (no token, no
// archive limit) for any other name.
func (c Config) Point(name string) (Point, bool) {
	for _, p := range c.Points {
		if p.Name == name {
			return p, true
		}
	}
	if c.PointsAny && name != "" {
		return Point{Name: name}, true
	}
	return Point{}, false
}

// validate checks the distribution settings.
func (d Distribution) validate() error {
	for _, o := range d.Origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("distribution origin %q: want an http(s) base URL", o)
		}
	}
	switch {
	case d.Window < 0:
		return fmt.Errorf("distribution window %v is negative", d.Window)
	case d.CacheBytes < 1<<20:
		return fmt.Errorf("distribution cache_bytes %d is below 1 MiB", d.CacheBytes)
	case d.MaxObject < 1024 || d.MaxObject > d.CacheBytes:
		return fmt.Errorf("distribution max_object %d out of range 1 KiB..cache_bytes", d.MaxObject)
	case d.Slack < 0 || d.Slack > 100:
		return fmt.Errorf("distribution slack %d out of range 0..100", d.Slack)
	case d.UpstreamTimeout <= 0:
		return fmt.Errorf("distribution upstream_timeout must be positive")
	case d.Backoff < 0 || d.KeepAlive < 0:
		return fmt.Errorf("distribution backoff and keepalive must not be negative")
	case d.ManifestRefresh < 0 || d.ManifestRefresh > time.Second:
		return fmt.Errorf("distribution manifest_refresh %v out of range 0..1s", d.ManifestRefresh)
	}
	return nil
}

// RetentionGrace is how long, at least, a fragment stays on disk after a
// live manifest last listed it: the DVR window of a point with an archive
// retention is at most the retention minus this (half the retention when
// that is shorter), so players and caches holding a manifest never ask for
// a fragment that retention has already deleted.
const RetentionGrace = 30 * time.Second

// DVR returns the DVR window of a point: its own or the default, cut to
// what its archive retention keeps (see RetentionGrace).
func (c Config) DVR(name string) time.Duration {
	w := c.DVRWindow
	p, ok := c.Point(name)
	if ok && p.DVRWindow > 0 {
		w = p.DVRWindow
	}
	if ok && p.Archive > 0 {
		limit := max(p.Archive-RetentionGrace, p.Archive/2)
		if w <= 0 || w > limit {
			w = limit
		}
	}
	return w
}

// RestartPolicy returns the restart policy of a point: its own, else the
// default (RestartContinue when none is configured).
func (c Config) RestartPolicy(name string) string {
	if p, ok := c.Point(name); ok && p.OnRestart != "" {
		return p.OnRestart
	}
	if c.OnRestart != "" {
		return c.OnRestart
	}
	return RestartContinue
}

// ParsePointFlag parses "name[:token]".
func ParsePointFlag(s string) (Point, error) {
	name, token, _ := strings.Cut(s, ":")
	if name == "" {
		return Point{}, fmt.Errorf("point %q: empty name", s)
	}
	return Point{Name: name, Token: token}, nil
}
