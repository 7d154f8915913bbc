package player

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Eyevinn/hls-m3u8/m3u8"
)

// hlsVariant is one EXT-X-STREAM-INF of a master playlist.
type hlsVariant struct {
	uri        string // resolved
	id         string // the rendition's ID: the URI on the first pathway
	pathway    string // PATHWAY-ID, "" when none
	bandwidth  int64
	codecs     string
	width      int
	height     int
	audioGroup string
}

// hlsRendition is one EXT-X-MEDIA of a master playlist.
type hlsRendition struct {
	typ     string
	groupID string
	name    string
	lang    string
	def     bool
	uri     string // resolved; empty when the rendition is muxed into the variants
	id      string // the rendition's ID: the URI on the first pathway
}

// hlsMaster is a parsed master (multivariant) playlist.
type hlsMaster struct {
	variants []hlsVariant
	media    []hlsRendition
	// pathways are the PATHWAY-IDs of the variants in order of first
	// appearance (content steering; none without); steering is the
	// EXT-X-CONTENT-STEERING SERVER-URI (resolved), defaultPathway its
	// PATHWAY-ID.
	pathways       []string
	steering       string
	defaultPathway string
}

// pathwayView is the master as one pathway lists it: that pathway's
// variants and the renditions of their audio group, each with the ID of
// its counterpart on the first pathway (matched by position), so that a
// rendition keeps its ID when the player moves to another pathway. A
// pathway that does not line up with the first one (or is unknown) gives
// the first one.
func (m *hlsMaster) pathwayView(p string) *hlsMaster {
	if len(m.pathways) == 0 {
		return m
	}
	on := func(p string) []hlsVariant {
		var out []hlsVariant
		for _, v := range m.variants {
			if v.pathway == p {
				out = append(out, v)
			}
		}
		return out
	}
	group := func(vs []hlsVariant) []hlsRendition {
		var out []hlsRendition
		if len(vs) == 0 || vs[0].audioGroup == "" {
			return nil
		}
		for _, r := range m.media {
			if r.typ == "AUDIO" && r.groupID == vs[0].audioGroup {
				out = append(out, r)
			}
		}
		return out
	}
	fv := on(m.pathways[0])
	pv := on(p)
	fr, pr := group(fv), group(pv)
	if len(pv) != len(fv) || len(pr) != len(fr) {
		pv, pr = fv, fr
	}
	out := &hlsMaster{pathways: m.pathways, steering: m.steering, defaultPathway: m.defaultPathway}
	for i, v := range pv {
		v.id = fv[i].uri
		out.variants = append(out.variants, v)
	}
	for i, r := range pr {
		r.id = fr[i].uri
		out.media = append(out.media, r)
	}
	return out
}

// hlsMedia is a parsed media playlist.
type hlsMedia struct {
	targetDuration time.Duration
	mediaSequence  int64
	ended          bool // EXT-X-ENDLIST, or PLAYLIST-TYPE:VOD
	holdBack       time.Duration
	init           *Segment
	segments       []Segment
}

// isMasterPlaylist tells a master playlist from a media playlist.
func isMasterPlaylist(data []byte) bool {
	return bytes.Contains(data, []byte("#EXT-X-STREAM-INF"))
}

// decodePlaylist reads a playlist with github.com/Eyevinn/hls-m3u8 in its
// lenient mode (tags the player does not use cannot fail a load) after
// checking the one thing that mode lets pass: the #EXTM3U header. The
// callers check what they rely on.
func decodePlaylist(data []byte, want m3u8.ListType) (m3u8.Playlist, error) {
	first, _, _ := bytes.Cut(data, []byte("\n"))
	if !bytes.HasPrefix(bytes.TrimPrefix(bytes.TrimSpace(first), []byte("\ufeff")), []byte("#EXTM3U")) {
		return nil, errors.New("playlist does not start with #EXTM3U")
	}
	pl, typ, err := m3u8.Decode(*bytes.NewBuffer(bytes.TrimPrefix(data, []byte("\ufeff"))), false)
	if err != nil {
		return nil, err
	}
	if typ != want {
		return nil, fmt.Errorf("a %s playlist where a %s one was expected", listName(typ), listName(want))
	}
	return pl, nil
}

func listName(t m3u8.ListType) string {
	if t == m3u8.MASTER {
		return "master"
	}
	return "media"
}

