package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := &Limiter{Rate: 2, Burst: 3, MaxClients: 3, Now: func() time.Time { return now }}
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("burst request %d refused", i)
		}
	}
	ok, retry := l.Allow("a")
	if ok || retry != 500*time.Millisecond {
		t.Fatalf("over the burst: %v %v, want refused, retry 500ms", ok, retry)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another client refused")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("refilled token refused")
	}
	// Bounded: past MaxClients new clients share one bucket.
	l.Allow("c")
	for i := 0; i < 10; i++ {
		l.Allow("new-" + strconv.Itoa(i))
	}
	if n := l.Clients(); n > 4 {
		t.Fatalf("%d buckets kept, want at most MaxClients+1", n)
	}
	// Full buckets are forgotten.
	now = now.Add(time.Minute)
	l.Allow("a")
	if n := l.Clients(); n != 1 {
		t.Fatalf("%d buckets after everyone refilled, want 1", n)
	}
	if ok, _ := New(0, 0).Allow("x"); !ok {
		t.Fatal("a disabled limiter refused")
	}
}

func TestMiddleware(t *testing.T) {
	l := New(1, 2)
	logs := 0
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), nil, "opens",
		func(r *http.Request, key string, logNow bool) {
			if logNow {
				logs++
			}
		})
	do := func(addr string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/s/live/manifest.mpd", nil)
		r.RemoteAddr = addr
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	do("10.0.0.1:1")
	do("10.0.0.1:2")
	w := do("10.0.0.1:3")
	if w.Code != 429 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("third request: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	do("10.0.0.1:4")
	if w := do("10.0.0.2:1"); w.Code != 200 {
		t.Fatalf("another address: %d", w.Code)
	}
	if logs != 1 {
		t.Fatalf("%d refusals due for a log line, want 1", logs)
	}
}
