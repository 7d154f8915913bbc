package e2e

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/hls-m3u8/m3u8"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/sluice-media/sluice/internal/testmedia"
	"github.com/sluice-media/sluice/internal/texttrack"
)

// sidecarVTT is the side-car file TestSubtitles imports with the sample
// (12 s): one cue straddles a fragment boundary (2 s GOPs).
const sidecarVTT = `WEBVTT

1
00:00:00.600 --> 00:00:01.400
one

2
00:00:03.500 --> 00:00:04.600 line:80%
two
over two lines

00:00:07.000 --> 00:00:07.800
three
`

// sidecarCues are the cues of sidecarVTT, in milliseconds.
var sidecarCues = []wantCue{{600, 1400, "one"}, {3500, 4600, "two\nover two lines"}, {7000, 7800, "three"}}

// wantCue is a cue a test expects, in milliseconds of media time.
type wantCue struct {
	start, end int64
	text       string
}

// liveTextFragment is the duration of the live text track's fragments
// (twice the video's: a sparse track lags behind the video).
const liveTextFragment = 4 * time.Second

// liveCue is cue k of the live text track: 0.5 s to 1.5 s into every
// second of media time 2k, but none in every third 4 s fragment, which
// holds only an empty (vtte) sample.
func liveCue(k int64) (wantCue, bool) {
	if (k/2)%3 == 2 {
		return wantCue{}, false
	}
	return wantCue{2000*k + 500, 2000*k + 1500, "live " + strconv.FormatInt(k, 10)}, true
}

