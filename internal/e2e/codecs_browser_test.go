package e2e

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	dashmpd "github.com/Eyevinn/dash-mpd/mpd"
)

// TestCodecsBrowser: Debian's Chromium asked through
// MediaSource.isTypeSupported accepts the AV1, Opus and AAC codec strings
// Sluice announces (it has no HEVC, AC-3 or E-AC-3 decoder: those answers
// are logged, not required), dash.js plays AV1 video with Opus audio on
// demand (an imported file, to its end), and dash.js, hls.js and Shaka
// Player play them live (ffmpeg encoding and pushing CMAF in real time).
// The four browsers run at once. One player on demand is enough: the
// imported asset's init segments and fragments are the ones every player
// would fetch, and its codec strings come from the same track descriptions
// and manifest renderers as the live channel's, which all three players
// parse and decode.
func TestCodecsBrowser(t *testing.T) {
	b := setupBrowser(t, "ffmpeg", "ffprobe")
	hevcMP4, av1MP4 := codecSources(t, b.tmp, 8)
	data := filepath.Join(b.tmp, "data")
	runAll(t, 2, [][]string{
		{b.bin, "import", "--quiet", "--data", data, hevcMP4, "vod-hevc"},
		{b.bin, "import", "--quiet", "--data", data, av1MP4, "vod-av1"},
	})
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	serve := startProc(t, "sluice serve", filepath.Join(b.art, "sluice.log"), b.bin, "serve",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--data", data,
		"--no-demo", "--point", "live", "--player-dir", filepath.Join(b.webDir, "node_modules"))
	waitHTTP(t, base+"/", 30*time.Second, serve)

	cmaf := "cmaf+empty_moov+separate_moof+default_base_moof+frag_discont"
	ffmpeg := startProc(t, "ffmpeg", filepath.Join(b.art, "ffmpeg.log"), "env", "SVT_LOG=1", "ffmpeg",
		"-hide_banner", "-nostdin", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-re", "-f", "lavfi", "-i", "sine=r=48000", "-t", "180",
		"-c:v", "libsvtav1", "-preset", "12", "-g", "25", "-b:v", "300k", "-c:a", "libopus", "-ac", "2", "-b:a", "64k",
		"-map", "0:v", "-f", "mp4", "-movflags", cmaf+"+frag_keyframe", base+"/live.isml/Streams(video.cmfv)",
		"-map", "1:a", "-f", "mp4", "-movflags", cmaf, "-frag_duration", "1000000", base+"/live.isml/Streams(audio.cmfa)")

	// The codec strings Sluice announces for the imported files.
	var types []string
	for _, asset := range []string{"vod-hevc", "vod-av1"} {
		_, body := get(t, base+"/"+asset+".isml/manifest.mpd")
		m, err := dashmpd.ReadFromString(string(body))
		if err != nil {
			t.Fatalf("%s: %v", asset, err)
		}
		for _, as := range m.Periods[0].AdaptationSets {
			for _, r := range as.Representations {
				types = append(types, as.MimeType+`; codecs="`+r.Codecs+`"`)
			}
		}
	}

	type outcome struct {
		r      playResult
		stderr string
		err    error
	}
	plays := func(tag string, targets [][2]string, seconds, min int, args ...string) []outcome {
		outs := make([]outcome, len(targets))
		var wg sync.WaitGroup
		for i, p := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pe := playEnv{env: []string{"SLUICE_STARTUP_SECS=60"}, args: args}
				outs[i].r, outs[i].stderr, outs[i].err = playIn(pe, b.webDir, p[1], p[0], seconds, min,
					filepath.Join(b.art, "screenshot-"+tag+"-"+p[0]+".png"))
			}()
		}
		wg.Wait()
		return outs
	}
	check := func(targets [][2]string, outs []outcome, min int) {
		for i, o := range outs {
			if o.err != nil {
				t.Errorf("%s %s: %v\n%s", targets[i][0], targets[i][1], o.err, o.stderr)
				continue
			}
			t.Logf("%s %s:", targets[i][0], targets[i][1])
			checkPlay(t, o.r, float64(min))
		}
	}

	// The live channel has a few segments: all four browsers at once.
	waitVideoSegments(t, base+"/live.isml/manifest.mpd", 3, 60*time.Second, ffmpeg, serve)
	var vodOuts, liveOuts []outcome
	vod := [][2]string{
		{"dash", base + "/vod-av1.isml/manifest.mpd"},
	}
	live := [][2]string{
		{"dash", base + "/live.isml/manifest.mpd"},
		{"hls", base + "/live.isml/master.m3u8"},
		{"shaka", base + "/live.isml/manifest.mpd"},
	}
	// The on-demand plays also ask isTypeSupported (the first one's answers
	// are checked: the same browser answers the same).
	typesJSON, err := json.Marshal(types)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		vodOuts = plays("vod", vod, 20, 3, "--until-ended", "--mse-types="+string(typesJSON))
	}()
	go func() { defer wg.Done(); liveOuts = plays("live", live, 6, 4) }()
	wg.Wait()

	if vodOuts[0].err != nil {
		t.Fatalf("dash.js on demand: %v\n%s", vodOuts[0].err, vodOuts[0].stderr)
	}
	mse := vodOuts[0].r.TypeSupported
	for _, typ := range types {
		ok, asked := mse[typ]
		t.Logf("MediaSource.isTypeSupported(%s) = %v", typ, ok)
		required := bytes.Contains([]byte(typ), []byte(`"av01.`)) || bytes.Contains([]byte(typ), []byte(`"Opus"`)) ||
			bytes.Contains([]byte(typ), []byte(`"mp4a.`))
		if !asked || (required && !ok) {
			t.Errorf("Chromium does not accept %s", typ)
		}
	}
	check(vod, vodOuts, 3) // to the end (--until-ended), however late sampling began
	check(live, liveOuts, 4)
	if ffmpeg.exited() || serve.exited() {
		t.Fatalf("a process ended mid-test: ffmpeg %v, sluice %v\n%s\n%s", ffmpeg.err, serve.err, ffmpeg.out, serve.out)
	}
	if t.Failed() {
		t.Logf("artifacts (screenshots, logs) in %s", b.art)
	}
}
