package player

import (
	"context"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
)

// Low-latency DASH playback. A low-latency MPD lists the segment in
// progress with an availabilityTimeOffset (it is available once its first
// chunk is) and availabilityTimeComplete="false" (it is still being
// written), and says in its ServiceDescription which latency to keep and
// within which playback rates. The player starts at the target latency
// behind the wall clock (inside a segment: the media before that point
// is decoded, not shown), requests each segment at its availability and
// reads the chunked body as it arrives: each CMAF chunk (moof+mdat) adds
// its samples' duration to the buffer the moment it is complete.

// dashLowLatency is what a low-latency MPD says.
type dashLowLatency struct {
	// target, minLat and maxLat are the ServiceDescription's Latency
	// (0: absent).
	target, minLat, maxLat time.Duration
	// rateMin and rateMax are its PlaybackRate (0: absent).
	rateMin, rateMax float64
	// ato is the availabilityTimeOffset of the first AdaptationSet's (or
	// Representation's) SegmentTemplate; chunked tells
	// availabilityTimeComplete="false".
	ato     time.Duration
	chunked bool
}

// dashLowLatencyOf reads a dynamic MPD's low-latency signals (nil when it
// has neither a ServiceDescription latency nor an availabilityTimeOffset).
func dashLowLatencyOf(m *mpd.MPD, per *mpd.Period) *dashLowLatency {
	ll := &dashLowLatency{}
	for _, sd := range m.ServiceDescription {
		if sd == nil {
			continue
		}
		for _, l := range sd.Latencies {
			if l != nil && l.Target != nil && ll.target == 0 {
				ll.target = time.Duration(*l.Target) * time.Millisecond
				if l.Min != nil {
					ll.minLat = time.Duration(*l.Min) * time.Millisecond
				}
				if l.Max != nil {
					ll.maxLat = time.Duration(*l.Max) * time.Millisecond
				}
			}
		}
		for _, r := range sd.PlaybackRates {
			if r != nil && ll.rateMax == 0 {
				ll.rateMin, ll.rateMax = r.Min, r.Max
			}
		}
	}
	mark := func(st *mpd.SegmentTemplateType) {
		if st == nil || ll.ato > 0 {
			return
		}
		if a := float64(st.AvailabilityTimeOffset); a > 0 && a < 1e6 {
			ll.ato = time.Duration(a * float64(time.Second))
			ll.chunked = st.AvailabilityTimeComplete != nil && !*st.AvailabilityTimeComplete
		}
	}
	mark(per.SegmentTemplate)
	for _, as := range per.AdaptationSets {
		if as == nil {
			continue
		}
		mark(as.SegmentTemplate)
		for _, r := range as.Representations {
			if r != nil {
				mark(r.SegmentTemplate)
			}
		}
	}
	if ll.target == 0 && ll.ato == 0 {
		return nil
	}
	return ll
}

// dashStart picks where a low-latency DASH session starts: the segment
// holding the wall-clock time target before now, and how far into it
// that point lies (played through, not shown). A point past every listed
// segment's start takes the newest; one before the first, the first.
func dashStart(segs []Segment, target time.Duration, now time.Time) (int, time.Duration) {
	at := now.Add(-target)
	for i := len(segs) - 1; i >= 0; i-- {
		if segs[i].Wall.IsZero() {
			break
		}
		if !segs[i].Wall.After(at) {
			skip := at.Sub(segs[i].Wall)
			if skip > segs[i].Dur && i == len(segs)-1 {
				skip = 0 // the newest segment ended before the point: play it from its start
			}
			return i, min(skip, segs[i].Dur)
		}
	}
	return 0, 0
}

// fetchChunked fetches a DASH segment and reads its body as it arrives
// (a growing segment comes with chunked transfer encoding, chunk by
// chunk), adding each chunk's duration (timing) to the kind's buffer when
// it is complete; the first *skip of media is not added (a start inside
// the segment). A failed attempt is retried once; the retry adds only
// what the first did not. Without timing (an init segment it could not
// read) the whole segment is added once received.
func (s *session) fetchChunked(ctx context.Context, pres *Presentation, k Kind, r *Rendition, seg Segment, timing trackTiming, skip *time.Duration) (int, error) {
	var added time.Duration // media of this segment accounted so far (skipped included)
	size := 0
	attempt := func() (int, time.Duration, error) {
		info := s.requestInfo(pres, k, r, objectType(pres, k))
		info.Duration = seg.Dur
		info.Starved = s.play.takeStarved(k)
		var pos time.Duration // media received in this attempt
		chunks := 0
		onChunk := func(chunk []byte, burst time.Duration) {
			s.abr.sample(len(chunk), burst)
			d, err := timing.chunkDuration(chunk)
			if err != nil || d <= 0 {
				return
			}
			chunks++
			from := pos
			pos += d
			if pos <= added {
				return // the previous attempt had it
			}
			if from < added {
				d, from = pos-added, added
			}
			wall := time.Time{}
			if !seg.Wall.IsZero() {
				wall = seg.Wall.Add(from)
			}
			added = pos
			s.addMedia(k, d, wall, skip)
		}
		data, elapsed, err := s.getStream(ctx, seg.URL, info, onChunk)
		if err != nil {
			return len(data), elapsed, err
		}
		if err := checkFragment(data); err != nil {
			s.stats.invalidFragment()
			return len(data), elapsed, err
		}
		if chunks > 1 {
			s.ll.add(&s.ll.stats.ChunkedSegments)
		}
		if added == 0 {
			// No chunk could be timed: the segment as the MPD lists it.
			added = seg.Dur
			s.addMedia(k, seg.Dur, seg.Wall, skip)
		}
		size = len(data)
		return len(data), elapsed, nil
	}
	err := s.withRetry(ctx, attempt)
	return size, err
}

// getStream is get for a body read as it arrives: onChunk is called with
// each complete CMAF chunk (readChunks). It returns the whole body.
func (s *session) getStream(ctx context.Context, u string, info RequestInfo, onChunk func([]byte, time.Duration)) ([]byte, time.Duration, error) {
	data, elapsed, _, err := s.fetch(ctx, u, "", info, onChunk)
	return data, elapsed, err
}

// dashNow is the wall clock corrected by the MPD's UTCTiming.
func (s *session) dashNow() time.Time {
	if d, ok := s.man.src.(*dashSource); ok {
		return d.now()
	}
	return time.Now()
}