// TestSubtitles: text tracks from ingest and import to every output and
// player. The sample is imported with a WebVTT side-car file (on demand),
// and a live channel gets an ffmpeg ismv push of its video and audio plus a
// CMAF push of a sparse WebVTT-in-MP4 (wvtt) track built with mp4ff, in
// 4 s fragments (twice the video's), every third one empty. For both: the
// MPD has a text AdaptationSet (application/mp4, codecs wvtt, lang, Role),
// the HLS master a SUBTITLES rendition named on every variant, the
// subtitle media playlist WebVTT segments whose cues are exactly the ones
// sent, with the same bytes through a /s/ session's sender; the Smooth
// manifest still plays (it carries no WebVTT). Then dash.js, hls.js and
// Shaka Player play each for 6 s (all three at once, the on-demand ones
// while the live channel starts) and must show the cues in
// video.textTracks at their media times (within 0.25 s).
func TestSubtitles(t *testing.T) {
	t0 := time.Now()
	b := setupBrowser(t, "ffmpeg")
	webDir, art, tmp, bin := b.webDir, b.art, b.tmp, b.bin

	// The on-demand asset: the sample and its side-car file.
	media := filepath.Join(tmp, "media")
	if err := os.MkdirAll(media, 0o755); err != nil {
		t.Fatal(err)
	}
	movie := filepath.Join(media, "movie.mp4")
	if err := os.Symlink(testmedia.Sample(t), movie); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(media, "movie.en.vtt"), []byte(sidecarVTT), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(tmp, "data")
	if out, err := exec.Command(bin, "import", "--data", data, "--quiet", movie, "vodsubs").CombinedOutput(); err != nil {
		t.Fatalf("sluice import: %v\n%s", err, out)
	}

	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	serve := startProc(t, "sluice serve", filepath.Join(art, "sluice.log"), bin, "serve",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--data", data,
		"--no-demo", "--point", "live", "--player-dir", filepath.Join(webDir, "node_modules"))
	waitHTTP(t, base+"/", 30*time.Second, serve)
	ffmpeg := startProc(t, "ffmpeg", filepath.Join(art, "ffmpeg.log"), ffmpegLiveArgs(base+"/live.isml/Streams(live)")...)
	ctx, cancel := context.WithCancel(context.Background())
	textDone := make(chan error, 2)
	go func() { textDone <- pushLiveText(ctx, base+"/live.isml/Streams(text)") }()
	go func() { textDone <- pushLiveTTML(ctx, base+"/live.isml/Streams(ttml)") }()
	defer func() {
		cancel()
		for range 2 {
			if err := <-textDone; err != nil {
				t.Errorf("live text push: %v", err)
			}
		}
	}()

	// On demand: every output, the WebVTT segments' cues exactly; then the
	// players, while the live channel gets going.
	checkTextOutputs(t, base, "vodsubs", sidecarCues, false)
	t.Logf("on-demand outputs checked after %v", time.Since(t0).Round(time.Millisecond))
	vodPlays := playSubtitles(webDir, art, base, "vodsubs")

	// Live: once the video lists three fragments and each text track two
	// (the IMSC1 one has a cue per fragment).
	waitVideoSegments(t, base+"/live.isml/manifest.mpd", 3, 60*time.Second, ffmpeg, serve)
	waitUntil(t, 60*time.Second, "the live text tracks list two fragments", func() (bool, string) {
		if ffmpeg.exited() || serve.exited() {
			t.Fatalf("a process ended: ffmpeg %v, sluice %v\n%s\n%s", ffmpeg.err, serve.err, ffmpeg.out, serve.out)
		}
		var got []string
		for _, id := range []string{textTrackID, ttmlTrackID} {
			code, body := get(t, base+"/live.isml/tracks/"+id+"/media.m3u8")
			if code != http.StatusOK || strings.Count(string(body), ".vtt") < 2 {
				return false, fmt.Sprintf("%s: %d %s", id, code, body)
			}
			got = append(got, string(body))
		}
		return true, strings.Join(got, "\n")
	})
	var liveCues, ttmlCues []wantCue
	for k := int64(0); k < 500; k++ {
		if c, ok := liveCue(k); ok {
			liveCues = append(liveCues, c)
		}
		ttmlCues = append(ttmlCues, ttmlCue(k))
	}
	checkTextOutputs(t, base, "live", liveCues, true)
	t.Logf("live outputs checked after %v", time.Since(t0).Round(time.Millisecond))
	checkSubtitlePlays(t, "vodsubs", vodPlays(), sidecarCues, 0)
	t.Logf("on-demand players done after %v", time.Since(t0).Round(time.Millisecond))
	anchorMs := liveAnchor(t, base)
	// Shaka Player shows the French subtitles (IMSC1 pushed, WebVTT for
	// HLS): their cues count too.
	checkSubtitlePlays(t, "live", playSubtitles(webDir, art, base, "live")(), append(liveCues, ttmlCues...), anchorMs)
	if t.Failed() {
		saveManifests(t, base, art, "subtitles")
		for _, id := range []string{textTrackID, ttmlTrackID, "video_800000"} {
			_, body := get(t, base+"/live.isml/tracks/"+id+"/media.m3u8")
			os.WriteFile(filepath.Join(art, "after-subtitles-"+id+".m3u8"), body, 0o644)
		}
	}
	t.Logf("total %v", time.Since(t0).Round(time.Millisecond))
}

// subtitlePlayers are the players of TestSubtitles, each with the
// configuration that enables the English subtitles and the manifest it
// plays.
var subtitlePlayers = []struct{ kind, config, manifest string }{
	{"dash", `{"streaming":{"text":{"defaultEnabled":true}}}`, "manifest.mpd"},
	{"hls", `{"subtitlePreference":{"lang":"en"}}`, "master.m3u8"},
	{"shaka", `{"preferredText":[{"language":"en"}]}`, "master.m3u8"},
}

// liveSubtitlePlayers are subtitlePlayers on the live point, where Shaka
// Player shows the French subtitles that came as IMSC1.
var liveSubtitlePlayers = []struct{ kind, config, manifest string }{
	subtitlePlayers[0], subtitlePlayers[1],
	{"shaka", `{"preferredText":[{"language":"fra"}]}`, "master.m3u8"},
}

// playOutcome is what one player of a concurrent round (startPlays) did.
type playOutcome struct {
	kind   string
	r      playResult
	stderr string
	err    error
}

// playRun is one browser play of a concurrent round: a player kind on a
// manifest URL, with its play.mjs arguments and screenshot path.
type playRun struct {
	kind, url string
	pe        playEnv
	shot      string
}

