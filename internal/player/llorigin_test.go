package player

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeLLOrigin serves a live LL-HLS presentation (RFC 8216bis) at
// /master.m3u8: two video renditions (300 and 800 kbit/s) and an audio
// one, 1 s segments of four
// 0.25 s parts (part-<n>.m4s, n counted from the stream's start; the
// whole segment seg-<k>.m4s), the parts of the last two segments and of
// the one in progress listed, a preload hint for the next part, blocking
// reloads (_HLS_msn/_HLS_part; 503 after 3 s) and delta updates
// (_HLS_skip=YES: the segments ending more than CAN-SKIP-UNTIL=3 s before
// the end are skipped). A part appears when its last sample's time has
// passed; a request for the next part waits for it.
type fakeLLOrigin struct {
	t       *testing.T
	start   time.Time // wall time of part 0's start
	srv     *httptest.Server
	partDur time.Duration

	mu      sync.Mutex
	queries []string // the queries of the playlist requests
}

const llPartsPerSeg = 4

func (o *fakeLLOrigin) serve(backlogSegs int) *fakeLLOrigin {
	o.partDur = 250 * time.Millisecond
	o.start = time.Now().Add(-time.Duration(backlogSegs*llPartsPerSeg) * o.partDur)
	o.srv = httptest.NewServer(http.HandlerFunc(o.handle))
	o.t.Cleanup(o.srv.Close)
	return o
}

// parts is how many parts exist now.
func (o *fakeLLOrigin) parts() int { return int(time.Since(o.start) / o.partDur) }

func (o *fakeLLOrigin) partTicks() uint64 {
	return uint64(int64(o.partDur) * testTimescale / int64(time.Second))
}

