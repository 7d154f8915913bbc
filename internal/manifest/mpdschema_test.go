package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/testkit/mpdschema"
)

// TestMPDSchema: every MPD the package renders — live, on demand, after
// live-to-VOD, with gaps, restarts and a slid window; with the origin's
// relative template, with a SegmentList of absolute URLs and with pathway
// BaseURLs and content steering (the scheduler's sessions) — passes the
// schema-order validator (element order, occurrences, required attributes
// of ISO/IEC 23009-1) and parses with dash-mpd. So do the golden MPDs.
func TestMPDSchema(t *testing.T) {
	pathways := &URLs{
		Manifest: "/s/live/~abc/manifest.mpd", Stored: true,
		BaseURLs: []BaseURL{{URL: "http://s0/b/tok/live/", ServiceLocation: "pa"}, {URL: "http://s1/b/tok/live/", ServiceLocation: "pb"}},
		Steering: &Steering{URI: "http://sched/s/live/~abc/steering.json", DefaultPathway: "pb", QueryBeforeStart: true},
	}
	variants := map[string]*URLs{"origin": nil, "segment-list": testURLs(), "pathways": pathways}
	for _, tc := range cases() {
		for vn, u := range variants {
			t.Run(tc.name+"/"+vn, func(t *testing.T) {
				o := tc.opts
				o.URLs = u
				b, err := DASH(tc.view, o)
				if err != nil {
					t.Fatal(err)
				}
				if err := mpdschema.Check(b); err != nil {
					t.Errorf("%v\n%s", err, b)
				}
				if u.segmentList() && !strings.Contains(string(b), "SegmentList") {
					t.Error("no SegmentList")
				}
			})
		}
	}
	goldens, _ := filepath.Glob(filepath.Join("testdata", "*.mpd"))
	if len(goldens) == 0 {
		t.Fatal("no golden MPD")
	}
	for _, g := range goldens {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		if err := mpdschema.Check(b); err != nil {
			t.Errorf("%s: %v", g, err)
		}
	}
}

// TestSegmentListOrder: a SegmentList lists Initialization, then the
// SegmentTimeline, then the SegmentURLs (dash-mpd alone writes them the
// other way round).
func TestSegmentListOrder(t *testing.T) {
	b, err := DASH(vodView(), Options{Now: anchor.Add(time.Hour), URLs: testURLs()})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for rest := s; ; {
		i := strings.Index(rest, "<SegmentList")
		if i < 0 {
			break
		}
		end := strings.Index(rest, "</SegmentList>")
		body := rest[i:end]
		a, tl, u := strings.Index(body, "<Initialization"), strings.Index(body, "<SegmentTimeline"), strings.Index(body, "<SegmentURL")
		if a < 0 || !(a < tl && tl < u) {
			t.Fatalf("SegmentList children out of order (Initialization %d, SegmentTimeline %d, SegmentURL %d):\n%s", a, tl, u, body)
		}
		rest = rest[end+1:]
	}
	if err := mpdschema.Check(b); err != nil {
		t.Error(err)
	}
}
