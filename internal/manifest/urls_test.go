package manifest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/hls-m3u8/m3u8"

	"github.com/sluice-media/sluice/internal/store"
)

// testURLs maps every resource to a host named after the fragment's parity,
// so that a test sees per-segment hosts.
func testURLs() *URLs {
	return &URLs{
		Manifest: "http://sched/s/live/~abc/manifest.mpd",
		Init:     func(id string) string { return "http://s0/b/tok/live/" + id + "/init.mp4" },
		Segment: func(id string, t int64) string {
			return fmt.Sprintf("http://s%d/b/tok/live/%s/%d.m4s", t/(2*mss)%2, id, t)
		},
		Playlist: func(id string) string { return "/s/live/~abc/" + id + "/media.m3u8" },
	}
}

func TestURLsDASH(t *testing.T) {
	for name, v := range map[string]store.View{"live": liveView(), "vod": vodView(), "gap": gapView()} {
		t.Run(name, func(t *testing.T) {
			o := Options{Now: anchor.Add(time.Hour), URLs: testURLs()}
			b, err := DASH(v, o)
			if err != nil {
				t.Fatal(err)
			}
			m, err := mpd.ReadFromString(string(b))
			if err != nil {
				t.Fatalf("re-parse: %v\n%s", err, b)
			}
			if len(m.Location) != 1 || m.Location[0].Value != o.URLs.Manifest {
				t.Errorf("Location %+v", m.Location)
			}
			n := 0
			for _, as := range m.Periods[0].AdaptationSets {
				if as.SegmentTemplate != nil {
					t.Errorf("AdaptationSet %v has a SegmentTemplate", as.Id)
				}
				for _, r := range as.Representations {
					tr, _ := list(v, o).v.Track(r.Id)
					fs := tr.Frags
					sl := r.SegmentList
					if sl == nil || r.SegmentTemplate != nil {
						t.Fatalf("representation %s: want a SegmentList only", r.Id)
					}
					if got := string(sl.Initialization.SourceURL); got != o.URLs.Init(r.Id) {
						t.Errorf("%s init %q", r.Id, got)
					}
					if len(sl.SegmentURL) != len(fs) {
						t.Fatalf("%s: %d SegmentURLs for %d fragments", r.Id, len(sl.SegmentURL), len(fs))
					}
					// The timeline lists as many segments as there are URLs, in order.
					cnt := 0
					for _, s := range sl.SegmentTimeline.S {
						cnt += 1 + s.R
					}
					if cnt != len(fs) || len(sl.SegmentTimeline.S) != len(fs) {
						t.Errorf("%s: timeline has %d segments in %d S, %d URLs", r.Id, cnt, len(sl.SegmentTimeline.S), len(fs))
					}
					for i, f := range fs {
						if got, want := string(sl.SegmentURL[i].Media), o.URLs.Segment(r.Id, f.Start); got != want {
							t.Errorf("%s segment %d: %q want %q", r.Id, i, got, want)
						}
					}
					n++
				}
			}
			if n == 0 {
				t.Fatal("no representation")
			}
		})
	}
}

