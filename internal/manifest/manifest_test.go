package manifest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/hls-m3u8/m3u8"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var anchor = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

const mss = 10_000_000 // Smooth timescale

func videoTrack(id string, bitrate, w, h int, ts uint32) store.TrackView {
	return store.TrackView{ID: id, Stream: "s1", Info: media.TrackInfo{
		TrackID: 1, Kind: "video", Timescale: ts, SampleEntry: "avc1", Codec: "avc1.64001F", FourCC: "H264",
		CodecPrivateData: "000000016764001FACD9", Bitrate: bitrate, Width: w, Height: h, Name: "video",
	}}
}

func audioTrack(id string, bitrate int, ts uint32, lang string) store.TrackView {
	return store.TrackView{ID: id, Stream: "s1", Info: media.TrackInfo{
		TrackID: 2, Kind: "audio", Timescale: ts, SampleEntry: "mp4a", Codec: "mp4a.40.2", FourCC: "AACL",
		CodecPrivateData: "1190", Bitrate: bitrate, SampleRate: 48000, Channels: 2, BitsPerSample: 16,
		Language: lang, Name: "audio",
	}}
}

// frags appends fragments of the given durations, contiguous from start.
func frags(fs []store.FragRef, start int64, size int64, durs ...uint64) []store.FragRef {
	for _, d := range durs {
		fs = append(fs, store.FragRef{Start: start, Duration: d, Size: size, Key: true})
		start += int64(d)
	}
	return fs
}

