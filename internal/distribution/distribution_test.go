package distribution

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/config"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		path   string
		kind   string
		format string
		track  string
		t      int64
		reason string
	}{
		{"/ch.isml/manifest.mpd", kindManifest, formatDASH, "", 0, ""},
		{"/ch.isml/.mpd", kindManifest, formatDASH, "", 0, ""},
		{"/a/b.isml/Manifest", kindManifest, formatSmooth, "", 0, ""},
		{"/ch.isml/master.m3u8", kindManifest, formatHLS, "", 0, ""},
		{"/ch.isml/tracks/video_1/media.m3u8", kindManifest, formatHLS, "video_1", 0, ""},
		{"/ch.isml/tracks/video_1/init.mp4", kindInit, "", "video_1", 0, ""},
		{"/ch.isml/tracks/video_1/123.m4s", kindFragment, "", "video_1", 123, ""},
		{"/ch.ism/tracks/video_1/-5.m4s", kindFragment, "", "video_1", -5, ""},
		{"/ch.isml/tracks/text_en_0/4000.vtt", kindFragment, "", "text_en_0", 4000, ""},
		{"/ch.isml/tracks/text_en_0/04000.vtt", "", "", "", 0, refuseMalformed},
		{"/ch.isml/QualityLevels(800000)/Fragments(video=42)", kindFragment, "", smoothKey("video", 800000), 42, ""},
		{"/ch.isml/tracks/video_1/12a.m4s", "", "", "", 0, refuseMalformed},
		{"/ch.isml/tracks/video_1/0012.m4s", "", "", "", 0, refuseMalformed},
		{"/ch.isml/tracks/video_1/+12.m4s", "", "", "", 0, refuseMalformed},
		{"/ch.isml/tracks/..x/12.m4s", "", "", "", 0, refuseMalformed},
		{"/ch.isml/QualityLevels(x)/Fragments(video=42)", "", "", "", 0, refuseMalformed},
		{"/ch.isml/QualityLevels(1)/Fragments(video=)", "", "", "", 0, refuseMalformed},
		{"/ch.isml/StreamManifest", "", "", "", 0, refuseResource},
		{"/ch.isml/Streams(ch)", "", "", "", 0, refuseResource},
		{"/ch.isml/tracks/v/x.mp4", "", "", "", 0, refuseResource},
		{"/index.html", "", "", "", 0, refuseResource},
		{"/../etc.isml/Manifest", "", "", "", 0, refuseResource},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://x"+tc.path, nil)
			obj, reason := classify(r)
			if reason != tc.reason {
				t.Fatalf("reason %q, want %q", reason, tc.reason)
			}
			if reason != "" {
				return
			}
			if obj.kind != tc.kind || obj.format != tc.format || obj.trackKey != tc.track || obj.t != tc.t {
				t.Fatalf("got %+v", obj)
			}
		})
	}
}

func TestLayoutCheck(t *testing.T) {
	mpd := func(typ string) []byte {
		return []byte(`<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="` + typ + `"><Period><AdaptationSet>
<SegmentTemplate media="tracks/$RepresentationID$/$Time$.m4s" timescale="1000"><SegmentTimeline>
<S t="10000" d="2000" r="2"/><S t="20000" d="2000" r="1"/></SegmentTimeline></SegmentTemplate>
<Representation id="v1"/><Representation id="v2"/></AdaptationSet></Period></MPD>`)
	}
	now := time.Unix(1000, 0)
	live, err := parseMPD(mpd("dynamic"))
	if err != nil {
		t.Fatal(err)
	}
	live.fetched = now
	static, err := parseMPD(mpd("static"))
	if err != nil {
		t.Fatal(err)
	}
	if e := live.edge(); e != 24 {
		t.Fatalf("edge %v, want 24", e)
	}
	tests := []struct {
		name  string
		l     *layout
		track string
		t     int64
		want  string
	}{
		{"listed first", live, "v1", 10000, ""},
		{"listed after gap", live, "v2", 22000, ""},
		{"in the gap", live, "v1", 16000, refuseUnlisted},
		{"between starts", live, "v1", 11000, refuseUnlisted},
		{"next fragment", live, "v1", 24000, ""},
		{"within slack", live, "v1", 24000 + 3*2000, ""},
		{"far future", live, "v1", 24000 + 60*2000, refuseFuture},
		{"just before window", live, "v1", 8000, ""},
		{"long before window", live, "v1", 0, refusePast},
		{"unknown track", live, "v3", 10000, refuseTrack},
		{"static listed", static, "v1", 12000, ""},
		{"static next", static, "v1", 24000, refuseUnlisted},
		{"missing point", &layout{missing: true}, "v1", 10000, refusePoint},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.l.check(tc.track, tc.t, 3, now); got != tc.want {
				t.Fatalf("check(%s, %d) = %q, want %q", tc.track, tc.t, got, tc.want)
			}
		})
	}
	// The tolerance past the edge grows with the age of the manifest.
	if got := live.check("v1", 24000+10*2000, 3, now.Add(15*time.Second)); got != "" {
		t.Fatalf("15 s later, 10 fragments past the old edge: %q", got)
	}
}

