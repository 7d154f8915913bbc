package manifest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/store"
)

// Segment template URLs, relative to /<pp>.isml/manifest.mpd (under
// URLs.BaseURLs: relative to them, see URLs.template).
const (
	dashInit  = "tracks/$RepresentationID$/init.mp4"
	dashMedia = "tracks/$RepresentationID$/$Time$.m4s"
)

// dateTime is the xs:dateTime layout of DASH times (UTC, milliseconds).
const dateTime = "2006-01-02T15:04:05.000Z07:00"

// utcTimingDirect is the UTCTiming scheme whose value carries the time
// itself, so that players need no time server (the network is closed).
const utcTimingDirect = "urn:mpeg:dash:utc:direct:2014"

// DASH renders the MPD (/<pp>.isml/manifest.mpd) with github.com/Eyevinn/dash-mpd.
//
// One Period (id "0", start PT0S) — and one more after each encoder restart
// (see dashPeriods) — holds one AdaptationSet per kind, language
// (audio and text) and codec family (avc, hevc, mp4a, ...: representations of
// one set must be switchable), with one Representation per track (id =
// TrackView.ID) that has listable fragments. Segments are addressed with a
// SegmentTemplate ($RepresentationID$ and $Time$) and a SegmentTimeline with
// S@t on the first S and after every gap and S@r for runs of equal duration;
// the template sits on the AdaptationSet when all its representations share
// one timeline, else on each Representation.
//
// Live: type="dynamic", availabilityStartTime = Meta.Anchor (media time zero;
// Options.Now while no anchor is set), publishTime = the wall-clock start of
// the newest listed fragment (see publishTime), a direct UTCTiming =
// Options.Now, minimumUpdatePeriod = FragmentDuration,
// suggestedPresentationDelay = 3 fragments, timeShiftBufferDepth = the DVR
// window. Static: type="static", mediaPresentationDuration = the span of the
// listed fragments, and presentationTimeOffset = the earliest listed start,
// so that the presentation starts at 0 however far into the channel the
// listed fragments lie. With no fragment to list, the error wraps ErrEmpty.
func DASH(v store.View, o Options) ([]byte, error) {
	v = list(v, o).v
	live := Live(v)
	frag := fragmentDuration(v)
	var pt float64 // part target (s): > 0 for a low-latency MPD
	if live && o.URLs.listsParts() && !o.URLs.segmentList() {
		v, pt = withOpenSegments(v)
	}
	longest := maxFragment(v.Tracks)
	if longest == 0 {
		longest = frag
	}
	// minBufferTime: what a player buffers before it starts, from the
	// audio and video (a long text fragment is no reason to wait).
	minBuffer := maxFragment(mediaTracks(v.Tracks))
	if minBuffer == 0 {
		minBuffer = longest
	}
	var m *mpd.MPD
	if live {
		m = mpd.NewMPD(mpd.DYNAMIC_TYPE)
		anchor := v.Meta.Anchor
		if anchor.IsZero() {
			anchor = o.Now
		}
		m.AvailabilityStartTime = mpd.DateTime(anchor.UTC().Format(dateTime))
		m.PublishTime = mpd.DateTime(publishTime(v, o).UTC().Format(dateTime))
		m.MinimumUpdatePeriod = durPtr(frag)
		m.TimeShiftBufferDepth = durPtr(dvrWindow(v, o))
		m.SuggestedPresentationDelay = durPtr(3 * frag)
		if pt > 0 {
			lowLatencyMPD(m, v, pt)
		}
	} else {
		m = mpd.NewMPD(mpd.STATIC_TYPE)
	}
	m.Profiles = mpd.PROFILE_LIVE
	m.MinBufferTime = durPtr(minBuffer)
	m.MaxSegmentDuration = durPtr(longest)

	// Static presentations start at the earliest listed fragment.
	var origin instant
	if from, to, ok := span(v.Tracks); ok && !live {
		origin, _ = earliest(v.Tracks)
		m.MediaPresentationDuration = durPtr(time.Duration((to - from) * float64(time.Second)))
	} else if !live {
		m.MediaPresentationDuration = durPtr(0)
	}

	pds := dashPeriods(v, live, origin)
	for k, pd := range pds {
		p := mpd.NewPeriod()
		p.Id = pd.id
		p.Start = durPtr(pd.start)
		// The period's events: from its start on the media timeline (its
		// presentationTimeOffset) to the next period's.
		from, to := time.Duration(pd.pto(uint32(time.Second))), time.Duration(-1)
		if k == 0 {
			// The first period's events from the earliest listed fragment
			// (the DVR window) on.
			sf, _, _ := span(v.Tracks)
			from = time.Duration(sf*float64(time.Second)) - time.Millisecond
			if !live {
				from = max(from, time.Duration(pd.pto(uint32(time.Second))))
			}
		}
		if k+1 < len(pds) {
			to = time.Duration(pds[k+1].pto(uint32(time.Second)))
		}
		p.EventStreams = dashEventStreams(v.Events, from, to, pd.pto)
		for _, set := range dashSets(pd.view) {
			as := dashAdaptationSet(set, uint32(len(p.AdaptationSets)), live, pd.pto, o.URLs)
			if as != nil && pt > 0 {
				lowLatencySet(as, v, frag, pt, pd.pto, o.Now.UTC().Format(dateTime))
			}
			if as != nil {
				p.AppendAdaptationSet(as)
			}
		}
		if len(p.AdaptationSets) > 0 {
			m.AppendPeriod(p)
		}
	}
	if len(m.Periods) == 0 {
		return nil, fmt.Errorf("dash manifest: %w", ErrEmpty)
	}
	if live {
		m.UTCTimings = append(m.UTCTimings, mpd.NewDescriptor(utcTimingDirect, o.Now.UTC().Format(dateTime), ""))
	}
	if o.URLs != nil && o.URLs.Manifest != "" {
		m.Location = append(m.Location, &mpd.LocationType{Value: o.URLs.Manifest})
	}
	if u := o.URLs; u != nil && !u.segmentList() {
		for _, b := range u.BaseURLs {
			m.BaseURL = append(m.BaseURL, &mpd.BaseURLType{Value: mpd.AnyURI(b.URL), ServiceLocation: b.ServiceLocation})
		}
	}
	if u := o.URLs; u != nil && u.Steering != nil {
		m.ContentSteering = &mpd.ContentSteeringType{
			Value: u.Steering.URI, DefaultServiceLocation: u.Steering.DefaultPathway, QueryBeforeStart: u.Steering.QueryBeforeStart,
		}
	}
	out, err := m.WriteToString("  ", true)
	if err != nil {
		return nil, fmt.Errorf("dash manifest: %w", err)
	}
	b := []byte(out + "\n")
	if o.URLs.segmentList() {
		if b, err = schemaOrderSegmentLists(b); err != nil {
			return nil, fmt.Errorf("dash manifest: %w", err)
		}
	}
	return b, nil
}

