package player

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
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

func hlsLines(data []byte) (*bufio.Scanner, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	if !sc.Scan() || !strings.HasPrefix(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "\ufeff"), "#EXTM3U") {
		return nil, errors.New("playlist does not start with #EXTM3U")
	}
	return sc, nil
}

// parseMasterPlaylist parses a master playlist (RFC 8216 4.3.4).
func parseMasterPlaylist(data []byte, base *url.URL) (*hlsMaster, error) {
	sc, err := hlsLines(data)
	if err != nil {
		return nil, err
	}
	m := &hlsMaster{}
	var pending *hlsVariant
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			attrs := parseAttributes(strings.TrimPrefix(line, "#EXT-X-STREAM-INF:"))
			v := hlsVariant{codecs: attrs["CODECS"], audioGroup: attrs["AUDIO"], pathway: attrs["PATHWAY-ID"]}
			if v.pathway != "" && !slices.Contains(m.pathways, v.pathway) {
				m.pathways = append(m.pathways, v.pathway)
			}
			v.bandwidth, _ = strconv.ParseInt(attrs["BANDWIDTH"], 10, 64)
			if res := attrs["RESOLUTION"]; res != "" {
				w, h, _ := strings.Cut(strings.ToLower(res), "x")
				v.width, _ = strconv.Atoi(w)
				v.height, _ = strconv.Atoi(h)
			}
			pending = &v
		case strings.HasPrefix(line, "#EXT-X-CONTENT-STEERING:"):
			attrs := parseAttributes(strings.TrimPrefix(line, "#EXT-X-CONTENT-STEERING:"))
			if u := attrs["SERVER-URI"]; u != "" {
				if su, err := resolve(base, u); err == nil {
					m.steering = su.String()
				}
			}
			m.defaultPathway = attrs["PATHWAY-ID"]
		case strings.HasPrefix(line, "#EXT-X-MEDIA:"):
			attrs := parseAttributes(strings.TrimPrefix(line, "#EXT-X-MEDIA:"))
			r := hlsRendition{
				typ: attrs["TYPE"], groupID: attrs["GROUP-ID"], name: attrs["NAME"],
				lang: attrs["LANGUAGE"], def: attrs["DEFAULT"] == "YES",
			}
			if u := attrs["URI"]; u != "" {
				ru, err := resolve(base, u)
				if err != nil {
					return nil, fmt.Errorf("EXT-X-MEDIA URI: %w", err)
				}
				r.uri = ru.String()
			}
			r.id = r.uri
			m.media = append(m.media, r)
		case strings.HasPrefix(line, "#"):
		default:
			if pending == nil {
				continue
			}
			u, err := resolve(base, line)
			if err != nil {
				return nil, fmt.Errorf("variant URI: %w", err)
			}
			pending.uri = u.String()
			pending.id = pending.uri
			m.variants = append(m.variants, *pending)
			pending = nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read master playlist: %w", err)
	}
	if len(m.variants) == 0 {
		return nil, errors.New("master playlist has no variant")
	}
	return m, nil
}

