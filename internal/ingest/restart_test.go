package ingest_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/testkit"
	"github.com/sluice-media/sluice/internal/testmedia"
)

var (
	otherOnce sync.Once
	otherBody []byte
)

// restartFixture is what an encoder that restarted sends after fixtures'
// a: the same tracks and codec configuration, other content, its times
// from zero again.
func restartFixture(t *testing.T) []byte {
	t.Helper()
	fixtures(t)
	otherOnce.Do(func() {
		p := filepath.Join(fixDir, "c.ismv")
		testmedia.Run(t, testmedia.TinyISMVOtherArgs(4, "64x64", p))
		otherBody = testmedia.ReadFile(t, p)
	})
	return otherBody
}

// parts splits an ismv body into its header, its fragments (moof+mdat)
// and what follows them (the mfra).
func parts(t *testing.T, body []byte) (header []byte, frags [][]byte, end []byte) {
	t.Helper()
	bs := testmedia.Boxes(t, body)
	i := 0
	for ; bs[i].Type != "moof"; i++ {
		header = append(header, bs[i].Raw...)
	}
	for ; i+1 < len(bs) && bs[i].Type == "moof"; i += 2 {
		frags = append(frags, testmedia.Join(bs[i:i+2]))
	}
	return header, frags, testmedia.Join(bs[i:])
}

// trackEnds is the end of every track's timeline.
func trackEnds(v store.View) map[string]int64 {
	out := map[string]int64{}
	for _, t := range v.Tracks {
		if n := len(t.Frags); n > 0 {
			out[t.ID] = t.Frags[n-1].End()
		}
	}
	return out
}

// checkRestarted checks that the point holds before's fragments untouched
// and, after them, as many more as after brought.
func checkRestarted(t *testing.T, v store.View, before map[string][]byte, now map[string][]byte, added int) {
	t.Helper()
	for k, b := range before {
		if !bytes.Equal(now[k], b) {
			t.Fatalf("fragment %s of the first push changed or vanished", k)
		}
	}
	if got := len(now) - len(before); got != added {
		t.Fatalf("%d fragments added by the restarted push, want %d", got, added)
	}
	if len(v.Meta.Restarts) != 1 {
		t.Fatalf("%d restart records, want 1", len(v.Meta.Restarts))
	}
	r := v.Meta.Restarts[0]
	for _, tv := range v.Tracks {
		n := 0
		for _, f := range tv.Frags {
			key := tv.ID + "/" + fmt.Sprint(f.Start)
			if _, old := before[key]; old {
				continue
			}
			n++
			if f.Start < r.Ends[tv.ID] {
				t.Errorf("%s: restarted fragment at %d, before the stored end %d", tv.ID, f.Start, r.Ends[tv.ID])
			}
		}
		if n == 0 {
			t.Errorf("%s: nothing of the restarted push", tv.ID)
		}
	}
}

