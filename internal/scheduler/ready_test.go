package scheduler

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/httpx"
	"github.com/sluice-media/sluice/internal/membership"
)

// TestReadyz: a scheduler is ready only while a sender of its live set
// answers batches and an origin answers the index; /readyz (httpx.Readyz
// of Ready, as internal/server registers it) says why not with a 503.
func TestReadyz(t *testing.T) {
	var originStatus atomic.Int32 // 0: serve the index; else this status
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := testVerifier.Verify(r); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if c := originStatus.Load(); c != 0 {
			http.Error(w, "origin says no", int(c))
			return
		}
		if r.URL.Path != "/ch.isml/view.json" {
			http.Error(w, "unknown publishing point", http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(testView("ch", 5, false))
	}))
	defer origin.Close()
	snd := newFakeSender(t, "s0", -1)
	set, err := membership.Static(snd.member())
	if err != nil {
		t.Fatal(err)
	}
	tl := &OriginTimeline{Origins: []string{origin.URL}, Secret: testSecret}
	s, err := New(Config{Secret: testSecret, Tick: 20 * time.Millisecond, Lease: 300 * time.Millisecond, StatsInterval: -1}, tl, set, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", httpx.Readyz(s.Ready))
	ts := httptest.NewServer(mux)
	defer ts.Close()
	readyz := func() (int, string) {
		resp, err := http.Get(ts.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	expect := func(what string, code int, reason string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, body := readyz()
			if c == code && strings.Contains(body, reason) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /readyz %d %q, want %d with %q", what, c, body, code, reason)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ctx := context.Background()

	// Not running: no sender has answered a batch yet.
	expect("before any batch", 503, "no live sender")
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.Run(rctx)
	// The probe asks for a point nobody asked for yet: 404 from the
	// origin is an answer.
	expect("sender answered, origin answered", 200, "ready")

	// The origin refuses (a wrong secret would do the same): not ready.
	originStatus.Store(http.StatusForbidden)
	tl.View(ctx, "ch")
	expect("origin refuses", 503, "403")
	originStatus.Store(0)
	if _, err := tl.View(ctx, "ch"); err != nil {
		t.Fatal(err)
	}
	expect("origin back", 200, "ready")
	originStatus.Store(http.StatusBadGateway)
	tl.View(ctx, "ch")
	expect("origin fails", 503, "no origin answered the index")
	originStatus.Store(0)
	tl.View(ctx, "ch")
	expect("origin back again", 200, "ready")

	// The only sender dies: its next batch is refused and it leaves the
	// live set.
	snd.srv.Close()
	expect("sender gone", 503, "no live sender")
}
