package player

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestParseMPDSchedulerSegmentList reads the per-session MPDs a scheduler
// renders (testdata/scheduler-*.mpd: internal/manifest with Options.URLs,
// served by internal/scheduler over three fake senders): a SegmentList per
// Representation with absolute SegmentURL@media at several senders, one S
// per segment, Initialization@sourceURL and a path-absolute Location.
func TestParseMPDSchedulerSegmentList(t *testing.T) {
	urlRe := regexp.MustCompile(`^http://127\.0\.0\.1:\d+/b/[^/]+/(vod|live)/(video_1000|audio_128)/(\d+)\.m4s$`)
	for _, tc := range []struct {
		file   string
		live   bool
		n      int
		update time.Duration
	}{
		{"scheduler-vod.mpd", false, 5, 0},
		{"scheduler-live.mpd", true, 6, 2 * time.Second},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			base := mustURL(t, "http://sched:8090/s/x/manifest.mpd")
			p, info, err := parseMPD(data, base, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			if p.Live != tc.live || p.UpdatePeriod != tc.update {
				t.Errorf("live %v update %v, want %v %v", p.Live, p.UpdatePeriod, tc.live, tc.update)
			}
			if !strings.HasPrefix(info.location, "/s/") || !strings.HasSuffix(info.location, "/manifest.mpd") {
				t.Errorf("location %q", info.location)
			}
			hosts := map[string]bool{}
			for _, st := range []*Stream{p.Video, p.Audio} {
				if st == nil || len(st.Renditions) != 1 {
					t.Fatalf("stream %+v", st)
				}
				r := st.Renditions[0]
				if r.Ended == tc.live || !r.Loaded {
					t.Errorf("%s: ended %v loaded %v", r.ID, r.Ended, r.Loaded)
				}
				if r.Init == nil || !strings.HasSuffix(r.Init.URL, "/"+r.ID+"/init.mp4") || !strings.HasPrefix(r.Init.URL, "http://127.0.0.1:") {
					t.Errorf("%s: init %+v", r.ID, r.Init)
				}
				segs := r.Segments(time.Now())
				if len(segs) != tc.n {
					t.Fatalf("%s: %d segments, want %d", r.ID, len(segs), tc.n)
				}
				for i, s := range segs {
					m := urlRe.FindStringSubmatch(s.URL)
					if m == nil || m[2] != r.ID || m[3] != itoa(int64(i)*2000) {
						t.Errorf("%s segment %d: URL %s", r.ID, i, s.URL)
					}
					if s.Start != time.Duration(i)*2*time.Second || s.Dur != 2*time.Second || s.Seq != int64(i)+1 || s.Range != "" {
						t.Errorf("%s segment %d: %+v", r.ID, i, s)
					}
					hosts[mustURL(t, s.URL).Host] = true
				}
			}
			if len(hosts) < 2 {
				t.Errorf("segments at %d sender(s), the golden MPD names several", len(hosts))
			}
		})
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestParseMPDSegmentList covers SegmentList forms beyond the scheduler's:
// BaseURL-relative URLs, @mediaRange, @duration with @startNumber,
// @presentationTimeOffset, inheritance from the AdaptationSet, a timeline
// longer than the list, and a SegmentURL without @media (the BaseURL).
func TestParseMPDSegmentList(t *testing.T) {
	for _, tc := range []struct {
		name string
		mpd  string
		init Segment
		want []Segment
	}{
		{
			name: "relative to BaseURL, timeline with r, pto",
			mpd: `<MPD type="static" mediaPresentationDuration="PT6S"><BaseURL>http://cdn/a/</BaseURL><Period>
			<AdaptationSet contentType="video"><BaseURL>v/</BaseURL><Representation id="r" bandwidth="1">
			<SegmentList timescale="10" presentationTimeOffset="100"><Initialization sourceURL="init.mp4" range="0-99"/>
			<SegmentTimeline><S t="100" d="20" r="2"/></SegmentTimeline>
			<SegmentURL media="s1.m4s"/><SegmentURL media="/abs/s2.m4s" mediaRange="10-19"/><SegmentURL media="http://other/s3.m4s"/>
			</SegmentList></Representation></AdaptationSet></Period></MPD>`,
			init: Segment{URL: "http://cdn/a/v/init.mp4", Range: "0-99"},
			want: []Segment{
				{URL: "http://cdn/a/v/s1.m4s", Seq: 1, Start: 0, Dur: 2 * time.Second},
				{URL: "http://cdn/abs/s2.m4s", Range: "10-19", Seq: 2, Start: 2 * time.Second, Dur: 2 * time.Second},
				{URL: "http://other/s3.m4s", Seq: 3, Start: 4 * time.Second, Dur: 2 * time.Second},
			},
		},
		{
			name: "duration, startNumber, inherited from the AdaptationSet",
			mpd: `<MPD type="static" mediaPresentationDuration="PT4S"><Period><AdaptationSet contentType="audio">
			<SegmentList timescale="1000" duration="2000" startNumber="7"><SegmentURL media="a.m4s"/><SegmentURL media="b.m4s"/></SegmentList>
			<Representation id="r" bandwidth="1"><BaseURL>http://o/r/</BaseURL></Representation></AdaptationSet></Period></MPD>`,
			want: []Segment{
				{URL: "http://o/r/a.m4s", Seq: 7, Start: 0, Dur: 2 * time.Second},
				{URL: "http://o/r/b.m4s", Seq: 8, Start: 2 * time.Second, Dur: 2 * time.Second},
			},
		},
		{
			name: "timeline longer than the list; media absent",
			mpd: `<MPD type="static" mediaPresentationDuration="PT4S"><Period><AdaptationSet contentType="video">
			<Representation id="r" bandwidth="1"><BaseURL>http://o/file.mp4</BaseURL><SegmentList timescale="1">
			<SegmentTimeline><S t="0" d="2" r="4"/></SegmentTimeline><SegmentURL mediaRange="0-9"/><SegmentURL mediaRange="10-19"/>
			</SegmentList></Representation></AdaptationSet></Period></MPD>`,
			want: []Segment{
				{URL: "http://o/file.mp4", Range: "0-9", Seq: 1, Start: 0, Dur: 2 * time.Second},
				{URL: "http://o/file.mp4", Range: "10-19", Seq: 2, Start: 2 * time.Second, Dur: 2 * time.Second},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _, err := parseMPD([]byte(tc.mpd), mustURL(t, "http://o/x.mpd"), time.Now)
			if err != nil {
				t.Fatal(err)
			}
			st := p.Video
			if st == nil {
				st = p.Audio
			}
			r := st.Renditions[0]
			if tc.init.URL != "" && (r.Init == nil || *r.Init != tc.init) {
				t.Errorf("init %+v, want %+v", r.Init, tc.init)
			}
			got := r.Segments(time.Now())
			if len(got) != len(tc.want) {
				t.Fatalf("segments %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("segment %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
	for name, doc := range map[string]string{
		"no SegmentURL":         `<MPD type="static"><Period><AdaptationSet contentType="video"><Representation id="v"><SegmentList duration="1"/></Representation></AdaptationSet></Period></MPD>`,
		"no timeline nor dur":   `<MPD type="static"><Period><AdaptationSet contentType="video"><Representation id="v"><SegmentList><SegmentURL media="a"/></SegmentList></Representation></AdaptationSet></Period></MPD>`,
		"neither list nor tmpl": `<MPD type="static"><Period><AdaptationSet contentType="video"><Representation id="v"/></AdaptationSet></Period></MPD>`,
	} {
		if _, _, err := parseMPD([]byte(doc), mustURL(t, "http://o/x.mpd"), time.Now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestDASHUnchangedReload: a live MPD that did not change since the previous
// load (apart from its UTCTiming) is looked at again after half of
// minimumUpdatePeriod; a changed one after the whole period.
func TestDASHUnchangedReload(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "scheduler-live.mpd"))
	if err != nil {
		t.Fatal(err)
	}
	clock := regexp.MustCompile(`(<UTCTiming [^>]*value=")[^"]*`)
	docs := [][]byte{
		golden,
		clock.ReplaceAll(golden, []byte("${1}2030-01-01T00:00:00.000Z")), // only the time moved
		[]byte(strings.Replace(string(golden), `<S d="2000"></S>`, `<S d="2000"></S><S d="2000"></S>`, 1)),
	}
	want := []time.Duration{2 * time.Second, time.Second, 2 * time.Second}
	i := 0
	src := &dashSource{url: mustURL(t, "http://sched/s/live/manifest.mpd"), fetch: func(context.Context, string) ([]byte, error) {
		return docs[i], nil
	}}
	for i = range docs {
		p, err := src.load(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.UpdatePeriod != want[i] {
			t.Errorf("load %d: update period %v, want %v", i, p.UpdatePeriod, want[i])
		}
	}
}
