package manifest

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"

	"github.com/sluice-media/sluice/internal/store"
)

// firstPDT returns the first EXT-X-PROGRAM-DATE-TIME of a media playlist.
func firstPDT(t *testing.T, v store.View, id string, o Options) time.Time {
	t.Helper()
	b, err := HLSMedia(v, id, o)
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if s, ok := strings.CutPrefix(l, "#EXT-X-PROGRAM-DATE-TIME:"); ok {
			tm, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				t.Fatal(err)
			}
			return tm
		}
	}
	t.Fatalf("%s: no program date time:\n%s", id, b)
	return time.Time{}
}

// TestProgramDateTimesAgree: the HLS playlists of one presentation state
// the same program date time for the same media time, and — since the first
// audio fragment is listed from the video's start — the same one on their
// first segments: in the finished recording, while it is live, and after the
// DVR window has cut the video's first fragment but not yet the audio's
// (the presentation start comes from the track extents, so it does not
// move). Audio that began well before the video (more than half a second)
// is listed from its own start.
func TestProgramDateTimesAgree(t *testing.T) {
	live := func() store.View {
		v := primedView()
		v.Ended = false
		for i := range v.Tracks {
			v.Tracks[i].Ended = false
		}
		return v
	}
	slid := func() store.View {
		v := live()
		v.Tracks[0].First, v.Tracks[0].Frags = 1, v.Tracks[0].Frags[1:]
		return v
	}
	early := func() store.View {
		v := primedView()
		vt, a := &v.Tracks[0], &v.Tracks[1]
		vt.Frags = frags(nil, 5*mss, 250000, repeat(2*mss, 5)...)
		a.Frags = frags(nil, 2*mss, 32000, repeat(2*mss, 6)...)
		*vt, *a = extentOf(*vt), extentOf(*a)
		return v
	}
	o := Options{Now: anchor.Add(time.Minute)}
	for _, c := range []struct {
		name string
		v    store.View
		same bool
	}{
		{"finished", primedView(), true},
		{"live", live(), true},
		{"video's first fragment cut by the window", slid(), false},
		{"audio three seconds early", early(), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := list(c.v, o)
			for _, tr := range l.v.Tracks {
				want := anchor.Add(toDuration(tr.Frags[0].Start, tr.Info.Timescale)).Round(time.Millisecond)
				if got := firstPDT(t, c.v, tr.ID, o); !got.Equal(want) {
					t.Errorf("%s: first program date time %v, want anchor + listed start %v", tr.ID, got, want)
				}
			}
			a, _ := l.v.Track("audio_128000")
			if c.name == "audio three seconds early" {
				if a.Frags[0].Start != c.v.Tracks[1].Frags[0].Start {
					t.Errorf("early audio listed from %d, want its own start", a.Frags[0].Start)
				}
				return
			}
			if a.Frags[0].Start != 800000 || a.Frags[0].Duration != 20000000-800000 {
				t.Errorf("audio listed from %+v, want [800000, 20000000)", a.Frags[0])
			}
			if c.same {
				if va, vv := firstPDT(t, c.v, "audio_128000", o), firstPDT(t, c.v, "video_800000", o); !va.Equal(vv) {
					t.Errorf("first program date times differ: audio %v, video %v", va, vv)
				}
			}
		})
	}
}

