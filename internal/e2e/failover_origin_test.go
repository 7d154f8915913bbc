package e2e

import (
	"bytes"
	"fmt"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// utcTiming matches the DASH UTCTiming element, whose value is the clock of
// the request and so the one node-specific part of a live MPD.
var utcTiming = regexp.MustCompile(`<UTCTiming [^>]*>`)

// TestFailoverOrigins: ingests A (push proxy to B) and B; origins 1 and 2
// pull from A, then B. `sluice push --retry` pushes 30 s in real time to A;
// A is killed (SIGKILL) after about 10 s and the encoder moves to B. Both
// origins fail over to B with StartTime: each archive has every fragment
// time exactly once, and the two origins serve identical manifests and
// byte-identical fragments at identical URLs. The failover time (kill to
// the first fragment stored from B) is logged.
func TestFailoverOrigins(t *testing.T) {
	longTest(t)
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	a, b := startIngestPair(t, bin, dir, "live")
	o1 := startPullOrigin(t, bin, dir, "origin-1", a, b)
	o2 := startPullOrigin(t, bin, dir, "origin-2", a, b)
	dumpLogs(t, a, b, o1, o2)
	waitReady(t, 10*time.Second, a, b, o1, o2)

	push := startPush(t, bin, "push", []string{"--duration", "30s", "--retry", "--retry-delay", "300ms"},
		a.pushURL("live"), b.pushURL("live"))

	// Live: once both origins hold 4 periods, their manifests agree.
	waitUntil(t, 20*time.Second, "origins pull the live push", func() (bool, string) {
		s1, _ := streamManifest(t, o1.base, "live")
		s2, _ := streamManifest(t, o2.base, "live")
		return s1.fragments() >= 12 && s2.fragments() >= 12, "origins hold fewer than 12 fragments"
	})
	waitReady(t, 5*time.Second, o1, o2)
	waitUntil(t, 10*time.Second, "live manifests agree", func() (bool, string) {
		for _, m := range []string{"manifest.mpd", "master.m3u8", "Manifest"} {
			_, m1 := get(t, o1.base+"/live.isml/"+m)
			_, m2 := get(t, o2.base+"/live.isml/"+m)
			m1, m2 = utcTiming.ReplaceAll(m1, nil), utcTiming.ReplaceAll(m2, nil)
			if !bytes.Equal(m1, m2) {
				return false, m + " differs:\n" + string(m1) + "\n---\n" + string(m2)
			}
		}
		return true, ""
	})

	// The encoder is epoch-anchored and real time: a fragment is due at the
	// wall-clock time of its start. Lateness (stored at the origin minus
	// due) before and after the failover isolates what the failover costs
	// from the fragment cadence.
	lateness := func(o *roleNode, after float64, within time.Duration) (float64, time.Time) {
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			sm, _ := streamManifest(t, o.base, "live")
			if n := sm.newest(); n > after {
				now := time.Now()
				return now.Sub(time.Unix(0, int64(n*1e9))).Seconds(), now
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%s stored nothing after %.3f within %v", o.name, after, within)
		return 0, time.Time{}
	}
	sm0, _ := streamManifest(t, o1.base, "live")
	normal, _ := lateness(o1, sm0.newest(), 5*time.Second)
	// Kill in the middle of a fragment period.
	time.Sleep(time.Second)
	before := map[string]float64{}
	for _, o := range []*roleNode{o1, o2} {
		sm, _ := streamManifest(t, o.base, "live")
		before[o.name] = sm.newest()
	}
	a.kill9(t)
	killedAt := time.Now()
	for _, o := range []*roleNode{o1, o2} {
		late, at := lateness(o, before[o.name], 15*time.Second)
		n, _ := scrapeMetric(o.base, "sluice_pull_fragments_total", `ingest="`+b.base+`"`, `result="added"`)
		if n == 0 {
			t.Errorf("%s: the first fragment after the kill did not come from B", o.name)
		}
		g, _ := scrapeMetric(o.base, "sluice_pull_last_failover_seconds")
		t.Logf("%s: kill -9 of ingest A to the first fragment stored from B: %v; that fragment was %.0f ms late "+
			"(%.0f ms before the kill); the origin's own measure from the broken pull: %.3f s",
			o.name, at.Sub(killedAt).Round(10*time.Millisecond), late*1000, normal*1000, g)
	}

	waitReady(t, 5*time.Second, o1, o2) // pulling from B

	from, to := waitPush(t, push, 45*time.Second)
	waitEnded(t, 15*time.Second, "live", o1, o2)

	// Every fragment time exactly once, from the first to the last period.
	sm, _ := streamManifest(t, o1.base, "live")
	ts := sm.timescales()
	for _, o := range []*roleNode{o1, o2} {
		checkContiguous(t, o.name, timelines(t, o.data, "live"), ts, from, to)
	}
	if same, why := sameFiles(fragFiles(t, o1.data, "live"), fragFiles(t, o2.data, "live")); !same {
		t.Errorf("origins stored different fragments: %s", why)
	}
	// Identical manifests and byte-identical fragments at identical URLs.
	for _, m := range []string{"manifest.mpd", "master.m3u8", "Manifest"} {
		c1, m1 := get(t, o1.base+"/live.isml/"+m)
		c2, m2 := get(t, o2.base+"/live.isml/"+m)
		if c1 != 200 || c2 != 200 || !bytes.Equal(m1, m2) {
			t.Errorf("%s: status %d/%d, identical %v", m, c1, c2, bytes.Equal(m1, m2))
		}
	}
	urls1 := segmentURLs(t, o1.base+"/live.isml/")
	urls2 := segmentURLs(t, o2.base+"/live.isml/")
	if len(urls1) == 0 || len(urls1) != len(urls2) {
		t.Fatalf("segment lists: %d and %d URLs", len(urls1), len(urls2))
	}
	for i, u := range urls1 {
		rel := u[len(o1.base):]
		if urls2[i][len(o2.base):] != rel {
			t.Fatalf("segment %d: %s vs %s", i, rel, urls2[i][len(o2.base):])
		}
		c1, f1 := get(t, u)
		c2, f2 := get(t, urls2[i])
		if c1 != 200 || c2 != 200 || !bytes.Equal(f1, f2) {
			t.Errorf("%s: status %d/%d, identical %v", rel, c1, c2, bytes.Equal(f1, f2))
		}
	}
	t.Logf("%d segment URLs identical on both origins; media %.1f..%.1f s", len(urls1), from, to)

	// With no ingest left, an origin still serves what it holds but is
	// not ready.
	b.kill9(t)
	waitUntil(t, 15*time.Second, "origin not ready without ingests", func() (bool, string) {
		code, body := get(t, o1.base+"/readyz")
		return code == 503, fmt.Sprintf("%d %s", code, body)
	})
	if code, _ := get(t, o1.base+"/live.isml/manifest.mpd"); code != 200 {
		t.Errorf("manifest without ingests: %d", code)
	}
}

// TestFailoverRedundantEncoders: two epoch-anchored `sluice push` encoders
// send the same signal, one to ingest A (which forwards to B), one to B.
// The origin pulls from A. When the first encoder dies, A stays up but its
// stream goes silent: the origin notices the stall (two fragment
// durations) and resumes from B, whose copy from the second encoder is byte
// for byte the same, so the archive stays whole.
func TestFailoverRedundantEncoders(t *testing.T) {
	longTest(t)
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	a, b := startIngestPair(t, bin, dir, "live")
	o := startPullOrigin(t, bin, dir, "origin", a, b)
	dumpLogs(t, a, b, o)
	enc1 := startPush(t, bin, "encoder-1", []string{"--loop"}, a.pushURL("live"))
	enc2 := startPush(t, bin, "encoder-2", []string{"--duration", "24s"}, b.pushURL("live"))
	waitUntil(t, 20*time.Second, "origin pulls", func() (bool, string) {
		sm, _ := streamManifest(t, o.base, "live")
		return sm.fragments() >= 9, "fewer than 9 fragments"
	})
	sm, _ := streamManifest(t, o.base, "live")
	before := sm.newest()
	syscall.Kill(enc1.cmd.Process.Pid, syscall.SIGKILL)
	killedAt := time.Now()
	waitUntil(t, 15*time.Second, "origin resumes from B", func() (bool, string) {
		n, _ := scrapeMetric(o.base, "sluice_pull_fragments_total", `ingest="`+b.base+`"`, `result="added"`)
		return n > 0, "nothing from B yet"
	})
	sm, _ = streamManifest(t, o.base, "live")
	t.Logf("encoder 1 killed: origin stored fragments from B %v later (newest fragment then %.1f s, before %.1f s)",
		time.Since(killedAt).Round(10*time.Millisecond), sm.newest(), before)
	if n, _ := scrapeMetric(o.base, "sluice_pull_failovers_total", `reason="stall"`); n < 1 {
		t.Errorf("no stall failover counted")
	}
	_, to := waitPush(t, enc2, 40*time.Second)
	waitEnded(t, 15*time.Second, "live", o)
	sm, _ = streamManifest(t, o.base, "live")
	ts := sm.timescales()
	tl := timelines(t, o.data, "live")
	var from float64
	for id, ss := range tl {
		from = float64(ss[0].start) / float64(ts[id])
	}
	checkContiguous(t, "origin", tl, ts, from, to)
	for _, n := range []*roleNode{a, b, o} {
		if d, _ := scrapeMetric(n.base, "sluice_fragments_in_total", `result="differs"`); d != 0 {
			t.Errorf("%s: %v redundant fragments differ from the stored copy", n.name, d)
		}
	}
}
