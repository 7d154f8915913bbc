package e2e

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/hls-m3u8/m3u8"

	"github.com/sluice-media/sluice/internal/testkit/mpdschema"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// captionPeriod is the period of the test stream's captions: caption n
// (testmedia.CaptionText) is loaded from 2n s, shown when loaded and
// erased at 2n+1.6 s.
const captionPeriod = 2.0

// TestCaptions: CEA-608 captions in the SEI of a CMAF video push (ffmpeg's
// libx264 output with captions on CC1 inserted by testmedia.AddCaptions,
// the video track's language English) are detected at ingest and
// signalled: the MPD's video AdaptationSet has the SCTE 214-1 CEA-608
// Accessibility descriptor "CC1=eng", the master playlist a
// CLOSED-CAPTIONS rendition (INSTREAM-ID CC1) named on every variant —
// from the origin and through a /s/ session — every playlist parses with
// hls-m3u8 and the MPDs pass the schema-order validator. Then hls.js
// (HLS) and Shaka Player (DASH) play the stream for 6 s at once, and each
// has a captions text track whose cues are the captions sent, at their
// media times.
func TestCaptions(t *testing.T) {
	t0 := time.Now()
	b := setupBrowser(t, "ffmpeg")
	webDir, art, tmp, bin := b.webDir, b.art, b.tmp, b.bin

	video, audio := testmedia.CMAFFiles(t, tmp, 10, 0)
	captioned, err := testmedia.AddCaptions(testmedia.ReadFile(t, video), captionPeriod, "eng")
	if err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	serve := startProc(t, "sluice serve", filepath.Join(art, "sluice.log"), bin, "serve",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data", filepath.Join(tmp, "data"),
		"--no-demo", "--point", "cc", "--player-dir", filepath.Join(webDir, "node_modules"))
	waitHTTP(t, base+"/", 30*time.Second, serve)
	// The whole stream at once: the mfra at the end of each body ends its
	// tracks, and the presentation is complete. (A fresh connection each:
	// a POST is not retried on a kept-alive connection the server closed.)
	push := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, s := range []struct {
		stream string
		body   []byte
	}{{"video", captioned}, {"audio", testmedia.ReadFile(t, audio)}} {
		resp, err := push.Post(base+"/cc.isml/Streams("+s.stream+")", "video/mp4", bytes.NewReader(s.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("push %s: %s", s.stream, resp.Status)
		}
	}
	t.Logf("pushed after %v", time.Since(t0).Round(time.Millisecond))

	for _, pp := range []string{base + "/cc.isml/", base + "/s/cc/"} {
		checkCaptionManifests(t, pp)
	}

	// The players, at once: hls.js on HLS, Shaka Player on DASH.
	players := []struct{ kind, config, manifest string }{
		{"hls", `{}`, "master.m3u8"},
		{"shaka", `{"preferredText":[{"language":"en"}]}`, "manifest.mpd"},
	}
	var runs []playRun
	for _, p := range players {
		runs = append(runs, playRun{p.kind, base + "/cc.isml/" + p.manifest,
			playEnv{args: []string{"--text-cues", "--player-config=" + p.config}}, filepath.Join(art, "captions-"+p.kind+".png")})
	}
	outs := startPlays(webDir, runs, 6, 4)()
	for _, o := range outs {
		if o.err != nil {
			t.Errorf("%s: %v\n%s", o.kind, o.err, o.stderr)
			continue
		}
		checkPlay(t, o.r, 4)
		checkCaptionCues(t, o.kind, o.r)
	}
	t.Logf("total %v", time.Since(t0).Round(time.Millisecond))
}

// checkCaptionManifests checks the caption signalling of the MPD and the
// master playlist under pp (a point's URL prefix).
func checkCaptionManifests(t *testing.T, pp string) {
	t.Helper()
	var mpd []byte
	waitUntil(t, 30*time.Second, pp+"manifest.mpd is static", func() (bool, string) {
		code, body := get(t, pp+"manifest.mpd")
		mpd = body
		return code == http.StatusOK && bytes.Contains(body, []byte(`type="static"`)), fmt.Sprintf("%d %s", code, body)
	})
	if err := mpdschema.Check(mpd); err != nil {
		t.Errorf("%smanifest.mpd: %v\n%s", pp, err, mpd)
	}
	var m struct {
		Periods []struct {
			Sets []struct {
				ContentType string `xml:"contentType,attr"`
				Acc         []struct {
					Scheme string `xml:"schemeIdUri,attr"`
					Value  string `xml:"value,attr"`
				} `xml:"Accessibility"`
			} `xml:"AdaptationSet"`
		} `xml:"Period"`
	}
	if err := xml.Unmarshal(mpd, &m); err != nil {
		t.Fatalf("%smanifest.mpd: %v", pp, err)
	}
	var acc []string
	for _, p := range m.Periods {
		for _, as := range p.Sets {
			for _, a := range as.Acc {
				acc = append(acc, as.ContentType+" "+a.Scheme+" "+a.Value)
			}
		}
	}
	if want := "video urn:scte:dash:cc:cea-608:2015 CC1=eng"; strings.Join(acc, "\n") != want {
		t.Errorf("%smanifest.mpd: Accessibility %q, want %q\n%s", pp, acc, want, mpd)
	}

	master, body := getMaster(t, pp+"master.m3u8")
	for _, v := range master.Variants {
		var cc []string
		for _, a := range v.Alternatives {
			if a.Type == "CLOSED-CAPTIONS" {
				cc = append(cc, a.GroupId+" "+a.Language+" "+a.InstreamId)
			}
		}
		// The group is "cc", or "cc-<pathway>" in a session's master.
		if !strings.HasPrefix(v.Captions, "cc") || strings.Join(cc, ",") != v.Captions+" eng CC1" {
			t.Errorf("%smaster.m3u8 variant %s: CLOSED-CAPTIONS=%q, renditions %v\n%s", pp, v.URI, v.Captions, cc, body)
		}
		u, err := url.Parse(pp)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := url.Parse(v.URI)
		if err != nil {
			t.Fatal(err)
		}
		code, media := get(t, u.ResolveReference(ref).String())
		if _, _, err := m3u8.DecodeFrom(bytes.NewReader(media), true); code != http.StatusOK || err != nil {
			t.Errorf("%s %s: %d %v\n%s", pp, v.URI, code, err, media)
		}
	}
}

// markup matches the WebVTT tags in a cue's text.
var markup = regexp.MustCompile(`</?[^>]*>`)

// checkCaptionCues checks that a player put the test stream's captions
// into a text track of kind captions (hls.js: named as the master
// playlist's CLOSED-CAPTIONS rendition): at least two, each the text of its
// period, starting in the first half of its period (after the few frames
// that load it) and ending at the erase (0.8 of the period), within
// 0.3 s.
func checkCaptionCues(t *testing.T, what string, r playResult) {
	t.Helper()
	var tracks []string
	n := 0
	for _, tt := range r.TextTracks {
		tracks = append(tracks, fmt.Sprintf("%s/%s/%s/%s/%d cues", tt.Kind, tt.Language, tt.Label, tt.Mode, len(tt.Cues)))
		for _, c := range tt.Cues {
			var k int
			// Shaka Player marks the 608 colours up (<c.white.bg_black>).
			text := strings.TrimSpace(markup.ReplaceAllString(c.Text, ""))
			if _, err := fmt.Sscanf(text, "CAPTION %d", &k); err != nil || text != testmedia.CaptionText(k) {
				t.Errorf("%s: unexpected cue %+v", what, c)
				continue
			}
			from := float64(k) * captionPeriod
			if c.Start < from-0.3 || c.Start > from+captionPeriod/2 || c.End < from+0.8*captionPeriod-0.3 || c.End > from+0.8*captionPeriod+0.3 {
				t.Errorf("%s: cue %q at %.3f-%.3f, want from %.1f+ to %.1f", what, c.Text, c.Start, c.End, from, from+0.8*captionPeriod)
			}
			if tt.Kind != "captions" {
				t.Errorf("%s: caption cue %q in a text track of kind %q", what, c.Text, tt.Kind)
			}
			if what == "hls" && (tt.Label != "eng CC1" || tt.Language != "eng") {
				// hls.js names the track after the CLOSED-CAPTIONS rendition.
				t.Errorf("%s: caption track %q (%s), want the rendition's name \"eng CC1\" (eng)", what, tt.Label, tt.Language)
			}
			n++
		}
	}
	if n < 2 {
		t.Errorf("%s: %d caption cues; text tracks: %v", what, n, tracks)
	}
}
