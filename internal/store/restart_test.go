package store

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/media"
)

// firsts is the first start of every track of the fixture, as an encoder
// that restarted with the same times would send them.
func firsts(ids map[uint32]string, frags []*media.Fragment) map[string]int64 {
	out := map[string]int64{}
	for _, f := range frags {
		id := ids[f.Info.TrackID]
		if s, ok := out[id]; !ok || f.Info.Start < s {
			out[id] = f.Info.Start
		}
	}
	return out
}

// ends is the end of every track's timeline.
func ends(p *Point) map[string]int64 {
	out := map[string]int64{}
	for _, t := range p.View(0).Tracks {
		if n := len(t.Frags); n > 0 {
			out[t.ID] = t.Frags[n-1].End()
		}
	}
	return out
}

// addShifted stores the fixture's fragments moved by a restart's offset.
func addShifted(t *testing.T, p *Point, ids map[uint32]string, frags []*media.Fragment, offsetNs int64) {
	t.Helper()
	for _, f := range frags {
		id := ids[f.Info.TrackID]
		ti, err := p.TrackInfo(id)
		if err != nil {
			t.Fatal(err)
		}
		data, fi, err := media.Shift(f.Data, f.Info, OffsetTicks(offsetNs, ti.Timescale))
		if err != nil {
			t.Fatal(err)
		}
		if res, err := p.AddFragment(id, &media.Fragment{Info: fi, Data: data}); err != nil || res != Added {
			t.Fatalf("add shifted %s/%d: %v %v", id, fi.Start, res, err)
		}
	}
}

// TestRestartPlacesAfter: the restarted session goes on right after what
// is stored — the track that ends last without a gap, none overlapping —
// every track marks the boundary once, and the offset, the record and the
// boundaries survive a restart of the process.
func TestRestartPlacesAfter(t *testing.T) {
	dir := t.TempDir()
	_, p, ids, frags := fill(t, dir)
	before := ends(p)
	first := firsts(ids, frags)
	push := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	rec, joined, err := p.Restart("s", first, push)
	if err != nil || joined {
		t.Fatalf("restart: %v (joined %v)", err, joined)
	}
	exact := false
	startNs := int64(1<<63 - 1)
	for id, e := range before {
		ti, _ := p.TrackInfo(id)
		at := first[id] + OffsetTicks(rec.OffsetNs, ti.Timescale)
		if at < e {
			t.Errorf("%s: restarted at %d, before the stored end %d", id, at, e)
		}
		exact = exact || at == e
		startNs = min(startNs, at*int64(time.Second)/int64(ti.Timescale))
		if rec.Ends[id] != e {
			t.Errorf("%s: recorded end %d, want %d", id, rec.Ends[id], e)
		}
	}
	if !exact {
		t.Error("no track goes on without a gap")
	}
	if rec.StartNs != startNs || !rec.PushStart.Equal(push) || rec.Stream != "s" {
		t.Errorf("record %+v, want start %d", rec, startNs)
	}
	addShifted(t, p, ids, frags, rec.OffsetNs)
	check := func(p *Point) {
		t.Helper()
		if got := p.StreamOffset("s"); got != rec.OffsetNs {
			t.Errorf("stream offset %d, want %d", got, rec.OffsetNs)
		}
		if rs := p.Restarts(); len(rs) != 1 || !reflect.DeepEqual(rs[0], rec) {
			t.Errorf("restarts %+v, want [%+v]", rs, rec)
		}
		for _, tv := range p.View(0).Tracks {
			if !reflect.DeepEqual(tv.Breaks, []int64{before[tv.ID]}) {
				t.Errorf("%s: breaks %v, want [%d]", tv.ID, tv.Breaks, before[tv.ID])
			}
			if g := Gaps(tv.Frags, tv.Breaks, len(tv.Frags)-1); g != 1 {
				t.Errorf("%s: %d discontinuities, want the restart alone", tv.ID, g)
			}
		}
	}
	check(p)
	check(reopen(t, dir, "ch"))

	// Another node with the same fragments places the same restart alike.
	_, q, qids, qfrags := fill(t, t.TempDir())
	again, _, err := q.Restart("s", firsts(qids, qfrags), push)
	if err != nil || !reflect.DeepEqual(again, rec) {
		t.Fatalf("second node: %+v (%v), want %+v", again, err, rec)
	}
}

