package webui

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/aac"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/store"
)

// SPS and PPS of a 640x360 x264 stream (High profile, level 3.0).
const (
	testSPS = "6764001eacd940a02ff97011000003000100000300320f162d96"
	testPPS = "68ef8fcb"
)

// pushFixture feeds a small generated stream (one 640x360 H.264 track and
// one AAC track, n fragments of 2 s each) into point p as an ingest would.
func pushFixture(t *testing.T, p *store.Point, n int) {
	t.Helper()
	sps, _ := hex.DecodeString(testSPS)
	pps, _ := hex.DecodeString(testPPS)
	init := mp4.CreateEmptyInit()
	vt := init.AddEmptyTrack(90000, "video", "und")
	if err := vt.SetAVCDescriptor("avc1", [][]byte{sps}, [][]byte{pps}, true); err != nil {
		t.Fatal(err)
	}
	at := init.AddEmptyTrack(48000, "audio", "eng")
	if err := at.SetAACDescriptor(aac.AAClc, 48000); err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	if err := init.Encode(&body); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		for _, tr := range []struct {
			id  uint32
			dur uint32
		}{{1, 180000}, {2, 96000}} {
			f, err := mp4.CreateFragment(uint32(i+1), tr.id)
			if err != nil {
				t.Fatal(err)
			}
			data := bytes.Repeat([]byte{0, 0, 0, 1, 0x65}, 20)
			f.AddFullSample(mp4.FullSample{
				Sample:     mp4.Sample{Flags: mp4.SyncSampleFlags, Dur: tr.dur, Size: uint32(len(data))},
				DecodeTime: uint64(i) * uint64(tr.dur),
				Data:       data,
			})
			if err := f.Encode(&body); err != nil {
				t.Fatal(err)
			}
		}
	}
	sp := media.NewStreamParser(&body, 1<<24, nil)
	var ids map[uint32]string
	for {
		ev, err := sp.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Kind {
		case media.EventHeader:
			if ids, err = p.SetHeader("s1", ev.Header); err != nil {
				t.Fatal(err)
			}
		case media.EventFragment:
			id := ids[uint32(ev.Fragment.Info.TrackID)]
			if _, err := p.AddFragment(id, ev.Fragment); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// fakePlayers creates the player files the handler looks for under dir.
func fakePlayers(t *testing.T, dir string) {
	t.Helper()
	for _, pf := range playerFiles {
		p := filepath.Join(dir, filepath.FromSlash(pf.Candidates[0]))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("/* "+pf.Name+" */\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newTestStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	live, err := st.Create("live")
	if err != nil {
		t.Fatal(err)
	}
	pushFixture(t, live, 3)
	if _, err := st.Create("events/idle-1"); err != nil {
		t.Fatal(err)
	}
	vod, err := st.Create("movie")
	if err != nil {
		t.Fatal(err)
	}
	pushFixture(t, vod, 2)
	if err := vod.SetVOD(); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestHandler(t *testing.T) {
	st := newTestStore(t)
	withPlayers := t.TempDir()
	fakePlayers(t, withPlayers)
	without := t.TempDir()

	tests := []struct {
		name       string
		dir        string
		method     string
		target     string
		status     int
		ctype      string
		contains   []string
		notContain []string
	}{
		{
			name: "page lists points without players", dir: without, target: "/", status: 200, ctype: "text/html",
			contains: []string{
				"live", "events/idle-1", "movie", "cd web &amp;&amp; npm ci",
				`href="/live.isml/manifest.mpd"`, `href="/live.isml/master.m3u8"`, `href="/live.isml/Manifest"`,
				`href="/events/idle-1.isml/manifest.mpd"`,
				"avc1.64001E", "640&times;360", "mp4a.40.2", "48000 Hz", "[eng]",
				`class="state live"`, `class="state idle"`, `class="state vod"`,
				`data-frags>3<`, "6.0 s",
			},
			notContain: []string{`/player/dash.all.min.js`, `data-kind="dash"`},
		},
		{
			name: "page with players has buttons", dir: withPlayers, target: "/", status: 200, ctype: "text/html",
			contains: []string{
				`<script src="/player/dash.all.min.js">`, `<script src="/player/dash.mss.min.js">`, `<script src="/player/hls.min.js">`,
				`data-kind="dash" data-url="/live.isml/manifest.mpd"`, `data-kind="hls" data-url="/live.isml/master.m3u8"`,
				`data-kind="mss" data-url="/live.isml/Manifest"`, `<video id="video"`, `<canvas id="chart"`,
				"sluicePlayer",
			},
			notContain: []string{"npm ci"},
		},
		{name: "status json", dir: withPlayers, target: "/status.json", status: 200, ctype: "application/json",
			contains: []string{`"name":"live"`, `"state":"live"`, `"players":true`, `"dash":"/live.isml/manifest.mpd"`}},
		{name: "dash.js", dir: withPlayers, target: "/player/dash.all.min.js", status: 200, ctype: "text/javascript", contains: []string{"dash.all.min.js"}},
		{name: "mss module", dir: withPlayers, target: "/player/dash.mss.min.js", status: 200, ctype: "text/javascript", contains: []string{"dash.mss.min.js"}},
		{name: "hls.js", dir: withPlayers, target: "/player/hls.min.js", status: 200, ctype: "text/javascript", contains: []string{"hls.min.js"}},
		{name: "head player", dir: withPlayers, method: http.MethodHead, target: "/player/hls.min.js", status: 200},
		{name: "player missing", dir: without, target: "/player/hls.min.js", status: 404, contains: []string{"cd web && npm ci"}},
		{name: "player unknown", dir: withPlayers, target: "/player/other.js", status: 404, contains: []string{"unknown player file"}},
		{name: "player traversal", dir: withPlayers, target: "/player/../../etc/passwd", status: 404},
		{name: "player encoded traversal", dir: withPlayers, target: "/player/..%2fhls.js%2fdist%2fhls.min.js", status: 404},
		{name: "player subpath", dir: withPlayers, target: "/player/hls.js/dist/hls.min.js", status: 404},
		{name: "play dash", dir: withPlayers, target: "/play?kind=dash&url=/live.isml/manifest.mpd", status: 200, ctype: "text/html",
			contains:   []string{`<script src="/player/dash.all.min.js">`, `sluicePlayer.start("dash", "/live.isml/manifest.mpd"`},
			notContain: []string{"hls.min.js", "dash.mss"}},
		{name: "play mss", dir: withPlayers, target: "/play?kind=mss&url=/live.isml/Manifest", status: 200,
			contains: []string{`<script src="/player/dash.all.min.js">`, `<script src="/player/dash.mss.min.js">`, `"mss"`}},
		{name: "play hls", dir: withPlayers, target: "/play?kind=hls&url=/live.isml/master.m3u8", status: 200,
			contains: []string{`<script src="/player/hls.min.js">`, `"hls"`}},
		{name: "play shaka", dir: withPlayers, target: "/play?kind=shaka&url=/live.isml/manifest.mpd", status: 200,
			contains: []string{`<script src="/player/shaka-player.compiled.js">`, `"shaka"`}},
		{name: "shaka player file", dir: withPlayers, target: "/player/shaka-player.compiled.js", status: 200, ctype: "text/javascript"},
		{name: "play escapes url", dir: withPlayers, target: "/play?kind=hls&url=/a%22%3C/script%3E.m3u8", status: 200,
			notContain: []string{`"</script>`, `a"<`}},
		{name: "play bad kind", dir: withPlayers, target: "/play?kind=flash&url=/live.isml/Manifest", status: 400},
		{name: "play absolute url", dir: withPlayers, target: "/play?kind=dash&url=http://evil.example/x.mpd", status: 400},
		{name: "play scheme-relative url", dir: withPlayers, target: "/play?kind=dash&url=//evil.example/x.mpd", status: 400},
		{name: "play javascript url", dir: withPlayers, target: "/play?kind=dash&url=javascript:alert(1)", status: 400},
		{name: "play backslash url", dir: withPlayers, target: "/play?kind=dash&url=/%5Cevil.example/x.mpd", status: 400},
		{name: "play dot segments", dir: withPlayers, target: "/play?kind=dash&url=/a/../b.mpd", status: 400},
		{name: "play no url", dir: withPlayers, target: "/play?kind=dash", status: 400},
		{name: "play without players", dir: without, target: "/play?kind=dash&url=/live.isml/manifest.mpd", status: 404, contains: []string{"npm ci"}},
		{name: "unknown path", dir: withPlayers, target: "/live.isml/Manifest", status: 404},
		{name: "post refused", dir: withPlayers, method: http.MethodPost, target: "/", status: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := New(st, tc.dir, nil)
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req := httptest.NewRequest(method, tc.target, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body:\n%s", rec.Code, tc.status, body)
			}
			if tc.ctype != "" && !strings.HasPrefix(rec.Header().Get("Content-Type"), tc.ctype) {
				t.Errorf("Content-Type %q, want %q", rec.Header().Get("Content-Type"), tc.ctype)
			}
			for _, s := range tc.contains {
				if !strings.Contains(body, s) {
					t.Errorf("body lacks %q", s)
				}
			}
			for _, s := range tc.notContain {
				if strings.Contains(body, s) {
					t.Errorf("body contains %q", s)
				}
			}
		})
	}
}

func TestStatusStates(t *testing.T) {
	st := newTestStore(t)
	p, _ := st.Point("live")
	for _, tr := range p.View(0).Tracks {
		if err := p.EndTrack(tr.ID); err != nil {
			t.Fatal(err)
		}
	}
	h := New(st, t.TempDir(), nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status.json", nil))
	var s Status
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if s.Players {
		t.Error("players reported present in an empty directory")
	}
	want := map[string]string{"live": "ended", "events/idle-1": "idle", "movie": "vod"}
	if len(s.Points) != len(want) {
		t.Fatalf("%d points, want %d", len(s.Points), len(want))
	}
	for _, ps := range s.Points {
		if ps.State != want[ps.Name] {
			t.Errorf("%s: state %q, want %q", ps.Name, ps.State, want[ps.Name])
		}
	}
	live := s.Points[slicesIndex(s.Points, "live")]
	if len(live.Tracks) != 2 || live.Tracks[0].Kind != "video" || live.Tracks[0].Fragments != 3 || live.Tracks[0].Edge != 6 {
		t.Errorf("live tracks: %+v", live.Tracks)
	}
	if live.Tracks[1].Kind != "audio" || live.Tracks[1].SampleRate != 48000 || !live.Tracks[1].Ended {
		t.Errorf("audio track: %+v", live.Tracks[1])
	}
}

func slicesIndex(ps []PointStatus, name string) int {
	for i, p := range ps {
		if p.Name == name {
			return i
		}
	}
	return -1
}

func TestManifestPath(t *testing.T) {
	ok := map[string]string{
		"/live.isml/manifest.mpd":      "/live.isml/manifest.mpd",
		"/a/b.isml/Manifest":           "/a/b.isml/Manifest",
		"/live.isml/master.m3u8?x=1":   "/live.isml/master.m3u8?x=1",
		"/s/tok/asset/manifest.mpd":    "/s/tok/asset/manifest.mpd",
		"/live.isml/QualityLevels(1)/": "/live.isml/QualityLevels(1)/",
	}
	for in, want := range ok {
		got, err := manifestPath(in)
		if err != nil || got != want {
			t.Errorf("manifestPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x.mpd", "//h/x", "/\\h", "http://h/x", "/a/./b", "/a//b", "/a\x00", "/a#frag", strings.Repeat("/a", 600)} {
		if got, err := manifestPath(in); err == nil {
			t.Errorf("manifestPath(%q) = %q, want an error", in, got)
		}
	}
}

type fakeCluster struct{}

func (fakeCluster) Sessions() int { return 7 }
func (fakeCluster) SenderStats() map[string]cluster.SenderStats {
	return map[string]cluster.SenderStats{
		"s2": {ID: "s2", Blocks: 40, RAMBytes: 3 << 20, RAMBudget: 256 << 20, PinnedBlocks: 5, PinnedBytes: 2 << 20, SendsRAM: 9, SendsDisk: 1, Refused: 4},
		"s1": {ID: "s1", Blocks: 2},
	}
}

// TestClusterPanelAndImports: with a scheduler the page has the cluster
// panel (sessions; per sender RAM used/budget, pinned, hit ratio, refused
// look-aheads); an asset another process imported after the store was
// opened is listed without a request for it; the install notice is a
// sentence that says what to run.
func TestClusterPanelAndImports(t *testing.T) {
	st := newTestStore(t)
	other, err := store.Open(st.Dir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	imp, err := other.Create("movies/imported")
	if err != nil {
		t.Fatal(err)
	}
	pushFixture(t, imp, 2)
	h := New(st, t.TempDir(), nil)
	h.SetCluster(fakeCluster{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status.json", nil))
	var s Status
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if slicesIndex(s.Points, "movies/imported") < 0 {
		t.Errorf("the imported asset is not listed: %+v", s.Points)
	}
	if s.Cluster == nil || s.Cluster.Sessions != 7 || len(s.Cluster.Senders) != 2 || s.Cluster.Senders[0].ID != "s1" {
		t.Fatalf("cluster: %+v", s.Cluster)
	}
	if s1, s2 := s.Cluster.Senders[0], s.Cluster.Senders[1]; s1.HitRatio != -1 || s2.HitRatio != 0.9 || s2.Refused != 4 || s2.PinnedBlocks != 5 {
		t.Errorf("senders: %+v", s.Cluster.Senders)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	page := rec.Body.String()
	for _, want := range []string{`id="cluster"`, `data-sender="s2"`, "3.0 / 256.0 MiB", "5 blocks, 2.0 MiB", "90.0 %", "refused look-aheads",
		"movies/imported", "To install them, run <code>cd web &amp;&amp; npm ci</code>"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Without a scheduler there is no panel.
	rec = httptest.NewRecorder()
	New(st, t.TempDir(), nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if strings.Contains(rec.Body.String(), `id="cluster"`) {
		t.Error("a cluster panel without a scheduler")
	}
}

type fakeSender struct{}

func (fakeSender) Stats() cluster.SenderStats {
	return cluster.SenderStats{ID: "s9", Blocks: 12, RAMBytes: 5 << 20, RAMBudget: 64 << 20, PinnedBlocks: 3,
		PinnedBytes: 1 << 20, SendsRAM: 3, SendsDisk: 1, Refused: 2, Sessions: 4, LeaseExpiries: 1}
}

// TestClusterOnlyPages: the page of a process without a store (a
// scheduler, a sender) is the cluster panel: a scheduler's lists its
// senders with their sessions, a sender's its own figures; neither has
// publishing points, a player or the install notice.
func TestClusterOnlyPages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*Handler)
		role  string
		want  []string
	}{
		{"scheduler", func(h *Handler) { h.SetCluster(fakeCluster{}) }, "scheduler", []string{
			"<h1>Sluice scheduler</h1>", "7</span> session(s) at this scheduler", `data-sender="s1"`, `data-sender="s2"`,
			"3.0 / 256.0 MiB", "5 blocks, 2.0 MiB", "90.0 %"}},
		{"sender", func(h *Handler) { h.SetSender(fakeSender{}) }, "sender", []string{
			"<h1>Sluice sender</h1>", "4</span> session(s) valid at this sender", `data-sender="s9"`,
			"5.0 / 64.0 MiB", "3 blocks, 1.0 MiB", `<td class="num">4</td>`, "75.0 %", `<td class="num">2</td>`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := New(nil, "", nil)
			tc.setup(h)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			page := rec.Body.String()
			for _, want := range tc.want {
				if !strings.Contains(page, want) {
					t.Errorf("the page lacks %q", want)
				}
			}
			for _, not := range []string{"Publishing points", "publishing point(s)", `id="noplayers"`, `id="player"`, "/player/", "window.sluicePlayer.start"} {
				if strings.Contains(page, not) {
					t.Errorf("the page has %q", not)
				}
			}
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status.json", nil))
			var s Status
			if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
				t.Fatal(err)
			}
			if s.Cluster == nil || s.Cluster.Role != tc.role || s.Players || len(s.Points) != 0 {
				t.Fatalf("status: %+v", s)
			}
			if tc.role == "sender" {
				want := SenderStatus{ID: "s9", Blocks: 12, RAMBytes: 5 << 20, RAMBudget: 64 << 20, PinnedBlocks: 3,
					PinnedBytes: 1 << 20, Sessions: 4, HitRatio: 0.75, Refused: 2}
				if s.Cluster.Sessions != 4 || len(s.Cluster.Senders) != 1 || s.Cluster.Senders[0] != want {
					t.Errorf("sender panel: %+v", s.Cluster)
				}
			}
			// No players are served by a handler without a player directory.
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/player/dash.all.min.js", nil))
			if rec.Code != http.StatusNotFound {
				t.Errorf("/player/dash.all.min.js: %d, want 404", rec.Code)
			}
		})
	}
}

// TestEdgeClock: a point whose media time is anchored to the wall clock
// reports the edge as a wall-clock time, and the page shows it so (not as
// seconds since 1970).
func TestEdgeClock(t *testing.T) {
	st := newTestStore(t)
	p, err := st.Create("clock")
	if err != nil {
		t.Fatal(err)
	}
	anchor := time.Now().Add(-time.Minute).Truncate(time.Second).UTC()
	if ok, err := p.AdoptAnchor(anchor); !ok || err != nil {
		t.Fatalf("anchor: %v %v", ok, err)
	}
	pushFixture(t, p, 3)
	h := New(st, t.TempDir(), nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if want := anchor.Add(6*time.Second).Format("2006-01-02 15:04:05") + " UTC"; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("the page does not show the edge as a wall-clock time:\n%s", rec.Body.String())
	}
}
