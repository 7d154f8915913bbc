package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/testkit"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// ffprobeDuration returns the container duration ffprobe reports for url.
func ffprobeDuration(t *testing.T, url string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "format=duration",
		"-of", "default=noprint_wrappers=1:nokey=1", url).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", url, err, out)
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatalf("ffprobe %s: duration %q", url, out)
	}
	return d
}

// TestDistributionArchiveCut: a channel's archive is cut into on-demand
// assets through the admin API (token required) and with `sluice archive
// cut --data` next to the running origin; ffprobe plays each as VOD (from
// the origin and through a distribution server) with the duration of the
// range ±1 fragment.
func TestDistributionArchiveCut(t *testing.T) {
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	requireTools := func(tools ...string) {
		for _, tool := range tools {
			if _, err := exec.LookPath(tool); err != nil {
				t.Fatalf("%s is required (apt-get install ffmpeg)", tool)
			}
		}
	}
	requireTools("ffprobe", "ffmpeg")
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	data := filepath.Join(dir, "data")
	obase, op := distStartRole(t, bin, "origin", "origin.log", freePort(t),
		"--data", data, "--point", "ch", "--admin-token", "s3cret")
	// 40 s of channel, media time 0 to 40 s, pushed faster than real time.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "push", "--fast", "--epoch=false", "--loop", "--duration", "40s", "--quiet",
		testmedia.Sample(t), obase+"/ch.isml/Streams(ch)").CombinedOutput(); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	const fragment = 2.0 // the sample's GOP
	cut := func(token, body string) (int, map[string]any) {
		return testkit.PostJSON(t, obase+"/api/points/ch/cut", token, body)
	}
	if code, _ := cut("", `{"asset":"first","from":10,"to":30}`); code != http.StatusUnauthorized {
		t.Fatalf("cut without the token: %d", code)
	}
	code, res := cut("s3cret", `{"asset":"first","from":10,"to":30}`)
	if code != http.StatusCreated {
		t.Fatalf("cut: %d %v", code, res)
	}
	t.Logf("API cut [10, 30): %v", res)

	// The CLI, on the data directory of the running origin.
	out, err := exec.CommandContext(ctx, bin, "archive", "cut", "ch", "clips/second", "--from", "4", "--to", "12.5",
		"--data", data, "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("sluice archive cut: %v\n%s", err, out)
	}
	t.Logf("CLI cut [4, 12.5): %s", bytes.TrimSpace(out))
	if op.exited() {
		t.Fatalf("origin exited: %s", op.out)
	}

	dbase, _ := distStartRole(t, bin, "distribution", "distribution.log", freePort(t), "--origin", obase)
	for _, c := range []struct {
		asset string
		want  float64
		base  string
	}{
		{"first", 20, obase},
		{"first", 20, dbase},
		{"clips/second", 8.5, obase},
		{"clips/second", 8.5, dbase},
	} {
		for _, m := range []string{"manifest.mpd", "master.m3u8"} {
			u := c.base + "/" + c.asset + ".isml/" + m
			_, body := distGet(t, u)
			if m == "manifest.mpd" && !bytes.Contains(body, []byte(`type="static"`)) {
				t.Errorf("%s is not static:\n%s", u, body)
			}
			if m == "master.m3u8" {
				first := regexp.MustCompile(`(?m)^tracks/.*\.m3u8$`).Find(body)
				if _, media := distGet(t, c.base+"/"+c.asset+".isml/"+string(first)); !bytes.Contains(media, []byte("#EXT-X-ENDLIST")) {
					t.Errorf("%s: media playlist without ENDLIST", u)
				}
			}
			d := ffprobeDuration(t, u)
			t.Logf("%s: ffprobe duration %.3f s (range %.1f s)", u, d, c.want)
			if d < c.want-fragment || d > c.want+fragment {
				t.Errorf("%s: duration %.3f s, want %.1f ± %.0f", u, d, c.want, fragment)
			}
		}
	}
	if frames := decodeAll(t, dbase+"/first.isml/master.m3u8"); frames < 20*20 {
		t.Errorf("decoded %d video frames of the 20 s asset", frames)
	}
}

// TestDistributionRetentionDVR: with an archive retention shorter than the
// DVR window, the live manifest's window shrinks inside the retention (less
// a grace period), so no manifest ever lists a fragment that retention has
// deleted: every listed fragment, the oldest included, is served, from the
// origin and through a distribution server, while the disk holds only the
// retention.
func TestDistributionRetentionDVR(t *testing.T) {
	longTest(t)
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	data := filepath.Join(dir, "data")
	conf := filepath.Join(dir, "origin.yaml")
	os.WriteFile(conf, []byte("dvr_window: 2m\npoints:\n  - name: ret\n    archive: 16s\n"), 0o644)
	obase, op := distStartRole(t, bin, "origin", "origin.log", freePort(t), "--data", data, "--config", conf)
	distPush(t, bin, obase, "ret")
	dbase, _ := distStartRole(t, bin, "distribution", "distribution.log", freePort(t), "--origin", obase)
	waitVideoSegments(t, obase+"/ret.isml/manifest.mpd", 2, 30*time.Second, op)

	deadline := time.Now().Add(28 * time.Second)
	checked, maxListed := 0, 0
	for time.Now().Before(deadline) {
		for _, base := range []string{obase, dbase} {
			_, mpd := distGet(t, base+"/ret.isml/manifest.mpd")
			if !bytes.Contains(mpd, []byte(`timeShiftBufferDepth="PT8S"`)) {
				t.Fatalf("%s: DVR window not cut to the retention (16 s - grace = 8 s):\n%s", base, mpd)
			}
			segs := segmentURLs(t, base+"/ret.isml/")
			if n, _ := videoSegments(mpd); n > maxListed {
				maxListed = n
			}
			// The oldest listed fragment of each track is the one retention
			// reaches first.
			seen := map[string]bool{}
			for _, u := range segs {
				track := u[:strings.LastIndexByte(u, '/')]
				if seen[track] {
					continue
				}
				seen[track] = true
				if code, _ := distGet(t, u); code != 200 {
					t.Fatalf("listed fragment %s: status %d", u, code)
				}
				checked++
			}
		}
		time.Sleep(700 * time.Millisecond)
	}
	pruned := distMetric(t, obase, "sluice_fragments_pruned_total")
	files := 0
	filepath.Walk(filepath.Join(data, "ret"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".m4s") {
			files++
		}
		return nil
	})
	tracks := 3
	t.Logf("checked %d oldest-listed fragments, all 200; at most %d video segments listed; %.0f fragments pruned; %d fragment files on disk",
		checked, maxListed, pruned, files)
	if pruned == 0 {
		t.Error("retention pruned nothing")
	}
	if maxListed > 8/2+2 {
		t.Errorf("%d video segments listed in an 8 s window", maxListed)
	}
	// Retention 16 s, pruned every 10 s: at most about 26 s per track.
	if limit := tracks * (26/2 + 2); files > limit {
		t.Errorf("%d fragment files on disk, want at most %d", files, limit)
	}
	_ = fmt.Sprint
}
