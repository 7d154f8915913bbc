package scheduler

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/testkit/mpdschema"
)

// masterPathways returns the session ID, the default PATHWAY-ID and the
// pathways of a master playlist (PATHWAY-ID -> its video playlist URI).
func masterPathways(t *testing.T, master string) (string, string, map[string]string) {
	t.Helper()
	m := regexp.MustCompile(`#EXT-X-CONTENT-STEERING:SERVER-URI="/s/[^"]+/~([0-9a-f]+)/steering\.json",PATHWAY-ID="([^"]+)"`).FindStringSubmatch(master)
	if m == nil {
		t.Fatalf("no EXT-X-CONTENT-STEERING:\n%s", master)
	}
	out := map[string]string{}
	for _, v := range regexp.MustCompile(`PATHWAY-ID="([^"]+)"\n(\S+/video_1000/media\.m3u8)`).FindAllStringSubmatch(master, -1) {
		out[v[1]] = v[2]
	}
	return m[1], m[2], out
}

// TestSteering: every sender is a pathway of the session's master
// playlist (its media playlists at the sender), the steering manifest
// lists them in the session's order with dead senders left out, and the
// player's current pathway moves its reservations there.
func TestSteering(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SteeringTTL = 7 * time.Second
	c := newTestCluster(t, cfg, 3, -1, testView("vod", 20, true))
	code, master := c.get("/s/vod/master.m3u8")
	if code != 200 {
		t.Fatalf("master: %d", code)
	}
	sid, def, pws := masterPathways(t, master)
	if len(pws) != 3 {
		t.Fatalf("%d pathways, want 3:\n%s", len(pws), master)
	}
	bySender := map[string]string{} // sender ID -> pathway ID
	for id, u := range pws {
		for _, f := range c.senders {
			if strings.HasPrefix(u, f.srv.URL+"/b/") {
				bySender[f.id] = id
			}
		}
		if !strings.Contains(master, `GROUP-ID="audio-`+id+`"`) {
			t.Errorf("pathway %s has no audio group of its own", id)
		}
	}
	if len(bySender) != 3 || pws[def] == "" {
		t.Fatalf("pathways %v, default %s", pws, def)
	}
	steer := func(q string) steeringManifest {
		t.Helper()
		code, body := c.get("/s/vod/~" + sid + "/steering.json" + q)
		var m steeringManifest
		if code != 200 || json.Unmarshal([]byte(body), &m) != nil {
			t.Fatalf("steering: %d %s", code, body)
		}
		return m
	}
	m := steer("")
	if m.Version != 1 || m.TTL != 7 || len(m.Priority) != 3 || m.Priority[0] != def {
		t.Fatalf("steering manifest %+v, want 3 pathways from %s", m, def)
	}
	order := m.Priority

	// The player says it is on the last pathway: the session's current
	// blocks are reserved at that sender first when it owns them.
	last := order[2]
	member := ""
	for id, p := range bySender {
		if p == last {
			member = id
		}
	}
	steer("?_HLS_pathway=" + last + "&_HLS_throughput=1000")
	c.s.mu.Lock()
	got := c.s.sessions[sid].pathway
	c.s.mu.Unlock()
	if got != member {
		t.Errorf("the session's pathway is %q, want %s", got, member)
	}

	// A dead sender leaves the priority; the others keep their order.
	victim := ""
	for id, p := range bySender {
		if p == order[0] {
			victim = id
		}
	}
	c.sender(victim).srv.Close()
	eventually(t, "the victim out of the live set", 2*time.Second, func() bool { return len(c.s.LiveSenders()) == 2 })
	if m := steer("?_DASH_pathway=%22" + order[0] + "%22"); !slices.Equal(m.Priority, order[1:]) {
		t.Errorf("after %s died: %v, want %v", victim, m.Priority, order[1:])
	}
	// The master playlist still lists all three (its URIs never change).
	if _, again := c.get("/s/vod/~" + sid + "/master.m3u8"); again != master {
		t.Errorf("the master changed after a death:\n%s\n---\n%s", master, again)
	}
}

