package player

import (
	"testing"
	"time"
)

func TestCMCDHeadersFormat(t *testing.T) {
	req := mustURL(t, "http://o/pp.isml/tracks/v1/0.m4s")
	h := CMCDHeaders(RequestInfo{
		SessionID: `a"b`, Format: FormatDASH, Live: true, Object: ObjectVideo, Kind: KindVideo,
		Bitrate: 2_999_600, TopBitrate: 6_000_000, Starved: true, Duration: 1999600 * time.Microsecond, Buffer: 1549 * time.Millisecond,
		Throughput: 25_449_000, Startup: true, Next: "http://o/pp.isml/tracks/v1/20000000.m4s",
	}, req)
	want := map[string]string{
		"CMCD-Object":  "br=3000,d=2000,ot=v,tb=6000",
		"CMCD-Status":  "bs",
		"CMCD-Request": `bl=1500,mtp=25400,nor="20000000.m4s",su`,
		"CMCD-Session": `sf=d,sid="a\"b",st=l`,
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s = %q, want %q", k, h[k], v)
		}
	}
	// Smooth: the next fragment is in a sibling directory; nor is URL-encoded.
	h = CMCDHeaders(RequestInfo{Format: FormatSmooth, Object: ObjectAudio, Next: "http://o/pp.isml/QualityLevels(128000)/Fragments(audio=20)"},
		mustURL(t, "http://o/pp.isml/QualityLevels(96000)/Fragments(audio=0)"))
	if got := h["CMCD-Request"]; got != `bl=0,nor="..%2FQualityLevels(128000)%2FFragments(audio%3D20)"` {
		t.Errorf("smooth CMCD-Request %q", got)
	}
	if got := h["CMCD-Session"]; got != "sf=s,st=v" {
		t.Errorf("smooth CMCD-Session %q", got)
	}
	// A manifest request: ot only, no buffer or startup keys.
	h = CMCDHeaders(RequestInfo{Format: FormatHLS, Object: ObjectManifest, Startup: true, SessionID: "x"}, req)
	if h["CMCD-Object"] != "ot=m" || h["CMCD-Request"] != "" || h["CMCD-Session"] != `sf=h,sid="x",st=v` {
		t.Errorf("manifest CMCD %v", h)
	}
}

func TestRelativeURL(t *testing.T) {
	for _, c := range []struct{ base, target, want string }{
		{"http://o/a/b/c.m4s", "http://o/a/b/d.m4s", "d.m4s"},
		{"http://o/a/b/c.m4s", "http://o/a/x/d.m4s?q=1", "../x/d.m4s?q=1"},
		{"http://o/a/b/c.m4s", "http://o/d.m4s", "../../d.m4s"},
		{"http://o/a/c.m4s", "http://p/a/d.m4s", "http://p/a/d.m4s"},
	} {
		if got := relativeURL(mustURL(t, c.base), mustURL(t, c.target)); got != c.want {
			t.Errorf("relativeURL(%s, %s) = %q, want %q", c.base, c.target, got, c.want)
		}
	}
}

