package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/testkit/llhls"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// llPlaylist is what a test reads from an LL-HLS media playlist.
type llPlaylist struct {
	seq, segments int64
	parts         int    // EXT-X-PART tags after the last segment
	openPart      string // the URI of the first of them
	hint          string
	partInf       string
	control       string
}

func parseLL(t *testing.T, body []byte) llPlaylist {
	t.Helper()
	// Every low-latency playlist a test sees keeps RFC 8216bis's rules.
	if bytes.Contains(body, []byte("#EXT-X-PART-INF")) {
		if err := llhls.Check(body); err != nil {
			t.Errorf("low-latency playlist breaks the rules: %v\n%s", err, body)
		}
	}
	return parseLLQuiet(body)
}

// parseLLQuiet is parseLL without the rules' check.
func parseLLQuiet(body []byte) llPlaylist {
	var p llPlaylist
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"):
			p.seq, _ = strconv.ParseInt(strings.TrimPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"), 10, 64)
		case strings.HasPrefix(l, "#EXTINF:"):
			p.segments++
			p.parts, p.openPart = 0, ""
		case strings.HasPrefix(l, "#EXT-X-PART:"):
			p.parts++
			if m := regexp.MustCompile(`URI="([^"]+)"`).FindStringSubmatch(l); m != nil && p.parts == 1 {
				p.openPart = m[1]
			}
		case strings.HasPrefix(l, "#EXT-X-PRELOAD-HINT:"):
			if m := regexp.MustCompile(`URI="([^"]+)"`).FindStringSubmatch(l); m != nil {
				p.hint = m[1]
			}
		case strings.HasPrefix(l, "#EXT-X-PART-INF:"):
			p.partInf = l
		case strings.HasPrefix(l, "#EXT-X-SERVER-CONTROL:"):
			p.control = l
		}
	}
	return p
}

