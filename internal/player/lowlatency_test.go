package player

import (
	"bytes"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

func readLL(t *testing.T, name string, edit ...string) *llPlaylist {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "lowlatency", name))
	if err != nil {
		t.Fatal(err)
	}
	if len(edit) == 2 {
		data = []byte(strings.ReplaceAll(string(data), edit[0], edit[1]))
	}
	base, _ := url.Parse("http://o/p.isml/tracks/v/media.m3u8")
	pl, err := parseLLPlaylist(data, base)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return pl
}

func TestParseLLPlaylist(t *testing.T) {
	pl := readLL(t, "full.m3u8")
	if !pl.lowLatency() || !pl.canBlock || pl.partTarget != 500*time.Millisecond ||
		pl.partHoldBack != 1500*time.Millisecond || pl.canSkipUntil != 12*time.Second {
		t.Fatalf("server control: %+v", pl)
	}
	if len(pl.segs) != 11 || pl.segs[0].Seq != 10 {
		t.Fatalf("%d segments from %d, want 11 from 10", len(pl.segs), pl.segs[0].Seq)
	}
	for _, s := range pl.segs[:10] {
		want := 0
		if s.Seq >= 17 {
			want = 4
		}
		if s.Open || len(s.Parts) != want || s.Dur != 2*time.Second {
			t.Errorf("segment %d: open %v, %d parts (want %d), %v", s.Seq, s.Open, len(s.Parts), want, s.Dur)
		}
	}
	open := pl.segs[10]
	if !open.Open || open.Seq != 20 || len(open.Parts) != 2 || open.end() != time.Second {
		t.Errorf("segment in progress: %+v", open)
	}
	if got := open.Parts[0].URL; got != "http://o/p.isml/tracks/v/part-256000.m4s" || !open.Parts[0].Independent {
		t.Errorf("first open part %q", got)
	}
	if pl.hint != "http://o/p.isml/tracks/v/part-268800.m4s" {
		t.Errorf("hint %q", pl.hint)
	}
	t0, _ := time.Parse(time.RFC3339, "2026-12-07T20:00:00Z")
	if !pl.segs[0].Wall.Equal(t0) || !open.Wall.Equal(t0.Add(20*time.Second)) {
		t.Errorf("program date times %v, %v", pl.segs[0].Wall, open.Wall)
	}
	if msn, part := pl.nextReload(); msn != 20 || part != 2 {
		t.Errorf("next reload %d/%d, want 20/2", msn, part)
	}

	// A young stream: the parts before the first EXTINF are left out
	// (hls-m3u8 cannot read them), the rest is read.
	y := readLL(t, "young.m3u8")
	if len(y.segs) != 2 || len(y.segs[0].Parts) != 0 || !y.segs[1].Open || len(y.segs[1].Parts) != 3 {
		t.Fatalf("young playlist: %+v", y.segs)
	}
	if msn, part := y.nextReload(); msn != 1 || part != 3 {
		t.Errorf("young: next reload %d/%d, want 1/3", msn, part)
	}
}

func TestReloadURL(t *testing.T) {
	for _, c := range []struct {
		uri  string
		msn  int64
		part int
		skip bool
		want string
	}{
		{"http://o/m.m3u8", 20, 2, false, "http://o/m.m3u8?_HLS_msn=20&_HLS_part=2"},
		{"http://o/m.m3u8", 21, 0, true, "http://o/m.m3u8?_HLS_msn=21&_HLS_part=0&_HLS_skip=YES"},
		{"http://o/m.m3u8", 7, -1, false, "http://o/m.m3u8?_HLS_msn=7"},
		{"http://o/m.m3u8?token=a&_HLS_msn=3&_HLS_skip=YES", 9, 1, false, "http://o/m.m3u8?token=a&_HLS_msn=9&_HLS_part=1"},
	} {
		got, err := reloadURL(c.uri, c.msn, c.part, c.skip)
		if err != nil || got != c.want {
			t.Errorf("reloadURL(%q, %d, %d, %v) = %q, %v; want %q", c.uri, c.msn, c.part, c.skip, got, err, c.want)
		}
	}
}

