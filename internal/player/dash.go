package player

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
)

// The MPD is read with github.com/Eyevinn/dash-mpd (the DASH schema as Go
// types); this file turns what a segment-fetching player needs of it into
// the player's own model (Presentation, Stream, Rendition, Segment). The
// types below are the segment addressing of one Representation after
// inheritance from its AdaptationSet and Period (ISO/IEC 23009-1 5.3.9.2).

// segTiming is what SegmentTemplate and SegmentList share
// (MultipleSegmentBaseType): the timing of the segments.
type segTiming struct {
	Timescale              *uint64
	Duration               *uint64
	StartNumber            *uint64
	PresentationTimeOffset *uint64
	Timeline               []sEntry // nil: no SegmentTimeline
}

// sEntry is one S element of a SegmentTimeline.
type sEntry struct {
	T *uint64
	D uint64
	R int64
}

// timingOf copies the timing attributes of a MultipleSegmentBaseType.
func timingOf(m *mpd.MultipleSegmentBaseType) segTiming {
	var t segTiming
	u64 := func(v *uint32) *uint64 {
		if v == nil {
			return nil
		}
		x := uint64(*v)
		return &x
	}
	t.Timescale = u64(m.Timescale)
	t.Duration = u64(m.Duration)
	t.StartNumber = u64(m.StartNumber)
	t.PresentationTimeOffset = m.PresentationTimeOffset
	if tl := m.SegmentTimeline; tl != nil {
		t.Timeline = make([]sEntry, 0, len(tl.S))
		for _, s := range tl.S {
			if s != nil {
				t.Timeline = append(t.Timeline, sEntry{T: s.T, D: s.D, R: int64(s.R)})
			}
		}
	}
	return t
}

// merge returns parent with what child sets taking precedence (ISO/IEC
// 23009-1 5.3.9.2): attributes one by one, the SegmentTimeline as a whole.
func (child segTiming) merge(parent segTiming) segTiming {
	m := parent
	if child.Timescale != nil {
		m.Timescale = child.Timescale
	}
	if child.Duration != nil {
		m.Duration = child.Duration
	}
	if child.StartNumber != nil {
		m.StartNumber = child.StartNumber
	}
	if child.PresentationTimeOffset != nil {
		m.PresentationTimeOffset = child.PresentationTimeOffset
	}
	if child.Timeline != nil {
		m.Timeline = child.Timeline
	}
	return m
}

// params returns the timescale (1 when absent or 0), the start number (1
// when absent) and the presentation time offset.
func (m segTiming) params() (ts uint64, startNumber, pto int64) {
	ts, startNumber = 1, 1
	if m.Timescale != nil && *m.Timescale > 0 {
		ts = *m.Timescale
	}
	if m.StartNumber != nil {
		startNumber = int64(*m.StartNumber)
	}
	if m.PresentationTimeOffset != nil {
		pto = int64(*m.PresentationTimeOffset)
	}
	return ts, startNumber, pto
}

// segAddr is a SegmentTemplate (@media and @initialization with
// $identifiers$) or a SegmentList (the segments named one by one by
// SegmentURL@media, optionally with @mediaRange, and Initialization), each
// timed by a SegmentTimeline or @duration. A template leaves the list's
// fields empty and the other way round.
type segAddr struct {
	segTiming
	Media          string // SegmentTemplate@media
	InitTemplate   string // SegmentTemplate@initialization
	Initialization *mpd.URLType
	SegmentURLs    []*mpd.SegmentURLType
}

func templateOf(st *mpd.SegmentTemplateType) *segAddr {
	if st == nil {
		return nil
	}
	return &segAddr{segTiming: timingOf(&st.MultipleSegmentBaseType), InitTemplate: st.Initialization, Media: st.Media}
}

func listOf(sl *mpd.SegmentListType) *segAddr {
	if sl == nil {
		return nil
	}
	return &segAddr{segTiming: timingOf(&sl.MultipleSegmentBaseType), Initialization: sl.Initialization, SegmentURLs: sl.SegmentURL}
}

