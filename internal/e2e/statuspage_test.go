package e2e

// statuspage_test.go: the status page of `sluice serve` in Chromium, as a new
// user sees it after starting the demo.

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pageReport is the output of web/test/page.mjs.
type pageReport struct {
	Text    string   `json:"text"`
	Readout string   `json:"readout"`
	Console []string `json:"console"`
}

// TestStatusPage: `sluice serve` with its demo, an asset imported by another
// process while it runs, and one player session. In Chromium the status page
// lists the imported asset without anyone having requested it, shows the
// cluster panel (the in-process sender with RAM used and pinned, hit ratio,
// refused look-aheads; the sessions), gives times of the epoch-anchored demo
// as wall-clock times, and dash.js plays the demo without logging "Invalid
// URL". The page is saved as statuspage.png in the artifacts.
func TestStatusPage(t *testing.T) {
	browserEnabled(t)
	requireTools(t, "node", "npm", "go")
	root := repoRoot(t)
	webDir := filepath.Join(root, "web")
	ensureNodeModules(t, webDir)
	art := artifactsDir(t)
	tmp := t.TempDir()
	bin := buildSluice(t, root, tmp)
	data := filepath.Join(tmp, "data")
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	serve := startProc(t, "sluice serve", filepath.Join(art, "sluice.log"), bin, "serve",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--data", data, "--player-dir", filepath.Join(webDir, "node_modules"))
	waitHTTP(t, base+"/", 30*time.Second, serve)

	// An asset imported by another process: on disk, requested by no one.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "import", "--quiet", "--data", data,
		filepath.Join(root, "testdata", "sample", "sample.mp4"), "later/imported").CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	// The live demo has fragments, and one session is open at the scheduler.
	waitVideoSegments(t, base+"/demo.isml/manifest.mpd", 3, 45*time.Second, serve)
	waitHTTP(t, base+"/s/demo/master.m3u8", 30*time.Second, serve)
	waitUntil(t, 30*time.Second, "the cluster panel reports the sender", func() (bool, string) {
		var s struct {
			Cluster *struct {
				Sessions int `json:"sessions"`
				Senders  []struct {
					ID string `json:"id"`
				} `json:"senders"`
			} `json:"cluster"`
		}
		resp, err := http.Get(base + "/status.json")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || s.Cluster == nil {
			return false, "no cluster in status.json"
		}
		return s.Cluster.Sessions > 0 && len(s.Cluster.Senders) > 0, "cluster " + strconv.Itoa(s.Cluster.Sessions) + " sessions"
	})

	shot := filepath.Join(art, "statuspage.png")
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel2()
	cmd := exec.CommandContext(ctx2, "node", filepath.Join(webDir, "test", "page.mjs"), base+"/", "12", "demo", "dash")
	cmd.Env = append(cmd.Environ(), "SLUICE_CHROMIUM="+chromiumPath(), "SLUICE_SCREENSHOT="+shot)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("page.mjs: %v\n%s", err, out)
	}
	var r pageReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("page.mjs output: %v\n%s", err, out)
	}
	t.Logf("page text:\n%s\nreadout:\n%s\nconsole (%d):\n%s", r.Text, r.Readout, len(r.Console), strings.Join(r.Console, "\n"))
	for _, want := range []string{
		"later/imported", "demo-vod", // listed without a request
		"Cluster", "session(s) at this scheduler", "RAM used / budget", "pinned", "RAM hit ratio", "refused look-aheads",
		"local", "MiB", // the in-process sender's row
		"newest fragment ends", " UTC", // wall-clock edge of the live demo
	} {
		if !strings.Contains(r.Text, want) {
			t.Errorf("the status page does not show %q", want)
		}
	}
	if m := regexp.MustCompile(`\b1[0-9]{9}(\.[0-9]+)? s\b`).FindString(r.Text); m != "" {
		t.Errorf("the status page shows epoch seconds (%q) instead of a wall-clock time", m)
	}
	if !strings.Contains(r.Readout, "(wall clock)") || strings.Contains(r.Readout, "currentTime") {
		t.Errorf("the player readout does not give the demo's position as a wall-clock time:\n%s", r.Readout)
	}
	for _, c := range r.Console {
		if strings.Contains(c, "Invalid URL") {
			t.Errorf("console: %s", c)
		}
	}
}
