package distribution

import (
	"encoding/xml"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// timeline is the fragment times one manifest lists for one track.
type timeline struct {
	timescale uint64
	starts    []int64 // sorted
	lastEnd   int64
	maxDur    int64
}

func (tl *timeline) add(start, dur int64) {
	tl.starts = append(tl.starts, start)
	tl.lastEnd = max(tl.lastEnd, start+dur)
	tl.maxDur = max(tl.maxDur, dur)
}

func (tl *timeline) finish() {
	sort.Slice(tl.starts, func(i, j int) bool { return tl.starts[i] < tl.starts[j] })
}

func (tl *timeline) has(t int64) bool {
	i := sort.Search(len(tl.starts), func(i int) bool { return tl.starts[i] >= t })
	return i < len(tl.starts) && tl.starts[i] == t
}

// seconds converts a time of the track to seconds.
func (tl *timeline) seconds(t int64) float64 {
	if tl.timescale == 0 {
		return 0
	}
	return float64(t) / float64(tl.timescale)
}

// Reasons for refusing a request without going upstream.
const (
	refuseMalformed = "malformed"     // the URL cannot name a fragment
	refusePoint     = "unknown_point" // the origin does not know the point
	refuseTrack     = "unknown_track" // no such track in the manifest
	refuseFuture    = "future"        // beyond the live edge by more than the slack
	refusePast      = "past"          // before the DVR window by more than the slack
	refuseUnlisted  = "unlisted"      // inside the listed span, but no fragment starts there
	refuseResource  = "resource"      // not a client URL of the origin
	refuseMethod    = "method"        // not GET, HEAD or OPTIONS
)

// layout is what one manifest of a point says about its fragments: the
// tracks and their timelines, whether the presentation is live, and its
// freshness.
type layout struct {
	// missing: the origin answered the manifest with an error status (an
	// unknown point, or nothing to list yet).
	missing bool
	// opaque: the manifest was not understood; requests pass unchecked
	// until it changes.
	opaque bool
	live   bool
	// lookAhead is the Smooth LookAheadFragmentCount: fragments past the
	// listed edge that live Smooth clients learn from tfrf boxes.
	lookAhead int
	// tracks by DASH Representation id (track id), or for Smooth by
	// "<name>\x00<bitrate>".
	tracks  map[string]*timeline
	expires time.Time
	fetched time.Time
}

// edge is the latest listed fragment end over all tracks, in seconds.
func (l *layout) edge() float64 {
	e := 0.0
	for _, tl := range l.tracks {
		if len(tl.starts) > 0 {
			e = max(e, tl.seconds(tl.lastEnd))
		}
	}
	return e
}

// check decides whether fragment time t of track key may exist. slack is
// the number of fragment durations tolerated past the listed edge and
// before the listed start of a live timeline, widened by how long ago the
// manifest was fetched (its edge has moved on since). It returns "" when
// the request may go upstream, else the refusal reason.
func (l *layout) check(key string, t int64, slack int, now time.Time) string {
	if l.opaque {
		return ""
	}
	if l.missing {
		return refusePoint
	}
	tl := l.tracks[key]
	if tl == nil {
		return refuseTrack
	}
	if tl.has(t) {
		return ""
	}
	if !l.live || len(tl.starts) == 0 {
		if len(tl.starts) == 0 && l.live {
			return ""
		}
		return refuseUnlisted
	}
	dur := tl.maxDur
	if dur <= 0 {
		dur = int64(tl.timescale) * 2
	}
	age := int64(now.Sub(l.fetched).Seconds()*float64(tl.timescale)) + 1
	tol := int64(slack+l.lookAhead)*dur + max(age, 0)
	switch {
	case t >= tl.lastEnd:
		if t-tl.lastEnd > tol {
			return refuseFuture
		}
		return ""
	case t < tl.starts[0]:
		if tl.starts[0]-t > tol {
			return refusePast
		}
		return ""
	}
	return refuseUnlisted
}

// track returns the timeline of a track key, if listed.
func (l *layout) track(key string) *timeline {
	if l == nil || l.missing || l.opaque {
		return nil
	}
	return l.tracks[key]
}

// smoothKey names a Smooth quality level in a layout.
func smoothKey(name string, bitrate int) string { return name + "\x00" + strconv.Itoa(bitrate) }

// xmlS is a DASH S element or a Smooth c element.
type xmlS struct {
	T *int64 `xml:"t,attr"`
	D int64  `xml:"d,attr"`
	R int    `xml:"r,attr"`
}

type xmlTemplate struct {
	Timescale uint64 `xml:"timescale,attr"`
	Media     string `xml:"media,attr"`
	S         []xmlS `xml:"SegmentTimeline>S"`
}

type xmlMPD struct {
	Type    string `xml:"type,attr"`
	Periods []struct {
		Sets []struct {
			Tmpl *xmlTemplate `xml:"SegmentTemplate"`
			Reps []struct {
				ID   string       `xml:"id,attr"`
				Tmpl *xmlTemplate `xml:"SegmentTemplate"`
			} `xml:"Representation"`
		} `xml:"AdaptationSet"`
	} `xml:"Period"`
}

// dashMedia is the segment template of Sluice's MPDs.
const dashMedia = "tracks/$RepresentationID$/$Time$.m4s"

// errLayout means a manifest could not be understood; requests are then
// passed upstream unchecked (fail open).
var errLayout = errors.New("manifest layout not understood")

// parseMPD reads the tracks and timelines of a Sluice DASH MPD.
func parseMPD(body []byte) (*layout, error) {
	var m xmlMPD
	if err := xml.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", errLayout, err)
	}
	l := &layout{live: m.Type == "dynamic", tracks: map[string]*timeline{}}
	for _, p := range m.Periods {
		for _, as := range p.Sets {
			for _, r := range as.Reps {
				tp := r.Tmpl
				if tp == nil {
					tp = as.Tmpl
				}
				if tp == nil || tp.Media != dashMedia || r.ID == "" {
					return nil, fmt.Errorf("%w: representation %q has no %s SegmentTimeline", errLayout, r.ID, dashMedia)
				}
				tl := &timeline{timescale: max(tp.Timescale, 1)}
				var cur int64
				for _, s := range tp.S {
					if s.T != nil {
						cur = *s.T
					}
					for i := 0; i <= max(s.R, 0); i++ {
						tl.add(cur, s.D)
						cur += s.D
					}
				}
				tl.finish()
				l.tracks[r.ID] = tl
			}
		}
	}
	return l, nil
}

