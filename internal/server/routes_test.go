package server

import (
	"context"
	"log/slog"
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
// space: health, metrics (or not, with metrics_listen), the sender's
// internal API (signed) and client URLs (token), the sessions of the
// local cluster, and 404 for what no role answers.
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
			{"/internal/v1/stats", 401, ""},
			{"/b/not-a-token/live/video/0.m4s", 403, ""},
			{"/live.isml/manifest.mpd", 404, ""},
			{"/s/live/manifest.mpd", 404, ""},
		}},
		{"scheduler", sched, Roles{Scheduler: true}, []want{
			{"/healthz", 200, "ok"},
			{"/readyz", 503, "not ready"},
			{"/metrics", 200, "sluice_scheduler_"},
			{"/internal/v1/owner-sets", 401, ""},
			{"/play", 400, "kind must be"},
			{"/s/", 404, ""},
			{"/b/not-a-token/live/video/0.m4s", 404, ""},
			{"/live.isml/manifest.mpd", 404, ""},
		}},
		{"sender with metrics_listen", quiet, Roles{Sender: true}, []want{
			{"/healthz", 200, "ok"},
			{"/metrics", 404, ""},
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
			}
		})
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
