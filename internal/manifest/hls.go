package manifest

import (
	"bytes"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/texttrack"
)

// The HLS playlists are written as plain text rather than with
// github.com/Eyevinn/hls-m3u8 (which the tests use to re-parse them): its
// master writer sorts EXT-X-MEDIA renditions by group, name and language, so
// the rendition order (and which one comes first, with DEFAULT=YES) would
// not follow the View; it writes EXT-X-PROGRAM-DATE-TIME with a variable
// number of decimals (RFC 3339 nano); and its ring-buffer media playlist
// (window, capacity, pooled segments, auto target duration) is ceremony for
// a stateless renderer that already knows every segment.

// hlsVersion is EXT-X-VERSION: fMP4 segments with EXT-X-MAP need 6 or more.
const hlsVersion = 7

// pdtLayout is the EXT-X-PROGRAM-DATE-TIME layout (UTC, milliseconds).
const pdtLayout = "2006-01-02T15:04:05.000Z07:00"

// mediaPlaylist is the URI of a track's media playlist relative to the master.
func mediaPlaylist(id string) string { return "tracks/" + id + "/media.m3u8" }

// HLSMaster renders the master (multivariant) playlist
// (/<pp>.isml/master.m3u8): every audio track as an EXT-X-MEDIA rendition of
// group "audio" (the first, highest-bitrate one DEFAULT=YES) and one
// EXT-X-STREAM-INF per video track, pointing at tracks/<id>/media.m3u8.
// Audio tracks of several codec families (AAC, AC-3, E-AC-3, Opus) make one
// group each, "audio-<sample entry>", and every video variant is listed once
// per group, so that a player picks the audio codec it can decode.
// BANDWIDTH is the peak and AVERAGE-BANDWIDTH the declared bit rate of the
// video track plus the highest of the group's audio tracks (the peak is the larger
// of the declared bit rate and the highest bit rate of a listed fragment);
// CODECS lists the video codec and every audio codec of the group;
// VIDEO-RANGE is the video's when its stream signals one. A
// presentation without video gets one EXT-X-STREAM-INF per audio track
// instead (so several languages of an audio-only presentation become
// variants, not renditions). WebVTT (wvtt) and IMSC1 (stpp) text tracks
// are EXT-X-MEDIA renditions of a SUBTITLES group named on every variant,
// all served as WebVTT (see writeSubtitles and HLSWebVTT); other text tracks are not announced,
// nor are tracks with nothing to list yet (their media playlists answer 404); without any
// audio or video track to announce the error wraps ErrEmpty. With
// URLs.Pathways all of this is written once per pathway (content steering:
// PATHWAY-ID on every variant, an audio group "audio-<pathway>" of its own,
// the pathway's media playlist URIs), after EXT-X-CONTENT-STEERING when
// URLs.Steering is set.
func HLSMaster(v store.View, o Options) ([]byte, error) {
	v = list(v, o).v
	var video, audio, subs []store.TrackView
	for _, t := range v.Tracks {
		if len(t.Frags) == 0 || t.Info.Timescale == 0 {
			continue
		}
		switch t.Info.Kind {
		case "video":
			video = append(video, t)
		case "audio":
			audio = append(audio, t)
		case "text":
			if HLSWebVTT(t.Info) {
				subs = append(subs, t)
			}
		}
	}
	if len(video)+len(audio) == 0 {
		return nil, fmt.Errorf("hls master playlist: %w", ErrEmpty)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:%d\n#EXT-X-INDEPENDENT-SEGMENTS\n", hlsVersion)
	pathways := []Pathway{{Playlist: o.URLs.playlist}}
	if u := o.URLs; u != nil && len(u.Pathways) > 0 {
		pathways = u.Pathways
		if u.Steering != nil {
			fmt.Fprintf(&b, "#EXT-X-CONTENT-STEERING:SERVER-URI=%s", quote(u.Steering.URI))
			if u.Steering.DefaultPathway != "" {
				fmt.Fprintf(&b, ",PATHWAY-ID=%s", quote(u.Steering.DefaultPathway))
			}
			b.WriteString("\n")
		}
	}
	for _, pw := range pathways {
		writeMasterPathway(&b, video, audio, subs, pw)
	}
	return b.Bytes(), nil
}

// writeMasterPathway writes the renditions and variants of one pathway
// (pw.ID empty: the master has no pathways).
func writeMasterPathway(b *bytes.Buffer, video, audio, subs []store.TrackView, pw Pathway) {
	pathwayAttr := ""
	if pw.ID != "" {
		pathwayAttr = ",PATHWAY-ID=" + quote(pw.ID)
	}
	pathwayAttr = writeSubtitles(b, subs, pw) + pathwayAttr
	if len(video) == 0 {
		for _, a := range audio {
			avg, peak := hlsBitrates(a)
			writeStreamInf(b, peak, avg, a.Info.Codec, "", "", pathwayAttr, pw.Playlist(a.ID))
		}
		return
	}
	base := "audio"
	if pw.ID != "" {
		base += "-" + pw.ID
	}
	ccAttr := writeCaptions(b, video, pw)
	groups := hlsAudioGroups(audio, base)
	for _, g := range groups {
		for i, a := range g.tracks {
			fmt.Fprintf(b, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=%s,NAME=%s", quote(g.id), quote(a.ID))
			if a.Info.Language != "" {
				fmt.Fprintf(b, ",LANGUAGE=%s", quote(a.Info.Language))
			}
			fmt.Fprintf(b, ",DEFAULT=%s,AUTOSELECT=YES", map[bool]string{true: "YES", false: "NO"}[i == 0])
			switch {
			case a.Info.JOC > 0:
				// Dolby Atmos in E-AC-3: the complexity index, as Apple's
				// HLS authoring specification asks ("16/JOC").
				fmt.Fprintf(b, ",CHANNELS=\"%d/JOC\"", a.Info.JOC)
			case a.Info.Channels > 0:
				fmt.Fprintf(b, ",CHANNELS=\"%d\"", a.Info.Channels)
			}
			fmt.Fprintf(b, ",URI=%s\n", quote(pw.Playlist(a.ID)))
		}
	}
	if len(groups) == 0 {
		groups = []hlsAudioGroup{{}}
	}
	// Each video variant once per audio group: a player that cannot decode
	// one group's codec (E-AC-3, say) picks a variant of another (AAC).
	for _, g := range groups {
		for _, t := range video {
			avg, peak := hlsBitrates(t)
			codecs := append([]string{t.Info.Codec}, g.codecs...)
			res := ""
			if t.Info.Width > 0 && t.Info.Height > 0 {
				res = fmt.Sprintf("%dx%d", t.Info.Width, t.Info.Height)
			}
			attrs := pathwayAttr
			if t.Info.Captions != "" {
				attrs = ccAttr + attrs
			}
			if t.Info.VideoRange != "" {
				attrs = ",VIDEO-RANGE=" + t.Info.VideoRange + attrs
			}
			writeStreamInf(b, peak+g.peak, avg+g.avg, strings.Join(codecs, ","), res, g.id, attrs, pw.Playlist(t.ID))
		}
	}
}

// hlsAudioGroup is one EXT-X-MEDIA audio group: the renditions of one codec
// family, their distinct codecs and the highest bit rates among them.
type hlsAudioGroup struct {
	id        string
	tracks    []store.TrackView
	codecs    []string
	avg, peak int
}

// hlsAudioGroups splits the audio tracks into one group per codec family
// (AAC, AC-3, E-AC-3, Opus): AAC first, the others in the order of their
// first track. A single
// family is the group named base; several are base-<sample entry>
// ("audio-mp4a", "audio-ec-3").
func hlsAudioGroups(audio []store.TrackView, base string) []hlsAudioGroup {
	var out []hlsAudioGroup
	idx := map[string]int{}
	for _, a := range audio {
		fam := codecFamily(a.Info.SampleEntry)
		i, ok := idx[fam]
		if !ok {
			i = len(out)
			idx[fam] = i
			out = append(out, hlsAudioGroup{id: fam})
		}
		g := &out[i]
		g.tracks = append(g.tracks, a)
		avg, peak := hlsBitrates(a)
		g.avg, g.peak = max(g.avg, avg), max(g.peak, peak)
		if c := a.Info.Codec; c != "" && !contains(g.codecs, c) {
			g.codecs = append(g.codecs, c)
		}
	}
	// AAC first: the variants a player tries first are the ones every
	// player decodes.
	sort.SliceStable(out, func(i, j int) bool { return out[i].id == "mp4a" && out[j].id != "mp4a" })
	for i := range out {
		if len(out) == 1 {
			out[i].id = base
		} else {
			out[i].id = base + "-" + strings.ToLower(out[i].id)
		}
	}
	return out
}

// writeSubtitles writes one EXT-X-MEDIA TYPE=SUBTITLES rendition per text
// track of group "subs" ("subs-<pathway>" on a pathway), none DEFAULT, all
// AUTOSELECT, with LANGUAGE, and, for a caption role,
// CHARACTERISTICS saying it transcribes dialogue and describes sound. It
// returns the variants' SUBTITLES attribute (with its leading comma; ""
// without text tracks). Every rendition is WebVTT, so CODECS names none.
func writeSubtitles(b *bytes.Buffer, subs []store.TrackView, pw Pathway) string {
	if len(subs) == 0 {
		return ""
	}
	group := "subs"
	if pw.ID != "" {
		group += "-" + pw.ID
	}
	names := map[string]bool{}
	for _, t := range subs {
		name := t.Info.Language
		if name == "" {
			name = t.ID
		}
		if r := t.Info.Role; r != "" && r != "subtitle" && r != "main" {
			name += " (" + r + ")"
		}
		if names[name] {
			name += " " + t.ID // NAME is unique within a group
		}
		names[name] = true
		fmt.Fprintf(b, "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=%s,NAME=%s", quote(group), quote(name))
		if t.Info.Language != "" {
			fmt.Fprintf(b, ",LANGUAGE=%s", quote(t.Info.Language))
		}
		b.WriteString(",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO")
		if r := t.Info.Role; r == "caption" || r == "captions" {
			b.WriteString(`,CHARACTERISTICS="public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound"`)
		}
		fmt.Fprintf(b, ",URI=%s\n", quote(pw.Playlist(t.ID)))
	}
	return ",SUBTITLES=" + quote(group)
}

// HLSWebVTT reports whether HLS carries a text track, as WebVTT segments
// converted from its stored fragments (texttrack.Segment): WebVTT (wvtt)
// and TTML/IMSC1 (stpp) tracks. HLS announces no other text track. IMSC1
// is not served as fMP4 to HLS: hls.js takes the format of every
// subtitle rendition of a variant from the text codec in its CODECS, so
// one SUBTITLES group cannot mix WebVTT and IMSC1 renditions.
func HLSWebVTT(ti media.TrackInfo) bool {
	return ti.Kind == "text" && texttrack.HasWebVTT(ti.SampleEntry)
}

func writeStreamInf(b *bytes.Buffer, peak, avg int, codecs, res, audio, pathwayAttr, uri string) {
	fmt.Fprintf(b, "#EXT-X-STREAM-INF:BANDWIDTH=%d", peak)
	if avg > 0 {
		fmt.Fprintf(b, ",AVERAGE-BANDWIDTH=%d", avg)
	}
	if codecs != "" {
		fmt.Fprintf(b, ",CODECS=%s", quote(codecs))
	}
	if res != "" {
		fmt.Fprintf(b, ",RESOLUTION=%s", res)
	}
	if audio != "" {
		fmt.Fprintf(b, ",AUDIO=%s", quote(audio))
	}
	b.WriteString(pathwayAttr)
	b.WriteString("\n" + uri + "\n")
}

// hlsBitrates returns the average (declared, else measured) and peak bit
// rate of a (listed) track.
func hlsBitrates(t store.TrackView) (avg, peak int) {
	mavg, mpeak := bitrates(t, t.Frags)
	avg = t.Info.Bitrate
	if avg <= 0 {
		avg = mavg
	}
	return avg, max(avg, mpeak)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// quote renders an HLS quoted-string (which cannot contain '"', CR or LF).
func quote(s string) string {
	return `"` + strings.NewReplacer(`"`, "'", "\r", " ", "\n", " ").Replace(s) + `"`
}

// HLSMedia renders the media playlist of one track
// (/<pp>.isml/tracks/<id>/media.m3u8), whose URIs are relative to that
// directory: EXT-X-MAP init.mp4 and one <start>.m4s segment per listed
// fragment (or the URLs of Options.URLs); a text track (HLSWebVTT) has no
// EXT-X-MAP and lists <start>.vtt, the fragment converted to WebVTT. EXT-X-MEDIA-SEQUENCE is the
// sequence number of the first listed fragment (TrackView.First, plus any
// fragments left out before it); EXT-X-DISCONTINUITY-SEQUENCE, when not 0,
// counts the gaps before it (TrackView.Disc: pruned by retention or cut off
// by the DVR window); EXT-X-TARGETDURATION is TargetDuration; EXTINF has at
// least 3 decimals. EXT-X-PROGRAM-DATE-TIME (Meta.Anchor + the listed start,
// to the millisecond) is on the first segment and on each one after a gap,
// which is marked with EXT-X-DISCONTINUITY. An encoder restart boundary
// (TrackView.Breaks) is marked with EXT-X-DISCONTINUITY in every track; the
// segment before it is listed up to the restarted session's first segment
// (its EXTINF covers the few milliseconds by which the tracks of a stopped
// encoder end apart), and no program date time follows, so that the
// playlist's timeline goes on without a gap (see closesRestart). EXT-X-ENDLIST closes the playlist
// when the track has ended or the presentation is static; on-demand assets
// are EXT-X-PLAYLIST-TYPE:VOD. An unknown track gives an error wrapping
// store.ErrNotFound, a track with nothing to list yet one wrapping ErrEmpty
// (a 404, which players retry, like DASH and Smooth).
func HLSMedia(v store.View, trackID string, o Options) ([]byte, error) {
	l := list(v, o)
	t, ok := l.v.Track(trackID)
	if !ok {
		return nil, fmt.Errorf("hls media playlist: track %q: %w", trackID, store.ErrNotFound)
	}
	if t.Info.Timescale == 0 {
		return nil, fmt.Errorf("hls media playlist: track %q has timescale 0", trackID)
	}
	fs, seq, disc, cut := t.Frags, t.First, t.Disc, l.cut[trackID]
	if len(fs) == 0 {
		return nil, fmt.Errorf("hls media playlist: track %q: %w", trackID, ErrEmpty)
	}
	target := TargetDuration(t)
	// A WebVTT playlist has no parts: its segments are converted whole.
	ll := LowLatency(v, t) && o.URLs.listsParts() && !HLSWebVTT(t.Info)

	skipUntil := skipSpan * target
	skipped := 0
	if ll && o.Skip {
		skipped = skippable(fs, cut, t.Info.Timescale, skipUntil)
	}
	version := hlsVersion
	if skipped > 0 {
		version = 9 // EXT-X-SKIP
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:%d\n", version)
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", target)
	if ll {
		pt := partTarget(t)
		fmt.Fprintf(&b, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=%d.0,PART-HOLD-BACK=%s\n", skipUntil, seconds3(3*pt))
		fmt.Fprintf(&b, "#EXT-X-PART-INF:PART-TARGET=%s\n", seconds3(pt))
	}
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", seq)
	if disc > 0 {
		fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", disc)
	}
	if v.Meta.VOD {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	}
	webvtt := HLSWebVTT(t.Info)
	if !webvtt {
		fmt.Fprintf(&b, "#EXT-X-MAP:URI=%s\n", quote(o.URLs.hlsInit(t.ID)))
	}
	// closed[i]: fs[i] follows an encoder restart boundary, and the
	// segment before it is listed up to its start (see closesRestart).
	closed := make([]bool, len(fs))
	for i := 1; i < len(fs); i++ {
		closed[i] = cut[i] && closesRestart(fs[i-1], fs[i], t.Breaks, target, t.Info.Timescale)
	}
	if skipped > 0 {
		fmt.Fprintf(&b, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%d\n", skipped)
	}
	// The SCTE-35 events as EXT-X-DATERANGE (events.go); those of skipped
	// segments still come (no CAN-SKIP-DATERANGES), before the first
	// segment written.
	ranges := hlsDateRanges(v.Events, fs, t.Info.Timescale, v.Meta.Anchor)
	var held []string
	for i, f := range fs {
		held = append(held, ranges[i]...)
		if i < skipped {
			continue
		}
		gap := i > 0 && cut[i]
		if gap {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if i+1 < len(fs) && closed[i+1] {
			f.Duration = uint64(fs[i+1].Start - f.Start)
		}
		if (i == skipped || (gap && !closed[i])) && !v.Meta.Anchor.IsZero() {
			pdt := v.Meta.Anchor.Add(toDuration(f.Start, t.Info.Timescale)).Round(time.Millisecond)
			fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", pdt.UTC().Format(pdtLayout))
		}
		for _, r := range held {
			b.WriteString(r + "\n")
		}
		held = held[:0]
		if ll {
			if ps, ok := t.PartsOf(f.Start); ok && !(i+1 < len(fs) && closed[i+1]) {
				writeParts(&b, t, ps, o.URLs)
			}
		}
		uri := o.URLs.hlsSegment(t.ID, f.Start)
		if webvtt {
			uri = o.URLs.hlsWebVTT(t.ID, f.Start)
		}
		fmt.Fprintf(&b, "#EXTINF:%s,\n%s\n", extinf(f.Duration, t.Info.Timescale), uri)
	}
	if ll {
		end := fs[len(fs)-1].End()
		if open, ok := t.Open(); ok && open.Start == end {
			writeParts(&b, t, open.Parts, o.URLs)
			end = open.End()
		}
		fmt.Fprintf(&b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=%s\n", quote(o.URLs.hlsPart(t.ID, end)))
		if o.URLs == nil || o.URLs.Playlist == nil {
			writeRenditionReports(&b, l.v, t)
		}
	}
	if t.Ended || !Live(v) {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return b.Bytes(), nil
}

// TargetDuration is the EXT-X-TARGETDURATION of a track's media playlist,
// in seconds. It must never change over the playlist's life (RFC 8216
// 6.2.1), so it derives from the track's extent, not from the fragments the
// DVR window holds: the duration of the track's first fragment rounded up.
// A later fragment whose duration, rounded to the nearest second, exceeds
// it (RFC 8216 4.3.3.1 forbids listing it under that target) raises it to
// that fragment's duration rounded up — the only change, once per longer
// fragment; it is never lowered. A track without a known extent (a View
// from an older node) takes its longest listed fragment, rounded up.
func TargetDuration(t store.TrackView) uint64 {
	ts := uint64(t.Info.Timescale)
	if ts == 0 {
		return 1
	}
	up := func(d uint64) uint64 { return d/ts + min(d%ts, 1) }
	nearest := func(d uint64) uint64 { return d/ts + min((d%ts)*2/ts, 1) }
	var target uint64
	if e := t.Extent; e.Known() {
		target = up(e.FirstDuration)
		if nearest(e.MaxDuration) > target {
			target = up(e.MaxDuration)
		}
	}
	for _, f := range t.Frags {
		if nearest(f.Duration) > target {
			target = up(f.Duration)
		}
	}
	return max(target, 1)
}

// closesRestart reports whether next follows prev across an encoder restart
// boundary (one of breaks) with at most a gap that prev's EXTINF can cover
// within the target duration (rounded). Shaka Player (5.2) places HLS segments by
// their program date times and finds a live playlist's known segments again
// by exact start time: a program date time that does not equal the sum of
// the EXTINFs before it (a gap, or a millisecond of rounding) makes it
// rebuild the whole playlist at every reload and, at its next variant
// switch, stall for good. The restart boundary needs no gap: the restarted
// session's times are placed right after what was stored.
func closesRestart(prev, next store.FragRef, breaks []int64, target uint64, timescale uint32) bool {
	if next.Start == prev.End() && !store.Discontinuous(prev, next, breaks) {
		return false
	}
	i := sort.Search(len(breaks), func(i int) bool { return breaks[i] > prev.Start })
	if i == len(breaks) || breaks[i] > next.Start || next.Start < prev.End() {
		return false
	}
	// EXTINF rounded to the nearest second stays within the target
	// duration (RFC 8216 4.3.3.1).
	return 2*uint64(next.Start-prev.Start) < (2*target+1)*uint64(timescale)
}

// extinf formats a duration in seconds with 3 to 6 decimals (exact for
// millisecond durations, precise enough for AAC frame multiples that
// accumulated rounding does not drift over a long DVR window). A positive
// duration never reads as zero: below a microsecond it says 0.000001.
func extinf(d uint64, timescale uint32) string {
	sec := toDuration(int64(d), timescale).Seconds()
	if d > 0 && sec < 0.0000005 {
		sec = 0.000001
	}
	s := strconv.FormatFloat(sec, 'f', 6, 64)
	for strings.HasSuffix(s, "0") && len(s)-strings.IndexByte(s, '.') > 4 {
		s = s[:len(s)-1]
	}
	return s
}

// LowLatency reports whether a track's media playlist is a low-latency one
// (LL-HLS): the presentation is live, the track has not ended, and parts
// of its newest fragments are kept (a chunked push, see store.AddPart).
func LowLatency(v store.View, t store.TrackView) bool {
	return len(t.Parts) > 0 && t.PartTarget > 0 && !t.Ended && Live(v)
}

// DeliveryDirectives returns the LL-HLS delivery directives of a media
// playlist request's query (_HLS_msn, _HLS_part, _HLS_skip), encoded in a
// fixed order, or "" for none: what changes the answer, so what a tier
// forwards upstream and keys its cached or shared copies with (other
// query parameters, e.g. CMCD, do not split them).
func DeliveryDirectives(q url.Values) string {
	v := url.Values{}
	for _, k := range []string{"_HLS_msn", "_HLS_part", "_HLS_skip"} {
		if x := q.Get(k); x != "" {
			v.Set(k, x)
		}
	}
	return v.Encode()
}

// HasPart reports whether a low-latency media playlist of track t (at
// least one complete segment) holds segment msn, and part part of it (part
// < 0 for the whole segment): what a blocking reload (_HLS_msn, _HLS_part)
// waits for. A part past the last of a complete segment stands for part 0
// of the next one (RFC 8216bis 6.2.5.2).
func HasPart(t store.TrackView, msn, part int64) bool {
	last := t.First + int64(len(t.Frags)) - 1
	if msn < last || (msn == last && part < 0) {
		return true
	}
	if msn == last {
		ps, ok := t.PartsOf(t.Frags[len(t.Frags)-1].Start)
		if !ok || part < int64(len(ps)) {
			return true
		}
		msn, part = last+1, 0
	}
	if msn > last+1 || part < 0 {
		return false
	}
	open, ok := t.Open()
	return ok && open.Start == t.Frags[len(t.Frags)-1].End() && int64(len(open.Parts)) > part
}

// TooFarAhead reports whether a blocking reload for segment msn asks more
// than two segments past track t's last complete one (a 400, RFC 8216bis
// 6.2.5.2).
func TooFarAhead(t store.TrackView, msn int64) bool {
	return msn > t.First+int64(len(t.Frags))-1+2
}

// partTarget is the LL-HLS part target in seconds: the longest part the
// track has had, in whole milliseconds rounded up.
func partTarget(t store.TrackView) float64 {
	ms := (t.PartTarget*1000 + uint64(t.Info.Timescale) - 1) / uint64(t.Info.Timescale)
	return float64(ms) / 1000
}

// seconds3 formats seconds with 3 decimals.
func seconds3(s float64) string { return strconv.FormatFloat(s, 'f', 3, 64) }

// writeParts writes the EXT-X-PART tags of ps.
func writeParts(b *bytes.Buffer, t store.TrackView, ps []store.PartRef, u *URLs) {
	for _, p := range ps {
		fmt.Fprintf(b, "#EXT-X-PART:DURATION=%s,URI=%s", extinf(p.Duration, t.Info.Timescale), quote(u.hlsPart(t.ID, p.Start)))
		if p.Key {
			b.WriteString(",INDEPENDENT=YES")
		}
		b.WriteString("\n")
	}
}

// skipSpan is CAN-SKIP-UNTIL in target durations (RFC 8216bis asks for at
// least six).
const skipSpan = 6

// skippable is how many leading segments of fs a delta update leaves out:
// those that end more than skipUntil seconds before the last one ends, up
// to the first gap (a discontinuity is never skipped over).
func skippable(fs []store.FragRef, cut []bool, timescale uint32, skipUntil uint64) int {
	if len(fs) == 0 || timescale == 0 {
		return 0
	}
	end := fs[len(fs)-1].End()
	limit := end - int64(skipUntil)*int64(timescale)
	n := 0
	for i, f := range fs {
		if f.End() > limit || (i > 0 && i < len(cut) && cut[i]) {
			break
		}
		n = i + 1
	}
	return n
}

// writeRenditionReports writes an EXT-X-RENDITION-REPORT for every other
// low-latency track of the kind of t (the renditions a player may switch
// to): its last media sequence number and, when it has parts there, the
// last part of that segment.
func writeRenditionReports(b *bytes.Buffer, v store.View, t store.TrackView) {
	for _, o := range v.Tracks {
		if o.ID == t.ID || o.Info.Kind != t.Info.Kind || len(o.Frags) == 0 || !LowLatency(v, o) {
			continue
		}
		msn := o.First + int64(len(o.Frags)) - 1
		part := -1
		if open, ok := o.Open(); ok && open.Start == o.Frags[len(o.Frags)-1].End() {
			msn, part = msn+1, len(open.Parts)-1
		} else if ps, ok := o.PartsOf(o.Frags[len(o.Frags)-1].Start); ok {
			part = len(ps) - 1
		}
		fmt.Fprintf(b, "#EXT-X-RENDITION-REPORT:URI=%s,LAST-MSN=%d", quote("../"+o.ID+"/media.m3u8"), msn)
		if part >= 0 {
			fmt.Fprintf(b, ",LAST-PART=%d", part)
		}
		b.WriteString("\n")
	}
}
