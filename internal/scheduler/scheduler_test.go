package scheduler

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/testkit/mpdschema"
)

func TestParsePath(t *testing.T) {
	for _, c := range []struct {
		path string
		want request
		ok   bool
	}{
		{"/s/live/manifest.mpd", request{point: "live", file: "manifest.mpd"}, true},
		{"/s/live/master.m3u8", request{point: "live", file: "master.m3u8"}, true},
		{"/s/a/b/manifest.mpd", request{point: "a/b", file: "manifest.mpd"}, true},
		{"/s/a/b/~0123/manifest.mpd", request{point: "a/b", session: "0123", file: "manifest.mpd"}, true},
		{"/s/live/~0123/video_1/media.m3u8", request{point: "live", session: "0123", file: "media.m3u8", track: "video_1"}, true},
		{"/s/live/video_1/media.m3u8", request{}, false}, // media playlists need a session
		{"/s/../x/manifest.mpd", request{}, false},
		{"/s/live/~x/../media.m3u8", request{}, false},
		{"/s/live/~x/Manifest", request{}, false},
		{"/s/manifest.mpd", request{}, false},
		{"/x/live/manifest.mpd", request{}, false},
	} {
		got, err := parsePath(c.path)
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v", c.path, err)
			continue
		}
		if c.ok && got != c.want {
			t.Errorf("%s: %+v, want %+v", c.path, got, c.want)
		}
	}
}

var uriRe = regexp.MustCompile(`(?m)^(http://[^\s]+\.m4s)$`)

// mediaURIs returns the segment URIs of a media playlist.
func mediaURIs(pl string) []string {
	var out []string
	for _, m := range uriRe.FindAllStringSubmatch(pl, -1) {
		out = append(out, m[1])
	}
	return out
}

