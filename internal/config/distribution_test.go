package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDVRWithinRetention(t *testing.T) {
	c := Defaults()
	c.DVRWindow = 2 * time.Minute
	c.Points = []Point{
		{Name: "plain"},
		{Name: "own", DVRWindow: 30 * time.Minute},
		{Name: "long", DVRWindow: 10 * time.Minute, Archive: 24 * time.Hour},
		{Name: "short", DVRWindow: 10 * time.Minute, Archive: 5 * time.Minute},
		{Name: "tiny", Archive: 20 * time.Second},
		{Name: "default", Archive: time.Minute},
	}
	tests := map[string]time.Duration{
		"plain":   2 * time.Minute,
		"own":     30 * time.Minute,
		"long":    10 * time.Minute,
		"short":   5*time.Minute - RetentionGrace,
		"tiny":    10 * time.Second, // half the retention
		"default": 30 * time.Second,
		"unknown": 2 * time.Minute,
	}
	for name, want := range tests {
		if got := c.DVR(name); got != want {
			t.Errorf("DVR(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestDistributionConfig(t *testing.T) {
	dir := t.TempDir()
	good := `
listen: 127.0.0.1:9090
admin_token: s3cret
distribution:
  origins: [http://o1:8080, http://o2:8080]
  window: 5m
  cache_bytes: 268435456
  slack: 4
  upstream_timeout: 2s
`
	p := filepath.Join(dir, "d.yaml")
	os.WriteFile(p, []byte(good), 0o644)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	d := c.Distribution
	if len(d.Origins) != 2 || d.Window != 5*time.Minute || d.CacheBytes != 256<<20 || d.Slack != 4 ||
		d.UpstreamTimeout != 2*time.Second || d.MaxObject != Defaults().Distribution.MaxObject || c.AdminToken != "s3cret" {
		t.Fatalf("loaded %+v", d)
	}
	bad := map[string]string{
		"origin":  "distribution:\n  origins: [ftp://x]\n",
		"window":  "distribution:\n  window: -1s\n",
		"cache":   "distribution:\n  cache_bytes: 10\n",
		"slack":   "distribution:\n  slack: 1000\n",
		"timeout": "distribution:\n  upstream_timeout: 0s\n",
		"unknown": "distribution:\n  origin: http://x\n",
	}
	for name, y := range bad {
		p := filepath.Join(dir, name+".yaml")
		os.WriteFile(p, []byte(y), 0o644)
		if _, err := Load(p); err == nil || (name != "unknown" && !strings.Contains(err.Error(), "distribution")) {
			t.Errorf("%s: error %v", name, err)
		}
	}
}
