package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/config"
)

// serveOpen opens roles over cfg on a free loopback port and serves until
// the test ends.
func serveOpen(t *testing.T, cfg config.Config, roles Roles) *Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	s, err := Open(context.Background(), cfg, roles, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return s
}

// TestRoutes: the route table of each process answers its whole URL
// space: health, metrics (or not, with metrics_listen), the status page of
// a scheduler or sender beside them (its cluster panel, no secret in it),
// the sender's internal API (signed) and client URLs (token), the
// sessions of the local cluster, and 404 for what no role answers.
func TestRoutes(t *testing.T) {
	type want struct {
		path string
		code int
		body string
	}
	sender := config.DefaultsFor("sender")
	sender.Data = t.TempDir()
	sender.Cluster.Secret = "a secret for the routes test"
	sender.Sender.RAM = 1 << 20
	quiet := sender
	quiet.Data = t.TempDir()
	quiet.MetricsListen = "127.0.0.1:0"
	sched := config.DefaultsFor("scheduler")
	sched.Cluster.Senders = []string{"http://127.0.0.1:1"}
	sched.Cluster.Secret = "a secret for the routes test"
	sched.Scheduler.Origins = []string{"http://127.0.0.1:1"}
	sched.Scheduler.OwnerSetURL = "http://{owners}.senders.sluice.test:9001"
	sched.Scheduler.DNSListen = "127.0.0.1:0"
	serve := config.DefaultsFor("serve")
	serve.Data = t.TempDir()
	serve.Points = []config.Point{{Name: "live"}}
	for _, tc := range []struct {
		name  string
		cfg   config.Config
		roles Roles
		want  []want
	}{
		{"sender", sender, Roles{Sender: true}, []want{
			{"/healthz", 200, "ok"},
			{"/readyz", 200, "ready"},
			{"/metrics", 200, "sluice_sender_"},
			{"/", 200, `<h1>Sluice sender</h1>`},
			{"/", 200, `session(s) valid at this sender`},
			{"/status.json", 200, `"role":"sender"`},
			{"/status.json", 200, `"ram_budget":1048576`},
			{"/internal/v1/stats", 401, ""},
			{"/b/not-a-token/live/video/0.m4s", 403, ""},
			{"/live.isml/manifest.mpd", 404, ""},
			{"/s/live/manifest.mpd", 404, ""},
			{"/play", 404, ""},
			{"/player/dash.all.min.js", 404, ""},
			{"/elsewhere", 404, ""},
		}},
		{"scheduler", sched, Roles{Scheduler: true}, []want{
			{"/healthz", 200, "ok"},
			{"/readyz", 503, "not ready"},
			{"/metrics", 200, "sluice_scheduler_"},
			{"/", 200, `<h1>Sluice scheduler</h1>`},
			{"/", 200, `session(s) at this scheduler`},
			{"/status.json", 200, `"role":"scheduler"`},
			{"/elsewhere", 404, ""},
			{"/internal/v1/owner-sets", 401, ""},
			{"/play", 400, "kind must be"},
			{"/s/", 404, ""},
			{"/b/not-a-token/live/video/0.m4s", 404, ""},
			{"/live.isml/manifest.mpd", 404, ""},
		}},
		{"sender with metrics_listen", quiet, Roles{Sender: true}, []want{
			{"/healthz", 200, "ok"},
			{"/metrics", 404, ""},
			{"/", 404, ""},
			{"/status.json", 404, ""},
		}},
		{"serve", serve, Roles{Ingest: true, Origin: true, Local: true}, []want{
			{"/healthz", 200, "ok"},
			{"/readyz", 200, "ready"},
			{"/metrics", 200, "sluice_scheduler_"},
			{"/internal/v1/stats", 401, ""},
			{"/b/not-a-token/live/video/0.m4s", 403, ""},
			{"/s/nope/manifest.mpd", 404, ""},
			{"/nope.isml/manifest.mpd", 404, ""},
			{"/internal/v1/owner-sets", 404, ""},
			{"/elsewhere", 404, ""},
			{"/status.json", 404, ""}, // no status page without Roles.StatusPage
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := serveOpen(t, tc.cfg, tc.roles).Handler()
			for _, w := range tc.want {
				rec := serveReq(h, http.MethodGet, w.path, "192.0.2.1:1234")
				code, body := rec.Code, rec.Body.String()
				if code != w.code || !strings.Contains(body, w.body) {
					t.Errorf("GET %s: %d %.80q, want %d with %q", w.path, code, body, w.code, w.body)
				}
				if strings.Contains(body, tc.cfg.Cluster.Secret) && tc.cfg.Cluster.Secret != "" {
					t.Errorf("GET %s shows the cluster secret", w.path)
				}
			}
		})
	}
}

// TestStatusBesideMetrics: with metrics_listen, the status page of a
// sender is served there, beside /metrics, and not on its listen address.
func TestStatusBesideMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := config.DefaultsFor("sender")
	cfg.Data = t.TempDir()
	cfg.Cluster.Secret = "a secret for the routes test"
	cfg.MetricsListen = addr
	s := serveOpen(t, cfg, Roles{Sender: true})
	if rec := serveReq(s.Handler(), http.MethodGet, "/", "192.0.2.1:1234"); rec.Code != http.StatusNotFound {
		t.Errorf("GET / on listen: %d, want 404", rec.Code)
	}
	for path, want := range map[string]string{"/": "<h1>Sluice sender</h1>", "/status.json": `"role":"sender"`, "/metrics": "sluice_sender_"} {
		var body string
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + path)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = string(b)
				if resp.StatusCode != http.StatusOK {
					body = resp.Status + " " + body
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("metrics listener: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(body, want) {
			t.Errorf("GET %s on metrics_listen: %.200q, want %q", path, body, want)
		}
	}
}

// TestOpenRefuses: the cluster roles say what they lack before serving.
func TestOpenRefuses(t *testing.T) {
	sched := config.DefaultsFor("scheduler")
	sched.Listen = "127.0.0.1:0"
	noSecret := config.DefaultsFor("sender")
	noSecret.Listen, noSecret.Data = "127.0.0.1:0", t.TempDir()
	for _, tc := range []struct {
		cfg   config.Config
		roles Roles
		want  string
	}{
		{sched, Roles{Scheduler: true}, "name the senders"},
		{noSecret, Roles{Sender: true}, "cluster secret"},
	} {
		if _, err := Open(context.Background(), tc.cfg, tc.roles, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.roles, err, tc.want)
		}
	}
	if _, err := New(config.Defaults(), Roles{Sender: true}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("New assembled a sender without a listener")
	}
}
