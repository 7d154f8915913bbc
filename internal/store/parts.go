package store

import (
	"sort"

	"github.com/sluice-media/sluice/internal/media"
)

// Parts: the chunks of a chunked push (media.Assembler) are servable the
// moment they arrive, before the fragment they belong to is complete and
// stored. They live in memory only, per track, for the open fragment and
// the few fragments completed before it (what a low-latency playlist
// lists parts for); a restart of the process forgets them, and players
// then fetch the stored fragments.

// keptPartFrags is how many fragments a track keeps the parts of: the
// open one and the three completed before it (LL-HLS lists parts for the
// last three target durations or so).
const keptPartFrags = 4

// PartRef describes one part.
type PartRef struct {
	Start    int64  // in the track's timescale
	Duration uint64 // in the track's timescale
	Key      bool   // starts with a sync sample (INDEPENDENT)
	Size     int
}

// End is the part's end time.
func (r PartRef) End() int64 { return r.Start + int64(r.Duration) }

// PartFrag is the parts of one fragment.
type PartFrag struct {
	Start int64 // the fragment's start
	Parts []PartRef
	// Complete: the fragment is stored and its parts cover it exactly.
	Complete bool
}

// End is the end of the fragment's last part.
func (f PartFrag) End() int64 {
	if len(f.Parts) == 0 {
		return f.Start
	}
	return f.Parts[len(f.Parts)-1].End()
}

type partFrag struct {
	PartFrag
	stream string
	data   [][]byte
}

// liveParts are a track's parts, oldest fragment first.
type liveParts struct {
	frags []*partFrag
	// target is the longest part seen (the LL-HLS part target: it only
	// grows, as a playlist's must not change).
	target uint64
}

// AddPart makes a part of a fragment still being received servable. The
// parts of a fragment must come in order, from one stream (the first that
// sends its part 0; a redundant encoder's copies are ignored); one that
// does not fit is ignored and reported false. data must not be changed
// afterwards.
func (p *Point) AddPart(trackID, streamID string, part media.Part) (bool, error) {
	p.mu.RLock()
	t := p.tracks[trackID]
	p.mu.RUnlock()
	if t == nil {
		return false, ErrNotFound
	}
	f, err := withStoredTrackID(&media.Fragment{Info: part.Info, Data: part.Data}, t.storedID)
	if err != nil {
		return false, err
	}
	ref := PartRef{Start: part.Info.Start, Duration: part.Info.Duration, Key: part.Info.Key, Size: len(f.Data)}
	p.mu.Lock()
	defer p.mu.Unlock()
	lp := &t.live
	var pf *partFrag
	for _, x := range lp.frags {
		if x.Start == part.FragStart {
			pf = x
		}
	}
	switch {
	case pf == nil:
		if part.Index != 0 || part.Info.Start != part.FragStart {
			return false, nil
		}
		if n := len(t.frags); n > 0 && t.frags[n-1].Start >= part.FragStart {
			return false, nil // stored already, or older than what is
		}
		if n := len(lp.frags); n > 0 && lp.frags[n-1].Start >= part.FragStart {
			return false, nil
		}
		pf = &partFrag{PartFrag: PartFrag{Start: part.FragStart}, stream: streamID}
		lp.frags = append(lp.frags, pf)
		if len(lp.frags) > keptPartFrags {
			lp.frags = append(lp.frags[:0], lp.frags[len(lp.frags)-keptPartFrags:]...)
		}
	case pf.stream != streamID || pf.Complete || part.Index != len(pf.Parts) || part.Info.Start != pf.End():
		return false, nil
	}
	pf.Parts = append(pf.Parts, ref)
	pf.data = append(pf.data, f.Data)
	lp.target = max(lp.target, ref.Duration)
	p.notify()
	return true, nil
}

// completeParts marks the parts of a fragment just stored complete, or
// forgets them when they do not cover it (a fragment another stream
// completed). p.mu must be held for writing.
func (t *track) completeParts(ref FragRef) {
	lp := &t.live
	for i, pf := range lp.frags {
		if pf.Start != ref.Start {
			continue
		}
		if pf.End() == ref.End() {
			pf.Complete = true
			return
		}
		lp.frags = append(lp.frags[:i], lp.frags[i+1:]...)
		return
	}
}

// Part returns the part of a track that starts at start, and the parts
// view it belongs to. ok is false when no kept part starts there; pending
// is then true when one may still arrive there: start lies at or after
// the end of the newest part of an open fragment (a preload hint names it
// before it exists).
func (p *Point) Part(trackID string, start int64) (data []byte, ref PartRef, ok, pending bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	t := p.tracks[trackID]
	if t == nil {
		return nil, PartRef{}, false, false
	}
	fs := t.live.frags
	for _, pf := range fs {
		i := sort.Search(len(pf.Parts), func(i int) bool { return pf.Parts[i].Start >= start })
		if i < len(pf.Parts) && pf.Parts[i].Start == start {
			return pf.data[i], pf.Parts[i], true, false
		}
	}
	if t.Ended || len(fs) == 0 {
		return nil, PartRef{}, false, false
	}
	return nil, PartRef{}, false, start >= fs[len(fs)-1].End()
}

// partsView copies a track's kept parts. p.mu must be held.
func (t *track) partsView() ([]PartFrag, uint64) {
	if len(t.live.frags) == 0 {
		return nil, 0
	}
	out := make([]PartFrag, len(t.live.frags))
	for i, pf := range t.live.frags {
		out[i] = PartFrag{Start: pf.Start, Parts: append([]PartRef(nil), pf.Parts...), Complete: pf.Complete}
	}
	return out, t.live.target
}

// VideoEdge reports the point's chunked video (media.Assembler.Edge): the
// start of the newest fragment whose parts arrive, over the video tracks
// that have parts, and the longest fragment they stored.
func (p *Point) VideoEdge() media.VideoEdge {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var e media.VideoEdge
	for _, t := range p.tracks {
		fs := t.live.frags
		if t.Info.Kind != "video" || t.Ended || len(fs) == 0 || t.Info.Timescale == 0 {
			continue
		}
		ts := float64(t.Info.Timescale)
		e.Chunked = true
		e.Start = max(e.Start, float64(fs[len(fs)-1].Start)/ts)
		e.Duration = max(e.Duration, float64(t.Extent.MaxDuration)/ts)
	}
	return e
}

// PartsFrom returns the parts of a track's fragment that starts at
// fragStart from the from-th on (a growing fragment streamed as its parts
// arrive). known is false when no kept parts begin that fragment;
// complete says the fragment is complete (no part follows).
func (p *Point) PartsFrom(trackID string, fragStart int64, from int) (data [][]byte, complete, known bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	t := p.tracks[trackID]
	if t == nil {
		return nil, false, false
	}
	for _, pf := range t.live.frags {
		if pf.Start != fragStart {
			continue
		}
		if from < len(pf.data) {
			data = append(data, pf.data[from:]...)
		}
		return data, pf.Complete, true
	}
	return nil, false, false
}

// OpenParts returns the fragment of a track still being received: its
// start and its parts from the from-th on; ok is false when the track has
// none (its newest kept parts are complete, or there are none).
func (p *Point) OpenParts(trackID string, from int) (start int64, data [][]byte, ok bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	t := p.tracks[trackID]
	if t == nil || len(t.live.frags) == 0 {
		return 0, nil, false
	}
	pf := t.live.frags[len(t.live.frags)-1]
	if pf.Complete {
		return 0, nil, false
	}
	if from < len(pf.data) {
		data = append(data, pf.data[from:]...)
	}
	return pf.Start, data, true
}
