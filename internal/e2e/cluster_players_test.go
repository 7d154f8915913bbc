package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
)

// TestClusterPlayers is the main acceptance test of the scheduler (issue 5):
// one scheduler and three senders (R = 2, membership in a real etcd) behind
// an origin that takes a live ffmpeg push and holds an imported on-demand
// asset, all through the scheduler's per-session manifests, for 30 s; 20 s
// in, one sender is killed with SIGKILL. 50 `sluice play` sessions play: 25
// live and 25 on-demand, each half HLS, half DASH (the scheduler's
// SegmentList MPDs). dash.js in Chromium plays the live channel across the
// kill and the asset after it.
//
// The scheduler names each block by its owner set (--owner-set-url): the
// senders listen on 127.0.0.11–13 with one port, so a segment URL's host
// resolves to the block's live owners in order (docs/cluster.md,
// "Owner-set host names"). The players run in a mount namespace whose
// /etc/resolv.conf names the scheduler's DNS responder (--dns-listen
// 127.0.0.20:53; as root) or whose /etc/hosts is the scheduler's
// owner-set listing (not root; Chromium then runs with its built-in
// resolver off, --disable-features=AsyncDns, because that resolver keeps
// only one address per name of a hosts file).
// Checked:
//
//   - every session plays to the end with no stall (6 s buffer), and no
//     session loses a fragment: a request for a block of the dead sender
//     goes on at the next owner of its name (the DNS answer leaves the
//     dead sender out once the scheduler saw it die; before that, and with
//     a hosts file, the connection is refused and the player tries the
//     next address), live playlists are reloaded anyway, and a fragment that
//     still fails is fetched at the URL that the player's failover reload
//     of the manifest names (internal/player); the survivors count the
//     requests that fell back to them (sluice_sender_fallback_requests_total,
//     which must not be 0);
//   - dash.js plays live across the kill and then the asset, with no
//     error and no stall; the victim is the first owner of the newest live
//     fragment, which dash.js, near the live edge, asks for next;
//   - the scheduler served manifests only: no fragment or init request
//     reached it, and every segment URL of its manifests names an owner
//     set;
//   - the bytes of every segment a session manifest lists (the asset whole,
//     the live window's newest segments) and of every init segment are the
//     origin's, byte for byte;
//   - after the kill the manifests name owner sets of surviving senders only.
func TestClusterPlayers(t *testing.T) {
	ffmpeg := requireFFmpeg(t)
	root := repoRoot(t)
	webDir := filepath.Join(root, "web")
	browser := true
	if os.Getenv("SLUICE_E2E_BROWSER") == "0" {
		browser = false
		t.Log("dash.js part skipped (SLUICE_E2E_BROWSER=0)")
	} else {
		requireTools(t, "node", "npm")
		ensureNodeModules(t, webDir)
	}
	art := artifactsDir(t)
	tmp := t.TempDir()
	t0 := time.Now()
	bin := buildSluice(t, root, tmp)
	t.Logf("built in %v", time.Since(t0).Round(time.Millisecond))

	// The on-demand asset: 60 s, one 400 kbit/s rendition and AAC, encoded
	// while the cluster starts.
	mp4 := filepath.Join(tmp, "vod.mp4")
	enc := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=22050",
		"-t", "60", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-b:v", "400k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "48k", mp4)
	var encOut bytes.Buffer
	enc.Stdout, enc.Stderr = &encOut, &encOut
	if err := enc.Start(); err != nil {
		t.Fatal(err)
	}

	etcd := startEtcdServer(t)
	var senders []*clSender
	port := freePort(t)
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("sender-%d", i)
		senders = append(senders, startClSenderAt(t, bin, name, shmDir(t, fmt.Sprintf("s%d", i)), fmt.Sprintf("127.0.0.%d:%d", 11+i, port),
			append([]string{"--id", name, "--ram", "64M", "--etcd-ttl", "2s"}, etcd.senderArgs()...)...))
	}
	data := shmDir(t, "origin")
	originAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	originBase := "http://" + originAddr
	origin := startProc(t, "origin", filepath.Join(art, "origin.log"), append([]string{bin, "origin", "--listen", originAddr, "--data", data,
		"--point", "live", "--replicas", "2", "--cluster-secret", e2eClusterSecret}, etcd.readerArgs()...)...)
	waitHTTP(t, originBase+"/healthz", 30*time.Second, origin)
	// The players resolve the owner-set names, as root, at the
	// scheduler's own DNS responder (the production path, with Chromium's
	// built-in resolver and Go's), named by a private resolv.conf; else
	// with a private /etc/hosts written from the scheduler's listing.
	// (SLUICE_E2E_OWNER_NAMES=hosts forces the hosts file.)
	dnsMode := os.Geteuid() == 0 && os.Getenv("SLUICE_E2E_OWNER_NAMES") != "hosts"
	schedArgs := append(etcd.readerArgs(), "--replicas", "2", "--player-dir", filepath.Join(webDir, "node_modules"),
		"--owner-set-url", fmt.Sprintf("http://{owners}.senders.sluice.test:%d", port))
	if dnsMode {
		schedArgs = append(schedArgs, "--dns-listen", "127.0.0.20:53")
	}
	sched := startClSched(t, bin, "scheduler", originBase, schedArgs...)
	hostsFile, names := ownerSetHosts(t, sched.base, 3, tmp)
	ns := inHostsNamespace(t, hostsFile)
	chromium := playEnv{prefix: ns, env: []string{"SLUICE_CHROMIUM_ARGS=--disable-features=AsyncDns"}}
	if dnsMode {
		ns = inResolverNamespace(t, "127.0.0.20", tmp)
		chromium = playEnv{prefix: ns}
		t.Log("owner-set names resolved by the scheduler's DNS responder at 127.0.0.20:53")
	} else {
		t.Log("owner-set names resolved by a private /etc/hosts")
	}

	ff := startProc(t, "ffmpeg", filepath.Join(art, "ffmpeg.log"), ffmpegLiveArgs(originBase+"/live.isml/Streams(live)")...)

	if err := enc.Wait(); err != nil {
		t.Fatalf("ffmpeg (asset): %v\n%s", err, encOut.String())
	}
	runAll(t, 1, [][]string{{bin, "import", "--data", data, mp4, "vod"}})
	runAll(t, 1, [][]string{append(append([]string{bin, "sender-load"}, etcd.readerArgs()...), "--replicas", "2", "--cluster-secret", e2eClusterSecret, data, "vod")})

	// Wait for the live channel to list a few segments in a session.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ff.exited() {
			t.Fatalf("ffmpeg exited: %v\n%s", ff.err, ff.out)
		}
		if n := len(sessionSegments(t, sched.base, "live", "")); n >= 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live channel did not list 4 segments per track at the scheduler within 60 s; scheduler log:\n%s", sched.p.out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("cluster and live channel up after %v", time.Since(t0).Round(time.Millisecond))

	// Players: 25 live and 25 on-demand `sluice play` sessions, each half
	// HLS, half DASH (the scheduler's SegmentList MPDs), and dash.js live
	// (then on-demand).
	const playFor = 30 * time.Second
	type group struct {
		name string
		n    int
		p    *clPlay
	}
	groups := []*group{
		{name: "live hls", n: 13}, {name: "live dash", n: 12}, {name: "vod hls", n: 13}, {name: "vod dash", n: 12},
	}
	for _, g := range groups {
		point, format, _ := strings.Cut(g.name, " ")
		manifest := map[string]string{"hls": "master.m3u8", "dash": "manifest.mpd"}[format]
		g.p = startClPlayIn(t, ns, bin, "--sessions", strconv.Itoa(g.n), "--ramp", "3s", "--duration", playFor.String(), "--buffer", "6",
			"--log-level", "info", sched.base+"/s/"+point+"/"+manifest)
	}
	// The victim is the first owner of the newest live video fragment at
	// the time of the kill: the one dash.js (near the live edge) asks for
	// next with the MPD it holds.
	victim := senders[1]
	var killed time.Time
	var once sync.Once
	var killedAt atomic.Int64 // unix ns, for the goroutines that may not read killed
	killer := time.AfterFunc(20*time.Second, func() {
		once.Do(func() {
			if id, err := newestLiveOwner(sched.base, "live"); err == nil {
				for _, s := range senders {
					if s.name == id {
						victim = s
					}
				}
			} else {
				t.Logf("victim: %v (killing %s)", err, victim.name)
			}
			killed = time.Now()
			killedAt.Store(killed.UnixNano())
			victim.kill(t)
		})
	})
	defer killer.Stop()
	if browser {
		// Across the kill: Chromium starts in a few seconds and plays 24 s.
		r := runPlayIn(t, chromium, webDir, sched.base+"/s/live/manifest.mpd", "dash", 24, 20, filepath.Join(art, "dashjs-live.png"))
		checkPlay(t, r, 20)
		if r.Stalls > 0 {
			t.Errorf("dash.js stalled %d times", r.Stalls)
		}
		if k := killedAt.Load(); k == 0 || time.Since(time.Unix(0, k)) < 3*time.Second {
			t.Errorf("dash.js did not play on for 3 s after the kill (killed at %v, now %v)", time.Unix(0, k), time.Now())
		}
	}
	type result struct {
		name string
		n    int
		agg  clPlayAggregate
		ss   []clPlaySession
	}
	var results []result
	for _, g := range groups {
		agg, ss := g.p.wait(t, playFor+90*time.Second)
		results = append(results, result{g.name, g.n, agg, ss})
		log := filepath.Join(art, "play-"+strings.ReplaceAll(g.name, " ", "-")+".log")
		if err := os.WriteFile(log, append(g.p.out.Bytes(), g.p.errb.String()...), 0o644); err == nil {
			t.Logf("%s: sluice play output in %s", g.name, log)
		}
	}
	if browser {
		// dash.js on the asset too (a session opened after the kill).
		r := runPlayIn(t, chromium, webDir, sched.base+"/s/vod/manifest.mpd", "dash", 12, 10, filepath.Join(art, "dashjs-vod.png"))
		checkPlay(t, r, 10)
		if r.Stalls > 0 {
			t.Errorf("dash.js (VOD) stalled %d times", r.Stalls)
		}
	}
	refused := 0
	for _, c := range results {
		skipped, failovers, reloads, connFails := 0, 0, 0, 0
		for _, s := range c.ss {
			skipped += s.Skipped
			failovers += s.Failovers
			reloads += s.FailoverReloads
			connFails += s.ConnectFailures
			if !s.OK {
				t.Errorf("%s session %d failed: %s", c.name, s.Session, s.Error)
			}
		}
		t.Logf("%s: %d/%d sessions ok, %d fragments, %d stalls (%d ms), %d errors, %d fragments skipped, %d failovers (%d reloads), %d failed connects, http %v",
			c.name, c.agg.SessionsOK, c.agg.Sessions, c.agg.Fragments, c.agg.Stalls, c.agg.StallMS, c.agg.Errors, skipped, failovers, reloads, connFails, c.agg.HTTPStatus)
		refused += connFails
		if c.agg.SessionsOK != c.n || c.agg.Stalls != 0 {
			t.Errorf("%s: %d of %d sessions ok, %d stalls", c.name, c.agg.SessionsOK, c.n, c.agg.Stalls)
		}
		// No fragment is lost: a live playlist reload after the kill
		// points the dead sender's blocks at their replicas, and a
		// fragment that failed at the dead sender (an on-demand manifest
		// is not reloaded, a DASH player fetches with its last MPD) is
		// fetched at the replica the player's failover reload names
		// (docs/cluster.md).
		if skipped > 0 {
			t.Errorf("%s: %d fragments skipped", c.name, skipped)
		}
	}
	t.Logf("players: %d connection attempts failed (refused at the dead sender, then made at the next address of the name)", refused)

	once.Do(func() {}) // the kill ran (or the run was too short)
	if killed.IsZero() {
		t.Fatal("the players finished before the sender was killed")
	}

	// The scheduler served manifests only.
	for _, kind := range []string{"fragment", "init"} {
		if n, err := scrapeMetric(sched.base, "sluice_requests_total", `kind="`+kind+`"`); err != nil || n != 0 {
			t.Errorf("the scheduler served %v %s requests (%v)", n, kind, err)
		}
	}
	m, _ := scrapeMetric(sched.base, "sluice_requests_total", `kind="manifest"`)
	ram, disk, _ := sendTotals(t, senders)
	t.Logf("scheduler: %v manifest requests; surviving senders sent %d blocks from RAM, %d from disk (the killed one's counts are gone)", m, ram, disk)
	fallbacks := 0.0
	for _, s := range senders {
		if s != victim {
			n, err := scrapeMetric(s.base, "sluice_sender_fallback_requests_total")
			if err != nil {
				t.Errorf("%s: %v", s.name, err)
			}
			fallbacks += n
		}
	}
	t.Logf("killed %s at %s; the survivors served %v requests that fell back from the first owner of an owner-set name", victim.name, killed.Format("15:04:05.000"), fallbacks)
	// The players did meet the dead sender (on-demand manifests are never
	// reloaded): requests for names it headed went to the next owner.
	if fallbacks == 0 {
		t.Error("no request fell back to a replica at the senders: the kill was not exercised")
	}

	// After the kill, manifests name owner sets of survivors only, and
	// every segment is the origin's, byte for byte.
	alive := map[string]bool{}
	for _, s := range senders {
		if s != victim {
			alive[s.name] = true
		}
	}
	client := hostsClient(names)
	survivors := func(host string) bool {
		label, _, _ := strings.Cut(host, ".")
		for _, id := range strings.Split(label, "--") {
			if !alive[id] {
				return false
			}
		}
		return len(names[host]) > 0
	}
	for _, point := range []string{"vod", "live"} {
		segs := sessionSegments(t, sched.base, point, "")
		if point == "live" {
			segs = newest(segs, 6)
		}
		checked := 0
		for _, sg := range segs {
			u, err := url.Parse(sg.url)
			if err != nil || !survivors(u.Hostname()) {
				t.Errorf("%s: segment URL %s does not name an owner set of surviving senders", point, sg.url)
				continue
			}
			code, got := getWith(t, client, sg.url)
			ocode, want := get(t, originBase+"/"+point+".isml/tracks/"+sg.track+"/"+sg.file)
			if code != 200 || ocode != 200 || !bytes.Equal(got, want) {
				t.Errorf("%s %s/%s: sender %d (%d bytes), origin %d (%d bytes)", point, sg.track, sg.file, code, len(got), ocode, len(want))
			}
			checked++
		}
		t.Logf("%s: %d segments (inits included) identical at the senders and the origin", point, checked)
	}
}