// merge returns the addressing inherited from parent with what child sets
// taking precedence (ISO/IEC 23009-1 5.3.9.2): attributes one by one, the
// Initialization, the SegmentTimeline and the SegmentURLs as wholes.
func (child *segAddr) merge(parent *segAddr) *segAddr {
	if child == nil {
		return parent
	}
	if parent == nil {
		return child
	}
	m := *parent
	m.segTiming = child.segTiming.merge(parent.segTiming)
	if child.InitTemplate != "" {
		m.InitTemplate = child.InitTemplate
	}
	if child.Media != "" {
		m.Media = child.Media
	}
	if child.Initialization != nil {
		m.Initialization = child.Initialization
	}
	if len(child.SegmentURLs) > 0 {
		m.SegmentURLs = child.SegmentURLs
	}
	return &m
}

// dashInfo is what a DASH load yields besides the presentation: where to
// reload from and how to learn the server's clock.
type dashInfo struct {
	location  string                // MPD.Location, if any
	utcTiming []*mpd.DescriptorType // UTCTiming descriptors
	ast       time.Time             // availabilityStartTime
	// pathways are the serviceLocations of the MPD-level BaseURLs, in
	// document order (content steering); steering is the steering
	// server's URL (resolved) and defaultPathway the
	// ContentSteering@defaultServiceLocation.
	pathways       []string
	steering       string
	defaultPathway string
}

// maxGenerated bounds the segments a $Number$/@duration template lists.
const maxGenerated = 2000

// parseMPD builds a Presentation from an MPD. now returns the wall clock
// corrected by the server's clock offset; it is used for templates whose
// segments follow from the clock (@duration, and S@r="-1" in a dynamic MPD).
// The segments resolve against the first MPD-level BaseURL.
func parseMPD(data []byte, manifestURL *url.URL, now func() time.Time) (*Presentation, dashInfo, error) {
	return parseMPDPathway(data, manifestURL, now, "")
}

// parseMPDPathway is parseMPD with the segments resolved against the
// BaseURLs whose serviceLocation is pathway: at every level (MPD, Period,
// AdaptationSet, Representation) the BaseURL of that pathway, else the
// first one of the level.
func parseMPDPathway(data []byte, manifestURL *url.URL, now func() time.Time, pathway string) (*Presentation, dashInfo, error) {
	m, err := mpd.MPDFromBytes(data)
	if err != nil {
		return nil, dashInfo{}, fmt.Errorf("parse MPD: %w", err)
	}
	info := dashInfo{utcTiming: m.UTCTimings}
	if len(m.Location) > 0 && m.Location[0] != nil {
		info.location = strings.TrimSpace(m.Location[0].Value)
	}
	if cs := m.ContentSteering; cs != nil && strings.TrimSpace(cs.Value) != "" {
		if u, err := resolve(manifestURL, strings.TrimSpace(cs.Value)); err == nil {
			info.steering = u.String()
		}
		info.defaultPathway = strings.TrimSpace(cs.DefaultServiceLocation)
	}
	if len(m.Periods) == 0 {
		return nil, info, errors.New("MPD has no Period")
	}
	p := &Presentation{Format: FormatDASH, byTime: true}
	p.Live = m.GetType() == mpd.DYNAMIC_TYPE
	p.UpdatePeriod = dur(m.MinimumUpdatePeriod)
	p.LiveDelay = dur(m.SuggestedPresentationDelay)
	tsbd := dur(m.TimeShiftBufferDepth)
	mpdDur := dur(m.MediaPresentationDuration)
	if m.AvailabilityStartTime != "" {
		if info.ast, err = parseXSDateTime(string(m.AvailabilityStartTime)); err != nil {
			return nil, info, fmt.Errorf("MPD@availabilityStartTime: %w", err)
		}
	}
	if p.Live && info.ast.IsZero() {
		return nil, info, errors.New("dynamic MPD without availabilityStartTime")
	}

	// A static presentation plays from its first Period; a live one from
	// its last, where the live edge is. Playing across Periods (ad
	// breaks) is beyond this player.
	pi := 0
	if p.Live {
		pi = len(m.Periods) - 1
	}
	per := m.Periods[pi]
	if per == nil {
		return nil, info, errors.New("empty Period")
	}
	// The pathways of content steering are the serviceLocations of the
	// MPD-level BaseURLs, else of the Period's.
	info.pathways = serviceLocations(m.BaseURL)
	if len(info.pathways) == 0 {
		info.pathways = serviceLocations(per.BaseURLs)
	}
	perStart, perDur := dur(per.Start), dur(per.Duration)
	if perDur == 0 && mpdDur > 0 {
		perDur = mpdDur - perStart
	}
	base := manifestURL
	if base, err = withBaseURL(base, m.BaseURL, pathway); err != nil {
		return nil, info, err
	}
	if base, err = withBaseURL(base, per.BaseURLs, pathway); err != nil {
		return nil, info, err
	}
	pc := periodCtx{
		live: p.Live, start: perStart, dur: perDur, tsbd: tsbd, ast: info.ast, now: now, pathway: pathway,
		tmpl: templateOf(per.SegmentTemplate), list: listOf(per.SegmentList),
	}
	for _, as := range per.AdaptationSets {
		if as == nil {
			continue
		}
		kind := adaptationKind(as)
		if kind == "" || p.Stream(kind) != nil {
			continue // text, images, or a second set of a kind already chosen
		}
		asBase, err := withBaseURL(base, as.BaseURLs, pathway)
		if err != nil {
			return nil, info, err
		}
		st := &Stream{Kind: kind}
		for _, rep := range as.Representations {
			if rep == nil {
				continue
			}
			r, err := pc.rendition(asBase, as, rep)
			if err != nil {
				return nil, info, fmt.Errorf("Representation %q: %w", rep.Id, err)
			}
			st.Renditions = append(st.Renditions, r)
		}
		p.setStream(st)
	}
	if p.Video == nil && p.Audio == nil {
		return nil, info, errors.New("MPD has no video or audio AdaptationSet")
	}
	if p.Live && p.UpdatePeriod <= 0 {
		p.UpdatePeriod = p.lastSegmentDuration(now())
	}
	if p.Live {
		p.LowLatency = dashLowLatencyOf(m, per)
	}
	return p, info, nil
}

