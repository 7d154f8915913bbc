package manifest

import (
	"encoding/xml"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/store"
)

// parseSmooth decodes a rendered Smooth manifest.
func parseSmooth(t *testing.T, b []byte) ssMedia {
	t.Helper()
	var m ssMedia
	if err := xml.Unmarshal(b, &m); err != nil {
		t.Fatalf("smooth manifest: %v\n%s", err, b)
	}
	return m
}

// TestSmoothLiveChunks: a live Smooth manifest lists one c per fragment,
// none with r, so that a client starting "three c before the last" starts
// three fragments before the edge in every stream; on demand, runs keep r.
func TestSmoothLiveChunks(t *testing.T) {
	now := anchor.Add(1020 * time.Second)
	cases := []struct {
		name  string
		v     store.View
		o     Options
		runsR bool
	}{
		{"live", liveView(), Options{Now: now, DVRWindow: time.Minute, LookAhead: 2}, false},
		{"ended", endedView(), Options{Now: now, DVRWindow: time.Minute, LookAhead: 2}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Smooth(tc.v, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			m := parseSmooth(t, b)
			sawR := false
			for _, s := range m.Streams {
				for _, c := range s.Chunk {
					sawR = sawR || c.R > 0
				}
				if !tc.runsR && len(s.Chunk) != s.Chunks {
					t.Errorf("%s: %d c for %d chunks", s.Name, len(s.Chunk), s.Chunks)
				}
			}
			if sawR != tc.runsR {
				t.Errorf("c@r present: %v, want %v\n%s", sawR, tc.runsR, b)
			}
		})
	}
	// The edges of the live streams: the third c before the last names
	// the same time (to a fragment) in video and audio.
	b, _ := Smooth(liveView(), cases[0].o)
	m := parseSmooth(t, b)
	var starts []uint64
	for _, s := range m.Streams {
		var tt uint64
		var ts []uint64
		for _, c := range s.Chunk {
			if c.T != nil {
				tt = *c.T
			}
			ts = append(ts, tt)
			tt += c.D
		}
		starts = append(starts, ts[len(ts)-3])
	}
	if d := int64(starts[0]) - int64(starts[len(starts)-1]); d > 2*mss || d < -2*mss {
		t.Errorf("third c before the last: %v (video vs audio %d ticks apart)", starts, d)
	}
}

// TestSmoothBitrate: a track whose encoder declared no bit rate (an ffmpeg
// push without -b) gets a non-zero Bitrate in the Smooth manifest, measured
// on its first fragment, which stays the same as the window slides; a
// declared one is kept.
func TestSmoothBitrate(t *testing.T) {
	v := liveView()
	vt := &v.Tracks[0]
	vt.Info.Bitrate = 0
	// The first fragment ever stored: 2 s, 170 000 bytes -> 680 000 bit/s.
	vt.Extent = store.Extent{First: 0, FirstDuration: 2 * mss, FirstSize: 170000, MaxDuration: 2 * mss}
	now := anchor.Add(1020 * time.Second)
	o := Options{Now: now, DVRWindow: time.Minute, LookAhead: 2}
	levels := func(v store.View) map[int]bool {
		b, err := Smooth(v, o)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int]bool{}
		for _, s := range parseSmooth(t, b).Streams {
			for _, q := range s.Levels {
				if q.Bitrate <= 0 {
					t.Errorf("%s: QualityLevel %d has Bitrate %d\n%s", s.Name, q.Index, q.Bitrate, b)
				}
				got[q.Bitrate] = true
			}
		}
		return got
	}
	got := levels(v)
	for _, want := range []int{680000, 1500000, 128000} {
		if !got[want] {
			t.Errorf("no QualityLevel with Bitrate %d: %v", want, got)
		}
	}
	// The window slides: the first fragments go, the Bitrate stays.
	vt.Frags = vt.Frags[3:]
	for i := range vt.Frags {
		vt.Frags[i].Size *= 3
	}
	if !levels(v)[680000] {
		t.Error("the measured Bitrate changed as the window slid")
	}
	// Without a stored first size: the peak over the listed fragments.
	vt.Extent.FirstSize = 0
	if b := SmoothBitrate(*vt); b != int(vt.Frags[0].Size*8/2) {
		t.Errorf("fallback bitrate %d, want %s", b, strconv.FormatInt(vt.Frags[0].Size*8/2, 10))
	}
}