// sessSegment is one URL of a session's media playlists.
type sessSegment struct {
	url, track, file string
}

var segURLRe = regexp.MustCompile(`(?m)^(?:#EXT-X-MAP:URI=")?(https?://[^"\s]+/b/[^/]+/(.+)/([^/]+)/([^/"]+\.(?:m4s|mp4)))"?$`)

// sessionSegments opens an HLS session at the scheduler and returns the
// init and segment URLs of all its media playlists.
func sessionSegments(t *testing.T, sched, point, query string) []sessSegment {
	t.Helper()
	code, master := get(t, sched+"/s/"+point+"/master.m3u8"+query)
	if code != 200 {
		return nil
	}
	var out []sessSegment
	for _, line := range strings.Split(string(master), "\n") {
		line = strings.TrimSpace(line)
		var pl string
		switch {
		case strings.HasPrefix(line, "/s/"):
			pl = line
		case strings.Contains(line, `URI="/s/`):
			pl = line[strings.Index(line, `URI="`)+5:]
			pl = pl[:strings.IndexByte(pl, '"')]
		default:
			continue
		}
		code, body := get(t, sched+pl)
		if code != 200 {
			t.Errorf("media playlist %s: %d", pl, code)
			continue
		}
		for _, m := range segURLRe.FindAllStringSubmatch(string(body), -1) {
			out = append(out, sessSegment{url: m[1], track: m[3], file: m[4]})
		}
	}
	return out
}

