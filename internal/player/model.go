package player

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Format names a manifest format.
type Format string

// The manifest formats the player understands.
const (
	FormatDASH   Format = "dash"
	FormatHLS    Format = "hls"
	FormatSmooth Format = "smooth"
)

// ParseFormat turns a --format value into a Format; "auto" or "" guesses from
// the manifest URL.
func ParseFormat(s, manifestURL string) (Format, error) {
	switch strings.ToLower(s) {
	case "dash", "mpd":
		return FormatDASH, nil
	case "hls", "m3u8":
		return FormatHLS, nil
	case "smooth", "mss", "ism", "isml":
		return FormatSmooth, nil
	case "", "auto":
		return GuessFormat(manifestURL)
	}
	return "", fmt.Errorf("unknown format %q (want dash, hls, smooth or auto)", s)
}

// GuessFormat tells the format from a manifest URL: .mpd is DASH, .m3u8 is
// HLS, a path ending in /Manifest (Smooth's convention) is Smooth Streaming.
func GuessFormat(manifestURL string) (Format, error) {
	u, err := url.Parse(manifestURL)
	if err != nil {
		return "", fmt.Errorf("manifest URL: %w", err)
	}
	p := strings.ToLower(u.Path)
	switch {
	case strings.HasSuffix(p, ".mpd"):
		return FormatDASH, nil
	case strings.HasSuffix(p, ".m3u8"), strings.HasSuffix(p, ".m3u"):
		return FormatHLS, nil
	case strings.HasSuffix(p, "/manifest"), strings.HasSuffix(p, ".ism"), strings.HasSuffix(p, ".isml"):
		return FormatSmooth, nil
	}
	return "", fmt.Errorf("cannot tell the format of %q from its URL; use --format", manifestURL)
}

// Kind is the media type of a stream: video or audio.
type Kind string

// Media kinds the player fetches.
const (
	KindVideo Kind = "video"
	KindAudio Kind = "audio"
)

// Presentation is a format-neutral snapshot of one manifest load. It is
// never modified after it has been built; a reload makes a new one.
type Presentation struct {
	Format Format
	// Live is true while the manifest may still grow (DASH dynamic, HLS
	// without EXT-X-ENDLIST, Smooth IsLive="TRUE").
	Live bool
	// UpdatePeriod is how often a live manifest should be reloaded.
	UpdatePeriod time.Duration
	// LiveDelay is how far behind the newest media a live session starts
	// (suggestedPresentationDelay, HOLD-BACK); 0 means three fragments.
	LiveDelay time.Duration
	// Video and Audio are the streams of each kind; nil when absent.
	Video *Stream
	Audio *Stream
	// LowLatency is what a low-latency DASH manifest says (nil: nothing):
	// its ServiceDescription and availabilityTimeOffset.
	LowLatency *dashLowLatency
	// Pathway is the content steering pathway the segment URLs are on ("":
	// the manifest has none).
	Pathway string
	// byTime is true when segments of different renditions line up by
	// presentation time (DASH, Smooth); false when they line up by media
	// sequence number (HLS, whose playlists carry no absolute times).
	byTime bool
}

// Stream returns the stream of a kind, or nil.
func (p *Presentation) Stream(k Kind) *Stream {
	if k == KindAudio {
		return p.Audio
	}
	return p.Video
}

// setStream makes st the presentation's stream of its kind, its renditions
// sorted by bitrate; a stream without renditions is left out.
func (p *Presentation) setStream(st *Stream) {
	if len(st.Renditions) == 0 {
		return
	}
	st.sortByBitrate()
	if st.Kind == KindAudio {
		p.Audio = st
	} else {
		p.Video = st
	}
}

// Stream is one selectable media stream (a DASH AdaptationSet, an HLS variant
// group or audio group, a Smooth StreamIndex) with its renditions sorted by
// ascending bitrate.
type Stream struct {
	Kind       Kind
	Renditions []*Rendition
}

// Rendition returns the rendition with an ID, or nil.
func (s *Stream) Rendition(id string) *Rendition {
	if s == nil {
		return nil
	}
	for _, r := range s.Renditions {
		if r.ID == id {
			return r
		}
	}
	return nil
}

func (s *Stream) sortByBitrate() {
	sort.SliceStable(s.Renditions, func(i, j int) bool { return s.Renditions[i].Bitrate < s.Renditions[j].Bitrate })
}

