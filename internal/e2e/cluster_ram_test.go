package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestClusterRAMResidency is the RAM residency acceptance test of the
// scheduler (docs/cluster.md): on-demand content totalling ten times the senders'
// combined RAM budget, 50 `sluice play` sessions at staggered positions
// spread over all of it, one scheduler and three senders (R = 2). With
// look-ahead every segment request must be served from RAM, as the senders
// count it; the same load with reservations off (--no-pins: the senders are
// plain LRU caches, admitting on a miss) is measured for comparison. Both
// ratios are logged and written to ram-residency.txt in the artifacts.
func TestClusterRAMResidency(t *testing.T) {
	longTest(t)
	ffmpeg := requireFFmpeg(t)
	root := repoRoot(t)
	tmp := t.TempDir()
	art := artifactsDir(t)
	t0 := time.Now()
	bin := buildSluice(t, root, tmp)

	const (
		sessions  = 50
		assetSecs = 600              // one asset: 10 min of 2 s fragments
		ramPerSnd = 4 << 20          // RAM budget of each sender
		combined  = 3 * ramPerSnd    // of the three
		content   = 10 * combined    // what the assets must total at least
		playFor   = 16 * time.Second // each session plays this long
		ramp      = 3 * time.Second  // session starts spread over this
		segment   = 2 * time.Second  // fragment duration (GOP)
	)

	// One low-bitrate asset (100 kbit/s CBR video at 5 frames/s, 16 kbit/s
	// AAC at 8 kHz: cheap to encode), imported under as many names as the
	// content needs: every name is a distinct set of blocks to the cluster.
	mp4 := filepath.Join(tmp, "asset.mp4")
	cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc=size=128x72:rate=5", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000",
		"-t", fmt.Sprint(assetSecs), "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-keyint_min", "10", "-sc_threshold", "0",
		"-b:v", "100k", "-maxrate", "100k", "-bufsize", "200k", "-x264-params", "nal-hrd=cbr", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "16k", mp4)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	t.Logf("built and encoded in %v", time.Since(t0).Round(time.Millisecond))
	fi, err := os.Stat(mp4)
	if err != nil {
		t.Fatal(err)
	}
	nAssets := int(content/fi.Size()) + 1
	data := shmDir(t, "origin")
	var imports [][]string
	for i := 0; i < nAssets; i++ {
		imports = append(imports, []string{bin, "import", "--data", data, mp4, fmt.Sprintf("vod%02d", i)})
	}
	runAll(t, 4, imports)
	var total int64
	filepath.Walk(data, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(p, ".m4s") {
			total += info.Size()
		}
		return nil
	})
	t.Logf("content: %d assets of %d s, %.1f MB of fragments = %.1f × the senders' combined RAM (%d MB); setup %v",
		nAssets, assetSecs, float64(total)/1e6, float64(total)/float64(combined), combined>>20, time.Since(t0).Round(time.Millisecond))
	if total < content {
		t.Fatalf("content %d bytes < 10 × RAM %d", total, content)
	}

	var senders []*clSender
	for i := 0; i < 3; i++ {
		senders = append(senders, startClSender(t, bin, fmt.Sprintf("sender-%d", i), shmDir(t, fmt.Sprintf("s%d", i)),
			"--ram", fmt.Sprint(ramPerSnd)))
	}
	var loads [][]string
	for i := 0; i < nAssets; i++ {
		loads = append(loads, []string{bin, "sender-load", "--senders", senderList(senders), "--replicas", "2",
			"--cluster-secret", e2eClusterSecret, "--concurrency", "8", data, fmt.Sprintf("vod%02d", i)})
	}
	runAll(t, 4, loads)
	t.Logf("loaded into the senders after %v", time.Since(t0).Round(time.Millisecond))
	originBase, _ := startOrigin(t, bin, data)
	t.Logf("cluster up after %v", time.Since(t0).Round(time.Millisecond))

	// Session i plays asset i%nAssets from slot i/nAssets: the slots of an
	// asset are evenly apart, so no two sessions share a block.
	perAsset := (sessions + nAssets - 1) / nAssets
	run := func(name string, schedArgs ...string) (ram, disk int64, agg clPlayAggregate) {
		t.Helper()
		sched := startClSched(t, bin, "scheduler-"+name, originBase,
			append([]string{"--senders", senderList(senders)}, schedArgs...)...)
		var n atomic.Int64
		redir := redirector(t, sched.base, func(string) string {
			i := int(n.Add(1) - 1)
			slot := (i / nAssets) % perAsset
			pos := slot * (assetSecs / perAsset) / 2 * 2
			return fmt.Sprintf("/s/vod%02d/master.m3u8?start=%d", i%nAssets, pos)
		})
		r0, d0, _ := sendTotals(t, senders)
		p := startClPlay(t, bin, "--sessions", fmt.Sprint(sessions), "--ramp", ramp.String(),
			"--duration", playFor.String(), "--buffer", "6", redir+"/next.m3u8")
		agg, _ = p.wait(t, playFor+ramp+60*time.Second)
		// The last sends are counted before the player reports.
		r1, d1, stats := sendTotals(t, senders)
		for _, st := range stats {
			t.Logf("%s: %s sends ram=%d disk=%d refused=%d pinned=%d (%d kB) ram=%d kB of %d kB",
				name, st.ID, st.SendsRAM, st.SendsDisk, st.Refused, st.PinnedBlocks, st.PinnedBytes>>10, st.RAMBytes>>10, st.RAMBudget>>10)
		}
		if m, err := scrapeMetric(sched.base, "sluice_scheduler_refused_total"); err == nil && m > 0 {
			t.Logf("%s: scheduler saw %v refused/missing reservations", name, m)
		}
		sched.p.stop(t)
		return r1 - r0, d1 - d0, agg
	}

	ramA, diskA, aggA := run("lookahead", "--alt-send", "1", "--look-ahead", "2", "--retry-period", "1s", "--guard", "0")
	t.Logf("look-ahead: %d sessions ok of %d, %d fragments, %d stalls, %d errors",
		aggA.SessionsOK, aggA.Sessions, aggA.Fragments, aggA.Stalls, aggA.Errors)

	// The same load on cold senders with no reservations: plain LRU.
	for _, s := range senders {
		s.kill(t)
		s.start(t)
	}
	ramB, diskB, aggB := run("lru", "--no-pins")
	t.Logf("plain LRU: %d sessions ok of %d, %d fragments, %d stalls, %d errors",
		aggB.SessionsOK, aggB.Sessions, aggB.Fragments, aggB.Stalls, aggB.Errors)

	ratio := func(r, d int64) float64 {
		if r+d == 0 {
			return 0
		}
		return float64(r) / float64(r+d)
	}
	summary := fmt.Sprintf("RAM residency: %d sessions, content %.1f MB = %.1f × combined sender RAM %d MB\n"+
		"  with look-ahead: %d of %d segment sends from RAM = %.2f %%\n"+
		"  plain LRU (--no-pins): %d of %d segment sends from RAM = %.2f %%\n",
		sessions, float64(total)/1e6, float64(total)/float64(combined), combined>>20,
		ramA, ramA+diskA, 100*ratio(ramA, diskA), ramB, ramB+diskB, 100*ratio(ramB, diskB))
	t.Log(summary)
	os.WriteFile(filepath.Join(art, "ram-residency.txt"), []byte(summary), 0o644)

	if aggA.SessionsOK != sessions || aggB.SessionsOK != sessions {
		t.Errorf("sessions ok: %d and %d of %d", aggA.SessionsOK, aggB.SessionsOK, sessions)
	}
	if ramA+diskA < int64(sessions*int(playFor/segment)) {
		t.Errorf("only %d segment sends with look-ahead", ramA+diskA)
	}
	if diskA != 0 {
		t.Errorf("with look-ahead %d of %d segment requests were served from disk, want 0", diskA, ramA+diskA)
	}
	if ratio(ramB, diskB) >= ratio(ramA, diskA) {
		t.Errorf("plain LRU (%.3f) not below look-ahead (%.3f)", ratio(ramB, diskB), ratio(ramA, diskA))
	}
	t.Logf("total %v", time.Since(t0).Round(time.Millisecond))
}