// segmentListOrder ranks the children of a SegmentList in the order of
// the MPD schema (SegmentBaseType, MultipleSegmentBaseType, then
// SegmentListType's own).
var segmentListOrder = map[string]int{
	"Initialization": 0, "RepresentationIndex": 1, "FailoverContent": 2,
	"SegmentTimeline": 3, "BitstreamSwitching": 4, "SegmentURL": 5,
}

// schemaOrderSegmentLists puts the children of every SegmentList of an
// MPD in schema order: Initialization, SegmentTimeline, then the
// SegmentURLs. dash-mpd (v0.17.0) writes the fields of its SegmentListType
// in struct order, SegmentURL first and Initialization last, which strict
// demuxers reject (the element order is part of the schema's xs:sequence).
// The children are moved as they were written, byte for byte, into the
// slots they came from, so the indentation stays as it was.
func schemaOrderSegmentLists(doc []byte) ([]byte, error) {
	type span struct{ start, end int64 }
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var out bytes.Buffer
	out.Grow(len(doc))
	var copied int64
	depth, listDepth := 0, -1
	var kids []span
	var names []string
	for {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reorder SegmentList: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if listDepth < 0 && t.Name.Local == "SegmentList" {
				listDepth, kids, names = depth, nil, nil
			} else if listDepth >= 0 && depth == listDepth+1 {
				kids = append(kids, span{start: before})
				names = append(names, t.Name.Local)
			}
		case xml.EndElement:
			if listDepth >= 0 && depth == listDepth+1 {
				kids[len(kids)-1].end = dec.InputOffset()
			}
			if depth == listDepth {
				order := make([]int, len(kids))
				for i := range order {
					order[i] = i
				}
				sort.SliceStable(order, func(a, b int) bool {
					return segmentListOrder[names[order[a]]] < segmentListOrder[names[order[b]]]
				})
				for slot, k := range order {
					out.Write(doc[copied:kids[slot].start])
					out.Write(doc[kids[k].start:kids[k].end])
					copied = kids[slot].end
				}
				listDepth = -1
			}
			depth--
		}
	}
	out.Write(doc[copied:])
	return out.Bytes(), nil
}

