package store

import (
	"bytes"
	"testing"
)

func TestOnFragmentCalledOncePerStoredFragment(t *testing.T) {
	s, p, ids, frags := emptyPoint(t, t.TempDir())
	var got []FragmentAdded
	s.OnFragment(func(ev FragmentAdded) {
		// The point is unlocked: reading it from the hook must not deadlock.
		p, _ := s.Point(ev.Point)
		if _, err := p.Init(ev.Track); err != nil {
			t.Errorf("init from hook: %v", err)
		}
		ev.Data = append([]byte(nil), ev.Data...)
		got = append(got, ev)
	})
	for _, f := range frags {
		p.AddFragment(ids[f.Info.TrackID], f)
		p.AddFragment(ids[f.Info.TrackID], f) // duplicate: no second call
	}
	if len(got) != len(frags) {
		t.Fatalf("%d hook calls for %d fragments", len(got), len(frags))
	}
	for i, f := range frags {
		ev := got[i]
		if ev.Point != "ch" || ev.Track != ids[f.Info.TrackID] || ev.Ref.Start != f.Info.Start || !bytes.Equal(ev.Data, f.Data) {
			t.Errorf("event %d: %s/%s/%d", i, ev.Point, ev.Track, ev.Ref.Start)
		}
	}
}