// parseMediaPlaylist parses a media playlist (RFC 8216 4.3.2, 4.3.3).
func parseMediaPlaylist(data []byte, base *url.URL) (*hlsMedia, error) {
	sc, err := hlsLines(data)
	if err != nil {
		return nil, err
	}
	m := &hlsMedia{}
	var (
		dur       time.Duration
		haveInf   bool
		rng       string
		start     time.Duration
		seqSet    bool
		lastURI   string
		nextOff   int64
		byteRange string
	)
	seq := int64(0)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-TARGETDURATION:"):
			v, err := strconv.ParseFloat(strings.TrimPrefix(line, "#EXT-X-TARGETDURATION:"), 64)
			if err != nil {
				return nil, fmt.Errorf("EXT-X-TARGETDURATION: %w", err)
			}
			m.targetDuration = time.Duration(v * float64(time.Second))
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			v, err := strconv.ParseInt(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("EXT-X-MEDIA-SEQUENCE: %w", err)
			}
			if !seqSet {
				m.mediaSequence, seq, seqSet = v, v, true
			}
		case line == "#EXT-X-ENDLIST":
			m.ended = true
		case strings.HasPrefix(line, "#EXT-X-PLAYLIST-TYPE:"):
			if strings.TrimPrefix(line, "#EXT-X-PLAYLIST-TYPE:") == "VOD" {
				m.ended = true
			}
		case strings.HasPrefix(line, "#EXT-X-SERVER-CONTROL:"):
			attrs := parseAttributes(strings.TrimPrefix(line, "#EXT-X-SERVER-CONTROL:"))
			if v, err := strconv.ParseFloat(attrs["HOLD-BACK"], 64); err == nil {
				m.holdBack = time.Duration(v * float64(time.Second))
			}
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			attrs := parseAttributes(strings.TrimPrefix(line, "#EXT-X-MAP:"))
			u, err := resolve(base, attrs["URI"])
			if err != nil {
				return nil, fmt.Errorf("EXT-X-MAP URI: %w", err)
			}
			init := &Segment{URL: u.String()}
			if br := attrs["BYTERANGE"]; br != "" {
				if init.Range, _, err = parseByteRange(br, 0); err != nil {
					return nil, fmt.Errorf("EXT-X-MAP BYTERANGE: %w", err)
				}
			}
			if m.init == nil {
				m.init = init
			}
		case strings.HasPrefix(line, "#EXTINF:"):
			v, _, _ := strings.Cut(strings.TrimPrefix(line, "#EXTINF:"), ",")
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return nil, fmt.Errorf("EXTINF: %w", err)
			}
			dur, haveInf = time.Duration(f*float64(time.Second)), true
		case strings.HasPrefix(line, "#EXT-X-BYTERANGE:"):
			byteRange = strings.TrimPrefix(line, "#EXT-X-BYTERANGE:")
		case strings.HasPrefix(line, "#"):
		default:
			if !haveInf {
				return nil, fmt.Errorf("segment %q without EXTINF", line)
			}
			u, err := resolve(base, line)
			if err != nil {
				return nil, fmt.Errorf("segment URI: %w", err)
			}
			rng = ""
			if byteRange != "" {
				off := int64(0)
				if u.String() == lastURI {
					off = nextOff
				}
				if rng, nextOff, err = parseByteRange(byteRange, off); err != nil {
					return nil, fmt.Errorf("EXT-X-BYTERANGE: %w", err)
				}
			}
			lastURI = u.String()
			m.segments = append(m.segments, Segment{URL: lastURI, Range: rng, Seq: seq, Start: start, Dur: dur})
			start += dur
			seq++
			haveInf, byteRange = false, ""
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read media playlist: %w", err)
	}
	if m.targetDuration == 0 {
		return nil, errors.New("media playlist without EXT-X-TARGETDURATION")
	}
	return m, nil
}

// parseByteRange turns "n[@o]" into an HTTP range "o-(o+n-1)" and the offset
// after it; def is the offset when o is absent.
func parseByteRange(s string, def int64) (string, int64, error) {
	ns, os, hasOff := strings.Cut(strings.TrimSpace(s), "@")
	n, err := strconv.ParseInt(ns, 10, 64)
	if err != nil || n <= 0 {
		return "", 0, fmt.Errorf("byte range %q", s)
	}
	off := def
	if hasOff {
		if off, err = strconv.ParseInt(os, 10, 64); err != nil || off < 0 {
			return "", 0, fmt.Errorf("byte range %q", s)
		}
	}
	return fmt.Sprintf("%d-%d", off, off+n-1), off + n, nil
}

// parseAttributes parses an HLS attribute list (RFC 8216 4.2); quoted
// values lose their quotes and may contain commas.
func parseAttributes(s string) map[string]string {
	out := map[string]string{}
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			break
		}
		key := strings.TrimSpace(s[:eq])
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				val, s = s[1:], ""
			} else {
				val, s = s[1:end+1], s[end+2:]
			}
			if c := strings.IndexByte(s, ','); c >= 0 {
				s = s[c+1:]
			} else {
				s = ""
			}
		} else {
			c := strings.IndexByte(s, ',')
			if c < 0 {
				val, s = s, ""
			} else {
				val, s = s[:c], s[c+1:]
			}
		}
		out[key] = strings.TrimSpace(val)
	}
	return out
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
