package manifest

import (
	"math"
	"math/bits"

	"github.com/sluice-media/sluice/internal/store"
)

// maxLead is how far (in seconds, as a fraction 1/maxLeadDiv) an audio track
// may begin before the presentation start and still be cut to it: AAC
// priming and the B-frame delay of a video encoder are milliseconds; an
// audio track that starts earlier than that is listed from its own start.
const maxLeadDiv = 2 // 0.5 s

// maxRenderSeconds bounds the times a manifest lists (about 272 years in
// either direction): larger ones would overflow the conversions of the
// renderers. The store refuses such fragments (store.ErrImplausibleTime);
// a View from elsewhere (a scheduler reading an origin) is checked again.
const maxRenderSeconds = 1 << 33

// listed is a View as the manifests list it: each track's Frags hold only
// the listed fragments, with the times they are listed at, First and Disc
// are the media and discontinuity sequence numbers of the first of them.
type listed struct {
	v store.View
	// src holds, per track, the stored fragment each listed one comes from
	// (a different Start when it was cut to the presentation start).
	src map[string][]store.FragRef
	// cut marks, per track, the listed fragments that do not start where
	// the stored fragment before them ended (a gap or an overlap) or follow
	// an encoder restart boundary (TrackView.Breaks): the discontinuities
	// store.Gaps counts, so that HLS marks exactly those.
	cut map[string][]bool
}

// list applies the listing rules to every track of v (see doc.go, "What is
// listed"):
//
//   - a fragment whose time cannot be rendered (duration 0, an end that
//     overflows, beyond maxRenderSeconds) is left out;
//   - a fragment that ends at or before the track's presentation start is
//     left out, and one that starts before it and ends after is listed from
//     it (cut) when the track is audio and the caller serves cut fragments
//     (Options.URLs without Segment or Stored), else left out too;
//   - a fragment that starts before the one listed before it ends (an
//     overlap) cuts that one's listed duration short at its start, so that
//     every timeline is strictly increasing and never overlaps.
func list(v store.View, o Options) listed {
	out := listed{v: v, src: map[string][]store.FragRef{}, cut: map[string][]bool{}}
	out.v.Tracks = make([]store.TrackView, len(v.Tracks))
	cuts := o.URLs.servesCuts()
	p, havePresentation := presentationStart(v)
	for i, t := range v.Tracks {
		from, trim := int64(0), false
		if t.Info.Kind == "audio" && cuts {
			trim = true
			if havePresentation && t.Info.Timescale > 0 {
				from = p.in(t.Info.Timescale)
				if len(t.Frags) > 0 && from-t.Frags[0].Start > int64(t.Info.Timescale/maxLeadDiv) {
					from = 0 // began well before the video: its own start
				}
			}
		}
		tv, src, cut := listTrack(t, from, trim)
		out.v.Tracks[i] = tv
		out.src[t.ID], out.cut[t.ID] = src, cut
	}
	return out
}

// listTrack lists one track from presentation start from (see list).
func listTrack(t store.TrackView, from int64, trim bool) (store.TrackView, []store.FragRef, []bool) {
	var fs, src []store.FragRef
	var cut []bool
	first := -1
	for i, f := range t.Frags {
		if !renderable(f, t.Info.Timescale) || f.End() <= from {
			continue
		}
		l := f
		if f.Start < from {
			if !trim {
				continue
			}
			l.Start, l.Duration = from, uint64(f.End()-from)
		}
		if n := len(fs); n > 0 {
			prev := &fs[n-1]
			if l.Start <= prev.Start {
				continue
			}
			if l.Start < prev.End() {
				prev.Duration = uint64(l.Start - prev.Start)
			}
		}
		if first < 0 {
			first = i
		}
		cut = append(cut, len(src) == 0 || store.Discontinuous(src[len(src)-1], f, t.Breaks))
		fs = append(fs, l)
		src = append(src, f)
	}
	out := t
	out.Frags = fs
	if first >= 0 {
		out.First = t.First + int64(first)
		out.Disc = t.Disc + store.Gaps(t.Frags, t.Breaks, first)
	}
	return out, src, cut
}

