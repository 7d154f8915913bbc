package e2e

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestDistribution200Players: 200 `sluice play` sessions on one live
// channel through one distribution server make at most one upstream
// request per fragment and track (counted in front of the origin); a
// channel with no players makes no upstream request; fragment requests the
// manifest cannot contain never reach the origin.
func TestDistribution200Players(t *testing.T) {
	longTest(t)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	obase, op := distStartRole(t, bin, "origin", "origin.log", freePort(t),
		"--data", filepath.Join(dir, "data"), "--point", "ch", "--point", "idle")
	distPush(t, bin, obase, "ch")
	distPush(t, bin, obase, "idle")
	waitVideoSegments(t, obase+"/ch.isml/manifest.mpd", 3, 30*time.Second, op)
	waitVideoSegments(t, obase+"/idle.isml/manifest.mpd", 3, 30*time.Second, op)

	counter := newDistCounter(t, obase)
	dbase, dp := distStartRole(t, bin, "distribution", "distribution.log", freePort(t), "--origin", counter.URL)

	const sessions = 200
	start := time.Now()
	agg := distPlay(t, bin, dbase+"/ch.isml/manifest.mpd", sessions, 20*time.Second, "--ramp", "2s")
	t.Logf("%d sessions in %v: ok %d, startup p95 %d ms, stalls %d, fragments %d, errors %d, statuses %v",
		agg.Sessions, time.Since(start).Round(time.Second), agg.SessionsOK, agg.StartupP95MS, agg.Stalls, agg.Fragments, agg.Errors, agg.HTTPStatus)
	if agg.SessionsOK != sessions {
		t.Errorf("%d of %d sessions ok", agg.SessionsOK, sessions)
	}
	for code, n := range agg.HTTPStatus {
		if strings.HasPrefix(code, "5") {
			t.Errorf("players saw %d responses with status %s", n, code)
		}
	}
	if dp.exited() {
		t.Fatalf("distribution exited: %s", dp.out)
	}

	counts := counter.counts()
	var frags, inits, manifests int
	var over []string
	for p, n := range counts {
		switch {
		case strings.HasPrefix(p, "/idle.isml/"):
			t.Errorf("the idle channel got upstream requests: %s ×%d", p, n)
		case strings.HasSuffix(p, ".m4s"):
			frags++
			if n > 1 {
				over = append(over, fmt.Sprintf("%s ×%d", p, n))
			}
		case strings.HasSuffix(p, "/init.mp4"):
			inits++
			if n > 1 {
				over = append(over, fmt.Sprintf("%s ×%d", p, n))
			}
		default:
			manifests += n
		}
	}
	sort.Strings(over)
	if len(over) > 0 {
		t.Errorf("fragments fetched upstream more than once: %v", over)
	}
	if frags < 10 {
		t.Errorf("only %d distinct fragments fetched upstream", frags)
	}
	served := distMetric(t, dbase, "sluice_requests_total", "kind=fragment")
	coalesced := distMetric(t, dbase, "sluice_distribution_coalesced_waiters_total")
	hits := distMetric(t, dbase, "sluice_distribution_cache_lookups_total", "result=hit")
	t.Logf("upstream: %d fragment URLs (each fetched once), %d init segments, %d manifest requests; "+
		"distribution served %.0f fragment requests (%.0f cache hits, %.0f coalesced waiters): %.1f player requests per upstream fragment request",
		frags, inits, manifests, served, hits, coalesced, served/float64(frags))

	// Requests the manifest cannot contain are answered without the origin.
	_, mpd := distGet(t, dbase+"/ch.isml/manifest.mpd")
	segs := segmentURLs(t, dbase+"/ch.isml/")
	if len(segs) == 0 {
		t.Fatalf("no segments in\n%s", mpd)
	}
	last := segs[len(segs)-1]
	dirURL, file := last[:strings.LastIndexByte(last, '/')+1], last[strings.LastIndexByte(last, '/')+1:]
	var edge int64
	fmt.Sscanf(file, "%d.m4s", &edge)
	invalid := []string{
		dirURL + fmt.Sprint(edge+3600*12800) + ".m4s", // an hour past the live edge
		dirURL + fmt.Sprint(edge-3600*12800) + ".m4s", // an hour before the DVR window
		dirURL + fmt.Sprint(edge+1) + ".m4s",          // no fragment starts there
		dirURL + "12x4.m4s",                           // malformed
		dbase + "/ch.isml/tracks/nosuch/" + fmt.Sprint(edge) + ".m4s",
		dbase + "/ch.isml/QualityLevels(1)/Fragments(video=" + fmt.Sprint(edge*1000) + ")",
		dbase + "/ch.isml/StreamManifest",
	}
	before := counter.counts()
	for _, u := range invalid {
		if code, _ := distGet(t, u); code != 404 {
			t.Errorf("%s: %d, want 404", u, code)
		}
	}
	after := counter.counts()
	for p, n := range after {
		if strings.HasSuffix(p, ".m4s") || strings.Contains(p, "Fragments(") || strings.HasSuffix(p, "StreamManifest") {
			if n != before[p] {
				t.Errorf("invalid request reached the origin: %s", p)
			}
		}
	}
	refused := distMetric(t, dbase, "sluice_distribution_refused_total")
	if refused < float64(len(invalid)) {
		t.Errorf("refused_total %.0f, want at least %d", refused, len(invalid))
	}
}