// TestRestartContinue is the encoder restart of docs/ingest.md: a push, its end, and
// a second push whose times start from zero again. Both are kept, the
// second after the first; manifests mark the boundary; the same body again
// (a reconnection that resends) is recognised as copies.
func TestRestartContinue(t *testing.T) {
	e := newEnv(t)
	a, _ := fixtures(t)
	c := restartFixture(t)
	_, cf, _ := parts(t, c)
	e.mustPush("first push", a)
	before := e.snapshot("live")
	e.mustPush("restarted encoder", c)
	v := e.view("live")
	now := e.snapshot("live")
	checkRestarted(t, v, before, now, len(cf))
	if !v.Ended {
		t.Error("the restarted push ended with an mfra: the point should have ended")
	}
	reg := e.srv.Metrics.Registry
	if n := testkit.Sum(t, reg, "sluice_encoder_restarts_total", "point=live", "policy=continue"); n != 1 {
		t.Errorf("restarts counted: %v, want 1", n)
	}
	if n := testkit.Sum(t, reg, "sluice_fragments_in_total", "result=differs"); n != 0 {
		t.Errorf("%v fragments dropped as differing", n)
	}
	if !strings.Contains(e.logs.String(), "encoder restart placed after what is stored") {
		t.Error("no log line for the restart")
	}
	// Every format shows it: a second DASH Period, one HLS discontinuity per
	// track, on every rendition alike.
	if mpd := get(t, e.ts.URL+"/live.isml/manifest.mpd"); strings.Count(mpd, "<Period ") != 2 {
		t.Errorf("MPD with %d Periods, want 2:\n%s", strings.Count(mpd, "<Period "), mpd)
	}
	for _, tv := range v.Tracks {
		pl := get(t, e.ts.URL+"/live.isml/tracks/"+tv.ID+"/media.m3u8")
		if n := strings.Count(pl, "#EXT-X-DISCONTINUITY\n"); n != 1 {
			t.Errorf("%s: %d discontinuities, want 1:\n%s", tv.ID, n, pl)
		}
	}
	// The restarted session again (it reconnects and resends): copies.
	e.mustPush("resend", c)
	if !testkit.SameFragments(now, e.snapshot("live")) || len(e.view("live").Meta.Restarts) != 1 {
		t.Fatal("a resend of the restarted session changed the point")
	}
}

// TestRestartOffsetSurvives: the offset of a restarted session is kept, so
// that the session's reconnection (its times going on) after a restart of
// the process goes on from where it was, without a second restart.
func TestRestartOffsetSurvives(t *testing.T) {
	dir := t.TempDir()
	mod := func(c *config.Config) { c.Data = dir }
	e := newEnvWith(t, nil, mod)
	a, _ := fixtures(t)
	hdr, cf, end := parts(t, restartFixture(t))
	e.mustPush("first push", a)
	half := len(cf) / 2
	e.mustPush("restarted encoder, first half", append(append([]byte(nil), hdr...), bytes.Join(cf[:half], nil)...))
	rec := e.view("live").Meta.Restarts
	e.ts.Close()

	e2 := newEnvWith(t, nil, mod)
	e2.mustPush("reconnection, second half", append(append(append([]byte(nil), hdr...), bytes.Join(cf[half:], nil)...), end...))
	v := e2.view("live")
	if !reflect.DeepEqual(v.Meta.Restarts, rec) || len(rec) != 1 {
		t.Fatalf("restart records %+v after the reconnection, want %+v", v.Meta.Restarts, rec)
	}
	for _, tv := range v.Tracks {
		if g := store.Gaps(tv.Frags, tv.Breaks, len(tv.Frags)-1); g != 1 {
			t.Errorf("%s: %d discontinuities, want the restart alone", tv.ID, g)
		}
	}
	if got := len(testkit.Snapshot(t, e2.srv.Store, "live")); got != len(parts2(t, a))+len(cf) {
		t.Errorf("%d fragments, want %d", got, len(parts2(t, a))+len(cf))
	}
	if !v.Ended {
		t.Error("not ended")
	}
}

func parts2(t *testing.T, body []byte) [][]byte {
	_, f, _ := parts(t, body)
	return f
}

// TestRestartCopiesFirst: a restarted encoder whose first fragments happen
// to be identical to stored ones (black frames, silence) is recognised at
// its first differing fragment, and those first fragments are placed with
// the rest.
func TestRestartCopiesFirst(t *testing.T) {
	for _, policy := range []string{config.RestartContinue, config.RestartArchive} {
		t.Run(policy, func(t *testing.T) {
			e := newEnvWith(t, nil, func(c *config.Config) { c.OnRestart = policy })
			a, _ := fixtures(t)
			hdr, af, _ := parts(t, a)
			_, cf, end := parts(t, restartFixture(t))
			e.mustPush("first push", a)
			before := e.snapshot("live")
			body := append(append([]byte(nil), hdr...), bytes.Join(af[:4], nil)...)
			body = append(append(body, bytes.Join(cf[4:], nil)...), end...)
			e.mustPush("restart that begins with copies", body)
			if policy == config.RestartContinue {
				checkRestarted(t, e.view("live"), before, e.snapshot("live"), len(cf))
				return
			}
			// Archived: the point holds the restarted session whole, its
			// first fragments (copies of archived ones) included.
			if got := len(e.snapshot("live")); got != len(cf) {
				t.Fatalf("the point holds %d fragments, want the restarted session's %d", got, len(cf))
			}
		})
	}
}

