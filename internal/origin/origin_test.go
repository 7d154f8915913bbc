package origin_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/origin"
	"github.com/sluice-media/sluice/internal/server"
	"github.com/sluice-media/sluice/internal/store"
)

type env struct {
	t   *testing.T
	srv *server.Server
	ts  *httptest.Server
	cfg config.Config
}

func newEnv(t *testing.T, dir string) *env {
	t.Helper()
	return newEnvWith(t, dir, func(*config.Config) {})
}

// newEnvWith is newEnv with a change to the configuration.
func newEnvWith(t *testing.T, dir string, change func(*config.Config)) *env {
	t.Helper()
	cfg := config.Defaults()
	cfg.Data = dir
	cfg.Points = []config.Point{{Name: "ch"}}
	change(&cfg)
	srv, err := server.New(cfg, server.Roles{Ingest: true, Origin: true}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &env{t: t, srv: srv, ts: ts, cfg: cfg}
}

// push ingests the fixture; live=true drops the final mfra so the
// presentation stays live.
func (e *env) push(live bool) {
	e.t.Helper()
	body, err := os.ReadFile("../media/testdata/small.ismv")
	if err != nil {
		e.t.Fatal(err)
	}
	if live && bytes.HasSuffix(body, []byte{0, 0, 0, 8, 'm', 'f', 'r', 'a'}) {
		body = body[:len(body)-8]
	}
	resp, err := http.Post(e.ts.URL+"/ch.isml/Streams(s)", "video/mp4", bytes.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		e.t.Fatalf("push: %v %v", err, resp)
	}
	resp.Body.Close()
}

func (e *env) get(path string, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (e *env) view() store.View {
	p, err := e.srv.Store.Point("ch")
	if err != nil {
		e.t.Fatal(err)
	}
	return p.View(0)
}

func TestManifestsLiveAndStatic(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir)
	e.push(true)
	for _, c := range []struct{ path, ctype, live string }{
		{"/ch.isml/manifest.mpd", "application/dash+xml", `type="dynamic"`},
		{"/ch.isml/Manifest", "text/xml; charset=utf-8", `IsLive="TRUE"`},
		{"/ch.isml/master.m3u8", "application/vnd.apple.mpegurl", "#EXT-X-STREAM-INF"},
	} {
		resp, body := e.get(c.path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.ctype {
			t.Fatalf("%s: %d %s", c.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !bytes.Contains(body, []byte(c.live)) {
			t.Errorf("%s live: missing %s in\n%s", c.path, c.live, body)
		}
		// The newest fragment (2 s) just arrived: the next is due within
		// two seconds, less the second a cache's clock may add
		// (LiveMaxAge, TestLiveMaxAge).
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=0" {
			t.Errorf("%s live Cache-Control %q", c.path, cc)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Fatalf("%s: no ETag", c.path)
		}
		// A conditional request is answered 304 while the document is
		// unchanged; a live MPD carries wall-clock times, so a 200 is right
		// only when the answer is a different document with a new ETag.
		switch r2, b2 := e.get(c.path, "If-None-Match", etag); {
		case r2.StatusCode == http.StatusNotModified:
		case r2.StatusCode == http.StatusOK && !bytes.Equal(b2, body) && r2.Header.Get("ETag") != etag:
		default:
			t.Errorf("%s: If-None-Match gave %d with ETag %q (sent %q)", c.path, r2.StatusCode, r2.Header.Get("ETag"), etag)
		}
	}
	id := e.view().Tracks[0].ID
	_, media := e.get("/ch.isml/tracks/" + id + "/media.m3u8")
	if bytes.Contains(media, []byte("ENDLIST")) {
		t.Error("live HLS playlist has ENDLIST")
	}
	// The end of stream arrives (an empty mfra on the same stream): static.
	resp, err := http.Post(e.ts.URL+"/ch.isml/Streams(s)", "", bytes.NewReader([]byte{0, 0, 0, 8, 'm', 'f', 'r', 'a'}))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("end: %v %v", err, resp)
	}
	check := func(e *env, when string) {
		_, mpd := e.get("/ch.isml/manifest.mpd")
		if !bytes.Contains(mpd, []byte(`type="static"`)) {
			t.Errorf("%s: MPD not static:\n%s", when, mpd)
		}
		_, ss := e.get("/ch.isml/Manifest")
		if bytes.Contains(ss, []byte("IsLive")) {
			t.Errorf("%s: Smooth manifest still live", when)
		}
		r, media := e.get("/ch.isml/tracks/" + id + "/media.m3u8")
		if !bytes.Contains(media, []byte("#EXT-X-ENDLIST")) {
			t.Errorf("%s: no ENDLIST", when)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "public, max-age=3600" {
			t.Errorf("%s: static Cache-Control %q", when, cc)
		}
	}
	check(e, "after the end")
	// Live-to-VOD survives a restart: a new process over the same directory.
	check(newEnv(t, dir), "after a restart")
}

func TestFragmentHeaders(t *testing.T) {
	e := newEnv(t, t.TempDir())
	e.push(false)
	tv := e.view().Tracks[0]
	f := tv.Frags[1]
	path := "/ch.isml/tracks/" + tv.ID + "/" + strconv.FormatInt(f.Start, 10) + ".m4s"
	resp, body := e.get(path)
	if resp.StatusCode != 200 || int64(len(body)) != f.Size || !media.IsComplete(body) {
		t.Fatalf("fragment: %d, %d bytes, want %d", resp.StatusCode, len(body), f.Size)
	}
	p, _ := e.srv.Store.Point("ch")
	stored, _, _ := p.ReadFragment(tv.ID, f.Start)
	if !bytes.Equal(stored, body) {
		t.Fatal("served bytes differ from the stored fragment")
	}
	want := map[string]string{
		"Cache-Control":                 "public, max-age=31536000, immutable",
		"Content-Type":                  "video/mp4",
		"Access-Control-Allow-Origin":   "*",
		"Access-Control-Expose-Headers": "CMSD-Static, CMSD-Dynamic, ETag, Content-Length, Content-Range, Date, Age",
		"Accept-Ranges":                 "bytes",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	r, part := e.get(path, "Range", "bytes=8-107")
	if r.StatusCode != http.StatusPartialContent || !bytes.Equal(part, body[8:108]) {
		t.Errorf("range: %d, %d bytes", r.StatusCode, len(part))
	}
	if r, _ := e.get(path, "If-None-Match", resp.Header.Get("ETag")); r.StatusCode != http.StatusNotModified {
		t.Errorf("fragment If-None-Match: %d", r.StatusCode)
	}
	// Not yet available: 404 with a short lifetime.
	r, _ = e.get("/ch.isml/tracks/" + tv.ID + "/999999999999.m4s")
	if r.StatusCode != 404 || r.Header.Get("Cache-Control") != "public, max-age=1" {
		t.Errorf("future fragment: %d %q", r.StatusCode, r.Header.Get("Cache-Control"))
	}
	// CORS preflight for CMCD request headers.
	req, _ := http.NewRequest(http.MethodOptions, e.ts.URL+path, nil)
	req.Header.Set("Origin", "http://player.example")
	req.Header.Set("Access-Control-Request-Headers", "cmcd-request")
	pre, err := http.DefaultClient.Do(req)
	if err != nil || pre.StatusCode != http.StatusNoContent || !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "CMCD-Request") {
		t.Errorf("preflight: %v %v", err, pre)
	}
	if r, _ := e.get("/ch.isml/tracks/" + tv.ID + "/init.mp4"); r.StatusCode != 200 || r.Header.Get("ETag") == "" {
		t.Errorf("init: %d", r.StatusCode)
	}
	if r, _ := e.get("/nope.isml/manifest.mpd"); r.StatusCode != 404 {
		t.Errorf("unknown point: %d", r.StatusCode)
	}
}

// TestSmoothFragment: the Smooth URL serves the same samples with a tfxd and
// a tfrf naming the next LookAhead fragments, and consistent data offsets.
func TestSmoothFragment(t *testing.T) {
	e := newEnv(t, t.TempDir())
	e.push(false)
	tv := e.view().Tracks[0]
	f := tv.Frags[0]
	resp, body := e.get("/ch.isml/QualityLevels(" + strconv.Itoa(tv.Info.Bitrate) + ")/Fragments(" + tv.Info.Name + "=" + strconv.FormatInt(f.Start, 10) + ")")
	if resp.StatusCode != 200 || !media.IsComplete(body) {
		t.Fatalf("smooth fragment: %d", resp.StatusCode)
	}
	n := binary.BigEndian.Uint32(body)
	box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(body[:n]))
	if err != nil {
		t.Fatal(err)
	}
	traf := box.(*mp4.MoofBox).Traf
	var tfxd *mp4.TfxdData
	var tfrf *mp4.TfrfData
	for _, c := range traf.Children {
		if u, ok := c.(*mp4.UUIDBox); ok {
			if u.Tfxd != nil {
				tfxd = u.Tfxd
			}
			if u.Tfrf != nil {
				tfrf = u.Tfrf
			}
		}
	}
	if tfxd == nil || int64(tfxd.FragmentAbsoluteTime) != f.Start {
		t.Fatalf("tfxd %+v, want time %d", tfxd, f.Start)
	}
	if tfrf == nil || int(tfrf.FragmentCount) != e.cfg.LookAhead || int64(tfrf.FragmentAbsoluteTimes[0]) != tv.Frags[1].Start {
		t.Fatalf("tfrf %+v, want the next %d fragments from %d", tfrf, e.cfg.LookAhead, tv.Frags[1].Start)
	}
	if got := traf.Trun.DataOffset; got != int32(n)+8 {
		t.Fatalf("trun data offset %d, want %d (first byte of mdat payload)", got, n+8)
	}
	p, _ := e.srv.Store.Point("ch")
	stored, _, _ := p.ReadFragment(tv.ID, f.Start)
	_, off, _ := media.SplitFragment(stored)
	if !bytes.Equal(stored[off:], body[n:]) {
		t.Fatal("mdat differs from the stored fragment")
	}
	// Unknown bitrate or malformed URL: 404.
	for _, u := range []string{"/ch.isml/QualityLevels(1)/Fragments(video=0)", "/ch.isml/QualityLevels(x)/Fragments(video=0)"} {
		if r, _ := e.get(u); r.StatusCode != 404 {
			t.Errorf("%s: %d", u, r.StatusCode)
		}
	}
}

// timesOf decodes the tfdt and tfxd times of a fragment's moof.
func timesOf(t *testing.T, body []byte) (tfdt, tfxd uint64, hasTfdt bool) {
	t.Helper()
	n := binary.BigEndian.Uint32(body)
	box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(body[:n]))
	if err != nil {
		t.Fatal(err)
	}
	traf := box.(*mp4.MoofBox).Traf
	if traf.Tfdt != nil {
		tfdt, hasTfdt = traf.Tfdt.BaseMediaDecodeTime(), true
	}
	for _, c := range traf.Children {
		if u, ok := c.(*mp4.UUIDBox); ok && u.Tfxd != nil {
			tfxd = u.Tfxd.FragmentAbsoluteTime
		}
	}
	return tfdt, tfxd, hasTfdt
}

// TestPresentationStart: the fixture's audio begins 128 ms before its video
// (AAC priming and the encoder's delay). Every format lists the audio from
// the video's start — the same HLS program date time on both playlists —
// and serves that first audio fragment cut there under its listed URL, while
// the stored fragment stays whole under its own.
func TestPresentationStart(t *testing.T) {
	e := newEnv(t, t.TempDir())
	e.push(false)
	v := e.view()
	var video, audio store.TrackView
	for _, tv := range v.Tracks {
		switch tv.Info.Kind {
		case "video":
			video = tv
		case "audio":
			audio = tv
		}
	}
	p0 := video.Frags[0].Start
	if a0 := audio.Frags[0].Start; !(a0 < p0 && p0 < audio.Frags[0].End()) {
		t.Fatalf("fixture: audio [%d, %d) does not straddle the video start %d", a0, audio.Frags[0].End(), p0)
	}
	at := strconv.FormatInt(p0, 10)
	_, mpd := e.get("/ch.isml/manifest.mpd")
	if n := strings.Count(string(mpd), `<S t="`+at+`"`); n != 2 {
		t.Errorf("MPD: %d timelines start at %s, want video and audio:\n%s", n, at, mpd)
	}
	pdt := func(id string) string {
		_, pl := e.get("/ch.isml/tracks/" + id + "/media.m3u8")
		for _, l := range strings.Split(string(pl), "\n") {
			if strings.HasPrefix(l, "#EXT-X-PROGRAM-DATE-TIME:") {
				return l
			}
		}
		t.Fatalf("%s: no program date time:\n%s", id, pl)
		return ""
	}
	if a, b := pdt(audio.ID), pdt(video.ID); a != b {
		t.Errorf("program date times differ: audio %s, video %s", a, b)
	}
	_, pl := e.get("/ch.isml/tracks/" + audio.ID + "/media.m3u8")
	if !strings.Contains(string(pl), "\n"+at+".m4s\n") {
		t.Errorf("audio playlist does not start at %s.m4s:\n%s", at, pl)
	}
	resp, body := e.get("/ch.isml/tracks/" + audio.ID + "/" + at + ".m4s")
	if resp.StatusCode != 200 || !media.IsComplete(body) {
		t.Fatalf("cut audio fragment: %d", resp.StatusCode)
	}
	// DASH and HLS get no Smooth boxes (tfxd 0: none); Smooth does, below.
	if tfdt, tfxd, ok := timesOf(t, body); !ok || int64(tfdt) != p0 || tfxd != 0 {
		t.Errorf("cut fragment: tfdt %d (present %v), tfxd %d; want tfdt %d and no tfxd", tfdt, ok, tfxd, p0)
	}
	stored := "/ch.isml/tracks/" + audio.ID + "/" + strconv.FormatInt(audio.Frags[0].Start, 10) + ".m4s"
	if r, b := e.get(stored); r.StatusCode != 200 || int64(len(b)) != audio.Frags[0].Size {
		t.Errorf("stored fragment under its own name: %d, %d bytes", r.StatusCode, len(b))
	}
	smooth := "/ch.isml/QualityLevels(" + strconv.Itoa(audio.Info.Bitrate) + ")/Fragments(" + audio.Info.Name + "=" + at + ")"
	resp, body = e.get(smooth)
	if resp.StatusCode != 200 || !media.IsComplete(body) {
		t.Fatalf("cut Smooth fragment: %d", resp.StatusCode)
	}
	if _, tfxd, _ := timesOf(t, body); int64(tfxd) != p0 {
		t.Errorf("cut Smooth fragment: tfxd %d, want %d", tfxd, p0)
	}
	_, ss := e.get("/ch.isml/Manifest")
	if n := strings.Count(string(ss), `<c t="`+at+`"`); n != 2 {
		t.Errorf("Smooth manifest: %d StreamIndexes start at %s:\n%s", n, at, ss)
	}
	// A time between the stored start and the presentation start names
	// nothing.
	if r, _ := e.get("/ch.isml/tracks/" + audio.ID + "/" + strconv.FormatInt(p0-1, 10) + ".m4s"); r.StatusCode != 404 {
		t.Errorf("a time inside the first audio fragment: %d, want 404", r.StatusCode)
	}
}

// withParts gives a track the kept parts of a low-latency stream.
func withParts(t store.TrackView) store.TrackView {
	t.Parts = []store.PartFrag{{Start: 4000, Parts: []store.PartRef{{Start: 4000, Duration: 500, Key: true}}}}
	t.PartTarget = 500
	return t
}

// TestLiveMaxAge: a live manifest is cacheable until its next fragment is
// due, less a second, over the tracks it lists that have not ended; a
// low-latency one (parts) not at all.
func TestLiveMaxAge(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	// tr is a track whose newest fragment lasts dur seconds (timescale
	// 1000) and arrived at arrived.
	tr := func(id string, dur float64, arrived time.Time, ended bool) store.TrackView {
		return store.TrackView{ID: id, Info: media.TrackInfo{Timescale: 1000}, Ended: ended, Arrived: arrived,
			Frags: []store.FragRef{{Start: 0, Duration: 2000}, {Start: 2000, Duration: uint64(dur * 1000)}}}
	}
	for _, c := range []struct {
		name   string
		tracks []store.TrackView
		track  string
		want   int
	}{
		{"6 s fragment just arrived", []store.TrackView{tr("v", 6, now, false)}, "", 5},
		{"6 s fragment, 0.3 s ago", []store.TrackView{tr("v", 6, ago(300*time.Millisecond), false)}, "", 4},
		{"6 s fragment, 4.2 s ago", []store.TrackView{tr("v", 6, ago(4200*time.Millisecond), false)}, "", 0},
		{"2 s fragment, at its arrival", []store.TrackView{tr("v", 2, now, false)}, "", 1},
		{"2 s fragment, 10 ms ago", []store.TrackView{tr("v", 2, ago(10*time.Millisecond), false)}, "", 0},
		{"overdue", []store.TrackView{tr("v", 6, ago(7*time.Second), false)}, "", 0},
		{"no arrival since start", []store.TrackView{tr("v", 6, time.Time{}, false)}, "", 0},
		{"earliest due track counts", []store.TrackView{tr("v", 10, now, false), tr("a", 6, ago(time.Second), false)}, "", 4},
		{"media playlist: its own track", []store.TrackView{tr("v", 10, now, false), tr("a", 6, ago(time.Second), false)}, "v", 9},
		{"ended tracks do not count", []store.TrackView{tr("v", 10, now, false), tr("a", 2, ago(time.Minute), true)}, "", 9},
		{"no live track", []store.TrackView{tr("a", 2, ago(time.Minute), true)}, "", 0},
		{"track without fragments", []store.TrackView{tr("v", 10, now, false), {ID: "t", Info: media.TrackInfo{Timescale: 1000}}}, "", 0},
		{"low latency: changes with every part", []store.TrackView{withParts(tr("v", 10, now, false))}, "", 0},
		{"low latency: another track's playlist", []store.TrackView{tr("v", 10, now, false), withParts(tr("a", 6, now, false))}, "v", 9},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := origin.LiveMaxAge(store.View{Tracks: c.tracks}, c.track, now); got != c.want {
				t.Errorf("LiveMaxAge = %d, want %d", got, c.want)
			}
		})
	}
}
