package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// llPlaylist is what a test reads from an LL-HLS media playlist.
type llPlaylist struct {
	seq, segments int64
	parts         int // EXT-X-PART tags after the last segment
	hint          string
	partInf       string
	control       string
}

func parseLL(t *testing.T, body []byte) llPlaylist {
	t.Helper()
	var p llPlaylist
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"):
			p.seq, _ = strconv.ParseInt(strings.TrimPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"), 10, 64)
		case strings.HasPrefix(l, "#EXTINF:"):
			p.segments++
			p.parts = 0
		case strings.HasPrefix(l, "#EXT-X-PART:"):
			p.parts++
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

// TestLowLatencyHLS pushes a chunked stream (sluice push --chunk 500ms,
// epoch-anchored) into sluice serve and checks the LL-HLS path: parts
// listed as they arrive, a blocking playlist reload that answers when the
// next part exists, a preload-hinted part that is answered when it
// arrives, and hls.js in low-latency mode playing at under 2.5 s of
// latency (wall clock minus the program date time of the frame shown).
func TestLowLatencyHLS(t *testing.T) {
	b := setupBrowser(t)
	webDir, art, tmp, bin := b.webDir, b.art, b.tmp, b.bin
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	serve := startProc(t, "sluice serve", filepath.Join(art, "sluice-ll.log"), bin, "serve", "--no-demo",
		"--listen", addr, "--data", filepath.Join(tmp, "data"), "--player-dir", filepath.Join(webDir, "node_modules"))
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
	blocked, _ := io.ReadAll(resp.Body)
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

	// hls.js in low-latency mode (its default) through the /play page.
	// Catch-up by playback rate, as a low-latency deployment configures it.
	pe := playEnv{args: []string{`--player-config={"lowLatencyMode":true,"maxLiveSyncPlaybackRate":1.5}`}}
	r := runPlayIn(t, pe, webDir, base+"/ll.isml/master.m3u8", "hls", 20, 14, filepath.Join(art, "screenshot-ll-hls.png"))
	checkPlay(t, r, 14)
	var lats []float64
	for _, s := range r.Samples {
		if s.Lat != nil {
			lats = append(lats, *s.Lat)
		}
	}
	if len(lats) < 10 {
		t.Fatalf("%d latency samples", len(lats))
	}
	sort.Float64s(lats)
	p50, p95 := lats[len(lats)/2], lats[len(lats)*95/100]
	t.Logf("hls.js low latency: latency p50 %.2f s, p95 %.2f s, max %.2f s over %d s; %d stalls", p50, p95, lats[len(lats)-1], len(lats), r.Stalls)
	if p50 > 2.5 {
		t.Errorf("hls.js latency p50 %.2f s, want <= 2.5 s (2 s fragments, 0.5 s parts)", p50)
	}
}
