package store_test

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"

	"github.com/sluice-media/sluice/internal/manifest"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/store"
)

// fuzzRecord is the size of one fuzzed fragment: an op byte, a 64-bit start
// and a 32-bit duration.
const fuzzRecord = 13

var (
	fuzzOnce     sync.Once
	fuzzTemplate string // a store with point "ch" and the fixture's header
	fuzzFrags    map[uint32]*media.Fragment
	fuzzErr      error
)

// fuzzSetup builds, once per process, the store every fuzz input starts
// from (copied, so that no input sees another's fragments) and one stored
// fragment per track to retime.
func fuzzSetup() (string, map[uint32]*media.Fragment, error) {
	fuzzOnce.Do(func() {
		fuzzTemplate, fuzzErr = os.MkdirTemp("", "sluice-fuzz-timeline")
		if fuzzErr != nil {
			return
		}
		body, err := os.ReadFile("../media/testdata/small.ismv")
		if err != nil {
			fuzzErr = err
			return
		}
		s, err := store.Open(fuzzTemplate, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			fuzzErr = err
			return
		}
		p, err := s.Create("ch")
		if err != nil {
			fuzzErr = err
			return
		}
		sp := media.NewStreamParser(bytes.NewReader(body), 1<<20, nil)
		fuzzFrags = map[uint32]*media.Fragment{}
		for {
			ev, err := sp.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				fuzzErr = err
				return
			}
			switch ev.Kind {
			case media.EventHeader:
				if _, err := p.SetHeader("s", ev.Header); err != nil {
					fuzzErr = err
					return
				}
			case media.EventFragment:
				if fuzzFrags[ev.Fragment.Info.TrackID] == nil {
					fuzzFrags[ev.Fragment.Info.TrackID] = ev.Fragment
				}
			}
		}
	})
	return fuzzTemplate, fuzzFrags, fuzzErr
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
}

// fuzzSeed encodes fragments as a fuzz input.
func fuzzSeed(recs ...[3]int64) []byte {
	var b []byte
	for _, r := range recs {
		b = append(b, byte(r[0]))
		b = binary.BigEndian.AppendUint64(b, uint64(r[1]))
		b = binary.BigEndian.AppendUint32(b, uint32(r[2]))
	}
	return b
}

