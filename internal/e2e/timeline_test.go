package e2e

// timeline_test.go: fragment times at the edges of a presentation, with the
// encoder commands the documentation gives. TestNegativeAudioStart pushes
// the ffmpeg command of `sluice serve --help` (no -avoid_negative_ts: the
// first audio fragment starts about 21 ms before zero) and checks that every
// manifest lists that fragment and that ffprobe reads the HLS and DASH
// output with audio from 0; TestShakaEndsRecording plays a finished
// recording of the README's command with Shaka Player (HLS) to 'ended'.

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// documentedFFmpeg returns the words of the first ffmpeg command in text (a
// line starting with "ffmpeg" and its backslash continuations), split as a
// shell would split these commands (single quotes only).
func documentedFFmpeg(t *testing.T, where, text string) []string {
	t.Helper()
	var cmd strings.Builder
	in := false
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if !in && !strings.HasPrefix(l, "ffmpeg ") {
			continue
		}
		in = true
		more := strings.HasSuffix(l, `\`)
		cmd.WriteString(strings.TrimSuffix(l, `\`) + " ")
		if !more {
			break
		}
	}
	if !in {
		t.Fatalf("%s documents no ffmpeg command:\n%s", where, text)
	}
	var words []string
	var w strings.Builder
	quoted, have := false, false
	for _, r := range cmd.String() {
		switch {
		case r == '\'':
			quoted, have = !quoted, true
		case r == ' ' && !quoted:
			if have {
				words = append(words, w.String())
				w.Reset()
				have = false
			}
		default:
			w.WriteRune(r)
			have = true
		}
	}
	return words
}

// finitePush turns a documented live ffmpeg command into a push of seconds
// of media to url, as fast as ffmpeg can encode (no -re: the timestamps are
// the same), quietly.
func finitePush(t *testing.T, doc []string, url string, seconds int) []string {
	t.Helper()
	if len(doc) < 3 || doc[0] != "ffmpeg" || !strings.Contains(doc[len(doc)-1], "/Streams(") {
		t.Fatalf("unexpected documented command %q", doc)
	}
	out := []string{"ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"}
	for _, w := range doc[1 : len(doc)-1] {
		if w != "-re" {
			out = append(out, w)
		}
	}
	return append(out, "-t", strconv.Itoa(seconds), url)
}

// runFFmpeg runs a push to its end (at most two minutes).
func runFFmpeg(t *testing.T, argv []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%q: %v\n%s", argv, err, out)
	}
}

// servePoint starts `sluice serve` with point live and returns its base URL.
func servePoint(t *testing.T, bin, webDir, art, tmp string) string {
	t.Helper()
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	serve := startProc(t, "sluice serve", filepath.Join(art, "sluice.log"), bin, "serve",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--data", filepath.Join(tmp, "data"),
		"--no-demo", "--point", "live", "--player-dir", filepath.Join(webDir, "node_modules"))
	waitHTTP(t, base+"/", 30*time.Second, serve)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sluice serve output:\n%s", serve.out)
		}
	})
	return base
}

// fetch GETs a URL and returns its status and body.
func fetch(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, readAll(resp)
}

// pointTracks is what the StreamManifest says of the point's tracks.
type pointTracks map[string]struct {
	Kind  string
	First int64
}

// waitRecorded waits until every track of point live has ended (the push
// is a finished recording) and returns its tracks.
func waitRecorded(t *testing.T, base string) pointTracks {
	t.Helper()
	var doc struct {
		Streams []struct {
			Tracks []struct {
				ID    string `json:"id"`
				Kind  string `json:"kind"`
				Ended bool   `json:"ended"`
				First int64  `json:"first"`
			} `json:"tracks"`
		} `json:"streams"`
	}
	out := pointTracks{}
	waitUntil(t, 30*time.Second, "the recording ends", func() (bool, string) {
		code, b := fetch(t, base+"/live.isml/StreamManifest")
		if code != 200 || json.Unmarshal(b, &doc) != nil {
			return false, fmt.Sprintf("StreamManifest: %d %.300s", code, b)
		}
		n := 0
		for _, s := range doc.Streams {
			for _, tr := range s.Tracks {
				if !tr.Ended {
					return false, tr.ID + " has not ended"
				}
				out[tr.ID] = struct {
					Kind  string
					First int64
				}{tr.Kind, tr.First}
				n++
			}
		}
		return n > 0, "no track"
	})
	return out
}

// ffprobeStarts returns the start time of each stream kind ffprobe finds in
// a manifest URL.
func ffprobeStarts(t *testing.T, url string) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "stream=codec_type,start_time",
		"-of", "json", url).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", url, err, out)
	}
	var doc struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			StartTime string `json:"start_time"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", url, err, out)
	}
	starts := map[string]float64{}
	for _, s := range doc.Streams {
		v, err := strconv.ParseFloat(s.StartTime, 64)
		if err != nil {
			t.Fatalf("ffprobe %s: start_time %q", url, s.StartTime)
		}
		if old, ok := starts[s.CodecType]; !ok || v < old {
			starts[s.CodecType] = v
		}
	}
	return starts
}