// TestPlaybackSimulation drives the buffer model with a synthetic clock.
func TestPlaybackSimulation(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	p := newPlayback([]Kind{KindVideo, KindAudio}, 2*time.Second, t0)

	p.add(KindVideo, 2*time.Second, time.Time{}, at(100))
	if s := p.snap(at(200)); s.State != stateStartup {
		t.Fatalf("started with no audio: %v", s.State)
	}
	p.add(KindAudio, 2*time.Second, time.Time{}, at(300))
	s := p.snap(at(300))
	if s.State != statePlaying || s.Startup != 300*time.Millisecond {
		t.Fatalf("state %v startup %v", s.State, s.Startup)
	}
	// Video gets another 2 s, audio does not: audio runs dry at 2300.
	p.add(KindVideo, 2*time.Second, time.Time{}, at(1000))
	s = p.snap(at(2800))
	if s.State != stateStalled || s.Stalls != 1 || s.StallTotal != 500*time.Millisecond || s.Played != 2*time.Second {
		t.Fatalf("state %v stalls %d stall %v played %v", s.State, s.Stalls, s.StallTotal, s.Played)
	}
	if s.Level[KindVideo] != 2*time.Second {
		t.Errorf("video level %v", s.Level[KindVideo])
	}
	if !p.takeStarved(KindAudio) || p.takeStarved(KindAudio) {
		t.Error("starved flag not set once")
	}
	// One second of audio is not enough to resume; two are.
	p.add(KindAudio, time.Second, time.Time{}, at(3000))
	if s := p.snap(at(3000)); s.State != stateStalled {
		t.Fatalf("resumed below the threshold: %v", s.State)
	}
	p.add(KindAudio, time.Second, time.Time{}, at(3300))
	s = p.snap(at(3300))
	if s.State != statePlaying || s.StallTotal != time.Second {
		t.Fatalf("state %v stall %v", s.State, s.StallTotal)
	}
	// The end: both streams end; what is buffered plays out, no stall.
	p.end(KindVideo, at(3400))
	p.end(KindAudio, at(3400))
	s = p.snap(at(6000))
	if s.State != stateFinished || s.Stalls != 1 || s.Played != 4*time.Second {
		t.Fatalf("state %v stalls %d played %v", s.State, s.Stalls, s.Played)
	}
}

// TestPlaybackShortEnd: a presentation shorter than the threshold still
// plays once it has ended; a kind that ends early does not hold the other.
func TestPlaybackShortEnd(t *testing.T) {
	t0 := time.Unix(0, 0)
	p := newPlayback([]Kind{KindVideo, KindAudio}, 2*time.Second, t0)
	p.add(KindVideo, time.Second, time.Time{}, t0.Add(10*time.Millisecond))
	p.add(KindAudio, 500*time.Millisecond, time.Time{}, t0.Add(20*time.Millisecond))
	p.end(KindAudio, t0.Add(30*time.Millisecond))
	if s := p.snap(t0.Add(40 * time.Millisecond)); s.State != stateStartup {
		t.Fatalf("started before video ended: %v", s.State)
	}
	p.end(KindVideo, t0.Add(50*time.Millisecond))
	s := p.snap(t0.Add(2 * time.Second))
	if s.State != stateFinished || s.Stalls != 0 || s.Played != time.Second {
		t.Fatalf("state %v stalls %d played %v", s.State, s.Stalls, s.Played)
	}
}

func TestABRChoose(t *testing.T) {
	rs := []*Rendition{{ID: "lo", Bitrate: 300_000}, {ID: "mid", Bitrate: 1_000_000}, {ID: "hi", Bitrate: 3_000_000}}
	now := time.Unix(0, 0)
	in := abrInput{renditions: rs, buffer: 3 * time.Second, bufferTarget: 6 * time.Second, startup: 2 * time.Second, now: now}
	a := newABR(ABRConfig{})
	if r := a.choose(in); r.ID != "lo" {
		t.Errorf("no measurement: %s, want lo", r.ID)
	}
	// 10 Mbit/s measured: hi.
	a.sample(1_250_000, time.Second)
	in.current = rs[0]
	if r := a.choose(in); r.ID != "hi" {
		t.Errorf("10 Mbit/s: %s", r.ID)
	}
	// The cap.
	capped := in
	capped.maxBitrate = 2_000_000
	if r := a.choose(capped); r.ID != "mid" {
		t.Errorf("capped: %s", r.ID)
	}
	// Not enough buffer to go up.
	low := in
	low.buffer = 500 * time.Millisecond
	if r := a.choose(low); r.ID != "lo" {
		t.Errorf("low buffer up-switch: %s", r.ID)
	}
	// One slow download (2 Mbit/s over 4 s) pulls the estimate under hi.
	a.sample(1_000_000, 4*time.Second)
	in.current = rs[2]
	if est := a.estimate(); est > 3_500_000 || est < 2_000_000 {
		t.Errorf("estimate after a slow download %v", est)
	}
	if r := a.choose(in); r.ID != "mid" {
		t.Errorf("after slow download: %s, want mid", r.ID)
	}
	// Fast again, but the up-switch is held for UpHold after a down-switch.
	for range 10 {
		a.sample(1_250_000, 100*time.Millisecond)
	}
	in.current = rs[1]
	in.now = now.Add(time.Second)
	if r := a.choose(in); r.ID != "mid" {
		t.Errorf("within the hold: %s", r.ID)
	}
	in.now = now.Add(6 * time.Second)
	if r := a.choose(in); r.ID != "hi" {
		t.Errorf("after the hold: %s", r.ID)
	}
	// With a full buffer and hi below the raw estimate (3.5 Mbit/s) but
	// above the safe share of it, stay; with less buffer, go down.
	c := newABR(ABRConfig{})
	c.sample(437_500, time.Second)
	full := abrInput{renditions: rs, current: rs[2], buffer: 5 * time.Second, bufferTarget: 6 * time.Second, startup: 2 * time.Second, now: now}
	if r := c.choose(full); r.ID != "hi" {
		t.Errorf("full buffer: %s, want to stay at hi", r.ID)
	}
	full.buffer = 3 * time.Second
	if r := c.choose(full); r.ID != "mid" {
		t.Errorf("half buffer: %s, want mid", r.ID)
	}
	// Small downloads are not sampled.
	b := newABR(ABRConfig{})
	b.sample(100, time.Second)
	if b.estimate() != 0 {
		t.Error("a tiny download was sampled")
	}
}