// FuzzTimeline sends fuzzed fragment times through the store — AddFragment
// with its bounds, and the loader, for fragments an earlier version might
// have stored without them — and renders every manifest of the result, live
// with and without a DVR window and static. No manifest may list an
// out-of-order, overlapping, negative or overflowing time, a segment longer
// than its HLS target, or a program date time outside 1970–2300.
//
// Each 13-byte record is one fragment: op (bit 0: video or audio; bits 1-2:
// the start is the 64-bit value itself, the track's last end plus it as a
// small signed delta, or the same minus; bit 3: written to disk directly, as
// an old store would hold it), a 64-bit start, a 32-bit duration (0: the
// template's). The flags byte: bit 0 ends the tracks, bit 1 sets a one-minute
// DVR window, bit 2 anchors the point on the Unix epoch.
func FuzzTimeline(f *testing.F) {
	const s = 10_000_000
	f.Add(fuzzSeed([3]int64{0, 0, 2 * s}, [3]int64{1, -213333, 19413333}, [3]int64{2, 0, 0}, [3]int64{3, 0, 0}), byte(0))
	f.Add(fuzzSeed([3]int64{0, 800000, 2 * s}, [3]int64{1, 586667, 19413333}, [3]int64{2, 0, 0}, [3]int64{3, 0, 0}, [3]int64{2, 0, 0}), byte(1))
	f.Add(fuzzSeed([3]int64{0, 0, 2 * s}, [3]int64{2, 0, 0}, [3]int64{8, 9151314442897061205, 2 * s}, [3]int64{2, 0, 0}), byte(2))
	f.Add(fuzzSeed([3]int64{0, 0, 2 * s}, [3]int64{2, 0, 0}, [3]int64{0, 9151314442897061205, 2 * s}, [3]int64{2, 5 * s, 0}), byte(3))
	f.Add(fuzzSeed([3]int64{0, 100 * s, 2 * s}, [3]int64{4, s, 0}, [3]int64{2, 0, 0}, [3]int64{10, 1 << 32, 0}), byte(6))
	f.Add(fuzzSeed([3]int64{0, math.MaxInt64 - 5, 2 * s}, [3]int64{1, math.MinInt64, 2 * s}, [3]int64{0, 0, -1}), byte(0))
	f.Fuzz(func(t *testing.T, data []byte, flags byte) {
		tmpl, frags, err := fuzzSetup()
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 24*fuzzRecord {
			data = data[:24*fuzzRecord]
		}
		dir := t.TempDir()
		if err := copyTree(tmpl, dir); err != nil {
			t.Fatal(err)
		}
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		st, err := store.Open(dir, quiet)
		if err != nil {
			t.Fatal(err)
		}
		store.NoSync(st)
		p, err := st.Point("ch")
		if err != nil {
			t.Fatal(err)
		}
		if flags&4 != 0 {
			if _, err := p.AdoptAnchor(time.Unix(0, 0)); err != nil {
				t.Fatal(err)
			}
		}
		ids := map[uint32]string{}
		for _, si := range p.Streams() {
			ids = si.Tracks
		}
		ends := map[uint32]int64{}
		for len(data) >= fuzzRecord {
			op, v, d := data[0], int64(binary.BigEndian.Uint64(data[1:])), uint64(binary.BigEndian.Uint32(data[9:]))
			data = data[fuzzRecord:]
			tid := uint32(1 + op&1)
			tmplFrag := frags[tid]
			if d == 0 {
				d = tmplFrag.Info.Duration
			}
			start := v
			switch op >> 1 & 3 {
			case 1:
				start = ends[tid] + int64(int16(v))
			case 2:
				start = ends[tid] - int64(int16(v))
			}
			g, err := store.Retime(tmplFrag, start, d)
			if err != nil {
				continue
			}
			if op&8 != 0 {
				// An earlier version stored it, unchecked.
				path := filepath.Join(dir, "ch", "t", ids[tid], strconv.FormatInt(start, 10)+".m4s")
				if err := os.WriteFile(path, g.Data, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if _, err := p.AddFragment(ids[tid], g); err != nil {
				if !errors.Is(err, store.ErrImplausibleTime) {
					t.Fatalf("add %d+%d: %v", start, d, err)
				}
				continue
			}
			ends[tid] = start + int64(d)
		}
		if flags&1 != 0 {
			for _, id := range ids {
				if err := p.EndTrack(id); err != nil {
					t.Fatal(err)
				}
			}
		}
		// The loader sees what AddFragment refused and older versions kept.
		st2, err := store.Open(dir, quiet)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := st2.Point("ch")
		if err != nil {
			t.Fatal(err)
		}
		window := time.Duration(0)
		if flags&2 != 0 {
			window = time.Minute
		}
		v := p2.View(window)
		if !manifest.Live(v) {
			v = p2.View(0)
		}
		checkRendering(t, p2, v, manifest.Options{Now: time.Now(), DVRWindow: window, LookAhead: 2})
	})
}

// checkRendering renders every manifest of v and checks their times.
func checkRendering(t *testing.T, p *store.Point, v store.View, o manifest.Options) {
	t.Helper()
	stored := func(id string, tm int64) bool {
		if _, err := p.Lookup(id, tm); err == nil {
			return true
		}
		_, ok := manifest.Trimmed(v, id, tm)
		return ok
	}
	if b, err := manifest.DASH(v, o); err == nil {
		checkFuzzDASH(t, b, stored)
	} else if !errors.Is(err, manifest.ErrEmpty) {
		t.Fatalf("dash: %v", err)
	}
	if b, err := manifest.Smooth(v, o); err == nil {
		checkFuzzSmooth(t, b)
	} else if !errors.Is(err, manifest.ErrEmpty) {
		t.Fatalf("smooth: %v", err)
	}
	if _, err := manifest.HLSMaster(v, o); err != nil && !errors.Is(err, manifest.ErrEmpty) {
		t.Fatalf("hls master: %v", err)
	}
	for _, tr := range v.Tracks {
		b, err := manifest.HLSMedia(v, tr.ID, o)
		if err != nil {
			if !errors.Is(err, manifest.ErrEmpty) {
				t.Fatalf("hls %s: %v", tr.ID, err)
			}
			continue
		}
		checkFuzzHLS(t, tr.ID, b, stored)
	}
}

// timeline walks a SegmentTimeline and checks that its times increase
// without overlap or overflow; it returns the segment start times.
func timeline(t *testing.T, where string, tl *mpd.SegmentTimelineType) []int64 {
	t.Helper()
	var out []int64
	var end uint64
	for i, s := range tl.S {
		tm := end
		if s.T != nil {
			if i > 0 && *s.T < end {
				t.Fatalf("%s: S@t=%d before the previous end %d", where, *s.T, end)
			}
			tm = *s.T
		} else if i == 0 {
			t.Fatalf("%s: first S without t", where)
		}
		if s.D == 0 || s.R < 0 {
			t.Fatalf("%s: S d=%d r=%d", where, s.D, s.R)
		}
		for range s.R + 1 {
			if tm > math.MaxInt64 || s.D > math.MaxInt64-tm {
				t.Fatalf("%s: time %d + %d overflows", where, tm, s.D)
			}
			out = append(out, int64(tm))
			tm += s.D
		}
		end = tm
	}
	return out
}

func checkFuzzDASH(t *testing.T, b []byte, stored func(string, int64) bool) {
	t.Helper()
	m, err := mpd.ReadFromString(string(b))
	if err != nil {
		t.Fatalf("dash: %v\n%s", err, b)
	}
	if m.AvailabilityStartTime != "" {
		checkDate(t, "dash availabilityStartTime", string(m.AvailabilityStartTime))
		checkDate(t, "dash publishTime", string(m.PublishTime))
	}
	for _, as := range m.Periods[0].AdaptationSets {
		for _, r := range as.Representations {
			st := r.SegmentTemplate
			if st == nil {
				st = as.SegmentTemplate
			}
			if st == nil || st.SegmentTimeline == nil {
				t.Fatalf("dash %s: no SegmentTimeline", r.Id)
			}
			ts := timeline(t, "dash "+r.Id, st.SegmentTimeline)
			if st.PresentationTimeOffset != nil && len(ts) > 0 && *st.PresentationTimeOffset > uint64(ts[0]) {
				t.Errorf("dash %s: presentationTimeOffset %d after the first segment %d", r.Id, *st.PresentationTimeOffset, ts[0])
			}
			for _, tm := range ts {
				if !stored(r.Id, tm) {
					t.Fatalf("dash %s: segment %d names no stored fragment", r.Id, tm)
				}
			}
		}
	}
}

func checkDate(t *testing.T, what, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s %q: %v", what, s, err)
	}
	if tm.Year() < 1970 || tm.Year() > 2300 {
		t.Fatalf("%s %s: year %d", what, s, tm.Year())
	}
	return tm
}

func checkFuzzSmooth(t *testing.T, b []byte) {
	t.Helper()
	var m struct {
		Duration uint64 `xml:"Duration,attr"`
		Streams  []struct {
			Name   string `xml:"Name,attr"`
			Chunks int    `xml:"Chunks,attr"`
			C      []struct {
				T *uint64 `xml:"t,attr"`
				D uint64  `xml:"d,attr"`
				R int     `xml:"r,attr"`
			} `xml:"c"`
		} `xml:"StreamIndex"`
	}
	if err := xml.Unmarshal(b, &m); err != nil {
		t.Fatalf("smooth: %v\n%s", err, b)
	}
	for _, s := range m.Streams {
		var end uint64
		n := 0
		for i, c := range s.C {
			tm := end
			if c.T != nil {
				if i > 0 && *c.T < end {
					t.Fatalf("smooth %s: c@t=%d before the previous end %d", s.Name, *c.T, end)
				}
				tm = *c.T
			} else if i == 0 {
				t.Fatalf("smooth %s: first c without t", s.Name)
			}
			for range max(c.R, 1) {
				if c.D == 0 || tm > math.MaxInt64 || c.D > math.MaxInt64-tm {
					t.Fatalf("smooth %s: time %d + %d", s.Name, tm, c.D)
				}
				tm += c.D
				n++
			}
			end = tm
		}
		if n != s.Chunks {
			t.Fatalf("smooth %s: Chunks=%d, %d listed", s.Name, s.Chunks, n)
		}
	}
}

func checkFuzzHLS(t *testing.T, id string, b []byte, stored func(string, int64) bool) {
	t.Helper()
	var target float64 = -1
	var last time.Time
	prev := int64(math.MinInt64)
	var dur float64
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "#EXT-X-TARGETDURATION:"):
			target, _ = strconv.ParseFloat(strings.TrimPrefix(l, "#EXT-X-TARGETDURATION:"), 64)
		case strings.HasPrefix(l, "#EXT-X-PROGRAM-DATE-TIME:"):
			tm := checkDate(t, "hls "+id+" program date time", strings.TrimPrefix(l, "#EXT-X-PROGRAM-DATE-TIME:"))
			if tm.Before(last) {
				t.Fatalf("hls %s: program date time %v before %v", id, tm, last)
			}
			last = tm
		case strings.HasPrefix(l, "#EXTINF:"):
			d, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(l, "#EXTINF:"), ","), 64)
			if err != nil || d <= 0 || math.Round(d) > target {
				t.Fatalf("hls %s: %s with target %v", id, l, target)
			}
			dur = d
		case strings.HasSuffix(l, ".m4s"):
			tm, err := strconv.ParseInt(strings.TrimSuffix(l, ".m4s"), 10, 64)
			if err != nil || tm <= prev || tm < 0 {
				t.Fatalf("hls %s: segment %q after %d", id, l, prev)
			}
			if !stored(id, tm) {
				t.Fatalf("hls %s: segment %d names no stored fragment", id, tm)
			}
			prev = tm
			if !last.IsZero() {
				last = last.Add(time.Duration(dur * float64(time.Second)))
				last = last.Add(-time.Millisecond) // rounding of the next date
			}
		}
	}
}
