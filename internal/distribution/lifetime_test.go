package distribution

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/config"
)

// TestManifestLifetimes: how long a manifest is answered from the cache
// (upstream requests for a sequence of client requests on a fake clock)
// and the Cache-Control passed on, per origin Cache-Control.
func TestManifestLifetimes(t *testing.T) {
	const path = "/ch.isml/manifest.mpd"
	type step struct {
		advance  time.Duration // clock advance before the request
		upstream int           // upstream requests after it
		cc       string        // Cache-Control answered
	}
	for _, c := range []struct {
		name    string
		cc      string
		noETag  bool
		refresh time.Duration
		steps   []step
	}{
		{"max-age=0: kept for manifest_refresh, then revalidated", "public, max-age=0", false, 25 * time.Millisecond, []step{
			{0, 1, "public, max-age=0"}, {0, 1, "public, max-age=0"}, {10 * time.Millisecond, 1, "public, max-age=0"},
			{14 * time.Millisecond, 1, "public, max-age=0"}, {2 * time.Millisecond, 2, "public, max-age=0"},
			{20 * time.Millisecond, 2, "public, max-age=0"}, {time.Second, 3, "public, max-age=0"},
		}},
		{"max-age=0, manifest_refresh 0: every request upstream", "public, max-age=0", false, 0, []step{
			{0, 1, "public, max-age=0"}, {0, 2, "public, max-age=0"}, {time.Millisecond, 3, "public, max-age=0"},
		}},
		{"max-age=0 without ETag: not kept", "public, max-age=0", true, 25 * time.Millisecond, []step{
			{0, 1, "public, max-age=0"}, {0, 2, "public, max-age=0"},
		}},
		{"no-cache: not kept", "no-cache", false, 25 * time.Millisecond, []step{
			{0, 1, "no-cache"}, {0, 2, "no-cache"},
		}},
		{"max-age=3: kept, lifetime left passed on", "public, max-age=3", false, 25 * time.Millisecond, []step{
			{0, 1, "public, max-age=3"}, {1500 * time.Millisecond, 1, "public, max-age=1"},
			{1400 * time.Millisecond, 1, "public, max-age=0"}, {200 * time.Millisecond, 2, "public, max-age=3"},
		}},
		{"s-maxage rewritten too", "public, max-age=4, s-maxage=2", false, 25 * time.Millisecond, []step{
			{0, 1, "public, max-age=2, s-maxage=2"}, {1200 * time.Millisecond, 1, "public, max-age=0, s-maxage=0"},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := newFakeOrigin(t)
			o.mpdCC, o.noETag = c.cc, c.noETag
			tp, clk := newClockedProxy(t, func(d *config.Distribution) { d.ManifestRefresh = c.refresh }, o.ts.URL)
			for i, s := range c.steps {
				clk.Add(s.advance)
				resp, _ := tp.get(t, path)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("step %d: status %d", i, resp.StatusCode)
				}
				if n := o.count(path); n != s.upstream {
					t.Errorf("step %d: %d upstream requests, want %d", i, n, s.upstream)
				}
				if cc := resp.Header.Get("Cache-Control"); cc != s.cc {
					t.Errorf("step %d: Cache-Control %q, want %q", i, cc, s.cc)
				}
				if age := resp.Header.Get("Age"); age != "" {
					t.Errorf("step %d: a manifest with Age %s (its max-age is what is left)", i, age)
				}
			}
		})
	}
}

// TestManifestRefreshBounded: however many players reload a live manifest
// that is due to change (max-age=0), a distribution server asks upstream at
// most once per manifest_refresh (plus the first request), concurrent
// misses coalesced. One simulated second in 5 ms steps, 40 concurrent
// clients per step.
func TestManifestRefreshBounded(t *testing.T) {
	const path = "/ch.isml/manifest.mpd"
	for _, players := range []int{1, 40} {
		o := newFakeOrigin(t)
		o.mpdCC = "public, max-age=0"
		tp, clk := newClockedProxy(t, func(d *config.Distribution) { d.ManifestRefresh = 25 * time.Millisecond }, o.ts.URL)
		for range 200 {
			var wg sync.WaitGroup
			for range players {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if resp, _ := tp.get(t, path); resp.StatusCode != http.StatusOK {
						t.Errorf("status %d", resp.StatusCode)
					}
				}()
			}
			wg.Wait()
			clk.Add(5 * time.Millisecond)
		}
		n := o.count(path)
		t.Logf("%d players: %d upstream requests in one simulated second", players, n)
		if n > 41 || n < 30 {
			t.Errorf("%d players: %d upstream requests in 1 s with a 25 ms refresh; want 30..41", players, n)
		}
		if r := tp.metric(tp.p.m.upstream.WithLabelValues(o.ts.URL, "304")); int(r) != n-1 {
			t.Errorf("%d players: %v revalidations answered 304, want %d", players, r, n-1)
		}
	}
}