// startPlays starts every run at once, each for seconds (at least
// minAdvance of play); the returned func waits for them and returns their
// outcomes in order.
func startPlays(webDir string, runs []playRun, seconds, minAdvance int) func() []playOutcome {
	outs := make([]playOutcome, len(runs))
	var wg sync.WaitGroup
	for i, p := range runs {
		wg.Go(func() {
			r, stderr, err := playIn(p.pe, webDir, p.url, p.kind, seconds, minAdvance, p.shot)
			outs[i] = playOutcome{p.kind, r, stderr, err}
		})
	}
	return func() []playOutcome {
		wg.Wait()
		return outs
	}
}

// playSubtitles starts the subtitle players on point, all at once, each
// for 6 s; the returned func waits for them.
func playSubtitles(webDir, art, base, point string) func() []playOutcome {
	players := subtitlePlayers
	if point == "live" {
		players = liveSubtitlePlayers
	}
	var runs []playRun
	for _, p := range players {
		runs = append(runs, playRun{p.kind, base + "/" + point + ".isml/" + p.manifest,
			playEnv{args: []string{"--text-cues", "--player-config=" + p.config}},
			filepath.Join(art, "subs-"+point+"-"+p.kind+".png")})
	}
	return startPlays(webDir, runs, 6, 4)
}

// checkSubtitlePlays checks the players' outcomes on point.
func checkSubtitlePlays(t *testing.T, point string, outs []playOutcome, want []wantCue, anchorMs int64) {
	t.Helper()
	for _, o := range outs {
		if o.err != nil {
			t.Errorf("%s %s: %v\n%s", point, o.kind, o.err, o.stderr)
			continue
		}
		checkPlay(t, o.r, 4)
		checkPlayerCues(t, point+" "+o.kind, o.r, want, anchorMs != 0, o.kind, anchorMs)
	}
}

// textTrackID is the id the store gives the text tracks of the test (name
// "text", language en, no declared bit rate).
const textTrackID = "text_en_0"

// ttmlTrackID is the id of the live IMSC1 track (French).
const ttmlTrackID = "text_fra_0"

// pushLiveText pushes the live WebVTT track (see pushText).
func pushLiveText(ctx context.Context, pushURL string) error {
	init, err := texttrack.WvttInit(1000, "en", "subtitle")
	if err != nil {
		return err
	}
	return pushText(ctx, pushURL, init, func(n int64, from, to time.Duration) ([]byte, error) {
		var cues []texttrack.Cue
		for k := int64(from / (2 * time.Second)); k < int64(to/(2*time.Second)); k++ {
			if c, ok := liveCue(k); ok {
				cues = append(cues, texttrack.Cue{Start: time.Duration(c.start) * time.Millisecond,
					End: time.Duration(c.end) * time.Millisecond, Text: c.text})
			}
		}
		return texttrack.Fragment(uint32(n+1), texttrack.WvttSamples(cues, from, to, 1000))
	})
}

// ttmlCue is the one cue of fragment n of the live IMSC1 track.
func ttmlCue(n int64) wantCue {
	return wantCue{4000*n + 1250, 4000*n + 2250, "fr " + strconv.FormatInt(n, 10)}
}

