package player

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// testTimescale is the timescale of every track of the fake origin (Smooth's
// default, so the same times serve all three formats).
const testTimescale = 10_000_000

// fakeOrigin serves one publishing point "/pp.isml/" in DASH (SegmentTimeline
// with $Time$ at manifest.mpd, @duration with $Number$ at number.mpd), HLS
// (master.m3u8) and Smooth (Manifest), with generated moof+mdat fragments
// whose sizes match their bitrates. A live origin produces one fragment per
// segDur after a backlog and turns static when all total fragments exist.
type fakeOrigin struct {
	t       testing.TB
	segDur  time.Duration
	video   []int64 // bitrates
	audio   int64   // 0: no audio
	total   int
	live    bool
	backlog int
	// freezeAt/freezeFor: a live origin produces nothing in this window of
	// its clock, then releases the withheld fragments at once.
	freezeAt, freezeFor time.Duration
	// throttle returns the delivery rate for a rendition ID, bits/s (0: unlimited).
	throttle func(rep string) int64
	// fault may answer a fragment request instead of the origin: it returns
	// true when it has written a response. n counts requests for (rep, k).
	fault func(w http.ResponseWriter, rep string, k, n int) bool
	// cmsd, when set, returns the CMSD-Dynamic header of a fragment
	// response from the request's headers ("" for none).
	cmsd func(rep string, k int, req http.Header) string
	// wrap, when set, wraps the origin's handler (a server-side pacer);
	// connContext is then the server's ConnContext.
	wrap        func(http.Handler) http.Handler
	connContext func(context.Context, net.Conn) context.Context

	start time.Time
	srv   *httptest.Server

	mu       sync.Mutex
	requests map[string]int    // fragment requests by "rep/k"
	frags    map[string][]byte // generated fragments by "rep/k"
	cmcd     []http.Header     // CMCD and Sluice-Pacing headers of media requests
}

func (o *fakeOrigin) serve() *fakeOrigin {
	if o.segDur == 0 {
		o.segDur = 500 * time.Millisecond
	}
	o.requests = map[string]int{}
	o.frags = map[string][]byte{}
	// Generate the fragments up front, off the clock of the sessions.
	for _, rep := range o.reps() {
		for k := range min(o.total, 40) {
			o.fragmentBytes(rep, k)
		}
	}
	o.start = time.Now()
	var h http.Handler = http.HandlerFunc(o.handle)
	if o.wrap != nil {
		h = o.wrap(h)
	}
	o.srv = httptest.NewUnstartedServer(h)
	o.srv.Config.ConnContext = o.connContext
	o.srv.Start()
	o.t.Cleanup(o.srv.Close)
	return o
}

func (o *fakeOrigin) url(path string) string { return o.srv.URL + "/pp.isml/" + path }

func (o *fakeOrigin) segTicks() int64 { return int64(o.segDur) * testTimescale / int64(time.Second) }

// available is how many fragments exist now, and whether that is all.
func (o *fakeOrigin) available() (int, bool) {
	if !o.live {
		return o.total, true
	}
	el := time.Since(o.start)
	if o.freezeFor > 0 && el >= o.freezeAt && el < o.freezeAt+o.freezeFor {
		el = o.freezeAt
	}
	n := min(o.backlog+int(el/o.segDur), o.total)
	return n, n == o.total
}

// ast is the availability start time: fragment k ends at ast+(k+1)·segDur.
func (o *fakeOrigin) ast() time.Time { return o.start.Add(-time.Duration(o.backlog) * o.segDur) }

func (o *fakeOrigin) reps() []string {
	var out []string
	for _, b := range o.video {
		out = append(out, "v"+strconv.FormatInt(b, 10))
	}
	if o.audio > 0 {
		out = append(out, "a"+strconv.FormatInt(o.audio, 10))
	}
	return out
}

func repBitrate(rep string) int64 {
	b, _ := strconv.ParseInt(rep[1:], 10, 64)
	return b
}

