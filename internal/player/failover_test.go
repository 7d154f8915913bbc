package player

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// fakeCluster imitates a scheduler in front of two senders: its per-session
// on-demand manifest (a DASH SegmentList or HLS playlists with ENDLIST) names
// every second fragment and the init segments at sender A, the rest at B.
// Once A has served killAfter fragments it dies (its listener closes:
// connection refused), and the manifests rendered lag loads after that name
// B for everything — unless moves is false, when they keep naming A.
type fakeCluster struct {
	t         *testing.T
	total     int
	segDur    time.Duration
	killAfter int
	lag       int
	moves     bool

	a, b, sched *httptest.Server
	served      atomic.Int32 // fragments A served
	inits       atomic.Int32 // init segments A served
	dead        atomic.Bool
	mu          sync.Mutex
	loadsDead   map[string]int // loads of each manifest since A died
}

func (c *fakeCluster) start() *fakeCluster {
	sender := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var rep string
			var k int
			if strings.HasSuffix(r.URL.Path, "/init.mp4") {
				init := mp4.CreateEmptyInit()
				kind := "video"
				if strings.Contains(r.URL.Path, "/a/") {
					kind = "audio"
				}
				init.AddEmptyTrack(testTimescale, kind, "und")
				var b bytes.Buffer
				if err := init.Encode(&b); err != nil {
					c.t.Error(err)
				}
				_, _ = w.Write(b.Bytes())
				if name == "A" {
					c.inits.Add(1)
					c.maybeKill()
				}
				return
			}
			if _, err := fmt.Sscanf(r.URL.Path, "/x/%1s/%d.m4s", &rep, &k); err != nil {
				http.NotFound(w, r)
				return
			}
			_, _ = w.Write(makeFragment(c.t, 200_000, c.segDur, uint64(int64(k)*int64(c.segDur)*testTimescale/int64(time.Second)), uint32(k+1)))
			if name == "A" {
				c.served.Add(1)
				c.maybeKill()
			}
		}))
	}
	c.a, c.b = sender("A"), sender("B")
	c.sched = httptest.NewServer(http.HandlerFunc(c.manifest))
	c.t.Cleanup(func() { c.sched.Close(); c.b.Close(); c.a.Close() })
	return c
}

// maybeKill makes A die once it has served killAfter fragments and both
// init segments: a header lost with A is retried, not skipped, so a death
// before the player (slow on a loaded machine) fetched it would change what
// the test counts.
func (c *fakeCluster) maybeKill() {
	if int(c.served.Load()) >= c.killAfter && c.inits.Load() >= 2 && c.dead.CompareAndSwap(false, true) {
		go c.a.Close() // waits for this response
	}
}

// host is the sender the current rendering names for fragment k (-1: init).
func (c *fakeCluster) host(k int, moved bool) string {
	if (k < 0 || k%2 == 0) && !moved {
		return c.a.URL
	}
	return c.b.URL
}

func (c *fakeCluster) manifest(w http.ResponseWriter, r *http.Request) {
	moved := false
	if c.dead.Load() {
		c.mu.Lock()
		if c.loadsDead == nil {
			c.loadsDead = map[string]int{}
		}
		c.loadsDead[r.URL.Path]++
		moved = c.moves && c.loadsDead[r.URL.Path] > c.lag
		c.mu.Unlock()
	}
	ticks := int64(c.segDur) * testTimescale / int64(time.Second)
	var b strings.Builder
	switch r.URL.Path {
	case "/s/manifest.mpd":
		fmt.Fprintf(&b, `<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT%gS" minBufferTime="PT1S">
  <Location>/s/manifest.mpd</Location>
  <Period id="0" start="PT0S">
`, (time.Duration(c.total) * c.segDur).Seconds())
		for _, kind := range []string{"video", "audio"} {
			id := kind[:1]
			fmt.Fprintf(&b, `    <AdaptationSet contentType="%s" mimeType="%s/mp4"><Representation id="%s" bandwidth="200000"><SegmentList timescale="%d">`,
				kind, kind, id, testTimescale)
			fmt.Fprintf(&b, `<Initialization sourceURL="%s/x/%s/init.mp4"/><SegmentTimeline>`, c.host(-1, moved), id)
			for k := range c.total {
				fmt.Fprintf(&b, `<S t="%d" d="%d"/>`, int64(k)*ticks, ticks)
			}
			b.WriteString(`</SegmentTimeline>`)
			for k := range c.total {
				fmt.Fprintf(&b, `<SegmentURL media="%s/x/%s/%d.m4s"/>`, c.host(k, moved), id, k)
			}
			b.WriteString("</SegmentList></Representation></AdaptationSet>\n")
		}
		b.WriteString("  </Period>\n</MPD>\n")
	case "/s/master.m3u8":
		b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n")
		b.WriteString(`#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="a",DEFAULT=YES,URI="a.m3u8"` + "\n")
		b.WriteString(`#EXT-X-STREAM-INF:BANDWIDTH=200000,CODECS="avc1.64001f,mp4a.40.2",AUDIO="aud"` + "\nv.m3u8\n")
	case "/s/v.m3u8", "/s/a.m3u8":
		id := r.URL.Path[3:4]
		fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%d\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n",
			int(c.segDur.Seconds()+0.999))
		fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"%s/x/%s/init.mp4\"\n", c.host(-1, moved), id)
		for k := range c.total {
			fmt.Fprintf(&b, "#EXTINF:%.3f,\n%s/x/%s/%d.m4s\n", c.segDur.Seconds(), c.host(k, moved), id, k)
		}
		b.WriteString("#EXT-X-ENDLIST\n")
	default:
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write([]byte(b.String()))
}

