package e2e

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/testmedia"
)

// TestDistributionOriginFailover: two origins hold the same channel (two
// epoch-anchored pushers produce identical fragments at identical URLs);
// players go through one distribution server configured with both. Origin 1
// is killed with SIGKILL mid-play: the distribution server moves every
// request on to origin 2 within the same client request, and the players
// see no 5xx, no error and no stall.
func TestDistributionOriginFailover(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	o1, p1 := distStartRole(t, bin, "origin", "origin-1.log", freePort(t), "--data", filepath.Join(dir, "data1"), "--point", "ch")
	o2, p2 := distStartRole(t, bin, "origin", "origin-2.log", freePort(t), "--data", filepath.Join(dir, "data2"), "--point", "ch")
	distPush(t, bin, o1, "ch")
	startProc(t, "push-ch-2", filepath.Join(artifactsDir(t), "push-ch-2.log"),
		bin, "push", "--loop", "--quiet", testmedia.Sample(t), o2+"/ch.isml/Streams(ch)")
	waitVideoSegments(t, o1+"/ch.isml/manifest.mpd", 4, 30*time.Second, p1)
	waitVideoSegments(t, o2+"/ch.isml/manifest.mpd", 4, 30*time.Second, p2)
	dbase, dp := distStartRole(t, bin, "distribution", "distribution.log", freePort(t),
		"--origin", o1, "--origin", o2, "--upstream-timeout", "1s", "--backoff", "1s")

	const sessions = 20
	done := make(chan distAggregate, 1)
	go func() { done <- distPlay(t, bin, dbase+"/ch.isml/manifest.mpd", sessions, 24*time.Second) }()
	time.Sleep(8 * time.Second)
	okFrom2 := func() float64 {
		return distMetric(t, dbase, "sluice_distribution_upstream_requests_total", "origin="+o2, "outcome=ok")
	}
	before := okFrom2()
	killed := time.Now()
	syscall.Kill(p1.cmd.Process.Pid, syscall.SIGKILL)
	var failover time.Duration
	for time.Since(killed) < 10*time.Second {
		if okFrom2() > before {
			failover = time.Since(killed)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	agg := <-done
	t.Logf("origin 1 killed; first response from origin 2 after %v (an upper bound: metrics polled every 20 ms, players ask every ~2 s)", failover.Round(time.Millisecond))
	t.Logf("%d sessions: ok %d, stalls %d, errors %d, statuses %v; distribution failovers %.0f, origin 1 errors %.0f",
		agg.Sessions, agg.SessionsOK, agg.Stalls, agg.Errors, agg.HTTPStatus,
		distMetric(t, dbase, "sluice_distribution_failovers_total"),
		distMetric(t, dbase, "sluice_distribution_upstream_requests_total", "origin="+o1, "outcome=error"))
	if failover == 0 {
		t.Fatal("no response from origin 2 within 10 s of the kill")
	}
	if agg.SessionsOK != sessions || agg.Errors > 0 || agg.Stalls > 0 {
		t.Errorf("players: %d of %d ok, %d errors, %d stalls", agg.SessionsOK, sessions, agg.Errors, agg.Stalls)
	}
	for code, n := range agg.HTTPStatus {
		if strings.HasPrefix(code, "5") {
			t.Errorf("players saw %d responses with status %s", n, code)
		}
	}
	if dp.exited() {
		t.Fatalf("distribution exited: %s", dp.out)
	}
	if code, _ := distGet(t, dbase+"/readyz"); code != 200 {
		t.Errorf("distribution not ready with origin 2 up: %d", code)
	}
}