// TestTargetDurationNeverChanges: EXT-X-TARGETDURATION comes from the
// track's extent, so it stays as the DVR window slides over fragments of
// other durations; a fragment longer than it (rounded to the nearest
// second) raises it once, for good.
func TestTargetDurationNeverChanges(t *testing.T) {
	tr := with(videoTrack("v", 1000000, 640, 360, mss), 100, frags(nil, 200*mss, 1000, repeat(mss, 4)...))
	tr.Extent = store.Extent{First: 0, FirstDuration: 2 * mss, MaxDuration: 2 * mss}
	target := func(tv store.TrackView) string {
		v := store.View{Meta: store.PointMeta{Anchor: anchor}, Tracks: []store.TrackView{tv}}
		b, err := HLSMedia(v, tv.ID, Options{Now: anchor})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if s, ok := strings.CutPrefix(l, "#EXT-X-TARGETDURATION:"); ok {
				return s
			}
		}
		return ""
	}
	if got := target(tr); got != "2" {
		t.Errorf("window of 1 s fragments in a 2 s track: target %s, want 2", got)
	}
	tr.Frags = frags(nil, 200*mss, 1000, 20_400_000, 20_400_000) // 2.04 s: rounds to 2
	if got := target(tr); got != "2" {
		t.Errorf("2.04 s fragments: target %s, want 2", got)
	}
	tr.Extent.MaxDuration = 34_000_000 // a 3.4 s fragment, long gone
	if got := target(tr); got != "4" {
		t.Errorf("after a 3.4 s fragment: target %s, want 4", got)
	}
	tr.Extent = store.Extent{}
	tr.Frags = frags(nil, 200*mss, 1000, 15_000_000, 25_000_000)
	if got := target(tr); got != "3" {
		t.Errorf("no extent: target %s, want the longest listed rounded up, 3", got)
	}
}

// TestOverlapsClipped: a fragment that starts before the previous one ends
// (a misaligned redundant encoder) cuts the previous one's listed duration:
// every timeline stays strictly increasing and free of overlaps, HLS marks
// the discontinuity and its program date time does not go back.
func TestOverlapsClipped(t *testing.T) {
	fs := frags(nil, 0, 1000, 2*mss, 2*mss)
	fs = frags(fs, 3*mss, 1000, 2*mss, 2*mss) // starts 1 s into the second
	tr := with(videoTrack("v", 1000000, 640, 360, mss), 0, fs)
	v := store.View{Meta: store.PointMeta{Anchor: anchor}, Tracks: []store.TrackView{tr}}
	o := Options{Now: anchor.Add(10 * time.Second)}
	b, err := DASH(v, o)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mpd.ReadFromString(string(b))
	if err != nil {
		t.Fatal(err)
	}
	var end uint64
	var ts []uint64
	for _, s := range m.Periods[0].AdaptationSets[0].SegmentTemplate.SegmentTimeline.S {
		tm := end
		if s.T != nil {
			if *s.T < end {
				t.Errorf("S@t %d before the previous end %d", *s.T, end)
			}
			tm = *s.T
		}
		for range s.R + 1 {
			ts = append(ts, tm)
			tm += s.D
		}
		end = tm
	}
	if want := []uint64{0, 2 * mss, 3 * mss, 5 * mss}; len(ts) != len(want) || ts[2] != want[2] || ts[3] != want[3] {
		t.Errorf("timeline %v, want %v", ts, want)
	}
	h, err := HLSMedia(v, "v", o)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(h, []byte("#EXTINF:1.000,\n20000000.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-11-22T10:00:03.000Z\n")) {
		t.Errorf("HLS: want the overlapped fragment cut to 1 s, then a discontinuity at 3 s:\n%s", h)
	}
}

// TestTrimmedLookup: manifest.Trimmed names the stored fragment behind a
// cut listing, and nothing else.
func TestTrimmedLookup(t *testing.T) {
	v := primedView()
	ref, ok := Trimmed(v, "audio_128000", 800000)
	if !ok || ref.Start != 586667 {
		t.Errorf("Trimmed(800000) = %+v %v, want the stored fragment at 586667", ref, ok)
	}
	for _, c := range []struct {
		id string
		t  int64
	}{{"audio_128000", 586667}, {"audio_128000", 20000000}, {"video_800000", 800000}, {"audio_128000", 700000}, {"nope", 800000}} {
		if ref, ok := Trimmed(v, c.id, c.t); ok {
			t.Errorf("Trimmed(%s, %d) = %+v, want none", c.id, c.t, ref)
		}
	}
}

