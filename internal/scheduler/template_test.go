package scheduler

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
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
				format, track, file string
				f                   func(store.View, manifest.Options) ([]byte, error)
			}{
				{"dash", "", "manifest.mpd", manifest.DASH},
				{"hls-master", "", "master.m3u8", manifest.HLSMaster},
				{"hls-media", "video_1000", "video_1000/media.m3u8", func(v store.View, o manifest.Options) ([]byte, error) { return manifest.HLSMedia(v, "video_1000", o) }},
				{"hls-pathway", "video_1000", "video_1000/rel.m3u8", func(v store.View, o manifest.Options) ([]byte, error) { return manifest.HLSMedia(v, "video_1000", o) }},
			} {
				const host = "http://sched.test:8090"
				shared, err := c.s.render(sess, r.track, r.format, host, r.f)
				if err != nil {
					t.Fatal(err)
				}
				again, _ := c.s.render(sess, r.track, r.format, host, r.f) // from the cache
				c.s.mu.Lock()
				view, _ := c.s.sessionView(sess, fixed)
				sv := c.s.placeholders(sess, host, fixed)
				u := c.s.urls(sess.point, r.format, listedPathways(sess.pathways), sv)
				c.s.mu.Unlock()
				own, err := r.f(view, manifest.Options{Now: fixed, URLs: c.s.lockedURLs(u)})
				if err != nil {
					t.Fatal(err)
				}
				if string(shared) != string(own) || string(again) != string(own) {
					t.Errorf("%s: shared rendering differs:\n%s\n---\n%s", r.format, shared, own)
				}
				// The reload as a player makes it (serveKnown's path).
				req, _ := http.NewRequest(http.MethodGet, host+"/s/"+v.Name+"/~"+sid+"/"+r.file, nil)
				rec := newRecorder()
				c.s.ServeHTTP(rec, req)
				if rec.code != 200 || rec.body.String() != string(own) || rec.h.Get("Content-Length") != strconv.Itoa(len(own)) {
					t.Errorf("%s: served %d (Content-Length %s):\n%s\n---\nwant\n%s", r.file, rec.code, rec.h.Get("Content-Length"), rec.body.String(), own)
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

// TestSharedViewHold: the view shared by a live point's sessions leaves
// out a newest block no sender confirmed, and lists it again once its
// hold ends, with nothing else changed.
func TestSharedViewHold(t *testing.T) {
	c := newTestCluster(t, DefaultConfig(), 3, -1, testView("live", 12, false))
	sid, _ := openHLS(t, c, "live", "")
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[sid]
	ps := sess.point
	now := s.now()
	frags := func(v store.View) int { return len(v.Tracks[0].Frags) }
	v0, k0 := s.sessionView(sess, now)
	last := v0.Tracks[0].Frags[len(v0.Tracks[0].Frags)-1]
	mark(&ps.unconfirmed, cluster.BlockID{Point: "live", Track: v0.Tracks[0].ID, Start: last.Start}, now)
	ps.holdVer++
	v1, k1 := s.sessionView(sess, now.Add(time.Second))
	if frags(v1) != frags(v0)-1 || k1 == k0 {
		t.Fatalf("held: %d fragments (key %q), want %d", frags(v1), k1, frags(v0)-1)
	}
	if v, _ := s.sessionView(sess, now.Add(unconfirmedHold-time.Millisecond)); frags(v) != frags(v1) {
		t.Errorf("before the hold ends: %d fragments, want %d", frags(v), frags(v1))
	}
	if v, k := s.sessionView(sess, now.Add(unconfirmedHold)); frags(v) != frags(v0) || k != k0 {
		t.Errorf("after the hold: %d fragments (key %q), want %d (%q)", frags(v), k, frags(v0), k0)
	}
}

// TestReloadsShareTheLock: a reload that changes nothing (a playlist of
// the player's track, a steering poll on its pathway) is served under the
// scheduler's lock held shared, with the bytes the exclusive path
// answered; one that changes something (another pathway) takes the
// exclusive path and is recorded. Many reloads running with timeslots
// stay race-free (go test -race).
func TestReloadsShareTheLock(t *testing.T) {
	v := testView("live", 12, false)
	c := newTestCluster(t, DefaultConfig(), 3, -1, v)
	sid, pls := openHLS(t, c, "live", "")
	pl := pls["video_1000"]
	steer := "/s/live/~" + sid + "/steering.json"
	serve := func(path string) *recorder {
		req, _ := http.NewRequest(http.MethodGet, "http://sched.test"+path, nil)
		rec := newRecorder()
		c.s.ServeHTTP(rec, req)
		return rec
	}
	// First requests: the exclusive path records the track and the
	// steering manifest, and caches the rendering.
	want := map[string]string{}
	for _, p := range []string{pl, strings.Replace(pl, "media.m3u8", "rel.m3u8", 1), steer} {
		rec := serve(p)
		if rec.code != 200 {
			t.Fatalf("%s: %d %s", p, rec.code, rec.body.String())
		}
		want[p] = rec.body.String()
	}
	n0 := c.s.sharedReloads.Load()
	for p, body := range want {
		if rec := serve(p); rec.code != 200 || rec.body.String() != body {
			t.Errorf("%s again: %d\n%s\n---\nwant\n%s", p, rec.code, rec.body.String(), body)
		}
	}
	if n := c.s.sharedReloads.Load() - n0; n != int64(len(want)) {
		t.Errorf("%d of %d reloads served under the shared lock", n, len(want))
	}
	c.s.mu.Lock()
	sess := c.s.sessions[sid]
	var other string
	for _, p := range sess.pathways {
		if p.member != "" && p.member != sess.pathway {
			other = pathwayID(p.label)
			break
		}
	}
	c.s.mu.Unlock()
	if other == "" {
		t.Fatal("the session has a single pathway")
	}
	n0 = c.s.sharedReloads.Load()
	rec := serve(steer + "?_HLS_pathway=" + other)
	if c.s.sharedReloads.Load() != n0 {
		t.Error("a steering request that moves the session was served under the shared lock")
	}
	c.s.mu.Lock()
	moved := sess.pathway != "" && pathwayID(labelOf(sess, sess.pathway)) == other
	c.s.mu.Unlock()
	if rec.code != 200 || !moved {
		t.Fatalf("steering to %s: %d, pathway %q", other, rec.code, sess.pathway)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200 && ctx.Err() == nil; j++ {
				for p := range want {
					if rec := serve(p); rec.code != 200 {
						t.Errorf("%s: %d", p, rec.code)
						return
					}
				}
			}
		}()
	}
	for j := 0; j < 50 && ctx.Err() == nil; j++ {
		c.s.tick(ctx)
	}
	wg.Wait()
}

// labelOf is the label of a session's pathway at a member.
func labelOf(sess *session, member string) string {
	for _, p := range sess.pathways {
		if p.member == member {
			return p.label
		}
	}
	return ""
}

// TestSharedPathwayPlaylists: a session's pathway playlist (rel.m3u8) is
// marked as its point's shared one (cluster.SharedPlaylistHeader) when the
// session lists the shared view — on the exclusive path and on the shared
// lock — and not when it lists its own (an on-demand session opened at a
// deep-link position); other playlists are never marked. A reload a sender
// answered from its copy and reported (cluster.Reload) counts as a request
// of the session: it keeps it alive and moves it to the reloaded track.
func TestSharedPathwayPlaylists(t *testing.T) {
	live := testView("live", 12, false)
	low := live.Tracks[0]
	low.ID, low.Info.Bitrate = "video_500", 500000
	live.Tracks = append(live.Tracks, low)
	c := newTestCluster(t, DefaultConfig(), 3, -1, live, testView("vod", 30, true))
	serve := func(path string) *recorder {
		req, _ := http.NewRequest(http.MethodGet, "http://sched.test"+path, nil)
		rec := newRecorder()
		c.s.ServeHTTP(rec, req)
		if rec.code != 200 {
			t.Fatalf("%s: %d %s", path, rec.code, rec.body.String())
		}
		return rec
	}
	sid, pls := openHLS(t, c, "live", "")
	rel := strings.Replace(pls["video_1000"], "media.m3u8", "rel.m3u8", 1)
	for i := 0; i < 3; i++ { // the exclusive path, then the shared lock
		if got := serve(rel).h.Get(cluster.SharedPlaylistHeader); got != "50" {
			t.Fatalf("reload %d of a live session's pathway playlist: %s %q, want 50", i, cluster.SharedPlaylistHeader, got)
		}
	}
	if got := serve(pls["video_1000"]).h.Get(cluster.SharedPlaylistHeader); got != "" {
		t.Errorf("direct media playlist marked shared: %q", got)
	}
	vsid, vpls := openHLS(t, c, "vod", "?start=20")
	if got := serve(strings.Replace(vpls["video_1000"], "media.m3u8", "rel.m3u8", 1)).h.Get(cluster.SharedPlaylistHeader); got != "" {
		t.Errorf("deep-linked on-demand session %s: marked shared (%q)", vsid, got)
	}

	// A reported reload: the session moves to video_500 and is seen now.
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	sess := c.s.sessions[sid]
	at := c.s.now()
	sess.seen.store(at.Add(-30 * time.Second))
	c.s.onReload(cluster.Reload{Session: sid, Point: "live", Track: "video_500", At: at}, at)
	if kp := sess.kinds["video"]; kp == nil || kp.track != "video_500" {
		t.Errorf("after a reload of video_500 the session's video track is %+v", kp)
	}
	if !sess.seen.load().Equal(at) {
		t.Errorf("seen %v, want %v", sess.seen.load(), at)
	}
	// Another point's or an unknown session's reloads change nothing.
	c.s.onReload(cluster.Reload{Session: sid, Point: "vod", Track: "video_1000", At: at}, at)
	c.s.onReload(cluster.Reload{Session: "nope", Point: "live", Track: "video_1000", At: at}, at)
	if kp := sess.kinds["video"]; kp.track != "video_500" {
		t.Errorf("a reload of another point moved the session to %s", kp.track)
	}
}
