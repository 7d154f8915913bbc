package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/media"
)

// lastOf returns the fixture's last fragment of a track.
func lastOf(frags []*media.Fragment, trackID uint32) *media.Fragment {
	var out *media.Fragment
	for _, f := range frags {
		if f.Info.TrackID == trackID {
			out = f
		}
	}
	return out
}

func retime(t *testing.T, f *media.Fragment, start int64, dur uint64) *media.Fragment {
	t.Helper()
	g, err := Retime(f, start, dur)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestImplausibleTimes: AddFragment refuses (before writing anything) a
// fragment whose time lies far outside the point's timeline — a changed
// tfxd byte, an overflowing duration — and accepts what real encoders send:
// priming before zero, an encoder going back to zero, a gap the wall clock
// explains.
func TestImplausibleTimes(t *testing.T) {
	dir := t.TempDir()
	_, p, ids, frags := fill(t, dir)
	last := lastOf(frags, 1)
	id := ids[1]
	ts := int64(fixtureTimescale)
	end := last.Info.Start + int64(last.Info.Duration)
	d := last.Info.Duration
	cases := []struct {
		name  string
		start int64
		dur   uint64
		ok    bool
	}{
		{"high byte of tfxd changed", 9151314442897061205, d, false},
		{"fifth byte of tfxd changed", last.Info.Start + 1<<32, d, false},
		{"start past the Unix time", (time.Now().Unix() + 3600) * ts, d, false},
		{"duration overflows", end, math.MaxUint64, false},
		{"duration beyond the bound", end, uint64(11 * 60 * ts), false},
		{"duration zero", end, 0, false},
		{"far before zero", -2 * 60 * ts, d, false},
		{"start plus duration overflows", math.MaxInt64 - 5, d, false},
		{"AAC priming before zero", -213333, d, true},
		{"encoder restarted from zero", 0, d, true},
		{"next fragment", end, d, true},
		{"small jump ahead", end + 40*ts, d, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := p.View(0)
			f := retime(t, last, c.start, c.dur)
			res, err := p.AddFragment(id, f)
			if c.ok {
				if err != nil || res != Added {
					t.Fatalf("refused: %v %v", res, err)
				}
				return
			}
			if !errors.Is(err, ErrImplausibleTime) {
				t.Fatalf("got %v %v, want ErrImplausibleTime", res, err)
			}
			if _, err := os.Stat(filepath.Join(dir, "ch", "t", id, fragName(c.start))); !os.IsNotExist(err) {
				t.Errorf("the refused fragment reached the disk: %v", err)
			}
			after := p.View(0)
			if len(after.Tracks[0].Frags) != len(before.Tracks[0].Frags) {
				t.Errorf("the index changed: %d fragments, %d before", len(after.Tracks[0].Frags), len(before.Tracks[0].Frags))
			}
		})
	}
}