// TestFailoverReload: a fragment whose sender died is fetched at the URL a
// reload of the on-demand manifest names (DASH SegmentList and HLS), also
// when the first reload still names the dead sender; without a new URL the
// fragments are skipped after the bounded reloads.
func TestFailoverReload(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		manifest string
		lag      int
		moves    bool
	}{
		{"dash", "manifest.mpd", 0, true},
		{"dash lagging", "manifest.mpd", 1, true},
		{"hls", "master.m3u8", 0, true},
		{"hls lagging", "master.m3u8", 1, true},
		{"dash never moves", "manifest.mpd", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := (&fakeCluster{t: t, total: 8, segDur: 500 * time.Millisecond, killAfter: 2, lag: tc.lag, moves: tc.moves}).start()
			rep := play(t, Config{URL: c.sched.URL + "/s/" + tc.manifest, Startup: time.Second, RetryDelay: 20 * time.Millisecond})
			if !c.dead.Load() {
				t.Fatal("sender A never died")
			}
			if !tc.moves {
				// Every fragment named at A after its death is lost, each after
				// two attempts and two reloads.
				if rep.Skipped == 0 || rep.Failovers != 0 || rep.FailoverReloads != 2*rep.Skipped {
					t.Errorf("skipped %d failovers %d reloads %d: want skips, each after 2 reloads", rep.Skipped, rep.Failovers, rep.FailoverReloads)
				}
				return
			}
			if !rep.OK || rep.Skipped != 0 || rep.Stalls != 0 || rep.Fragments != 2*c.total || !rep.Ended {
				t.Errorf("ok %v ended %v skipped %d stalls %d fragments %d (want %d)", rep.OK, rep.Ended, rep.Skipped, rep.Stalls, rep.Fragments, 2*c.total)
			}
			// Lagging, the first failover needs a second reload.
			if rep.Failovers == 0 || rep.FailoverReloads < rep.Failovers+tc.lag {
				t.Errorf("failovers %d reloads %d, want ≥ 1 failover and %d more reloads", rep.Failovers, rep.FailoverReloads, tc.lag)
			}
		})
	}
}

// steeringCluster imitates a scheduler with content steering in front of
// two senders that both serve every fragment (DASH: MPD-level BaseURLs
// with serviceLocation; HLS: a copy of each variant per PATHWAY-ID whose
// media playlists the senders serve, with relative segment URIs). Sender A,
// the default pathway, dies after killAfter fragments; the steering server
// then leaves it out.
type steeringCluster struct {
	t         *testing.T
	total     int
	segDur    time.Duration
	killAfter int

	a, b, sched *httptest.Server
	served      atomic.Int32
	dead        atomic.Bool
	steered     atomic.Int32 // steering requests that named a pathway
}

func (c *steeringCluster) start() *steeringCluster {
	sender := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var id string
			var k int
			p := r.URL.Path
			switch {
			case strings.HasSuffix(p, "/media.m3u8"):
				id = p[len(p)-len("v/media.m3u8") : len(p)-len("/media.m3u8")]
				var b strings.Builder
				fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%d\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n",
					int(c.segDur.Seconds()+0.999))
				for k := range c.total {
					fmt.Fprintf(&b, "#EXTINF:%.3f,\n%d.m4s\n", c.segDur.Seconds(), k)
				}
				b.WriteString("#EXT-X-ENDLIST\n")
				_, _ = w.Write([]byte(b.String()))
				return
			case strings.HasSuffix(p, "/init.mp4"):
				init := mp4.CreateEmptyInit()
				kind := "video"
				if strings.Contains(p, "/a/") {
					kind = "audio"
				}
				init.AddEmptyTrack(testTimescale, kind, "und")
				var b bytes.Buffer
				if err := init.Encode(&b); err != nil {
					c.t.Error(err)
				}
				_, _ = w.Write(b.Bytes())
				return
			}
			if _, err := fmt.Sscanf(p[strings.LastIndex(p[:strings.LastIndexByte(p, '/')], "/"):], "/%1s/%d.m4s", &id, &k); err != nil {
				http.NotFound(w, r)
				return
			}
			_, _ = w.Write(makeFragment(c.t, 200_000, c.segDur, uint64(int64(k)*int64(c.segDur)*testTimescale/int64(time.Second)), uint32(k+1)))
			if name == "A" && int(c.served.Add(1)) == c.killAfter {
				c.dead.Store(true)
				go c.a.Close()
			}
		}))
	}
	c.a, c.b = sender("A"), sender("B")
	c.sched = httptest.NewServer(http.HandlerFunc(c.manifest))
	c.t.Cleanup(func() { c.sched.Close(); c.b.Close(); c.a.Close() })
	return c
}

