package config

import (
	"fmt"
	"time"
)

// Log configures the logging of every role (--log-level, --log-format).
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

func (l Log) validate() error {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log level %q (--log-level, log.level): want debug, info, warn or error", l.Level)
	}
	if l.Format != "text" && l.Format != "json" {
		return fmt.Errorf("log format %q (--log-format, log.format): want text or json", l.Format)
	}
	return nil
}

// Scheduler configures the scheduler role (`sluice scheduler`, and the
// in-process scheduler of `sluice serve`; docs/cluster.md). YAML key:
// scheduler. The senders, R and the cluster secret come from Cluster.
type Scheduler struct {
	// Origins are the base URLs the timeline is read from, in order of
	// preference (GET /<point>.isml/view.json).
	Origins []string `yaml:"origins,omitempty"`
	// Advertise is the base URL senders reach this scheduler at (default
	// http://<bound listen address>).
	Advertise string `yaml:"advertise,omitempty"`
	// ID is the scheduler's ID at the senders (default
	// sched-<host>-<random>).
	ID string `yaml:"id,omitempty"`
	// Tick is the timeslot: at most one batch per sender per tick.
	Tick time.Duration `yaml:"tick"`
	// Lease is the lease of this scheduler's pins at each sender.
	Lease time.Duration `yaml:"lease"`
	// RetryPeriod is how long a sent block stays pinned for a retry.
	RetryPeriod time.Duration `yaml:"retry_period"`
	// AltSend, LookAhead and Guard are the sizes of the regions ahead of
	// every session, in blocks.
	AltSend   int `yaml:"alt_send"`
	LookAhead int `yaml:"look_ahead"`
	Guard     int `yaml:"guard"`
	// NoPins makes no reservations (senders work as plain LRU caches).
	NoPins bool `yaml:"no_pins,omitempty"`
	// LiveStart is how many fragments behind the live edge a new live
	// session is assumed to start.
	LiveStart int `yaml:"live_start"`
	// TokenTTL is how long senders accept a session's token without a
	// renewal.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// SteeringTTL is the TTL of the sessions' content steering manifests.
	SteeringTTL time.Duration `yaml:"steering_ttl"`
	// Pathways is the most senders a session's manifests name.
	Pathways int `yaml:"pathways"`
	// SessionIdle ends a session after this long without a manifest
	// request or a sent block.
	SessionIdle time.Duration `yaml:"session_idle"`
	// OwnerSetURL names blocks by owner set (docs/cluster.md).
	OwnerSetURL string `yaml:"owner_set_url,omitempty"`
	// SenderPlayerURL is the base URL players use for a sender, with
	// {host} for the host name of its member URL (e.g.
	// https://{host}:8443 when the senders serve HTTPS there); empty: the
	// member URL.
	SenderPlayerURL string `yaml:"sender_player_url,omitempty"`
	// DNSListen answers the owner-set names over DNS (UDP) at this address.
	DNSListen string `yaml:"dns_listen,omitempty"`
	// OpenRate and OpenBurst bound the sessions one client address opens
	// per second (a token bucket; 429 beyond; OpenRate 0: no limit).
	OpenRate  float64 `yaml:"open_rate"`
	OpenBurst int     `yaml:"open_burst"`
}

// Sender configures the sender role (`sluice sender`, and the RAM of the
// in-process sender of `sluice serve`; docs/cluster.md). YAML key: sender.
// Its block directory is Config.Data; etcd and the secret come from
// Cluster.
type Sender struct {
	// RAM is the RAM budget of the block cache.
	RAM ByteSize `yaml:"ram"`
	// ID is the sender ID for placement (default host:port of Advertise).
	ID string `yaml:"id,omitempty"`
	// Advertise is the base URL schedulers and players use for this
	// sender (default http://<bound listen address>).
	Advertise string `yaml:"advertise,omitempty"`
	// EtcdTTL is the lease TTL of the registration in etcd.
	EtcdTTL time.Duration `yaml:"etcd_ttl"`
	// Lease is the scheduler lease when a batch names none.
	Lease time.Duration `yaml:"lease"`
	// SessionGrace: tokens of sessions the sender holds no grant for are
	// accepted this long after they opened and after the sender started.
	SessionGrace time.Duration `yaml:"session_grace"`
	// Preloaders is the number of concurrent loads from disk into RAM.
	Preloaders int `yaml:"preloaders"`
	// NoAdmit keeps blocks out of RAM on a miss (only look-aheads fill it).
	NoAdmit bool `yaml:"no_admit,omitempty"`
	// RAMSend is how RAM blocks are sent: sendfile or copy.
	RAMSend string `yaml:"ram_send"`
}

