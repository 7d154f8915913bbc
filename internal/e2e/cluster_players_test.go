package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
)

// TestClusterPlayers is the main acceptance test of the scheduler (docs/cluster.md):
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
//     fragment, which dash.js, near the live edge, asks for next; hls.js
//     and Shaka Player play the live HLS session (its direct pathway, the
//     owner-set names) across the kill at the same time, with no failed
//     request and no underrun;
//   - the scheduler served manifests only: no fragment or init request
//     reached it, and every segment URL of its manifests names an owner
//     set;
//   - the bytes of every segment a session manifest lists (the asset whole,
//     the live window's newest segments) and of every init segment are the
//     origin's, byte for byte;
//   - after the kill, the blocks listed from then on name owner sets of
//     surviving senders only; those listed before keep their names.
func TestClusterPlayers(t *testing.T) {
	longTest(t)
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
	encoded := startAssetEncode(t, ffmpeg, mp4, 60)

	cl := startSenderCluster(t, bin, art)
	etcd, senders, port, originBase := cl.etcd, cl.senders, cl.port, cl.originBase
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

	encoded()
	cl.loadAsset(t, bin, mp4, "vod")

	// Wait for the live channel to list 4 segments of every track in a
	// session: a live `sluice play` session starts 3 segments behind the
	// newest, and one that starts with fewer listed has the live edge
	// right behind it (sessions that started on 2 segments ran out of
	// audio, whose first fragment is shorter, after 9.94 s of play when a
	// fragment was listed a little late).
	waitSessionsListed(t, sched.base, []string{"live"}, 4, ff, sched.p)
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
	pub := watchPublication("at the origin (video)", originBase+"/live.isml/Manifest", func(b string) string {
		if i := strings.Index(b, "</StreamIndex>"); i > 0 {
			return b[:i]
		}
		return b
	})
	defer pub.stop(t)
	// The scheduler's listing of the live audio (a session's direct
	// pathway playlist: it changes only when a fragment is listed).
	if pls, err := sessionPlaylists(http.DefaultClient, sched.base, "live", ""); err == nil {
		for _, pl := range pls {
			if strings.Contains(pl.url, "/audio") {
				lst := watchPublication("at the scheduler (audio, direct pathway)", pl.url, func(b string) string { return b })
				defer lst.stop(t)
				break
			}
		}
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
		// hls.js and Shaka Player play the live HLS session at the same
		// time, on its direct pathway (the owner-set names).
		var hlsWG sync.WaitGroup
		hlsRes := map[string]*playResult{}
		for _, kind := range []string{"hls", "shaka"} {
			res := &playResult{}
			hlsRes[kind] = res
			hlsWG.Add(1)
			go func() {
				defer hlsWG.Done()
				env := playEnv{prefix: chromium.prefix, env: append([]string{"SLUICE_PLAYER_CONFIG=" + sixSecondBuffer[kind]}, chromium.env...)}
				*res = runPlayIn(t, env, webDir, sched.base+"/s/live/master.m3u8", kind, 24, 20, filepath.Join(art, kind+"-live.png"))
			}()
		}
		r := runPlayIn(t, chromium, webDir, sched.base+"/s/live/manifest.mpd", "dash", 24, 20, filepath.Join(art, "dashjs-live.png"))
		checkPlay(t, r, 20)
		// An underrun is the cluster failing the player (no progress with
		// nothing buffered); a stall with a full buffer is the page not
		// getting the CPU on a loaded machine (play.mjs).
		if r.Underruns > 0 {
			t.Errorf("dash.js ran out of media %d times (%d stalls in all)", r.Underruns, r.Stalls)
		}
		hlsWG.Wait()
		for kind, hr := range hlsRes {
			checkPlay(t, *hr, 20)
			var ws []string
			for _, w := range hr.Warnings {
				ws = append(ws, string(w))
			}
			// The names resolve to the live owners: no request fails.
			if hr.Underruns > 0 || strings.Contains(strings.Join(ws, " "), "fragLoadError") {
				t.Errorf("%s (HLS, direct pathway) across the kill: %d underruns, warnings %s", kind, hr.Underruns, ws)
			}
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

	// After the kill, a block listed before it keeps its name (a listed
	// URL never changes: the asset's), which still resolves to a surviving
	// owner; a block listed after it (the live channel's newest) names
	// surviving owners only. Every segment is the origin's, byte for byte.
	alive := map[string]bool{}
	for _, s := range senders {
		if s != victim {
			alive[s.name] = true
		}
	}
	client := hostsClient(names)
	survivors := func(host string, all bool) bool {
		label, _, _ := strings.Cut(host, ".")
		n := 0
		ids := strings.Split(label, "--")
		for _, id := range ids {
			if alive[id] {
				n++
			}
		}
		return len(names[host]) > 0 && (n == len(ids) || !all && n > 0)
	}
	for _, point := range []string{"vod", "live"} {
		segs := sessionSegments(t, sched.base, point, "")
		if point == "live" {
			segs = newest(segs, 6)
		}
		checked := 0
		for _, sg := range segs {
			u, err := url.Parse(sg.url)
			if err != nil || !survivors(u.Hostname(), point == "live" && sg.file != "init.mp4") {
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

// newestLiveOwner opens an HLS session at the scheduler and returns the
// first owner of the newest fragment of its first video playlist on the
// direct pathway (an owner-set name). It may run off the test's goroutine.
func newestLiveOwner(sched, point string) (string, error) {
	pls, err := sessionPlaylists(http.DefaultClient, sched, point, "")
	if err != nil {
		return "", err
	}
	for _, pl := range pls {
		if !strings.Contains(pl.track, "video") {
			continue
		}
		segs := pl.segments()
		if len(segs) == 0 {
			return "", fmt.Errorf("no fragments in %s", pl.url)
		}
		u, err := url.Parse(segs[len(segs)-1].url)
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

// publication watches a live manifest (part of it: every 200 ms) and
// records the longest time between two changes (new fragments): a live
// player at the edge with a 6 s buffer stalls when the encoder (ffmpeg,
// starved of CPU on a small machine) publishes nothing for that long, or
// the scheduler lists nothing new (fragments it holds back until a sender
// confirms them).
type publication struct {
	what string
	quit chan struct{}
	done chan struct{}
	last time.Time // when the newest fragment appeared
	gap  time.Duration
	at   time.Time // when the longest gap ended
}

func watchPublication(what, manifest string, part func(string) string) *publication {
	p := &publication{what: what, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		prev := ""
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-tick.C:
			}
			resp, err := http.Get(manifest)
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				continue
			}
			body := part(string(b))
			if body == prev {
				continue
			}
			now := time.Now()
			if prev != "" && now.Sub(p.last) > p.gap {
				p.gap, p.at = now.Sub(p.last), now
			}
			prev, p.last = body, now
		}
	}()
	return p
}

func (p *publication) stop(t *testing.T) {
	close(p.quit)
	<-p.done
	t.Logf("live publication %s: longest time without a new fragment %v (ended %s)", p.what, p.gap.Round(10*time.Millisecond), p.at.Format("15:04:05.000"))
}
