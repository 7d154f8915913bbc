package e2e

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestPlayLatency: `sluice play` reports how far behind live it plays (the
// wall clock minus the time the manifest maps the frame at its playhead
// to: a dynamic MPD's availabilityStartTime, HLS EXT-X-PROGRAM-DATE-TIME)
// for the demo channel of `sluice serve`, in DASH and HLS (standard mode,
// 2 s fragments). The figures are logged; the check is only that they are
// there and plausible (between one fragment and 20 s), since a latency on
// a shared machine is a measurement, not a pass mark.
func TestPlayLatency(t *testing.T) {
	t.Parallel() // no browser
	root := repoRoot(t)
	tmp := t.TempDir()
	bin := buildSluice(t, root, tmp)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	serve := startProc(t, "sluice serve", filepath.Join(artifactsDir(t), "sluice.log"), bin, "serve",
		"--listen", addr, "--data", filepath.Join(tmp, "data"))
	base := "http://" + addr
	waitVideoSegments(t, base+"/demo.isml/manifest.mpd", 3, 45*time.Second, serve)
	for _, f := range []string{"manifest.mpd", "master.m3u8"} {
		agg := distPlay(t, bin, base+"/demo.isml/"+f, 2, 12*time.Second)
		t.Logf("%s: latency p50 %d ms, p95 %d ms; %d stalls", f, agg.LatencyP50MS, agg.LatencyP95MS, agg.Stalls)
		if agg.SessionsOK != 2 || agg.LatencyP50MS < 2000 || agg.LatencyP95MS > 20000 {
			t.Errorf("%s: %d/2 sessions ok, latency p50 %d ms p95 %d ms (want a figure between 2 s and 20 s)",
				f, agg.SessionsOK, agg.LatencyP50MS, agg.LatencyP95MS)
		}
	}
}
