package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/testmedia"
)

// TestFailoverPushProxy: ingest A forwards every push to its standby B.
//
//  1. ffmpeg pushes a two-bitrate ismv stream to A: B ends with exactly A's
//     fragments, byte for byte, the same stream header and A's anchor.
//  2. `sluice push` pushes 24 s in real time to A; B is killed (SIGKILL)
//     after 6 s and restarted 5 s later: A's ingest never notices, and B
//     is caught up from A's store and then follows the push, so that it
//     ends with exactly A's fragments again, without gap.
func TestFailoverPushProxy(t *testing.T) {
	longTest(t)
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	requireTools(t, "ffmpeg")
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	a, b := startIngestPair(t, bin, dir, "live", "ff")
	dumpLogs(t, a, b)
	waitReady(t, 10*time.Second, a, b)

	// 1. ffmpeg, as fast as it encodes.
	testmedia.Run(t, testmedia.ISMVArgs(8, 2, false, a.base+"/ff.isml/Streams(ff)"))
	waitUntil(t, 10*time.Second, "standby holds the ffmpeg push", func() (bool, string) {
		smB, _ := streamManifest(t, b.base, "ff")
		same, why := sameFiles(fragFiles(t, a.data, "ff"), fragFiles(t, b.data, "ff"))
		return same && smB.ended(), why
	})
	smA, _ := streamManifest(t, a.base, "ff")
	smB, _ := streamManifest(t, b.base, "ff")
	if smA.Anchor.IsZero() || !smA.Anchor.Equal(smB.Anchor) {
		t.Errorf("anchors: primary %v, standby %v", smA.Anchor, smB.Anchor)
	}
	hA, _ := os.ReadFile(filepath.Join(a.data, "ff", "s", "ff", "header.mp4"))
	hB, _ := os.ReadFile(filepath.Join(b.data, "ff", "s", "ff", "header.mp4"))
	if len(hA) == 0 || !bytes.Equal(hA, hB) {
		t.Errorf("stream headers differ (%d and %d bytes)", len(hA), len(hB))
	}

	// 2. A real-time push; the standby dies and comes back mid-push.
	push := startPush(t, bin, "push", []string{"--duration", "24s"}, a.pushURL("live"))
	waitUntil(t, 15*time.Second, "standby receives the live push", func() (bool, string) {
		sm, _ := streamManifest(t, b.base, "live")
		return sm.fragments() >= 6, "standby has fewer than 6 fragments"
	})
	b.kill9(t)
	killed := fragFiles(t, b.data, "live")
	time.Sleep(5 * time.Second)
	b.start(t)
	restarted := time.Now()
	waitUntil(t, 15*time.Second, "restarted standby catches up", func() (bool, string) {
		same, why := sameFiles(fragFiles(t, a.data, "live"), fragFiles(t, b.data, "live"))
		return same, why
	})
	t.Logf("standby caught up %v after its restart (it held %d fragments when killed)",
		time.Since(restarted).Round(100*time.Millisecond), len(killed))
	from, to := waitPush(t, push, 40*time.Second)
	if out := push.out.String(); strings.Contains(out, "reconnecting") {
		t.Errorf("the encoder noticed the standby's death:\n%s", out)
	}
	waitUntil(t, 10*time.Second, "standby ends with the primary", func() (bool, string) {
		sm, _ := streamManifest(t, b.base, "live")
		same, why := sameFiles(fragFiles(t, a.data, "live"), fragFiles(t, b.data, "live"))
		return same && sm.ended(), why
	})
	sm, _ := streamManifest(t, b.base, "live")
	checkContiguous(t, "standby", timelines(t, b.data, "live"), sm.timescales(), from, to)
	if n, _ := scrapeMetric(a.base, "sluice_proxy_drops_total"); n < 1 {
		t.Errorf("no proxy drop counted at the primary")
	}
	if n, _ := scrapeMetric(a.base, "sluice_proxy_connections_total", `mode="follow"`); n < 1 {
		t.Errorf("no follow (catch-up) connection counted at the primary")
	}
}