// TestNoCutsThroughURLs: a caller whose URLs name stored fragments (the
// scheduler's senders) cannot serve a cut copy, so nothing is listed cut:
// the audio is listed from its stored start and a fragment straddling zero
// is left out, as before.
func TestNoCutsThroughURLs(t *testing.T) {
	o := Options{Now: anchor.Add(time.Minute), URLs: testURLs()}
	a, _ := list(primedView(), o).v.Track("audio_128000")
	if a.Frags[0].Start != 586667 {
		t.Errorf("primed audio listed from %d, want its stored start", a.Frags[0].Start)
	}
	n, _ := list(negativeView(), o).v.Track("audio_128000")
	if n.Frags[0].Start != 20000000 || n.First != 1 {
		t.Errorf("negative audio listed from %d (sequence %d), want 20000000 (1)", n.Frags[0].Start, n.First)
	}
}

// TestNoCutsThroughStoredURLs: URLs without Segment that still name stored
// fragments (Stored: DASH BaseURLs and the relative playlists of the
// pathways, which the senders answer) list nothing cut either, exactly as
// the direct pathway's Segment URLs: every pathway lists the same fragments
// at the same times, and a sender has a block for each.
func TestNoCutsThroughStoredURLs(t *testing.T) {
	for name, u := range map[string]*URLs{
		"relative": {Stored: true},
		"baseurls": {Stored: true, BaseURLs: []BaseURL{{URL: "http://a/", ServiceLocation: "pa"}, {URL: "http://b/", ServiceLocation: "pb"}}},
	} {
		o := Options{Now: anchor.Add(time.Minute), URLs: u}
		a, _ := list(primedView(), o).v.Track("audio_128000")
		if a.Frags[0].Start != 586667 {
			t.Errorf("%s: primed audio listed from %d, want its stored start", name, a.Frags[0].Start)
		}
		n, _ := list(negativeView(), o).v.Track("audio_128000")
		if n.Frags[0].Start != 20000000 || n.First != 1 {
			t.Errorf("%s: negative audio listed from %d (sequence %d), want 20000000 (1)", name, n.Frags[0].Start, n.First)
		}
	}
	// Without Stored, relative URLs are the origin's, which serves cuts.
	a, _ := list(primedView(), Options{Now: anchor.Add(time.Minute), URLs: &URLs{}}).v.Track("audio_128000")
	if a.Frags[0].Start == 586667 {
		t.Error("relative URLs of the origin: the primed audio is not cut to the presentation start")
	}
}

// TestUnrenderableLeftOut: a View that holds a fragment with an absurd time
// (one from an older origin's view.json, say: the store refuses them) lists
// the others and never the absurd one — no S@t of 9151314442897061205, no
// program date time in 1798.
func TestUnrenderableLeftOut(t *testing.T) {
	v := liveView()
	a := &v.Tracks[0]
	a.Frags = append(a.Frags,
		store.FragRef{Start: 9151314442897061205, Duration: 2 * mss, Size: 1000, Key: true},
		store.FragRef{Start: math.MaxInt64 - 10, Duration: 2 * mss, Size: 1000, Key: true})
	o := Options{Now: anchor.Add(1020 * time.Second), DVRWindow: time.Minute, LookAhead: 2}
	for name, render := range map[string]func(store.View, Options) ([]byte, error){
		"dash": DASH, "smooth": Smooth,
		"hls": func(v store.View, o Options) ([]byte, error) { return HLSMedia(v, a.ID, o) },
	} {
		b, err := render(v, o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, bad := range []string{"9151314442897061205", "9223372036854775797", "1798-"} {
			if bytes.Contains(b, []byte(bad)) {
				t.Errorf("%s lists %s:\n%s", name, bad, b)
			}
		}
		if !bytes.Contains(b, []byte("1014")) && name == "hls" {
			t.Errorf("%s lost the real fragments:\n%s", name, b)
		}
	}
}