// pushLiveTTML pushes a live TTML/IMSC1 (stpp) subtitle track in French,
// one document per 4 s fragment whose time expressions are media times
// (see pushText). Its role is subtitle: a caption track would come first
// in the MPD (its id sorts first), and dash.js, which enables the first
// text AdaptationSet, shows TTML only with a rendering div the test page
// does not have.
func pushLiveTTML(ctx context.Context, pushURL string) error {
	init, err := texttrack.StppInit(1000, "fra")
	if err != nil {
		return err
	}
	return pushText(ctx, pushURL, init, func(n int64, from, to time.Duration) ([]byte, error) {
		c := ttmlCue(n)
		doc := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<tt xmlns="http://www.w3.org/ns/ttml" xmlns:ttp="http://www.w3.org/ns/ttml#parameter" ttp:profile="http://www.w3.org/ns/ttml/profile/imsc1/text" xml:lang="fr"><head/><body><div><p begin="%s" end="%s">%s</p></div></body></tt>
`, ttmlTime(c.start), ttmlTime(c.end), c.text)
		return texttrack.Fragment(uint32(n+1), []mp4.FullSample{{
			Sample:     mp4.Sample{Dur: uint32((to - from).Milliseconds()), Size: uint32(len(doc)), Flags: mp4.SyncSampleFlags},
			DecodeTime: uint64(from.Milliseconds()),
			Data:       []byte(doc),
		}})
	})
}

// ttmlTime is a TTML clock time of a time in ms.
func ttmlTime(ms int64) string {
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

// pushText pushes a live text track as one long CMAF POST (DASH-IF ingest
// interface 1): the header, then fragment n of [from, to) — 4 s each —
// once its end has passed in real time, until ctx ends.
func pushText(ctx context.Context, pushURL string, init []byte, fragment func(n int64, from, to time.Duration) ([]byte, error)) error {
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, pushURL, pr)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "video/mp4")
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 300 {
				err = fmt.Errorf("push answered %d: %s", resp.StatusCode, body)
			}
		}
		done <- err
	}()
	defer pw.Close()
	if _, err := pw.Write(init); err != nil {
		return ignoreCancel(ctx, err)
	}
	start := time.Now()
	for n := int64(0); ; n++ {
		from, to := time.Duration(n)*liveTextFragment, time.Duration(n+1)*liveTextFragment
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			return ignoreCancel(ctx, err)
		case <-time.After(time.Until(start.Add(to))):
		}
		frag, err := fragment(n, from, to)
		if err != nil {
			return err
		}
		if _, err := pw.Write(frag); err != nil {
			return ignoreCancel(ctx, err)
		}
	}
}

// ignoreCancel is err unless ctx ended (the test stopped the push).
func ignoreCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	if err == nil {
		return errors.New("the push ended early")
	}
	return err
}

// checkTextOutputs checks the text track of point in the three manifests,
// and that the WebVTT segments of its HLS playlist (from the origin and
// through a /s/ session's sender) carry exactly the wanted cues of the
// media time they cover (a cue split at a fragment boundary counts once,
// whole).
func checkTextOutputs(t *testing.T, base, point string, want []wantCue, live bool) {
	t.Helper()
	pp := base + "/" + point + ".isml/"
	// DASH: a text AdaptationSet.
	code, body := get(t, pp+"manifest.mpd")
	if code != http.StatusOK {
		t.Fatalf("%s MPD: %d %s", point, code, body)
	}
	var m struct {
		Periods []struct {
			Sets []struct {
				ContentType string `xml:"contentType,attr"`
				MimeType    string `xml:"mimeType,attr"`
				Lang        string `xml:"lang,attr"`
				Roles       []struct {
					Scheme string `xml:"schemeIdUri,attr"`
					Value  string `xml:"value,attr"`
				} `xml:"Role"`
				Reps []struct {
					ID     string `xml:"id,attr"`
					Codecs string `xml:"codecs,attr"`
				} `xml:"Representation"`
			} `xml:"AdaptationSet"`
		} `xml:"Period"`
	}
	if err := xml.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s MPD: %v", point, err)
	}
	found, ttmlFound := false, false
	for _, p := range m.Periods {
		for _, as := range p.Sets {
			if as.ContentType != "text" {
				continue
			}
			if live && as.Lang == "fra" {
				ttmlFound = true
				if as.MimeType != "application/mp4" || len(as.Roles) != 1 || as.Roles[0].Value != "subtitle" ||
					len(as.Reps) != 1 || as.Reps[0].Codecs != "stpp.ttml.im1t" {
					t.Errorf("%s MPD IMSC1 AdaptationSet %+v", point, as)
				}
				continue
			}
			found = true
			if as.MimeType != "application/mp4" || as.Lang != "en" || len(as.Roles) != 1 ||
				as.Roles[0].Scheme != "urn:mpeg:dash:role:2011" || as.Roles[0].Value != "subtitle" ||
				len(as.Reps) != 1 || as.Reps[0].Codecs != "wvtt" || as.Reps[0].ID != textTrackID {
				t.Errorf("%s MPD text AdaptationSet %+v", point, as)
			}
		}
	}
	if !found || live && !ttmlFound {
		t.Errorf("%s MPD lacks a text AdaptationSet (WebVTT %v, IMSC1 %v):\n%s", point, found, ttmlFound, body)
	}
	// Smooth: carries no WebVTT (live: at most the TTML stream, once it
	// has more fragments than the look-ahead holds back).
	if code, body := get(t, pp+"Manifest"); code != http.StatusOK || bytes.Count(body, []byte(`Type="text"`)) > map[bool]int{true: 1}[live] ||
		bytes.Contains(body, []byte(`Type="text"`)) && !bytes.Contains(body, []byte(`FourCC="TTML"`)) || !bytes.Contains(body, []byte(`Type="video"`)) {
		t.Errorf("%s Smooth manifest: %d\n%s", point, code, body)
	}
	// HLS: the SUBTITLES rendition on every variant.
	master, body := getMaster(t, pp+"master.m3u8")
	for _, v := range master.Variants {
		var subs []*m3u8.Alternative
		for _, a := range v.Alternatives {
			if a.Type == "SUBTITLES" {
				subs = append(subs, a)
			}
		}
		want := []string{"en tracks/" + textTrackID + "/media.m3u8"}
		if live {
			want = append(want, "fra tracks/"+ttmlTrackID+"/media.m3u8")
		}
		if strings.Contains(v.Codecs, "stpp") || strings.Contains(v.Codecs, "wvtt") {
			t.Errorf("%s variant %s: CODECS %q name a text codec (all subtitles are WebVTT)", point, v.URI, v.Codecs)
		}
		var got []string
		for _, a := range subs {
			if a.GroupId != v.Subtitles {
				t.Errorf("%s variant %s: SUBTITLES=%q, rendition in group %q", point, v.URI, v.Subtitles, a.GroupId)
			}
			got = append(got, a.Language+" "+a.URI)
		}
		slices.Sort(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s variant %s: subtitle renditions %v, want %v", point, v.URI, got, want)
		}
	}
	if live {
		// The IMSC1 track's paragraphs, as WebVTT.
		var ttml []wantCue
		for n := int64(0); n < 500; n++ {
			ttml = append(ttml, ttmlCue(n))
		}
		checkSegmentCues(t, point+" IMSC1", subtitleSegments(t, pp+"tracks/"+ttmlTrackID+"/media.m3u8", point+" IMSC1"), ttml, true)
	}
	// The subtitle media playlist and its WebVTT segments.
	origin := subtitleSegments(t, pp+"tracks/"+textTrackID+"/media.m3u8", point)
	checkSegmentCues(t, point+" origin", origin, want, live)
	// The same through a session (scheduler playlists, sender segments).
	code, body = get(t, base+"/s/"+point+"/master.m3u8")
	if code != http.StatusOK {
		t.Fatalf("%s session master: %d %s", point, code, body)
	}
	var subsURI string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "#EXT-X-MEDIA:TYPE=SUBTITLES") && strings.Contains(line, textTrackID) {
			_, u, _ := strings.Cut(line, `URI="`)
			subsURI, _, _ = strings.Cut(u, `"`)
		}
	}
	if subsURI == "" {
		t.Fatalf("%s session master has no SUBTITLES rendition:\n%s", point, body)
	}
	masterURL, _ := url.Parse(base + "/s/" + point + "/master.m3u8")
	su, _ := masterURL.Parse(subsURI)
	session := subtitleSegments(t, su.String(), point+" session")
	n := 0
	for start, seg := range session {
		if o, ok := origin[start]; ok {
			n++
			if !bytes.Equal(o, seg) {
				t.Errorf("%s: the sender's WebVTT segment %d differs from the origin's:\n%s\n---\n%s", point, start, seg, o)
			}
		}
	}
	if n == 0 {
		t.Errorf("%s: no WebVTT segment of the session's playlist is in the origin's", point)
	}
}

