package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/testmedia"
)

// nginxConf is the frame of the tests' nginx configurations: one worker in
// the foreground with every file in the directory %[2]s, an access log in
// the format %[3]s, and the test's own http-level directives %[4]s. %[1]s
// is the user line.
const nginxConf = `%[1]s
worker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 1024; }
http {
  log_format main '%[3]s';
  access_log %[2]s/access.log main;
  client_body_temp_path %[2]s/body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
%[4]s}
`

// runNginx runs nginx in dir (which it creates) with nginxConf around the
// http-level directives httpConf, logging requests in logFormat, and its
// output in the artifacts as <name>.log.
func runNginx(t *testing.T, name, dir, logFormat, httpConf string) *proc {
	t.Helper()
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		nginx = "/usr/sbin/nginx"
	}
	if _, err := os.Stat(nginx); err != nil {
		t.Fatalf("nginx is required (apt-get install nginx-light): %v", err)
	}
	out, _ := exec.Command(nginx, "-V").CombinedOutput()
	if strings.Contains(string(out), "--without-http_proxy_module") {
		t.Fatalf("this nginx has no proxy module:\n%s", out)
	}
	user := ""
	if os.Geteuid() == 0 {
		// Workers would otherwise run as nobody, who cannot enter the
		// test's temporary directory.
		user = "user root;"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, user, dir, logFormat, httpConf)), 0o644); err != nil {
		t.Fatal(err)
	}
	return startProc(t, name, filepath.Join(artifactsDir(t), name+".log"), nginx, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
}

// distNginxConf is an nginx proxy_cache in front of a distribution server
// (%[2]s, host:port) with no caching rule of its own: what it keeps, and
// for how long, comes from the Cache-Control headers Sluice sends. %[1]s is
// nginx's directory, %[3]s the address it listens on.
const distNginxConf = `  proxy_cache_path %[1]s/cache levels=1:2 keys_zone=sluice:10m max_size=1g inactive=10m use_temp_path=off;
  upstream distribution {
    server %[2]s;
    keepalive 16;
  }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://distribution;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache sluice;
      proxy_cache_key $uri;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 5s;
      proxy_cache_revalidate on;
      proxy_cache_use_stale error timeout updating http_502 http_503 http_504;
      add_header X-Cache-Status $upstream_cache_status always;
    }
  }
`

// startNginx runs nginx with distNginxConf in dir, listening on addr and
// proxying to upstream (host:port).
func startNginx(t *testing.T, dir, addr, upstream string) *proc {
	t.Helper()
	p := runNginx(t, "nginx", dir, "$request_uri $status $upstream_cache_status", fmt.Sprintf(distNginxConf, dir, upstream, addr))
	waitHTTP(t, "http://"+addr+"/healthz", 15*time.Second, p)
	return p
}

// TestDistributionNginxCache: Debian's nginx with proxy_cache in front of a
// distribution server. A first wave of players fills nginx; a second,
// larger wave of the same content is served by nginx alone: the
// distribution server sees no request at all (on-demand asset), or no
// fragment request (live channel: only the short-lived manifests pass).
func TestDistributionNginxCache(t *testing.T) {
	longTest(t)
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "import", "--quiet", "--data", data,
		testmedia.Sample(t), "vod").CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	obase, op := distStartRole(t, bin, "origin", "origin.log", freePort(t), "--data", data, "--point", "ch")
	distPush(t, bin, obase, "ch")
	waitVideoSegments(t, obase+"/ch.isml/manifest.mpd", 3, 30*time.Second, op)
	dport := freePort(t)
	dbase, _ := distStartRole(t, bin, "distribution", "distribution.log", dport, "--origin", obase)
	naddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ndir := filepath.Join(dir, "nginx")
	startNginx(t, ndir, naddr, fmt.Sprintf("127.0.0.1:%d", dport))
	nbase := "http://" + naddr
	// Media requests only: the /metrics scrapes themselves count as "other".
	requests := func() float64 {
		n := 0.0
		for _, k := range []string{"manifest", "init", "fragment"} {
			n += distMetric(t, dbase, "sluice_requests_total", "kind="+k)
		}
		return n
	}
	fragRequests := func() float64 { return distMetric(t, dbase, "sluice_requests_total", "kind=fragment") }

	// On demand: DASH and HLS players, the lowest rendition (so both waves
	// ask for the same URLs), played to the end.
	wave := func(n int) {
		var wg sync.WaitGroup
		for _, m := range []string{"manifest.mpd", "master.m3u8"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				agg := distPlay(t, bin, nbase+"/vod.isml/"+m, n, 0, "--max-bitrate", "250k")
				if agg.SessionsOK != n || agg.Errors > 0 {
					t.Errorf("%s: %d of %d sessions ok, %d errors, statuses %v", m, agg.SessionsOK, n, agg.Errors, agg.HTTPStatus)
				}
			}()
		}
		wg.Wait()
	}
	r0 := requests()
	wave(3)
	r1 := requests()
	wave(20)
	r2 := requests()
	t.Logf("on demand: wave 1 (2×3 players) made %.0f requests at the distribution server, wave 2 (2×20 players) %.0f", r1-r0, r2-r1)
	if r1 == r0 {
		t.Error("wave 1 never reached the distribution server (is nginx in the path?)")
	}
	if r2 != r1 {
		t.Errorf("wave 2 made %.0f requests at the distribution server; want 0 (nginx alone)", r2-r1)
	}

	// Live: players fill nginx; then every fragment the current manifest
	// lists, asked again by a second wave, comes from nginx alone.
	agg := distPlay(t, bin, nbase+"/ch.isml/manifest.mpd", 10, 6*time.Second)
	if agg.SessionsOK != 10 {
		t.Errorf("live wave 1: %d of 10 sessions ok, statuses %v", agg.SessionsOK, agg.HTTPStatus)
	}
	segs := segmentURLs(t, nbase+"/ch.isml/")
	for _, u := range segs {
		distGet(t, u) // whatever wave 1 did not ask for yet
	}
	f1 := fragRequests()
	var wg sync.WaitGroup
	var mu sync.Mutex
	notHit := 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, u := range segs {
				code, _ := distGet(t, u)
				if code != 200 {
					mu.Lock()
					notHit++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	f2 := fragRequests()
	t.Logf("live: wave 2 asked %d fragment URLs ×20 through nginx: %.0f fragment requests reached the distribution server", len(segs), f2-f1)
	if notHit > 0 {
		t.Errorf("%d live fragment requests failed", notHit)
	}
	if f2 != f1 {
		t.Errorf("live wave 2 made %.0f fragment requests at the distribution server; want 0", f2-f1)
	}
	if log, err := os.ReadFile(filepath.Join(ndir, "access.log")); err == nil {
		t.Logf("nginx cache statuses: HIT %d, MISS %d, EXPIRED %d, REVALIDATED %d",
			strings.Count(string(log), " HIT\n"), strings.Count(string(log), " MISS\n"),
			strings.Count(string(log), " EXPIRED\n"), strings.Count(string(log), " REVALIDATED\n"))
	}
}
