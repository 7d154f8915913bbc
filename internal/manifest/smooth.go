package manifest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/store"
)

// smoothTimeScale is the top-level Smooth timescale (100 ns units), in which
// Duration and DVRWindowLength are expressed.
const smoothTimeScale = 10_000_000

type ssMedia struct {
	XMLName                xml.Name   `xml:"SmoothStreamingMedia"`
	MajorVersion           int        `xml:"MajorVersion,attr"`
	MinorVersion           int        `xml:"MinorVersion,attr"`
	TimeScale              uint64     `xml:"TimeScale,attr"`
	Duration               uint64     `xml:"Duration,attr"`
	IsLive                 string     `xml:"IsLive,attr,omitempty"`
	LookAheadFragmentCount *int       `xml:"LookAheadFragmentCount,attr,omitempty"`
	DVRWindowLength        uint64     `xml:"DVRWindowLength,attr,omitempty"`
	Streams                []ssStream `xml:"StreamIndex"`
}

type ssStream struct {
	Type          string      `xml:"Type,attr"`
	Subtype       string      `xml:"Subtype,attr,omitempty"`
	Name          string      `xml:"Name,attr"`
	Language      string      `xml:"Language,attr,omitempty"`
	Chunks        int         `xml:"Chunks,attr"`
	QualityLevels int         `xml:"QualityLevels,attr"`
	URL           string      `xml:"Url,attr"`
	TimeScale     uint32      `xml:"TimeScale,attr"`
	MaxWidth      int         `xml:"MaxWidth,attr,omitempty"`
	MaxHeight     int         `xml:"MaxHeight,attr,omitempty"`
	DisplayWidth  int         `xml:"DisplayWidth,attr,omitempty"`
	DisplayHeight int         `xml:"DisplayHeight,attr,omitempty"`
	Levels        []ssQuality `xml:"QualityLevel"`
	Chunk         []ssChunk   `xml:"c"`
}

type ssQuality struct {
	Index            int    `xml:"Index,attr"`
	Bitrate          int    `xml:"Bitrate,attr"`
	FourCC           string `xml:"FourCC,attr"`
	MaxWidth         int    `xml:"MaxWidth,attr,omitempty"`
	MaxHeight        int    `xml:"MaxHeight,attr,omitempty"`
	SamplingRate     int    `xml:"SamplingRate,attr,omitempty"`
	Channels         int    `xml:"Channels,attr,omitempty"`
	BitsPerSample    int    `xml:"BitsPerSample,attr,omitempty"`
	PacketSize       int    `xml:"PacketSize,attr,omitempty"`
	AudioTag         int    `xml:"AudioTag,attr,omitempty"`
	CodecPrivateData string `xml:"CodecPrivateData,attr"`
}

// ssChunk is a c element. R is the TOTAL number of fragments of the run (as
// dash.js and IIS read it), unlike DASH S@r.
type ssChunk struct {
	T *uint64 `xml:"t,attr,omitempty"`
	D uint64  `xml:"d,attr"`
	R int     `xml:"r,attr,omitempty"`
}

// smoothGroup is one StreamIndex: the tracks of one kind and name.
type smoothGroup struct {
	kind, name string
	tracks     []store.TrackView
}