// TestGapExplainedByClock: a point whose anchor lies two hours back (a
// channel that has run that long, or an epoch-anchored encoder) accepts a
// fragment far ahead of its track's last one as long as it is not in the
// future: an encoder that was away for the gap.
func TestGapExplainedByClock(t *testing.T) {
	_, p, ids, frags := emptyPoint(t, t.TempDir())
	if _, err := p.AdoptAnchor(time.Now().Add(-2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	f := frags[0]
	if _, err := p.AddFragment(ids[f.Info.TrackID], f); err != nil {
		t.Fatal(err)
	}
	ts := int64(fixtureTimescale)
	late := retime(t, f, 110*60*ts, f.Info.Duration)
	if _, err := p.AddFragment(ids[f.Info.TrackID], late); err != nil {
		t.Fatalf("a gap of 110 min in a channel anchored 2 h ago: %v", err)
	}
	future := retime(t, f, 130*60*ts, f.Info.Duration)
	if _, err := p.AddFragment(ids[f.Info.TrackID], future); !errors.Is(err, ErrImplausibleTime) {
		t.Fatalf("a fragment 10 min in the future, 20 min past the track's end: %v", err)
	}
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestQuarantineOnLoad: a fragment with an absurd time that an earlier
// version stored is quarantined when the store loads (renamed, logged,
// never indexed), so it can no longer hide the live window; the fragments
// stored after it are listed again. A tail that the wall clock explains
// (the file was written when its time came) stays.
func TestQuarantineOnLoad(t *testing.T) {
	cases := []struct {
		name       string
		start      func(end, ts int64) int64
		mtime      func(end, ts int64, anchor time.Time) time.Time
		quarantine bool
	}{
		{"absurd (a DASH S@t seen in the field)", func(int64, int64) int64 { return 9151314442897061205 },
			nil, true},
		{"one tfxd byte changed", func(end, ts int64) int64 { return end - ts + 1<<32 },
			nil, true},
		{"a gap the wall clock explains", func(end, ts int64) int64 { return end + 30*60*ts },
			func(end, ts int64, anchor time.Time) time.Time {
				return anchor.Add(time.Duration(end/ts)*time.Second + 30*time.Minute)
			}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			_, p, ids, frags := fill(t, dir)
			id := ids[1]
			before := p.View(0).Tracks[0]
			last := lastOf(frags, 1)
			ts := int64(fixtureTimescale)
			end := before.Frags[len(before.Frags)-1].End()
			start := c.start(end, ts)
			out := retime(t, last, start, last.Info.Duration)
			path := filepath.Join(dir, "ch", "t", id, fragName(start))
			if err := os.WriteFile(path, out.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			if c.mtime != nil {
				at := c.mtime(end, ts, p.Meta().Anchor)
				if err := os.Chtimes(path, at, at); err != nil {
					t.Fatal(err)
				}
			}
			var logs logBuffer
			s2, err := Open(dir, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			p2, err := s2.Point("ch")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := p2.View(0).Track(id)
			_, serr := os.Stat(path + QuarantineSuffix)
			if !c.quarantine {
				if len(got.Frags) != len(before.Frags)+1 || serr == nil {
					t.Fatalf("plausible tail: %d fragments (want %d), quarantine file: %v", len(got.Frags), len(before.Frags)+1, serr)
				}
				return
			}
			if len(got.Frags) != len(before.Frags) || got.Frags[len(got.Frags)-1] != before.Frags[len(before.Frags)-1] {
				t.Fatalf("after load: %d fragments ending at %+v; want the %d stored before the outlier",
					len(got.Frags), got.Frags[len(got.Frags)-1], len(before.Frags))
			}
			if serr != nil {
				t.Errorf("the outlier was not kept as %s: %v", filepath.Base(path)+QuarantineSuffix, serr)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("the outlier is still under its fragment name: %v", err)
			}
			if !strings.Contains(logs.String(), "quarantined a fragment with an implausible time") {
				t.Errorf("no log line; logs:\n%s", logs.String())
			}
			// The live window ends at the real edge again.
			d := time.Duration(got.Seconds(int64(got.Frags[0].Duration)) * float64(time.Second))
			w, _ := p2.View(2 * d).Track(id)
			if len(w.Frags) != 2 || w.Frags[1] != before.Frags[len(before.Frags)-1] {
				t.Errorf("window of two fragments: %+v", w.Frags)
			}
			// A second start finds nothing more to do.
			if got3, _ := reopen(t, dir, "ch").View(0).Track(id); len(got3.Frags) != len(before.Frags) {
				t.Errorf("second load: %d fragments", len(got3.Frags))
			}
		})
	}
}

// TestExtent: a track remembers its first and longest fragments across
// retention and restarts; a track.json from before extents gets them from
// the fragments on disk.
func TestExtent(t *testing.T) {
	dir := t.TempDir()
	_, p, ids, frags := fill(t, dir)
	id := ids[2]
	tv, _ := p.View(0).Track(id)
	want := Extent{First: tv.Frags[0].Start, FirstDuration: tv.Frags[0].Duration, FirstSize: tv.Frags[0].Size}
	if want.FirstSize <= 0 {
		t.Fatalf("first fragment size %d", want.FirstSize)
	}
	for _, f := range tv.Frags {
		want.MaxDuration = max(want.MaxDuration, f.Duration)
	}
	if tv.Extent != want {
		t.Fatalf("extent %+v, want %+v", tv.Extent, want)
	}
	d := time.Duration(tv.Seconds(int64(tv.Frags[0].Duration)) * float64(time.Second))
	if _, err := p.Prune(2 * d); err != nil {
		t.Fatal(err)
	}
	if got, _ := reopen(t, dir, "ch").View(0).Track(id); got.Extent != want || len(got.Frags) == len(tv.Frags) {
		t.Fatalf("after prune and restart: extent %+v (%d fragments), want %+v", got.Extent, len(got.Frags), want)
	}
	// A longer fragment raises MaxDuration.
	last := lastOf(frags, 2)
	end := tv.Frags[len(tv.Frags)-1].End()
	long := retime(t, last, end, want.MaxDuration*2)
	p2 := reopen(t, dir, "ch")
	if _, err := p2.AddFragment(id, long); err != nil {
		t.Fatal(err)
	}
	want.MaxDuration *= 2
	if got, _ := reopen(t, dir, "ch").View(0).Track(id); got.Extent != want {
		t.Fatalf("after a longer fragment: %+v, want %+v", got.Extent, want)
	}

	// A store written before extents: track.json without one.
	dir2 := t.TempDir()
	_, p3, _, _ := fill(t, dir2)
	tv3, _ := p3.View(0).Track(id)
	tj := filepath.Join(dir2, "ch", "t", id, trackFile)
	var raw map[string]any
	b, _ := os.ReadFile(tj)
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	delete(raw, "extent")
	b, _ = json.Marshal(raw)
	if err := os.WriteFile(tj, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := reopen(t, dir2, "ch").View(0).Track(id); got.Extent != tv3.Extent || !got.Extent.Known() {
		t.Fatalf("old track.json: extent %+v, want %+v", got.Extent, tv3.Extent)
	}
}

// fixtureTimescale is the timescale of every track of small.ismv.
const fixtureTimescale = 10_000_000