func repeat(d uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func with(t store.TrackView, first int64, fs []store.FragRef) store.TrackView {
	t.First, t.Frags = first, fs
	return t
}

// liveView: two video tracks and one audio track, 1000 s into a channel,
// with 500 fragments pruned before the window.
func liveView() store.View {
	v1 := with(videoTrack("video_3000000", 3000000, 1280, 720, mss), 500,
		frags(nil, 1000*mss, 750000, repeat(2*mss, 8)...))
	v2 := with(videoTrack("video_1500000", 1500000, 854, 480, mss), 500,
		frags(nil, 1000*mss, 375000, repeat(2*mss, 8)...))
	a := with(audioTrack("audio_128000", 128000, mss, ""), 500,
		frags(nil, 1000*mss, 32000, 20053333, 20053333, 19893334, 20053333, 20053333, 19893334, 20053333, 20053333))
	return store.View{Name: "live", Meta: store.PointMeta{Anchor: anchor}, Tracks: []store.TrackView{v1, v2, a}}
}

// endedView: liveView after every track ended (live-to-VOD).
func endedView() store.View {
	v := liveView()
	for i := range v.Tracks {
		v.Tracks[i].Ended = true
	}
	v.Ended = true
	return v
}

// negativeView: the start of an ffmpeg ismv push whose first audio
// fragment has a negative (priming) start time.
func negativeView() store.View {
	vt := with(videoTrack("video_1000000", 1000000, 640, 360, mss), 0,
		frags(nil, 0, 250000, repeat(2*mss, 5)...))
	a := with(audioTrack("audio_128000", 128000, mss, "eng"), 0,
		frags(nil, -213333, 32000, 20213333, 20053333, 19946667, 20053333, 19946667))
	return store.View{Name: "neg", Meta: store.PointMeta{Anchor: anchor}, Tracks: []store.TrackView{vt, a}}
}

// vodView: an imported CMAF asset (90 kHz video, 48 kHz audio whose
// fragments are whole AAC frames, a TTML text track).
func vodView() store.View {
	v1 := with(videoTrack("video_2000000", 2000000, 1920, 1080, 90000), 0,
		frags(nil, 0, 500000, 180000, 180000, 180000, 180000, 180000, 90000))
	v2 := with(videoTrack("video_800000", 800000, 960, 540, 90000), 0,
		frags(nil, 0, 200000, 180000, 180000, 180000, 180000, 180000, 90000))
	a := with(audioTrack("audio_eng_96000", 96000, 48000, "eng"), 0,
		frags(nil, 0, 24000, 96256, 96256, 95232, 96256, 96256, 95232, 49152))
	txt := store.TrackView{ID: "subtitles_eng_1000", Stream: "s1", First: 0, Info: media.TrackInfo{
		TrackID: 3, Kind: "text", Timescale: 1000, SampleEntry: "stpp", Codec: "stpp", Bitrate: 1000,
		Language: "eng", Name: "subtitles",
	}, Frags: frags(nil, 0, 800, repeat(2000, 5)...)}
	for _, t := range []*store.TrackView{&v1, &v2, &a, &txt} {
		t.Ended = true
	}
	return store.View{Name: "vod", Meta: store.PointMeta{Anchor: anchor, VOD: true, Created: anchor},
		Tracks: []store.TrackView{v1, v2, a, txt}, Ended: true}
}

// subsView: liveView with two live text tracks as DASH-IF and Smooth
// ingest send them: English WebVTT subtitles in 6 s fragments (sparse:
// the last one ended 4 s behind the video, one fragment missing) and a
// French IMSC1 caption track in the video's 2 s fragments.
func subsView() store.View {
	v := liveView()
	v.Name = "subs"
	en := with(store.TrackView{ID: "text_en", Stream: "s1", Info: media.TrackInfo{
		TrackID: 3, Kind: "text", Timescale: 1000, SampleEntry: "wvtt", Codec: "wvtt", FourCC: "WVTT",
		Language: "en", Role: "subtitle", Name: "text",
	}}, 166, frags(frags(nil, 1000_000, 300, 6000), 1012_000, 200, 6000))
	fr := with(store.TrackView{ID: "text_fr", Stream: "s1", Info: media.TrackInfo{
		TrackID: 4, Kind: "text", Timescale: 1000, SampleEntry: "stpp", Codec: "stpp.ttml.im1t", FourCC: "TTML",
		Language: "fr", Role: "caption", Name: "textfr",
	}}, 500, frags(nil, 1000_000, 900, repeat(2000, 8)...))
	v.Tracks = append(v.Tracks, en, fr)
	return v
}

// TestTextTrackHoldsNothingBack: a lagging text track with long
// fragments changes neither the MPD's update period, presentation delay,
// publish time nor minBufferTime, nor the video's HLS playlists.
func TestTextTrackHoldsNothingBack(t *testing.T) {
	o := Options{Now: anchor.Add(1016*time.Second + 500*time.Millisecond), DVRWindow: time.Minute, LookAhead: 2}
	attrs := func(v store.View) string {
		b, err := DASH(v, o)
		if err != nil {
			t.Fatal(err)
		}
		m, err := mpd.ReadFromString(string(b))
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(*m.MinimumUpdatePeriod, *m.SuggestedPresentationDelay, m.PublishTime, *m.MinBufferTime)
	}
	if a, b := attrs(liveView()), attrs(subsView()); a != b {
		t.Errorf("MPD timing with text tracks %s, without %s", b, a)
	}
	for _, id := range []string{"video_3000000", "audio_128000"} {
		a, _ := HLSMedia(liveView(), id, o)
		b, _ := HLSMedia(subsView(), id, o)
		if !bytes.Equal(a, b) {
			t.Errorf("%s playlist changed by the text tracks:\n%s\n%s", id, a, b)
		}
	}
}

// gapView: a live channel whose top video rendition and audio lost a
// fragment each (encoder hiccup); the other rendition did not.
func gapView() store.View {
	fs := frags(nil, 100*mss, 750000, repeat(2*mss, 3)...)
	fs = frags(fs, 108*mss, 750000, repeat(2*mss, 4)...) // 106 s missing
	v1 := with(videoTrack("video_3000000", 3000000, 1280, 720, mss), 50, fs)
	v2 := with(videoTrack("video_1500000", 1500000, 854, 480, mss), 50,
		frags(nil, 100*mss, 375000, repeat(2*mss, 8)...))
	as := frags(nil, 100*mss, 32000, repeat(2*mss, 2)...)
	as = frags(as, 106*mss, 32000, repeat(2*mss, 5)...)
	a := with(audioTrack("audio_128000", 128000, mss, ""), 50, as)
	return store.View{Name: "gap", Meta: store.PointMeta{Anchor: anchor}, Tracks: []store.TrackView{v1, v2, a}}
}

// slidView: gapView later, once the DVR window left behind the gaps of the
// top rendition (two of them) and of audio (one; a second one is still in
// the window): the playlists carry EXT-X-DISCONTINUITY-SEQUENCE.
func slidView() store.View {
	v := gapView()
	v.Name = "slid"
	v.Tracks[0].First, v.Tracks[0].Disc = 57, 2
	v.Tracks[0].Frags = v.Tracks[0].Frags[3:]
	v.Tracks[2].First, v.Tracks[2].Disc = 51, 1
	v.Tracks[2].Frags = frags(v.Tracks[2].Frags[2:], 118*mss, 32000, repeat(2*mss, 2)...)
	return v
}

// audioOnlyView: a live radio channel in two languages, one of which ended.
func audioOnlyView() store.View {
	en := with(audioTrack("audio_eng_128000", 128000, 48000, "eng"), 7,
		frags(nil, 48000*20, 30000, repeat(96000, 6)...))
	fr := with(audioTrack("audio_fra_64000", 64000, 48000, "fra"), 7,
		frags(nil, 48000*20, 15000, repeat(96000, 4)...))
	fr.Ended = true
	return store.View{Name: "radio", Meta: store.PointMeta{Anchor: anchor}, Tracks: []store.TrackView{en, fr}}
}

// extentOf gives a track the extent its fragments make (as if none was
// ever pruned).
func extentOf(t store.TrackView) store.TrackView {
	for i, f := range t.Frags {
		if i == 0 {
			t.Extent = store.Extent{First: f.Start, FirstDuration: f.Duration}
		}
		t.Extent.MaxDuration = max(t.Extent.MaxDuration, f.Duration)
	}
	return t
}

// primedView: a finished ffmpeg ismv push made with -avoid_negative_ts
// make_non_negative: the video starts 80 ms in, the audio 21.33 ms before
// it (1024 samples of AAC priming at 48 kHz). The manifests list the first
// audio fragment from the video's start, so that both HLS playlists begin
// at the same program date time.
func primedView() store.View {
	vt := extentOf(with(videoTrack("video_800000", 800000, 640, 360, mss), 0,
		frags(nil, 800000, 250000, repeat(2*mss, 5)...)))
	a := extentOf(with(audioTrack("audio_128000", 128000, mss, ""), 0,
		frags(nil, 586667, 32000, 19413333, 20053333, 20053334, 20053333, 20640000)))
	vt.Ended, a.Ended = true, true
	return store.View{Name: "primed", Meta: store.PointMeta{Anchor: anchor}, Tracks: []store.TrackView{vt, a}, Ended: true}
}

// restartView: a live channel whose encoder was killed 30 s in and
// restarted with times from zero, placed after what was stored: video
// goes on without a gap at 30.08 s, audio (which ended 69 ms earlier) with a
// gap of 48 ms. Every track marks the boundary (Breaks), the MPD starts a
// Period at the restarted session's first fragment (audio, 30.0587 s).
func restartView() store.View {
	const vEnd, aEnd, aNew = 300800000, 300106667, 300586667
	v1 := with(videoTrack("video_800000", 800000, 640, 360, mss), 0,
		frags(frags(nil, 800000, 210000, repeat(2*mss, 15)...), vEnd, 210000, repeat(2*mss, 3)...))
	v2 := with(videoTrack("video_300000", 300000, 320, 180, mss), 0,
		frags(frags(nil, 800000, 80000, repeat(2*mss, 15)...), vEnd, 80000, repeat(2*mss, 3)...))
	as := frags(nil, 586667, 32000, append(append([]uint64{19413333}, repeat(20053333, 13)...), 19413338)...)
	as = frags(as, aNew, 32000, 19413333, 20053333, 20053334)
	a := with(audioTrack("audio_128000", 128000, mss, ""), 0, as)
	ends := map[string]int64{"video_800000": vEnd, "video_300000": vEnd, "audio_128000": aEnd}
	if as[14].End() != aEnd {
		panic("restartView: audio does not end at aEnd")
	}
	for _, t := range []*store.TrackView{&v1, &v2, &a} {
		t.Breaks = []int64{ends[t.ID]}
	}
	r := store.Restart{Stream: "live", OffsetNs: 30 * int64(time.Second), StartNs: aNew * 100,
		PushStart: anchor.Add(33 * time.Second), Ends: ends}
	return store.View{Name: "restart", Meta: store.PointMeta{Anchor: anchor, Restarts: []store.Restart{r}},
		Tracks: []store.TrackView{v1, v2, a}}
}

// restartEndedView: restartView once the restarted session ended (static).
func restartEndedView() store.View {
	v := restartView()
	for i := range v.Tracks {
		v.Tracks[i].Ended = true
	}
	v.Ended = true
	return v
}

type testCase struct {
	name string
	view store.View
	opts Options
}

// partsOf cuts fragment f into n equal parts (the first one key).
func partsOf(f store.FragRef, n int) []store.PartRef {
	d := f.Duration / uint64(n)
	ps := make([]store.PartRef, n)
	for i := range ps {
		ps[i] = store.PartRef{Start: f.Start + int64(i)*int64(d), Duration: d, Key: i == 0, Size: 1000}
	}
	ps[n-1].Duration = f.Duration - uint64(n-1)*d
	return ps
}

// lowLatencyView: liveView from a chunked push: the video tracks keep the
// parts (0.5 s) of their last two fragments and of one still open (two
// parts so far); the audio track has none.
func lowLatencyView() store.View {
	v := liveView()
	for i := range v.Tracks[:2] {
		t := &v.Tracks[i]
		fs := t.Frags
		for _, f := range fs[len(fs)-2:] {
			t.Parts = append(t.Parts, store.PartFrag{Start: f.Start, Parts: partsOf(f, 4), Complete: true})
		}
		open := store.FragRef{Start: fs[len(fs)-1].End(), Duration: 2 * mss}
		t.Parts = append(t.Parts, store.PartFrag{Start: open.Start, Parts: partsOf(open, 4)[:2]})
		t.PartTarget = mss / 2
	}
	return v
}

func cases() []testCase {
	now := anchor.Add(1016*time.Second + 500*time.Millisecond)
	return []testCase{
		{"live", liveView(), Options{Now: now, DVRWindow: time.Minute, LookAhead: 2}},
		{"ended", endedView(), Options{Now: now, DVRWindow: time.Minute, LookAhead: 2}},
		{"negative", negativeView(), Options{Now: anchor.Add(10 * time.Second), DVRWindow: time.Minute, LookAhead: 2}},
		{"vod", vodView(), Options{Now: now}},
		{"subs", subsView(), Options{Now: now, DVRWindow: time.Minute, LookAhead: 2}},
		{"gap", gapView(), Options{Now: anchor.Add(116 * time.Second), DVRWindow: 30 * time.Second, LookAhead: 1}},
		{"slid", slidView(), Options{Now: anchor.Add(122 * time.Second), DVRWindow: 30 * time.Second, LookAhead: 1}},
		{"audioonly", audioOnlyView(), Options{Now: anchor.Add(33 * time.Second), LookAhead: 2}},
		{"primed", primedView(), Options{Now: anchor.Add(20 * time.Second)}},
		{"restart", restartView(), Options{Now: anchor.Add(40 * time.Second), LookAhead: 2}},
		{"restart-ended", restartEndedView(), Options{Now: anchor.Add(40 * time.Second), LookAhead: 2}},
		{"codecs", codecsView(), Options{Now: anchor.Add(20 * time.Second)}},
		{"lowlatency", lowLatencyView(), Options{Now: now, DVRWindow: time.Minute, LookAhead: 2}},
		{"events", eventsView(), Options{Now: now, DVRWindow: time.Minute, LookAhead: 2}},
		{"captions", captionsView(), Options{Now: now}},
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file (go test -update rewrites it)\n--- got ---\n%s", path, got)
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Smooth(tc.view, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name+".ismc", b)
			checkSmooth(t, tc.view, tc.opts, b)

			b, err = DASH(tc.view, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name+".mpd", b)
			checkDASH(t, tc.view, b)

			b, err = HLSMaster(tc.view, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name+".master.m3u8", b)
			checkHLSMaster(t, tc.view, b)

			for _, tr := range tc.view.Tracks {
				b, err := HLSMedia(tc.view, tr.ID, tc.opts)
				if err != nil {
					t.Fatal(err)
				}
				golden(t, tc.name+"."+tr.ID+".m3u8", b)
				checkHLSMedia(t, tc.view, tr, b)
			}

			// Deterministic: the same inputs give the same bytes.
			again, _ := DASH(tc.view, tc.opts)
			if want, _ := DASH(tc.view, tc.opts); !bytes.Equal(again, want) {
				t.Error("DASH output is not deterministic")
			}
		})
	}
}

