// Package config holds the configuration of a Sluice process: flags, plus an
// optional YAML file whose values the flags override.
package config

import (
	"fmt"
	"os"
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
}

// Config is the configuration of one process.
type Config struct {
	Listen string  `yaml:"listen"`
	Data   string  `yaml:"data"`
	Points []Point `yaml:"points"`
	// MaxBox bounds every box of an ingest body, in bytes.
	MaxBox int64 `yaml:"max_box"`
	// IngestIdle aborts a push that sends nothing for this long.
	IngestIdle time.Duration `yaml:"ingest_idle"`
	// DVRWindow is the default DVR window of live manifests.
	DVRWindow time.Duration `yaml:"dvr_window"`
	// LookAhead is the Smooth LookAheadFragmentCount (tfrf entries).
	LookAhead int `yaml:"lookahead"`
	// Pacing configures the TCP pacing of media responses (docs/pacing.md).
	Pacing Pacing `yaml:"pacing"`
}

// Defaults returns the built-in configuration.
func Defaults() Config {
	return Config{
		Listen:     "127.0.0.1:8080",
		Data:       "data",
		MaxBox:     64 << 20,
		IngestIdle: 30 * time.Second,
		DVRWindow:  2 * time.Minute,
		LookAhead:  2,
		Pacing:     PacingDefaults(),
	}
}

// Load reads a YAML file over the defaults.
func Load(path string) (Config, error) {
	c := Defaults()
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, c.Validate()
}

// Validate checks the values that would otherwise fail later.
func (c Config) Validate() error {
	if c.MaxBox < 1024 {
		return fmt.Errorf("max_box %d is too small", c.MaxBox)
	}
	if c.LookAhead < 0 || c.LookAhead > 10 {
		return fmt.Errorf("lookahead %d out of range 0..10", c.LookAhead)
	}
	if err := c.Pacing.Validate(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, p := range c.Points {
		if p.Name == "" {
			return fmt.Errorf("a point without a name")
		}
		if seen[p.Name] {
			return fmt.Errorf("point %q configured twice", p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

// Point returns the configuration of a named point.
func (c Config) Point(name string) (Point, bool) {
	for _, p := range c.Points {
		if p.Name == name {
			return p, true
		}
	}
	return Point{}, false
}

// DVR returns the DVR window of a point.
func (c Config) DVR(name string) time.Duration {
	if p, ok := c.Point(name); ok && p.DVRWindow > 0 {
		return p.DVRWindow
	}
	return c.DVRWindow
}

// ParsePointFlag parses "name[:token]".
func ParsePointFlag(s string) (Point, error) {
	name, token, _ := strings.Cut(s, ":")
	if name == "" {
		return Point{}, fmt.Errorf("point %q: empty name", s)
	}
	return Point{Name: name, Token: token}, nil
}
