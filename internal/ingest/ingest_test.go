package ingest_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/server"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/testkit"
	"github.com/sluice-media/sluice/internal/testmedia"
)

type env struct {
	t    *testing.T
	srv  *server.Server
	ts   *httptest.Server
	logs *testkit.Buffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil, nil)
}

// post sends body chunked (no Content-Length), as encoders do.
func (e *env) post(path string, body []byte, hdr map[string]string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+path, io.MultiReader(bytes.NewReader(body)))
	req.ContentLength = -1
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mustPush posts body to stream s1 of point live and fails the test unless
// it is accepted; what names the push in the failure.
func (e *env) mustPush(what string, body []byte) {
	e.t.Helper()
	if code, msg := e.post("/live.isml/Streams(s1)", body, nil); code != 200 {
		e.t.Fatalf("%s: %d %s", what, code, msg)
	}
}

func (e *env) view(pp string) store.View {
	e.t.Helper()
	p, err := e.srv.Store.Point(pp)
	if err != nil {
		e.t.Fatal(err)
	}
	return p.View(0)
}

func fragCount(v store.View) int {
	n := 0
	for _, t := range v.Tracks {
		n += len(t.Frags)
	}
	return n
}

// snapshot reads every stored fragment of a point.
func (e *env) snapshot(pp string) map[string][]byte {
	e.t.Helper()
	return testkit.Snapshot(e.t, e.srv.Store, pp)
}

var (
	fixOnce sync.Once
	fixDir  string
)

// fixtures encodes the test inputs once: two tiny ismv streams with the same
// track layout and bitrates but different resolutions (a codec change).
func fixtures(t *testing.T) (a, b []byte) {
	t.Helper()
	fixOnce.Do(func() {
		fixDir, _ = os.MkdirTemp("", "sluice-ingest-fixtures")
		for name, size := range map[string]string{"a.ismv": "64x64", "b.ismv": "96x64"} {
			testmedia.Run(t, testmedia.TinyISMVArgs(4, size, filepath.Join(fixDir, name)))
		}
	})
	return testmedia.ReadFile(t, filepath.Join(fixDir, "a.ismv")), testmedia.ReadFile(t, filepath.Join(fixDir, "b.ismv"))
}

func TestPushISMV(t *testing.T) {
	e := newEnv(t)
	a, _ := fixtures(t)
	e.mustPush("push", a)
	v := e.view("live")
	if len(v.Tracks) != 2 || !v.Ended {
		t.Fatalf("tracks %d ended %v", len(v.Tracks), v.Ended)
	}
	n := fragCount(v)
	if n < 6 {
		t.Fatalf("%d fragments", n)
	}
	// The same body again: every fragment is a duplicate, nothing changes.
	before := e.snapshot("live")
	e.mustPush("second push", a)
	if got := fragCount(e.view("live")); got != n {
		t.Fatalf("duplicates stored: %d -> %d", n, got)
	}
	if !testkit.SameFragments(before, e.snapshot("live")) {
		t.Fatal("stored fragments changed on a duplicate push")
	}
}

func TestPushCMAFPerSegment(t *testing.T) {
	e := newEnv(t)
	v, _ := testmedia.CMAFFiles(t, t.TempDir(), 4, 1764000000)
	bs := testmedia.Boxes(t, testmedia.ReadFile(t, v))
	// Header first (ftyp+moov), then one request per moof+mdat, like DASH-IF
	// ingest interface 1 with a request per segment; PUT and POST alike.
	var header []media.Box
	i := 0
	for ; bs[i].Type != "moof"; i++ {
		header = append(header, bs[i])
	}
	if code, body := e.post("/live.isml/Streams(video.cmfv)", testmedia.Join(header), nil); code != 200 {
		t.Fatalf("header: %d %s", code, body)
	}
	segs := 0
	for ; i+1 < len(bs); i++ {
		if bs[i].Type != "moof" {
			continue
		}
		req, _ := http.NewRequest(http.MethodPut, e.ts.URL+"/live.isml/Streams(video.cmfv)", bytes.NewReader(testmedia.Join(bs[i:i+2])))
		req.Header.Set("Content-Type", "video/mp4")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("segment %d: %v %v", segs, err, resp)
		}
		resp.Body.Close()
		segs++
	}
	view := e.view("live")
	if len(view.Tracks) != 1 || len(view.Tracks[0].Frags) != segs {
		t.Fatalf("tracks %d, fragments %d, want %d", len(view.Tracks), len(view.Tracks[0].Frags), segs)
	}
	if view.Ended {
		t.Fatal("per-segment ingest without lmsg/mfra must not end the track")
	}
}