// Smooth manifest as a client reads it.
type parsedSmooth struct {
	MajorVersion    int    `xml:"MajorVersion,attr"`
	MinorVersion    int    `xml:"MinorVersion,attr"`
	Duration        uint64 `xml:"Duration,attr"`
	IsLive          string `xml:"IsLive,attr"`
	LookAhead       *int   `xml:"LookAheadFragmentCount,attr"`
	DVRWindowLength uint64 `xml:"DVRWindowLength,attr"`
	Streams         []struct {
		Type      string `xml:"Type,attr"`
		Name      string `xml:"Name,attr"`
		Chunks    int    `xml:"Chunks,attr"`
		Url       string `xml:"Url,attr"`
		TimeScale uint32 `xml:"TimeScale,attr"`
		Levels    []struct {
			Index   int `xml:"Index,attr"`
			Bitrate int `xml:"Bitrate,attr"`
		} `xml:"QualityLevel"`
		C []struct {
			T *uint64 `xml:"t,attr"`
			D uint64  `xml:"d,attr"`
			R int     `xml:"r,attr"`
		} `xml:"c"`
	} `xml:"StreamIndex"`
}

// checkSmooth re-parses a Smooth manifest with encoding/xml and checks its
// timeline the way dash.js expands it (r is a total count).
func checkSmooth(t *testing.T, v store.View, o Options, b []byte) {
	t.Helper()
	var m parsedSmooth
	if err := xml.Unmarshal(b, &m); err != nil {
		t.Fatalf("smooth: %v", err)
	}
	if m.MajorVersion != 2 || m.MinorVersion != 2 {
		t.Errorf("smooth: version %d.%d", m.MajorVersion, m.MinorVersion)
	}
	live := Live(v)
	if live != (m.IsLive == "TRUE") || (live && (m.Duration != 0 || m.DVRWindowLength == 0 || m.LookAhead == nil)) ||
		(!live && m.Duration == 0) {
		t.Errorf("smooth: live %v but IsLive=%q Duration=%d DVRWindowLength=%d", live, m.IsLive, m.Duration, m.DVRWindowLength)
	}
	for _, s := range m.Streams {
		if !strings.Contains(s.Url, "{bitrate}") || !strings.Contains(s.Url, "("+s.Name+"={start time})") {
			t.Errorf("smooth: Url %q", s.Url)
		}
		if len(s.C) == 0 || s.C[0].T == nil {
			t.Fatalf("smooth %s: first c without t", s.Name)
		}
		// Expand the timeline.
		var starts []int64
		var tm uint64
		for _, c := range s.C {
			if c.T != nil {
				tm = *c.T
			}
			if c.D == 0 {
				t.Errorf("smooth %s: c without d", s.Name)
			}
			for range max(c.R, 1) {
				starts = append(starts, int64(tm))
				tm += c.D
			}
		}
		if len(starts) != s.Chunks {
			t.Errorf("smooth %s: Chunks=%d but %d fragments", s.Name, s.Chunks, len(starts))
		}
		// It is the listable timeline of the first track of the group,
		// minus the look-ahead while live.
		var ref store.TrackView
		for _, tr := range v.Tracks {
			if tr.Info.Name == s.Name && SmoothBitrate(tr) == s.Levels[0].Bitrate {
				ref = tr
				break
			}
		}
		fs := listedTrack(v, ref.ID).Frags
		if live && !ref.Ended {
			fs = fs[:len(fs)-o.LookAhead]
		}
		if len(fs) != len(starts) {
			t.Fatalf("smooth %s: %d fragments listed, want %d", s.Name, len(starts), len(fs))
		}
		for i := range fs {
			if fs[i].Start != starts[i] {
				t.Errorf("smooth %s: fragment %d at %d, want %d", s.Name, i, starts[i], fs[i].Start)
			}
		}
	}
}