// TestLowLatency pushes a chunked stream (sluice push --chunk 500ms,
// epoch-anchored) into sluice serve and checks the low-latency paths:
// LL-HLS parts listed as they arrive, a blocking playlist reload that
// answers when the next part exists, a preload-hinted part that is
// answered when it arrives, the fragment in progress served as it grows
// (LL-DASH), and a blocking reload forwarded by a distribution server.
// The players play it in TestLowLatencyChain.
func TestLowLatency(t *testing.T) {
	t.Parallel() // no browser
	root := repoRoot(t)
	tmp := t.TempDir()
	bin := buildSluice(t, root, tmp)
	art := artifactsDir(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	serve := startProc(t, "sluice serve", filepath.Join(art, "sluice-ll.log"), bin, "serve", "--no-demo",
		"--listen", addr, "--data", filepath.Join(tmp, "data"))
	base := "http://" + addr
	waitHTTP(t, base+"/", 30*time.Second, serve)
	push := startProc(t, "sluice push", filepath.Join(art, "push-ll.log"), bin, "push", "--loop", "--epoch", "--chunk", "500ms",
		"--quiet", testmedia.Sample(t), base+"/ll.isml/Streams(ll)")

	master := string(waitHTTP(t, base+"/ll.isml/master.m3u8", 45*time.Second, serve, push))
	var video string
	for _, l := range strings.Split(master, "\n") {
		if strings.HasPrefix(l, "tracks/") && strings.Contains(master, "#EXT-X-STREAM-INF") {
			video = l
			break
		}
	}
	if video == "" {
		t.Fatalf("no variant in the master playlist:\n%s", master)
	}
	mediaURL := base + "/ll.isml/" + video
	dir := mediaURL[:strings.LastIndexByte(mediaURL, '/')+1]
	var pl llPlaylist
	var body []byte
	waitUntil(t, 30*time.Second, "parts in the media playlist", func() (bool, string) {
		_, body = fetch(t, mediaURL)
		pl = parseLL(t, body)
		return pl.segments > 0 && pl.hint != "" && pl.partInf != "", string(body)
	})
	t.Logf("playlist: %d segments from %d, %d parts open, %s, %s, hint %s", pl.segments, pl.seq, pl.parts, pl.partInf, pl.control, pl.hint)
	if !strings.Contains(pl.control, "CAN-BLOCK-RELOAD=YES") || !strings.Contains(pl.control, "PART-HOLD-BACK=") {
		t.Errorf("server control: %q", pl.control)
	}

	// A blocking reload for the next part returns once it exists: within
	// about a part's duration, never the 3-target-duration timeout.
	last := pl.seq + pl.segments - 1
	msn, part := last+1, int64(pl.parts)
	t0 := time.Now()
	resp, err := http.Get(fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", mediaURL, msn, part))
	if err != nil {
		t.Fatal(err)
	}
	var blocked []byte
	blocked, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	waited := time.Since(t0)
	got := parseLL(t, blocked)
	t.Logf("blocking reload for msn %d part %d: %d after %v (%d segments, %d parts open)", msn, part, resp.StatusCode, waited, got.seq+got.segments-1, got.parts)
	if resp.StatusCode != http.StatusOK || waited > 3*time.Second {
		t.Errorf("blocking reload: status %d after %v", resp.StatusCode, waited)
	}
	if end := got.seq + got.segments - 1; end < msn && int64(got.parts) <= part {
		t.Errorf("blocking reload answered without msn %d part %d:\n%s", msn, part, blocked)
	}
	if resp.Header.Get("Cache-Control") == "public, max-age=0" {
		t.Errorf("a blocking reload's answer should be cacheable: %q", resp.Header.Get("Cache-Control"))
	}
	if code, _ := fetch(t, fmt.Sprintf("%s?_HLS_msn=%d", mediaURL, msn+5)); code != http.StatusBadRequest {
		t.Errorf("a reload 5 segments ahead: %d, want 400", code)
	}

	// The preload-hinted part is answered when it arrives, and is a
	// moof+mdat.
	_, body = fetch(t, mediaURL)
	pl = parseLL(t, body)
	t0 = time.Now()
	code, data := fetch(t, dir+pl.hint)
	t.Logf("preload hint %s: %d, %d bytes after %v", pl.hint, code, len(data), time.Since(t0))
	if code != http.StatusOK || !media.IsComplete(data) {
		t.Errorf("preload-hinted part: status %d, %d bytes, complete moof+mdat %v", code, len(data), media.IsComplete(data))
	}

	// The fragment in progress, fetched by its segment URL, arrives as it
	// grows: several chunks, over more than a part's time.
	waitUntil(t, 10*time.Second, "an open fragment", func() (bool, string) {
		_, body = fetch(t, mediaURL)
		pl = parseLL(t, body)
		return pl.openPart != "", string(body)
	})
	seg := strings.TrimSuffix(strings.TrimPrefix(pl.openPart, "part-"), ".m4s") + ".m4s"
	t0 = time.Now()
	code, data = fetch(t, dir+seg)
	took := time.Since(t0)
	moofs := 0
	for _, b := range testmedia.Boxes(t, data) {
		if b.Type == "moof" {
			moofs++
		}
	}
	t.Logf("fragment in progress %s: %d, %d bytes, %d chunks, in %v", seg, code, len(data), moofs, took)
	if code != http.StatusOK || moofs < 2 || took < 300*time.Millisecond {
		t.Errorf("fragment in progress: status %d, %d chunks in %v; want it streamed as it grows", code, moofs, took)
	}

	// Through a session of the scheduler in process (/s/): its local
	// sender keeps the parts the store hands over, and serves the hinted
	// part from them.
	_, smaster := fetch(t, base+"/s/ll/master.m3u8")
	spath := regexp.MustCompile(`/b/[^"\s]+/media\.m3u8`).FindString(string(smaster))
	if spath == "" {
		t.Fatalf("no pathway playlist in the session's master:\n%s", smaster)
	}
	waitUntil(t, 10*time.Second, "parts in the session's pathway playlist", func() (bool, string) {
		_, body = fetch(t, base+spath)
		pl = parseLL(t, body)
		return pl.hint != "" && pl.partInf != "", string(body)
	})
	sdir := base + spath[:strings.LastIndexByte(spath, '/')+1]
	code, data = fetch(t, sdir+pl.hint)
	if code != http.StatusOK || !media.IsComplete(data) {
		t.Errorf("session: preload-hinted part from the local sender: status %d, %d bytes", code, len(data))
	}

	// Through a distribution server in front: blocking reloads forwarded
	// with their query and coalesced, parts and growing fragments passed
	// on as they arrive.
	dbase, _ := distStartRole(t, bin, "distribution", "distribution-ll.log", freePort(t), "--origin", base)
	_, body = fetch(t, dbase+"/ll.isml/"+video)
	pl = parseLL(t, body)
	if pl.hint == "" || pl.partInf == "" {
		t.Fatalf("the distribution tier's playlist is not low-latency:\n%s", body)
	}
	last = pl.seq + pl.segments - 1
	t0 = time.Now()
	code, blocked = fetch(t, fmt.Sprintf("%s/ll.isml/%s?_HLS_msn=%d&_HLS_part=%d", dbase, video, last+1, pl.parts))
	got = parseLL(t, blocked)
	t.Logf("distribution: blocking reload for msn %d part %d: %d after %v", last+1, pl.parts, code, time.Since(t0))
	if code != http.StatusOK || (got.seq+got.segments-1 < last+1 && got.parts <= pl.parts) {
		t.Errorf("distribution: blocking reload answered %d without msn %d part %d:\n%s", code, last+1, pl.parts, blocked)
	}
}

// checkLatency logs the latency a player reported once a second and fails
// the test when its median is above limit seconds or it stalled (rule
// anyStall), or ran out of media (onlyUnderruns: an underrun is a stall
// with less than half a second buffered; a stall with media buffered — the
// page starved of CPU on a loaded machine, nothing the server did — is
// logged with the latency figures).
func checkLatency(t *testing.T, who string, r playResult, limit float64, rule stallRule) {
	t.Helper()
	var lats []float64
	for _, s := range r.Samples {
		if s.Lat != nil {
			lats = append(lats, *s.Lat)
		}
	}
	if len(lats) < 10 {
		t.Errorf("%s: %d latency samples", who, len(lats))
		return
	}
	sort.Float64s(lats)
	p50, p95 := lats[len(lats)/2], lats[len(lats)*95/100]
	t.Logf("%s low latency: latency p50 %.2f s, p95 %.2f s, max %.2f s over %d s; %d stalls, %d of them underruns",
		who, p50, p95, lats[len(lats)-1], len(lats), r.Stalls, r.Underruns)
	bad, what := r.Stalls, "stalls"
	if rule == onlyUnderruns {
		bad, what = r.Underruns, "underruns"
	}
	if p50 > limit || bad > 0 {
		t.Errorf("%s: latency p50 %.2f s (want <= %.1f s), %d %s (want 0)", who, p50, limit, bad, what)
	}
}

// stallRule is what checkLatency counts against a play: every stall, or
// only underruns (out of media), for plays on a page that a loaded machine
// may starve of CPU while its buffer still holds media.
type stallRule int

const (
	anyStall stallRule = iota
	onlyUnderruns
)

// TestLowLatencyPull: an origin pulling from an ingest gets the fragments
// in progress chunk by chunk (a chunked pull), so its playlists are
// low-latency too: parts listed, a blocking reload for the next part
// answered within about a part, and the fragments it stores merged from
// the chunks (one moof each).
func TestLowLatencyPull(t *testing.T) {
	t.Parallel() // no browser
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	ingest := startRole(t, bin, dir, "ingest", "ingest", "--point", "live")
	origin := startPullOrigin(t, bin, dir, "origin", ingest)
	push := startProc(t, "sluice push", filepath.Join(artifactsDir(t), "push-llpull.log"), bin, "push", "--loop", "--epoch",
		"--chunk", "500ms", "--quiet", testmedia.Sample(t), ingest.pushURL("live"))
	master := string(waitHTTP(t, origin.base+"/live.isml/master.m3u8", 60*time.Second, push, origin.p))
	var video string
	for _, l := range strings.Split(master, "\n") {
		if strings.HasPrefix(l, "tracks/") {
			video = l
			break
		}
	}
	mediaURL := origin.base + "/live.isml/" + video
	var pl llPlaylist
	var body []byte
	waitUntil(t, 30*time.Second, "parts at the pulling origin", func() (bool, string) {
		_, body = fetch(t, mediaURL)
		pl = parseLL(t, body)
		return pl.segments >= 3 && pl.parts > 0 && pl.partInf != "", string(body)
	})
	t.Logf("origin playlist: %d segments, %d parts open, %s", pl.segments, pl.parts, pl.partInf)
	if !strings.Contains(pl.partInf, "PART-TARGET=0.5") {
		t.Errorf("part target %q, want the encoder's 0.5 s chunks", pl.partInf)
	}
	// Blocking reloads for the next parts, one after the other.
	var waits []time.Duration
	for i := 0; i < 6; i++ {
		_, body = fetch(t, mediaURL)
		pl = parseLL(t, body)
		last := pl.seq + pl.segments - 1
		t0 := time.Now()
		code, b := fetch(t, fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", mediaURL, last+1, pl.parts))
		waits = append(waits, time.Since(t0))
		got := parseLL(t, b)
		if code != http.StatusOK || (got.seq+got.segments-1 < last+1 && got.parts <= pl.parts) {
			t.Fatalf("blocking reload %d: %d without msn %d part %d:\n%s", i, code, last+1, pl.parts, b)
		}
	}
	t.Logf("blocking reloads for the next part at the pulling origin answered after %v", waits)
	for _, w := range waits {
		if w > 2*time.Second {
			t.Errorf("a blocking reload waited %v: parts reach the origin in whole fragments, not as they arrive", w)
		}
	}
	// The origin stores the fragments merged from their chunks.
	_, body = fetch(t, mediaURL)
	dir2 := mediaURL[:strings.LastIndexByte(mediaURL, '/')+1]
	var segs []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasSuffix(l, ".m4s") && !strings.HasPrefix(l, "#") {
			segs = append(segs, l)
		}
	}
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	for _, s := range segs[len(segs)-3:] {
		code, data := fetch(t, dir2+s)
		moofs := 0
		for _, b := range testmedia.Boxes(t, data) {
			if b.Type == "moof" {
				moofs++
			}
		}
		if code != http.StatusOK || moofs != 1 || !media.IsComplete(data) {
			t.Errorf("stored segment %s: %d, %d moofs (want the chunks merged into one)", s, code, moofs)
		}
	}
}

// llNginxConf is nginx with proxy_cache in front of a distribution server
// for low-latency streams: the cache key carries the LL-HLS delivery
// directives (and nothing else of the query, so CMCD parameters do not
// split it), and the page and players come from a web role.
const llNginxConf = `  proxy_cache_path %[1]s/cache levels=1:2 keys_zone=ll:10m max_size=1g inactive=10m use_temp_path=off;
  upstream distribution {
    server %[2]s;
    keepalive 16;
  }
  server {
    listen %[3]s;
    location = /play { proxy_pass http://%[4]s; }
    location /player/ { proxy_pass http://%[4]s; }
    location / {
      proxy_pass http://distribution;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache ll;
      proxy_cache_key $uri|$arg__HLS_msn|$arg__HLS_part|$arg__HLS_skip;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 5s;
      proxy_cache_revalidate on;
      proxy_cache_use_stale error timeout updating http_502 http_503 http_504;
      add_header X-Cache-Status $upstream_cache_status always;
    }
  }
`

// TestLowLatencyChain plays a low-latency stream (sluice push --chunk
// 500ms, epoch-anchored) through every tier: ingest → origin (pulling,
// chunk by chunk) → distribution → nginx proxy_cache, with hls.js
// (low-latency mode, catch-up by playback rate) and dash.js (low-latency
// mode from the MPD) in Chromium: both must play without a stall at
// under 3.5 s of latency (the targets are measured by bench/ll-latency.sh,
// which runs this test longer: $SLUICE_LL_SECONDS per player).
func TestLowLatencyChain(t *testing.T) {
	b := setupBrowser(t, "nginx")
	webDir, art, dir, bin := b.webDir, b.art, b.tmp, b.bin
	seconds := 12
	if v, err := strconv.Atoi(os.Getenv("SLUICE_LL_SECONDS")); err == nil && v > 0 {
		seconds = v
	}
	ingest := startRole(t, bin, dir, "ingest", "ingest", "--point", "live")
	origin := startPullOrigin(t, bin, dir, "origin", ingest)
	dport := freePort(t)
	dbase, _ := distStartRole(t, bin, "distribution", "distribution-llchain.log", dport, "--origin", origin.base)
	web := startRole(t, bin, dir, "serve", "web", "--no-demo", "--player-dir", filepath.Join(webDir, "node_modules"))
	naddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ndir := filepath.Join(art, "nginx")
	np := runNginx(t, "nginx", ndir, "$request_uri $status $upstream_cache_status $request_time",
		fmt.Sprintf(llNginxConf, ndir, fmt.Sprintf("127.0.0.1:%d", dport), naddr, strings.TrimPrefix(web.base, "http://")))
	waitHTTP(t, "http://"+naddr+"/healthz", 15*time.Second, np)
	nbase := "http://" + naddr
	push := startProc(t, "sluice push", filepath.Join(art, "push-llchain.log"), bin, "push", "--loop", "--epoch",
		"--chunk", "500ms", "--quiet", testmedia.Sample(t), ingest.pushURL("live"))
	waitHTTP(t, dbase+"/live.isml/master.m3u8", 60*time.Second, push, origin.p)
	// Every media playlist low-latency through nginx (one cached from
	// before the first parts would make a player take the standard hold
	// back for good).
	waitUntil(t, 30*time.Second, "parts through nginx", func() (bool, string) {
		master := string(waitHTTP(t, nbase+"/live.isml/master.m3u8", 10*time.Second))
		for _, uri := range regexp.MustCompile(`tracks/[^"\s]+/media\.m3u8`).FindAllString(master, -1) {
			_, body := fetch(t, nbase+"/live.isml/"+uri)
			if pl := parseLL(t, body); pl.segments < 3 || pl.partInf == "" {
				return false, uri + ":\n" + string(body)
			}
		}
		return true, ""
	})

	pe := playEnv{args: []string{`--player-config={"lowLatencyMode":true,"maxLiveSyncPlaybackRate":1.5}`}}
	r := runPlayIn(t, pe, webDir, nbase+"/live.isml/master.m3u8", "hls", seconds, seconds*3/4, filepath.Join(art, "screenshot-llchain-hls.png"))
	checkPlay(t, r, float64(seconds*3/4))
	// A regression guard (standard mode is 4 s and more), loose for a
	// loaded machine; bench/ll-latency.sh measures against the targets.
	checkLatency(t, "hls.js through ingest, origin, distribution and nginx", r, 3.5, anyStall)
	r = runPlay(t, webDir, nbase+"/live.isml/manifest.mpd", "dash", seconds, seconds*3/4, filepath.Join(art, "screenshot-llchain-dash.png"))
	checkPlay(t, r, float64(seconds*3/4))
	checkLatency(t, "dash.js through ingest, origin, distribution and nginx", r, 3.5, anyStall)
	llMorePlayers(t, bin, webDir, art, "chain", "through ingest, origin, distribution and nginx",
		nbase+"/live.isml/master.m3u8", nbase+"/live.isml/manifest.mpd", seconds, 3.5)
}

// llMorePlayers plays a low-latency stream with the players the CI runs of
// TestLowLatencyChain and TestClusterLowLatency leave out for time, when
// $SLUICE_LL_ALL is set (bench/ll-latency.sh sets it): Shaka Player
// (LL-HLS, configured as llPlayerConfig says) in Chromium, then `sluice
// play --low-latency` on the HLS master and on the MPD at once. Each plays
// for seconds; each must not stall, its latency median within limit.
func llMorePlayers(t *testing.T, bin, webDir, art, tag, where, master, mpd string, seconds int, limit float64) {
	t.Helper()
	if os.Getenv("SLUICE_LL_ALL") == "" {
		return
	}
	pe := playEnv{args: []string{"--player-config=" + llPlayerConfig("shaka", master)}}
	r := runPlayIn(t, pe, webDir, master, "shaka", seconds, seconds*3/4, filepath.Join(art, "screenshot-ll"+tag+"-shaka.png"))
	checkPlay(t, r, float64(seconds*3/4))
	checkLatency(t, "Shaka Player (LL-HLS) "+where, r, limit, anyStall)
	urls := []string{master, mpd}
	reports := make([]llReport, len(urls))
	logs := make([]string, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() { reports[i], logs[i] = playOnce(t, bin, u, time.Duration(seconds)*time.Second, "--low-latency") })
	}
	wg.Wait()
	for i, u := range urls {
		rep, who := reports[i], "sluice play --low-latency ("+filepath.Base(u)+") "+where
		if rep.Latency == nil || rep.LowLatency == nil || !rep.LowLatency.Active {
			t.Errorf("%s: ok %v (%s), no low-latency play\nstderr: %s", who, rep.OK, rep.Error, logs[i])
			continue
		}
		var lats []float64
		for _, s := range rep.LowLatency.Seconds {
			lats = append(lats, float64(s.LatencyMS)/1000)
		}
		sort.Float64s(lats)
		maxLat := 0.0
		if len(lats) > 0 {
			maxLat = lats[len(lats)-1]
		}
		t.Logf("%s low latency: latency p50 %.2f s, p95 %.2f s, max %.2f s over %d s; %d stalls",
			who, float64(rep.Latency.P50MS)/1000, float64(rep.Latency.P95MS)/1000, maxLat, len(lats), rep.Stalls)
		if !rep.OK || rep.Stalls != 0 || float64(rep.Latency.P50MS)/1000 > limit || len(lats) < seconds/2 {
			t.Errorf("%s: ok %v (%s), %d stalls (want 0), latency p50 %d ms (want <= %.1f s), %d per-second samples\nstderr: %s",
				who, rep.OK, rep.Error, rep.Stalls, rep.Latency.P50MS, limit, len(lats), logs[i])
		}
	}
}

// TestLowLatencyIngestKill: kill -9 of ingest A during a low-latency
// stream. The encoder (sluice push --chunk 500ms --retry) pushes to A,
// whose push proxy tees it to B; the origin pulls chunk by chunk from A,
// else B. hls.js in low-latency mode plays from the origin across the
// kill: at most one stall, and the latency back under 3.5 s within 10 s
// (the acceptance's target, 2.5 s, is measured on a quiet machine).
func TestLowLatencyIngestKill(t *testing.T) {
	b := setupBrowser(t)
	webDir, art, dir, bin := b.webDir, b.art, b.tmp, b.bin
	ingA, ingB := startIngestPair(t, bin, dir, "live")
	waitReady(t, 10*time.Second, ingA, ingB)
	origin := startPullOrigin(t, bin, dir, "origin", ingA, ingB)
	web := startRole(t, bin, dir, "serve", "web", "--no-demo", "--player-dir", filepath.Join(webDir, "node_modules"))
	push := startPush(t, bin, "push-llkill", []string{"--loop", "--epoch", "--chunk", "500ms", "--retry", "--retry-delay", "200ms"},
		ingA.pushURL("live"), ingB.pushURL("live"))
	waitHTTP(t, origin.base+"/live.isml/master.m3u8", 60*time.Second, push, origin.p)
	waitUntil(t, 30*time.Second, "low-latency playlists at the origin", func() (bool, string) {
		_, m := fetch(t, origin.base+"/live.isml/master.m3u8")
		for _, uri := range regexp.MustCompile(`tracks/[^"\s]+/media\.m3u8`).FindAllString(string(m), -1) {
			_, body := fetch(t, origin.base+"/live.isml/"+uri)
			if pl := parseLL(t, body); pl.segments < 3 || pl.partInf == "" {
				return false, uri + ":\n" + string(body)
			}
		}
		return true, ""
	})
	// The page from the web role, the media from the origin, one host.
	ou, _ := url.Parse(origin.base)
	wu, _ := url.Parse(web.base)
	toOrigin := httputil.NewSingleHostReverseProxy(ou)
	toOrigin.FlushInterval = -1
	mux := http.NewServeMux()
	mux.Handle("/live.isml/", toOrigin)
	mux.Handle("/", httputil.NewSingleHostReverseProxy(wu))
	front := httptest.NewServer(mux)
	defer front.Close()

	const seconds, killAt = 30, 10
	started := filepath.Join(dir, "started")
	done := make(chan playResult, 1)
	go func() {
		pe := playEnv{args: []string{`--player-config={"lowLatencyMode":true,"maxLiveSyncPlaybackRate":1.5}`},
			env: []string{"SLUICE_STARTED_FILE=" + started}}
		r, stderr, err := playIn(pe, webDir, front.URL+"/live.isml/master.m3u8", "hls", seconds, seconds*3/4, filepath.Join(art, "screenshot-llkill.png"))
		if err != nil {
			t.Error(err)
		}
		if stderr != "" {
			t.Logf("play.mjs stderr (tail):\n%s", stderr)
		}
		done <- r
	}()
	var t0 time.Time
	waitUntil(t, 90*time.Second, "playback started", func() (bool, string) {
		if _, err := os.Stat(started); err != nil {
			return false, err.Error()
		}
		t0 = time.Now()
		return true, ""
	})
	time.Sleep(time.Until(t0.Add(killAt * time.Second)))
	ingA.kill9(t)
	t.Logf("ingest A killed %v after playback started", time.Since(t0).Round(100*time.Millisecond))
	r := <-done
	checkPlay(t, r, float64(seconds*3/4))
	var before, after []float64
	for i, s := range r.Samples {
		if s.Lat == nil {
			continue
		}
		switch at := i + 1; {
		case at <= killAt:
			before = append(before, *s.Lat)
		case at > killAt+10:
			after = append(after, *s.Lat)
		}
	}
	if len(before) < 5 || len(after) < 5 {
		t.Fatalf("latency samples: %d before the kill, %d from 10 s after it", len(before), len(after))
	}
	sort.Float64s(before)
	sort.Float64s(after)
	t.Logf("hls.js latency p50 %.2f s before the kill, %.2f s (max %.2f s) from 10 s after it; %d stalls",
		before[len(before)/2], after[len(after)/2], after[len(after)-1], r.Stalls)
	if r.Stalls > 1 || after[len(after)/2] > 3.5 {
		t.Errorf("after the kill of ingest A: %d stalls (want at most 1), latency p50 %.2f s (want <= 3.5 s)", r.Stalls, after[len(after)/2])
	}
}