// TestRestartRefuse: under on_restart: refuse the restarted push gets 409
// and the point keeps what it had, ended.
func TestRestartRefuse(t *testing.T) {
	e := newEnvWith(t, nil, func(c *config.Config) { c.Points[0].OnRestart = config.RestartRefuse })
	a, _ := fixtures(t)
	e.mustPush("first push", a)
	before := e.snapshot("live")
	code, msg := e.post("/live.isml/Streams(s1)", restartFixture(t), nil)
	if code != http.StatusConflict || !strings.Contains(msg, "restart") {
		t.Fatalf("restarted push: %d %s, want 409", code, msg)
	}
	v := e.view("live")
	if !testkit.SameFragments(before, e.snapshot("live")) || !v.Ended || len(v.Meta.Restarts) != 0 {
		t.Fatal("a refused restart changed the point")
	}
	if n := testkit.Sum(t, e.srv.Metrics.Registry, "sluice_ingest_pushes_total", "status=409"); n != 1 {
		t.Errorf("409 pushes counted: %v", n)
	}
}

// TestRestartArchive: under on_restart: archive the presentation before
// the restart becomes an on-demand asset and the point goes on with the
// restarted session alone; both pushes are kept.
func TestRestartArchive(t *testing.T) {
	e := newEnvWith(t, nil, func(c *config.Config) { c.OnRestart = config.RestartArchive })
	a, _ := fixtures(t)
	c := restartFixture(t)
	e.mustPush("first push", a)
	before := e.snapshot("live")
	e.mustPush("restarted encoder", c)
	var asset string
	for _, n := range e.srv.Store.Points() {
		if strings.HasPrefix(n, "live-") {
			asset = n
		}
	}
	if asset == "" {
		t.Fatalf("no asset among %v", e.srv.Store.Points())
	}
	archived := e.snapshot(asset)
	if !testkit.SameFragments(before, archived) {
		t.Fatalf("the asset holds %d fragments, want the first push's %d", len(archived), len(before))
	}
	if got := len(e.snapshot("live")); got != len(parts2(t, c)) {
		t.Fatalf("the point holds %d fragments, want the restarted session's %d", got, len(parts2(t, c)))
	}
	if r := e.view("live").Meta.Restarts; len(r) != 1 || r[0].Archived != asset {
		t.Errorf("restart record %+v does not name %s", r, asset)
	}
	if code := head(t, e.ts.URL+"/"+asset+".isml/manifest.mpd"); code != 200 {
		t.Errorf("asset manifest: %d", code)
	}
}

