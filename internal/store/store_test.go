package store

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/media"
)

func fixture(t testing.TB) (*media.Header, []*media.Fragment) {
	t.Helper()
	body, err := os.ReadFile("../media/testdata/small.ismv")
	if err != nil {
		t.Fatal(err)
	}
	p := media.NewStreamParser(bytes.NewReader(body), 1<<20, nil)
	var frags []*media.Fragment
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			return p.Header(), frags
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == media.EventFragment {
			frags = append(frags, ev.Fragment)
		}
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// pointCh opens a store in dir and creates point ch, with no stream yet.
func pointCh(t *testing.T, dir string) (*Store, *Point) {
	t.Helper()
	s, err := Open(dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Create("ch")
	if err != nil {
		t.Fatal(err)
	}
	return s, p
}

// emptyPoint opens a store in dir and creates point ch with the fixture's
// stream header; it returns the track IDs by fixture track number and the
// fixture's fragments, none of them stored yet.
func emptyPoint(t *testing.T, dir string) (*Store, *Point, map[uint32]string, []*media.Fragment) {
	t.Helper()
	s, p := pointCh(t, dir)
	h, frags := fixture(t)
	ids, err := p.SetHeader("s", h)
	if err != nil {
		t.Fatal(err)
	}
	return s, p, ids, frags
}

// reopen opens the store in dir again, as after a restart, and returns its
// point name.
func reopen(t *testing.T, dir, name string) *Point {
	t.Helper()
	s, err := Open(dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Point(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fill is emptyPoint with every fixture fragment stored.
func fill(t *testing.T, dir string) (*Store, *Point, map[uint32]string, []*media.Fragment) {
	t.Helper()
	s, p, ids, frags := emptyPoint(t, dir)
	for _, f := range frags {
		if res, err := p.AddFragment(ids[f.Info.TrackID], f); err != nil || res != Added {
			t.Fatalf("add: %v %v", res, err)
		}
	}
	return s, p, ids, frags
}

func TestAddDedupAndReload(t *testing.T) {
	dir := t.TempDir()
	_, p, ids, frags := fill(t, dir)
	f := frags[0]
	if res, _ := p.AddFragment(ids[f.Info.TrackID], f); res != Duplicate {
		t.Fatalf("same bytes: %v, want Duplicate", res)
	}
	changed := &media.Fragment{Info: f.Info, Data: append(append([]byte(nil), f.Data...), 0)}
	if res, _ := p.AddFragment(ids[f.Info.TrackID], changed); res != Differs {
		t.Fatalf("other bytes: %v, want Differs", res)
	}
	before := p.View(0)
	// Leftovers of a crash: a temporary file and a torn fragment file.
	tdir := filepath.Join(dir, "ch", "t", ids[f.Info.TrackID])
	os.WriteFile(filepath.Join(tdir, ".tmp-123"), []byte("partial"), 0o644)
	os.WriteFile(filepath.Join(tdir, "999999999.m4s"), f.Data[:len(f.Data)/2], 0o644)

	s2, err := Open(dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	p2, err := s2.Point("ch")
	if err != nil {
		t.Fatal(err)
	}
	after := p2.View(0)
	if len(after.Tracks) != len(before.Tracks) {
		t.Fatalf("tracks %d after reload, %d before", len(after.Tracks), len(before.Tracks))
	}
	for i := range before.Tracks {
		a, b := before.Tracks[i].Frags, after.Tracks[i].Frags
		if len(a) != len(b) {
			t.Fatalf("track %s: %d fragments after reload, %d before", before.Tracks[i].ID, len(b), len(a))
		}
		for j := range a {
			if a[j] != b[j] {
				t.Fatalf("fragment %d: %+v vs %+v", j, a[j], b[j])
			}
		}
	}
	for _, n := range []string{".tmp-123", "999999999.m4s"} {
		if _, err := os.Stat(filepath.Join(tdir, n)); !os.IsNotExist(err) {
			t.Errorf("%s survived recovery", n)
		}
	}
	if _, err := s2.Point("../etc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("path traversal name: %v", err)
	}
}

func TestWindowAndPrune(t *testing.T) {
	s, p, _, _ := fill(t, t.TempDir())
	var evs []FragmentsPruned
	s.OnPrune(func(ev FragmentsPruned) { evs = append(evs, ev) })
	all := p.View(0)
	tv := all.Tracks[0]
	n := len(tv.Frags)
	if n < 5 {
		t.Fatalf("fixture too short: %d fragments", n)
	}
	d := time.Duration(tv.Seconds(int64(tv.Frags[0].Duration)) * float64(time.Second))
	w := p.View(2 * d)
	if got := len(w.Tracks[0].Frags); got != 2 {
		t.Fatalf("window of 2 fragments holds %d", got)
	}
	if w.Tracks[0].First != int64(n-2) {
		t.Fatalf("First %d, want %d", w.Tracks[0].First, n-2)
	}
	pruned, err := p.Prune(3 * d)
	if err != nil || pruned == 0 {
		t.Fatalf("prune: %d %v", pruned, err)
	}
	after := p.View(0).Tracks[0]
	if len(after.Frags) != 3 || after.First != int64(n-3) {
		t.Fatalf("after prune: %d fragments, First %d", len(after.Frags), after.First)
	}
	if _, _, err := p.ReadFragment(tv.ID, tv.Frags[0].Start); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pruned fragment still readable: %v", err)
	}
	// The prune hook got, per track, exactly the deleted fragments.
	got := 0
	for _, ev := range evs {
		if ev.Point != p.Name {
			t.Errorf("hook for point %q", ev.Point)
		}
		got += len(ev.Starts)
		if ev.Track == tv.ID {
			want := n - 3
			if len(ev.Starts) != want || ev.Starts[0] != tv.Frags[0].Start || ev.Starts[want-1] != tv.Frags[want-1].Start {
				t.Errorf("track %s: hook got %v, want the first %d starts", tv.ID, ev.Starts, want)
			}
		}
	}
	if got != pruned {
		t.Errorf("hooks got %d fragments, Prune deleted %d", got, pruned)
	}
}

func TestConfigChangeRefused(t *testing.T) {
	_, p, _, _ := fill(t, t.TempDir())
	h, _ := fixture(t)
	h2 := *h
	h2.Tracks = append([]media.TrackInfo(nil), h.Tracks...)
	h2.Tracks[0].ConfigHash = "different"
	if _, err := p.SetHeader("s", &h2); !errors.Is(err, media.ErrConfigChanged) {
		t.Fatalf("changed config: %v", err)
	}
}

// TestDiscontinuitySequence: a track with a gap (its second fragment never
// arrived) keeps counting that gap in Disc when the DVR window or retention
// leaves it behind, across a restart too.
func TestDiscontinuitySequence(t *testing.T) {
	dir := t.TempDir()
	_, p, ids, frags := emptyPoint(t, dir)
	seen := map[uint32]int{}
	for _, f := range frags {
		seen[f.Info.TrackID]++
		if seen[f.Info.TrackID] == 2 {
			continue // the gap
		}
		if _, err := p.AddFragment(ids[f.Info.TrackID], f); err != nil {
			t.Fatal(err)
		}
	}
	tv := p.View(0).Tracks[0]
	n := len(tv.Frags)
	if n < 4 || tv.Disc != 0 || Gaps(tv.Frags, nil, n-1) != 1 {
		t.Fatalf("%d fragments, Disc %d, %d gaps", n, tv.Disc, Gaps(tv.Frags, nil, n-1))
	}
	d := time.Duration(tv.Seconds(int64(tv.Frags[n-1].Duration)) * float64(time.Second))
	cases := []struct {
		window time.Duration
		first  int64
		disc   int64
	}{
		{0, 0, 0},
		{time.Duration(n-1) * d, 1, 1}, // starts right after the gap
		{2 * d, int64(n - 2), 1},
	}
	for _, c := range cases {
		got := p.View(c.window).Tracks[0]
		if got.Frags[0].Start != tv.Frags[c.first].Start || got.Disc != c.disc {
			t.Errorf("window %v: first %d, Disc %d; want fragment %d, Disc %d", c.window, got.Frags[0].Start, got.Disc, c.first, c.disc)
		}
	}
	// Retention deletes the fragment before the gap, then the one after it.
	for _, keep := range []time.Duration{time.Duration(n-1) * d, time.Duration(n-2) * d} {
		if _, err := p.Prune(keep); err != nil {
			t.Fatal(err)
		}
		if got := p.View(0).Tracks[0]; got.Disc != 1 {
			t.Errorf("after prune to %v: Disc %d, want 1", keep, got.Disc)
		}
	}
	p2 := reopen(t, dir, "ch")
	if got := p2.View(0).Tracks[0]; got.Disc != 1 || len(got.Frags) != n-2 {
		t.Errorf("after restart: Disc %d, %d fragments; want 1, %d", got.Disc, len(got.Frags), n-2)
	}
}

// TestInterruptedPrune: a prune that wrote the index but died before
// removing the files leaves fragment files behind; the next start must not
// index them again (they are counted in Pruned already, and the media
// sequence would shift), and removes them.
func TestInterruptedPrune(t *testing.T) {
	dir := t.TempDir()
	_, p, _, _ := fill(t, dir)
	tv := p.View(0).Tracks[0]
	n := len(tv.Frags)
	tdir := filepath.Join(dir, "ch", "t", tv.ID)
	saved := map[string][]byte{}
	for _, f := range tv.Frags[:2] {
		name := fragName(f.Start)
		b, err := os.ReadFile(filepath.Join(tdir, name))
		if err != nil {
			t.Fatal(err)
		}
		saved[name] = b
	}
	d := time.Duration(tv.Seconds(int64(tv.Frags[n-1].Duration)) * float64(time.Second))
	if _, err := p.Prune(time.Duration(n-2) * d); err != nil {
		t.Fatal(err)
	}
	want := p.View(0).Tracks[0]
	if want.First != 2 || len(want.Frags) != n-2 {
		t.Fatalf("after prune: First %d, %d fragments", want.First, len(want.Frags))
	}
	for name, b := range saved { // the removals never happened
		if err := os.WriteFile(filepath.Join(tdir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, ok := reopen(t, dir, "ch").View(0).Track(tv.ID)
	if !ok || got.First != 2 || len(got.Frags) != n-2 || got.Frags[0] != want.Frags[0] {
		t.Fatalf("after restart: First %d, %d fragments; want 2, %d starting at %+v",
			got.First, len(got.Frags), n-2, want.Frags[0])
	}
	for name := range saved {
		if _, err := os.Stat(filepath.Join(tdir, name)); !os.IsNotExist(err) {
			t.Errorf("%s was not removed at the restart", name)
		}
	}
}

// TestPointsOnDisk: a point written into the data directory after Open (an
// import by another process) is listed before anyone asked for it.
func TestPointsOnDisk(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create("live"); err != nil {
		t.Fatal(err)
	}
	other, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Create("movies/later"); err != nil {
		t.Fatal(err)
	}
	if got := st.Points(); len(got) != 1 {
		t.Fatalf("Points lists %v; want only the loaded point", got)
	}
	if got := st.PointsOnDisk(); len(got) != 2 || got[0] != "live" || got[1] != "movies/later" {
		t.Fatalf("PointsOnDisk = %v, want [live movies/later]", got)
	}
}
