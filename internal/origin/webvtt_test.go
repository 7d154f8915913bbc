package origin_test

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

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