// checkDASH re-parses an MPD with dash-mpd and checks every
// representation's timeline against the track.
func checkDASH(t *testing.T, v store.View, b []byte) {
	t.Helper()
	m, err := mpd.ReadFromString(string(b))
	if err != nil {
		t.Fatalf("dash: %v", err)
	}
	wantType := "static"
	if Live(v) {
		wantType = "dynamic"
		if m.AvailabilityStartTime == "" || m.MinimumUpdatePeriod == nil || m.TimeShiftBufferDepth == nil ||
			len(m.UTCTimings) != 1 || m.UTCTimings[0].SchemeIdUri != utcTimingDirect {
			t.Error("dash: dynamic MPD lacks availabilityStartTime, minimumUpdatePeriod, timeShiftBufferDepth or UTCTiming")
		}
	} else if m.MediaPresentationDuration == nil || m.MinimumUpdatePeriod != nil {
		t.Error("dash: static MPD needs mediaPresentationDuration and no minimumUpdatePeriod")
	}
	if m.GetType() != wantType {
		t.Errorf("dash: type %s, want %s", m.GetType(), wantType)
	}
	if len(m.Periods) == 0 || m.Periods[0].Start == nil {
		t.Fatal("dash: no Period, or one without start")
	}
	if len(v.Meta.Restarts) == 0 && (len(m.Periods) != 1 || m.Periods[0].Id != "0" || *m.Periods[0].Start != 0) {
		t.Fatal("dash: want one Period id 0 start PT0S")
	}
	n := 0
	starts := map[string][]int64{}
	for pi, p := range m.Periods {
		for _, as := range p.AdaptationSets {
			for _, r := range as.Representations {
				if pi == 0 {
					n++
				}
				tr, ok := v.Track(r.Id)
				if !ok {
					t.Fatalf("dash: representation %q is no track", r.Id)
				}
				st := r.GetSegmentTemplate()
				if st == nil || st.SegmentTimeline == nil {
					t.Fatalf("dash %s: no SegmentTemplate with SegmentTimeline", r.Id)
				}
				if st.GetTimescale() != tr.Info.Timescale {
					t.Errorf("dash %s: timescale %d", r.Id, st.GetTimescale())
				}
				if init, _ := r.GetInit(); init != "tracks/"+tr.ID+"/init.mp4" {
					t.Errorf("dash %s: init %q", r.Id, init)
				}
				var pto, tm uint64
				if st.PresentationTimeOffset != nil {
					pto = *st.PresentationTimeOffset
				}
				for i, s := range st.SegmentTimeline.S {
					if s.T != nil {
						tm = *s.T
					} else if i == 0 {
						t.Errorf("dash %s: first S without t", r.Id)
					}
					if pi > 0 && i == 0 && tm < pto && pto-tm > uint64(tr.Info.Timescale)/20 {
						// A restarted session's track may start before its
						// Period, by less than a frame.
						t.Errorf("dash %s: period %s starts %d after its first segment", r.Id, p.Id, pto-tm)
					}
					for range s.R + 1 {
						starts[r.Id] = append(starts[r.Id], int64(tm))
						tm += s.D
					}
				}
			}
		}
	}
	lv := v
	if Live(v) {
		// A low-latency MPD lists each track's fragment in progress too.
		lv, _ = withOpenSegments(list(v, Options{}).v)
	}
	for _, tr := range v.Tracks {
		fs := listedTrack(lv, tr.ID).Frags
		got := starts[tr.ID]
		if len(fs) != len(got) {
			t.Fatalf("dash %s: %d segments, want %d", tr.ID, len(got), len(fs))
		}
		for i := range fs {
			if fs[i].Start != got[i] {
				t.Errorf("dash %s: segment %d at %d, want %d", tr.ID, i, got[i], fs[i].Start)
			}
		}
	}
	if n == 0 {
		t.Error("dash: no representation")
	}
}

