package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/config"
)

func readyz(t *testing.T, h http.Handler) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

// TestReadyPerRole: an ingest is ready with a writable data directory; an
// origin with ingests only once one of them answers, and no longer when
// none does.
func TestReadyPerRole(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cfg := config.Defaults()
	cfg.Data = t.TempDir()
	cfg.Points = []config.Point{{Name: "live"}}
	ing, err := New(cfg, Roles{Ingest: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := readyz(t, ing.Handler()); code != 200 {
		t.Fatalf("ingest: %d %s", code, body)
	}
	ts := httptest.NewServer(ing.Handler())
	defer ts.Close()

	ocfg := cfg
	ocfg.Data = t.TempDir()
	ocfg.Ingests = []string{ts.URL}
	ocfg.Listen = "127.0.0.1:0"
	org, err := New(ocfg, Roles{Ingest: true, Origin: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := readyz(t, org.Handler()); code != 503 || !strings.Contains(body, "no ingest reachable") {
		t.Fatalf("origin before its first poll: %d %s", code, body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- org.Serve(ctx, nil) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := readyz(t, org.Handler())
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("origin with a reachable ingest: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
