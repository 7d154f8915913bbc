// Package e2e holds end-to-end tests that run the real sluice binary with
// real encoders and players.
//
// browser_test.go is the browser acceptance test: ffmpeg pushes a live
// channel into `sluice serve`, and Debian's Chromium, driven by
// playwright-core (web/test/play.mjs), plays the origin's output with dash.js
// (DASH), dash.js with its MSS module (Smooth Streaming) and hls.js (HLS),
// each for about 25 s; currentTime must advance by at least 20 s with no
// player error. Screenshots and logs are kept under
// $SLUICE_E2E_ARTIFACTS (default: the test's temporary directory).
//
// Requirements: /usr/bin/chromium (or SLUICE_CHROMIUM), ffmpeg, node and
// npm; web/node_modules is installed with `npm ci` when missing. The test
// fails when a tool is missing; SLUICE_E2E_BROWSER=0 skips it.
// SLUICE_E2E_BROWSER_STATIC=1 also runs TestBrowserStaticHarness, which
// checks the harness itself against a DASH/HLS set and a Smooth set written by
// ffmpeg and served by a plain file server (no Sluice origin involved).
package e2e

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/webui"
)

const (
	playSeconds = 25 // how long each player is sampled
	minAdvance  = 20 // currentTime must advance at least this much
)

// artifactsDir is where screenshots and process logs go.
func artifactsDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("SLUICE_E2E_ARTIFACTS"); d != "" {
		d = filepath.Join(d, t.Name())
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// ffmpegLiveArgs is the live push of the acceptance test: two H.264
// renditions (640x360 at 800 kbit/s, 320x180 at 300 kbit/s) with 2 s GOPs and
// one AAC track, as Smooth/ismv over one long HTTP POST.
func ffmpegLiveArgs(pushURL string) []string {
	return []string{
		"ffmpeg", "-hide_banner", "-loglevel", "warning", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
		"-filter_complex", "[0:v]split=2[a][b];[b]scale=320:180[b2]",
		"-map", "[a]", "-map", "[b2]", "-map", "1:a",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-b:v:0", "800k", "-b:v:1", "300k", "-c:a", "aac", "-b:a", "128k",
		"-avoid_negative_ts", "make_non_negative",
		"-f", "ismv", "-movflags", "isml+frag_keyframe", pushURL,
	}
}

// TestBrowserLive is the acceptance test: real Chromium plays the live DASH,
// Smooth and HLS output of `sluice serve` fed by a live ffmpeg push.
func TestBrowserLive(t *testing.T) {
	t0 := time.Now()
	b := setupBrowser(t, "ffmpeg")
	webDir, art, tmp, bin := b.webDir, b.art, b.tmp, b.bin
	t.Logf("setup (npm): %v", time.Since(t0).Round(time.Millisecond))

	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	serve := startProc(t, "sluice serve", filepath.Join(art, "sluice.log"), bin, "serve",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--data", filepath.Join(tmp, "data"),
		"--no-demo", "--point", "live", "--player-dir", filepath.Join(webDir, "node_modules"))
	waitHTTP(t, base+"/", 30*time.Second, serve)

	ffmpeg := startProc(t, "ffmpeg", filepath.Join(art, "ffmpeg.log"), ffmpegLiveArgs(base+"/live.isml/Streams(live)")...)

	// Wait until the DASH manifest lists at least three video fragments.
	t1 := time.Now()
	mpdBody := waitVideoSegments(t, base+"/live.isml/manifest.mpd", 3, 60*time.Second, ffmpeg, serve)
	t.Logf("channel live after %v", time.Since(t1).Round(time.Millisecond))
	os.WriteFile(filepath.Join(art, "manifest-start.mpd"), mpdBody, 0o644)

	// The three players and the status page play at once, each in its own
	// browser (as viewers do), in about the time of one.
	plays := []struct{ kind, target, shot string }{
		{"dash", base + "/live.isml/manifest.mpd", "screenshot-dash.png"},
		{"mss", base + "/live.isml/Manifest", "screenshot-mss.png"},
		{"hls", base + "/live.isml/master.m3u8", "screenshot-hls.png"},
		// The status page itself: its button plays the channel with dash.js.
		{"dash", base + "/#live", "screenshot-status-page.png"},
	}
	type outcome struct {
		r      playResult
		stderr string
		err    error
		took   time.Duration
	}
	outs := make([]outcome, len(plays))
	var wg sync.WaitGroup
	for i, p := range plays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			r, stderr, err := playIn(playEnv{}, webDir, p.target, p.kind, playSeconds, minAdvance, filepath.Join(art, p.shot))
			outs[i] = outcome{r, stderr, err, time.Since(start)}
		}()
	}
	wg.Wait()
	if ffmpeg.exited() || serve.exited() {
		t.Fatalf("a process ended mid-test: ffmpeg exited=%v (%v), sluice exited=%v (%v)\nffmpeg:\n%s\nsluice:\n%s",
			ffmpeg.exited(), ffmpeg.err, serve.exited(), serve.err, ffmpeg.out, serve.out)
	}
	for i, p := range plays {
		o := outs[i]
		if o.err != nil {
			t.Errorf("%s: %v\n%s", p.target, o.err, o.stderr)
			continue
		}
		t.Logf("%s (%s) played in %v", p.kind, p.target, o.took.Round(time.Millisecond))
		checkPlay(t, o.r, minAdvance)
	}
	if t.Failed() {
		saveManifests(t, base, art, "players")
	}
	if t.Failed() {
		t.Logf("artifacts (screenshots, logs, manifests) in %s", art)
	}
}

