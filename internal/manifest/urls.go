package manifest

import (
	"strconv"
	"strings"

	"github.com/Eyevinn/dash-mpd/mpd"

	"github.com/sluice-media/sluice/internal/store"
)

// URLs maps the resources a manifest names to URLs of the caller's choosing,
// for manifests served by someone other than the origin: the scheduler's
// per-session manifests point every segment at the sender that holds it
// (absolute URLs, a signed token in the path). Options.URLs == nil keeps the
// origin's relative URLs; so does any nil function below.
//
// With Segment set, DASH lists each Representation's segments in a
// SegmentList (SegmentTimeline plus one SegmentURL@media per segment, and
// Initialization@sourceURL) instead of a SegmentTemplate, since no template
// can name a different host per segment. HLS writes the returned URLs as the
// EXT-X-MAP and segment URIs; Playlist gives the media playlist URIs of the
// master playlist. Smooth ignores URLs.
type URLs struct {
	// Manifest, when not empty, is the URL players reload a DASH MPD from
	// (MPD@Location), e.g. the URL that carries a session.
	Manifest string
	// Init returns the URL of a track's CMAF header.
	Init func(trackID string) string
	// Segment returns the URL of the fragment of a track that starts at
	// start (FragRef.Start, in the track timescale).
	Segment func(trackID string, start int64) string
	// Part returns the URL of the part of a track that starts at start
	// (LL-HLS). Without it, a renderer with its own Segment URLs lists no
	// parts (the low-latency tags are left out).
	Part func(trackID string, start int64) string
	// Playlist returns the URI of a track's HLS media playlist as the master
	// playlist lists it.
	Playlist func(trackID string) string

	// BaseURLs, when not empty (and Segment nil), are the MPD-level
	// BaseURLs of DASH, one per pathway with its serviceLocation (content
	// steering, BaseURL failover): the segments are addressed relative to
	// them by a SegmentTemplate, "$RepresentationID$/$Time$.m4s" and
	// "$RepresentationID$/init.mp4", so that a player can fetch every
	// segment from any of them.
	BaseURLs []BaseURL
	// Steering, when set, names the content steering server of DASH
	// (<ContentSteering>) and HLS (EXT-X-CONTENT-STEERING).
	Steering *Steering
	// Stored tells that the segment URLs name stored fragments as they are
	// (a sender's blocks, by their start), also where Segment is nil
	// (relative URIs, BaseURLs): nothing is listed cut (see doc.go, "What
	// is listed"). Segment set implies it.
	Stored bool
	// Pathways, when not empty, are the pathways of the HLS master
	// playlist: every variant and rendition is listed once per pathway,
	// with its PATHWAY-ID, its own audio GROUP-ID and the pathway's media
	// playlist URIs (Playlist is then not used).
	Pathways []Pathway
}

// BaseURL is one DASH BaseURL element.
type BaseURL struct {
	URL             string
	ServiceLocation string
}

// Steering names a content steering server.
type Steering struct {
	// URI is the steering manifest's URL (DASH players want it absolute).
	URI string
	// DefaultPathway is the pathway (serviceLocation, PATHWAY-ID) a
	// player uses until the steering manifest says otherwise.
	DefaultPathway string
	// QueryBeforeStart makes DASH players ask the server before they
	// start (ContentSteering@queryBeforeStart).
	QueryBeforeStart bool
}

// Pathway is one pathway of an HLS master playlist.
type Pathway struct {
	ID string
	// Playlist returns the URI of a track's media playlist on this
	// pathway.
	Playlist func(trackID string) string
}

// Relative SegmentTemplate URLs under BaseURLs.
const (
	baseInit  = "$RepresentationID$/init.mp4"
	baseMedia = "$RepresentationID$/$Time$.m4s"
)

// template returns the SegmentTemplate's initialization and media URLs.
func (u *URLs) template() (init, media string) {
	if u != nil && len(u.BaseURLs) > 0 {
		return baseInit, baseMedia
	}
	return dashInit, dashMedia
}

