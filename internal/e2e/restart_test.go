package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/ingest"
	"github.com/sluice-media/sluice/internal/store"
)

// readmeArgs is the README's ffmpeg push (one H.264 rendition and AAC as
// Smooth ismv), with the tone's frequency as given, so that every encoder
// session sends other bytes; seconds > 0 adds -t.
func readmeArgs(pushURL string, tone, seconds int) []string {
	args := []string{"ffmpeg", "-hide_banner", "-loglevel", "warning", "-nostdin",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-re", "-f", "lavfi", "-i", "sine=sample_rate=48000:frequency=" + strconv.Itoa(tone),
		"-c:v", "libx264", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-b:v", "800k",
		"-c:a", "aac", "-b:a", "128k", "-avoid_negative_ts", "make_non_negative"}
	if seconds > 0 {
		args = append(args, "-t", strconv.Itoa(seconds))
	}
	return append(args, "-f", "ismv", "-movflags", "isml+frag_keyframe", pushURL)
}

// stallEpisodes counts the runs of consecutive one-second samples in which
// currentTime advanced less than 0.2 s while at or after from (a media
// time): stalls well before the restart (a player's start on a loaded
// machine) are not the restart's.
func stallEpisodes(r playResult, from float64) int {
	n, in := 0, false
	for i := 1; i < len(r.Samples); i++ {
		stalled := r.Samples[i].T-r.Samples[i-1].T < 0.2 && r.Samples[i].T >= from
		if stalled && !in {
			n++
		}
		in = stalled
	}
	return n
}

// restartManifest reads the point's StreamManifest.
func restartManifest(t *testing.T, base string) ingest.StreamManifest {
	t.Helper()
	resp, err := http.Get(base + "/live.isml/StreamManifest")
	if err != nil {
		t.Fatal(err)
	}
	var sm ingest.StreamManifest
	if err := json.Unmarshal(readAll(resp), &sm); err != nil {
		t.Fatal(err)
	}
	return sm
}

// metricValue sums the samples of a metric whose line contains every
// fragment given (e.g. `status="200"`) in the /metrics text.
func metricValue(t *testing.T, base, name string, with ...string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
next:
	for _, l := range strings.Split(string(readAll(resp)), "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		for _, w := range with {
			if !strings.Contains(l, w) {
				continue next
			}
		}
		if f := strings.Fields(l); len(f) == 2 {
			v, _ := strconv.ParseFloat(f[1], 64)
			sum += v
		}
	}
	return sum
}