func (o *fakeOrigin) handle(w http.ResponseWriter, r *http.Request) {
	p, ok := strings.CutPrefix(r.URL.Path, "/pp.isml/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	n, ended := o.available()
	switch {
	case p == "manifest.mpd":
		w.Header().Set("Content-Type", "application/dash+xml")
		fmt.Fprint(w, o.mpd(n, ended, false))
	case p == "number.mpd":
		w.Header().Set("Content-Type", "application/dash+xml")
		fmt.Fprint(w, o.mpd(n, ended, true))
	case p == "master.m3u8":
		fmt.Fprint(w, o.master())
	case strings.HasSuffix(p, ".m3u8"):
		fmt.Fprint(w, o.media(strings.TrimSuffix(p, ".m3u8"), n, ended))
	case p == "Manifest":
		fmt.Fprint(w, o.smooth(n, ended))
	case strings.HasPrefix(p, "tracks/"):
		rep, file, _ := strings.Cut(strings.TrimPrefix(p, "tracks/"), "/")
		if file == "init.mp4" {
			o.writeInit(w, rep)
			return
		}
		var k int
		if num, ok := strings.CutPrefix(strings.TrimSuffix(file, ".m4s"), "n"); ok {
			v, _ := strconv.Atoi(num)
			k = v - 1 // startNumber 1
		} else {
			t, _ := strconv.ParseInt(strings.TrimSuffix(file, ".m4s"), 10, 64)
			k = int(t / o.segTicks())
		}
		o.fragment(w, r, rep, k, n)
	case strings.HasPrefix(p, "QualityLevels("):
		// QualityLevels(<br>)/Fragments(<video|audio>=<t>)
		var br, t int64
		var typ string
		rest := strings.TrimPrefix(p, "QualityLevels(")
		bs, rest, _ := strings.Cut(rest, ")/Fragments(")
		typ, ts, _ := strings.Cut(strings.TrimSuffix(rest, ")"), "=")
		br, _ = strconv.ParseInt(bs, 10, 64)
		t, _ = strconv.ParseInt(ts, 10, 64)
		o.fragment(w, r, typ[:1]+strconv.FormatInt(br, 10), int(t/o.segTicks()), n)
	default:
		http.NotFound(w, r)
	}
}

func (o *fakeOrigin) fragment(w http.ResponseWriter, r *http.Request, rep string, k, avail int) {
	if k < 0 || k >= avail || repBitrate(rep) == 0 {
		http.NotFound(w, r)
		return
	}
	o.mu.Lock()
	key := fmt.Sprintf("%s/%d", rep, k)
	o.requests[key]++
	count := o.requests[key]
	h := http.Header{}
	for name, v := range r.Header {
		if strings.HasPrefix(name, "Cmcd-") || name == "Sluice-Pacing" {
			h[name] = v
		}
	}
	o.cmcd = append(o.cmcd, h)
	o.mu.Unlock()
	if o.fault != nil && o.fault(w, rep, k, count) {
		return
	}
	data := o.fragmentBytes(rep, k)
	var rate int64
	if o.throttle != nil {
		rate = o.throttle(rep)
	}
	w.Header().Set("Content-Type", "video/mp4")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	if o.cmsd != nil {
		if v := o.cmsd(rep, k, r.Header); v != "" {
			w.Header().Set("CMSD-Dynamic", v)
		}
	}
	if rate <= 0 {
		_, _ = w.Write(data)
		return
	}
	const chunk = 4096
	fl, _ := w.(http.Flusher)
	for len(data) > 0 {
		n := min(chunk, len(data))
		if _, err := w.Write(data[:n]); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
		data = data[n:]
		select {
		case <-r.Context().Done():
			return
		case <-time.After(time.Duration(int64(n) * 8 * int64(time.Second) / rate)):
		}
	}
}

// fragmentBytes returns fragment k of rep, generated once so that serving
// it costs next to no CPU (the tests measure throughput).
func (o *fakeOrigin) fragmentBytes(rep string, k int) []byte {
	key := fmt.Sprintf("%s/%d", rep, k)
	o.mu.Lock()
	defer o.mu.Unlock()
	if b, ok := o.frags[key]; ok {
		return b
	}
	b := makeFragment(o.t, repBitrate(rep), o.segDur, uint64(int64(k)*o.segTicks()), uint32(k+1))
	o.frags[key] = b
	return b
}

// makeFragment builds a moof+mdat of one sample sized for bitrate.
func makeFragment(t testing.TB, bitrate int64, dur time.Duration, decodeTime uint64, seq uint32) []byte {
	f, err := mp4.CreateFragment(seq, 1)
	if err != nil {
		t.Fatal(err)
	}
	size := max(int(bitrate*int64(dur)/int64(time.Second)/8)-100, 16)
	f.AddFullSample(mp4.FullSample{
		Sample:     mp4.Sample{Flags: mp4.SyncSampleFlags, Dur: uint32(int64(dur) * testTimescale / int64(time.Second)), Size: uint32(size)},
		DecodeTime: decodeTime,
		Data:       make([]byte, size),
	})
	var b bytes.Buffer
	if err := f.Encode(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func (o *fakeOrigin) writeInit(w http.ResponseWriter, rep string) {
	init := mp4.CreateEmptyInit()
	kind := "video"
	if rep[0] == 'a' {
		kind = "audio"
	}
	init.AddEmptyTrack(testTimescale, kind, "und")
	var b bytes.Buffer
	if err := init.Encode(&b); err != nil {
		o.t.Error(err)
	}
	_, _ = w.Write(b.Bytes())
}

func (o *fakeOrigin) mpd(n int, ended, number bool) string {
	var b strings.Builder
	typ := "static"
	if o.live && !ended {
		typ = "dynamic"
	}
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="%s"`, typ)
	if typ == "dynamic" {
		fmt.Fprintf(&b, ` availabilityStartTime="%s" minimumUpdatePeriod="PT%gS" timeShiftBufferDepth="PT30S" suggestedPresentationDelay="PT%gS"`,
			o.ast().UTC().Format(time.RFC3339Nano), o.segDur.Seconds(), 3*o.segDur.Seconds())
	} else {
		fmt.Fprintf(&b, ` mediaPresentationDuration="PT%gS"`, (time.Duration(o.total) * o.segDur).Seconds())
	}
	b.WriteString(" minBufferTime=\"PT2S\">\n")
	if typ == "dynamic" {
		fmt.Fprintf(&b, `  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="%s"/>`+"\n", time.Now().UTC().Format(time.RFC3339Nano))
	}
	b.WriteString("  <Period id=\"0\" start=\"PT0S\">\n")
	timeline := func() string {
		var s strings.Builder
		s.WriteString("<SegmentTimeline>")
		if n > 0 {
			fmt.Fprintf(&s, `<S t="0" d="%d" r="%d"/>`, o.segTicks(), n-1)
		}
		s.WriteString("</SegmentTimeline>")
		return s.String()
	}
	tmpl := func() string {
		if number {
			return fmt.Sprintf(`<SegmentTemplate timescale="%d" duration="%d" startNumber="1" initialization="tracks/$RepresentationID$/init.mp4" media="tracks/$RepresentationID$/n$Number$.m4s"/>`,
				testTimescale, o.segTicks())
		}
		return fmt.Sprintf(`<SegmentTemplate timescale="%d" initialization="tracks/$RepresentationID$/init.mp4" media="tracks/$RepresentationID$/$Time$.m4s">%s</SegmentTemplate>`,
			testTimescale, timeline())
	}
	b.WriteString("    <AdaptationSet contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\">\n      " + tmpl() + "\n")
	for _, br := range o.video {
		fmt.Fprintf(&b, "      <Representation id=\"v%d\" bandwidth=\"%d\" codecs=\"avc1.64001f\" width=\"640\" height=\"360\"/>\n", br, br)
	}
	b.WriteString("    </AdaptationSet>\n")
	if o.audio > 0 {
		b.WriteString("    <AdaptationSet contentType=\"audio\" mimeType=\"audio/mp4\" lang=\"en\">\n      " + tmpl() + "\n")
		fmt.Fprintf(&b, "      <Representation id=\"a%d\" bandwidth=\"%d\" codecs=\"mp4a.40.2\"/>\n", o.audio, o.audio)
		b.WriteString("    </AdaptationSet>\n")
	}
	b.WriteString("  </Period>\n</MPD>\n")
	return b.String()
}

func (o *fakeOrigin) master() string {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	if o.audio > 0 {
		fmt.Fprintf(&b, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,URI=\"a%d.m3u8\"\n", o.audio)
	}
	for _, br := range o.video {
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360", br)
		if o.audio > 0 {
			b.WriteString(",AUDIO=\"aud\"")
		}
		fmt.Fprintf(&b, "\nv%d.m3u8\n", br)
	}
	return b.String()
}

func (o *fakeOrigin) media(rep string, n int, ended bool) string {
	var b strings.Builder
	first := 0
	if o.live && !ended {
		first = max(0, n-20) // a sliding window
	}
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:%d\n",
		int(o.segDur.Seconds()+0.999), first)
	if !o.live {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	}
	fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"tracks/%s/init.mp4\"\n", rep)
	for k := first; k < n; k++ {
		fmt.Fprintf(&b, "#EXTINF:%.3f,\ntracks/%s/%d.m4s\n", o.segDur.Seconds(), rep, int64(k)*o.segTicks())
	}
	if ended {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return b.String()
}

func (o *fakeOrigin) smooth(n int, ended bool) string {
	var b strings.Builder
	live := ""
	if o.live && !ended {
		live = ` IsLive="TRUE" LookAheadFragmentCount="2" DVRWindowLength="0"`
	}
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<SmoothStreamingMedia MajorVersion="2" MinorVersion="2" TimeScale="%d" Duration="%d"%s>`+"\n",
		testTimescale, int64(n)*o.segTicks(), live)
	chunks := func() string {
		if n == 0 {
			return ""
		}
		return fmt.Sprintf(`<c t="0" d="%d" r="%d"/>`, o.segTicks(), n)
	}
	fmt.Fprintf(&b, `  <StreamIndex Type="video" Name="video" Chunks="%d" QualityLevels="%d" Url="QualityLevels({bitrate})/Fragments(video={start time})">`+"\n", n, len(o.video))
	for i, br := range o.video {
		fmt.Fprintf(&b, `    <QualityLevel Index="%d" Bitrate="%d" FourCC="AVC1" MaxWidth="640" MaxHeight="360" CodecPrivateData="000000016764001FAC"/>`+"\n", i, br)
	}
	b.WriteString("    " + chunks() + "\n  </StreamIndex>\n")
	if o.audio > 0 {
		fmt.Fprintf(&b, `  <StreamIndex Type="audio" Name="audio" Chunks="%d" QualityLevels="1" Url="QualityLevels({bitrate})/Fragments(audio={start time})">`+"\n", n)
		fmt.Fprintf(&b, `    <QualityLevel Index="0" Bitrate="%d" FourCC="AACL" SamplingRate="48000" Channels="2" BitsPerSample="16" PacketSize="4" AudioTag="255" CodecPrivateData="1190"/>`+"\n", o.audio)
		b.WriteString("    " + chunks() + "\n  </StreamIndex>\n")
	}
	b.WriteString("</SmoothStreamingMedia>\n")
	return b.String()
}

// fragmentRequests counts requests for fragments of rep.
func (o *fakeOrigin) fragmentRequests(rep string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for k, v := range o.requests {
		if strings.HasPrefix(k, rep+"/") {
			n += v
		}
	}
	return n
}