func TestMergeDelta(t *testing.T) {
	full := readLL(t, "full.m3u8")
	delta := readLL(t, "delta.m3u8")
	if delta.skipped != 4 || delta.segs[0].Seq != 14 {
		t.Fatalf("delta: %d skipped, first listed %d; want 4, 14", delta.skipped, delta.segs[0].Seq)
	}
	merged, err := mergeDelta(full, delta)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(merged.segs, full.segs) || merged.skipped != 0 || merged.hint != full.hint {
		t.Errorf("merged delta update differs from the whole playlist:\n%+v\n%+v", merged.segs, full.segs)
	}
	if _, err := mergeDelta(readLL(t, "young.m3u8"), delta); !errors.Is(err, errDeltaGap) {
		t.Errorf("merge with a playlist lacking the skipped segments: %v, want errDeltaGap", err)
	}
	if got, err := mergeDelta(nil, full); err != nil || got != full {
		t.Errorf("a whole playlist is not a delta: %v", err)
	}
}

func TestStartPosition(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name     string
		pl       *llPlaylist
		holdBack time.Duration
		want     llPos
		skip     time.Duration
	}{
		// 21 s listed; 1.5 s back is 19.5 s, in segment 19 (18-20 s),
		// whose only independent part is its first.
		{"video", readLL(t, "full.m3u8"), 1500 * ms, llPos{19, 0}, 1500 * ms},
		// Every part independent (audio): the part at 19.5 s.
		{"audio", readLL(t, "full.m3u8", `.m4s"`, `.m4s",INDEPENDENT=YES`), 1500 * ms, llPos{19, 3}, 0},
		{"audio, between parts", readLL(t, "full.m3u8", `.m4s"`, `.m4s",INDEPENDENT=YES`), 1700 * ms, llPos{19, 2}, 300 * ms},
		// In the segment in progress (20-21 s).
		{"open segment", readLL(t, "full.m3u8", `.m4s"`, `.m4s",INDEPENDENT=YES`), 800 * ms, llPos{20, 0}, 200 * ms},
		// Longer than the playlist: its first segment.
		{"short playlist", readLL(t, "young.m3u8"), 10 * time.Second, llPos{0, 0}, 0},
		// No part flagged INDEPENDENT: segment starts only.
		{"no flags", readLL(t, "full.m3u8", ",INDEPENDENT=YES", ""), 800 * ms, llPos{20, 0}, 200 * ms},
	} {
		pos, skip := startPosition(c.pl, c.holdBack)
		if pos != c.want || skip != c.skip {
			t.Errorf("%s: start %+v skip %v, want %+v skip %v", c.name, pos, skip, c.want, c.skip)
		}
	}
}

func TestCatchUpRate(t *testing.T) {
	c := catchUp{target: 1500 * time.Millisecond, min: 0.96, max: 1.04, safety: 500 * time.Millisecond}
	for _, x := range []struct {
		lat, buf time.Duration
		want     float64
	}{
		{1500 * time.Millisecond, time.Second, 1},
		{1530 * time.Millisecond, time.Second, 1},    // dead band
		{1700 * time.Millisecond, time.Second, 1.02}, // 0.2 s behind
		{3 * time.Second, time.Second, 1.04},         // clamped
		{1300 * time.Millisecond, time.Second, 0.98}, // ahead: slower
		{500 * time.Millisecond, time.Second, 0.96},
		{3 * time.Second, 300 * time.Millisecond, 1}, // behind, but the buffer is low
	} {
		if got := c.rate(x.lat, x.buf); got < x.want-1e-9 || got > x.want+1e-9 {
			t.Errorf("rate(%v, %v) = %v, want %v", x.lat, x.buf, got, x.want)
		}
	}
}