// dur returns an optional xs:duration (dash-mpd has parsed it), 0 when absent.
func dur(d *mpd.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return time.Duration(*d)
}

// serviceLocations lists the serviceLocations of BaseURLs in document
// order, each once.
func serviceLocations(bs []*mpd.BaseURLType) []string {
	var out []string
	for _, b := range bs {
		if b == nil {
			continue
		}
		if sl := strings.TrimSpace(b.ServiceLocation); sl != "" && !slices.Contains(out, sl) {
			out = append(out, sl)
		}
	}
	return out
}

// lastSegmentDuration is the duration of the newest segment of the first
// stream, a sensible reload period when the manifest gives none.
func (p *Presentation) lastSegmentDuration(now time.Time) time.Duration {
	for _, st := range []*Stream{p.Video, p.Audio} {
		if st == nil || len(st.Renditions) == 0 {
			continue
		}
		segs := st.Renditions[0].Segments(now)
		if len(segs) > 0 {
			return segs[len(segs)-1].Dur
		}
	}
	return 2 * time.Second
}

// withBaseURL resolves the BaseURL of one level against base: the one whose
// serviceLocation is pathway, else the first; base itself when the level
// has none.
func withBaseURL(base *url.URL, bs []*mpd.BaseURLType, pathway string) (*url.URL, error) {
	var chosen *mpd.BaseURLType
	for _, b := range bs {
		if b == nil {
			continue
		}
		if chosen == nil || (pathway != "" && strings.TrimSpace(b.ServiceLocation) == pathway) {
			chosen = b
		}
		if pathway != "" && strings.TrimSpace(b.ServiceLocation) == pathway {
			break
		}
	}
	if chosen == nil || strings.TrimSpace(string(chosen.Value)) == "" {
		return base, nil
	}
	return resolve(base, string(chosen.Value))
}

// adaptationKind tells video from audio by contentType, mimeType (of the
// set, else of its first Representation), else codecs; "" for anything
// else (text, images).
func adaptationKind(as *mpd.AdaptationSetType) Kind {
	var first *mpd.RepresentationType
	if len(as.Representations) > 0 {
		first = as.Representations[0]
	}
	repMime, repCodecs := "", ""
	if first != nil {
		repMime, repCodecs = first.MimeType, first.Codecs
	}
	for _, s := range []string{string(as.ContentType), as.MimeType, repMime} {
		switch {
		case s == "video" || strings.HasPrefix(s, "video/"):
			return KindVideo
		case s == "audio" || strings.HasPrefix(s, "audio/"):
			return KindAudio
		case s != "":
			return ""
		}
	}
	codecs := as.Codecs
	if codecs == "" {
		codecs = repCodecs
	}
	return kindFromCodecs(codecs)
}