// publishTime is the wall-clock time at which the newest listed fragment
// starts (Meta.Anchor plus its start): the MPD changes exactly when a
// fragment is added, and every origin holding the same fragments (and, via
// the ingest, the same anchor) publishes the same MPD. Options.Now without an
// anchor.
func publishTime(v store.View, o Options) time.Time {
	if v.Meta.Anchor.IsZero() {
		return o.Now
	}
	var latest time.Duration
	found := false
	for _, t := range v.Tracks {
		fs := t.Frags
		if len(fs) == 0 {
			continue
		}
		if d := toDuration(fs[len(fs)-1].Start, t.Info.Timescale); !found || d > latest {
			latest, found = d, true
		}
	}
	if !found {
		return o.Now
	}
	return v.Meta.Anchor.Add(latest)
}

func durPtr(d time.Duration) *mpd.Duration {
	x := mpd.Duration(d.Round(time.Millisecond))
	return &x
}

// dashSet is the tracks of one AdaptationSet.
type dashSet struct {
	kind, lang string
	tracks     []store.TrackView
}

// transferCICP is the transfer_characteristics code point (ITU-T H.273)
// a DASH SupplementalProperty announces for an HDR video range: 16 for PQ,
// 18 for HLG, none for SDR or an unknown range.
func transferCICP(videoRange string) string {
	switch videoRange {
	case media.RangePQ:
		return "16"
	case media.RangeHLG:
		return "18"
	}
	return ""
}

// codecFamily names the codec of a sample entry, so that AVC and HEVC (or
// AAC and AC-3) renditions land in different AdaptationSets.
func codecFamily(sampleEntry string) string {
	switch sampleEntry {
	case "avc1", "avc3":
		return "avc"
	case "hvc1", "hev1":
		return "hevc"
	}
	return sampleEntry
}

// dashSets groups the tracks into AdaptationSets, in View order.
func dashSets(v store.View) []*dashSet {
	var out []*dashSet
	idx := map[string]*dashSet{}
	for _, t := range v.Tracks {
		switch t.Info.Kind {
		case "video", "audio", "text":
		default:
			continue
		}
		lang := t.Info.Language
		if t.Info.Kind == "video" {
			lang = ""
		}
		key := t.Info.Kind + "\x00" + lang + "\x00" + codecFamily(t.Info.SampleEntry) + "\x00" + textRole(t.Info)
		s := idx[key]
		if s == nil {
			s = &dashSet{kind: t.Info.Kind, lang: lang}
			idx[key] = s
			out = append(out, s)
		}
		s.tracks = append(s.tracks, t)
	}
	return out
}

// mediaTracks returns the audio and video tracks of ts.
func mediaTracks(ts []store.TrackView) []store.TrackView {
	var out []store.TrackView
	for _, t := range ts {
		if t.Info.Kind == "audio" || t.Info.Kind == "video" {
			out = append(out, t)
		}
	}
	return out
}

// textRole is the DASH role (urn:mpeg:dash:role:2011) of a text track:
// the one its kind box names, else "subtitle"; "" for other kinds.
func textRole(ti media.TrackInfo) string {
	if ti.Kind != "text" {
		return ""
	}
	if ti.Role != "" {
		return ti.Role
	}
	return "subtitle"
}

