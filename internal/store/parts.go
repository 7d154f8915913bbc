package store

import (
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/parts"
)

// Parts: the chunks of a chunked push (media.Assembler) are servable the
// moment they arrive, before the fragment they belong to is complete and
// stored. They live in memory only, per track, for the open fragment and
// the few fragments completed before it (what a low-latency playlist
// lists parts for); a restart of the process forgets them, and players
// then fetch the stored fragments.

// PartRef describes one part.
type PartRef = parts.Ref

// PartFrag is the parts of one fragment.
type PartFrag = parts.Frag

// AddPart makes a part of a fragment still being received servable. The
// parts of a fragment must come in order, from one stream (the first that
// sends its part 0; a redundant encoder's copies are ignored); one that
// does not fit is ignored and reported false. data must not be changed
// afterwards. The store's OnPart hooks learn of each part added.
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
	if n := len(t.frags); part.Index == 0 && n > 0 && t.frags[n-1].Start >= part.FragStart {
		p.mu.Unlock()
		return false, nil // stored already, or older than what is
	}
	ok := t.live.Add(streamID, part.FragStart, part.Index, ref, f.Data)
	if ok {
		p.notify()
	}
	p.mu.Unlock()
	if ok {
		p.store.partEvent(PartEvent{Point: p.Name, Track: trackID, FragStart: part.FragStart, Index: part.Index, Ref: ref, Data: f.Data})
	}
	return ok, nil
}

// completeParts marks the parts of a fragment just stored complete, or
// forgets them when they do not cover it (a fragment another stream
// completed), and reports whether that fragment had parts. p.mu must be
// held for writing.
func (t *track) completeParts(ref FragRef) bool {
	return t.live.Complete(ref.Start, ref.End())
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
	data, ref, ok, pending = t.live.Part(start)
	return data, ref, ok, pending && !t.Ended
}

// partsView copies a track's kept parts. p.mu must be held.
func (t *track) partsView() ([]PartFrag, uint64) { return t.live.View() }

// VideoEdge reports the point's chunked video (media.Assembler.Edge): the
// start of the newest fragment whose parts arrive, over the video tracks
// that have parts, and the longest fragment they stored.
func (p *Point) VideoEdge() media.VideoEdge {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var e media.VideoEdge
	for _, t := range p.tracks {
		newest, ok := t.live.Newest()
		if t.Info.Kind != "video" || t.Ended || !ok || t.Info.Timescale == 0 {
			continue
		}
		ts := float64(t.Info.Timescale)
		e.Chunked = true
		e.Start = max(e.Start, float64(newest)/ts)
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
	return t.live.From(fragStart, from)
}

// OpenStart returns the start of a track's fragment still being received;
// ok is false when the track has none (its newest kept parts are
// complete, or there are none). PartsFrom gives its parts.
func (p *Point) OpenStart(trackID string) (start int64, ok bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	t := p.tracks[trackID]
	if t == nil {
		return 0, false
	}
	return t.live.Open()
}
