package manifest

import (
	"math"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"

	"github.com/sluice-media/sluice/internal/store"
)

// Low-latency DASH. A live track that keeps parts (a chunked push, see
// store.AddPart) has a fragment in progress; a low-latency MPD lists it
// before it is complete, with the duration of the track's last fragment,
// and says it is available once its first part is (availabilityTimeOffset
// = the fragment duration less the part target, availabilityTimeComplete
// false): the origin serves it as its parts arrive, with chunked transfer
// encoding. Its duration is corrected at the next update if the fragment
// turns out shorter or longer.

// withOpenSegments returns v with each low-latency track's fragment in
// progress listed (when it continues the listed ones), and the longest
// part target in seconds (0 when no track is low-latency).
func withOpenSegments(v store.View) (store.View, float64) {
	var pt float64
	tracks := make([]store.TrackView, len(v.Tracks))
	copy(tracks, v.Tracks)
	for i, t := range tracks {
		if !LowLatency(v, t) || len(t.Frags) == 0 {
			continue
		}
		pt = max(pt, partTarget(t))
		last := t.Frags[len(t.Frags)-1]
		open, ok := t.Open()
		if !ok || open.Start != last.End() {
			continue
		}
		size := 0
		for _, p := range open.Parts {
			size += p.Size
		}
		fs := make([]store.FragRef, len(t.Frags), len(t.Frags)+1)
		copy(fs, t.Frags)
		tracks[i].Frags = append(fs, store.FragRef{Start: open.Start, Duration: last.Duration, Size: int64(size), Key: true})
	}
	v.Tracks = tracks
	return v, pt
}

// lowLatencyMPD sets what a low-latency MPD says at its top: a service
// description (target latency three part targets, as LL-HLS's
// PART-HOLD-BACK; playback rate 0.96-1.04 to keep it), the presentation
// delay at that target, and an update period of one part (a listed
// segment in progress gets its successor listed within a part).
func lowLatencyMPD(m *mpd.MPD, v store.View, pt float64) {
	target := uint32(3 * pt * 1000)
	m.ServiceDescription = append(m.ServiceDescription, &mpd.ServiceDescriptionType{
		Id: 0,
		Latencies: []*mpd.LatencyType{{
			ReferenceId: 0, Target: mpd.Ptr(target), Min: mpd.Ptr(uint32(2 * pt * 1000)), Max: mpd.Ptr(2 * target),
		}},
		PlaybackRates: []*mpd.PlaybackRateType{{Min: 0.96, Max: 1.04}},
	})
	m.SuggestedPresentationDelay = durPtr(time.Duration(target) * time.Millisecond)
	m.MinimumUpdatePeriod = durPtr(time.Duration(pt * float64(time.Second)))
}

// lowLatencySet marks the segment templates of an AdaptationSet available
// one part into each segment (when one of its tracks is low-latency: a
// set without parts stays as it is), and adds a ProducerReferenceTime mapping
// media time to the wall clock (the point's anchor: media time zero).
//
// The ProducerReferenceTime carries the MPD's UTCTiming (utc, the direct
// scheme with the time of the request) as its child: that child says which
// clock, and so which format, wallClockTime is in. Without it
// wallClockTime is read as an NTP timestamp (ISO/IEC 23009-1, 5.12) — as
// Shaka Player does, which then maps every media time 70 years into the
// past — while Sluice writes an xs:dateTime.
func lowLatencySet(as *mpd.AdaptationSetType, v store.View, frag time.Duration, pt float64, pto func(uint32) uint64, utc string) {
	ato := math.Round((frag.Seconds()-pt)*1000) / 1000
	ll := false
	for _, r := range as.Representations {
		if t, ok := v.Track(r.Id); ok && LowLatency(v, t) {
			ll = true
		}
	}
	if ato <= 0 || !ll {
		return
	}
	mark := func(st *mpd.SegmentTemplateType) {
		if st == nil {
			return
		}
		st.AvailabilityTimeOffset = mpd.FloatInf64(ato)
		st.AvailabilityTimeComplete = mpd.Ptr(false)
	}
	mark(as.SegmentTemplate)
	for _, r := range as.Representations {
		mark(r.SegmentTemplate)
	}
	if v.Meta.Anchor.IsZero() {
		return
	}
	var timescale uint32 = 1
	if st := as.SegmentTemplate; st != nil && st.Timescale != nil {
		timescale = *st.Timescale
	} else if len(as.Representations) > 0 && as.Representations[0].SegmentTemplate != nil && as.Representations[0].SegmentTemplate.Timescale != nil {
		timescale = *as.Representations[0].SegmentTemplate.Timescale
	}
	// presentationTime is relative to the presentationTimeOffset: the
	// wall clock of media time pto is the anchor plus pto.
	off := pto(timescale)
	wall := v.Meta.Anchor.Add(toDuration(int64(off), timescale))
	as.ProducerReferenceTimes = append(as.ProducerReferenceTimes, &mpd.ProducerReferenceTimeType{
		Id: 0, Type: "encoder", WallClockTime: wall.UTC().Format(dateTime), PresentationTime: 0,
		UTCTiming: mpd.NewDescriptor(utcTimingDirect, utc, ""),
	})
}
