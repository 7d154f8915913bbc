package origin_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/sluice-media/sluice/internal/manifest"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/texttrack"
)

// TestWebVTTSegments: a WebVTT track pushed next to the video (its own
// CMAF push) is served at <t>.vtt as WebVTT with the cues of the fragment
// at t; other tracks and times are a 404, and so is the WebVTT form of a
// video track.
func TestWebVTTSegments(t *testing.T) {
	e := newEnv(t, t.TempDir())
	e.push(true)
	init, err := texttrack.WvttInit(1000, "en", "")
	if err != nil {
		t.Fatal(err)
	}
	body := append([]byte(nil), init...)
	cues := []texttrack.Cue{{Start: 500 * time.Millisecond, End: 1500 * time.Millisecond, Text: "hello"}}
	for n := range 2 {
		from := time.Duration(n) * 2 * time.Second
		frag, err := texttrack.Fragment(uint32(n+1), texttrack.WvttSamples(cues, from, from+2*time.Second, 1000))
		if err != nil {
			t.Fatal(err)
		}
		body = append(body, frag...)
	}
	resp, err := http.Post(e.ts.URL+"/ch.isml/Streams(text)", "video/mp4", bytes.NewReader(body))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("push: %v %v", err, resp)
	}
	resp.Body.Close()

	r, seg := e.get("/ch.isml/tracks/text_en_0/0.vtt")
	want := "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n00:00:00.500 --> 00:00:01.500\nhello\n"
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "text/vtt; charset=utf-8" || string(seg) != want ||
		!strings.Contains(r.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("0.vtt: %d %s %q\n%s", r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Cache-Control"), seg)
	}
	if r, seg := e.get("/ch.isml/tracks/text_en_0/2000.vtt"); r.StatusCode != http.StatusOK || string(seg) != "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:180000,LOCAL:00:00:02.000\n" {
		t.Errorf("2000.vtt (no cue): %d\n%s", r.StatusCode, seg)
	}
	video := e.view().Tracks[0]
	for _, p := range []string{
		"/ch.isml/tracks/text_en_0/1000.vtt",                                      // no fragment starts there
		"/ch.isml/tracks/text_en_0/x.vtt",                                         // malformed
		"/ch.isml/tracks/nosuch/0.vtt",                                            // no such track
		"/ch.isml/tracks/" + video.ID + "/" + itoa(video.Frags[0].Start) + ".vtt", // not a text track
	} {
		if r, _ := e.get(p); r.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, r.StatusCode)
		}
	}
	// The HLS playlist of the track lists the WebVTT segments.
	if _, pl := e.get("/ch.isml/tracks/text_en_0/media.m3u8"); !bytes.Contains(pl, []byte("\n0.vtt\n")) || bytes.Contains(pl, []byte("EXT-X-MAP")) {
		t.Errorf("playlist:\n%s", pl)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestTTMLTimes: a TTML (stpp) track whose documents carry times relative
// to their samples, as Smooth encoders write them, is stored with media
// times: the CMAF segment (DASH) says 10.5 s where the encoder said 0.5 s
// in a sample at 10 s. The Smooth fragment says 0.5 s again, as Smooth
// clients read it.
func TestTTMLTimes(t *testing.T) {
	e := newEnv(t, t.TempDir())
	e.push(true)
	init, err := texttrack.StppInit(1000, "fra")
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.NewBuffer(init)
	rel := []byte(`<tt xmlns="http://www.w3.org/ns/ttml"><body><div><p begin="00:00:00.500" end="00:00:01.500">bonjour</p></div></body></tt>`)
	for n := range 3 {
		frag, err := texttrack.Fragment(uint32(n+1), []mp4.FullSample{{
			Sample: mp4.Sample{Dur: 2000, Size: uint32(len(rel)), Flags: mp4.SyncSampleFlags}, DecodeTime: uint64(10000 + n*2000), Data: rel,
		}})
		if err != nil {
			t.Fatal(err)
		}
		body.Write(frag)
	}
	resp, err := http.Post(e.ts.URL+"/ch.isml/Streams(ttml)", "video/mp4", body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("push: %v %v", err, resp)
	}
	resp.Body.Close()
	var tv store.TrackView
	for _, tr := range e.view().Tracks {
		if tr.Info.SampleEntry == "stpp" {
			tv = tr
		}
	}
	if len(tv.Frags) != 3 {
		t.Fatalf("stpp track %+v", tv)
	}
	doc := func(frag []byte) string {
		f, err := mp4.DecodeFileSR(bits.NewFixedSliceReader(frag))
		if err != nil || len(f.Segments) != 1 || len(f.Segments[0].Fragments) != 1 {
			t.Fatalf("fragment: %v", err)
		}
		ss, err := f.Segments[0].Fragments[0].GetFullSamples(nil)
		if err != nil || len(ss) != 1 {
			t.Fatalf("samples: %v %d", err, len(ss))
		}
		return string(ss[0].Data)
	}
	r, seg := e.get("/ch.isml/tracks/" + tv.ID + "/12000.m4s")
	if want := `<p begin="12.5s" end="13.5s">bonjour</p>`; r.StatusCode != http.StatusOK || !strings.Contains(doc(seg), want) {
		t.Errorf("CMAF segment: %d, want %s in\n%s", r.StatusCode, want, doc(seg))
	}
	url := fmt.Sprintf("/ch.isml/QualityLevels(%d)/Fragments(%s=12000)", manifest.SmoothBitrate(tv), tv.Info.Name)
	r, seg = e.get(url)
	if want := `<p begin="0.5s" end="1.5s">bonjour</p>`; r.StatusCode != http.StatusOK || !strings.Contains(doc(seg), want) {
		t.Errorf("Smooth fragment %s: %d, want %s in\n%s", url, r.StatusCode, want, doc(seg))
	}
}
