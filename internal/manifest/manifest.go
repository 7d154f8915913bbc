package manifest

import (
	"fmt"
	"math"
	"time"

	"github.com/sluice-media/sluice/internal/store"
)

// DefaultLookAhead is the usual Smooth look-ahead (LookAheadFragmentCount):
// the number of following fragments announced in each fragment's tfrf box.
const DefaultLookAhead = 2

// ErrEmpty is returned (wrapped) by Smooth, DASH and HLSMaster when the
// presentation has nothing to list yet — a live channel before its first
// fragments (or, for Smooth, before the first fragments past the look-ahead
// hold-back): players treat an empty manifest as fatal but retry a 404. It
// wraps store.ErrNotFound.
var ErrEmpty = fmt.Errorf("nothing to list yet: %w", store.ErrNotFound)

// defaultFragment stands in for the fragment duration while nothing is listed.
const defaultFragment = 2 * time.Second

// Options are the inputs of a rendering besides the View.
type Options struct {
	// Now is the wall-clock time of the request (DASH UTCTiming, and
	// publishTime while the presentation has no anchor).
	Now time.Time
	// DVRWindow is how far back a live manifest reaches (Smooth
	// DVRWindowLength, DASH timeShiftBufferDepth). The View passed in is
	// already cut to it; zero means the span of the View.
	DVRWindow time.Duration
	// LookAhead is the number of fragments the origin announces in each live
	// Smooth fragment's tfrf box, and so the number held back at the live
	// edge of a Smooth manifest. It is used as given (negative counts as 0);
	// DefaultLookAhead is the usual value.
	LookAhead int
	// URLs, when not nil, replaces the relative resource URLs of DASH and
	// HLS (see URLs).
	URLs *URLs
	// Skip asks a low-latency HLS media playlist for a delta update
	// (_HLS_skip=YES): the segments older than CAN-SKIP-UNTIL replaced by
	// EXT-X-SKIP.
	Skip bool
}

func (o Options) lookAhead() int { return max(o.LookAhead, 0) }

// Live reports whether the presentation is live: not every track has ended
// and it is no on-demand asset. Manifests of a presentation that is not live
// are static.
func Live(v store.View) bool { return !v.Ended && !v.Meta.VOD }

// FragmentDuration is the nominal fragment duration of a presentation: the
// longest of the last listable fragments of its audio and video tracks
// (of its text tracks when it has nothing else; 2 s when nothing is
// listable). A live manifest changes about this often, so it is a fitting
// cache lifetime for manifests and the DASH minimumUpdatePeriod. Sparse
// text tracks, whose fragments may be much longer, do not count: they
// would hold the players' view of the video's live edge back.
func FragmentDuration(v store.View) time.Duration { return fragmentDuration(list(v, Options{}).v) }

// fragmentDuration is FragmentDuration of a listed View.
func fragmentDuration(v store.View) time.Duration {
	var media, text time.Duration
	for _, t := range v.Tracks {
		fs := t.Frags
		if len(fs) == 0 || t.Info.Timescale == 0 {
			continue
		}
		d := toDuration(int64(fs[len(fs)-1].Duration), t.Info.Timescale)
		if t.Info.Kind == "text" {
			text = max(text, d)
		} else {
			media = max(media, d)
		}
	}
	switch {
	case media > 0:
		return media
	case text > 0:
		return text
	}
	return defaultFragment
}

// run is a sequence of contiguous fragments of equal duration.
type run struct {
	start int64  // start time of the first fragment
	d     uint64 // duration of each
	n     int    // number of fragments (at least 1)
	gap   bool   // the first fragment does not start where the previous ended (or is the first)
}

// runs compresses a timeline into runs of equal duration, starting a new run
// after every gap.
func runs(fs []store.FragRef) []run {
	var out []run
	for i, f := range fs {
		gap := i == 0 || f.Start != fs[i-1].End()
		if !gap && out[len(out)-1].d == f.Duration {
			out[len(out)-1].n++
			continue
		}
		out = append(out, run{start: f.Start, d: f.Duration, n: 1, gap: gap})
	}
	return out
}

// sameTimeline reports whether two tracks list the same fragment times.
func sameTimeline(a, b []store.FragRef) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Start != b[i].Start || a[i].Duration != b[i].Duration {
			return false
		}
	}
	return true
}

// rescale converts a non-negative time between timescales without overflow
// (rounding down).
func rescale(x, from, to uint64) uint64 {
	if from == 0 {
		return 0
	}
	return x/from*to + x%from*to/from
}

// toDuration converts a time in a track timescale to a time.Duration.
func toDuration(x int64, timescale uint32) time.Duration {
	if timescale == 0 {
		return 0
	}
	neg := x < 0
	if neg {
		x = -x
	}
	ts := int64(timescale)
	d := time.Duration(x/ts)*time.Second + time.Duration(x%ts*int64(time.Second)/ts)
	if neg {
		return -d
	}
	return d
}

// seconds converts a time in a track timescale to seconds.
func seconds(x int64, timescale uint32) float64 {
	if timescale == 0 {
		return 0
	}
	return float64(x) / float64(timescale)
}

// bitrates estimates the bit rate of a track from its listed fragments: the
// average over all and the peak of any single fragment, in bits per second.
func bitrates(t store.TrackView, fs []store.FragRef) (avg, peak int) {
	var size, dur float64
	for _, f := range fs {
		s := float64(f.Size) * 8
		d := seconds(int64(f.Duration), t.Info.Timescale)
		if d <= 0 {
			continue
		}
		size += s
		dur += d
		peak = max(peak, int(math.Ceil(s/d)))
	}
	if dur > 0 {
		avg = int(math.Ceil(size / dur))
	}
	return avg, peak
}

// span returns the earliest listed start and the latest listed end over the
// given (listed) tracks, in seconds, and whether anything is listed at all.
func span(ts []store.TrackView) (from, to float64, ok bool) {
	for _, t := range ts {
		fs := t.Frags
		if len(fs) == 0 || t.Info.Timescale == 0 {
			continue
		}
		a := seconds(fs[0].Start, t.Info.Timescale)
		b := seconds(fs[len(fs)-1].End(), t.Info.Timescale)
		if !ok || a < from {
			from = a
		}
		if !ok || b > to {
			to = b
		}
		ok = true
	}
	return from, to, ok
}

// maxFragment returns the longest listed fragment duration over all
// (listed) tracks.
func maxFragment(ts []store.TrackView) time.Duration {
	var d time.Duration
	for _, t := range ts {
		for _, f := range t.Frags {
			d = max(d, toDuration(int64(f.Duration), t.Info.Timescale))
		}
	}
	return d
}

// dvrWindow is the DVR window to announce: the configured one, else the
// span of the (listed) View, else one nominal fragment (never zero).
func dvrWindow(v store.View, o Options) time.Duration {
	if o.DVRWindow > 0 {
		return o.DVRWindow
	}
	if from, to, ok := span(v.Tracks); ok && to > from {
		return time.Duration((to - from) * float64(time.Second)).Round(time.Millisecond)
	}
	return fragmentDuration(v)
}