// Rendition is one encoding of a stream: a DASH Representation, an HLS
// media playlist, a Smooth QualityLevel.
type Rendition struct {
	ID      string
	Bitrate int64 // bits per second as the manifest declares it
	Codecs  string
	Width   int
	Height  int
	// Init is the initialisation segment, nil when the format has none
	// (Smooth builds it from CodecPrivateData).
	Init *Segment
	// Loaded is false for HLS variants whose media playlist has not been
	// fetched yet; Segments is empty then.
	Loaded bool
	// Ended is true when no segment will be added any more.
	Ended bool
	// segments lists what the manifest holds. gen, when set, computes the
	// list from the wall clock instead (DASH $Number$ templates with
	// @duration whose live edge moves between manifest reloads).
	segments []Segment
	gen      func(now time.Time) []Segment
}

// Segments returns the segments available at now.
func (r *Rendition) Segments(now time.Time) []Segment {
	if r.gen != nil {
		return r.gen(now)
	}
	return r.segments
}

// Segment is one addressable object: a media fragment or an init segment.
type Segment struct {
	URL string
	// Range is an HTTP byte range "first-last", empty for the whole object.
	Range string
	// Seq is the media sequence number (HLS) or segment number (DASH); it
	// orders segments of one rendition.
	Seq int64
	// Start and Dur are the presentation time and duration.
	Start time.Duration
	Dur   time.Duration
	// Wall is the wall-clock time of the segment's first frame as the
	// manifest maps it (a dynamic MPD's availabilityStartTime + Period
	// start + the segment's time; HLS EXT-X-PROGRAM-DATE-TIME, carried
	// forward by the durations); zero when it says nothing (static
	// manifests, Smooth).
	Wall time.Time
}

// wallAt is the wall-clock time of presentation time start in a dynamic
// MPD whose availabilityStartTime is ast (zero: unknown).
func wallAt(ast time.Time, live bool, start time.Duration) time.Time {
	if !live || ast.IsZero() {
		return time.Time{}
	}
	return ast.Add(start)
}

// cursor remembers where a stream's fetching has got to, so that the next
// segment can be found in a reloaded manifest or another rendition.
type cursor struct {
	set     bool
	lastSeq int64
	end     time.Duration // presentation time at the end of the last segment
}

func (c *cursor) advance(s Segment) {
	c.set = true
	c.lastSeq = s.Seq
	c.end = s.Start + s.Dur
}

// nextResult says what nextSegment found.
type nextResult int

const (
	nextFound nextResult = iota // a segment to fetch
	nextWait                    // none yet: a live manifest must grow
	nextEnded                   // none will come: the rendition has ended
)

// nextSegment finds the segment after the cursor in segs. behind reports
// that the cursor had fallen out of the manifest's window and the first
// listed segment was chosen instead.
func nextSegment(segs []Segment, c cursor, byTime, ended bool) (seg Segment, idx int, res nextResult, behind bool) {
	if len(segs) == 0 {
		if ended {
			return Segment{}, -1, nextEnded, false
		}
		return Segment{}, -1, nextWait, false
	}
	if !c.set {
		return segs[0], 0, nextFound, false
	}
	for i, s := range segs {
		var after bool
		if byTime {
			// The segment whose middle lies after the cursor: robust to
			// renditions whose boundaries differ by a little.
			after = s.Start+s.Dur/2 > c.end
		} else {
			after = s.Seq > c.lastSeq
		}
		if after {
			if i == 0 && gapBefore(s, c, byTime) {
				return s, 0, nextFound, true
			}
			return s, i, nextFound, false
		}
	}
	if ended {
		return Segment{}, -1, nextEnded, false
	}
	return Segment{}, -1, nextWait, false
}

// gapBefore tells whether the first listed segment s starts well after the
// cursor, meaning segments in between have left the window.
func gapBefore(s Segment, c cursor, byTime bool) bool {
	if byTime {
		return s.Start > c.end+s.Dur/2
	}
	return s.Seq > c.lastSeq+1
}

// liveStart picks the index where a live session starts in segs: the
// segment at delay behind the end of the newest one, or three segments back
// when delay is 0.
func liveStart(segs []Segment, delay time.Duration) int {
	if len(segs) == 0 {
		return 0
	}
	if delay <= 0 {
		return max(0, len(segs)-3)
	}
	var acc time.Duration
	for i := len(segs) - 1; i >= 0; i-- {
		acc += segs[i].Dur
		if acc >= delay {
			return i
		}
	}
	return 0
}

// resolve returns ref resolved against base.
func resolve(base *url.URL, ref string) (*url.URL, error) {
	r, err := url.Parse(strings.TrimSpace(ref))
	if err != nil {
		return nil, fmt.Errorf("URL %q: %w", ref, err)
	}
	return base.ResolveReference(r), nil
}