// subtitleSegments fetches a WebVTT media playlist and its segments, by
// the segment's start (its name).
func subtitleSegments(t *testing.T, playlist, what string) map[int64][]byte {
	t.Helper()
	code, body := get(t, playlist)
	pl, typ, err := m3u8.DecodeFrom(bytes.NewReader(body), true)
	if code != http.StatusOK || err != nil || typ != m3u8.MEDIA {
		t.Fatalf("%s subtitle playlist %s: %d %v\n%s", what, playlist, code, err, body)
	}
	mp := pl.(*m3u8.MediaPlaylist)
	if mp.Map != nil {
		t.Errorf("%s subtitle playlist has EXT-X-MAP", what)
	}
	pu, _ := url.Parse(playlist)
	out := map[int64][]byte{}
	for _, s := range mp.GetAllSegments() {
		u, _ := pu.Parse(s.URI)
		name := filepath.Base(u.Path)
		start, err := strconv.ParseInt(strings.TrimSuffix(name, ".vtt"), 10, 64)
		if err != nil || !strings.HasSuffix(name, ".vtt") {
			t.Fatalf("%s subtitle segment URI %q", what, s.URI)
		}
		resp, err := http.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		seg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/vtt") {
			t.Fatalf("%s %s: %d %s %s", what, u, resp.StatusCode, resp.Header.Get("Content-Type"), seg)
		}
		out[start] = seg
	}
	return out
}

