package store

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrImplausibleTime marks a fragment whose time lies far outside any
// timeline the point could plausibly have (a corrupted or fuzzed tfxd/tfdt,
// an overflowing duration). AddFragment refuses such a fragment before it
// touches the disk; the ingest answers 400. Loading quarantines stored
// fragments that break the same bounds (see quarantine).
var ErrImplausibleTime = errors.New("implausible fragment time")

// The bounds of a plausible fragment time (docs/ingest.md, "Fragment times").
const (
	// MaxFragmentDuration is the longest fragment accepted.
	MaxFragmentDuration = 10 * time.Minute
	// MinFragmentDuration is the shortest: no codec has a sample shorter
	// than a millisecond (AAC at 96 kHz: 10.7 ms; video at 1000 fps: 1 ms),
	// and manifests give durations in milliseconds (an HLS EXTINF of 0.000
	// is no segment).
	MinFragmentDuration = time.Millisecond
	// MaxNegativeStart is how far before media time zero a fragment may
	// start: negative times are AAC priming or a B-frame delay
	// (milliseconds), never more.
	MaxNegativeStart = time.Minute
	// MaxClockLead is how far past the Unix time of the wall clock, read as
	// media time, a fragment may start. No encoder clock — from zero, or
	// epoch-anchored — produces a later time.
	MaxClockLead = 10 * time.Minute
	// FutureSlack is how far past the wall clock (by the point's anchor) a
	// fragment may start without being near its track's timeline.
	FutureSlack = time.Minute
	// JumpFragments and MinJump bound a forward jump of a fragment that is
	// also in the future: it may start at most max(MinJump, JumpFragments ×
	// its duration) after the end of the track's last fragment.
	JumpFragments = 10
	MinJump       = time.Minute
)

// maxSeconds bounds every time the store converts to a time.Duration (about
// 272 years): larger values would overflow it.
const maxSeconds = 1 << 33

// toDur converts a time in a timescale to a time.Duration; ok is false when
// the timescale is 0 or the value lies beyond maxSeconds either way.
func toDur(x int64, timescale uint32) (time.Duration, bool) {
	if timescale == 0 {
		return 0, false
	}
	ts := int64(timescale)
	s := x / ts
	if s > maxSeconds || s < -maxSeconds {
		return 0, false
	}
	return time.Duration(s)*time.Second + time.Duration(x%ts*int64(time.Second)/ts), true
}

// timeline is what a new fragment is compared with: the end of the track's
// last fragment (or, for a track without fragments, of the point's latest
// fragment), as a time.Duration of media time.
type timeline struct {
	end   time.Duration
	known bool
}

// checkTime reports (wrapping ErrImplausibleTime) why a fragment of a track
// with the given timescale cannot belong to the point: an overflowing or
// absurd duration, a start far before zero or past the Unix time, or — for a
// point with an anchor — a start both in the future (anchor + start later
// than now + FutureSlack) and far ahead of the timeline. A time going
// backwards is never refused here: it is a gap being filled, a late or
// redundant copy, or an encoder restarting (see docs/ingest.md).
func checkTime(ref FragRef, timescale uint32, anchor time.Time, tl timeline, now time.Time) error {
	if timescale == 0 {
		return fmt.Errorf("track timescale 0: %w", ErrImplausibleTime)
	}
	d, ok := toDur(int64(min(ref.Duration, math.MaxInt64)), timescale)
	if !ok || d > MaxFragmentDuration || ref.Start > math.MaxInt64-int64(ref.Duration) {
		return fmt.Errorf("fragment at %d lasts %d ticks (%v at timescale %d): more than %v: %w",
			ref.Start, ref.Duration, d, timescale, MaxFragmentDuration, ErrImplausibleTime)
	}
	if d < MinFragmentDuration {
		return fmt.Errorf("fragment at %d lasts %d ticks (%v at timescale %d): less than %v: %w",
			ref.Start, ref.Duration, d, timescale, MinFragmentDuration, ErrImplausibleTime)
	}
	start, ok := toDur(ref.Start, timescale)
	if !ok || start < -MaxNegativeStart {
		return fmt.Errorf("fragment at %d (timescale %d) starts more than %v before media time zero: %w",
			ref.Start, timescale, MaxNegativeStart, ErrImplausibleTime)
	}
	if lead := now.Sub(time.Unix(0, 0)) + MaxClockLead; start > lead {
		return fmt.Errorf("fragment at %d (timescale %d) starts %v into the media timeline, past the wall clock's Unix time plus %v: %w",
			ref.Start, timescale, start.Round(time.Second), MaxClockLead, ErrImplausibleTime)
	}
	if anchor.IsZero() {
		return nil
	}
	ahead := anchor.Add(start).Sub(now)
	if ahead <= FutureSlack {
		return nil
	}
	jump := max(MinJump, JumpFragments*d)
	if tl.known && start <= tl.end+jump {
		return nil
	}
	return fmt.Errorf("fragment at %d (timescale %d) starts %v after the wall clock (by the point's anchor) and %s: %w",
		ref.Start, timescale, ahead.Round(time.Second), jumpText(tl, start, jump), ErrImplausibleTime)
}

func jumpText(tl timeline, start, jump time.Duration) string {
	if !tl.known {
		return "the point has no fragment to continue"
	}
	return fmt.Sprintf("%v after the end of the track's timeline (at most %v allowed)", (start - tl.end).Round(time.Second), jump)
}