// Smooth renders the Smooth Streaming client manifest
// (/<pp>.isml/Manifest, MS-SSTR MajorVersion 2, MinorVersion 2).
//
// Tracks of the same kind and name form one StreamIndex, one QualityLevel
// each, whose fragments are requested as
// QualityLevels({bitrate})/Fragments(<name>={start time}). Tracks of one name
// but different languages or codec families (avc/hevc, AAC/AC-3) get
// StreamIndexes of their own, since players switch between the quality
// levels of one StreamIndex by bandwidth alone; their fragment URLs differ
// only by bitrate. The c elements follow the first track of the group that
// has listable fragments. Left out are: a track whose timescale differs from
// that first track's; a track whose name and bitrate repeat those of an
// earlier track in the View (the URL would be ambiguous, and the origin
// resolves it to the earlier one); tracks with nothing listable yet; text
// tracks other than TTML (stpp). On demand, c@r is a total count; live
// manifests list one c per fragment (no c@r). c@t is on the first c and
// after every gap; c@d on every c. QualityLevel@Bitrate is SmoothBitrate.
//
// Live: IsLive="TRUE", Duration 0, LookAheadFragmentCount, DVRWindowLength,
// and the last LookAhead fragments of every track that has not ended are
// held back. Static: Duration is the span of the listed fragments. With no
// StreamIndex to show, the error wraps ErrEmpty.
func Smooth(v store.View, o Options) ([]byte, error) {
	v = list(v, o).v
	live := Live(v)
	la := o.lookAhead()
	m := ssMedia{MajorVersion: 2, MinorVersion: 2, TimeScale: smoothTimeScale}
	if live {
		m.IsLive = "TRUE"
		m.LookAheadFragmentCount = &la
		m.DVRWindowLength = uint64(dvrWindow(v, o) / 100) // 100 ns units
	}
	var from, to uint64
	var have bool
	for _, g := range smoothGroups(v) {
		s, ok := smoothStream(g, live, la)
		if !ok {
			continue
		}
		m.Streams = append(m.Streams, s)
		// Span in the top-level timescale, for the static Duration.
		a := rescale(smoothStart(s), uint64(s.TimeScale), smoothTimeScale)
		b := rescale(smoothEnd(s), uint64(s.TimeScale), smoothTimeScale)
		if !have || a < from {
			from = a
		}
		if !have || b > to {
			to = b
		}
		have = true
	}
	if !have {
		for _, t := range v.Tracks {
			if len(t.Frags) > 0 && !media.SmoothCarries(t.Info) {
				return nil, fmt.Errorf("smooth manifest: no track in a codec Smooth carries (AV1 and Opus are served as DASH and HLS only): %w", ErrEmpty)
			}
		}
		return nil, fmt.Errorf("smooth manifest: %w", ErrEmpty)
	}
	if !live {
		m.Duration = to - from
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("smooth manifest: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// smoothGroups groups the tracks by kind and name (and, within those, by
// language and codec family), in View order.
func smoothGroups(v store.View) []*smoothGroup {
	var out []*smoothGroup
	idx := map[string]*smoothGroup{}
	owner := map[string]bool{} // name and bitrate already taken
	for _, t := range v.Tracks {
		switch t.Info.Kind {
		case "video", "audio":
			if !media.SmoothCarries(t.Info) {
				continue // AV1, Opus: no Smooth FourCC a client knows
			}
		case "text":
			if t.Info.SampleEntry != "stpp" {
				continue
			}
		default:
			continue
		}
		name := t.Info.Name
		if name == "" {
			name = t.Info.Kind
		}
		// A fragment URL names a track by name and bitrate: the first track
		// in View order owns the pair (as the origin resolves it).
		nb := name + "\x00" + strconv.Itoa(SmoothBitrate(t))
		if owner[nb] {
			continue
		}
		owner[nb] = true
		// Languages and codecs are never mixed in one StreamIndex: players
		// switch between its quality levels by bandwidth alone.
		lang := t.Info.Language
		if t.Info.Kind == "video" {
			lang = ""
		}
		key := t.Info.Kind + "\x00" + name + "\x00" + lang + "\x00" + codecFamily(t.Info.SampleEntry)
		g := idx[key]
		if g == nil {
			g = &smoothGroup{kind: t.Info.Kind, name: name}
			idx[key] = g
			out = append(out, g)
		}
		g.tracks = append(g.tracks, t)
	}
	return out
}

// smoothStream renders one StreamIndex; ok is false when it lists nothing.
func smoothStream(g *smoothGroup, live bool, lookAhead int) (ssStream, bool) {
	var ref *store.TrackView
	var timeline []store.FragRef
	for i := range g.tracks {
		if fs := g.tracks[i].Frags; len(fs) > 0 && g.tracks[i].Info.Timescale > 0 {
			ref, timeline = &g.tracks[i], fs
			break
		}
	}
	if ref == nil {
		return ssStream{}, false
	}
	if live && !ref.Ended {
		timeline = timeline[:max(len(timeline)-lookAhead, 0)]
	}
	if len(timeline) == 0 {
		return ssStream{}, false
	}
	s := ssStream{
		Type:      g.kind,
		Name:      g.name,
		Language:  ref.Info.Language,
		Chunks:    len(timeline),
		URL:       "QualityLevels({bitrate})/Fragments(" + g.name + "={start time})",
		TimeScale: ref.Info.Timescale,
	}
	if g.kind == "text" {
		s.Subtype = "SUBT"
	}
	for _, t := range g.tracks {
		if t.Info.Timescale != ref.Info.Timescale {
			continue
		}
		if len(t.Frags) == 0 {
			continue
		}
		q := smoothQuality(t)
		q.Index = len(s.Levels)
		s.Levels = append(s.Levels, q)
		if g.kind == "video" {
			s.MaxWidth = max(s.MaxWidth, t.Info.Width)
			s.MaxHeight = max(s.MaxHeight, t.Info.Height)
		}
	}
	s.DisplayWidth, s.DisplayHeight = s.MaxWidth, s.MaxHeight
	s.QualityLevels = len(s.Levels)
	if live {
		// One c per fragment: a live client that starts a few c before the
		// last one counts c elements, not fragments (a run of 60 would put
		// it two minutes behind the edge).
		for i, f := range timeline {
			c := ssChunk{D: f.Duration}
			if i == 0 || f.Start != timeline[i-1].End() {
				t := uint64(f.Start)
				c.T = &t
			}
			s.Chunk = append(s.Chunk, c)
		}
		return s, true
	}
	for _, r := range runs(timeline) {
		c := ssChunk{D: r.d}
		if r.gap {
			t := uint64(r.start)
			c.T = &t
		}
		if r.n > 1 {
			c.R = r.n
		}
		s.Chunk = append(s.Chunk, c)
	}
	return s, true
}

// SmoothBitrate is a track's Bitrate in the Smooth manifest and in its
// fragment URLs (QualityLevels(<bitrate>)): the bit rate its encoder
// declared, else the one measured on its first fragment (Extent.FirstSize),
// which never changes while the presentation lives, so the URLs stay put;
// else (an extent from before sizes were kept) the peak over its listed
// fragments. It is never 0 for a track with a fragment. The origin resolves
// fragment URLs with it.
func SmoothBitrate(t store.TrackView) int {
	if t.Info.Bitrate > 0 {
		return t.Info.Bitrate
	}
	if e := t.Extent; e.FirstSize > 0 && e.FirstDuration > 0 && t.Info.Timescale > 0 {
		if d := seconds(int64(e.FirstDuration), t.Info.Timescale); d > 0 {
			return max(int(math.Ceil(float64(e.FirstSize)*8/d)), 1)
		}
	}
	_, peak := bitrates(t, t.Frags)
	return max(peak, 1)
}

func smoothQuality(t store.TrackView) ssQuality {
	ti := t.Info
	q := ssQuality{Bitrate: SmoothBitrate(t), FourCC: ti.FourCC, CodecPrivateData: ti.CodecPrivateData}
	switch ti.Kind {
	case "video":
		if q.FourCC == "" {
			q.FourCC = strings.ToUpper(ti.SampleEntry)
		}
		q.MaxWidth, q.MaxHeight = ti.Width, ti.Height
	case "audio":
		if q.FourCC == "" {
			q.FourCC = strings.ToUpper(ti.SampleEntry)
		}
		q.SamplingRate = ti.SampleRate
		q.Channels, q.BitsPerSample = ti.Channels, ti.BitsPerSample
		q.PacketSize = 4
		if q.Channels > 0 && q.BitsPerSample > 0 {
			q.PacketSize = q.Channels * q.BitsPerSample / 8
		}
		if q.Channels == 0 {
			q.Channels = 2
		}
		if q.BitsPerSample == 0 {
			q.BitsPerSample = 16
		}
		q.AudioTag = 65534 // WAVE_FORMAT_EXTENSIBLE
		if q.FourCC == "AACL" || q.FourCC == "AACH" {
			q.AudioTag = 255
		}
	case "text":
		q.FourCC = "TTML"
	}
	return q
}

// smoothStart is the start time of the first c of a StreamIndex.
func smoothStart(s ssStream) uint64 { return *s.Chunk[0].T }

// smoothEnd is the end time of the last c of a StreamIndex.
func smoothEnd(s ssStream) uint64 {
	var t uint64
	for _, c := range s.Chunk {
		if c.T != nil {
			t = *c.T
		}
		t += c.D * uint64(max(c.R, 1))
	}
	return t
}