// kindFromCodecs guesses a media kind from an RFC 6381 codecs string.
func kindFromCodecs(codecs string) Kind {
	c := strings.ToLower(codecs)
	for _, v := range []string{"avc", "hvc", "hev", "av01", "vp09", "vp8", "dvh", "dvav"} {
		if strings.HasPrefix(c, v) {
			return KindVideo
		}
	}
	for _, a := range []string{"mp4a", "ac-3", "ec-3", "ac-4", "opus", "flac", "dtsc"} {
		if strings.HasPrefix(c, a) {
			return KindAudio
		}
	}
	return ""
}

// periodCtx carries what every Representation of a Period needs.
type periodCtx struct {
	live    bool
	start   time.Duration // Period@start
	dur     time.Duration // Period duration, 0 if unknown
	tsbd    time.Duration
	ast     time.Time
	now     func() time.Time
	pathway string   // the BaseURLs' serviceLocation to follow
	tmpl    *segAddr // the Period's SegmentTemplate, nil if none
	list    *segAddr // the Period's SegmentList, nil if none
}

func (pc periodCtx) rendition(base *url.URL, as *mpd.AdaptationSetType, rep *mpd.RepresentationType) (*Rendition, error) {
	r := &Rendition{
		ID: rep.Id, Bitrate: int64(rep.Bandwidth), Codecs: rep.Codecs, Width: int(rep.Width), Height: int(rep.Height),
		Loaded: true, Ended: !pc.live,
	}
	if r.Codecs == "" {
		r.Codecs = as.Codecs
	}
	if r.Width == 0 {
		r.Width, r.Height = int(as.Width), int(as.Height)
	}
	repBase, err := withBaseURL(base, rep.BaseURLs, pc.pathway)
	if err != nil {
		return nil, err
	}
	tmpl := templateOf(rep.SegmentTemplate).merge(templateOf(as.SegmentTemplate).merge(pc.tmpl))
	if tmpl == nil || tmpl.Media == "" {
		if list := listOf(rep.SegmentList).merge(listOf(as.SegmentList).merge(pc.list)); list != nil {
			return pc.listRendition(r, repBase, list)
		}
		return nil, errors.New("neither a SegmentTemplate with @media nor a SegmentList (SegmentBase is not supported)")
	}
	ts, startNumber, pto := tmpl.params()
	if tmpl.InitTemplate != "" {
		u, err := resolve(repBase, expandTemplate(tmpl.InitTemplate, rep.Id, int64(rep.Bandwidth), 0, 0))
		if err != nil {
			return nil, fmt.Errorf("initialization: %w", err)
		}
		r.Init = &Segment{URL: u.String()}
	}
	mk := func(number, t int64, d uint64) (Segment, error) {
		u, err := resolve(repBase, expandTemplate(tmpl.Media, rep.Id, int64(rep.Bandwidth), number, t))
		if err != nil {
			return Segment{}, fmt.Errorf("media: %w", err)
		}
		start := pc.start + ticks(t-pto, ts)
		return Segment{
			URL: u.String(), Seq: number,
			Start: start, Dur: ticks(int64(d), ts), Wall: wallAt(pc.ast, pc.live, start),
		}, nil
	}
	switch {
	case tmpl.Timeline != nil:
		if err := pc.timelineRendition(r, tmpl.Timeline, ts, pto, startNumber, mk); err != nil {
			return nil, err
		}
	case tmpl.Duration != nil && *tmpl.Duration > 0:
		d := *tmpl.Duration
		segDur := ticks(int64(d), ts)
		gen := func(now time.Time) []Segment {
			first, count := pc.numberRange(segDur, now)
			out := make([]Segment, 0, count)
			for k := first; k < first+count; k++ {
				s, err := mk(startNumber+k, pto+k*int64(d), d)
				if err != nil {
					return out
				}
				out = append(out, s)
			}
			return out
		}
		if pc.live {
			r.gen = gen
		} else {
			r.segments = gen(pc.now())
		}
		// Check the template once so that a bad one fails the load.
		if _, err := mk(startNumber, pto, d); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("SegmentTemplate has neither SegmentTimeline nor @duration")
	}
	return r, nil
}