// TestRestartDiscontinuityKeptByPrune: retention that deletes the
// fragments around a restart boundary keeps counting it (HLS
// discontinuity sequence), also where the restarted track has no gap.
func TestRestartDiscontinuityKeptByPrune(t *testing.T) {
	dir := t.TempDir()
	_, p, ids, frags := fill(t, dir)
	rec, _, err := p.Restart("s", firsts(ids, frags), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	addShifted(t, p, ids, frags, rec.OffsetNs)
	want := map[string]int64{}
	for _, tv := range p.View(0).Tracks {
		want[tv.ID] = Gaps(tv.Frags, tv.Breaks, len(tv.Frags)-1)
	}
	// Keep about the last second: the boundary and what was before it go.
	if n, err := p.Prune(time.Second); err != nil || n == 0 {
		t.Fatalf("prune: %d %v", n, err)
	}
	for _, q := range []*Point{p, reopen(t, dir, "ch")} {
		for _, tv := range q.View(0).Tracks {
			if got := tv.Disc + Gaps(tv.Frags, tv.Breaks, len(tv.Frags)-1); got != want[tv.ID] {
				t.Errorf("%s: %d discontinuities after the prune, want %d", tv.ID, got, want[tv.ID])
			}
		}
	}
}

// TestRestartJoin: a stream that restarts within RestartJoin of another
// takes its offset (renditions stay aligned); later, it gets one of its own
// that clears what the first one stored since.
func TestRestartJoin(t *testing.T) {
	_, p, ids, frags := fill(t, t.TempDir())
	h, _ := fixture(t)
	if _, err := p.SetHeader("s2", h); err != nil {
		t.Fatal(err)
	}
	first := firsts(ids, frags)
	t0 := time.Now()
	r1, joined, err := p.Restart("s", first, t0)
	if err != nil || joined {
		t.Fatal(err, joined)
	}
	addShifted(t, p, ids, frags, r1.OffsetNs)
	r2, joined, err := p.Restart("s2", first, t0.Add(2*time.Second))
	if err != nil || !joined || r2.OffsetNs != r1.OffsetNs || p.StreamOffset("s2") != r1.OffsetNs {
		t.Fatalf("second stream: %+v joined %v (%v), want offset %d", r2, joined, err, r1.OffsetNs)
	}
	if n := len(p.Restarts()); n != 1 {
		t.Fatalf("%d restart records after a join, want 1", n)
	}
	r3, joined, err := p.Restart("s2", first, t0.Add(RestartJoin+time.Second))
	if err != nil || joined || r3.OffsetNs <= r1.OffsetNs {
		t.Fatalf("late restart: %+v joined %v (%v)", r3, joined, err)
	}
	for id, e := range ends(p) {
		ti, _ := p.TrackInfo(id)
		if first[id]+OffsetTicks(r3.OffsetNs, ti.Timescale) < e {
			t.Errorf("%s: the late restart overlaps what is stored", id)
		}
	}
}

func TestPlace(t *testing.T) {
	_, p, ids, frags := emptyPoint(t, t.TempDir())
	var hole *media.Fragment
	for i, f := range frags {
		if i == 2 && f.Info.TrackID == frags[0].Info.TrackID {
			hole = f
			continue
		}
		if _, err := p.AddFragment(ids[f.Info.TrackID], f); err != nil {
			t.Fatal(err)
		}
	}
	if hole == nil {
		t.Fatal("fixture: no third fragment of the first track")
	}
	id := ids[hole.Info.TrackID]
	f0 := frags[0]
	e := ends(p)[id]
	other := append(append([]byte(nil), f0.Data...), 0)
	for _, c := range []struct {
		name  string
		start int64
		dur   uint64
		data  []byte
		want  Placement
	}{
		{"copy", f0.Info.Start, f0.Info.Duration, f0.Data, PlaceDuplicate},
		{"other bytes", f0.Info.Start, f0.Info.Duration, other, PlaceDiffers},
		{"after", e, 1000, nil, PlaceAfter},
		{"hole", hole.Info.Start, hole.Info.Duration, hole.Data, PlaceGap},
		{"overlap", f0.Info.Start + 1, f0.Info.Duration, nil, PlaceOverlap},
		{"too long for the hole", hole.Info.Start, hole.Info.Duration + 1, nil, PlaceOverlap},
	} {
		if got, end, ok := p.Place(id, c.start, c.dur, c.data); got != c.want || end != e || !ok {
			t.Errorf("%s: %v (end %d %v), want %v (end %d)", c.name, got, end, ok, c.want, e)
		}
	}
	if got, _, ok := p.Place("nope", 0, 1, nil); got != PlaceAfter || ok {
		t.Errorf("unknown track: %v %v", got, ok)
	}
}

// TestArchiveRestart: the presentation before a restart becomes an
// on-demand asset named after the point and its start; the point keeps the
// restarted session alone.
func TestArchiveRestart(t *testing.T) {
	dir := t.TempDir()
	s, p, ids, frags := fill(t, dir)
	old := p.View(0)
	var from time.Duration
	for i, tv := range old.Tracks {
		if d := fromTicks(tv.Frags[0].Start, tv.Info.Timescale); i == 0 || d < from {
			from = d
		}
	}
	want := "ch-" + old.Meta.Anchor.Add(from).UTC().Format("20060102T150405Z")
	rec, _, err := p.Restart("s", firsts(ids, frags), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	addShifted(t, p, ids, frags, rec.OffsetNs)
	asset, err := s.ArchiveRestart("ch", rec)
	if err != nil {
		t.Fatal(err)
	}
	if asset != want {
		t.Fatalf("asset %q, want %q (point and UTC start)", asset, want)
	}
	a, err := s.Point(asset)
	if err != nil {
		t.Fatal(err)
	}
	av := a.View(0)
	if !av.Ended || !av.Meta.VOD {
		t.Error("the archived presentation is not a static on-demand asset")
	}
	for _, tv := range old.Tracks {
		got, _ := av.Track(tv.ID)
		if !reflect.DeepEqual(got.Frags, tv.Frags) {
			t.Errorf("%s: asset holds %d fragments, want the %d before the restart", tv.ID, len(got.Frags), len(tv.Frags))
		}
		live, _ := p.View(0).Track(tv.ID)
		if len(live.Frags) != len(tv.Frags) || live.Frags[0].Start < rec.Ends[tv.ID] {
			t.Errorf("%s: the point kept %d fragments from %d, want the %d of the restarted session", tv.ID,
				len(live.Frags), live.Frags[0].Start, len(tv.Frags))
		}
		// Linked, not copied: retention of the point leaves the asset whole.
		if _, err := os.Stat(filepath.Join(dir, asset, "t", tv.ID, fragName(tv.Frags[0].Start))); err != nil {
			t.Error(err)
		}
	}
	if rs := p.Restarts(); len(rs) != 1 || rs[0].Archived != asset {
		t.Errorf("record %+v does not name the asset", rs)
	}
	if again, err := s.ArchiveRestart("ch", rec); err != nil || again != "" {
		t.Errorf("second archive: %q %v, want nothing to do", again, err)
	}
}

// TestHeaderPending: a header-only push leaves its header in memory for
// the next body and nothing on disk; SetHeader commits it.
func TestHeaderPending(t *testing.T) {
	dir := t.TempDir()
	_, p := pointCh(t, dir)
	h, frags := fixture(t)
	ids, err := p.CheckHeader("s", h)
	if err != nil || len(ids) != len(h.Tracks) {
		t.Fatalf("check: %v %v", ids, err)
	}
	p.KeepHeader("s", h)
	if got, err := p.StreamHeader("s"); err != nil || got != h {
		t.Fatalf("pending header: %v %v", got, err)
	}
	if len(p.Streams()) != 0 || len(p.View(0).Tracks) != 0 {
		t.Fatal("a pending header created a stream or tracks")
	}
	if _, err := reopen(t, dir, "ch").StreamHeader("s"); err == nil {
		t.Fatal("a pending header survived a restart")
	}
	if _, err := p.SetHeader("s", h); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddFragment(ids[frags[0].Info.TrackID], frags[0]); err != nil {
		t.Fatal(err)
	}
	if len(reopen(t, dir, "ch").Streams()) != 1 {
		t.Fatal("the committed header is not stored")
	}
}