func TestURLsHLS(t *testing.T) {
	v := liveView()
	o := Options{Now: anchor.Add(time.Hour), URLs: testURLs()}
	b, err := HLSMaster(v, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range v.Tracks {
		if !strings.Contains(string(b), o.URLs.Playlist(tr.ID)+"\n") && !strings.Contains(string(b), `URI="`+o.URLs.Playlist(tr.ID)+`"`) {
			t.Errorf("master lacks the playlist of %s:\n%s", tr.ID, b)
		}
	}
	for _, tr := range v.Tracks {
		b, err := HLSMedia(v, tr.ID, o)
		if err != nil {
			t.Fatal(err)
		}
		pl, typ, err := m3u8.DecodeFrom(strings.NewReader(string(b)), true)
		if err != nil || typ != m3u8.MEDIA {
			t.Fatalf("re-parse %s: %v\n%s", tr.ID, err, b)
		}
		mp := pl.(*m3u8.MediaPlaylist)
		if mp.Map == nil || mp.Map.URI != o.URLs.Init(tr.ID) {
			t.Errorf("%s: EXT-X-MAP %+v", tr.ID, mp.Map)
		}
		lt, _ := list(v, o).v.Track(tr.ID)
		fs := lt.Frags
		segs := mp.GetAllSegments()
		if len(segs) != len(fs) {
			t.Fatalf("%s: %d segments for %d fragments", tr.ID, len(segs), len(fs))
		}
		for i, f := range fs {
			if segs[i].URI != o.URLs.Segment(tr.ID, f.Start) {
				t.Errorf("%s segment %d: %q", tr.ID, i, segs[i].URI)
			}
		}
	}
}

// TestURLsNilUnchanged: without URLs the output is what it always was.
func TestURLsNilUnchanged(t *testing.T) {
	v := liveView()
	o := Options{Now: anchor.Add(time.Hour)}
	a, _ := DASH(v, o)
	o.URLs = &URLs{} // no functions: relative URLs, no Location
	b, _ := DASH(v, o)
	if string(a) != string(b) {
		t.Errorf("empty URLs changed the MPD")
	}
	ha, _ := HLSMedia(v, v.Tracks[0].ID, Options{})
	hb, _ := HLSMedia(v, v.Tracks[0].ID, o)
	if string(ha) != string(hb) || !strings.Contains(string(ha), "#EXT-X-MAP:URI=\"init.mp4\"") {
		t.Errorf("empty URLs changed the media playlist:\n%s", hb)
	}
}

// TestPathwaysDASH: with BaseURLs the MPD lists one BaseURL per pathway
// (serviceLocation), a SegmentTemplate relative to them and the steering
// server.
func TestPathwaysDASH(t *testing.T) {
	u := &URLs{
		Manifest: "/s/live/~abc/manifest.mpd",
		BaseURLs: []BaseURL{{URL: "http://s0/b/tok/live/", ServiceLocation: "pa"}, {URL: "http://s1/b/tok/live/", ServiceLocation: "pb"}},
		Steering: &Steering{URI: "http://sched/s/live/~abc/steering.json", DefaultPathway: "pb", QueryBeforeStart: true},
	}
	b, err := DASH(liveView(), Options{Now: anchor.Add(time.Hour), URLs: u})
	if err != nil {
		t.Fatal(err)
	}
	m, err := mpd.ReadFromString(string(b))
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, b)
	}
	if len(m.BaseURL) != 2 || m.BaseURL[1].ServiceLocation != "pb" || string(m.BaseURL[1].Value) != "http://s1/b/tok/live/" {
		t.Errorf("BaseURLs %+v", m.BaseURL)
	}
	cs := m.ContentSteering
	if cs == nil || cs.Value != u.Steering.URI || cs.DefaultServiceLocation != "pb" || !cs.QueryBeforeStart {
		t.Errorf("ContentSteering %+v", cs)
	}
	for _, as := range m.Periods[0].AdaptationSets {
		st := as.SegmentTemplate
		if st == nil {
			for _, r := range as.Representations {
				st = r.SegmentTemplate
			}
		}
		if st == nil || st.Media != "$RepresentationID$/$Time$.m4s" || st.Initialization != "$RepresentationID$/init.mp4" {
			t.Errorf("AdaptationSet %v: template %+v", as.Id, st)
		}
	}
	if strings.Contains(string(b), "SegmentList") {
		t.Error("a SegmentList next to the BaseURLs")
	}
}