func TestParseSmooth(t *testing.T) {
	b, err := os.ReadFile("../manifest/testdata/live.ismc")
	if err != nil {
		t.Fatal(err)
	}
	l, err := parseSmooth(b)
	if err != nil {
		t.Fatal(err)
	}
	if !l.live || l.lookAhead != 2 {
		t.Fatalf("live %v lookahead %d", l.live, l.lookAhead)
	}
	v := l.tracks[smoothKey("video", 1500000)]
	if v == nil || len(v.starts) != 6 || v.starts[5] != 10000000000+5*20000000 {
		t.Fatalf("video timeline %+v (c@r is a total count)", v)
	}
	if l.tracks[smoothKey("audio", 128000)] == nil || l.tracks[smoothKey("audio", 64000)] != nil {
		t.Fatal("audio quality levels")
	}
	// Look-ahead widens the tolerance past the edge: 2 + slack 3 fragments.
	now := time.Now()
	l.fetched = now
	edge := v.lastEnd
	if got := l.check(smoothKey("video", 3000000), edge+4*20000000, 3, now); got != "" {
		t.Fatalf("4 fragments past the Smooth edge: %q", got)
	}
	if got := l.check(smoothKey("video", 3000000), edge+20*20000000, 3, now); got != refuseFuture {
		t.Fatalf("20 fragments past the Smooth edge: %q", got)
	}
}

func TestCacheBudget(t *testing.T) {
	evicted := 0
	c := newCache(3*(1000+entryOverhead+3), func(reason string, n int) { evicted += n })
	for i := range 4 {
		c.put(&entry{key: "k" + strconv.Itoa(i)[:1] + "x", body: make([]byte, 1000)})
		if i == 1 {
			c.get("k0x") // k0 is now more recent than k1
		}
	}
	if c.get("k1x") != nil || c.get("k0x") == nil || c.get("k3x") == nil {
		t.Fatal("LRU order not kept")
	}
	if n, b := c.stats(); n != 3 || b > c.max || evicted != 1 {
		t.Fatalf("%d entries, %d bytes, %d evicted", n, b, evicted)
	}
	c.put(&entry{key: "huge", body: make([]byte, 10000)})
	if c.get("huge") != nil {
		t.Fatal("an entry larger than the budget was stored")
	}
}

