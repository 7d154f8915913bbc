package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCut: a range of a live point becomes an ended VOD asset whose
// fragments are hard links of the source's, survives the source's
// retention, and reloads from disk.
func TestCut(t *testing.T) {
	dir := t.TempDir()
	s, p, _, _ := fill(t, dir)
	src := p.View(0)
	ref := src.Tracks[0]
	if len(ref.Frags) < 4 {
		t.Fatalf("fixture too short: %d fragments", len(ref.Frags))
	}
	ts := ref.Info.Timescale
	from, to := fromTicks(ref.Frags[1].Start, ts), fromTicks(ref.Frags[3].Start, ts)
	res, err := s.Cut("ch", "clips/one", from, to)
	if err != nil {
		t.Fatal(err)
	}
	if ref.Info.Kind != "video" {
		t.Fatalf("the fixture's first track is %s", ref.Info.Kind)
	}
	span := fromTicks(ref.Frags[2].End(), ts)
	if res.Start > from || res.End < span || res.Tracks == 0 || res.Copied != 0 {
		t.Fatalf("result %+v (from %v to %v)", res, from, to)
	}
	a, err := s.Point("clips/one")
	if err != nil {
		t.Fatal(err)
	}
	v := a.View(0)
	if !v.Meta.VOD || !v.Ended || !v.Meta.Anchor.Equal(src.Meta.Anchor) {
		t.Fatalf("asset meta %+v ended %v", v.Meta, v.Ended)
	}
	n := 0
	for _, tv := range v.Tracks {
		for _, f := range tv.Frags {
			n++
			// The reference track by start, the others by their middle.
			lo, hi := toTicks(from, tv.Info.Timescale), toTicks(to, tv.Info.Timescale)
			at := f.Start
			if tv.ID != ref.ID {
				lo, hi, at = toTicks(from, tv.Info.Timescale), toTicks(span, tv.Info.Timescale), f.Start+int64(f.Duration)/2
			}
			if at < lo || at >= hi {
				t.Errorf("%s: fragment %d outside the range", tv.ID, f.Start)
			}
			got, _, err := a.ReadFragment(tv.ID, f.Start)
			want, _, err2 := p.ReadFragment(tv.ID, f.Start)
			if err != nil || err2 != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s/%d: bytes differ (%v %v)", tv.ID, f.Start, err, err2)
			}
			fa, _ := os.Stat(filepath.Join(a.dir, "t", tv.ID, fragName(f.Start)))
			fb, _ := os.Stat(filepath.Join(p.dir, "t", tv.ID, fragName(f.Start)))
			if !os.SameFile(fa, fb) {
				t.Errorf("%s/%d is not a hard link", tv.ID, f.Start)
			}
		}
	}
	if n != res.Fragments || len(v.Tracks[0].Frags) != 2 {
		t.Fatalf("%d fragments (result %d), reference track %d", n, res.Fragments, len(v.Tracks[0].Frags))
	}
	if _, err := os.Stat(filepath.Join(a.dir, cutFile)); err != nil {
		t.Fatal(err)
	}
	// Retention deletes the source's fragments: the asset keeps its own.
	if _, err := p.Prune(time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	for _, tv := range v.Tracks {
		if _, _, err := a.ReadFragment(tv.ID, tv.Frags[0].Start); err != nil {
			t.Fatalf("after the source's prune: %v", err)
		}
	}
	// A new store finds the asset as it was.
	a2 := reopen(t, dir, "clips/one")
	if v2 := a2.View(0); !v2.Meta.VOD || len(v2.Tracks) != len(v.Tracks) {
		t.Fatalf("reloaded asset: %+v", v2.Meta)
	}
}

func TestCutRefused(t *testing.T) {
	dir := t.TempDir()
	s, p, _, _ := fill(t, dir)
	ref := p.View(0).Tracks[0]
	ts := ref.Info.Timescale
	from, to := fromTicks(ref.Frags[0].Start, ts), fromTicks(ref.Frags[len(ref.Frags)-1].End(), ts)
	if _, err := s.Cut("ch", "taken", from, to); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, src, asset string
		from, to         time.Duration
		want             error
	}{
		{"empty range", "ch", "x", to, to + 1, nil},
		{"backwards", "ch", "x", to, from, nil},
		{"exists", "ch", "taken", from, to, ErrExists},
		{"into itself", "ch", "ch", from, to, ErrExists},
		{"unknown source", "nope", "x", from, to, ErrNotFound},
		{"nothing in range", "ch", "x", to + time.Hour, to + 2*time.Hour, ErrEmptyCut},
		{"bad name", "ch", "../x", from, to, nil},
		{"inside a point", "ch", "ch/sub", from, to, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Cut(tc.src, tc.asset, tc.from, tc.to)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
	// Nothing half-made is left behind.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "ch" && e.Name() != "taken" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestOpenSharedKeepsFiles: a store opened next to a running server never
// removes its temporary files.
func TestOpenSharedKeepsFiles(t *testing.T) {
	dir := t.TempDir()
	_, p, _, _ := fill(t, dir)
	id := p.View(0).Tracks[0].ID
	tmp := filepath.Join(dir, "ch", "t", id, ".tmp-inprogress")
	if err := os.WriteFile(tmp, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenShared(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Point("ch"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("temporary file removed: %v", err)
	}
}

func TestTicks(t *testing.T) {
	tests := []struct {
		d  time.Duration
		ts uint32
		t  int64
	}{
		{1732550400 * time.Second, 10_000_000, 17325504000000000},
		{1500 * time.Millisecond, 90000, 135000},
		{time.Second / 3, 48000, 15999},
	}
	for _, tc := range tests {
		if got := toTicks(tc.d, tc.ts); got != tc.t {
			t.Errorf("toTicks(%v, %d) = %d, want %d", tc.d, tc.ts, got, tc.t)
		}
	}
	if got := fromTicks(17325504000000000, 10_000_000); got != 1732550400*time.Second {
		t.Errorf("fromTicks: %v", got)
	}
}
