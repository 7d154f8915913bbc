package scheduler

import (
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/manifest"
	"github.com/sluice-media/sluice/internal/store"
)

// TestSharedRendering: a manifest expanded from a point's shared rendering
// is byte for byte the one rendered for the session alone.
func TestSharedRendering(t *testing.T) {
	for _, v := range []store.View{testView("vod", 12, true), testView("live", 12, false)} {
		t.Run(v.Name, func(t *testing.T) {
			c := newTestCluster(t, DefaultConfig(), 3, -1, v)
			fixed := time.Now().Add(time.Minute).Truncate(time.Millisecond)
			c.s.mu.Lock()
			c.s.now = func() time.Time { return fixed }
			c.s.mu.Unlock()
			sid, _ := openHLS(t, c, v.Name, "")
			c.s.mu.Lock()
			sess := c.s.sessions[sid]
			c.s.mu.Unlock()
			for _, r := range []struct {
				format, track string
				f             func(store.View, manifest.Options) ([]byte, error)
			}{
				{"dash", "", manifest.DASH},
				{"hls-master", "", manifest.HLSMaster},
				{"hls-media", "video_1000", func(v store.View, o manifest.Options) ([]byte, error) { return manifest.HLSMedia(v, "video_1000", o) }},
				{"hls-pathway", "video_1000", func(v store.View, o manifest.Options) ([]byte, error) { return manifest.HLSMedia(v, "video_1000", o) }},
			} {
				const host = "http://sched.test:8090"
				shared, err := c.s.render(sess, r.track, r.format, host, r.f)
				if err != nil {
					t.Fatal(err)
				}
				again, _ := c.s.render(sess, r.track, r.format, host, r.f) // from the cache
				c.s.mu.Lock()
				view := c.s.sessionView(sess, fixed)
				vals := c.s.placeholders(sess, host, fixed)
				sv := sessionValues{sid: vals[phSession], tok: vals[phToken], def: vals[phPathway], host: vals[phHost]}
				u := c.s.urls(sess.point, r.format, listedPathways(sess.pathways), sv)
				c.s.mu.Unlock()
				own, err := r.f(view, manifest.Options{Now: fixed, URLs: c.s.lockedURLs(u)})
				if err != nil {
					t.Fatal(err)
				}
				if string(shared) != string(own) || string(again) != string(own) {
					t.Errorf("%s: shared rendering differs:\n%s\n---\n%s", r.format, shared, own)
				}
			}
			c.s.mu.Lock()
			n := len(sess.point.templates)
			c.s.mu.Unlock()
			if n == 0 {
				t.Error("no shared rendering cached")
			}
		})
	}
}