type xmlSmooth struct {
	TimeScale uint64 `xml:"TimeScale,attr"`
	IsLive    string `xml:"IsLive,attr"`
	LookAhead int    `xml:"LookAheadFragmentCount,attr"`
	Streams   []struct {
		URL       string `xml:"Url,attr"`
		TimeScale uint64 `xml:"TimeScale,attr"`
		Levels    []struct {
			Bitrate int `xml:"Bitrate,attr"`
		} `xml:"QualityLevel"`
		C []xmlS `xml:"c"`
	} `xml:"StreamIndex"`
}

// parseSmooth reads the quality levels and timelines of a Smooth client
// manifest. Fragment URLs name a quality level by the name in the
// StreamIndex Url template and the bitrate.
func parseSmooth(body []byte) (*layout, error) {
	var m xmlSmooth
	if err := xml.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", errLayout, err)
	}
	l := &layout{live: strings.EqualFold(m.IsLive, "true"), lookAhead: max(m.LookAhead, 0), tracks: map[string]*timeline{}}
	for _, s := range m.Streams {
		i := strings.Index(s.URL, "Fragments(")
		j := strings.Index(s.URL, "={start time})")
		if i < 0 || j < i {
			return nil, fmt.Errorf("%w: StreamIndex Url %q", errLayout, s.URL)
		}
		name := s.URL[i+len("Fragments(") : j]
		ts := s.TimeScale
		if ts == 0 {
			ts = m.TimeScale
		}
		if ts == 0 {
			ts = 10_000_000 // the MS-SSTR default
		}
		tl := &timeline{timescale: ts}
		var cur int64
		for _, c := range s.C {
			if c.T != nil {
				cur = *c.T
			}
			for k := 0; k < max(c.R, 1); k++ { // c@r is a total count
				tl.add(cur, c.D)
				cur += c.D
			}
		}
		tl.finish()
		for _, q := range s.Levels {
			l.tracks[smoothKey(name, q.Bitrate)] = tl
		}
	}
	return l, nil
}