// checkSegmentCues parses WebVTT segments (by start, in ms) and compares
// their cues, joined across segment boundaries, with want over the span
// they cover.
func checkSegmentCues(t *testing.T, what string, segs map[int64][]byte, want []wantCue, live bool) {
	t.Helper()
	var got []wantCue
	var from, to int64 = math.MaxInt64, 0
	for start, seg := range segs {
		if !bytes.Contains(seg, []byte(fmt.Sprintf("X-TIMESTAMP-MAP=MPEGTS:%d,LOCAL:", start*90))) {
			t.Errorf("%s: segment %d has no X-TIMESTAMP-MAP at its start:\n%s", what, start, seg)
		}
		cues, err := texttrack.ParseWebVTT(seg)
		if err != nil {
			t.Fatalf("%s: segment %d: %v\n%s", what, start, err, seg)
		}
		for _, c := range cues {
			got = append(got, wantCue{c.Start.Milliseconds(), c.End.Milliseconds(), c.Text})
		}
		from = min(from, start)
	}
	// The span covered: up to the end of the last cue wanted that begins
	// in the newest segment's fragment or earlier (live: 4 s fragments).
	for start := range segs {
		to = max(to, start)
	}
	if live {
		to += liveTextFragment.Milliseconds()
	} else {
		to = math.MaxInt64
	}
	joined := map[string]wantCue{}
	for _, c := range got {
		j, ok := joined[c.text]
		if !ok {
			joined[c.text] = c
			continue
		}
		j.start, j.end = min(j.start, c.start), max(j.end, c.end)
		joined[c.text] = j
	}
	n := 0
	for _, w := range want {
		if w.start < from || w.end > to {
			continue
		}
		n++
		if g, ok := joined[w.text]; !ok || g != w {
			t.Errorf("%s: cue %q is %+v, want %+v", what, w.text, g, w)
		}
		delete(joined, w.text)
	}
	for _, g := range joined {
		t.Errorf("%s: unexpected cue %+v", what, g)
	}
	if n < 2 {
		t.Errorf("%s: only %d cues in the segments (%d segments)", what, n, len(segs))
	}
}