// TestEncoderRestartPlayers is the encoder lifecycle of docs/ingest.md with the real
// encoder and the real players: ffmpeg pushes the README's command into
// `sluice serve`; dash.js and hls.js, then Shaka Player (DASH and HLS), play
// it while the encoder is killed (kill -9) and started again, its times
// from zero; every player goes on across the restart with at most one
// stall. The last encoder then ends normally (SIGINT: the empty mfra, which
// counts as a successful push), and a push to the ended point — the
// operator's "let it end, push again" — is kept too: the archive holds all
// four sessions, on one timeline with three restart boundaries (four DASH
// Periods, three HLS discontinuities in every playlist).
func TestEncoderRestartPlayers(t *testing.T) {
	longTest(t)
	b := setupBrowser(t, "ffmpeg")
	webDir, art, tmp, bin := b.webDir, b.art, b.tmp, b.bin

	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	data := filepath.Join(tmp, "data")
	serve := startProc(t, "sluice serve", filepath.Join(art, "sluice.log"), bin, "serve",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--data", data,
		"--no-demo", "--point", "live", "--player-dir", filepath.Join(webDir, "node_modules"))
	waitHTTP(t, base+"/", 30*time.Second, serve)
	push := base + "/live.isml/Streams(live)"
	first := startProc(t, "ffmpeg 1", filepath.Join(art, "ffmpeg-1.log"), readmeArgs(push, 440, 0)...)
	waitVideoSegments(t, base+"/live.isml/manifest.mpd", 3, 60*time.Second, first, serve)

	// Two players at a time (four browsers and three encoders are more
	// than a loaded 2-core machine plays smoothly), each pair across an
	// encoder that dies without a word (kill -9, no mfra) and comes back at
	// once with its times from zero.
	encoder := first
	tone := 1000
	var boundaries []float64
	for round, pair := range [][]struct{ name, kind, manifest string }{
		{{"dash.js", "dash", "manifest.mpd"}, {"hls.js", "hls", "master.m3u8"}},
		{{"shaka-dash", "shaka", "manifest.mpd"}, {"shaka-hls", "shaka", "master.m3u8"}},
	} {
		const sampled = 40
		results := make([]playResult, len(pair))
		errs := make([]error, len(pair))
		var wg sync.WaitGroup
		launched := time.Now()
		started := make([]string, len(pair))
		finished := make([]atomic.Bool, len(pair))
		for i, p := range pair {
			started[i] = filepath.Join(tmp, fmt.Sprintf("started-%d-%d", round, i))
			wg.Add(1)
			go func() {
				defer wg.Done()
				var stderr string
				results[i], stderr, errs[i] = playIn(playEnv{env: []string{"SLUICE_STARTUP_SECS=60", "SLUICE_STARTED_FILE=" + started[i]}}, webDir,
					base+"/live.isml/"+p.manifest, p.kind, sampled, 1, filepath.Join(art, "screenshot-"+p.name+".png"))
				finished[i].Store(true)
				os.WriteFile(filepath.Join(art, "play-"+p.name+".stderr"), []byte(stderr), 0o644)
				if b, err := json.Marshal(results[i]); err == nil {
					os.WriteFile(filepath.Join(art, "play-"+p.name+".json"), b, 0o644)
				}
			}()
		}
		// The encoder dies once both players play (a loaded machine may take
		// tens of seconds to start a browser) and have a few seconds of
		// buffer; a player that never starts is reported by its result.
		waitUntil(t, 75*time.Second, "both players playing", func() (bool, string) {
			for i, f := range started {
				if _, err := os.Stat(f); err != nil && !finished[i].Load() {
					return false, pair[i].name + " has not started"
				}
			}
			return true, ""
		})
		time.Sleep(5 * time.Second)
		killed := time.Now()
		if err := syscall.Kill(-encoder.cmd.Process.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-encoder.done
		encoder = startProc(t, fmt.Sprintf("ffmpeg %d", round+2), filepath.Join(art, fmt.Sprintf("ffmpeg-%d.log", round+2)),
			readmeArgs(push, tone, 0)...)
		tone += 200
		for deadline := time.Now().Add(40 * time.Second); ; {
			if sm := restartManifest(t, base); len(sm.Restarts) == round+1 {
				boundaries = append(boundaries, float64(sm.Restarts[round].StartNs)/1e9)
				break
			}
			if encoder.exited() || time.Now().After(deadline) {
				t.Fatalf("no restart recorded %v after the kill (ffmpeg exited %v):\n%s", time.Since(killed), encoder.exited(), serve.out)
			}
			time.Sleep(200 * time.Millisecond)
		}
		boundary := boundaries[round]
		t.Logf("restart %d placed %v after the kill (players launched %v before it); the new session starts at %.3f s",
			round+1, time.Since(killed).Round(time.Millisecond), killed.Sub(launched).Round(time.Second), boundary)
		wg.Wait()
		for i, p := range pair {
			if errs[i] != nil {
				t.Errorf("%s: %v", p.name, errs[i])
				continue
			}
			r := results[i]
			stalls := stallEpisodes(r, boundary-10)
			t.Logf("%s: %s; stall episodes from 10 s before the restart on: %d", p.name, r.summary(), stalls)
			for _, e := range r.Errors {
				t.Logf("%s player error: %s", p.name, e)
			}
			switch {
			case !r.OK || len(r.Errors) > 0:
				t.Errorf("%s failed: %s", p.name, r.Failure)
			case r.StartTime >= boundary:
				t.Errorf("%s started playing at %.2f s, after the restart at %.2f s (startup too slow to test it)", p.name, r.StartTime, boundary)
			case r.EndTime < boundary+8:
				t.Errorf("%s did not go on across the restart: it ended at %.2f s, the new session starts at %.2f s", p.name, r.EndTime, boundary)
			case stalls > 1:
				t.Errorf("%s stalled %d times around and after the restart, want at most one", p.name, stalls)
			}
		}
	}
	second := encoder

	// The second encoder ends normally (q / SIGINT: the empty mfra, then it
	// closes without reading the answer), the point ends; a third push to
	// the ended point starts again from zero.
	syscall.Kill(second.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-second.done:
	case <-time.After(20 * time.Second):
		t.Fatal("ffmpeg did not stop on SIGINT")
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(base + "/live.isml/manifest.mpd")
		if err == nil && strings.Contains(string(readAll(resp)), `type="static"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the point did not end after the encoder's end of stream")
		}
		time.Sleep(200 * time.Millisecond)
	}
	third := startProc(t, "ffmpeg 4", filepath.Join(art, "ffmpeg-4.log"), readmeArgs(push, 660, 6)...)
	select {
	case <-third.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the third push did not end")
	}
	if third.err != nil {
		t.Fatalf("ffmpeg 4: %v\n%s", third.err, third.out)
	}

	sm := restartManifest(t, base)
	if len(sm.Restarts) != 3 {
		t.Fatalf("%d restarts recorded, want 3: %+v", len(sm.Restarts), sm.Restarts)
	}
	mpd := string(readAll(mustGet(t, base+"/live.isml/manifest.mpd")))
	if n := strings.Count(mpd, "<Period "); n != 4 || !strings.Contains(mpd, `type="static"`) {
		t.Errorf("final MPD: %d Periods (want 4), static %v", n, strings.Contains(mpd, `type="static"`))
	}
	// The archive holds all four sessions, each placed after the one
	// before.
	st, err := store.OpenShared(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.Point("live")
	if err != nil {
		t.Fatal(err)
	}
	v := p.View(0)
	for _, tv := range v.Tracks {
		sessions := make([]int, 4)
		for _, f := range tv.Frags {
			k := 0
			for _, r := range sm.Restarts {
				if f.Start >= r.Ends[tv.ID] {
					k++
				}
			}
			sessions[k]++
		}
		pl := string(readAll(mustGet(t, base+"/live.isml/tracks/"+tv.ID+"/media.m3u8")))
		t.Logf("%s: fragments per session %v, %d HLS discontinuities", tv.ID, sessions, strings.Count(pl, "#EXT-X-DISCONTINUITY\n"))
		if sessions[0] < 8 || sessions[1] < 8 || sessions[2] < 8 || sessions[3] < 2 {
			t.Errorf("%s: fragments per session %v: a session is missing", tv.ID, sessions)
		}
		if n := strings.Count(pl, "#EXT-X-DISCONTINUITY\n"); n != 3 {
			t.Errorf("%s: %d HLS discontinuities, want 3", tv.ID, n)
		}
	}
	// The normal ends (the third and fourth encoders) are
	// successful pushes; only the killed ones are errors.
	if n := metricValue(t, base, "sluice_ingest_pushes_total", `status="200"`); n != 2 {
		t.Errorf("successful pushes: %v, want 2", n)
	}
	if n := metricValue(t, base, "sluice_ingest_errors_total"); n != 2 {
		t.Errorf("ingest errors: %v, want 2 (the killed encoders)", n)
	}
	if n := metricValue(t, base, "sluice_encoder_restarts_total", `policy="continue"`); n != 3 {
		t.Errorf("restarts counted: %v, want 3", n)
	}
	if t.Failed() {
		t.Logf("artifacts in %s", art)
	}
}

func mustGet(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return resp
}