// TestBadInput: every kind of bad push gets its 4xx status and a log line,
// the server keeps serving, and what was stored before stays intact.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	a, b := fixtures(t)
	e.mustPush("baseline push", a)
	before := e.snapshot("live")
	bs := testmedia.Boxes(t, a)
	var header []media.Box
	for _, x := range bs {
		if x.Type == "moof" {
			break
		}
		header = append(header, x)
	}
	var firstMoof int
	for i, x := range bs {
		if x.Type == "moof" {
			firstMoof = i
			break
		}
	}
	frag := testmedia.Join(bs[firstMoof : firstMoof+2])
	truncated := append(testmedia.Join(header), frag[:len(frag)-100]...)
	bigBox := append(testmedia.Join(header), 0x00, 0x80, 0x00, 0x00, 'm', 'o', 'o', 'f') // 8 MiB declared > 4 MiB bound
	garbage := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x13}, 100)
	changed := append(append([]byte(nil), a...), b...)

	cases := []struct {
		name   string
		path   string
		body   []byte
		hdr    map[string]string
		status int
		reason string
	}{
		{"unknown point", "/nope.isml/Streams(s1)", a, nil, 404, "not configured"},
		{"missing token", "/secure.isml/Streams(s1)", a, nil, 403, "token"},
		{"wrong token", "/secure.isml/Streams(s1)", a, map[string]string{"Authorization": "Bearer nope"}, 403, "token"},
		{"media type", "/live.isml/Streams(s1)", a, map[string]string{"Content-Type": "text/plain"}, 415, "media type"},
		{"truncated box", "/live.isml/Streams(s1)", truncated, nil, 400, "stream ended inside a box"},
		{"box above bound", "/live.isml/Streams(s1)", bigBox, nil, 413, "bound"},
		{"size beyond body", "/live.isml/Streams(s1)", append(testmedia.Join(header), 0, 0, 0x10, 0, 'm', 'o', 'o', 'f', 1, 2, 3), nil, 400, "stream ended inside a box"},
		{"garbage", "/live.isml/Streams(s1)", garbage, nil, 400, "box"},
		{"codec change mid-stream", "/live.isml/Streams(s1)", changed, nil, 412, "codec configuration changed"},
		{"codec change on reconnect", "/live.isml/Streams(s2)", b, nil, 412, "codec configuration changed"},
		{"fragment before header", "/live.isml/Streams(fresh)", frag, nil, 412, "before any stream header"},
		{"bad stream path", "/live.isml/Streams(s1)/StartTime(5)", a, nil, 404, "Streams"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := e.post(c.path, c.body, c.hdr)
			if code != c.status {
				t.Fatalf("status %d (%s), want %d", code, strings.TrimSpace(body), c.status)
			}
			if !strings.Contains(body, c.reason) {
				t.Errorf("reason %q does not mention %q", strings.TrimSpace(body), c.reason)
			}
			if !strings.Contains(e.logs.String(), "status="+strconv.Itoa(c.status)) {
				t.Errorf("no log line with status %d", c.status)
			}
			resp, err := http.Get(e.ts.URL + "/healthz")
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("server stopped serving: %v", err)
			}
			resp.Body.Close()
			if !testkit.SameFragments(before, e.snapshot("live")) {
				t.Fatal("stored fragments changed")
			}
		})
	}
	// The right token is accepted, and an empty probe answers 200.
	if code, _ := e.post("/secure.isml/Streams(s1)", a, map[string]string{"Authorization": "Bearer s3cret"}); code != 200 {
		t.Fatalf("token push: %d", code)
	}
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/live.isml/Streams(probe)", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("probe: %v %v", err, resp)
	}
}

