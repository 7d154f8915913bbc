package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// llReport is what a test reads from `sluice play --json` (one session).
type llReport struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error"`
	Stalls  int    `json:"stalls"`
	Latency *struct {
		P50MS int64 `json:"p50_ms"`
		P95MS int64 `json:"p95_ms"`
	} `json:"latency"`
	LowLatency *struct {
		Active          bool   `json:"active"`
		Fallback        string `json:"fallback"`
		TargetMS        int64  `json:"target_ms"`
		Parts           int    `json:"parts"`
		PreloadHints    int    `json:"preload_hints"`
		BlockingReloads int    `json:"blocking_reloads"`
		DeltaUpdates    int    `json:"delta_updates"`
		ChunkedSegments int    `json:"chunked_segments"`
		Seconds         []struct {
			LatencyMS int64   `json:"latency_ms"`
			Rate      float64 `json:"rate"`
		} `json:"seconds"`
	} `json:"low_latency"`
}

// playOnce runs one `sluice play --json` session for d and returns its
// report.
func playOnce(t *testing.T, bin, url string, d time.Duration, extra ...string) (llReport, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d+60*time.Second)
	defer cancel()
	args := append([]string{"play", "--duration", d.String(), "--json", "--log-level", "warn"}, extra...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	runErr := cmd.Run()
	var r llReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Errorf("sluice play %v: %v, report %v\nstdout: %s\nstderr: %s", extra, runErr, err, stdout.String(), stderr)
	}
	return r, stderr.String()
}

// TestPlayLowLatency: `sluice play --low-latency` on the low-latency demo
// channel of `sluice serve --demo-chunk 500ms` (2 s fragments, 0.5 s
// parts, epoch-anchored), HLS and DASH for 15 s each, at the same time
// as a standard-mode session of each for comparison (logged, not
// asserted). The low-latency sessions must play without a stall, in
// low-latency mode (HLS: parts, preload hints, blocking reloads; DASH:
// segments read chunk by chunk), at a median latency under 3.5 s — a
// guard for a loaded machine; the measured figures are logged.
func TestPlayLowLatency(t *testing.T) {
	t.Parallel() // no browser
	root := repoRoot(t)
	tmp := t.TempDir()
	bin := buildSluice(t, root, tmp)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	serve := startProc(t, "sluice serve", filepath.Join(artifactsDir(t), "sluice-playll.log"), bin, "serve",
		"--listen", addr, "--data", filepath.Join(tmp, "data"), "--demo-chunk", "500ms")
	base := "http://" + addr + "/demo.isml/"
	waitHTTP(t, base+"master.m3u8", 45*time.Second, serve)
	waitUntil(t, 30*time.Second, "low-latency playlists", func() (bool, string) {
		_, m := fetch(t, base+"master.m3u8")
		for _, uri := range regexp.MustCompile(`tracks/[^"\s]+/media\.m3u8`).FindAllString(string(m), -1) {
			_, body := fetch(t, base+uri)
			if pl := parseLL(t, body); pl.segments < 3 || pl.partInf == "" {
				return false, uri + ":\n" + string(body)
			}
		}
		return true, ""
	})

	const d = 15 * time.Second
	runs := []struct {
		name, manifest string
		ll             bool
	}{
		{"HLS --low-latency", "master.m3u8", true},
		{"DASH --low-latency", "manifest.mpd", true},
		{"HLS standard", "master.m3u8", false},
		{"DASH standard", "manifest.mpd", false},
	}
	reports := make([]llReport, len(runs))
	logs := make([]string, len(runs))
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Go(func() {
			var extra []string
			if r.ll {
				extra = []string{"--low-latency"}
			}
			reports[i], logs[i] = playOnce(t, bin, base+r.manifest, d, extra...)
		})
	}
	wg.Wait()

	for i, r := range runs {
		rep := reports[i]
		if rep.Latency == nil {
			t.Errorf("%s: no latency (ok %v, error %q)\nstderr: %s", r.name, rep.OK, rep.Error, logs[i])
			continue
		}
		t.Logf("%s: latency p50 %d ms, p95 %d ms; %d stalls", r.name, rep.Latency.P50MS, rep.Latency.P95MS, rep.Stalls)
		if !r.ll {
			// A standard-mode player on a low-latency stream plays it as
			// a standard one (complete segments only): no stall.
			if !rep.OK || rep.Stalls != 0 {
				t.Errorf("%s: ok %v (%s), %d stalls (want 0)\nstderr: %s", r.name, rep.OK, rep.Error, rep.Stalls, logs[i])
			}
			continue
		}
		ll := rep.LowLatency
		if !rep.OK || ll == nil || !ll.Active {
			t.Errorf("%s: ok %v (%s), low latency %+v\nstderr: %s", r.name, rep.OK, rep.Error, ll, logs[i])
			continue
		}
		var rates []float64
		for _, s := range ll.Seconds {
			rates = append(rates, s.Rate)
		}
		t.Logf("%s: target %d ms; %d parts (%d preload-hinted), %d blocking reloads, %d delta updates, %d chunked segments; rates %v",
			r.name, ll.TargetMS, ll.Parts, ll.PreloadHints, ll.BlockingReloads, ll.DeltaUpdates, ll.ChunkedSegments, rates)
		if rep.Stalls != 0 || rep.Latency.P50MS > 3500 || len(ll.Seconds) < 10 {
			t.Errorf("%s: %d stalls (want 0), latency p50 %d ms (want <= 3500), %d per-second samples\nstderr: %s",
				r.name, rep.Stalls, rep.Latency.P50MS, len(ll.Seconds), logs[i])
		}
		if r.manifest == "master.m3u8" && (ll.Parts == 0 || ll.PreloadHints == 0 || ll.BlockingReloads == 0 || ll.DeltaUpdates == 0) {
			t.Errorf("%s: want parts, preload hints, blocking reloads and delta updates: %+v", r.name, ll)
		}
		if r.manifest == "manifest.mpd" && ll.ChunkedSegments == 0 {
			t.Errorf("%s: no segment read chunk by chunk", r.name)
		}
	}
}
