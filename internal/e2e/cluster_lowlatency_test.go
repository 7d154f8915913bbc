package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/testkit/llhls"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// TestClusterLowLatency plays a low-latency stream (sluice push --chunk
// 500ms, epoch-anchored) through scheduler sessions (/s/) with senders:
// an origin forwarding every part to three senders (etcd membership, R =
// 2), a scheduler whose pathway playlists and MPDs list the parts, and
// hls.js (low-latency mode) and dash.js (low-latency mode) in Chromium
// fetching every part and growing segment from a sender. Both must play
// without a stall under 3.5 s of latency (a guard on a loaded machine;
// bench/ll-latency.sh measures against the targets), and every part a
// player asked a sender for must have been served from its RAM: none
// missing, none timed out (sluice_sender_parts_total).
func TestClusterLowLatency(t *testing.T) {
	b := setupBrowser(t)
	webDir, art, bin := b.webDir, b.art, b.bin
	cl := startSenderCluster(t, bin, art)
	sched := startClSched(t, bin, "scheduler", cl.originBase, append(cl.etcd.readerArgs(), "--replicas", "2",
		"--player-dir", filepath.Join(webDir, "node_modules"))...)
	startProc(t, "sluice push", filepath.Join(art, "push-llcluster.log"), bin, "push", "--loop", "--epoch",
		"--chunk", "500ms", "--quiet", testmedia.Sample(t), cl.originBase+"/live.isml/Streams(live)")
	// Every pathway media playlist of a session low-latency, with 3
	// segments (a player that starts on a standard playlist keeps the
	// standard hold-back).
	pathway := regexp.MustCompile(`http://[^"\s]+/media\.m3u8`)
	waitUntil(t, 60*time.Second, "low-latency pathway playlists", func() (bool, string) {
		code, master := fetch(t, sched.base+"/s/live/master.m3u8")
		if code != 200 {
			return false, fmt.Sprintf("master: %d %s", code, master)
		}
		uris := pathway.FindAllString(string(master), -1)
		if len(uris) == 0 {
			return false, string(master)
		}
		for _, uri := range uris {
			_, body := fetch(t, uri)
			if pl := parseLL(t, body); pl.segments < 3 || pl.partInf == "" {
				return false, uri + ":\n" + string(body)
			}
		}
		return true, ""
	})

	seconds := 12
	if v, err := strconv.Atoi(os.Getenv("SLUICE_LL_SECONDS")); err == nil && v > 0 {
		seconds = v // bench/ll-latency.sh
	}
	pe := playEnv{args: []string{`--player-config={"lowLatencyMode":true,"maxLiveSyncPlaybackRate":1.5}`}}
	r := runPlayIn(t, pe, webDir, sched.base+"/s/live/master.m3u8", "hls", seconds, seconds*3/4, filepath.Join(art, "screenshot-llcluster-hls.png"))
	checkPlay(t, r, float64(seconds*3/4))
	checkLatency(t, "hls.js through scheduler sessions and senders", r, 3.5, anyStall)
	r = runPlay(t, webDir, sched.base+"/s/live/manifest.mpd", "dash", seconds, seconds*3/4, filepath.Join(art, "screenshot-llcluster-dash.png"))
	checkPlay(t, r, float64(seconds*3/4))
	checkLatency(t, "dash.js through scheduler sessions and senders", r, 3.5, anyStall)
	llMorePlayers(t, bin, webDir, art, "cluster", "through scheduler sessions and senders",
		sched.base+"/s/live/master.m3u8", sched.base+"/s/live/manifest.mpd", seconds, 3.5)

	// A delta update agrees with the full playlist of the same part
	// (both blocking on it).
	_, master := fetch(t, sched.base+"/s/live/master.m3u8")
	uri := pathway.FindString(string(master))
	_, body := fetch(t, uri)
	pl := parseLL(t, body)
	q := fmt.Sprintf("?_HLS_msn=%d&_HLS_part=%d", pl.seq+int64(pl.segments), pl.parts)
	_, full := fetch(t, uri+q)
	_, delta := fetch(t, uri+q+"&_HLS_skip=YES")
	parseLL(t, delta)
	if err := llhls.CheckDelta(full, delta); err != nil {
		t.Errorf("delta update from a sender: %v\nfull:\n%s\ndelta:\n%s", err, full, delta)
	}

	var ram, growing, missing, timeout float64
	for _, s := range cl.senders {
		ram += metricValue(t, s.base, "sluice_sender_parts_total", `result="ram"`)
		growing += metricValue(t, s.base, "sluice_sender_parts_total", `result="growing"`)
		missing += metricValue(t, s.base, "sluice_sender_parts_total", `result="missing"`)
		timeout += metricValue(t, s.base, "sluice_sender_parts_total", `result="timeout"`)
	}
	t.Logf("senders: %.0f parts and %.0f growing or just complete blocks served from RAM; %.0f parts missing, %.0f timed out", ram, growing, missing, timeout)
	if ram == 0 || growing == 0 {
		t.Errorf("the players fetched %.0f parts and %.0f growing blocks from the senders; want both", ram, growing)
	}
	if missing+timeout > 0 {
		t.Errorf("%.0f part requests at the senders were not served from RAM", missing+timeout)
	}
}