// TestPull: the pull side replays a stream so that parsing it again yields
// the same fragments, byte for byte; StartTime resumes mid-stream.
func TestPull(t *testing.T) {
	e := newEnv(t)
	a, _ := fixtures(t)
	e.mustPush("push", a)
	resp, err := http.Get(e.ts.URL + "/live.isml/Streams(s1)")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pull: %v %v", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Re-ingest the pulled stream on a second server: identical fragments.
	e2 := newEnv(t)
	e2.mustPush("re-ingest", body)
	if !testkit.SameFragments(e.snapshot("live"), e2.snapshot("live")) {
		t.Fatal("pulled stream does not reproduce the fragments byte for byte")
	}
	if !e2.view("live").Ended {
		t.Fatal("end of stream not carried by the pull")
	}
	v := e.view("live")
	mid := v.Tracks[0].Frags[len(v.Tracks[0].Frags)/2]
	resp, err = http.Get(e.ts.URL + "/live.isml/Streams(s1)/StartTime(" + strconv.FormatInt(mid.Start, 10) + ")")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pull with StartTime: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	bs := testmedia.Boxes(t, body)
	if bs[0].Type != "moof" {
		t.Fatalf("StartTime response starts with %s, want moof (headers skipped)", bs[0].Type)
	}
	m, _ := media.DecodeMoof(bs[0].Raw)
	fi, _ := m.Inspect(nil, 1<<30)
	if fi.Start < mid.Start-int64(mid.Duration) {
		t.Fatalf("resumed at %d, asked for %d", fi.Start, mid.Start)
	}
	resp, err = http.Get(e.ts.URL + "/live.isml/StreamManifest")
	if err != nil || resp.StatusCode != 200 {
		t.Fatal("StreamManifest")
	}
	sm, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(sm), `"id": "s1"`) && !strings.Contains(string(sm), `"id":"s1"`) {
		t.Fatalf("StreamManifest: %s", sm)
	}
}