// TestPlaybackRate: at rate r the buffer drains r seconds of media per
// second and the latency falls by r-1 per second.
func TestPlaybackRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := newPlayback([]Kind{KindVideo}, time.Second, t0)
	wall := t0.Add(-3 * time.Second)
	p.add(KindVideo, 2*time.Second, wall, t0) // media of [-3 s, -1 s]: latency 3 s
	if lat, _ := p.latency(t0); lat != 3*time.Second {
		t.Fatalf("latency %v, want 3s", lat)
	}
	p.setRate(1.25, t0)
	now := t0.Add(time.Second)
	sn := p.snap(now)
	if sn.Level[KindVideo] != 750*time.Millisecond || sn.Played != 1250*time.Millisecond {
		t.Errorf("after 1 s at 1.25: level %v played %v, want 750ms 1.25s", sn.Level[KindVideo], sn.Played)
	}
	if lat, _ := p.latency(now); lat != 2750*time.Millisecond {
		t.Errorf("latency %v, want 2.75s", lat)
	}
	// The buffer runs dry after 0.6 s more (0.75 s of media at 1.25).
	sn = p.snap(now.Add(time.Second))
	if sn.Stalls != 1 || sn.StallTotal != 400*time.Millisecond {
		t.Errorf("stalls %d for %v, want 1 for 400ms", sn.Stalls, sn.StallTotal)
	}
}

// cmafChunk encodes one moof+mdat of n samples of dur ticks.
func cmafChunk(t *testing.T, seq uint32, decode uint64, n int, dur uint32) []byte {
	t.Helper()
	f, err := mp4.CreateFragment(seq, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		f.AddFullSample(mp4.FullSample{
			Sample:     mp4.Sample{Flags: mp4.SyncSampleFlags, Dur: dur, Size: 4},
			DecodeTime: decode + uint64(i)*uint64(dur), Data: []byte{0, 0, 0, 1},
		})
	}
	var b bytes.Buffer
	if err := f.Encode(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestReadChunks: a body read as it arrives hands each chunk over the
// moment its mdat is complete (before the next one is even sent), timed
// by the init segment's timescale.
func TestReadChunks(t *testing.T) {
	init := mp4.CreateEmptyInit()
	init.AddEmptyTrack(12800, "video", "und")
	var ib bytes.Buffer
	if err := init.Encode(&ib); err != nil {
		t.Fatal(err)
	}
	tt, err := parseTrackTiming(ib.Bytes())
	if err != nil || tt.timescale != 12800 {
		t.Fatalf("track timing %+v, %v", tt, err)
	}
	c1 := cmafChunk(t, 1, 0, 13, 512)    // 13 × 40 ms = 520 ms
	c2 := cmafChunk(t, 2, 6656, 12, 512) // 480 ms
	pr, pw := io.Pipe()
	got := make(chan time.Duration, 2)
	go func() {
		_, _ = pw.Write(c1)
		select { // the first chunk must be handed over before the second is sent
		case <-got:
		case <-time.After(5 * time.Second):
			t.Error("the first chunk was not handed over before the second was sent")
		}
		_, _ = pw.Write(c2)
		pw.Close()
	}()
	var durs []time.Duration
	data, err := readChunks(pr, 1<<20, func(chunk []byte, _ time.Duration) {
		d, err := tt.chunkDuration(chunk)
		if err != nil {
			t.Error(err)
		}
		durs = append(durs, d)
		if len(durs) == 1 {
			got <- d
		}
	})
	if err != nil || !bytes.Equal(data, append(append([]byte{}, c1...), c2...)) {
		t.Fatalf("readChunks: %v, %d bytes", err, len(data))
	}
	if !reflect.DeepEqual(durs, []time.Duration{520 * time.Millisecond, 480 * time.Millisecond}) {
		t.Errorf("chunk durations %v", durs)
	}
	if err := checkFragment(data); err != nil {
		t.Errorf("two chunks are one CMAF fragment: %v", err)
	}
}