func checkHLSMaster(t *testing.T, v store.View, b []byte) {
	t.Helper()
	p, typ, err := m3u8.DecodeFrom(bytes.NewReader(b), true)
	if err != nil || typ != m3u8.MASTER {
		t.Fatalf("hls master: %v (type %v)", err, typ)
	}
	mp := p.(*m3u8.MasterPlaylist)
	if mp.Version() != 7 || !mp.IndependentSegments() {
		t.Errorf("hls master: version %d, independent segments %v", mp.Version(), mp.IndependentSegments())
	}
	for _, vr := range mp.Variants {
		id := strings.TrimSuffix(strings.TrimPrefix(vr.URI, "tracks/"), "/media.m3u8")
		if _, ok := v.Track(id); !ok {
			t.Errorf("hls master: variant %q is no track", vr.URI)
		}
		if vr.Bandwidth == 0 || vr.AverageBandwidth > vr.Bandwidth || vr.Codecs == "" {
			t.Errorf("hls master: variant %q BANDWIDTH=%d AVERAGE-BANDWIDTH=%d CODECS=%q",
				vr.URI, vr.Bandwidth, vr.AverageBandwidth, vr.Codecs)
		}
	}
	if len(mp.Variants) == 0 {
		t.Error("hls master: no variant")
	}
	// Every WebVTT and IMSC1 text track with something listed is a
	// SUBTITLES rendition of the group every variant names.
	var subs []string
	for _, tr := range listedTracks(v) {
		if HLSWebVTT(tr.Info) {
			subs = append(subs, "tracks/"+tr.ID+"/media.m3u8")
		}
	}
	for _, vr := range mp.Variants {
		var got []string
		for _, a := range vr.Alternatives {
			if a.Type == "SUBTITLES" {
				got = append(got, a.URI)
				if a.GroupId != vr.Subtitles {
					t.Errorf("hls master: variant %q: subtitles %q in group %q, not %q", vr.URI, a.URI, a.GroupId, vr.Subtitles)
				}
			}
		}
		if strings.Join(got, " ") != strings.Join(subs, " ") {
			t.Errorf("hls master: variant %q: subtitle renditions %v, want %v", vr.URI, got, subs)
		}
	}
}