// TestExpectContinue: a refused push is answered before the encoder sends
// its body, when it asks with Expect: 100-continue.
func TestExpectContinue(t *testing.T) {
	e := newEnv(t)
	sent := false
	body := io.MultiReader(bytes.NewReader(nil), readerFunc(func(p []byte) (int, error) {
		sent = true
		return 0, io.EOF
	}))
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/nope.isml/Streams(s)", body)
	req.ContentLength = -1
	req.Header.Set("Expect", "100-continue")
	tr := &http.Transport{ExpectContinueTimeout: 5e9}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || sent {
		t.Fatalf("status %d, body sent %v", resp.StatusCode, sent)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestOnePostPerBitrate: ffmpeg with one output (one POST) per bitrate lands
// in the same point as separate tracks.
func TestOnePostPerBitrate(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	common := []string{"-c:v", "libx264", "-g", "10", "-keyint_min", "10", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "16k", "-avoid_negative_ts", "make_non_negative", "-f", "ismv", "-movflags", "isml+frag_keyframe"}
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-t", "3", "-f", "lavfi", "-i", "testsrc2=size=128x72:rate=10", "-t", "3", "-f", "lavfi", "-i", "sine=sample_rate=8000"}
	args = append(args, "-map", "0:v", "-map", "1:a", "-b:v", "60k")
	args = append(args, common...)
	// Audio rides with both bitrates (as Azure recommends for redundancy):
	// the second copy is deduplicated.
	args = append(args, filepath.Join(dir, "hi.ismv"), "-map", "0:v", "-map", "1:a", "-s", "64x36", "-b:v", "20k")
	args = append(args, common...)
	args = append(args, filepath.Join(dir, "lo.ismv"))
	testmedia.Run(t, args)
	for _, name := range []string{"hi", "lo"} {
		if code, msg := e.post("/live.isml/Streams("+name+")", testmedia.ReadFile(t, filepath.Join(dir, name+".ismv")), nil); code != 200 {
			t.Fatalf("%s: %d %s", name, code, msg)
		}
	}
	v := e.view("live")
	var videos []store.TrackView
	for _, tr := range v.Tracks {
		if tr.Info.Kind == "video" {
			videos = append(videos, tr)
		}
	}
	if len(v.Tracks) != 3 || len(videos) != 2 || videos[0].Info.Bitrate == videos[1].Info.Bitrate {
		t.Fatalf("tracks: %+v", v.Tracks)
	}
	if a, b := videos[0].Frags, videos[1].Frags; len(a) != len(b) || a[0].Start != b[0].Start {
		t.Errorf("bitrates not aligned: %d/%d fragments from %d/%d", len(a), len(b), a[0].Start, b[0].Start)
	}
}

// TestPointsAny: with points_any a push to a name no configuration lists is
// stored under that name, a configured point keeps its token, and a name the
// store cannot hold is a 400 rather than a new point.
func TestPointsAny(t *testing.T) {
	e := newEnvWith(t, nil, func(c *config.Config) { c.PointsAny = true })
	a, _ := fixtures(t)
	if code, msg := e.post("/first-try.isml/Streams(s1)", a, nil); code != 200 {
		t.Fatalf("push to an unlisted point with points_any: %d %s", code, msg)
	}
	if v := e.view("first-try"); len(v.Tracks) == 0 || len(v.Tracks[0].Frags) == 0 {
		t.Fatalf("unlisted point stored %d tracks", len(v.Tracks))
	}
	if code, _ := e.post("/secure.isml/Streams(s1)", a, nil); code != 403 {
		t.Fatalf("a configured point's token is no longer required: %d", code)
	}
	if code, msg := e.post("/bad..name.isml/Streams(s1)", a, nil); code != 400 || !strings.Contains(msg, "invalid publishing point name") {
		t.Fatalf("invalid name: %d %s; want 400", code, msg)
	}
}

// TestPushChunked pushes what ffmpeg writes as a low-latency ismv encoder
// (chunks of 0.5 s, 2 s GOPs) over one open request: while the push goes
// on, the chunks of the fragment being received are parts, servable at
// once, and the complete fragments (after the first GOP) are stored
// merged, 2 s each, starting with a key frame.
func TestPushChunked(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(t.TempDir(), "chunked.ismv")
	testmedia.Run(t, testmedia.ChunkedISMVArgs(8, 0.5, false, 0, out))
	bs := testmedia.Boxes(t, testmedia.ReadFile(t, out))
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/live.isml/Streams(s1)", pr)
		req.ContentLength = -1
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	// Everything up to the middle of the third fragment (4.0-5.0 s: the
	// first chunk and the rest of the first GOP are fragments of their
	// own, see media.Assembler).
	moofs, i := 0, 0
	for ; i < len(bs) && moofs < 2*(8+2); i++ {
		if bs[i].Type == "moof" {
			moofs++
		}
		if _, err := pw.Write(bs[i].Raw); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	var v store.View
	defer pw.Close()
	for {
		v = store.View{}
		if point, err := e.srv.Store.Point("live"); err == nil {
			v = point.View(0)
		}
		open := 0
		for _, tr := range v.Tracks {
			if _, ok := tr.Open(); ok && len(tr.Frags) == 3 {
				open++
			}
		}
		if open == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no open parts on both tracks while the push goes on: %+v", v.Tracks)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, tr := range v.Tracks {
		o, _ := tr.Open()
		t.Logf("%s: %d fragments stored, open fragment at %d with %d parts, part target %d", tr.Info.Kind, len(tr.Frags), o.Start, len(o.Parts), tr.PartTarget)
		if len(tr.Frags) != 3 || len(o.Parts) < 1 {
			t.Errorf("%s: %d fragments stored and %d parts open mid-push, want 3 and some", tr.Info.Kind, len(tr.Frags), len(o.Parts))
		}
		point, _ := e.srv.Store.Point("live")
		if _, _, ok, _ := point.Part(tr.ID, o.Parts[0].Start); !ok {
			t.Errorf("%s: open part not servable", tr.Info.Kind)
		}
	}
	for ; i < len(bs); i++ {
		if _, err := pw.Write(bs[i].Raw); err != nil {
			t.Fatal(err)
		}
	}
	pw.Close()
	if code := <-done; code != 200 {
		t.Fatalf("push: %d", code)
	}
	v = e.view("live")
	for _, tr := range v.Tracks {
		if len(tr.Frags) != 5 {
			t.Errorf("%s: %d fragments, want 5", tr.Info.Kind, len(tr.Frags))
		}
		for k, f := range tr.Frags[2 : len(tr.Frags)-1] {
			if d := tr.Seconds(int64(f.Duration)); d < 1.95 || d > 2.05 || !f.Key {
				t.Errorf("%s fragment %d: %.3f s, key %v", tr.Info.Kind, k, d, f.Key)
			}
		}
	}
}