// TestPathwayPlaylist: the playlist a sender passes on to its pathway's
// players lists the segments relative to it.
func TestPathwayPlaylist(t *testing.T) {
	c := newTestCluster(t, DefaultConfig(), 3, -1, testView("vod", 5, true))
	sid, _ := openHLS(t, c, "vod", "")
	code, pl := c.get("/s/vod/~" + sid + "/video_1000/rel.m3u8")
	if code != 200 {
		t.Fatalf("rel.m3u8: %d %s", code, pl)
	}
	if !strings.Contains(pl, "#EXT-X-MAP:URI=\"init.mp4\"\n") || !strings.Contains(pl, "\n0.m4s\n") || !strings.Contains(pl, "\n8000.m4s\n") || strings.Contains(pl, "http") {
		t.Errorf("rel.m3u8 not relative:\n%s", pl)
	}
}

// TestPathwaysListStoredBlocks: an audio track that begins a little before
// the video (AAC priming) is not cut to the presentation start on any
// pathway — the senders serve stored blocks only — so the DASH BaseURL
// pathways, the relative playlists of the HLS pathways and the direct
// pathway list the same blocks, each at its stored start (a cut one would
// be a URL no sender answers).
func TestPathwaysListStoredBlocks(t *testing.T) {
	v := testView("vod", 5, true)
	for i := range v.Tracks {
		for j := range v.Tracks[i].Frags {
			if v.Tracks[i].Info.Kind == "audio" {
				v.Tracks[i].Frags[j].Start += 50
			} else {
				v.Tracks[i].Frags[j].Start += 100
			}
		}
	}
	c := newTestCluster(t, DefaultConfig(), 3, -1, v)
	sid, _ := openHLS(t, c, "vod", "")
	for _, pl := range []string{"rel.m3u8", "media.m3u8"} {
		code, body := c.get("/s/vod/~" + sid + "/audio_128/" + pl)
		if code != 200 {
			t.Fatalf("%s: %d %s", pl, code, body)
		}
		if !strings.Contains(body, "#EXT-X-MEDIA-SEQUENCE:0\n") || !regexp.MustCompile(`(?m)^(\S*/)?50\.m4s$`).MatchString(body) || strings.Contains(body, "100.m4s") {
			t.Errorf("%s lists a cut audio block:\n%s", pl, body)
		}
	}
	code, mpd := c.get("/s/vod/manifest.mpd")
	if code != 200 {
		t.Fatalf("mpd: %d %s", code, mpd)
	}
	if err := mpdschema.Check([]byte(mpd)); err != nil {
		t.Errorf("session MPD against the schema order: %v", err)
	}
	audio := mpd[strings.Index(mpd, `contentType="audio"`):]
	if !strings.Contains(audio, `t="50"`) || strings.Contains(audio, `t="100"`) {
		t.Errorf("the MPD lists a cut audio block:\n%s", mpd)
	}
}

// TestGrants: a session is granted to every live sender when it opens,
// renewed every third of the token TTL, granted again to a sender that
// restarted (its boot ID changed) and ended everywhere when it idles out.
func TestGrants(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TokenTTL = 600 * time.Millisecond
	cfg.Idle = 1500 * time.Millisecond
	c := newTestCluster(t, cfg, 3, -1, testView("vod", 20, true))
	sid, _ := openHLS(t, c, "vod", "")
	grants := func(f *fakeSender) (n int) {
		for _, b := range f.Batches() {
			for _, g := range b.Grants {
				if g.Session == sid {
					if g.Point != "vod" || b.GrantTTL != cfg.TokenTTL {
						t.Errorf("grant %+v with TTL %v", g, b.GrantTTL)
					}
					n++
				}
			}
		}
		return n
	}
	for _, f := range c.senders {
		eventually(t, "grant at "+f.id, time.Second, func() bool { return grants(f) >= 1 })
	}
	// Renewals: about every 200 ms.
	eventually(t, "renewals", 2*time.Second, func() bool { return grants(c.senders[0]) >= 3 })
	// A restarted sender gets every grant again at once.
	f := c.senders[1]
	n := grants(f)
	f.mu.Lock()
	f.boot = "boot-2"
	f.mu.Unlock()
	eventually(t, "grants after the restart", time.Second, func() bool { return grants(f) > n })
	// Idle (no request, no sent report): ended at every sender.
	for _, f := range c.senders {
		eventually(t, "end at "+f.id, 3*time.Second, func() bool { _, ended := f.Granted(sid); return ended })
	}
	if c.s.Sessions() != 0 {
		t.Errorf("%d sessions after the idle timeout", c.s.Sessions())
	}
}