// dashPeriod is one Period of the MPD and the fragments it lists.
type dashPeriod struct {
	id    string
	start time.Duration
	// pto is the presentationTimeOffset in a timescale (0: none).
	pto  func(timescale uint32) uint64
	view store.View
}

// dashPeriods splits the (listed) presentation at its encoder restarts
// (Meta.Restarts): a fragment belongs to the period of the latest restart
// whose boundary in its track (Restart.Ends) lies at or before its start.
// The first period has id "0" and starts at 0 (a static presentation at its
// earliest listed fragment, through presentationTimeOffset); the period of a
// restart has id "r<ms>" and starts at the restarted session's first
// fragment (Restart.StartNs, presentationTimeOffset alike), so that a
// period keeps its id and start while the DVR window slides. dash.js does
// not cross a gap in a SegmentTimeline (it asks for the segment 10 ms after
// the last one ends), and the tracks of an encoder that stops end a little
// apart: each restarted session starts a Period of its own, so that no
// track has a gap at the restart. Periods with nothing listed are left out.
func dashPeriods(v store.View, live bool, origin instant) []dashPeriod {
	rs := append([]store.Restart(nil), v.Meta.Restarts...)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].StartNs < rs[j].StartNs })
	parts := make([]dashPeriod, len(rs)+1)
	parts[0] = dashPeriod{id: "0", pto: func(ts uint32) uint64 {
		if live {
			return 0
		}
		return origin.floorIn(ts)
	}}
	var originNs int64
	if !live && origin.ts > 0 {
		originNs = int64(min(origin.floorIn(uint32(time.Second)), math.MaxInt64))
	}
	for k, r := range rs {
		startNs := r.StartNs
		parts[k+1] = dashPeriod{id: "r" + strconv.FormatInt(startNs/int64(time.Millisecond), 10),
			start: time.Duration(max(startNs-originNs, 0)),
			pto:   func(ts uint32) uint64 { return uint64(max(store.OffsetTicks(startNs, ts), 0)) }}
	}
	for i := range parts {
		parts[i].view = store.View{Name: v.Name, Meta: v.Meta, Ended: v.Ended}
	}
	for _, t := range v.Tracks {
		split := make([][]store.FragRef, len(parts))
		for _, f := range t.Frags {
			k := 0
			for _, r := range rs {
				if e, ok := r.Ends[t.ID]; !ok || f.Start >= e {
					k++
				}
			}
			split[k] = append(split[k], f)
		}
		for k, fs := range split {
			if len(fs) == 0 {
				continue
			}
			tv := t
			tv.Frags = fs
			parts[k].view.Tracks = append(parts[k].view.Tracks, tv)
		}
	}
	out := parts[:0]
	for _, pd := range parts {
		if len(pd.view.Tracks) > 0 {
			out = append(out, pd)
		}
	}
	return out
}

