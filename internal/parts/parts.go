// Package parts keeps the parts of a track's newest fragments in memory:
// the chunks of a chunked live push (a moof and mdat each), servable the
// moment they arrive, before the fragment they belong to is complete
// (LL-HLS parts, LL-DASH growing segments). The origin's store keeps them
// for what it received (store.Point.AddPart); a sender of the cluster
// keeps them for what the origin forwarded to it (internal/sender).
//
// A Track is not safe for concurrent use: its owner guards it.
package parts

import "sort"

// Kept is how many fragments a track keeps the parts of: the open one and
// the three completed before it (an LL-HLS playlist lists parts for the
// last few target durations).
const Kept = 4

// Ref describes one part.
type Ref struct {
	Start    int64  // in the track's timescale
	Duration uint64 // in the track's timescale
	Key      bool   // starts with a sync sample (INDEPENDENT)
	Size     int
}

// End is the part's end time.
func (r Ref) End() int64 { return r.Start + int64(r.Duration) }

// Frag is the parts of one fragment.
type Frag struct {
	Start int64 // the fragment's start
	Parts []Ref
	// Complete: the fragment is complete and its parts cover it exactly.
	Complete bool
}

// End is the end of the fragment's last part.
func (f Frag) End() int64 {
	if len(f.Parts) == 0 {
		return f.Start
	}
	return f.Parts[len(f.Parts)-1].End()
}

type frag struct {
	Frag
	stream string
	data   [][]byte
}

// Track is the kept parts of one track, oldest fragment first.
type Track struct {
	frags []*frag
	// target is the longest part seen (the LL-HLS part target: it only
	// grows, as a playlist's must not change).
	target uint64
}

// Add adds part index of the fragment that starts at fragStart. The parts
// of a fragment must come in order and from one stream (the stream of its
// part 0: a redundant encoder's copies are ignored); a part that does not
// fit — out of order, another stream, a fragment already complete, or a
// new fragment that does not begin after the newest — is ignored and
// reported false. data must not be changed afterwards.
func (t *Track) Add(stream string, fragStart int64, index int, ref Ref, data []byte) bool {
	var f *frag
	for _, x := range t.frags {
		if x.Start == fragStart {
			f = x
		}
	}
	switch {
	case f == nil:
		if index != 0 || ref.Start != fragStart {
			return false
		}
		if n := len(t.frags); n > 0 && t.frags[n-1].Start >= fragStart {
			return false
		}
		f = &frag{Frag: Frag{Start: fragStart}, stream: stream}
		t.frags = append(t.frags, f)
		if len(t.frags) > Kept {
			t.frags = append(t.frags[:0], t.frags[len(t.frags)-Kept:]...)
		}
	case f.stream != stream || f.Complete || index != len(f.Parts) || ref.Start != f.End():
		return false
	}
	f.Parts = append(f.Parts, ref)
	f.data = append(f.data, data)
	t.target = max(t.target, ref.Duration)
	return true
}

// Complete marks the parts of the fragment that starts at start complete
// when they end at end, or forgets them when they do not (a fragment
// another stream completed). known reports whether parts of that
// fragment were kept (marked or forgotten).
func (t *Track) Complete(start, end int64) (known bool) {
	for i, f := range t.frags {
		if f.Start != start {
			continue
		}
		if f.End() == end {
			f.Complete = true
		} else {
			t.frags = append(t.frags[:i], t.frags[i+1:]...)
		}
		return true
	}
	return false
}

// Part returns the kept part that starts at start. ok is false when none
// does; pending is then true when one may still arrive there: start lies
// at or after the end of the newest part (a preload hint names it before
// it exists).
func (t *Track) Part(start int64) (data []byte, ref Ref, ok, pending bool) {
	for _, f := range t.frags {
		i := sort.Search(len(f.Parts), func(i int) bool { return f.Parts[i].Start >= start })
		if i < len(f.Parts) && f.Parts[i].Start == start {
			return f.data[i], f.Parts[i], true, false
		}
	}
	if len(t.frags) == 0 {
		return nil, Ref{}, false, false
	}
	return nil, Ref{}, false, start >= t.frags[len(t.frags)-1].End()
}

// FragOf returns the start of the kept fragment a part that starts at
// start belongs to.
func (t *Track) FragOf(start int64) (int64, bool) {
	for _, f := range t.frags {
		if start >= f.Start && start < f.End() {
			return f.Start, true
		}
	}
	return 0, false
}

// From returns the parts of the fragment that starts at fragStart from the
// from-th on (a growing fragment streamed as its parts arrive). known is
// false when no kept parts begin that fragment; complete says no part
// follows.
func (t *Track) From(fragStart int64, from int) (data [][]byte, complete, known bool) {
	for _, f := range t.frags {
		if f.Start != fragStart {
			continue
		}
		if from < len(f.data) {
			data = append(data, f.data[from:]...)
		}
		return data, f.Complete, true
	}
	return nil, false, false
}

// Open returns the start of the fragment still being received, if any
// (the newest kept one, not complete).
func (t *Track) Open() (start int64, ok bool) {
	if len(t.frags) == 0 || t.frags[len(t.frags)-1].Complete {
		return 0, false
	}
	return t.frags[len(t.frags)-1].Start, true
}

// Newest is the start of the newest kept fragment (ok false: none).
func (t *Track) Newest() (start int64, ok bool) {
	if len(t.frags) == 0 {
		return 0, false
	}
	return t.frags[len(t.frags)-1].Start, true
}

// View copies the kept parts' descriptions, and the part target.
func (t *Track) View() ([]Frag, uint64) {
	if len(t.frags) == 0 {
		return nil, 0
	}
	out := make([]Frag, len(t.frags))
	for i, f := range t.frags {
		out[i] = Frag{Start: f.Start, Parts: append([]Ref(nil), f.Parts...), Complete: f.Complete}
	}
	return out, t.target
}

// Bytes is the size of the kept parts.
func (t *Track) Bytes() int64 {
	var n int64
	for _, f := range t.frags {
		for _, p := range f.Parts {
			n += int64(p.Size)
		}
	}
	return n
}