// TestNegativeAudioStart: the push of `sluice serve --help` (no
// -avoid_negative_ts) stores a first audio fragment that starts before
// zero. Every manifest lists it (from 0), the stored copy stays whole, and
// ffprobe reading the HLS and the DASH output finds the audio from ~0 (it
// found it from ~1.93 s while that fragment was left out).
func TestNegativeAudioStart(t *testing.T) {
	requireTools(t, "ffmpeg", "ffprobe", "go")
	root := repoRoot(t)
	art := artifactsDir(t)
	tmp := t.TempDir()
	bin := buildSluice(t, root, tmp)
	help, _ := exec.Command(bin, "serve", "--help").CombinedOutput()
	doc := documentedFFmpeg(t, "sluice serve --help", string(help))
	if strings.Contains(strings.Join(doc, " "), "avoid_negative_ts") {
		t.Fatalf("the documented command avoids negative times; this test needs one that does not: %q", doc)
	}
	base := servePoint(t, bin, filepath.Join(root, "web"), art, tmp)
	runFFmpeg(t, finitePush(t, doc, base+"/live.isml/Streams(live)", 6))
	tracks := waitRecorded(t, base)

	var audio string
	for id, tr := range tracks {
		if tr.Kind == "audio" {
			audio = id
		}
	}
	if audio == "" || tracks[audio].First >= 0 {
		t.Fatalf("the push stored no audio fragment before zero: %+v", tracks)
	}
	// The stored fragment is kept and served whole under its own time.
	if code, b := fetch(t, base+"/live.isml/tracks/"+audio+"/"+strconv.FormatInt(tracks[audio].First, 10)+".m4s"); code != 200 || len(b) == 0 {
		t.Errorf("stored priming fragment: %d, %d bytes", code, len(b))
	}
	// Every manifest lists it, from 0.
	_, mpdBody := fetch(t, base+"/live.isml/manifest.mpd")
	var m struct {
		Sets []struct {
			Type string `xml:"contentType,attr"`
			S    []struct {
				T *int64 `xml:"t,attr"`
			} `xml:"SegmentTemplate>SegmentTimeline>S"`
		} `xml:"Period>AdaptationSet"`
	}
	if err := xml.Unmarshal(mpdBody, &m); err != nil {
		t.Fatal(err)
	}
	for _, as := range m.Sets {
		if as.Type == "audio" && (len(as.S) == 0 || as.S[0].T == nil || *as.S[0].T != 0) {
			t.Errorf("DASH: the audio timeline does not start at 0:\n%s", mpdBody)
		}
	}
	if _, pl := fetch(t, base+"/live.isml/tracks/"+audio+"/media.m3u8"); !bytes.Contains(pl, []byte("#EXT-X-MEDIA-SEQUENCE:0\n")) || !bytes.Contains(pl, []byte("\n0.m4s\n")) {
		t.Errorf("HLS: the audio playlist does not start with 0.m4s at sequence 0:\n%s", pl)
	}
	if _, ss := fetch(t, base+"/live.isml/Manifest"); bytes.Count(ss, []byte(`<c t="0"`)) != 2 {
		t.Errorf("Smooth: video and audio should both start at 0:\n%s", ss)
	}
	if code, b := fetch(t, base+"/live.isml/tracks/"+audio+"/0.m4s"); code != 200 || len(b) == 0 {
		t.Errorf("the audio fragment listed at 0: %d", code)
	}
	for _, u := range []string{"/live.isml/master.m3u8", "/live.isml/manifest.mpd"} {
		starts := ffprobeStarts(t, base+u)
		t.Logf("ffprobe %s: %v", u, starts)
		a, ok := starts["audio"]
		if !ok || a < -0.001 || a > 0.05 {
			t.Errorf("ffprobe %s: audio starts at %v (found %v), want ~0", u, a, ok)
		}
	}
}

// TestShakaEndsRecording: a finished recording of the README's ffmpeg
// command (with -avoid_negative_ts make_non_negative its audio begins 21 ms
// before its video) has one program date time on both HLS playlists, and
// Shaka Player plays it to 'ended' (it stopped 0.04 s short while the audio
// playlist began 22 ms earlier).
func TestShakaEndsRecording(t *testing.T) {
	b := setupBrowser(t, "ffmpeg")
	root, webDir, art, tmp, bin := b.root, b.webDir, b.art, b.tmp, b.bin
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	base := servePoint(t, bin, webDir, art, tmp)
	runFFmpeg(t, finitePush(t, documentedFFmpeg(t, "README.md", string(readme)), base+"/live.isml/Streams(live)", 4))
	tracks := waitRecorded(t, base)

	pdts := map[string]string{}
	for id, tr := range tracks {
		_, pl := fetch(t, base+"/live.isml/tracks/"+id+"/media.m3u8")
		for _, l := range strings.Split(string(pl), "\n") {
			if strings.HasPrefix(l, "#EXT-X-PROGRAM-DATE-TIME:") {
				pdts[tr.Kind] = l
				break
			}
		}
	}
	if pdts["audio"] == "" || pdts["audio"] != pdts["video"] {
		t.Errorf("first program date times differ: %v", pdts)
	}
	r := runPlayIn(t, playEnv{args: []string{"--until-ended"}}, webDir, base+"/live.isml/master.m3u8", "shaka", 20, 3,
		filepath.Join(art, "screenshot-shaka.png"))
	checkPlay(t, r, 3)
	if !r.Ended {
		dur := "?"
		if r.Duration != nil {
			dur = strconv.FormatFloat(*r.Duration, 'f', 3, 64)
		}
		t.Errorf("Shaka Player did not reach 'ended': stopped at %.3f of %s s", r.EndTime, dur)
	}
}