// renderable reports whether every time of f survives the renderers'
// conversions.
func renderable(f store.FragRef, timescale uint32) bool {
	if f.Duration == 0 || f.Duration > math.MaxInt64 || f.Start > math.MaxInt64-int64(f.Duration) {
		return false
	}
	if timescale == 0 {
		return true // the renderers leave such tracks out anyway
	}
	ts := int64(timescale)
	return f.Start/ts >= -maxRenderSeconds && f.End()/ts <= maxRenderSeconds
}

// instant is a non-negative time in a timescale.
type instant struct {
	t  uint64
	ts uint32
}

// before reports whether a is earlier than b (exactly, across timescales).
func (a instant) before(b instant) bool {
	ah, al := bits.Mul64(a.t, uint64(b.ts))
	bh, bl := bits.Mul64(b.t, uint64(a.ts))
	return ah < bh || (ah == bh && al < bl)
}

// in converts a to timescale ts, rounding up (so that what is cut lies
// wholly before the instant).
func (a instant) in(ts uint32) int64 {
	hi, lo := bits.Mul64(a.t, uint64(ts))
	lo, carry := bits.Add64(lo, uint64(a.ts)-1, 0)
	hi += carry
	if hi >= uint64(a.ts) {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, uint64(a.ts))
	return int64(min(q, math.MaxInt64))
}

// floorIn converts a to timescale ts, rounding down (a presentation time
// offset never lies after the segment it is for).
func (a instant) floorIn(ts uint32) uint64 {
	if a.ts == 0 {
		return 0
	}
	hi, lo := bits.Mul64(a.t, uint64(ts))
	if hi >= uint64(a.ts) {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, uint64(a.ts))
	return q
}

// earliest is the earliest first listed start over (listed) tracks.
func earliest(ts []store.TrackView) (e instant, ok bool) {
	for _, t := range ts {
		if len(t.Frags) == 0 || t.Info.Timescale == 0 || t.Frags[0].Start < 0 {
			continue
		}
		c := instant{t: uint64(t.Frags[0].Start), ts: t.Info.Timescale}
		if !ok || c.before(e) {
			e, ok = c, true
		}
	}
	return e, ok
}

// presentationStart is when the presentation's video begins: the latest
// start of the first listable fragment over the video tracks. While the
// presentation is live it comes from each track's extent (its first fragment
// ever), so that it stays put as the DVR window slides; a static
// presentation lists the whole archive, and its own first fragments count.
// ok is false when no video track tells.
func presentationStart(v store.View) (p instant, ok bool) {
	live := Live(v)
	for _, t := range v.Tracks {
		if t.Info.Kind != "video" || t.Info.Timescale == 0 {
			continue
		}
		var first int64
		known := false
		if !live || (t.First == 0 && len(t.Frags) > 0) {
			for _, f := range t.Frags {
				if f.Start >= 0 && renderable(f, t.Info.Timescale) {
					first, known = f.Start, true
					break
				}
			}
		} else if e := t.Extent; e.Known() {
			first, known = e.First, true
			if first < 0 {
				first = max(0, first+int64(min(e.FirstDuration, math.MaxInt64/2)))
			}
		}
		if !known {
			continue
		}
		c := instant{t: uint64(first), ts: t.Info.Timescale}
		if !ok || p.before(c) {
			p, ok = c, true
		}
	}
	return p, ok
}

// Trimmed reports whether the manifests rendered from v list a fragment of
// the track at start t that is a stored fragment cut to the presentation
// start (see doc.go), and returns that stored fragment: the origin serves
// it from t on (media.TrimFront).
func Trimmed(v store.View, trackID string, t int64) (store.FragRef, bool) {
	l := list(v, Options{})
	tv, ok := l.v.Track(trackID)
	if !ok {
		return store.FragRef{}, false
	}
	for i, f := range tv.Frags {
		if f.Start == t {
			src := l.src[trackID][i]
			return src, src.Start != t
		}
	}
	return store.FragRef{}, false
}