// TestRedundantEncoderIsNoRestart: a second encoder that sends other bytes
// for the same times while the first one feeds the point is redundancy,
// not a restart: first copy wins, nothing is shifted.
func TestRedundantEncoderIsNoRestart(t *testing.T) {
	e := newEnv(t)
	a, _ := fixtures(t)
	hdr, af, end := parts(t, a)
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/live.isml/Streams(enc1)", pr)
		req.ContentLength = -1
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	pw.Write(hdr)
	pw.Write(bytes.Join(af[:len(af)/2], nil))
	deadline := time.Now().Add(10 * time.Second)
	for len(e.snapshot("live")) < len(af)/2 {
		if time.Now().After(deadline) {
			t.Fatal("the first encoder's fragments were not stored")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, msg := e.post("/live.isml/Streams(enc2)", restartFixture(t), nil); code != 200 {
		t.Fatalf("second encoder: %d %s", code, msg)
	}
	pw.Write(bytes.Join(af[len(af)/2:], nil))
	pw.Write(end)
	pw.Close()
	if code := <-done; code != 200 {
		t.Fatalf("first encoder: %d", code)
	}
	v := e.view("live")
	if len(v.Meta.Restarts) != 0 {
		t.Fatalf("redundancy taken for a restart: %+v", v.Meta.Restarts)
	}
	if n := testkit.Sum(t, e.srv.Metrics.Registry, "sluice_encoder_restarts_total"); n != 0 {
		t.Errorf("restarts counted: %v", n)
	}
	for _, tv := range v.Tracks {
		if g := store.Gaps(tv.Frags, tv.Breaks, len(tv.Frags)-1); g != 0 {
			t.Errorf("%s: %d discontinuities", tv.ID, g)
		}
	}
	if got := len(e.snapshot("live")); got != len(af) {
		t.Errorf("%d fragments, want one copy of each time: %d", got, len(af))
	}
}

// TestEpochAnchoredGoesOn: an epoch-anchored encoder that restarts goes on
// with later times: no restart, no offset.
func TestEpochAnchoredGoesOn(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	const epoch = 1764000000
	for i, start := range []int64{epoch, epoch + 6} {
		sub := filepath.Join(dir, fmt.Sprint(i))
		os.MkdirAll(sub, 0o755)
		v, _ := testmedia.CMAFFiles(t, sub, 4, start)
		if code, msg := e.post("/live.isml/Streams(video.cmfv)", testmedia.ReadFile(t, v), nil); code != 200 {
			t.Fatalf("push %d: %d %s", i, code, msg)
		}
	}
	v := e.view("live")
	if len(v.Meta.Restarts) != 0 || len(v.Tracks) != 1 {
		t.Fatalf("restarts %+v, %d tracks", v.Meta.Restarts, len(v.Tracks))
	}
	if p, _ := e.srv.Store.Point("live"); p.StreamOffset("video.cmfv") != 0 {
		t.Error("an epoch-anchored stream got an offset")
	}
}

// TestRefusedPushChangesNothing checks docs/ingest.md, "Encoder restarts": pushes refused with
// 400 or 412 after a valid header leave an ended point ended, create no
// stream, store nothing — also after a restart of the process.
func TestRefusedPushChangesNothing(t *testing.T) {
	dir := t.TempDir()
	mod := func(c *config.Config) { c.Data = dir }
	e := newEnvWith(t, nil, mod)
	a, b := fixtures(t)
	hdr, af, _ := parts(t, a)
	bhdr, _, _ := parts(t, b)
	e.mustPush("recording", a)
	before := e.snapshot("live")
	streams := func(e *env) []string {
		p, _ := e.srv.Store.Point("live")
		var ids []string
		for _, s := range p.Streams() {
			ids = append(ids, s.ID)
		}
		return ids
	}
	wantStreams := streams(e)
	garbage := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x13}, 100)
	for _, c := range []struct {
		name, stream string
		body         []byte
		status       int
	}{
		{"header then garbage", "s1", append(append([]byte(nil), hdr...), garbage...), 400},
		{"header then a truncated fragment", "s1", append(append([]byte(nil), hdr...), af[0][:len(af[0])-50]...), 400},
		{"codec configuration changed", "s1", b, 412},
		{"header then a changed header", "s1", append(append([]byte(nil), hdr...), bhdr...), 412},
		{"new stream: header then garbage", "fresh", append(append([]byte(nil), hdr...), garbage...), 400},
		{"new stream: changed codec", "fresh2", b, 412},
	} {
		code, msg := e.post("/live.isml/Streams("+c.stream+")", c.body, nil)
		if code != c.status {
			t.Fatalf("%s: %d %s, want %d", c.name, code, msg, c.status)
		}
	}
	check := func(e *env, when string) {
		t.Helper()
		v := e.view("live")
		if !v.Ended {
			t.Errorf("%s: the recording is live again", when)
		}
		if got := streams(e); !reflect.DeepEqual(got, wantStreams) {
			t.Errorf("%s: streams %v, want %v", when, got, wantStreams)
		}
		if !testkit.SameFragments(before, e.snapshot("live")) {
			t.Errorf("%s: fragments changed", when)
		}
		if pl := get(t, e.ts.URL+"/live.isml/tracks/"+v.Tracks[0].ID+"/media.m3u8"); !strings.Contains(pl, "#EXT-X-ENDLIST") {
			t.Errorf("%s: playlist without ENDLIST:\n%s", when, pl)
		}
		if mpd := get(t, e.ts.URL+"/live.isml/manifest.mpd"); !strings.Contains(mpd, `type="static"`) {
			t.Errorf("%s: MPD not static", when)
		}
		if sm := get(t, e.ts.URL+"/live.isml/StreamManifest"); strings.Contains(sm, "fresh") {
			t.Errorf("%s: StreamManifest lists a refused stream: %s", when, sm)
		}
	}
	check(e, "after the refusals")
	e.ts.Close()
	check(newEnvWith(t, nil, mod), "after a restart")
}