// TestCoalescing: 50 concurrent misses for one fragment make one upstream
// request; every client gets the whole body, and the first bytes reach
// them before the upstream response is complete (streaming).
func TestCoalescing(t *testing.T) {
	o := newFakeOrigin(t)
	tp := newTestProxy(t, nil, o.ts.URL)
	if resp, _ := tp.get(t, "/ch.isml/manifest.mpd"); resp.StatusCode != 200 {
		t.Fatalf("manifest: %d", resp.StatusCode)
	}
	gate := make(chan struct{})
	o.mu.Lock()
	o.gate = gate
	o.mu.Unlock()
	path := fragPath(listedFrag(3))
	want := fragBody(listedFrag(3))
	const n = 50
	var wg sync.WaitGroup
	firstBytes := make(chan struct{}, n)
	errs := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(tp.ts.URL + path)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer resp.Body.Close()
			buf := make([]byte, 1000)
			if _, err := io.ReadFull(resp.Body, buf); err != nil {
				errs <- err.Error()
				return
			}
			firstBytes <- struct{}{}
			rest, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(append(buf, rest...), want) {
				errs <- "body differs"
			}
		}()
	}
	deadline := time.After(10 * time.Second)
	for range n {
		select {
		case <-firstBytes:
		case e := <-errs:
			t.Fatal(e)
		case <-deadline:
			t.Fatal("the first bytes did not reach every client while the upstream body was held")
		}
	}
	close(gate)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if c := o.count(path); c != 1 {
		t.Fatalf("%d upstream requests for one fragment, want 1", c)
	}
	if c := tp.metric(tp.p.m.coalesced); c != n-1 {
		t.Fatalf("coalesced waiters %v, want %d", c, n-1)
	}
	// Later requests are hits.
	if resp, b := tp.get(t, path); resp.StatusCode != 200 || !bytes.Equal(b, want) || o.count(path) != 1 {
		t.Fatalf("hit: %d, %d upstream", resp.StatusCode, o.count(path))
	}
}

// TestHeadersRangeConditional: ETag, Cache-Control, Content-Type and CORS
// pass through; Range and If-None-Match are answered from the cache; Age
// counts the time in the cache.
func TestHeadersRangeConditional(t *testing.T) {
	o := newFakeOrigin(t)
	tp, clk := newClockedProxy(t, nil, o.ts.URL)
	path := fragPath(listedFrag(1))
	body := fragBody(listedFrag(1))
	resp, b := tp.get(t, path)
	if resp.StatusCode != 200 || !bytes.Equal(b, body) {
		t.Fatalf("status %d", resp.StatusCode)
	}
	etag := `"f-` + strconv.FormatInt(listedFrag(1), 10) + `-` + strconv.Itoa(len(body)) + `"`
	for k, v := range map[string]string{
		"Etag": etag, "Cache-Control": "public, max-age=31536000, immutable", "Content-Type": "video/mp4",
		"Access-Control-Allow-Origin": "*", "Content-Length": strconv.Itoa(len(body)),
	} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if resp.Header.Get("Access-Control-Expose-Headers") == "" {
		t.Error("no Access-Control-Expose-Headers")
	}
	clk.Add(5 * time.Second)
	resp, b = tp.get(t, path, "Range", "bytes=10-19")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, body[10:20]) {
		t.Fatalf("range: %d %q", resp.StatusCode, b)
	}
	if resp.Header.Get("Age") != "5" {
		t.Errorf("Age %q, want 5", resp.Header.Get("Age"))
	}
	resp, _ = tp.get(t, path, "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}
	if c := o.count(path); c != 1 {
		t.Fatalf("%d upstream requests, want 1", c)
	}
	// A HEAD is answered from the cache too.
	req, _ := http.NewRequest(http.MethodHead, tp.ts.URL+path, nil)
	hresp, err := http.DefaultClient.Do(req)
	if err != nil || hresp.StatusCode != 200 || hresp.ContentLength != int64(len(body)) {
		t.Fatalf("HEAD: %v %v", err, hresp)
	}
	hresp.Body.Close()
	// Preflight answered locally.
	req, _ = http.NewRequest(http.MethodOptions, tp.ts.URL+path, nil)
	presp, err := http.DefaultClient.Do(req)
	if err != nil || presp.StatusCode != http.StatusNoContent || presp.Header.Get("Access-Control-Allow-Headers") == "" {
		t.Fatalf("OPTIONS: %v %v", err, presp)
	}
	presp.Body.Close()
}

// TestManifestMaxAge: a manifest is kept for its max-age, then revalidated
// with If-None-Match.
func TestManifestMaxAge(t *testing.T) {
	o := newFakeOrigin(t)
	tp, clk := newClockedProxy(t, nil, o.ts.URL)
	const path = "/ch.isml/manifest.mpd"
	for range 5 {
		if resp, _ := tp.get(t, path); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if c := o.count(path); c != 1 {
		t.Fatalf("%d upstream requests within max-age, want 1", c)
	}
	clk.Add(1500 * time.Millisecond)
	resp, b := tp.get(t, path)
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte("SegmentTimeline")) {
		t.Fatalf("after expiry: %d", resp.StatusCode)
	}
	if c := o.count(path); c != 2 {
		t.Fatalf("%d upstream requests after expiry, want 2", c)
	}
	if c := tp.metric(tp.p.m.upstream.WithLabelValues(o.ts.URL, "304")); c != 1 {
		t.Fatalf("revalidations answered 304: %v, want 1", c)
	}
}

