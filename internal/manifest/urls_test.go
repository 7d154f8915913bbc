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