// newest keeps the inits and the last n segments of each track.
func newest(segs []sessSegment, n int) []sessSegment {
	byTrack := map[string][]sessSegment{}
	var out []sessSegment
	for _, s := range segs {
		if s.file == "init.mp4" {
			out = append(out, s)
			continue
		}
		byTrack[s.track] = append(byTrack[s.track], s)
	}
	for _, ss := range byTrack {
		out = append(out, ss[max(0, len(ss)-n):]...)
	}
	return out
}

// newestLiveOwner opens an HLS session at the scheduler and returns the
// first owner of the newest fragment of its first video playlist (an
// owner-set name). It may run off the test's goroutine.
func newestLiveOwner(sched, point string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	read := func(u string) (string, error) {
		resp, err := c.Get(u)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("GET %s: %d", u, resp.StatusCode)
		}
		return string(b), err
	}
	master, err := read(sched + "/s/" + point + "/master.m3u8")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(master, "\n") {
		if !strings.HasPrefix(line, "/s/") || !strings.Contains(line, "video") {
			continue
		}
		pl, err := read(sched + strings.TrimSpace(line))
		if err != nil {
			return "", err
		}
		ms := segURLRe.FindAllStringSubmatch(pl, -1)
		if len(ms) == 0 {
			return "", fmt.Errorf("no fragments in %s", line)
		}
		u, err := url.Parse(ms[len(ms)-1][1])
		if err != nil {
			return "", err
		}
		if ids := cluster.OwnerSetMembers(u.Hostname()); len(ids) > 0 {
			return ids[0], nil
		}
		return "", fmt.Errorf("%s: not an owner-set name", u.Host)
	}
	return "", fmt.Errorf("no video playlist in the master playlist")
}