// TestRefusedNeverUpstream: requests the manifest cannot contain are 404s
// made locally.
func TestRefusedNeverUpstream(t *testing.T) {
	o := newFakeOrigin(t)
	tp := newTestProxy(t, nil, o.ts.URL)
	edge := listedFrag(10)
	bad := []string{
		fragPath(edge + 100*fakeDur),             // far future
		fragPath(fakeStart - 50*fakeDur),         // before the window
		fragPath(listedFrag(2) + 1),              // unlisted
		"/ch.isml/tracks/v/abc.m4s",              // malformed
		"/ch.isml/tracks/nosuch/100000.m4s",      // unknown track
		"/ch.isml/tracks/nosuch/init.mp4",        // unknown track
		"/ch.isml/tracks/nosuch/media.m3u8",      // unknown track
		"/ch.isml/QualityLevels(1)/Fragments(v)", // malformed
		"/ch.isml/StreamManifest",                // not a client URL
		"/favicon.ico",
	}
	for _, p := range bad {
		if resp, _ := tp.get(t, p); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
	if n := o.total("/ch.isml/tracks/"); n != 0 {
		t.Fatalf("%d track requests reached the origin", n)
	}
	if n := o.total("/"); n != 1 { // the manifest, once
		t.Fatalf("%d requests reached the origin, want 1 (the manifest): %v", n, o.counts)
	}
	// Within the slack past the edge the request goes upstream (the origin
	// may have it already).
	if resp, _ := tp.get(t, fragPath(edge+fakeDur)); resp.StatusCode != 200 {
		t.Fatalf("next fragment past the edge: %d", resp.StatusCode)
	}
	// An unknown point costs one manifest request, then 404s locally.
	for range 5 {
		if resp, _ := tp.get(t, "/other.isml/tracks/v/100000.m4s"); resp.StatusCode != 404 {
			t.Fatalf("unknown point: %d", resp.StatusCode)
		}
	}
	if n := o.total("/other.isml/"); n != 1 {
		t.Fatalf("%d requests for the unknown point, want 1", n)
	}
}

// TestNoClientsNoTraffic: a proxy nobody asks makes no upstream request.
func TestNoClientsNoTraffic(t *testing.T) {
	o := newFakeOrigin(t)
	tp := newTestProxy(t, func(c *config.Distribution) { c.KeepAlive = 100 * time.Millisecond }, o.ts.URL)
	ctx, cancel := contextWithCancel(t)
	go tp.p.Run(ctx)
	time.Sleep(700 * time.Millisecond)
	cancel()
	if n := o.total("/"); n != 0 {
		t.Fatalf("%d upstream requests without clients", n)
	}
}

// TestFailover: an origin that refuses connections or answers 5xx is
// skipped within the same client request, then avoided during its
// back-off.
func TestFailover(t *testing.T) {
	for _, mode := range []string{"refused", "500", "timeout"} {
		t.Run(mode, func(t *testing.T) {
			good := newFakeOrigin(t)
			bad := newFakeOrigin(t)
			release := make(chan struct{})
			defer close(release)
			badURL := bad.ts.URL
			switch mode {
			case "refused":
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				badURL = "http://" + l.Addr().String()
				l.Close()
			case "500":
				bad.fail = func(w http.ResponseWriter, r *http.Request) bool {
					http.Error(w, "boom", http.StatusInternalServerError)
					return true
				}
			case "timeout":
				bad.fail = func(w http.ResponseWriter, r *http.Request) bool {
					select {
					case <-release:
					case <-r.Context().Done():
					}
					return true
				}
			}
			tp := newTestProxy(t, func(c *config.Distribution) {
				c.UpstreamTimeout = 300 * time.Millisecond
				c.Backoff = 5 * time.Second
			}, badURL, good.ts.URL)
			path := fragPath(listedFrag(4))
			resp, b := tp.get(t, path)
			if resp.StatusCode != 200 || !bytes.Equal(b, fragBody(listedFrag(4))) {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if tp.metric(tp.p.m.failovers) < 1 {
				t.Fatal("no failover counted")
			}
			if tp.p.Ready() != true {
				t.Fatal("not ready with one good origin")
			}
			// During the back-off the bad origin is not asked again.
			before := bad.total("/")
			for i := 5; i < 8; i++ {
				if resp, _ := tp.get(t, fragPath(listedFrag(i))); resp.StatusCode != 200 {
					t.Fatalf("status %d", resp.StatusCode)
				}
			}
			if after := bad.total("/"); after != before {
				t.Fatalf("the origin in back-off got %d more requests", after-before)
			}
		})
	}
}

// TestResume: a body that breaks off is continued from the next origin
// with a Range request; the client sees one whole 200.
func TestResume(t *testing.T) {
	a := newFakeOrigin(t)
	b := newFakeOrigin(t)
	path := fragPath(listedFrag(2))
	body := fragBody(listedFrag(2))
	a.fail = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != path {
			return false
		}
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("ETag", `"f-`+strconv.FormatInt(listedFrag(2), 10)+`-`+strconv.Itoa(len(body))+`"`)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(200)
		w.Write(body[:30000])
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	}
	tp := newTestProxy(t, nil, a.ts.URL, b.ts.URL)
	resp, got := tp.get(t, path)
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("status %d, %d bytes, equal %v", resp.StatusCode, len(got), bytes.Equal(got, body))
	}
	if c := tp.metric(tp.p.m.upstream.WithLabelValues(b.ts.URL, "resumed")); c != 1 {
		t.Fatalf("resumed %v, want 1", c)
	}
	// The resumed response is cached whole.
	if resp, got := tp.get(t, path); resp.StatusCode != 200 || !bytes.Equal(got, body) || b.count(path) != 1 {
		t.Fatal("not cached after the resume")
	}
}