// waitParts waits until more than n parts exist, at most 3 s.
func (o *fakeLLOrigin) waitParts(r *http.Request, n int) bool {
	deadline := time.Now().Add(3 * time.Second)
	for o.parts() <= n {
		if time.Now().After(deadline) || r.Context().Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func (o *fakeLLOrigin) handle(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	switch {
	case p == "master.m3u8":
		fmt.Fprint(w, "#EXTM3U\n#EXT-X-VERSION:9\n"+
			"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",DEFAULT=YES,URI=\"a/media.m3u8\"\n"+
			"#EXT-X-STREAM-INF:BANDWIDTH=300000,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"aud\"\nv300000/media.m3u8\n"+
			"#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"aud\"\nv800000/media.m3u8\n")
	case strings.HasSuffix(p, "/media.m3u8"):
		o.mu.Lock()
		o.queries = append(o.queries, r.URL.RawQuery)
		o.mu.Unlock()
		q := r.URL.Query()
		if m := q.Get("_HLS_msn"); m != "" {
			msn, _ := strconv.Atoi(m)
			part, _ := strconv.Atoi(q.Get("_HLS_part"))
			if !o.waitParts(r, msn*llPartsPerSeg+part) {
				http.Error(w, "not in time", http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprint(w, o.playlist(q.Get("_HLS_skip") == "YES"))
	case strings.HasSuffix(p, "/init.mp4"):
		(&fakeOrigin{t: o.t}).writeInit(w, p[:1])
	case strings.Contains(p, "/part-"):
		n, err := strconv.Atoi(strings.TrimSuffix(p[strings.Index(p, "part-")+5:], ".m4s"))
		if err != nil || n > o.parts() || !o.waitParts(r, n) {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(makeFragment(o.t, o.bitrate(p), o.partDur, uint64(n)*o.partTicks(), uint32(n+1)))
	case strings.Contains(p, "/seg-"):
		k, err := strconv.Atoi(strings.TrimSuffix(p[strings.Index(p, "seg-")+4:], ".m4s"))
		if err != nil || (k+1)*llPartsPerSeg > o.parts() {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(makeFragment(o.t, o.bitrate(p), llPartsPerSeg*o.partDur, uint64(k*llPartsPerSeg)*o.partTicks(), uint32(k+1)))
	default:
		http.NotFound(w, r)
	}
}

// bitrate is the bitrate of the rendition a path is in (v<bitrate>/..., a/...).
func (o *fakeLLOrigin) bitrate(p string) int64 {
	if b, err := strconv.ParseInt(strings.TrimPrefix(p[:strings.IndexByte(p, '/')], "v"), 10, 64); err == nil {
		return b
	}
	return 64_000
}

// playlist renders the media playlist as it is now.
func (o *fakeLLOrigin) playlist(skip bool) string {
	n := o.parts()
	complete, open := n/llPartsPerSeg, n%llPartsPerSeg
	first := max(0, complete-8)
	skipped := 0
	if skip {
		// Segments ending more than 3 s before the end of the last one.
		for k := first; k < complete && float64(complete-k-1) >= 3; k++ {
			skipped++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n"+
		"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=3.0,PART-HOLD-BACK=0.750\n"+
		"#EXT-X-PART-INF:PART-TARGET=0.250\n#EXT-X-MEDIA-SEQUENCE:%d\n#EXT-X-MAP:URI=\"init.mp4\"\n", first)
	if skipped > 0 {
		fmt.Fprintf(&b, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%d\n", skipped)
	}
	parts := func(k, count int) {
		for i := range count {
			fmt.Fprintf(&b, "#EXT-X-PART:DURATION=0.250,URI=\"part-%d.m4s\"", k*llPartsPerSeg+i)
			if i == 0 {
				b.WriteString(",INDEPENDENT=YES")
			}
			b.WriteString("\n")
		}
	}
	for k := first + skipped; k < complete; k++ {
		if k == first+skipped {
			pdt := o.start.Add(time.Duration(k*llPartsPerSeg) * o.partDur).UTC()
			fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", pdt.Format("2006-01-02T15:04:05.000Z"))
		}
		if k >= complete-2 {
			parts(k, llPartsPerSeg)
		}
		fmt.Fprintf(&b, "#EXTINF:1.000,\nseg-%d.m4s\n", k)
	}
	parts(complete, open)
	fmt.Fprintf(&b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-%d.m4s\"\n", n)
	return b.String()
}

// TestLowLatencyHLSSession plays the fake LL-HLS origin in low-latency
// mode: it must start near PART-HOLD-BACK, fetch parts and preload-hinted
// parts, follow the playlists by blocking reloads with well-formed
// directives and merge delta updates, switch up to the higher video
// rendition (the loopback is fast) at a segment boundary, and play without
// a stall.
func TestLowLatencyHLSSession(t *testing.T) {
	o := (&fakeLLOrigin{t: t}).serve(10)
	var progress bytes.Buffer
	rep := play(t, Config{URL: o.srv.URL + "/master.m3u8", Duration: 5 * time.Second, LowLatency: true, Progress: &progress})
	t.Logf("progress:\n%s", progress.String())
	expectClean(t, rep)
	ll := rep.LowLatency
	if ll == nil || !ll.Active {
		t.Fatalf("low latency %+v, want active", ll)
	}
	if ll.TargetMS != 750 || ll.Parts == 0 || ll.PreloadHints == 0 || ll.BlockingReloads == 0 || ll.DeltaUpdates == 0 || ll.DeltaGaps != 0 {
		t.Errorf("low latency: %+v; want target 750 ms, parts, preload hints, blocking reloads, delta updates merged", ll.LowLatencyStats)
	}
	if rep.Switches < 1 || rep.Bitrates[len(rep.Bitrates)-1] != 800_000 {
		t.Errorf("bitrates %v, want a switch up to 800000", rep.Bitrates)
	}
	if len(ll.Seconds) < 3 || !strings.Contains(progress.String(), "latency=") {
		t.Errorf("%d per-second samples; progress %q", len(ll.Seconds), progress.String())
	}
	// Standard mode would start three segments (3 s) behind; a generous
	// bound for a loaded machine.
	if rep.Latency == nil || rep.Latency.P50MS > 2000 {
		t.Errorf("latency %+v, want a median under 2 s", rep.Latency)
	}
	directive := regexp.MustCompile(`^_HLS_msn=\d+&_HLS_part=\d+(&_HLS_skip=YES)?$`)
	o.mu.Lock()
	defer o.mu.Unlock()
	blocking := 0
	for _, q := range o.queries {
		if q == "" {
			continue
		}
		blocking++
		if !directive.MatchString(q) {
			t.Errorf("playlist request query %q", q)
		}
	}
	if blocking == 0 {
		t.Errorf("no blocking playlist request among %q", o.queries)
	}
}

// TestLowLatencyFallback: with LowLatency, a live stream that is not
// low-latency plays in standard mode, and the report says why.
func TestLowLatencyFallback(t *testing.T) {
	for _, f := range []Format{FormatHLS, FormatDASH} {
		t.Run(string(f), func(t *testing.T) {
			o := (&fakeOrigin{t: t, video: []int64{500_000}, audio: 96_000, total: 1000, live: true, backlog: 6}).serve()
			var progress bytes.Buffer
			rep := play(t, Config{URL: o.url(formatURLs[f]), Duration: 2 * time.Second, Startup: time.Second,
				LowLatency: true, Progress: &progress})
			expectClean(t, rep)
			if ll := rep.LowLatency; ll == nil || ll.Active || ll.Fallback == "" {
				t.Errorf("low latency %+v, want a fallback with its reason", ll)
			}
			if !strings.Contains(progress.String(), "standard mode") || rep.Fragments == 0 {
				t.Errorf("progress %q, %d fragments", progress.String(), rep.Fragments)
			}
		})
	}
}
