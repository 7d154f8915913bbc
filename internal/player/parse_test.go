package player

import (
	"bytes"
	"net/url"
	"testing"
	"time"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestGuessFormat(t *testing.T) {
	for in, want := range map[string]Format{
		"http://o/live.isml/manifest.mpd":      FormatDASH,
		"http://o/live.isml/master.m3u8?x=1":   FormatHLS,
		"http://o/live.isml/Manifest":          FormatSmooth,
		"https://o/vod.ism/manifest":           FormatSmooth,
		"http://o/live.isml/QualityLevels(1)/": "",
	} {
		got, err := GuessFormat(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("GuessFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if f, err := ParseFormat("smooth", "http://x/y"); err != nil || f != FormatSmooth {
		t.Errorf("ParseFormat(smooth) = %q, %v", f, err)
	}
	if _, err := ParseFormat("flv", "http://x/y.mpd"); err == nil {
		t.Error("ParseFormat(flv) accepted")
	}
}

// TestMPDDurations: xs:duration attributes are read by dash-mpd; a bad
// one fails the load with the attribute named.
func TestMPDDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"PT0S": 0, "PT1.5S": 1500 * time.Millisecond, "PT1M30S": 90 * time.Second,
		"P1DT1H": 25 * time.Hour, "PT2H0M10.25S": 2*time.Hour + 10250*time.Millisecond,
	} {
		doc := `<MPD type="dynamic" availabilityStartTime="2026-01-01T00:00:00Z" suggestedPresentationDelay="` + in + `"><Period start="PT0S">
  <AdaptationSet contentType="video"><SegmentTemplate media="$Number$.m4s" duration="1"/><Representation id="v" bandwidth="1"/></AdaptationSet></Period></MPD>`
		p, _, err := parseMPD([]byte(doc), mustURL(t, "http://o/x.mpd"), time.Now)
		if err != nil || p.LiveDelay != want {
			t.Errorf("suggestedPresentationDelay=%q: %v, %v; want %v", in, p, err, want)
		}
	}
	for _, bad := range []string{"1S", "PT5", "PTXS"} {
		doc := `<MPD type="static" mediaPresentationDuration="` + bad + `"><Period><AdaptationSet contentType="video"><SegmentTemplate media="$Number$.m4s" duration="1"/><Representation id="v" bandwidth="1"/></AdaptationSet></Period></MPD>`
		if _, _, err := parseMPD([]byte(doc), mustURL(t, "http://o/x.mpd"), time.Now); err == nil {
			t.Errorf("mediaPresentationDuration=%q accepted", bad)
		}
	}
}

func TestExpandTemplate(t *testing.T) {
	for _, c := range []struct{ tmpl, want string }{
		{"tracks/$RepresentationID$/$Time$.m4s", "tracks/v1/90000.m4s"},
		{"seg-$Number%05d$.m4s", "seg-00042.m4s"},
		{"$Bandwidth$/$Number$$$x.mp4", "500000/42$x.mp4"},
		{"$Unknown$-$Number$", "$Unknown$-42"},
	} {
		if got := expandTemplate(c.tmpl, "v1", 500000, 42, 90000); got != c.want {
			t.Errorf("expandTemplate(%q) = %q, want %q", c.tmpl, got, c.want)
		}
	}
}

func TestParseMPDTimeline(t *testing.T) {
	mpd := `<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" availabilityStartTime="1970-01-01T00:00:00Z"
     minimumUpdatePeriod="PT2S" suggestedPresentationDelay="PT6S" timeShiftBufferDepth="PT60S">
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="2026-01-01T00:00:00Z"/>
  <Period id="p0" start="PT0S">
    <BaseURL>media/</BaseURL>
    <AdaptationSet mimeType="video/mp4" codecs="avc1.64001f">
      <SegmentTemplate timescale="90000" presentationTimeOffset="90000"
        initialization="tracks/$RepresentationID$/init.mp4" media="tracks/$RepresentationID$/$Time$.m4s">
        <SegmentTimeline><S t="90000" d="180000" r="2"/><S d="90000"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation id="hi" bandwidth="3000000" width="1280" height="720"/>
      <Representation id="lo" bandwidth="500000" width="640" height="360"/>
    </AdaptationSet>
    <AdaptationSet contentType="audio" lang="en">
      <SegmentTemplate timescale="48000" media="a/$Number$.m4s" startNumber="10">
        <SegmentTimeline><S t="0" d="96000" r="-1"/><S t="480000" d="96000"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation id="aac" bandwidth="128000" codecs="mp4a.40.2"/>
    </AdaptationSet>
    <AdaptationSet contentType="text"><Representation id="sub" bandwidth="1000"/></AdaptationSet>
  </Period>
</MPD>`
	p, info, err := parseMPD([]byte(mpd), mustURL(t, "http://o/pp.isml/manifest.mpd"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Live || p.UpdatePeriod != 2*time.Second || p.LiveDelay != 6*time.Second || len(info.utcTiming) != 1 {
		t.Errorf("live %v update %v delay %v utc %v", p.Live, p.UpdatePeriod, p.LiveDelay, info.utcTiming)
	}
	v := p.Video
	if v == nil || len(v.Renditions) != 2 || v.Renditions[0].ID != "lo" || v.Renditions[1].Bitrate != 3000000 {
		t.Fatalf("video %+v", v)
	}
	lo := v.Renditions[0]
	if lo.Init == nil || lo.Init.URL != "http://o/pp.isml/media/tracks/lo/init.mp4" || lo.Codecs != "avc1.64001f" {
		t.Errorf("init %+v codecs %q", lo.Init, lo.Codecs)
	}
	segs := lo.Segments(time.Now())
	if len(segs) != 4 {
		t.Fatalf("%d video segments, want 4", len(segs))
	}
	if segs[0].URL != "http://o/pp.isml/media/tracks/lo/90000.m4s" || segs[0].Start != 0 || segs[0].Dur != 2*time.Second {
		t.Errorf("first segment %+v", segs[0])
	}
	if segs[3].URL != "http://o/pp.isml/media/tracks/lo/630000.m4s" || segs[3].Start != 6*time.Second || segs[3].Dur != time.Second {
		t.Errorf("last segment %+v", segs[3])
	}
	a := p.Audio.Renditions[0].Segments(time.Now())
	// r=-1 repeats up to the next S@t: 480000/96000 = 5 segments, then one.
	if len(a) != 6 || a[0].URL != "http://o/pp.isml/media/a/10.m4s" || a[5].URL != "http://o/pp.isml/media/a/15.m4s" || a[5].Start != 10*time.Second {
		t.Errorf("audio segments %+v", a)
	}
}

func TestParseMPDNumberLive(t *testing.T) {
	ast := time.Now().Add(-10*time.Second - 500*time.Millisecond)
	mpd := `<MPD type="dynamic" availabilityStartTime="` + ast.UTC().Format(time.RFC3339Nano) + `" timeShiftBufferDepth="PT4S">
  <Period start="PT0S"><AdaptationSet contentType="video">
    <SegmentTemplate timescale="1000" duration="2000" startNumber="5" media="$RepresentationID$-$Number$.m4s"/>
    <Representation id="v" bandwidth="1000000"/>
  </AdaptationSet></Period></MPD>`
	p, _, err := parseMPD([]byte(mpd), mustURL(t, "http://o/x.mpd"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	segs := p.Video.Renditions[0].Segments(time.Now())
	// Five 2 s segments have ended after 10.5 s; the 4 s window keeps 3.
	if len(segs) != 3 || segs[2].URL != "http://o/v-9.m4s" || segs[2].Start != 8*time.Second || segs[0].Seq != 7 {
		t.Errorf("segments %+v", segs)
	}
	// Its first frame's wall-clock time: availabilityStartTime + 8 s.
	if w := segs[2].Wall; w.Sub(ast.Add(8*time.Second)).Abs() > time.Millisecond {
		t.Errorf("wall-clock time %v, want %v", w, ast.Add(8*time.Second))
	}
	if p.UpdatePeriod != 2*time.Second {
		t.Errorf("update period %v, want a segment duration", p.UpdatePeriod)
	}
	later := p.Video.Renditions[0].Segments(time.Now().Add(2 * time.Second))
	if last := later[len(later)-1]; last.URL != "http://o/v-10.m4s" {
		t.Errorf("2 s later the edge is %s", last.URL)
	}
}

func TestParseMPDStaticNumber(t *testing.T) {
	mpd := `<MPD type="static" mediaPresentationDuration="PT9S"><Period>
  <AdaptationSet><SegmentTemplate timescale="1" duration="4" media="s$Number%03d$.m4s" initialization="i.mp4"/>
  <Representation id="v" bandwidth="1" mimeType="video/mp4"/></AdaptationSet></Period></MPD>`
	p, _, err := parseMPD([]byte(mpd), mustURL(t, "http://o/a/b.mpd"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	r := p.Video.Renditions[0]
	segs := r.Segments(time.Now())
	if p.Live || !r.Ended || len(segs) != 3 || segs[2].URL != "http://o/a/s003.m4s" {
		t.Errorf("live %v ended %v segments %+v", p.Live, r.Ended, segs)
	}
}

func TestParseMPDErrors(t *testing.T) {
	for name, doc := range map[string]string{
		"not xml":     "{}",
		"no period":   `<MPD type="static"></MPD>`,
		"segmentbase": `<MPD><Period><AdaptationSet contentType="video"><Representation id="v"><SegmentBase/></Representation></AdaptationSet></Period></MPD>`,
		"dynamic without ast": `<MPD type="dynamic"><Period><AdaptationSet contentType="video">
			<SegmentTemplate media="x" duration="1"/><Representation id="v"/></AdaptationSet></Period></MPD>`,
	} {
		if _, _, err := parseMPD([]byte(doc), mustURL(t, "http://o/x.mpd"), time.Now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseHLS(t *testing.T) {
	master := `#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="fr",LANGUAGE="fr",URI="audio/fr.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en, main",DEFAULT=YES,URI="audio/en.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2000000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,AUDIO="a"
hi/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,URI="iframe.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=500000,CODECS="avc1.4d401e,mp4a.40.2",RESOLUTION=640x360,AUDIO="a"
lo/index.m3u8
`
	base := mustURL(t, "http://o/pp.isml/master.m3u8")
	if !isMasterPlaylist([]byte(master)) {
		t.Fatal("not seen as a master playlist")
	}
	m, err := parseMasterPlaylist([]byte(master), base)
	if err != nil {
		t.Fatal(err)
	}
	p, err := hlsPresentation(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Video.Renditions) != 2 || p.Video.Renditions[0].ID != "http://o/pp.isml/lo/index.m3u8" || p.Video.Renditions[1].Width != 1280 {
		t.Errorf("variants %+v", p.Video.Renditions)
	}
	if p.Audio == nil || p.Audio.Renditions[0].ID != "http://o/pp.isml/audio/en.m3u8" {
		t.Errorf("audio %+v", p.Audio)
	}
	if !p.Live || p.Video.Renditions[0].Loaded {
		t.Error("a master playlist alone must leave the variants unloaded")
	}

	media := `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-SERVER-CONTROL:HOLD-BACK=6.0
#EXT-X-MAP:URI="init.mp4",BYTERANGE="700@0"
#EXT-X-PROGRAM-DATE-TIME:2026-12-07T10:00:00.000Z
#EXTINF:2.000,
#EXT-X-BYTERANGE:1000@700
all.mp4
#EXTINF:1.5,title
#EXT-X-BYTERANGE:500
all.mp4
#EXTINF:2,
seg/102.m4s
`
	mp, err := parseMediaPlaylist([]byte(media), mustURL(t, "http://o/pp.isml/lo/index.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	if mp.ended || mp.targetDuration != 2*time.Second || mp.holdBack != 6*time.Second || mp.init.Range != "0-699" {
		t.Errorf("playlist %+v init %+v", mp, mp.init)
	}
	// The program date time of the first segment, carried forward.
	pdt := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	want := []Segment{
		{URL: "http://o/pp.isml/lo/all.mp4", Range: "700-1699", Seq: 100, Start: 0, Dur: 2 * time.Second, Wall: pdt},
		{URL: "http://o/pp.isml/lo/all.mp4", Range: "1700-2199", Seq: 101, Start: 2 * time.Second, Dur: 1500 * time.Millisecond, Wall: pdt.Add(2 * time.Second)},
		{URL: "http://o/pp.isml/lo/seg/102.m4s", Seq: 102, Start: 3500 * time.Millisecond, Dur: 2 * time.Second, Wall: pdt.Add(3500 * time.Millisecond)},
	}
	if len(mp.segments) != 3 {
		t.Fatalf("segments %+v", mp.segments)
	}
	for i, s := range mp.segments {
		if !s.Wall.Equal(want[i].Wall) {
			t.Errorf("segment %d: program date time %v, want %v", i, s.Wall, want[i].Wall)
		}
		s.Wall, want[i].Wall = time.Time{}, time.Time{}
		if s != want[i] {
			t.Errorf("segment %d = %+v, want %+v", i, s, want[i])
		}
	}
	p, _ = hlsPresentation(m, map[string]*hlsMedia{"http://o/pp.isml/lo/index.m3u8": mp})
	if !p.Live || p.UpdatePeriod != 2*time.Second || p.LiveDelay != 6*time.Second || !p.Video.Renditions[0].Loaded {
		t.Errorf("presentation live %v update %v delay %v", p.Live, p.UpdatePeriod, p.LiveDelay)
	}
	if _, err := parseMediaPlaylist([]byte("#EXTM3U\n#EXTINF:1,\n"), base); err == nil {
		t.Error("playlist without target duration accepted")
	}
	if _, err := parseMasterPlaylist([]byte("not a playlist"), base); err == nil {
		t.Error("garbage accepted")
	}
}

func TestParseSmooth(t *testing.T) {
	doc := `<?xml version="1.0" encoding="utf-8"?>
<SmoothStreamingMedia MajorVersion="2" MinorVersion="2" TimeScale="10000000" IsLive="TRUE" LookAheadFragmentCount="2" Duration="0">
  <StreamIndex Type="video" Name="video" Url="QualityLevels({bitrate})/Fragments(video={start time})" Chunks="4">
    <QualityLevel Index="0" Bitrate="2000000" FourCC="AVC1" MaxWidth="1280" MaxHeight="720"/>
    <QualityLevel Index="1" Bitrate="400000" FourCC="AVC1" MaxWidth="640" MaxHeight="360"/>
    <c t="1000" d="20000000" r="3"/>
    <c d="10000000"/>
  </StreamIndex>
  <StreamIndex Type="audio" Name="audio" TimeScale="48000" Url="QualityLevels({Bitrate})/Fragments(audio={start_time})">
    <QualityLevel Index="0" Bitrate="128000" FourCC="AACL"/>
    <c t="0"/><c t="96000"/><c t="192000" d="96000"/>
  </StreamIndex>
  <StreamIndex Type="text" Name="sub" Url="x"><QualityLevel Bitrate="1"/></StreamIndex>
</SmoothStreamingMedia>`
	p, err := parseSmooth([]byte(doc), mustURL(t, "http://o/pp.isml/Manifest"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Live || p.UpdatePeriod != time.Second {
		t.Errorf("live %v update %v", p.Live, p.UpdatePeriod)
	}
	lo := p.Video.Renditions[0]
	segs := lo.Segments(time.Time{})
	// r is a total count: three 2 s fragments, then one of 1 s.
	if lo.Bitrate != 400000 || len(segs) != 4 {
		t.Fatalf("video rendition %+v segments %+v", lo, segs)
	}
	if segs[0].URL != "http://o/pp.isml/QualityLevels(400000)/Fragments(video=1000)" ||
		segs[3].URL != "http://o/pp.isml/QualityLevels(400000)/Fragments(video=60001000)" || segs[3].Dur != time.Second {
		t.Errorf("segments %+v", segs)
	}
	a := p.Audio.Renditions[0].Segments(time.Time{})
	if len(a) != 3 || a[1].URL != "http://o/pp.isml/QualityLevels(128000)/Fragments(audio=96000)" || a[2].Start != 4*time.Second || a[0].Dur != 2*time.Second {
		t.Errorf("audio %+v", a)
	}
	if _, err := parseSmooth([]byte(`<SmoothStreamingMedia><StreamIndex Type="video" Url="u"><QualityLevel Bitrate="1"/><c t="0"/></StreamIndex></SmoothStreamingMedia>`), mustURL(t, "http://o/M")); err == nil {
		t.Error("a last c without d accepted")
	}
}

func TestNextSegment(t *testing.T) {
	seg := func(seq int64, start float64) Segment {
		return Segment{Seq: seq, Start: time.Duration(start * float64(time.Second)), Dur: 2 * time.Second}
	}
	segs := []Segment{seg(10, 20), seg(11, 22), seg(12, 24)}
	// By time, across renditions whose boundaries differ slightly.
	s, i, res, behind := nextSegment(segs, cursor{set: true, end: 22*time.Second - 30*time.Millisecond}, true, false)
	if res != nextFound || i != 1 || s.Seq != 11 || behind {
		t.Errorf("by time: %v %d %v %v", s, i, res, behind)
	}
	// By sequence number.
	if _, i, res, _ := nextSegment(segs, cursor{set: true, lastSeq: 11}, false, false); res != nextFound || i != 2 {
		t.Errorf("by seq: %d %v", i, res)
	}
	// At the live edge: wait; at the end: ended.
	if _, _, res, _ := nextSegment(segs, cursor{set: true, lastSeq: 12, end: 26 * time.Second}, false, false); res != nextWait {
		t.Errorf("edge: %v", res)
	}
	if _, _, res, _ := nextSegment(segs, cursor{set: true, end: 26 * time.Second}, true, true); res != nextEnded {
		t.Errorf("end: %v", res)
	}
	// Fallen out of the window: jump to the first listed.
	if _, i, res, behind := nextSegment(segs, cursor{set: true, end: 10 * time.Second}, true, false); res != nextFound || i != 0 || !behind {
		t.Errorf("behind: %d %v %v", i, res, behind)
	}
	if i := liveStart(segs, 0); i != 0 {
		t.Errorf("liveStart(3 segs) = %d", i)
	}
	if i := liveStart(append(segs, seg(13, 26), seg(14, 28)), 3*time.Second); i != 3 {
		t.Errorf("liveStart(delay 3 s) = %d, want 3", i)
	}
}

func TestCheckFragment(t *testing.T) {
	box := func(typ string, n int) []byte {
		b := make([]byte, 8+n)
		b[3] = byte(8 + n)
		copy(b[4:], typ)
		return b
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	good := [][]byte{
		makeFragment(t, 100000, time.Second, 0, 1),
		cat(box("styp", 4), box("moof", 8), box("mdat", 10)),
		cat(box("moof", 8), box("mdat", 1), box("prft", 4), box("moof", 8), box("mdat", 1)),
	}
	for i, g := range good {
		if err := checkFragment(g); err != nil {
			t.Errorf("good %d: %v", i, err)
		}
	}
	bad := map[string][]byte{
		"empty":     nil,
		"mdat only": box("mdat", 4),
		"moof only": box("moof", 4),
		"moof moof": cat(box("moof", 4), box("moof", 4), box("mdat", 4)),
		"truncated": cat(box("moof", 8), box("mdat", 10))[:20],
		"html":      []byte("<html>not found</html>"),
		"moov":      box("moov", 4),
		"moof styp": cat(box("moof", 4), box("styp", 4), box("mdat", 4)),
	}
	for name, b := range bad {
		if err := checkFragment(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := checkInit(cat(box("ftyp", 4), box("moov", 4))); err != nil {
		t.Errorf("init: %v", err)
	}
	if err := checkInit(box("ftyp", 4)); err == nil {
		t.Error("init without moov accepted")
	}
}

// TestParseMPDOpenTimeline: a final S@r="-1" in a dynamic MPD follows the
// clock between reloads.
func TestParseMPDOpenTimeline(t *testing.T) {
	ast := time.Now().Add(-7 * time.Second)
	mpd := `<MPD type="dynamic" minimumUpdatePeriod="PT1H" availabilityStartTime="` + ast.UTC().Format(time.RFC3339Nano) + `">
  <Period start="PT0S"><AdaptationSet contentType="audio">
    <SegmentTemplate timescale="1000" media="$Time$.m4s"><SegmentTimeline><S t="0" d="2000" r="-1"/></SegmentTimeline></SegmentTemplate>
    <Representation id="a" bandwidth="64000"/>
  </AdaptationSet></Period></MPD>`
	p, _, err := parseMPD([]byte(mpd), mustURL(t, "http://o/x.mpd"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	r := p.Audio.Renditions[0]
	if n := len(r.Segments(time.Now())); n != 3 {
		t.Errorf("%d segments after 7 s, want 3", n)
	}
	segs := r.Segments(time.Now().Add(4 * time.Second))
	if len(segs) != 5 || segs[4].URL != "http://o/8000.m4s" {
		t.Errorf("4 s later: %+v", segs)
	}
}