// TestNormalEndIsSuccess checks the normal end of a push: an encoder that sends the
// end of stream (an empty mfra) and closes the connection without reading
// the answer — what ffmpeg does — has pushed successfully: logged and
// counted as such, not as an ingest error 499.
func TestNormalEndIsSuccess(t *testing.T) {
	e := newEnv(t)
	a, _ := fixtures(t)
	addr := strings.TrimPrefix(e.ts.URL, "http://")
	for i, final := range []bool{false, true} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /live.isml/Streams(raw%d) HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n", i, addr)
		for off := 0; off < len(a); off += 4096 {
			chunk := a[off:min(off+4096, len(a))]
			fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk)
		}
		if final {
			io.WriteString(conn, "0\r\n\r\n")
		}
		conn.Close() // never reads the answer
	}
	// Real ffmpeg, pushing a short file as fast as it can.
	testmedia.Run(t, testmedia.ISMVArgs(2, 1, false, e.ts.URL+"/live.isml/Streams(ffmpeg)"))
	reg := e.srv.Metrics.Registry
	deadline := time.Now().Add(10 * time.Second)
	for testkit.Sum(t, reg, "sluice_ingest_pushes_total", "point=live", "status=200") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("pushes counted as 200: %v, want 3", testkit.Sum(t, reg, "sluice_ingest_pushes_total", "status=200"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := testkit.Sum(t, reg, "sluice_ingest_errors_total"); n != 0 {
		t.Errorf("ingest errors counted: %v", n)
	}
	logs := e.logs.String()
	if strings.Contains(logs, "ingest refused") || strings.Count(logs, "msg=\"push finished\"") != 3 {
		t.Errorf("logs do not show three finished pushes and no refusal:\n%s", logs)
	}
	if v := e.view("live"); !v.Ended {
		t.Error("the pushes ended their streams: the point should have ended")
	}
}

// TestProxyRestart: a primary and the standby it tees to place a restarted
// encoder alike: the same bytes, the same restart record.
func TestProxyRestart(t *testing.T) {
	b := newEnvWith(t, nil, nil)
	a := newEnvWith(t, nil, func(c *config.Config) { c.Standby = b.ts.URL })
	body, _ := fixtures(t)
	a.mustPush("first push", body)
	waitSame(t, a, b, true, 5*time.Second)
	a.mustPush("restarted encoder", restartFixture(t))
	waitSame(t, a, b, true, 5*time.Second)
	ra, rb := a.view("live").Meta.Restarts, b.view("live").Meta.Restarts
	if len(ra) != 1 || !reflect.DeepEqual(ra, rb) {
		t.Fatalf("restart records differ: primary %+v, standby %+v", ra, rb)
	}
	if n := testkit.Sum(t, a.srv.Metrics.Registry, "sluice_proxy_connections_total", "mode=tee"); n != 2 {
		t.Errorf("tee connections: %v, want 2 (no catch-up needed)", n)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func head(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
