package store

import (
	"sort"

	"github.com/sluice-media/sluice/internal/media"
)

// Cheap per-track queries for the pull side (streams followed as they grow,
// StreamManifest polls): unlike View they copy only what they return, so
// that following a channel with a long archive costs per new fragment, not
// per archived one.

// TrackStats summarises one track's index.
type TrackStats struct {
	Info        media.TrackInfo
	Ended       bool
	Count       int   // fragments indexed
	First, Last int64 // start times of the oldest and newest (when Count > 0)
}

// Stats summarises a track's index.
func (p *Point) Stats(trackID string) (TrackStats, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	t := p.tracks[trackID]
	if t == nil {
		return TrackStats{}, false
	}
	s := TrackStats{Info: t.Info, Ended: t.Ended, Count: len(t.frags)}
	if n := len(t.frags); n > 0 {
		s.First, s.Last = t.frags[0].Start, t.frags[n-1].Start
	}
	return s, true
}

// Tail returns the index entries of a track's fragments that start at or
// after from, and whether the track has ended.
func (p *Point) Tail(trackID string, from int64) (frags []FragRef, ended, ok bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	t := p.tracks[trackID]
	if t == nil {
		return nil, false, false
	}
	i := sort.Search(len(t.frags), func(i int) bool { return t.frags[i].Start >= from })
	return append([]FragRef(nil), t.frags[i:]...), t.Ended, true
}

// Nearest returns the start time of a track's fragment nearest t (t itself
// when the track has none).
func (p *Point) Nearest(trackID string, t int64) int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	tr := p.tracks[trackID]
	if tr == nil || len(tr.frags) == 0 {
		return t
	}
	fs := tr.frags
	i := sort.Search(len(fs), func(i int) bool { return fs[i].Start >= t })
	if i == len(fs) {
		return fs[i-1].Start
	}
	if i > 0 && t-fs[i-1].Start < fs[i].Start-t {
		return fs[i-1].Start
	}
	return fs[i].Start
}

// Count returns the number of a track's fragments that start within
// [lo, hi].
func (p *Point) Count(trackID string, lo, hi int64) int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	t := p.tracks[trackID]
	if t == nil || hi < lo {
		return 0
	}
	i := sort.Search(len(t.frags), func(i int) bool { return t.frags[i].Start >= lo })
	j := sort.Search(len(t.frags), func(i int) bool { return t.frags[i].Start > hi })
	return j - i
}