// TestListed404TriesNextOrigin: a fragment the manifest lists but one
// origin lacks is fetched from the next.
func TestListed404TriesNextOrigin(t *testing.T) {
	a := newFakeOrigin(t)
	b := newFakeOrigin(t)
	path := fragPath(listedFrag(5))
	a.fail = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == path {
			http.NotFound(w, r)
			return true
		}
		return false
	}
	tp := newTestProxy(t, nil, a.ts.URL, b.ts.URL)
	if resp, _ := tp.get(t, "/ch.isml/manifest.mpd"); resp.StatusCode != 200 {
		t.Fatal("manifest")
	}
	if resp, _ := tp.get(t, path); resp.StatusCode != 200 || b.count(path) != 1 {
		t.Fatalf("status %d, next origin asked %d times", resp.StatusCode, b.count(path))
	}
}

// TestStaleIfError: with every origin down, an expired manifest is served
// stale (for at most a minute) instead of an error.
func TestStaleIfError(t *testing.T) {
	o := newFakeOrigin(t)
	tp, clk := newClockedProxy(t, nil, o.ts.URL)
	const path = "/ch.isml/manifest.mpd"
	if resp, _ := tp.get(t, path); resp.StatusCode != 200 {
		t.Fatal("manifest")
	}
	o.fail = func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	}
	clk.Add(5 * time.Second)
	resp, b := tp.get(t, path)
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte("MPD")) {
		t.Fatalf("stale: %d", resp.StatusCode)
	}
	clk.Add(2 * time.Minute)
	if resp, _ := tp.get(t, path); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("too stale: %d, want 502", resp.StatusCode)
	}
}