// Serve configures what `sluice serve` adds to its roles. YAML key: serve.
type Serve struct {
	// NoDemo starts no demo channel and asset.
	NoDemo bool `yaml:"no_demo,omitempty"`
	// DemoChunk, when positive, pushes the demo channel in CMAF chunks of
	// this duration (a low-latency encoder: LL-HLS and LL-DASH).
	DemoChunk time.Duration `yaml:"demo_chunk,omitempty"`
}

// SchedulerDefaults returns the built-in scheduler configuration.
func SchedulerDefaults() Scheduler {
	return Scheduler{
		Tick: 100 * time.Millisecond, Lease: 3 * time.Second, RetryPeriod: 4 * time.Second,
		AltSend: 2, LookAhead: 4, Guard: 1, LiveStart: 4,
		TokenTTL: time.Minute, SteeringTTL: 2 * time.Second, Pathways: 8, SessionIdle: time.Minute,
		OpenRate: 20, OpenBurst: 100,
	}
}

// SenderDefaults returns the built-in sender configuration.
func SenderDefaults() Sender {
	return Sender{RAM: 256 << 20, EtcdTTL: 3 * time.Second, Lease: 10 * time.Second,
		SessionGrace: 30 * time.Second, Preloaders: 4, RAMSend: "sendfile"}
}

// DefaultsFor returns the built-in configuration of a role: Defaults, with
// the scheduler's and the sender's own listen address and the sender's
// block directory.
func DefaultsFor(role string) Config {
	c := Defaults()
	switch role {
	case "serve":
		// The first push always works: any valid point name (docs/config.md).
		c.PointsAny = true
	case "scheduler":
		c.Listen = "127.0.0.1:8090"
	case "sender":
		c.Listen = "127.0.0.1:9001"
		c.Data = "./sender-data"
	}
	return c
}

// LoadFor reads a YAML file over the defaults of role (DefaultsFor) and
// checks that the file names no other role.
func LoadFor(role, path string) (Config, error) {
	c := DefaultsFor(role)
	if err := decodeFile(path, &c); err != nil {
		return c, err
	}
	if c.Role != "" && c.Role != role {
		return c, fmt.Errorf("the configuration is for role %q, not %q", c.Role, role)
	}
	return c, nil
}

func (s Scheduler) validate() error {
	switch {
	case s.Tick < 0 || s.Lease < 0 || s.RetryPeriod < 0 || s.TokenTTL < 0 || s.SteeringTTL < 0 || s.SessionIdle < 0:
		return fmt.Errorf("scheduler tick, lease, retry_period, token_ttl, steering_ttl and session_idle must not be negative")
	case s.AltSend < 0 || s.LookAhead < 0 || s.Guard < 0 || s.LiveStart < 0 || s.Pathways < 0:
		return fmt.Errorf("scheduler alt_send, look_ahead, guard, live_start and pathways must not be negative")
	case s.OpenRate > 0 && s.OpenBurst < 1:
		return fmt.Errorf("scheduler open_burst %d: at least 1 when open_rate is set", s.OpenBurst)
	}
	if s.SenderPlayerURL != "" && !isPlayerURLTemplate(s.SenderPlayerURL) {
		return fmt.Errorf("scheduler sender_player_url %q: want a base URL whose host is {host}, such as https://{host}:8443", s.SenderPlayerURL)
	}
	for _, o := range s.Origins {
		if !isBaseURL(o) {
			return fmt.Errorf("scheduler origin %q: want an http(s) base URL such as http://origin:8080", o)
		}
	}
	return nil
}

func (s Sender) validate() error {
	switch {
	case s.RAM <= 0:
		return fmt.Errorf("sender ram %d (--ram; serve: --sender-ram): want a positive size such as 512MiB", s.RAM)
	case s.RAMSend != "sendfile" && s.RAMSend != "copy":
		return fmt.Errorf("sender ram_send %q (--ram-send): want sendfile or copy", s.RAMSend)
	case s.EtcdTTL < 0 || s.Lease < 0 || s.SessionGrace < 0 || s.Preloaders < 0:
		return fmt.Errorf("sender etcd_ttl, lease, session_grace and preloaders must not be negative")
	}
	return nil
}
