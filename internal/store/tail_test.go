package store

import (
	"testing"
	"time"
)

// TestTailQueries: Stats, Tail, Nearest and Count agree with View.
func TestTailQueries(t *testing.T) {
	_, p, _, _ := fill(t, t.TempDir())
	v := p.View(0)
	for _, tv := range v.Tracks {
		st, ok := p.Stats(tv.ID)
		n := len(tv.Frags)
		if !ok || st.Count != n || st.First != tv.Frags[0].Start || st.Last != tv.Frags[n-1].Start || st.Ended != tv.Ended {
			t.Fatalf("%s: stats %+v", tv.ID, st)
		}
		mid := tv.Frags[n/2]
		tail, _, ok := p.Tail(tv.ID, mid.Start)
		if !ok || len(tail) != n-n/2 || tail[0] != mid {
			t.Fatalf("%s: tail from %d: %d entries", tv.ID, mid.Start, len(tail))
		}
		if tail, _, _ := p.Tail(tv.ID, mid.Start+1); len(tail) != n-n/2-1 {
			t.Fatalf("%s: tail after %d: %d entries", tv.ID, mid.Start, len(tail))
		}
		if got := p.Nearest(tv.ID, mid.Start+1); got != mid.Start {
			t.Errorf("%s: nearest %d, want %d", tv.ID, got, mid.Start)
		}
		if got := p.Nearest(tv.ID, mid.End()-1); got != mid.End() {
			t.Errorf("%s: nearest to the end of %d: %d", tv.ID, mid.Start, got)
		}
		if c := p.Count(tv.ID, tv.Frags[0].Start, mid.Start); c != n/2+1 {
			t.Errorf("%s: count %d, want %d", tv.ID, c, n/2+1)
		}
	}
	if _, ok := p.Stats("nope"); ok {
		t.Error("stats of an unknown track")
	}
}

// TestAdoptAnchor: an anchor is adopted once and survives a restart.
func TestAdoptAnchor(t *testing.T) {
	dir := t.TempDir()
	_, p := pointCh(t, dir)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	if ok, err := p.AdoptAnchor(at); !ok || err != nil {
		t.Fatalf("adopt: %v %v", ok, err)
	}
	if ok, _ := p.AdoptAnchor(at.Add(time.Hour)); ok {
		t.Fatal("an anchor was changed")
	}
	p2 := reopen(t, dir, "ch")
	if !p2.Meta().Anchor.Equal(at) {
		t.Fatalf("anchor after restart: %v", p2.Meta().Anchor)
	}
}