// listedTracks is the tracks of v that the manifests list something of.
func listedTracks(v store.View) []store.TrackView {
	var out []store.TrackView
	for _, t := range list(v, Options{}).v.Tracks {
		if len(t.Frags) > 0 {
			out = append(out, t)
		}
	}
	return out
}

func checkHLSMedia(t *testing.T, v store.View, tr store.TrackView, b []byte) {
	t.Helper()
	p, typ, err := m3u8.DecodeFrom(bytes.NewReader(b), true)
	if err != nil || typ != m3u8.MEDIA {
		t.Fatalf("hls media %s: %v (type %v)", tr.ID, err, typ)
	}
	mp := p.(*m3u8.MediaPlaylist)
	lt := listedTrack(v, tr.ID)
	fs, seq, disc, cut := lt.Frags, lt.First, lt.Disc, list(v, Options{}).cut[tr.ID]
	if mp.SeqNo != uint64(seq) {
		t.Errorf("hls media %s: media sequence %d, want %d", tr.ID, mp.SeqNo, seq)
	}
	if mp.DiscontinuitySeq != uint64(disc) {
		t.Errorf("hls media %s: discontinuity sequence %d, want %d", tr.ID, mp.DiscontinuitySeq, disc)
	}
	// A WebVTT text track lists WebVTT segments (no EXT-X-MAP).
	webvtt, ext := HLSWebVTT(tr.Info), ".m4s"
	if webvtt {
		ext = ".vtt"
		if mp.Map != nil {
			t.Errorf("hls media %s: WebVTT playlist with EXT-X-MAP %+v", tr.ID, mp.Map)
		}
	} else if mp.Map == nil || mp.Map.URI != "init.mp4" {
		t.Errorf("hls media %s: EXT-X-MAP %+v", tr.ID, mp.Map)
	}
	if want := tr.Ended || !Live(v); mp.Closed != want {
		t.Errorf("hls media %s: ENDLIST %v, want %v", tr.ID, mp.Closed, want)
	}
	checkLowLatency(t, v, tr, lt, mp)
	segs := mp.GetAllSegments()
	if len(segs) != len(fs) {
		t.Fatalf("hls media %s: %d segments, want %d", tr.ID, len(segs), len(fs))
	}
	for i, s := range segs {
		if s.URI != strconv.FormatInt(fs[i].Start, 10)+ext {
			t.Errorf("hls media %s: segment %d URI %q", tr.ID, i, s.URI)
		}
		// RFC 8216 4.3.3.1: EXTINF rounded to the nearest integer.
		if math.Round(s.Duration) > float64(mp.TargetDuration) {
			t.Errorf("hls media %s: EXTINF %f above target %d", tr.ID, s.Duration, mp.TargetDuration)
		}
		gap := i > 0 && cut[i]
		if s.Discontinuity != gap {
			t.Errorf("hls media %s: segment %d discontinuity %v, want %v", tr.ID, i, s.Discontinuity, gap)
		}
		closed := gap && closesRestart(fs[i-1], fs[i], tr.Breaks, uint64(mp.TargetDuration), tr.Info.Timescale)
		if (i == 0 || (gap && !closed)) && !s.ProgramDateTime.Equal(anchor.Add(toDuration(fs[i].Start, tr.Info.Timescale)).Round(time.Millisecond)) {
			t.Errorf("hls media %s: segment %d program date time %v", tr.ID, i, s.ProgramDateTime)
		}
		if closed && !s.ProgramDateTime.IsZero() {
			t.Errorf("hls media %s: segment %d after a restart boundary carries a program date time", tr.ID, i)
		}
		// Across a restart boundary the playlist's timeline goes on: the
		// segment before it lasts up to the restarted session's start.
		if closed {
			want := seconds(fs[i].Start-fs[i-1].Start, tr.Info.Timescale)
			if d := segs[i-1].Duration; math.Abs(d-want) > 1e-6 {
				t.Errorf("hls media %s: segment %d before the restart lasts %f, want %f", tr.ID, i-1, d, want)
			}
		}
	}
}