// liveAnchor is the wall-clock time (Unix ms) of media time 0 of the live
// point: the program date time of its subtitle playlist's first segment
// less that segment's start (ms).
func liveAnchor(t *testing.T, base string) int64 {
	t.Helper()
	_, body := get(t, base+"/live.isml/tracks/"+textTrackID+"/media.m3u8")
	pl, _, err := m3u8.DecodeFrom(bytes.NewReader(body), true)
	if err != nil {
		t.Fatal(err)
	}
	segs := pl.(*m3u8.MediaPlaylist).GetAllSegments()
	if len(segs) == 0 || segs[0].ProgramDateTime.IsZero() {
		t.Fatalf("no program date time in\n%s", body)
	}
	start, _ := strconv.ParseInt(strings.TrimSuffix(segs[0].URI, ".vtt"), 10, 64)
	return segs[0].ProgramDateTime.UnixMilli() - start
}

// checkPlayerCues checks the cues a player put into video.textTracks:
// wanted ones, at least two, each at its media time within 0.25 s. On
// demand, media time is currentTime (the asset starts at 0); live,
// dash.js's currentTime is media time, and hls.js's maps to it through the
// program date time it reports (within 0.5 s). Shaka Player's program
// date time is off by up to half a second and more from one run to the
// next (its presentation start is estimated), so its live cues must keep
// one offset from their media times (within 0.1 s), within 1 s of what
// its program date time says.
func checkPlayerCues(t *testing.T, what string, r playResult, want []wantCue, live bool, kind string, anchorMs int64) {
	t.Helper()
	offset := 0.0 // media time minus cue time, in seconds
	tol := 0.25
	if live && kind != "dash" {
		tol = 0.5
		if r.PlayingDate == nil {
			t.Errorf("%s: the player maps currentTime to no program date time", what)
			return
		}
		offset = (*r.PlayingDate-float64(anchorMs))/1000 - r.PlayingTime
	}
	byText := map[string]wantCue{}
	for _, w := range want {
		byText[w.text] = w
	}
	type placed struct {
		c    float64 // the cue's start in the player
		w    wantCue
		text string
	}
	var cues []placed
	var tracks []string
	for _, tt := range r.TextTracks {
		tracks = append(tracks, fmt.Sprintf("%s/%s/%s/%s/%d cues", tt.Kind, tt.Language, tt.Label, tt.Mode, len(tt.Cues)))
		for _, c := range tt.Cues {
			w, ok := byText[strings.TrimSpace(c.Text)]
			if !ok {
				t.Errorf("%s: unexpected cue %+v in track %s/%s", what, c, tt.Kind, tt.Language)
				continue
			}
			if c.End <= c.Start || c.End-c.Start > float64(w.end-w.start)/1000+0.05 {
				t.Errorf("%s: cue %q lasts %.3f-%.3f, want %.3f s", what, w.text, c.Start, c.End, float64(w.end-w.start)/1000)
			}
			cues = append(cues, placed{c.Start, w, w.text})
		}
	}
	if live && kind == "shaka" && len(cues) > 0 {
		// One offset for every cue, near the program date time's.
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, p := range cues {
			d := float64(p.w.start)/1000 - p.c
			lo, hi = min(lo, d), max(hi, d)
		}
		// Shaka estimates a live stream's program date time; on a loaded
		// machine its estimate has been 1.4 s off (CI, 2026-12-07): the
		// cues' one offset is what is checked, the estimate only roughly.
		if hi-lo > 0.1 || math.Abs((lo+hi)/2-offset) > 2.5 {
			t.Errorf("%s: cue offsets %.3f to %.3f s from their media times (program date time: %.3f)", what, lo, hi, offset)
		}
		offset, tol = (lo+hi)/2, 0.1
	}
	n := 0
	for _, p := range cues {
		// A cue split at a fragment boundary may come in two parts: each
		// starts within the wanted one.
		s := p.c + offset
		if s < float64(p.w.start)/1000-tol || s > float64(p.w.end)/1000+tol {
			t.Errorf("%s: cue %q at media time %.3f, want %.3f-%.3f (offset %.3f)",
				what, p.text, s, float64(p.w.start)/1000, float64(p.w.end)/1000, offset)
		}
		n++
	}
	t.Logf("%s: %d cues in text tracks %v", what, n, tracks)
	if n < 2 {
		t.Errorf("%s: %d cues shown, want at least 2 (text tracks %v)", what, n, tracks)
	}
}
