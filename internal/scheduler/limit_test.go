package scheduler

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestOpenLimitPerClient: 2 000 session opens in about 2 s from one
// address get 429 with Retry-After past the client's allowance (20/s,
// bursts of 100) and open no more sessions than that, while another
// address opening sessions at the same time gets every one, and the
// flooding client's open sessions reload as usual.
func TestOpenLimitPerClient(t *testing.T) {
	c := newTestCluster(t, DefaultConfig(), 2, -1, testView("vod", 10, true))
	reg := prometheus.NewRegistry()
	h := LimitOpens(c.s, 20, 100, reg, quietLog())
	open := func(remote string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/s/vod/master.m3u8", nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	var (
		wg                 sync.WaitGroup
		mu                 sync.Mutex
		floodOK, flood429  int
		otherOK, otherFail int
		firstSession       string
	)
	t0 := time.Now()
	wg.Add(1)
	go func() { // the flood: 2 000 opens, 1 ms apart
		defer wg.Done()
		for i := 0; i < 2000; i++ {
			w := open("10.0.0.1:40000")
			mu.Lock()
			switch w.Code {
			case 200:
				floodOK++
				if firstSession == "" {
					firstSession = w.Body.String()
				}
			case 429:
				flood429++
				if w.Header().Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
			}
			mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Add(1)
	go func() { // everyone else: 20 opens over the same time
		defer wg.Done()
		for i := 0; i < 20; i++ {
			w := open("10.0.0.2:40000")
			mu.Lock()
			if w.Code == 200 {
				otherOK++
			} else {
				otherFail++
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	wg.Wait()
	took := time.Since(t0)
	allowance := 100 + int(took.Seconds()*20) + 1
	if otherFail != 0 || otherOK != 20 {
		t.Errorf("the other client: %d opened, %d failed", otherOK, otherFail)
	}
	if floodOK > allowance || flood429 < 2000-allowance {
		t.Errorf("the flood over %v: %d opened, %d refused (allowance %d)", took, floodOK, flood429, allowance)
	}
	if n := c.s.Sessions(); n > allowance+20 {
		t.Errorf("%d sessions after the flood, want at most %d", n, allowance+20)
	}
	// The flooding client's open sessions still reload (not opens).
	reloaded := false
	for _, line := range strings.Split(firstSession, "\n") {
		if strings.HasPrefix(line, "/s/vod/~") {
			r := httptest.NewRequest(http.MethodGet, line, nil)
			r.RemoteAddr = "10.0.0.1:40000"
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 {
				t.Errorf("reload %s by the flooding client: %d", line, w.Code)
			}
			reloaded = true
			break
		}
	}
	if !reloaded {
		t.Errorf("no session playlist in %q", firstSession)
	}
	t.Logf("flood of 2000 opens in %v: %d opened, %d refused with 429; other client 20/20; %d sessions", took.Round(time.Millisecond), floodOK, flood429, c.s.Sessions())
}

func TestPointOf(t *testing.T) {
	for in, want := range map[string]string{
		"/s/live/manifest.mpd":           "live",
		"/s/a/b/master.m3u8":             "a/b",
		"/s/live/~0123abcd/v/media.m3u8": "live",
		"/s/a/b/~0123abcd/manifest.mpd":  "a/b",
		"/other":                         "",
		"/s/x":                           "",
	} {
		if got := PointOf(in); got != want {
			t.Errorf("PointOf(%q) = %q, want %q", in, got, want)
		}
	}
}