// checkLowLatency checks the LL-HLS tags of a media playlist: present
// exactly when the track keeps parts; parts listed for the kept complete
// fragments and the open one, in order and contiguous, at most
// PART-TARGET long; the preload hint names the part after the last.
func checkLowLatency(t *testing.T, v store.View, tr, lt store.TrackView, mp *m3u8.MediaPlaylist) {
	t.Helper()
	ll := LowLatency(v, tr)
	if (mp.PartTargetDuration > 0) != ll || (mp.ServerControl != nil) != ll || (mp.PreloadHints != nil) != ll {
		t.Fatalf("hls media %s: part target %v, server control %v, preload hint %v; want low latency %v",
			tr.ID, mp.PartTargetDuration, mp.ServerControl != nil, mp.PreloadHints != nil, ll)
	}
	if !ll {
		return
	}
	if !mp.ServerControl.CanBlockReload || mp.ServerControl.PartHoldBack < 2*mp.PartTargetDuration {
		t.Errorf("hls media %s: server control %+v (part target %v)", tr.ID, *mp.ServerControl, mp.PartTargetDuration)
	}
	var want []store.PartRef
	for _, f := range lt.Frags {
		if ps, ok := lt.PartsOf(f.Start); ok {
			want = append(want, ps...)
		}
	}
	open, ok := lt.Open()
	if ok {
		want = append(want, open.Parts...)
	}
	if len(mp.PartialSegments) != len(want) {
		t.Fatalf("hls media %s: %d parts, want %d", tr.ID, len(mp.PartialSegments), len(want))
	}
	for i, p := range mp.PartialSegments {
		w := want[i]
		if p.URI != PartName(w.Start) || p.Independent != w.Key || math.Abs(p.Duration-seconds(int64(w.Duration), tr.Info.Timescale)) > 1e-6 {
			t.Errorf("hls media %s: part %d %+v, want %+v", tr.ID, i, *p, w)
		}
		if p.Duration > mp.PartTargetDuration {
			t.Errorf("hls media %s: part %d lasts %v, above the part target %v", tr.ID, i, p.Duration, mp.PartTargetDuration)
		}
	}
	next := lt.Frags[len(lt.Frags)-1].End()
	if ok {
		next = open.End()
	}
	if mp.PreloadHints.Type != "PART" || mp.PreloadHints.URI != PartName(next) {
		t.Errorf("hls media %s: preload hint %+v, want the part at %d", tr.ID, *mp.PreloadHints, next)
	}
}

func TestHLSMediaUnknownTrack(t *testing.T) {
	_, err := HLSMedia(liveView(), "nope", Options{Now: anchor})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err = %v, want store.ErrNotFound", err)
	}
}

func TestLive(t *testing.T) {
	for _, tc := range []struct {
		v    store.View
		want bool
	}{
		{liveView(), true},
		{endedView(), false},
		{vodView(), false},
		{store.View{Meta: store.PointMeta{VOD: true}}, false},
		{store.View{}, true},
	} {
		if got := Live(tc.v); got != tc.want {
			t.Errorf("Live(%s ended=%v vod=%v) = %v", tc.v.Name, tc.v.Ended, tc.v.Meta.VOD, got)
		}
	}
}

// TestSmoothHoldback: the live edge is held back by LookAhead fragments,
// and not at all once the presentation is static.
func TestSmoothHoldback(t *testing.T) {
	count := func(v store.View, la int) int {
		b, err := Smooth(v, Options{Now: anchor, DVRWindow: time.Minute, LookAhead: la})
		if err != nil {
			t.Fatal(err)
		}
		var m parsedSmooth
		if err := xml.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m.Streams[0].Chunks
	}
	for la, want := range []int{8, 7, 6, 5} {
		if got := count(liveView(), la); got != want {
			t.Errorf("live, look-ahead %d: %d fragments, want %d", la, got, want)
		}
	}
	if got := count(endedView(), 2); got != 8 {
		t.Errorf("ended: %d fragments, want 8", got)
	}
	if got := count(liveView(), -1); got != 8 {
		t.Errorf("negative look-ahead: %d fragments, want 8", got)
	}
	// Everything held back: nothing to show, which the origin answers 404.
	if b, err := Smooth(liveView(), Options{Now: anchor, LookAhead: 8}); !errors.Is(err, ErrEmpty) {
		t.Errorf("all held back: err = %v, manifest:\n%s", err, b)
	}
}

