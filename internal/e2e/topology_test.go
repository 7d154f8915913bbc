package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// topoNginxConf balances players over the distribution servers (what a
// load balancer or DNS does in front of a CDN tier): a request that fails
// on one server is retried on the next. It caches nothing. The player page
// (/play, /player/) comes from a separate `sluice serve` instance. The
// arguments: the two distribution servers, the address nginx listens on and
// the player page's server (host:port each).
const topoNginxConf = `  upstream distribution {
    server %[1]s max_fails=1 fail_timeout=30s;
    server %[2]s max_fails=1 fail_timeout=30s;
    keepalive 16;
  }
  server {
    listen %[3]s;
    location /play { proxy_pass http://%[4]s; }
    location /player/ { proxy_pass http://%[4]s; }
    location / {
      proxy_pass http://distribution;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_connect_timeout 1s;
      proxy_next_upstream error timeout http_502 http_503 http_504;
      proxy_next_upstream_tries 2;
    }
  }
`

// TestTopologyFailover is the whole chain of docs/topologies.md: an epoch-anchored
// encoder (sluice push --retry) → ingest A, which proxies to standby B →
// origins 1 and 2, each pulling from A then B → distribution servers 1 and
// 2, each with both origins → a load balancer → 20 `sluice play` sessions
// (6 s buffer) and dash.js in Chromium. During a 100 s live push, kill -9 in
// turn ingest A, origin 1 and distribution 1. Afterwards every fragment time
// the encoder produced is in the surviving origin's archive exactly once,
// the players report zero stalls and no 5xx reached them.
func TestTopologyFailover(t *testing.T) {
	longTest(t)
	requireTools(t, "nginx", "node")
	browserEnabled(t)
	root := repoRoot(t)
	webDir := filepath.Join(root, "web")
	ensureNodeModules(t, webDir)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)

	a, b := startIngestPair(t, bin, dir, "live")
	o1 := startPullOrigin(t, bin, dir, "origin-1", a, b)
	o2 := startPullOrigin(t, bin, dir, "origin-2", a, b)
	d1 := startDistribution(t, bin, "dist-1", o1, o2)
	d2 := startDistribution(t, bin, "dist-2", o1, o2)
	web := startRole(t, bin, dir, "serve", "web", "--no-demo", "--player-dir", filepath.Join(webDir, "node_modules"))
	dumpLogs(t, a, b, o1, o2, d1, d2)

	lbAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	host := func(n *roleNode) string { return strings.TrimPrefix(n.base, "http://") }
	lb := runNginx(t, "nginx-lb", filepath.Join(dir, "lb"), "$request_uri $status $upstream_addr $upstream_status",
		fmt.Sprintf(topoNginxConf, host(d1), host(d2), lbAddr, host(web)))
	lbURL := "http://" + lbAddr

	// 100 s: the players' 45 s must end before the push does even when
	// Chromium is slow to start on a loaded machine (at the end the MPD turns
	// static, which dash.js applies with a new timeline: docs/origin.md).
	push := startPush(t, bin, "push", []string{"--duration", "100s", "--retry", "--retry-delay", "300ms"},
		a.pushURL("live"), b.pushURL("live"))
	waitVideoSegments(t, lbURL+"/live.isml/manifest.mpd", 4, 30*time.Second, lb, d1.p, d2.p)

	// Players: 20 headless sessions and one dash.js in Chromium, for 45 s.
	playDone := make(chan distAggregate, 1)
	go func() {
		playDone <- distPlay(t, bin, lbURL+"/live.isml/manifest.mpd", 20, 45*time.Second, "--buffer", "6")
	}()
	browserDone := make(chan playResult, 1)
	go func() {
		browserDone <- runPlay(t, webDir, lbURL+"/live.isml/manifest.mpd", "dash", 45, 36,
			filepath.Join(artifactsDir(t), "topology-dash.png"))
	}()

	kill := func(n *roleNode, at time.Duration) {
		time.Sleep(at)
		n.kill9(t)
		t.Logf("kill -9 %s", n.name)
	}
	kill(a, 8*time.Second)
	kill(o1, 10*time.Second)
	kill(d1, 10*time.Second)

	var agg distAggregate
	select {
	case agg = <-playDone:
	case <-time.After(150 * time.Second):
		t.Fatal("sluice play did not finish")
	}
	var br playResult
	select {
	case br = <-browserDone:
	case <-time.After(200 * time.Second):
		t.Fatal("chromium player did not finish")
	}
	t.Logf("sluice play: %d/%d sessions ok, stalls %d, errors %d, statuses %v, startup p95 %d ms",
		agg.SessionsOK, agg.Sessions, agg.Stalls, agg.Errors, agg.HTTPStatus, agg.StartupP95MS)
	if agg.SessionsOK != agg.Sessions || agg.Stalls != 0 {
		t.Errorf("players: %d/%d ok, %d stalls", agg.SessionsOK, agg.Sessions, agg.Stalls)
	}
	for code, n := range agg.HTTPStatus {
		if strings.HasPrefix(code, "5") {
			t.Errorf("players saw %d responses with status %s", n, code)
		}
	}
	checkPlay(t, br, 36)
	if br.Stalls > 0 {
		t.Errorf("dash.js stalled %d times", br.Stalls)
	}

	from, to := waitPush(t, push, 60*time.Second)
	waitEnded(t, 20*time.Second, "live", o2)
	sm, _ := streamManifest(t, o2.base, "live")
	ts := sm.timescales()
	checkContiguous(t, o2.name, timelines(t, o2.data, "live"), ts, from, to)
	// The standby ingest holds the whole stream too.
	checkContiguous(t, b.name, timelines(t, b.data, "live"), ts, from, to)
}

// startDistribution starts `sluice distribution` (no data directory) in
// front of the given origins.
func startDistribution(t *testing.T, bin, name string, origins ...*roleNode) *roleNode {
	t.Helper()
	port := freePort(t)
	n := &roleNode{name: name, bin: bin, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	n.argv = []string{"distribution", "--listen", fmt.Sprintf("127.0.0.1:%d", port)}
	for _, o := range origins {
		n.argv = append(n.argv, "--origin", o.base)
	}
	n.start(t)
	return n
}