func TestSummarize(t *testing.T) {
	var reps []Report
	for i, ms := range []int64{100, 300, 200, -1, 400} {
		reps = append(reps, Report{Session: i, StartupMS: ms, OK: ms >= 0, Stalls: 1, Bytes: 10, Fragments: 2,
			HTTPStatus: map[string]int{"200": 2}})
	}
	a := Summarize(reps, time.Second)
	if a.Sessions != 5 || a.SessionsOK != 4 || a.StartupP50MS != 200 || a.StartupP95MS != 400 || a.Stalls != 5 || a.Bytes != 50 || a.HTTPStatus["200"] != 10 {
		t.Errorf("%+v", a)
	}
}

// TestPlaybackLatency: the latency is the wall clock minus the time the
// manifest maps the frame at the playhead to: constant while playing,
// growing during a stall, unknown before playback and without a mapping.
func TestPlaybackLatency(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	p := newPlayback([]Kind{KindVideo, KindAudio}, 2*time.Second, t0)
	wall := t0.Add(-10 * time.Second) // the fragments' first frames, 10 s before t0
	p.add(KindAudio, 2*time.Second, wall, at(0))
	if _, ok := p.latency(at(0)); ok {
		t.Fatal("a latency before playback started")
	}
	p.add(KindVideo, 2*time.Second, wall, at(0))
	for _, c := range []struct {
		ms   int
		want time.Duration
	}{{0, 10 * time.Second}, {1500, 10 * time.Second}, {3000, 11 * time.Second}} { // dry at 2000: stalled
		if got, ok := p.latency(at(c.ms)); !ok || got != c.want {
			t.Errorf("at %d ms: %v %v, want %v", c.ms, got, ok, c.want)
		}
	}
	// Playing again from the next fragments: 11 s behind.
	p.add(KindVideo, 2*time.Second, wall.Add(2*time.Second), at(3000))
	p.add(KindAudio, 2*time.Second, wall.Add(2*time.Second), at(3000))
	if got, _ := p.latency(at(3500)); got != 11*time.Second {
		t.Errorf("after the stall: %v, want 11s", got)
	}
	// Without a mapping for any kind: unknown.
	q := newPlayback([]Kind{KindVideo}, time.Second, t0)
	q.add(KindVideo, 2*time.Second, time.Time{}, at(0))
	if _, ok := q.latency(at(100)); ok {
		t.Error("a latency without a mapping")
	}
	r := latencyReport([]time.Duration{3 * time.Second, 5 * time.Second, 4 * time.Second})
	if r.P50MS != 4000 || r.MaxMS != 5000 || r.LastMS != 4000 || len(r.SamplesMS) != 3 {
		t.Errorf("report %+v", r)
	}
}
