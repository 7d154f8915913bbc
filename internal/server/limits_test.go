package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/config"
)

func serveReq(h http.Handler, method, target, remote string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(""))
	r.RemoteAddr = remote
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestAuthorizationBearerOnly: ingest and admin requests authenticate with
// "Authorization: Bearer <token>" only (the scheme in any case); a bare
// token or another scheme is refused even with the right token, and the
// documented ?token= of ingest works without an Authorization header.
func TestAuthorizationBearerOnly(t *testing.T) {
	cfg := config.Defaults()
	cfg.Data = t.TempDir()
	cfg.Points = []config.Point{{Name: "ch", Token: "s3cret"}}
	cfg.AdminToken = "adm1n"
	srv, err := New(cfg, Roles{Ingest: true, Origin: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	push := "/ch.isml/Streams(cam)"
	for _, c := range []struct {
		name, target, auth string
		refused            bool
	}{
		{"Bearer", push, "Bearer s3cret", false},
		{"bearer, lower case", push, "bearer s3cret", false},
		{"?token=", push + "?token=s3cret", "", false},
		{"bare token", push, "s3cret", true},
		{"Basic", push, "Basic czNjcmV0", true},
		{"another scheme with the token", push, "Token s3cret", true},
		{"another scheme and a good ?token=", push + "?token=s3cret", "Basic x", true},
		{"wrong Bearer", push, "Bearer nope", true},
		{"nothing", push, "", true},
	} {
		var hdr []string
		if c.auth != "" {
			hdr = []string{"Authorization", c.auth}
		}
		w := serveReq(h, http.MethodPost, c.target, "10.0.0.1:1", hdr...)
		if (w.Code == http.StatusForbidden) != c.refused {
			t.Errorf("ingest %s: %d %s", c.name, w.Code, w.Body.String())
		}
	}
	cut := "/api/points/ch/cut"
	for _, c := range []struct {
		name, auth string
		refused    bool
	}{
		{"Bearer", "Bearer adm1n", false},
		{"BEARER", "BEARER adm1n", false},
		{"bare", "adm1n", true},
		{"Basic", "Basic adm1n", true},
	} {
		w := serveReq(h, http.MethodPost, cut, "10.0.0.1:1", "Authorization", c.auth)
		if (w.Code == http.StatusUnauthorized) != c.refused {
			t.Errorf("admin %s: %d %s", c.name, w.Code, w.Body.String())
		}
	}
}

// TestPushLimitPerClient: one address starting pushes far over the limit
// gets 429 with Retry-After, counted and logged; another address, and
// the same address on another point, are served as before.
func TestPushLimitPerClient(t *testing.T) {
	cfg := config.Defaults()
	cfg.Data = t.TempDir()
	cfg.Points = []config.Point{{Name: "ch"}, {Name: "other"}}
	cfg.PushRate, cfg.PushBurst = 1, 5
	srv, err := New(cfg, Roles{Ingest: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	limited := 0
	for i := 0; i < 200; i++ {
		w := serveReq(h, http.MethodPost, "/ch.isml/Streams(s)", "10.0.0.1:1234")
		if w.Code == http.StatusTooManyRequests {
			limited++
			if w.Header().Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		}
	}
	if limited < 190 {
		t.Fatalf("%d of 200 pushes from one address limited, want at least 190 (burst 5)", limited)
	}
	// The flood cost no one else anything.
	if w := serveReq(h, http.MethodPost, "/ch.isml/Streams(s)", "10.0.0.2:1234"); w.Code == http.StatusTooManyRequests {
		t.Errorf("another client: %d", w.Code)
	}
	if w := serveReq(h, http.MethodPost, "/other.isml/Streams(s)", "10.0.0.1:1234"); w.Code == http.StatusTooManyRequests {
		t.Errorf("the same client on another point: %d", w.Code)
	}
	// Pulls (GET) are not pushes.
	if w := serveReq(h, http.MethodGet, "/ch.isml/StreamManifest", "10.0.0.1:1234"); w.Code == http.StatusTooManyRequests {
		t.Errorf("a pull: %d", w.Code)
	}
	if got := counter(t, srv, "sluice_ingest_rate_limited_total"); got != float64(limited) {
		t.Errorf("counted %v, want %d", got, limited)
	}
}

func counter(t *testing.T, srv *Server, name string) float64 {
	t.Helper()
	fams, err := srv.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			sum := 0.0
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}

// TestMetricsListen: with metrics_listen, /metrics is served there and
// not on the main address.
func TestMetricsListen(t *testing.T) {
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	cfg := config.Defaults()
	cfg.Data = t.TempDir()
	cfg.Listen, cfg.MetricsListen = free(), free()
	srv, err := New(cfg, Roles{Origin: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan string, 1)
	go srv.Serve(ctx, func(addr string) { started <- addr })
	addr := <-started
	status := func(u string) int {
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err := http.Get(u)
			if err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v", u, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if c := status("http://" + cfg.MetricsListen + "/metrics"); c != 200 {
		t.Errorf("/metrics on the metrics address: %d", c)
	}
	if c := status("http://" + addr + "/metrics"); c != 404 {
		t.Errorf("/metrics on the main address: %d, want 404", c)
	}
	if c := status("http://" + addr + "/healthz"); c != 200 {
		t.Errorf("/healthz on the main address: %d", c)
	}
}