// saveManifests writes the current manifests next to the screenshots, for
// diagnosis after a failure.
func saveManifests(t *testing.T, base, dir, tag string) {
	for _, m := range []string{"manifest.mpd", "Manifest", "master.m3u8"} {
		resp, err := http.Get(base + "/live.isml/" + m)
		if err != nil {
			continue
		}
		body := readAll(resp)
		name := filepath.Join(dir, fmt.Sprintf("after-%s-%s.txt", tag, m))
		os.WriteFile(name, body, 0o644)
	}
	t.Logf("manifests after the %s run saved in %s", tag, dir)
}

// TestBrowserStaticHarness checks the browser harness itself (npm players,
// the status page's /play page, play.mjs, Chromium) against an on-demand
// DASH/HLS set and a Smooth Streaming set written by ffmpeg and served by
// http.FileServer. It runs only
// with SLUICE_E2E_BROWSER_STATIC=1: it says nothing about the origin, but
// tells a harness problem apart from an origin problem.
func TestBrowserStaticHarness(t *testing.T) {
	browserEnabled(t)
	if os.Getenv("SLUICE_E2E_BROWSER_STATIC") != "1" {
		t.Skip("set SLUICE_E2E_BROWSER_STATIC=1 to check the browser harness against static content")
	}
	requireTools(t, "ffmpeg", "node", "npm")
	root := repoRoot(t)
	webDir := filepath.Join(root, "web")
	ensureNodeModules(t, webDir)
	art := artifactsDir(t)

	media := filepath.Join(t.TempDir(), "vod")
	if err := os.MkdirAll(media, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
		"-t", "24", "-map", "0:v", "-map", "1:a",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-b:v", "800k",
		"-c:a", "aac", "-b:a", "128k",
		"-f", "dash", "-seg_duration", "2", "-use_template", "1", "-use_timeline", "1", "-hls_playlist", "1",
		filepath.Join(media, "manifest.mpd"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg -f dash: %v\n%s", err, out)
	}
	smooth := filepath.Join(t.TempDir(), "smooth")
	cmd = exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
		"-t", "24", "-map", "0:v", "-map", "1:a",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-b:v", "800k",
		"-c:a", "aac", "-b:a", "128k",
		"-f", "smoothstreaming", "-min_frag_duration", "2000000", smooth+"/")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg -f smoothstreaming: %v\n%s", err, out)
	}
	fixSmoothManifest(t, smooth)
	st, err := store.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/static/", http.StripPrefix("/static/", http.FileServer(http.Dir(media))))
	mux.Handle("/smooth/", http.StripPrefix("/smooth/", http.FileServer(http.Dir(smooth))))
	mux.Handle("/", webui.New(st, filepath.Join(webDir, "node_modules"), nil))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	for _, kind := range []struct{ kind, manifest string }{
		{"dash", "/static/manifest.mpd"},
		{"hls", "/static/master.m3u8"},
		{"mss", "/smooth/Manifest"},
	} {
		r := runPlay(t, webDir, srv.URL+kind.manifest, kind.kind, 10, 8, filepath.Join(art, "static-"+kind.kind+".png"))
		checkPlay(t, r, 8)
	}
}

// readAll reads a response body (at most 8 MiB) and closes it.
func readAll(resp *http.Response) []byte {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return b
}