// TestWindow: fragments that fall behind the live edge by more than the
// window leave the cache; fragments already behind it are not stored.
func TestWindow(t *testing.T) {
	o := newFakeOrigin(t)
	tp, clk := newClockedProxy(t, func(c *config.Distribution) { c.Window = 6 * time.Second }, o.ts.URL)
	tp.get(t, "/ch.isml/manifest.mpd") // edge: fragment 10 ends at 120 s
	for i := range 10 {
		if resp, _ := tp.get(t, fragPath(listedFrag(i))); resp.StatusCode != 200 {
			t.Fatalf("fragment %d: %d", i, resp.StatusCode)
		}
	}
	// Fragments starting before 120-6 = 114 s (index < 7) were not kept.
	if n, _ := tp.p.cache.stats(); n != 1+3 {
		t.Fatalf("%d entries, want the manifest and 3 fragments", n)
	}
	o.mu.Lock()
	o.frags = 12 // the edge moves on by 4 s, to 124 s
	o.mu.Unlock()
	clk.Add(2 * time.Second)
	tp.get(t, "/ch.isml/manifest.mpd")
	tp.p.sweep()
	for i, want := range map[int]bool{7: false, 8: false, 9: true} {
		if got := tp.p.cache.get(fragPath(listedFrag(i))) != nil; got != want {
			t.Errorf("fragment %d cached %v, want %v", i, got, want)
		}
	}
	if c := tp.metric(tp.p.m.evictions.WithLabelValues("window")); c != 2 {
		t.Errorf("window evictions %v, want 2", c)
	}
}

// TestOpaqueManifestFailsOpen: a manifest the proxy does not understand
// (here a SegmentList MPD) never makes it refuse: requests pass upstream.
func TestOpaqueManifestFailsOpen(t *testing.T) {
	o := newFakeOrigin(t)
	o.fail = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/ch.isml/manifest.mpd" {
			return false
		}
		w.Header().Set("Cache-Control", "public, max-age=1")
		io.WriteString(w, `<MPD type="dynamic"><Period><AdaptationSet><Representation id="v"><SegmentList/></Representation></AdaptationSet></Period></MPD>`)
		return true
	}
	tp := newTestProxy(t, nil, o.ts.URL)
	for i := range 3 {
		if resp, _ := tp.get(t, fragPath(listedFrag(i))); resp.StatusCode != 200 {
			t.Fatalf("fragment %d: %d", i, resp.StatusCode)
		}
	}
	if resp, _ := tp.get(t, fragPath(listedFrag(1)+1)); resp.StatusCode != 404 || o.count(fragPath(listedFrag(1)+1)) != 1 {
		t.Fatal("an unlisted time was not passed to the origin")
	}
	if n := o.count("/ch.isml/manifest.mpd"); n != 1 {
		t.Fatalf("%d manifest requests, want 1", n)
	}
}

// TestBlockingUpstream: an LL-HLS blocking reload the origin holds longer
// than the upstream timeout is waited for (its own header timeout), and
// the origin's 503 when the part never came is passed on without taking
// the origin for a failing one (no failover, no back-off).
func TestBlockingUpstream(t *testing.T) {
	origin := newFakeOrigin(t)
	other := newFakeOrigin(t)
	origin.fail = func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Query().Get("_HLS_msn") {
		case "":
			return false
		case "5":
			time.Sleep(600 * time.Millisecond) // the part arrives
			w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
			w.Header().Set("Cache-Control", "public, max-age=2")
			io.WriteString(w, "#EXTM3U\n")
		default:
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "the playlist did not reach that part in three target durations", http.StatusServiceUnavailable)
		}
		return true
	}
	tp := newTestProxy(t, func(c *config.Distribution) { c.UpstreamTimeout = 300 * time.Millisecond }, origin.ts.URL, other.ts.URL)
	resp, b := tp.get(t, "/ch.isml/tracks/v/media.m3u8?_HLS_msn=5&_HLS_part=0")
	if resp.StatusCode != 200 || string(b) != "#EXTM3U\n" {
		t.Fatalf("blocking reload held 600 ms with a 300 ms upstream timeout: %d %q", resp.StatusCode, b)
	}
	resp, _ = tp.get(t, "/ch.isml/tracks/v/media.m3u8?_HLS_msn=9&_HLS_part=0")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("the origin's 503 for a part that never came: %d, want it passed on", resp.StatusCode)
	}
	if n := tp.metric(tp.p.m.failovers); n != 0 {
		t.Errorf("%v failovers: a held or timed-out blocking reload is not an origin failure", n)
	}
	if got := other.total("/"); got != 0 {
		t.Errorf("the other origin was asked %d times", got)
	}
}