// playlist is the master playlist's URI of a track's media playlist.
func (u *URLs) playlist(trackID string) string {
	if u == nil || u.Playlist == nil {
		return mediaPlaylist(trackID)
	}
	return u.Playlist(trackID)
}

// hlsInit is the EXT-X-MAP URI of a media playlist.
func (u *URLs) hlsInit(trackID string) string {
	if u == nil || u.Init == nil {
		return "init.mp4"
	}
	return u.Init(trackID)
}

// hlsSegment is the URI of a segment in a media playlist.
func (u *URLs) hlsSegment(trackID string, start int64) string {
	if u == nil || u.Segment == nil {
		return strconv.FormatInt(start, 10) + ".m4s"
	}
	return u.Segment(trackID, start)
}

// hlsWebVTT is the URI of the WebVTT form of a text segment in a media
// playlist: <start>.vtt, or the Segment URL with .vtt for .m4s (a sender
// converts the block it holds, as the origin does).
func (u *URLs) hlsWebVTT(trackID string, start int64) string {
	if u == nil || u.Segment == nil {
		return strconv.FormatInt(start, 10) + ".vtt"
	}
	return strings.TrimSuffix(u.Segment(trackID, start), ".m4s") + ".vtt"
}

// servesCuts reports whether the server behind these URLs serves a cut
// copy of a fragment under the URL of the time it is listed from.
// hlsPart is the URI of a part (LL-HLS EXT-X-PART) of a track's open or
// newest fragments: part-<start>.m4s beside the segments, named by the
// part's own start so that the next part's name is known before it exists
// (the preload hint) whichever fragment it begins or continues.
func (u *URLs) hlsPart(trackID string, start int64) string {
	if u == nil || u.Part == nil {
		return PartName(start)
	}
	return u.Part(trackID, start)
}

// PartName is the file name of the part that starts at start.
func PartName(start int64) string { return "part-" + strconv.FormatInt(start, 10) + ".m4s" }

// listsParts reports whether parts can be addressed: by default, or with
// Part set.
func (u *URLs) listsParts() bool { return u == nil || u.Segment == nil || u.Part != nil }

func (u *URLs) servesCuts() bool { return u == nil || (u.Segment == nil && !u.Stored) }

// segmentList reports whether DASH lists segments one by one.
func (u *URLs) segmentList() bool { return u != nil && u.Segment != nil }

// dashList renders the SegmentList of one Representation: a
// SegmentTimeline with one S per listed fragment (S@t on the first and after
// every gap), one SegmentURL per listed fragment, and the Initialization.
func dashList(t store.TrackView, fs []store.FragRef, pto func(uint32) uint64, u *URLs) *mpd.SegmentListType {
	timescale := t.Info.Timescale
	sl := &mpd.SegmentListType{}
	sl.Timescale = mpd.Ptr(timescale)
	if o := pto(timescale); o > 0 {
		sl.PresentationTimeOffset = &o
	}
	if u.Init != nil {
		sl.Initialization = &mpd.URLType{SourceURL: mpd.AnyURI(u.Init(t.ID))}
	} else {
		sl.Initialization = &mpd.URLType{SourceURL: mpd.AnyURI("tracks/" + t.ID + "/init.mp4")}
	}
	// One S per segment (no S@r): dash.js (5.x) picks the SegmentURL of a
	// timeline segment by the index of its S element, not of the segment,
	// so runs would all fetch the first URL of their run.
	tl := mpd.NewSegmentTimeline()
	for i, f := range fs {
		s := &mpd.S{D: f.Duration}
		if i == 0 || f.Start != fs[i-1].End() {
			s.T = mpd.Ptr(uint64(f.Start))
		}
		tl.S = append(tl.S, s)
	}
	sl.SegmentTimeline = tl
	sl.SegmentURL = make([]*mpd.SegmentURLType, len(fs))
	for i, f := range fs {
		sl.SegmentURL[i] = &mpd.SegmentURLType{Media: mpd.AnyURI(u.Segment(t.ID, f.Start))}
	}
	return sl
}