// TestPathwaysHLS: with Pathways the master lists every variant and
// rendition once per pathway, with its PATHWAY-ID, an audio group of its
// own and the pathway's URIs, after the steering tag.
func TestPathwaysHLS(t *testing.T) {
	v := liveView()
	u := &URLs{
		Steering: &Steering{URI: "/s/live/~abc/steering.json", DefaultPathway: "pb"},
		Pathways: []Pathway{
			{ID: "pa", Playlist: func(id string) string { return "http://s0/b/tok/live/" + id + "/media.m3u8" }},
			{ID: "pb", Playlist: func(id string) string { return "http://s1/b/tok/live/" + id + "/media.m3u8" }},
		},
	}
	b, err := HLSMaster(v, Options{URLs: u})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, "#EXT-X-CONTENT-STEERING:SERVER-URI=\"/s/live/~abc/steering.json\",PATHWAY-ID=\"pb\"\n") {
		t.Errorf("no steering tag:\n%s", s)
	}
	single, _ := HLSMaster(v, Options{})
	variants := strings.Count(string(single), "#EXT-X-STREAM-INF")
	renditions := strings.Count(string(single), "#EXT-X-MEDIA:")
	for i, p := range u.Pathways {
		host := fmt.Sprintf("http://s%d/", i)
		if n := strings.Count(s, `PATHWAY-ID="`+p.ID+`"`+"\n"+host); n != variants {
			t.Errorf("pathway %s: %d variants, want %d:\n%s", p.ID, n, variants, s)
		}
		if n := strings.Count(s, `GROUP-ID="audio-`+p.ID+`"`); n != renditions {
			t.Errorf("pathway %s: %d renditions in its group, want %d", p.ID, n, renditions)
		}
		if !strings.Contains(s, `AUDIO="audio-`+p.ID+`",PATHWAY-ID="`+p.ID+`"`) {
			t.Errorf("pathway %s: variants not tied to its audio group", p.ID)
		}
	}
	if _, _, err := m3u8.DecodeFrom(strings.NewReader(s), true); err != nil {
		t.Errorf("re-parse: %v", err)
	}
}

// TestPathwaysHLSSubtitles: with Pathways each pathway has a subtitle
// group of its own, with the pathway's media playlist URIs and WebVTT
// segment URLs derived from its segment URLs.
func TestPathwaysHLSSubtitles(t *testing.T) {
	v := subsView()
	u := &URLs{Pathways: []Pathway{
		{ID: "pa", Playlist: func(id string) string { return "http://s0/b/tok/live/" + id + "/media.m3u8" }},
		{ID: "pb", Playlist: func(id string) string { return "http://s1/b/tok/live/" + id + "/media.m3u8" }},
	}}
	b, err := HLSMaster(v, Options{URLs: u})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i, p := range u.Pathways {
		if n := strings.Count(s, `TYPE=SUBTITLES,GROUP-ID="subs-`+p.ID+`"`); n != 2 {
			t.Errorf("pathway %s: %d subtitle renditions, want 2:\n%s", p.ID, n, s)
		}
		if !strings.Contains(s, fmt.Sprintf(`URI="http://s%d/b/tok/live/text_en/media.m3u8"`, i)) {
			t.Errorf("pathway %s: no subtitle playlist on its host:\n%s", p.ID, s)
		}
		if n := strings.Count(s, `SUBTITLES="subs-`+p.ID+`",PATHWAY-ID="`+p.ID+`"`); n != 2 {
			t.Errorf("pathway %s: %d variants name its subtitle group, want 2:\n%s", p.ID, n, s)
		}
	}
	if _, _, err := m3u8.DecodeFrom(strings.NewReader(s), true); err != nil {
		t.Errorf("re-parse: %v", err)
	}
	// A session's media playlist: WebVTT URLs beside the sender's blocks.
	seg := &URLs{Segment: func(id string, t int64) string { return fmt.Sprintf("http://s0/b/tok/live/%s/%d.m4s", id, t) }}
	m, err := HLSMedia(v, "text_en", Options{URLs: seg})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m), "\nhttp://s0/b/tok/live/text_en/1000000.vtt\n") || strings.Contains(string(m), "EXT-X-MAP") {
		t.Errorf("session WebVTT playlist:\n%s", m)
	}
}
