package config

import (
	"fmt"
	"time"
)

// Pacing modes: which side decides the pacing rate of a media response.
const (
	PacingOff    = "off"    // never touch the sockets, no CMSD-Dynamic
	PacingClient = "client" // the player's specification (Sluice-Pacing, CMCD rtp) only
	PacingServer = "server" // the server's bottleneck estimate only
	PacingBoth   = "both"   // the player's specification, else the server's estimate
)

// Pacing configures client-controlled and server-estimated pacing of media
// responses (internal/pacing, docs/pacing.md). YAML key: pacing.
type Pacing struct {
	// Mode is off, client, server or both.
	Mode string `yaml:"mode"`
	// Fraction of the estimated bottleneck rate the server paces at when
	// the player sends no specification.
	Fraction float64 `yaml:"fraction"`
	// MinBuffer: a CMCD buffer length (bl) below this marks the request
	// urgent, and it is not paced.
	MinBuffer time.Duration `yaml:"min_buffer"`
	// MinRateKbps and MaxRateKbps bound every pacing rate, in kbit/s.
	MinRateKbps int64 `yaml:"min_rate_kbps"`
	MaxRateKbps int64 `yaml:"max_rate_kbps"`
	// NotsentLowat is the TCP_NOTSENT_LOWAT set while a media response is
	// paced or watched, in bytes (0: leave the socket's default).
	NotsentLowat int `yaml:"notsent_lowat"`
	// ReprobeEvery: with the server estimate, every Nth response on a
	// connection is a probe, paced above the estimate (1.25 ×) to measure
	// the path again, then draining the queue it built (docs/pacing.md §4;
	// 0: never by count).
	ReprobeEvery int `yaml:"reprobe_every"`
	// ReprobeInterval: also re-probe when the last probe is this old (0:
	// never by age).
	ReprobeInterval time.Duration `yaml:"reprobe_interval"`
	// CPUHigh is the machine CPU load (0..1) from which the server counts
	// as loaded: bursts are raised (see CPUBurst) and the metadata says so.
	CPUHigh float64 `yaml:"cpu_high"`
	// CPUBurst, when > 0, is the burst in segments that Sluice sets as
	// net.ipv4.tcp_min_tso_segs of its network namespace while the CPU
	// load is high (restored when it falls); 0 leaves the sysctl alone.
	CPUBurst int `yaml:"cpu_burst"`
	// ServerID names this server in CMSD-Dynamic.
	ServerID string `yaml:"server_id"`
}

// PacingDefaults returns the built-in pacing configuration.
func PacingDefaults() Pacing {
	return Pacing{
		Mode:            PacingClient,
		Fraction:        0.9,
		MinBuffer:       2 * time.Second,
		MinRateKbps:     100,
		MaxRateKbps:     10_000_000,
		NotsentLowat:    128 << 10,
		ReprobeEvery:    10,
		ReprobeInterval: 30 * time.Second,
		CPUHigh:         0.85,
		ServerID:        "sluice",
	}
}

// ParsePacingMode checks a --pacing flag value.
func ParsePacingMode(s string) (string, error) {
	switch s {
	case PacingOff, PacingClient, PacingServer, PacingBoth:
		return s, nil
	}
	return "", fmt.Errorf("pacing mode %q: want off, client, server or both", s)
}

// Validate checks a pacing configuration.
func (p Pacing) Validate() error {
	if _, err := ParsePacingMode(p.Mode); err != nil {
		return err
	}
	switch {
	case !(p.Fraction > 0 && p.Fraction <= 1.5):
		return fmt.Errorf("pacing fraction %g out of range (0, 1.5]", p.Fraction)
	case p.MinBuffer < 0:
		return fmt.Errorf("pacing min_buffer %v is negative", p.MinBuffer)
	case p.MinRateKbps < 1 || p.MaxRateKbps < p.MinRateKbps:
		return fmt.Errorf("pacing rate bounds %d..%d kbit/s are not a range", p.MinRateKbps, p.MaxRateKbps)
	case p.NotsentLowat < 0:
		return fmt.Errorf("pacing notsent_lowat %d is negative", p.NotsentLowat)
	case p.ReprobeEvery < 0 || p.ReprobeInterval < 0:
		return fmt.Errorf("pacing reprobe_every and reprobe_interval must not be negative")
	case !(p.CPUHigh > 0 && p.CPUHigh <= 1):
		return fmt.Errorf("pacing cpu_high %g out of range (0, 1]", p.CPUHigh)
	case p.CPUBurst < 0 || p.CPUBurst > 128:
		return fmt.Errorf("pacing cpu_burst %d out of range 0..128", p.CPUBurst)
	case p.ServerID == "":
		return fmt.Errorf("pacing server_id is empty")
	}
	return nil
}