// TestEmpty: a channel before its first listable fragment gives ErrEmpty
// (a store.ErrNotFound), not a manifest players would choke on.
func TestEmpty(t *testing.T) {
	v := negativeView()
	v.Tracks[0].Frags = nil // video: nothing yet
	// audio: only a fragment that ends at zero (priming, nothing to play)
	v.Tracks[1].Frags = []store.FragRef{{Start: -213333, Duration: 213333, Size: 400, Key: true}}
	o := Options{Now: anchor, LookAhead: 2}
	for name, f := range map[string]func(store.View, Options) ([]byte, error){"smooth": Smooth, "dash": DASH} {
		if _, err := f(v, o); !errors.Is(err, ErrEmpty) || !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := HLSMaster(store.View{}, o); !errors.Is(err, ErrEmpty) {
		t.Errorf("hls master: err = %v", err)
	}
	if b, err := HLSMaster(v, o); !errors.Is(err, ErrEmpty) {
		t.Errorf("hls master of a point with nothing to list: err = %v\n%s", err, b)
	}
	// Media playlists answer 404 too (ErrEmpty), for a track with nothing
	// listable while another has fragments as well.
	for _, id := range []string{"audio_128000", "video_1000000"} {
		if b, err := HLSMedia(v, id, o); !errors.Is(err, ErrEmpty) || !errors.Is(err, store.ErrNotFound) {
			t.Errorf("hls media %s: err = %v\n%s", id, err, b)
		}
	}
	v.Tracks[1] = negativeView().Tracks[1]
	b, err := HLSMaster(v, o)
	if err != nil || bytes.Contains(b, []byte("video_1000000")) || !bytes.Contains(b, []byte("audio_128000")) {
		t.Errorf("hls master announces only the track with fragments: err = %v\n%s", err, b)
	}
	if b, err := HLSMedia(v, "video_1000000", o); !errors.Is(err, ErrEmpty) {
		t.Errorf("hls media of the empty video track: err = %v\n%s", err, b)
	}
}

// listedTrack is one track of v as the manifests list it.
func listedTrack(v store.View, id string) store.TrackView {
	tv, _ := list(v, Options{}).v.Track(id)
	return tv
}

// TestSmoothAmbiguous: two tracks with the same name and bitrate cannot both
// have Smooth URLs; the first in View order keeps them. Languages get
// StreamIndexes of their own.
func TestSmoothAmbiguous(t *testing.T) {
	v := audioOnlyView()
	v.Tracks = append(v.Tracks, with(audioTrack("audio_deu_64000", 64000, 48000, "deu"), 7,
		frags(nil, 48000*20, 15000, repeat(96000, 6)...)))
	b, err := Smooth(v, Options{Now: anchor, LookAhead: 2})
	if err != nil {
		t.Fatal(err)
	}
	var m parsedSmooth
	if err := xml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Streams) != 2 || bytes.Contains(b, []byte(`"deu"`)) {
		t.Errorf("want eng and fra StreamIndexes only:\n%s", b)
	}
	// DASH has no such restriction.
	b, _ = DASH(v, Options{Now: anchor})
	if !bytes.Contains(b, []byte(`id="audio_deu_64000"`)) {
		t.Errorf("dash lacks audio_deu_64000:\n%s", b)
	}
}

func TestRuns(t *testing.T) {
	fs := frags(nil, 0, 1, 10, 10, 10, 20)
	fs = frags(fs, 100, 1, 20, 20)
	got := runs(fs)
	want := []run{{0, 10, 3, true}, {30, 20, 1, false}, {100, 20, 2, true}}
	if len(got) != len(want) {
		t.Fatalf("runs = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("run %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestTimeConversions(t *testing.T) {
	// A year into a 10 MHz timeline does not overflow.
	x := int64(365*24*3600) * mss
	if got := toDuration(x, mss); got != 365*24*time.Hour {
		t.Errorf("toDuration = %v", got)
	}
	if got := rescale(uint64(x)/mss*90000, 90000, mss); got != uint64(x) {
		t.Errorf("rescale = %d", got)
	}
	for in, want := range map[uint64]string{180000: "2.000", 96256: "2.005333", 90001: "1.000011"} {
		ts := uint32(90000)
		if in == 96256 {
			ts = 48000
		}
		if got := extinf(in, ts); got != want {
			t.Errorf("extinf(%d) = %s, want %s", in, got, want)
		}
	}
	if got := FragmentDuration(store.View{}); got != 2*time.Second {
		t.Errorf("FragmentDuration(empty) = %v", got)
	}
	if got := FragmentDuration(liveView()); got != 2005333300*time.Nanosecond {
		t.Errorf("FragmentDuration(live) = %v", got)
	}
}

// TestHLSDeltaUpdate: _HLS_skip=YES leaves out the segments that end more
// than CAN-SKIP-UNTIL (six target durations) before the playlist's end,
// with EXT-X-SKIP saying how many, and lists the rest as in full.
func TestHLSDeltaUpdate(t *testing.T) {
	v := lowLatencyView()
	now := anchor.Add(1016*time.Second + 500*time.Millisecond)
	full, err := HLSMedia(v, "video_3000000", Options{Now: now, DVRWindow: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	delta, err := HLSMedia(v, "video_3000000", Options{Now: now, DVRWindow: time.Minute, Skip: true})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "lowlatency-skip.video_3000000.m3u8", delta)
	// 8 segments of 2 s end at 1002..1016 s; CAN-SKIP-UNTIL is 12 s: the
	// two that end at or before 1004 s are skipped.
	if !bytes.Contains(full, []byte("CAN-SKIP-UNTIL=12.0")) || !bytes.Contains(delta, []byte("#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n")) ||
		!bytes.Contains(delta, []byte("#EXT-X-VERSION:9\n")) {
		t.Fatalf("delta update:\n%s", delta)
	}
	if n, m := bytes.Count(full, []byte("#EXTINF")), bytes.Count(delta, []byte("#EXTINF")); m != n-2 {
		t.Errorf("delta update lists %d segments, the full playlist %d", m, n)
	}
	// What follows the skipped segments is the full playlist's tail.
	tail := full[bytes.Index(full, []byte("10040000000.m4s")):]
	if !bytes.HasSuffix(delta, tail) {
		t.Errorf("delta update's segments differ from the full playlist's:\n%s", delta)
	}
	if !bytes.Contains(full, []byte(`#EXT-X-RENDITION-REPORT:URI="../video_1500000/media.m3u8",LAST-MSN=508,LAST-PART=1`)) {
		t.Errorf("no rendition report of the other video track:\n%s", full)
	}
}