// TestAdoptOrphan: a session a sender offers (its scheduler stopped
// renewing it while its player fetched on) is adopted and granted
// everywhere; its manifests name the same pathways and token.
func TestAdoptOrphan(t *testing.T) {
	c := newTestCluster(t, DefaultConfig(), 3, -1, testView("live", 20, false))
	code, mpd := c.get("/s/live/manifest.mpd")
	if code != 200 {
		t.Fatal(code)
	}
	loc := regexp.MustCompile(`<Location>/s/live/~([0-9a-f]+)/manifest\.mpd</Location>`).FindStringSubmatch(mpd)
	sid := loc[1]
	// A second scheduler, which never saw the session, gets it offered.
	var ms []membership.Member
	for _, f := range c.senders {
		ms = append(ms, f.member())
	}
	set, _ := membership.Static(ms...)
	cfg2 := DefaultConfig()
	cfg2.Secret, cfg2.Tick, cfg2.StatsInterval, cfg2.ID = testSecret, 20*time.Millisecond, -1, "sched-b"
	s2, err := New(cfg2, c.tl, set, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s2.Run(ctx)
	f := c.senders[0]
	f.mu.Lock()
	f.orphans = []cluster.Grant{{Session: sid, Point: "live"}, {Session: strings.Repeat("ab", 30), Point: "live"}}
	f.orphansTo = "sched-b"
	f.mu.Unlock()
	eventually(t, "adopted", 2*time.Second, func() bool { return s2.Sessions() == 1 })
	for _, g := range c.senders {
		eventually(t, "granted by sched-b at "+g.id, 2*time.Second, func() bool { by, _ := g.Granted(sid); return by == "sched-b" })
	}
	// Its MPD at the adopter names the same BaseURLs.
	rec := newRecorder()
	s2.ServeHTTP(rec, mustReq(t, "/s/live/~"+sid+"/manifest.mpd"))
	bases := regexp.MustCompile(`<BaseURL[^>]*>[^<]+</BaseURL>`)
	if a, b := bases.FindAllString(mpd, -1), bases.FindAllString(rec.body.String(), -1); len(a) != 3 || !slices.Equal(a, b) {
		t.Errorf("BaseURLs at the adopter %v, at the first scheduler %v", b, a)
	}
}

// TestSenderBackAfterProbe: a sender that stopped answering (taken out of
// the live set) is probed and comes back when it answers again, with
// every session granted to it.
func TestSenderBackAfterProbe(t *testing.T) {
	c := newTestCluster(t, DefaultConfig(), 3, -1, testView("vod", 20, true))
	sid, _ := openHLS(t, c, "vod", "")
	f := c.sender("s1")
	addr := f.srv.Listener.Addr().String()
	f.srv.Close()
	eventually(t, "s1 out of the live set", 2*time.Second, func() bool { return len(c.s.LiveSenders()) == 2 })
	f.mu.Lock()
	f.batches = nil
	clear(f.grants)
	f.mu.Unlock()
	f.srv = newServerAt(t, addr, f)
	eventually(t, "s1 back in the live set", 5*time.Second, func() bool { return len(c.s.LiveSenders()) == 3 })
	eventually(t, "s1 granted the session again", 2*time.Second, func() bool { by, _ := f.Granted(sid); return by != "" && len(f.Batches()) > 0 })
}

// BenchmarkSteering is the scheduler's cost of one steering request (a
// player polls every Config.SteeringTTL): the handler in process, a live
// point with three senders.
func BenchmarkSteering(b *testing.B) {
	c := newTestCluster(b, DefaultConfig(), 3, -1, testView("live", 30, false))
	code, master := c.get("/s/live/master.m3u8")
	if code != 200 {
		b.Fatal(code)
	}
	sid := regexp.MustCompile(`/s/live/~([0-9a-f]+)/steering\.json`).FindStringSubmatch(master)[1]
	req := mustReq(b, "/s/live/~"+sid+"/steering.json?_HLS_pathway=x&_HLS_throughput=1000")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		rec := newRecorder()
		c.s.ServeHTTP(rec, req)
		if rec.code != 200 {
			b.Fatal(rec.code)
		}
	}
}
