package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPacingConfig(t *testing.T) {
	if err := PacingDefaults().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range []struct {
		name, yaml, err string
		check           func(Pacing) bool
	}{
		{"defaults", "data: x\n", "", func(p Pacing) bool { return p == PacingDefaults() && p.Mode == PacingClient }},
		{"full", "pacing:\n  mode: both\n  fraction: 0.95\n  min_buffer: 3s\n  min_rate_kbps: 200\n  max_rate_kbps: 50000\n  notsent_lowat: 0\n  reprobe_every: 5\n  reprobe_interval: 1m\n  cpu_high: 0.7\n  cpu_burst: 10\n  server_id: edge-1\n", "",
			func(p Pacing) bool {
				return p.Mode == PacingBoth && p.Fraction == 0.95 && p.MinBuffer == 3*time.Second && p.MinRateKbps == 200 &&
					p.MaxRateKbps == 50000 && p.NotsentLowat == 0 && p.ReprobeEvery == 5 && p.ReprobeInterval == time.Minute &&
					p.CPUHigh == 0.7 && p.CPUBurst == 10 && p.ServerID == "edge-1"
			}},
		{"partial keeps defaults", "pacing:\n  mode: server\n", "", func(p Pacing) bool { return p.Mode == PacingServer && p.Fraction == 0.9 }},
		{"bad mode", "pacing:\n  mode: fast\n", "pacing mode", nil},
		{"bad fraction", "pacing:\n  fraction: 0\n", "fraction", nil},
		{"bad bounds", "pacing:\n  min_rate_kbps: 500\n  max_rate_kbps: 100\n", "not a range", nil},
		{"bad cpu_high", "pacing:\n  cpu_high: 2\n", "cpu_high", nil},
		{"bad cpu_burst", "pacing:\n  cpu_burst: 1000\n", "cpu_burst", nil},
		{"negative lowat", "pacing:\n  notsent_lowat: -1\n", "notsent_lowat", nil},
		{"empty server id", "pacing:\n  server_id: \"\"\n", "server_id", nil},
		{"unknown key", "pacing:\n  rate: 5\n", "not found", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(c.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Load(path)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !c.check(got.Pacing) {
				t.Fatalf("err %v, pacing %+v", err, got.Pacing)
			}
		})
	}
	for _, m := range []string{"off", "client", "server", "both"} {
		if _, err := ParsePacingMode(m); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	if _, err := ParsePacingMode("Client"); err == nil {
		t.Error("mode names are case-sensitive")
	}
}