// dashAdaptationSet renders one AdaptationSet, or nil when none of its
// tracks has listable fragments. pto gives the presentationTimeOffset of the
// period in a timescale. With u listing segments one by one, each
// Representation gets a SegmentList.
func dashAdaptationSet(s *dashSet, id uint32, live bool, pto func(uint32) uint64, u *URLs) *mpd.AdaptationSetType {
	type rep struct {
		t  store.TrackView
		fs []store.FragRef
	}
	var reps []rep
	for _, t := range s.tracks {
		if fs := t.Frags; len(fs) > 0 && t.Info.Timescale > 0 {
			reps = append(reps, rep{t, fs})
		}
	}
	if len(reps) == 0 {
		return nil
	}
	mime := map[string]string{"video": mpd.MIME_TYPE_VIDEO_MP4, "audio": mpd.MIME_TYPE_AUDIO_MP4, "text": "application/mp4"}[s.kind]
	as := mpd.NewAdaptationSetWithParams(s.kind, mime, true, 1)
	as.Id = &id
	as.Lang = s.lang
	as.InbandEventStreams = dashInbandEventStreams(s)
	if s.kind == "text" {
		// Players tell subtitles from captions by the role (dash.js and
		// Shaka Player map it to the text track's kind).
		as.Roles = append(as.Roles, mpd.NewRole(textRole(reps[0].t.Info)))
	}
	if s.kind == "video" {
		as.Accessibilities = dashCaptions(s.tracks)
	}
	shared := true
	for _, r := range reps[1:] {
		if r.t.Info.Timescale != reps[0].t.Info.Timescale || !sameTimeline(r.fs, reps[0].fs) {
			shared = false
		}
	}
	if shared && !u.segmentList() {
		as.SegmentTemplate = dashTemplate(reps[0].t.Info.Timescale, reps[0].fs, pto, u)
	}
	for _, r := range reps {
		ti := r.t.Info
		bw := ti.Bitrate
		if bw <= 0 {
			_, bw = bitrates(r.t, r.fs)
		}
		var x *mpd.RepresentationType
		switch s.kind {
		case "video":
			x = mpd.NewVideoRepresentation(r.t.ID, ti.Codec, "", "", bw, ti.Width, ti.Height)
			as.MaxWidth = max(as.MaxWidth, uint32(ti.Width))
			as.MaxHeight = max(as.MaxHeight, uint32(ti.Height))
			if tc := transferCICP(ti.VideoRange); tc != "" {
				x.SupplementalProperties = append(x.SupplementalProperties,
					mpd.NewDescriptor("urn:mpeg:mpegB:cicp:TransferCharacteristics", tc, ""))
			}
		case "audio":
			x = mpd.NewRepresentationWithID(r.t.ID, ti.Codec, "", bw)
			if ti.SampleRate > 0 {
				x.AudioSamplingRate = mpd.Ptr(mpd.UIntVectorType(strconv.Itoa(ti.SampleRate)))
			}
			if ti.ChannelMask != "" {
				x.AudioChannelConfigurations = append(x.AudioChannelConfigurations,
					mpd.NewDescriptor(media.DolbyChannelScheme, ti.ChannelMask, ""))
			} else if ti.Channels > 0 {
				x.AudioChannelConfigurations = append(x.AudioChannelConfigurations,
					mpd.NewDescriptor(mpd.AUDIO_CHANNEL_CONFIGURATION_MPEG_DASH, strconv.Itoa(ti.Channels), ""))
			}
			if ti.JOC > 0 {
				// Dolby Atmos in E-AC-3 (ETSI TS 103 420, DASH-IF IOP).
				x.SupplementalProperties = append(x.SupplementalProperties,
					mpd.NewDescriptor("tag:dolby.com,2018:dash:EC3_ExtensionType:2018", "JOC", ""),
					mpd.NewDescriptor("tag:dolby.com,2018:dash:EC3_ExtensionComplexityIndex:2018", strconv.Itoa(ti.JOC), ""))
			}
		default:
			x = mpd.NewRepresentationWithID(r.t.ID, ti.Codec, "", bw)
		}
		if u.segmentList() {
			x.SegmentList = dashList(r.t, r.fs, pto, u)
		} else if !shared {
			x.SegmentTemplate = dashTemplate(ti.Timescale, r.fs, pto, u)
		}
		as.AppendRepresentation(x)
	}
	return as
}

// dashTemplate renders the SegmentTemplate and SegmentTimeline of a track.
func dashTemplate(timescale uint32, fs []store.FragRef, pto func(uint32) uint64, u *URLs) *mpd.SegmentTemplateType {
	st := mpd.NewSegmentTemplate()
	st.Initialization, st.Media = u.template()
	st.Timescale = mpd.Ptr(timescale)
	if o := pto(timescale); o > 0 {
		st.PresentationTimeOffset = &o
	}
	tl := mpd.NewSegmentTimeline()
	for _, r := range runs(fs) {
		s := &mpd.S{D: r.d, R: r.n - 1}
		if r.gap {
			s.T = mpd.Ptr(uint64(r.start))
		}
		tl.S = append(tl.S, s)
	}
	st.SegmentTimeline = tl
	return st
}