// openHLS opens a session with the master playlist and returns its ID and
// the paths of the direct pathway's media playlists by track (each segment
// at the owner it was first listed at; the master lists the senders'
// pathways, whose playlists the senders pass on).
func openHLS(t *testing.T, c *testCluster, point, query string) (string, map[string]string) {
	t.Helper()
	code, body := c.get("/s/" + point + "/master.m3u8" + query)
	if code != 200 {
		t.Fatalf("master: %d %s", code, body)
	}
	m := regexp.MustCompile(`SERVER-URI="/s/` + point + `/~([0-9a-f]+)/steering\.json"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no steering server in the master:\n%s", body)
	}
	sid := m[1]
	out := map[string]string{}
	for _, tm := range regexp.MustCompile(`/b/[^/]+/`+point+`/([^/"\s]+)/media\.m3u8`).FindAllStringSubmatch(body, -1) {
		out[tm[1]] = "/s/" + point + "/~" + sid + "/" + tm[1] + "/media.m3u8"
	}
	if len(out) == 0 {
		t.Fatalf("no media playlists in the master:\n%s", body)
	}
	return sid, out
}

func fetch(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// blockOf parses the block of a segment URL.
func blockOf(t *testing.T, u string) (host string, b cluster.BlockID) {
	t.Helper()
	m := regexp.MustCompile(`^http://([^/]+)/b/[^/]+/(.+)/([^/]+)/(\d+)\.m4s$`).FindStringSubmatch(u)
	if m == nil {
		t.Fatalf("segment URL %q", u)
	}
	st, _ := strconv.ParseInt(m[4], 10, 64)
	return m[1], cluster.BlockID{Point: m[2], Track: m[3], Start: st}
}

func (c *testCluster) hostID(host string) string {
	for _, f := range c.senders {
		if strings.TrimPrefix(f.srv.URL, "http://") == host {
			return f.id
		}
	}
	c.t.Fatalf("unknown sender host %s", host)
	return ""
}

func TestRegionsFollowTheSession(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RetryPeriod = 200 * time.Millisecond
	c := newTestCluster(t, cfg, 3, -1, testView("vod", 40, true))
	sid, pls := openHLS(t, c, "vod", "")
	sched := c.s.ID()

	// Right after the master playlist the first blocks of each track are
	// reserved: 1 current + 2 alternative (at two owners) + 4 look-ahead.
	count := func() map[cluster.BlockID]int {
		n := map[cluster.BlockID]int{}
		for _, f := range c.senders {
			for p := range f.Pins(sched) {
				if p.Session != sid {
					t.Errorf("pin of another session %v", p)
				}
				n[p.Block]++
			}
		}
		return n
	}
	pins := count()
	for _, tr := range []string{"video_1000", "audio_128"} {
		for i := 0; i < 7; i++ {
			b := cluster.BlockID{Point: "vod", Track: tr, Start: int64(i) * 2000}
			want := 1
			if i == 1 || i == 2 {
				want = 2
			}
			if pins[b] != want {
				t.Errorf("block %v has %d pins, want %d", b, pins[b], want)
			}
		}
		if b := (cluster.BlockID{Point: "vod", Track: tr, Start: 7 * 2000}); pins[b] != 0 {
			t.Errorf("block %v beyond the regions is pinned", b)
		}
	}
	// The direct pathway points every block at its primary owner, with the
	// session's token.
	code, pl := c.get(pls["video_1000"])
	if code != 200 {
		t.Fatalf("media playlist: %d %s", code, pl)
	}
	uris := mediaURIs(pl)
	if len(uris) != 40 {
		t.Fatalf("%d segment URIs:\n%s", len(uris), pl)
	}
	for _, u := range uris {
		host, b := blockOf(t, u)
		owners := cluster.Owners(b.Key(), []string{"s0", "s1", "s2"}, 2)
		if c.hostID(host) != owners[0] {
			t.Errorf("%s at %s, primary is %s", b, c.hostID(host), owners[0])
		}
		tok := strings.Split(u, "/")[4]
		tk, err := cluster.Verify(testSecret, tok, b)
		if err != nil || tk.Session != sid {
			t.Errorf("token of %s: %v %+v", u, err, tk)
		}
		if _, err := cluster.Verify(testSecret, tok, cluster.BlockID{Point: "other", Track: b.Track, Start: b.Start}); err == nil {
			t.Errorf("token of %s valid for another point", u)
		}
	}
	// The player fetches the first three blocks; the regions move along.
	_, apl := c.get(pls["audio_128"])
	auris := mediaURIs(apl)
	for i := 0; i < 3; i++ {
		if code := fetch(t, uris[i]); code != 200 {
			t.Fatalf("fetch %s: %d", uris[i], code)
		}
		fetch(t, auris[i])
	}
	eventually(t, "block 9 reserved", 2*time.Second, func() bool {
		return count()[cluster.BlockID{Point: "vod", Track: "video_1000", Start: 9 * 2000}] == 1
	})
	// Sent blocks are released after the retry period.
	eventually(t, "sent blocks released", 2*time.Second, func() bool {
		p := count()
		return p[cluster.BlockID{Point: "vod", Track: "video_1000", Start: 0}] == 0 &&
			p[cluster.BlockID{Point: "vod", Track: "video_1000", Start: 2 * 2000}] == 0
	})
	p := count()
	for i := 3; i <= 9; i++ {
		if p[cluster.BlockID{Point: "vod", Track: "video_1000", Start: int64(i) * 2000}] == 0 {
			t.Errorf("block %d not reserved after the move", i)
		}
	}

	// Seek: the player jumps to block 30; the old reservations go.
	fetch(t, uris[30])
	eventually(t, "regions at the seek position", 2*time.Second, func() bool {
		p := count()
		return p[cluster.BlockID{Point: "vod", Track: "video_1000", Start: 31 * 2000}] > 0 &&
			p[cluster.BlockID{Point: "vod", Track: "video_1000", Start: 5 * 2000}] == 0
	})
	// The metrics saw the sends.
	s := c.s
	s.mu.Lock()
	sess := s.sessions[sid]
	s.mu.Unlock()
	if sess == nil {
		t.Fatal("session gone")
	}
}

func TestControlTrafficBatched(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tick = 50 * time.Millisecond
	c := newTestCluster(t, cfg, 3, -1, testView("vod", 40, true))
	for i := 0; i < 20; i++ {
		openHLS(t, c, "vod", "?start="+strconv.Itoa(i*2))
	}
	time.Sleep(300 * time.Millisecond)
	// 20 sessions but far fewer batches per sender than reservations:
	// at most one batch per tick, plus the immediate ones for new
	// sessions.
	for _, f := range c.senders {
		bs := f.Batches()
		ops := 0
		for _, b := range bs {
			ops += len(b.LookAhead) + len(b.Send) + len(b.Cancel)
			if b.Scheduler != c.s.ID() || b.Lease != 3*time.Second {
				t.Errorf("batch %s lease %v", b.Scheduler, b.Lease)
			}
		}
		if ops < 20 || len(bs) > 20+int(time.Second/cfg.Tick) {
			t.Errorf("sender %s: %d batches for %d requests", f.id, len(bs), ops)
		}
	}
}

// TestRefusedGoesToReplica: a reservation the primary refuses (RAM full)
// moves to the replica; the URLs already listed do not move (the senders
// redirect or serve from disk).
func TestRefusedGoesToReplica(t *testing.T) {
	cfg := DefaultConfig()
	c := newTestCluster(t, cfg, 3, -1, testView("vod", 20, true))
	full := c.sender("s1")
	full.mu.Lock()
	full.budget = 0
	full.mu.Unlock()
	sid, pls := openHLS(t, c, "vod", "")
	_, pl := c.get(pls["video_1000"])
	uris := mediaURIs(pl)
	ids := []string{"s0", "s1", "s2"}
	var moved []cluster.BlockID
	for i := 0; i < 3; i++ {
		_, b := blockOf(t, uris[i])
		if o := cluster.Owners(b.Key(), ids, 2); o[0] == "s1" {
			moved = append(moved, b)
		}
	}
	if len(moved) == 0 {
		t.Skip("no block of the first regions has s1 as primary")
	}
	eventually(t, "refusals moved to replicas", 2*time.Second, func() bool {
		for _, b := range moved {
			o := cluster.Owners(b.Key(), ids, 2)
			if !c.sender(o[1]).Pins(c.s.ID())[cluster.Pin{Session: sid, Block: b}] {
				return false
			}
		}
		return true
	})
	if n := full.AllPins(); n != 0 {
		t.Errorf("the full sender holds %d pins", n)
	}
	if _, again := c.get(pls["video_1000"]); again != pl {
		t.Errorf("the playlist changed after the refusals:\n%s\n---\n%s", pl, again)
	}
}

// TestSenderDeathMovesBlocks: after a sender's death the blocks listed
// from then on avoid it; those listed before keep their URLs.
func TestSenderDeathMovesBlocks(t *testing.T) {
	cfg := DefaultConfig()
	c := newTestCluster(t, cfg, 3, -1, testView("live", 30, false))
	_, pls := openHLS(t, c, "live", "")
	_, before := c.get(pls["video_1000"])
	dead := c.sender("s2")
	dead.srv.Close()
	// The next batch to s2 fails (connection refused): s2 leaves the live
	// set.
	eventually(t, "s2 out of the live set", 2*time.Second, func() bool {
		return len(c.s.LiveSenders()) == 2
	})
	v := testView("live", 34, false)
	c.tl.set(v)
	c.write(v)
	var pl string
	eventually(t, "new fragments listed", 3*time.Second, func() bool {
		_, pl = c.get(pls["video_1000"])
		return len(mediaURIs(pl)) == 34
	})
	old := mediaURIs(before)
	now := mediaURIs(pl)
	for i, u := range old {
		if now[i] != u {
			t.Errorf("listed URL %d changed: %s -> %s", i, u, now[i])
		}
	}
	// A new block is listed at a live owner (the first one known to hold
	// it near the live edge, else the primary among the live senders).
	for _, u := range now[len(old):] {
		host, b := blockOf(t, u)
		o := cluster.Owners(b.Key(), []string{"s0", "s1"}, 2)
		if got := c.hostID(host); !slices.Contains(o, got) {
			t.Errorf("%s at %s, want one of the live owners %v", b, got, o)
		}
	}
}

func TestAdoptSession(t *testing.T) {
	cfg := DefaultConfig()
	c := newTestCluster(t, cfg, 3, -1, testView("live", 30, false))
	sid, _ := openHLS(t, c, "live", "")
	// A second scheduler with the same secret adopts the session.
	var ms []membership.Member
	for _, f := range c.senders {
		ms = append(ms, f.member())
	}
	set, _ := membership.Static(ms...)
	cfg2 := DefaultConfig()
	cfg2.Secret, cfg2.Tick, cfg2.StatsInterval = testSecret, 20*time.Millisecond, -1
	s2, err := New(cfg2, c.tl, set, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s2.Run(ctx)
	rec := newRecorder()
	s2.ServeHTTP(rec, mustReq(t, "/s/live/~"+sid+"/manifest.mpd"))
	if rec.code != 200 || !strings.Contains(rec.body.String(), "~"+sid+"/manifest.mpd") {
		t.Fatalf("adopt: %d %s", rec.code, rec.body.String())
	}
	if s2.Sessions() != 1 {
		t.Errorf("%d sessions at the second scheduler", s2.Sessions())
	}
	// A forged session ID is not adopted.
	rec = newRecorder()
	s2.ServeHTTP(rec, mustReq(t, "/s/live/~"+strings.Repeat("0", 28)+"/manifest.mpd"))
	if rec.code != 404 {
		t.Errorf("forged session: %d", rec.code)
	}
	// The first scheduler stops: its pins are cancelled at once.
	first := c.s.ID()
	c.stop()
	for _, f := range c.senders {
		if n := len(f.Pins(first)); n != 0 {
			t.Errorf("%s still holds %d pins of the stopped scheduler", f.id, n)
		}
	}
}

// TestDASHSession: a session MPD names one BaseURL per sender (a pathway
// with its serviceLocation), addresses the segments relative to them, and
// names the session's steering server; reloading it at its Location
// continues the session with the very same text but the time.
func TestDASHSession(t *testing.T) {
	cfg := DefaultConfig()
	c := newTestCluster(t, cfg, 3, -1, testView("vod", 10, true), testView("live", 10, false))
	for _, p := range []string{"vod", "live"} {
		code, body := c.get("/s/" + p + "/manifest.mpd")
		if code != 200 {
			t.Fatalf("%s: %d %s", p, code, body)
		}
		if err := mpdschema.Check([]byte(body)); err != nil {
			t.Errorf("%s: session MPD against the schema order: %v\n%s", p, err, body)
		}
		loc := regexp.MustCompile(`<Location>(/s/` + p + `/~([0-9a-f]+)/manifest\.mpd)</Location>`).FindStringSubmatch(body)
		if loc == nil {
			t.Fatalf("%s: no Location:\n%s", p, body)
		}
		bases := regexp.MustCompile(`<BaseURL serviceLocation="(p[0-9a-f]{6})">(http://[^<]+/b/[^/<]+/`+p+`/)</BaseURL>`).FindAllStringSubmatch(body, -1)
		if len(bases) != 3 {
			t.Errorf("%s: %d BaseURLs, want one per sender:\n%s", p, len(bases), body)
		}
		if !strings.Contains(body, `media="$RepresentationID$/$Time$.m4s"`) || strings.Contains(body, "<SegmentURL ") {
			t.Errorf("%s: segments not relative to the BaseURLs:\n%s", p, body)
		}
		steer := regexp.MustCompile(`<ContentSteering defaultServiceLocation="(p[0-9a-f]{6})" queryBeforeStart="true">(http://[^<]+/s/` + p + `/~` + loc[2] + `/steering\.json)</ContentSteering>`).FindStringSubmatch(body)
		if steer == nil {
			t.Errorf("%s: no ContentSteering:\n%s", p, body)
		}
		// Reloading at the Location continues the session.
		n := c.s.Sessions()
		code, body2 := c.get(loc[1])
		if code != 200 || c.s.Sessions() != n || !strings.Contains(body2, loc[1]) {
			t.Errorf("%s reload: %d, %d sessions (was %d)", p, code, c.s.Sessions(), n)
		}
		if err := mpdschema.Check([]byte(body2)); err != nil {
			t.Errorf("%s reload: session MPD against the schema order: %v", p, err)
		}
		for _, b := range bases {
			if !strings.Contains(body2, b[0]) {
				t.Errorf("%s reload: BaseURL %s gone", p, b[0])
			}
		}
	}
	if code, _ := c.get("/s/nope/manifest.mpd"); code != 404 {
		t.Errorf("unknown point: %d", code)
	}
}

func TestLiveEdgeAndHoldBack(t *testing.T) {
	cfg := DefaultConfig()
	v := testView("live", 10, false)
	c := newTestCluster(t, cfg, 3, -1, v)
	_, pls := openHLS(t, c, "live", "")
	// A new fragment appears in the origin's index but has not reached the
	// senders: it is not listed while a sender reports it missing.
	v2 := testView("live", 11, false)
	c.tl.set(v2)
	nb := cluster.BlockID{Point: "live", Track: "video_1000", Start: 10 * 2000}
	eventually(t, "new block asked for", 3*time.Second, func() bool {
		for _, f := range c.senders {
			for _, b := range f.Batches() {
				for _, p := range append(b.LookAhead, b.Send...) {
					if p.Block == nb {
						return true
					}
				}
			}
		}
		return false
	})
	time.Sleep(50 * time.Millisecond)
	_, pl := c.get(pls["video_1000"])
	if n := len(mediaURIs(pl)); n != 10 {
		t.Errorf("%d segments listed with the newest missing at the senders", n)
	}
	c.write(v2)
	eventually(t, "new block listed", 5*time.Second, func() bool {
		_, pl = c.get(pls["video_1000"])
		return len(mediaURIs(pl)) == 11
	})
}

func TestNoPins(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NoPins = true
	c := newTestCluster(t, cfg, 3, -1, testView("vod", 10, true))
	_, pls := openHLS(t, c, "vod", "")
	_, pl := c.get(pls["video_1000"])
	for _, u := range mediaURIs(pl)[:3] {
		fetch(t, u)
	}
	time.Sleep(100 * time.Millisecond)
	for _, f := range c.senders {
		if n := f.AllPins(); n != 0 {
			t.Errorf("%s: %d pins with NoPins", f.id, n)
		}
	}
}

func TestDeepLink(t *testing.T) {
	cfg := DefaultConfig()
	c := newTestCluster(t, cfg, 3, -1, testView("vod", 40, true))
	sid, pls := openHLS(t, c, "vod", "?start=21")
	_, pl := c.get(pls["video_1000"])
	uris := mediaURIs(pl)
	if len(uris) != 30 {
		t.Fatalf("%d segments from 21 s (want 30: blocks 10..39)", len(uris))
	}
	if _, b := blockOf(t, uris[0]); b.Start != 20000 {
		t.Errorf("first segment %v", b)
	}
	if !strings.Contains(pl, "#EXT-X-MEDIA-SEQUENCE:10") {
		t.Errorf("media sequence:\n%s", pl)
	}
	n := 0
	for _, f := range c.senders {
		for p := range f.Pins(c.s.ID()) {
			if p.Session == sid && p.Block.Start < 20000 {
				t.Errorf("pin before the start: %v", p)
			}
			n++
		}
	}
	if n == 0 {
		t.Error("nothing reserved at the deep-link position")
	}
}

func TestNorBlock(t *testing.T) {
	b := cluster.BlockID{Point: "a/b", Track: "v1", Start: 2000}
	for _, c := range []struct {
		nor  string
		want cluster.BlockID
		ok   bool
	}{
		{"4000.m4s", cluster.BlockID{Point: "a/b", Track: "v1", Start: 4000}, true},
		{"../v2/4000.m4s", cluster.BlockID{Point: "a/b", Track: "v2", Start: 4000}, true},
		{"http://other:9/b/tok2/a/b/v1/6000.m4s", cluster.BlockID{Point: "a/b", Track: "v1", Start: 6000}, true},
		{"/b/tok/a/b/v1/8000.m4s", cluster.BlockID{Point: "a/b", Track: "v1", Start: 8000}, true},
		{"init.mp4", cluster.BlockID{}, false},
		{"/s/a/b/manifest.mpd", cluster.BlockID{}, false},
		{"", cluster.BlockID{}, false},
	} {
		got, ok := norBlock(cluster.SentReport{Block: b, Next: c.nor})
		if ok != c.ok || got != c.want {
			t.Errorf("%q: %v %v, want %v %v", c.nor, got, ok, c.want, c.ok)
		}
	}
}

// TestNorMovesRegions: a player that announces (CMCD nor) a jump has its
// regions moved there before it asks.
func TestNorMovesRegions(t *testing.T) {
	c := newTestCluster(t, DefaultConfig(), 3, -1, testView("vod", 40, true))
	sid, pls := openHLS(t, c, "vod", "")
	_, pl := c.get(pls["video_1000"])
	uris := mediaURIs(pl)
	req, _ := http.NewRequest(http.MethodGet, uris[0], nil)
	req.Header.Set("CMCD-Request", `nor="60000.m4s"`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := cluster.BlockID{Point: "vod", Track: "video_1000", Start: 60000}
	eventually(t, "regions at the announced block", 2*time.Second, func() bool {
		for _, f := range c.senders {
			if f.Pins(c.s.ID())[cluster.Pin{Session: sid, Block: want}] {
				return true
			}
		}
		return false
	})
}

// TestEdgeBlockAtReplica: a new live block that reached only its replica
// (the write to the primary lags) is listed, at the replica.
func TestEdgeBlockAtReplica(t *testing.T) {
	c := newTestCluster(t, DefaultConfig(), 3, -1, testView("live", 10, false))
	_, pls := openHLS(t, c, "live", "")
	v2 := testView("live", 11, false)
	ids := []string{"s0", "s1", "s2"}
	var replicas []string
	for _, tr := range v2.Tracks {
		b := cluster.BlockID{Point: "live", Track: tr.ID, Start: tr.Frags[10].Start}
		o := cluster.Owners(b.Key(), ids, 2)
		f := c.sender(o[1])
		f.mu.Lock()
		f.held[b] = true
		f.mu.Unlock()
		if tr.ID == "video_1000" {
			replicas = append(replicas, o[1])
		}
	}
	c.tl.set(v2)
	var uris []string
	eventually(t, "new block listed", 5*time.Second, func() bool {
		_, pl := c.get(pls["video_1000"])
		uris = mediaURIs(pl)
		return len(uris) == 11
	})
	host, b := blockOf(t, uris[10])
	if b.Start != 20000 || c.hostID(host) != replicas[0] {
		t.Errorf("new block %v at %s, want at the replica %s", b, c.hostID(host), replicas[0])
	}
	if code := fetch(t, uris[10]); code != 200 {
		t.Errorf("new block: %d", code)
	}
}

// TestBatchJSONFallback: a sender from before the binary batch encoding
// (it answers one with JSON's syntax error) gets the batch again in JSON,
// and JSON from then on; the others keep the binary encoding.
func TestBatchJSONFallback(t *testing.T) {
	c := newTestCluster(t, DefaultConfig(), 2, -1, testView("vod", 20, true))
	old := c.senders[0]
	old.mu.Lock()
	old.jsonOnly = true
	n0 := len(old.batches)
	old.mu.Unlock()
	openHLS(t, c, "vod", "")
	for _, f := range c.senders {
		deadline := time.Now().Add(20 * time.Second)
		for {
			bs := f.Batches()
			pins := 0
			for _, b := range bs[min(n0, len(bs)):] {
				pins += len(b.LookAhead) + len(b.Send)
			}
			if pins > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sender %s (JSON only: %v) got no reservations", f.id, f == old)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
