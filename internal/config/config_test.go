package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	for _, c := range []struct {
		name, yaml, err string
		check           func(Config) bool
	}{
		{"full", "listen: 0.0.0.0:9000\ndata: /d\nlookahead: 3\npoints:\n  - name: a\n    token: t\n    dvr_window: 30m\n    archive: 24h\n", "",
			func(c Config) bool {
				p, ok := c.Point("a")
				return ok && c.Listen == "0.0.0.0:9000" && c.LookAhead == 3 && p.Token == "t" &&
					p.Archive == 24*time.Hour && c.DVR("a") == 30*time.Minute && c.DVR("b") == c.DVRWindow
			}},
		{"defaults kept", "data: x\n", "", func(c Config) bool { return c.MaxBox == Defaults().MaxBox && c.Data == "x" }},
		{"unknown key", "lisen: x\n", "not found", nil},
		{"duplicate point", "points: [{name: a}, {name: a}]\n", "twice", nil},
		{"nameless point", "points: [{token: a}]\n", "without a name", nil},
		{"bad lookahead", "lookahead: 99\n", "lookahead", nil},
		{"tiny max_box", "max_box: 10\n", "too small", nil},
		{"limits", "ingest_memory: 134217728\nmax_pushes: 4\ningest_min_rate: 0\nstream_expiry: 1h\nwrite_timeout: 5s\nmin_free: 0\nmax_pulls: 2\n", "",
			func(c Config) bool {
				return c.IngestMemory == 128<<20 && c.MaxPushes == 4 && c.IngestMinRate == 0 && c.StreamExpiry == time.Hour &&
					c.WriteTimeout == 5*time.Second && c.MinFree == 0 && c.MaxPulls == 2 && c.IngestRateWindow == Defaults().IngestRateWindow
			}},
		{"budget below two boxes", "ingest_memory: 1048576\n", "twice max_box", nil},
		{"negative limit", "max_pushes: -1\n", "must not be negative", nil},
		{"short rate window", "ingest_rate_window: 100ms\n", "at least 1s", nil},
		{"https", "tls_listen: 127.0.0.1:8443\ntls_cert: c.pem\ntls_key: k.pem\n", "",
			func(c Config) bool {
				return c.TLSListen == "127.0.0.1:8443" && c.TLSCert == "c.pem" && c.TLSKey == "k.pem"
			}},
		{"https without a key", "tls_listen: 127.0.0.1:8443\ntls_cert: c.pem\n", "go together", nil},
		{"sender player URL", "scheduler:\n  sender_player_url: https://{host}:8443\n", "",
			func(c Config) bool { return c.Scheduler.SenderPlayerURL == "https://{host}:8443" }},
		{"sender player URL without {host}", "scheduler:\n  sender_player_url: https://s1:8443\n", "sender_player_url", nil},
		{"certificate without an address", "tls_cert: c.pem\ntls_key: k.pem\n", "go together", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(p, []byte(c.yaml), 0o644)
			got, err := Load(p)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !c.check(got) {
				t.Fatalf("err %v, config %+v", err, got)
			}
		})
	}
}

func TestParsePointFlag(t *testing.T) {
	if p, err := ParsePointFlag("news/ch1:s3cret"); err != nil || p.Name != "news/ch1" || p.Token != "s3cret" {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := ParsePointFlag(":x"); err == nil {
		t.Fatal("empty name accepted")
	}
}