// timelineRendition fills r's segments from a SegmentTimeline; a live one
// whose last S repeats without end (S@r="-1") gets a generator instead,
// since it reaches the live edge, which moves between reloads
// (minimumUpdatePeriod may be long).
func (pc periodCtx) timelineRendition(r *Rendition, ss []sEntry, ts uint64, pto, startNumber int64,
	mk func(number, t int64, d uint64) (Segment, error)) error {
	segs, err := pc.timeline(ss, ts, pto, startNumber, mk)
	if err != nil {
		return err
	}
	r.segments = segs
	if pc.live && openEnded(ss) {
		r.gen = func(now time.Time) []Segment {
			at := pc
			at.now = func() time.Time { return now }
			segs, err := at.timeline(ss, ts, pto, startNumber, mk)
			if err != nil {
				return nil
			}
			return segs
		}
	}
	return nil
}

// errListEnd ends the expansion of a SegmentList's timeline at its last
// SegmentURL.
var errListEnd = errors.New("no SegmentURL left")

// listRendition fills r from a SegmentList: segment k (from @startNumber)
// of the SegmentTimeline, or of the @duration grid, is fetched from the k-th
// SegmentURL (@media resolved against the BaseURL, the BaseURL itself when
// absent; @mediaRange as its byte range). A timeline longer than the list
// ends with the list.
func (pc periodCtx) listRendition(r *Rendition, base *url.URL, l *segAddr) (*Rendition, error) {
	if len(l.SegmentURLs) == 0 {
		return nil, errors.New("SegmentList without SegmentURL")
	}
	ts, startNumber, pto := l.params()
	if in := l.Initialization; in != nil {
		u := base
		if strings.TrimSpace(string(in.SourceURL)) != "" {
			var err error
			if u, err = resolve(base, string(in.SourceURL)); err != nil {
				return nil, fmt.Errorf("Initialization@sourceURL: %w", err)
			}
		}
		r.Init = &Segment{URL: u.String(), Range: strings.TrimSpace(in.Range)}
	}
	urls := make([]Segment, len(l.SegmentURLs))
	for i, su := range l.SegmentURLs {
		u := base
		if su == nil {
			return nil, fmt.Errorf("SegmentURL[%d] is empty", i)
		}
		if strings.TrimSpace(string(su.Media)) != "" {
			var err error
			if u, err = resolve(base, string(su.Media)); err != nil {
				return nil, fmt.Errorf("SegmentURL[%d]@media: %w", i, err)
			}
		}
		urls[i] = Segment{URL: u.String(), Range: strings.TrimSpace(string(su.MediaRange))}
	}
	mk := func(number, t int64, d uint64) (Segment, error) {
		i := number - startNumber
		if i < 0 || i >= int64(len(urls)) {
			return Segment{}, errListEnd
		}
		seg := urls[i]
		seg.Seq = number
		seg.Start = pc.start + ticks(t-pto, ts)
		seg.Dur = ticks(int64(d), ts)
		seg.Wall = wallAt(pc.ast, pc.live, seg.Start)
		return seg, nil
	}
	switch {
	case l.Timeline != nil:
		if err := pc.timelineRendition(r, l.Timeline, ts, pto, startNumber, mk); err != nil {
			return nil, err
		}
	case l.Duration != nil && *l.Duration > 0:
		d := *l.Duration
		for k := range int64(min(len(urls), maxGenerated)) {
			seg, err := mk(startNumber+k, pto+k*int64(d), d)
			if err != nil {
				return nil, err
			}
			r.segments = append(r.segments, seg)
		}
	default:
		return nil, errors.New("SegmentList has neither SegmentTimeline nor @duration")
	}
	return r, nil
}

// openEnded tells whether the last S of a timeline repeats without end.
func openEnded(ss []sEntry) bool {
	return len(ss) > 0 && ss[len(ss)-1].R < 0
}