// parseMasterPlaylist parses a master playlist (RFC 8216 4.3.4): its
// variants (I-frame variants left out), the EXT-X-MEDIA renditions their
// groups name, and content steering (PATHWAY-ID, EXT-X-CONTENT-STEERING).
func parseMasterPlaylist(data []byte, base *url.URL) (*hlsMaster, error) {
	pl, err := decodePlaylist(data, m3u8.MASTER)
	if err != nil {
		return nil, fmt.Errorf("master playlist: %w", err)
	}
	mp := pl.(*m3u8.MasterPlaylist)
	m := &hlsMaster{}
	if cs := mp.ContentSteering; cs != nil {
		if cs.ServerURI != "" {
			if su, err := resolve(base, cs.ServerURI); err == nil {
				m.steering = su.String()
			}
		}
		m.defaultPathway = cs.PathwayId
	}
	seen := map[*m3u8.Alternative]bool{}
	for _, v := range mp.Variants {
		if v == nil || v.Iframe || strings.TrimSpace(v.URI) == "" {
			continue
		}
		u, err := resolve(base, v.URI)
		if err != nil {
			return nil, fmt.Errorf("variant URI: %w", err)
		}
		hv := hlsVariant{
			uri: u.String(), id: u.String(), pathway: v.PathwayId, bandwidth: int64(v.Bandwidth),
			codecs: v.Codecs, audioGroup: v.Audio,
		}
		if hv.pathway != "" && !slices.Contains(m.pathways, hv.pathway) {
			m.pathways = append(m.pathways, hv.pathway)
		}
		if w, h, ok := strings.Cut(strings.ToLower(v.Resolution), "x"); ok {
			hv.width, _ = strconv.Atoi(w)
			hv.height, _ = strconv.Atoi(h)
		}
		m.variants = append(m.variants, hv)
		for _, a := range v.Alternatives {
			if a == nil || seen[a] {
				continue
			}
			seen[a] = true
			r := hlsRendition{typ: a.Type, groupID: a.GroupId, name: a.Name, lang: a.Language, def: a.Default}
			if a.URI != "" {
				ru, err := resolve(base, a.URI)
				if err != nil {
					return nil, fmt.Errorf("EXT-X-MEDIA URI: %w", err)
				}
				r.uri = ru.String()
			}
			r.id = r.uri
			m.media = append(m.media, r)
		}
	}
	if len(m.variants) == 0 {
		return nil, errors.New("master playlist has no variant")
	}
	return m, nil
}

// parseMediaPlaylist parses a media playlist (RFC 8216 4.3.2, 4.3.3): the
// segments with their byte ranges, the first EXT-X-MAP, the end, the
// hold-back. Segments are numbered from EXT-X-MEDIA-SEQUENCE and timed by
// adding up EXTINF from 0; a discontinuity changes neither.
func parseMediaPlaylist(data []byte, base *url.URL) (*hlsMedia, error) {
	pl, err := decodePlaylist(data, m3u8.MEDIA)
	if err != nil {
		return nil, fmt.Errorf("media playlist: %w", err)
	}
	mp := pl.(*m3u8.MediaPlaylist)
	if mp.TargetDuration == 0 {
		return nil, errors.New("media playlist without EXT-X-TARGETDURATION")
	}
	m := &hlsMedia{
		targetDuration: time.Duration(mp.TargetDuration) * time.Second,
		mediaSequence:  int64(mp.SeqNo),
		ended:          mp.Closed || mp.MediaType == m3u8.VOD,
	}
	if sc := mp.ServerControl; sc != nil && sc.HoldBack > 0 {
		m.holdBack = time.Duration(sc.HoldBack * float64(time.Second))
	}
	if mp.Map != nil {
		if m.init, err = mapSegment(base, mp.Map); err != nil {
			return nil, err
		}
	} else if bytes.Contains(data, []byte("#EXT-X-MAP:")) {
		// hls-m3u8 drops an EXT-X-MAP it cannot read (a BYTERANGE
		// without @offset): fail rather than play without the init.
		return nil, errors.New("EXT-X-MAP not understood (BYTERANGE needs <length>@<offset>)")
	}
	var (
		start   time.Duration
		lastURI string
		nextOff int64
		wall    time.Time // the next segment's program date time, carried forward
	)
	seq := m.mediaSequence
	for i, s := range mp.Segments {
		if s == nil {
			break // the rest of hls-m3u8's ring buffer
		}
		if !(s.Duration > 0) {
			return nil, fmt.Errorf("segment %d (%s): EXTINF duration %v", i, s.URI, s.Duration)
		}
		u, err := resolve(base, s.URI)
		if err != nil {
			return nil, fmt.Errorf("segment URI: %w", err)
		}
		seg := Segment{URL: u.String(), Seq: seq, Start: start, Dur: time.Duration(s.Duration * float64(time.Second))}
		if !s.ProgramDateTime.IsZero() {
			wall = s.ProgramDateTime
		}
		if !wall.IsZero() {
			seg.Wall = wall
			wall = wall.Add(seg.Dur)
		}
		if s.Limit > 0 {
			// hls-m3u8 reads EXT-X-BYTERANGE:<n> without @<o> as offset 0;
			// RFC 8216 4.3.2.2 makes it continue the previous sub-range
			// of the same resource, which is what a following range of
			// the same URI at 0 means here.
			off := s.Offset
			if off == 0 && seg.URL == lastURI {
				off = nextOff
			}
			seg.Range = httpRange(off, s.Limit)
			nextOff = off + s.Limit
		}
		lastURI = seg.URL
		m.segments = append(m.segments, seg)
		start += seg.Dur
		seq++
	}
	return m, nil
}

