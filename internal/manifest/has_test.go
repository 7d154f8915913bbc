package manifest

import (
	"testing"

	"github.com/sluice-media/sluice/internal/store"
)

// TestHas: which blocking reloads a playlist satisfies.
func TestHas(t *testing.T) {
	parts := func(start int64, n int) []store.PartRef {
		ps := make([]store.PartRef, n)
		for i := range ps {
			ps[i] = store.PartRef{Start: start + int64(i)*5, Duration: 5}
		}
		return ps
	}
	// Segments 10 and 11 (0-20, 20-40), 11's four parts kept; segment 12
	// in progress with two parts.
	tv := store.TrackView{First: 10, Frags: []store.FragRef{{Start: 0, Duration: 20}, {Start: 20, Duration: 20}},
		Parts: []store.PartFrag{{Start: 20, Parts: parts(20, 4), Complete: true}, {Start: 40, Parts: parts(40, 2)}}, PartTarget: 5}
	noOpen := tv
	noOpen.Parts = tv.Parts[:1]
	for _, c := range []struct {
		name      string
		tv        store.TrackView
		msn, part int64
		want      bool
	}{
		{"older segment", tv, 10, -1, true},
		{"last segment", tv, 11, -1, true},
		{"a part of the last segment", tv, 11, 3, true},
		{"past the last part: part 0 of the next, there", tv, 11, 4, true},
		{"past the last part: part 0 of the next, not there", noOpen, 11, 4, false},
		{"the segment in progress, whole", tv, 12, -1, false},
		{"a part in progress that exists", tv, 12, 1, true},
		{"a part in progress not yet there", tv, 12, 2, false},
		{"two ahead", tv, 13, 0, false},
	} {
		if got := HasPart(c.tv, c.msn, c.part); got != c.want {
			t.Errorf("%s: HasPart(msn %d, part %d) = %v, want %v", c.name, c.msn, c.part, got, c.want)
		}
	}
}