// numberRange says which segments k (0-based from startNumber) of a
// @duration template exist: all of the period when static, those whose end
// has passed (within timeShiftBufferDepth) when dynamic.
func (pc periodCtx) numberRange(segDur time.Duration, now time.Time) (first, count int64) {
	if segDur <= 0 {
		return 0, 0
	}
	var total int64 = -1
	if pc.dur > 0 {
		total = int64((pc.dur + segDur - 1) / segDur)
	}
	if !pc.live {
		if total < 0 {
			return 0, 0 // a static MPD must say how long it is
		}
		return 0, min(total, maxGenerated)
	}
	elapsed := now.Sub(pc.ast) - pc.start
	if elapsed <= 0 {
		return 0, 0
	}
	last := int64(elapsed / segDur) // segments [0, last) have ended
	if total >= 0 && last > total {
		last = total
	}
	first = 0
	window := int64(maxGenerated)
	if pc.tsbd > 0 {
		window = min(window, int64(pc.tsbd/segDur)+1)
	}
	if last-first > window {
		first = last - window
	}
	return first, last - first
}

// timeline expands a SegmentTimeline. S@r="-1" repeats up to the next S@t,
// the end of the Period, or (dynamic) the live edge.
func (pc periodCtx) timeline(ss []sEntry, ts uint64, pto, startNumber int64, mk func(number, t int64, d uint64) (Segment, error)) ([]Segment, error) {
	var out []Segment
	var t int64
	number := startNumber
	for i, s := range ss {
		if s.T != nil {
			t = int64(*s.T)
		}
		if s.D == 0 {
			return nil, fmt.Errorf("S[%d] has d=0", i)
		}
		count := s.R + 1
		if s.R < 0 {
			var end int64 = -1
			switch {
			case i+1 < len(ss) && ss[i+1].T != nil:
				end = int64(*ss[i+1].T)
			case pc.live:
				edge := pc.now().Sub(pc.ast) - pc.start
				end = pto + int64(edge.Seconds()*float64(ts))
			case pc.dur > 0:
				end = pto + int64(pc.dur.Seconds()*float64(ts))
			}
			if end < 0 {
				return nil, fmt.Errorf("S[%d]@r=-1 with no end", i)
			}
			count = (end - t) / int64(s.D)
		}
		if count > maxGenerated {
			count = maxGenerated
		}
		for range count {
			seg, err := mk(number, t, s.D)
			if errors.Is(err, errListEnd) {
				break
			}
			if err != nil {
				return nil, err
			}
			out = append(out, seg)
			t += int64(s.D)
			number++
		}
	}
	if len(out) > maxGenerated {
		out = out[len(out)-maxGenerated:]
	}
	return out, nil
}

// expandTemplate substitutes $RepresentationID$, $Number$, $Time$,
// $Bandwidth$ (each with an optional printf width such as %05d) and $$ in a
// SegmentTemplate attribute (ISO/IEC 23009-1 5.3.9.4.4). An unknown
// identifier is left as it is.
func expandTemplate(tmpl, repID string, bandwidth, number, t int64) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '$')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		j := strings.IndexByte(tmpl[i+1:], '$')
		if j < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		b.WriteString(tmpl[:i])
		ident := tmpl[i+1 : i+1+j]
		tmpl = tmpl[i+j+2:]
		name, format, _ := strings.Cut(ident, "%")
		var v int64
		switch name {
		case "":
			b.WriteByte('$')
			continue
		case "RepresentationID":
			b.WriteString(repID)
			continue
		case "Number", "SubNumber":
			v = number
		case "Time":
			v = t
		case "Bandwidth":
			v = bandwidth
		default:
			b.WriteString("$" + ident + "$")
			continue
		}
		if format == "" || !validWidth(format) {
			b.WriteString(strconv.FormatInt(v, 10))
		} else {
			b.WriteString(fmt.Sprintf("%"+format, v))
		}
	}
}

// validWidth accepts the printf formats the DASH spec allows: %0[width]d
// (and x/X, which some packagers use).
func validWidth(f string) bool {
	if len(f) < 2 {
		return false
	}
	last := f[len(f)-1]
	if last != 'd' && last != 'x' && last != 'X' {
		return false
	}
	for _, c := range f[:len(f)-1] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