// mapSegment is the init segment an EXT-X-MAP names.
func mapSegment(base *url.URL, mp *m3u8.Map) (*Segment, error) {
	u, err := resolve(base, mp.URI)
	if err != nil {
		return nil, fmt.Errorf("EXT-X-MAP URI: %w", err)
	}
	init := &Segment{URL: u.String()}
	if mp.Limit > 0 {
		init.Range = httpRange(mp.Offset, mp.Limit)
	}
	return init, nil
}

// httpRange is the HTTP byte range of n bytes from off: "off-(off+n-1)".
func httpRange(off, n int64) string {
	return strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+n-1, 10)
}

// hlsPresentation builds the presentation of a master playlist (as one
// pathway lists it: hlsMaster.pathwayView): the variants as video
// renditions and the audio group of the first variant as the audio stream.
// media holds the media playlists loaded so far, by rendition ID.
func hlsPresentation(m *hlsMaster, media map[string]*hlsMedia) (*Presentation, error) {
	p := &Presentation{Format: FormatHLS}
	video := &Stream{Kind: KindVideo}
	seen := map[string]bool{}
	for _, v := range m.variants {
		if seen[v.id] {
			continue
		}
		seen[v.id] = true
		r := &Rendition{ID: v.id, Bitrate: v.bandwidth, Codecs: v.codecs, Width: v.width, Height: v.height}
		applyMedia(r, media[v.id])
		video.Renditions = append(video.Renditions, r)
	}
	video.sortByBitrate()
	p.Video = video
	// Audio: the group the lowest variant names, its DEFAULT rendition.
	group := ""
	for _, v := range m.variants {
		if v.audioGroup != "" {
			group = v.audioGroup
			break
		}
	}
	var chosen *hlsRendition
	for i := range m.media {
		r := &m.media[i]
		if r.typ != "AUDIO" || r.groupID != group || r.uri == "" {
			continue
		}
		if chosen == nil || (r.def && !chosen.def) {
			chosen = r
		}
	}
	if chosen != nil {
		r := &Rendition{ID: chosen.id}
		applyMedia(r, media[chosen.id])
		p.Audio = &Stream{Kind: KindAudio, Renditions: []*Rendition{r}}
	}
	finishHLS(p)
	for _, st := range []*Stream{p.Video, p.Audio} {
		if st == nil {
			continue
		}
		for _, r := range st.Renditions {
			mp := media[r.ID]
			if mp == nil {
				continue
			}
			if p.UpdatePeriod == 0 || mp.targetDuration < p.UpdatePeriod {
				p.UpdatePeriod = mp.targetDuration
			}
			p.LiveDelay = max(p.LiveDelay, mp.holdBack)
		}
	}
	return p, nil
}

// applyMedia copies a loaded media playlist into a rendition.
func applyMedia(r *Rendition, mp *hlsMedia) {
	if mp == nil {
		return
	}
	r.Loaded = true
	r.Ended = mp.ended
	r.Init = mp.init
	r.segments = mp.segments
}

// finishHLS derives liveness, reload period and hold-back from the loaded
// media playlists.
func finishHLS(p *Presentation) {
	p.Live = false
	anyLoaded := false
	for _, st := range []*Stream{p.Video, p.Audio} {
		if st == nil {
			continue
		}
		for _, r := range st.Renditions {
			if r.Loaded {
				anyLoaded = true
				if !r.Ended {
					p.Live = true
				}
			}
		}
	}
	if !anyLoaded {
		p.Live = true // unknown until a media playlist has been read
	}
}