func (c *steeringCluster) manifest(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	switch r.URL.Path {
	case "/s/steering.json":
		q := r.URL.Query()
		if q.Get("_DASH_pathway") != "" || q.Get("_HLS_pathway") != "" {
			c.steered.Add(1)
		}
		prio := `["pa","pb"]`
		if c.dead.Load() {
			prio = `["pb"]`
		}
		fmt.Fprintf(&b, `{"VERSION":1,"TTL":10,"PATHWAY-PRIORITY":%s}`, prio)
	case "/s/manifest.mpd":
		fmt.Fprintf(&b, `<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT%gS" minBufferTime="PT1S">
  <BaseURL serviceLocation="pa">%s/b/tok/</BaseURL>
  <BaseURL serviceLocation="pb">%s/b/tok/</BaseURL>
  <Period id="0" start="PT0S">
`, (time.Duration(c.total) * c.segDur).Seconds(), c.a.URL, c.b.URL)
		for _, kind := range []string{"video", "audio"} {
			fmt.Fprintf(&b, `    <AdaptationSet contentType="%s" mimeType="%s/mp4"><SegmentTemplate timescale="%d" duration="%d" startNumber="0" media="$RepresentationID$/$Number$.m4s" initialization="$RepresentationID$/init.mp4"/><Representation id="%s" bandwidth="200000"/></AdaptationSet>`+"\n",
				kind, kind, testTimescale, int64(c.segDur)*testTimescale/int64(time.Second), kind[:1])
		}
		b.WriteString("  </Period>\n  <ContentSteering defaultServiceLocation=\"pa\" queryBeforeStart=\"true\">/s/steering.json</ContentSteering>\n</MPD>\n")
	case "/s/master.m3u8":
		b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"/s/steering.json\",PATHWAY-ID=\"pa\"\n")
		for _, p := range []struct{ id, url string }{{"pa", c.a.URL}, {"pb", c.b.URL}} {
			fmt.Fprintf(&b, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud-%s\",NAME=\"a\",DEFAULT=YES,URI=\"%s/b/tok/a/media.m3u8\"\n", p.id, p.url)
			fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=200000,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"aud-%s\",PATHWAY-ID=\"%s\"\n%s/b/tok/v/media.m3u8\n", p.id, p.id, p.url)
		}
	default:
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write([]byte(b.String()))
}

// TestFailoverPathway: with content steering, a fragment that failed on the
// current pathway is fetched on the next one the steering server lists
// (DASH BaseURL serviceLocations, HLS PATHWAY-IDs), the session moves there
// for good and loses nothing.
func TestFailoverPathway(t *testing.T) {
	t.Parallel()
	for _, manifest := range []string{"manifest.mpd", "master.m3u8"} {
		t.Run(manifest, func(t *testing.T) {
			t.Parallel()
			c := (&steeringCluster{t: t, total: 8, segDur: 500 * time.Millisecond, killAfter: 3}).start()
			rep := play(t, Config{URL: c.sched.URL + "/s/" + manifest, Startup: time.Second, RetryDelay: 20 * time.Millisecond})
			if !c.dead.Load() {
				t.Fatal("sender A never died (the default pathway was not used)")
			}
			if !rep.OK || rep.Skipped != 0 || rep.Fragments != 2*c.total || !rep.Ended {
				t.Errorf("ok %v ended %v skipped %d fragments %d (want %d)", rep.OK, rep.Ended, rep.Skipped, rep.Fragments, 2*c.total)
			}
			if rep.PathwaySwitches != 1 {
				t.Errorf("%d pathway switches, want 1", rep.PathwaySwitches)
			}
			if c.steered.Load() == 0 {
				t.Error("the steering server was not asked with the current pathway")
			}
		})
	}
}

// TestPathwaysAllFailed: when every pathway failed lately (a fragment
// missing everywhere for a moment), a new failure still moves the player
// off its pathway: to the one the steering priority lists, else to the
// one whose failure is the oldest.
func TestPathwaysAllFailed(t *testing.T) {
	ctx := context.Background()
	var p pathways
	p.setup(ctx, nil, []string{"a", "b", "c"}, "", "", "_DASH_pathway")
	if p.current() != "a" {
		t.Fatalf("first pathway %q", p.current())
	}
	for _, want := range []string{"b", "c", "a", "b"} {
		from := p.current()
		if !p.next(ctx, nil, from) || p.current() != want {
			t.Fatalf("after a failure on %s: pathway %q, want %s", from, p.current(), want)
		}
		time.Sleep(time.Millisecond)
	}
	// A steering priority without the current pathway (its sender died).
	p.priority = []string{"c", "a"}
	if !p.next(ctx, nil, "b") || p.current() != "c" {
		t.Fatalf("with priority c, a: pathway %q, want c", p.current())
	}
}
