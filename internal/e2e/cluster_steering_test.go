package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
)

// Player configurations with a 6 s buffer (play.mjs --player-config).
var sixSecondBuffer = map[string]string{
	"hls":   `{"maxBufferLength":6,"maxMaxBufferLength":6}`,
	"shaka": `{"streaming":{"bufferingGoal":6}}`,
	// (dash.js keeps 60 s of an asset over 10 min, "long form", unless
	// told otherwise.)
	"dash": `{"streaming":{"buffer":{"bufferTimeDefault":6,"bufferTimeAtTopQuality":6,"bufferTimeAtTopQualityLongForm":6}}}`,
}

// TestClusterSteering is the acceptance test of content steering (docs/cluster.md): hls.js, Shaka
// Player (DASH and HLS) and dash.js in Chromium play a live channel and
// then an on-demand asset through per-session manifests of a cluster of
// three senders (R = 2, membership in etcd, no DNS: the players reach the
// senders by their addresses), with a 6 s buffer each, across token
// renewals (--token-ttl 30s: the grants are renewed every 10 s), the
// kill -9 of a sender and its return. The scheduler is the sessions'
// content steering server (docs/cluster.md).
//
// In each phase the test opens the four sessions itself so that all of
// them start on the pathway of the sender it then kills (their default
// pathway), starts the players on them, kills that sender once it has
// served them, restarts it 20 s later and lets it rejoin. Meanwhile two
// groups of `sluice play` sessions play the same point (HLS and DASH), and
// the test reloads a session's DASH MPD, master playlist and every
// pathway's media playlists of its own. Checked, per phase:
//
//   - every browser player plays on to the end with no underrun (a sample
//     with no progress and less than 0.5 s buffered) and no fatal error
//     (dash.js reports a download error when a request of its pathway
//     failed before it moves to the next BaseURL: a warning, since it
//     goes on);
//   - each of them fetched something after the kill, none of it from the
//     dead sender (they moved to other pathways), and every segment any of
//     them received is the origin's, byte for byte (play.mjs --record);
//   - the sessions' grants were renewed at least three times;
//   - every URI listed in the MPD and the playlists is the same in every
//     reload (the master's, the BaseURLs, and each media sequence number's
//     URI on each pathway), across the renewals, the kill and the return;
//   - the `sluice play` sessions are all ok, with no stall and no skipped
//     fragment;
//   - the sender rejoined (the scheduler's live set is whole again).
//
// SLUICE_E2E_STEERING_SECONDS sets how long the players play (50 by
// default); SLUICE_E2E_STEERING_DEFAULTS=1 runs the scheduler with its
// default token TTL. The 12-minute run of docs/cluster.md is both:
// SLUICE_E2E_STEERING_SECONDS=720 SLUICE_E2E_STEERING_DEFAULTS=1.
func TestClusterSteering(t *testing.T) {
	longTest(t)
	t0 := time.Now()
	b := setupBrowser(t)
	ffmpeg := requireFFmpeg(t)
	webDir, art, tmp, bin := b.webDir, b.art, b.tmp, b.bin

	playFor := 50
	if v, err := strconv.Atoi(os.Getenv("SLUICE_E2E_STEERING_SECONDS")); err == nil && v > 0 {
		playFor = v
	}
	tokenTTL := []string{"--token-ttl", "30s"} // renewals every 10 s
	if os.Getenv("SLUICE_E2E_STEERING_DEFAULTS") == "1" {
		tokenTTL = nil
	}

	// The on-demand asset, encoded while the cluster starts.
	mp4 := filepath.Join(tmp, "vod.mp4")
	encoded := startAssetEncode(t, ffmpeg, mp4, playFor+40)

	cl := startSenderCluster(t, bin, art)
	etcd, senders, originBase := cl.etcd, cl.senders, cl.originBase
	sched := startClSched(t, bin, "scheduler", originBase, append(append(etcd.readerArgs(), "--replicas", "2",
		"--player-dir", filepath.Join(webDir, "node_modules")), tokenTTL...)...)
	ff := startProc(t, "ffmpeg", filepath.Join(art, "ffmpeg.log"), ffmpegLiveArgs(originBase+"/live.isml/Streams(live)")...)
	encoded()
	cl.loadAsset(t, bin, mp4, "vod")
	waitSessionsListed(t, sched.base, []string{"live"}, 4, ff)
	t.Logf("cluster and live channel up after %v", time.Since(t0).Round(time.Millisecond))

	origBytes := originCache{base: originBase, sums: map[string]string{}}
	// One phase per point, in this test (not a subtest: the restarted
	// sender must outlive its phase).
	for i, point := range []string{"live", "vod"} {
		t.Logf("phase %s", point)
		steeringPhase(t, bin, webDir, sched, senders, senders[1+i], point, playFor, &origBytes)
	}
	t.Logf("total %v", time.Since(t0).Round(time.Second))
}

// originCache fetches the origin's segments once and keeps their SHA-256.
type originCache struct {
	base string
	mu   sync.Mutex
	sums map[string]string // <point>/<track>/<file> -> sha256
}

func (o *originCache) sum(t *testing.T, point, track, file string) string {
	t.Helper()
	key := point + "/" + track + "/" + file
	o.mu.Lock()
	defer o.mu.Unlock()
	if s, ok := o.sums[key]; ok {
		return s
	}
	code, b := get(t, o.base+"/"+point+".isml/tracks/"+track+"/"+file)
	if code != 200 {
		t.Errorf("origin %s: %d", key, code)
		return ""
	}
	h := sha256.Sum256(b)
	o.sums[key] = hex.EncodeToString(h[:])
	return o.sums[key]
}

// senderPathway is the pathway ID of a sender (scheduler: "p" + label).
func senderPathway(id string) string { return "p" + cluster.PathwayLabel(id) }

// openOnPathway opens sessions at the scheduler until one starts on the
// given pathway (its default), and returns the session's manifest path.
func openOnPathway(t *testing.T, sched, point, file, pathway string) string {
	t.Helper()
	defRe := regexp.MustCompile(`defaultServiceLocation="([^"]+)"|#EXT-X-CONTENT-STEERING:[^\n]*PATHWAY-ID="([^"]+)"`)
	sidRe := regexp.MustCompile(`/s/` + point + `/~([0-9a-f]+)/`)
	for range 100 {
		code, body := get(t, sched+"/s/"+point+"/"+file)
		if code != 200 {
			t.Fatalf("open a session: %d %s", code, body)
		}
		m, s := defRe.FindSubmatch(body), sidRe.FindSubmatch(body)
		if m == nil || s == nil {
			t.Fatalf("no default pathway or session in\n%s", body)
		}
		if string(m[1])+string(m[2]) == pathway {
			return "/s/" + point + "/~" + string(s[1]) + "/" + file
		}
	}
	t.Fatalf("no session of %s opened on pathway %s in 100 tries", point, pathway)
	return ""
}

// steeringPhase plays point with the four browser players and two groups
// of `sluice play`, kills victim mid-run and restarts it, and checks what
// TestClusterSteering says.
func steeringPhase(t *testing.T, bin, webDir string, sched *clSched, senders []*clSender, victim *clSender, point string, playFor int, orig *originCache) {
	art := artifactsDir(t)
	pathway := senderPathway(victim.name)

	// The players' sessions, all on the victim's pathway.
	players := sessionPlayers()
	paths := map[*sessionPlayer]string{}
	for _, p := range players {
		paths[p] = openOnPathway(t, sched.base, point, p.file, pathway)
	}
	// The test's own sessions, reloaded until the end.
	ownMPD := openOnPathway(t, sched.base, point, "manifest.mpd", pathway)
	ownMaster := openOnPathway(t, sched.base, point, "master.m3u8", pathway)
	grantsBefore, _ := scrapeMetric(senders[0].base, "sluice_sender_session_grants_total")
	victimSends, _ := scrapeMetric(victim.base, "sluice_sender_sends_total")

	// The browsers, concurrently.
	played := playSessions(t, webDir, art, point, players, playFor, func(p *sessionPlayer) string { return sched.base + paths[p] })

	// Reload the own sessions' manifests every 2 s until the players are done.
	done := make(chan struct{})
	rec := &reloads{}
	go func() {
		for {
			rec.take(t, sched.base, ownMPD, ownMaster)
			select {
			case <-done:
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()

	// Kill the victim once it has served the players for a while, restart
	// it 20 s later.
	killAt, backAt := time.Time{}, time.Time{}
	waitUntil(t, 90*time.Second, "the players fetching from "+victim.name, func() (bool, string) {
		n, err := scrapeMetric(victim.base, "sluice_sender_sends_total")
		return err == nil && n >= victimSends+40, fmt.Sprintf("%v sends", n-victimSends)
	})
	// sluice play: HLS and DASH sessions on pathways of their own, from
	// now on (the browsers alone counted above).
	var plays []*clPlay
	for _, f := range []string{"master.m3u8", "manifest.mpd"} {
		plays = append(plays, startClPlay(t, bin, "--sessions", "3", "--ramp", "2s", "--duration", fmt.Sprintf("%ds", playFor+10),
			"--buffer", "6", "--log-level", "info", sched.base+"/s/"+point+"/"+f))
	}

	time.Sleep(8 * time.Second)
	killAt = time.Now()
	victim.kill(t)
	t.Logf("killed %s (pathway %s) at %s", victim.name, pathway, killAt.Format("15:04:05.000"))
	time.Sleep(20 * time.Second)
	// The dead window ends when the restart begins: the new process
	// serves as soon as it listens, before start sees it ready.
	backAt = time.Now()
	victim.start(t)
	waitUntil(t, 30*time.Second, victim.name+" back in the scheduler's live set", func() (bool, string) {
		n, err := scrapeMetric(sched.base, "sluice_scheduler_live_senders")
		return err == nil && n == 3, fmt.Sprintf("%v live senders", n)
	})
	t.Logf("%s restarted at %s, in the live set %v later", victim.name, backAt.Format("15:04:05.000"), time.Since(backAt).Round(100*time.Millisecond))

	played()
	close(done)
	for i, p := range plays {
		agg, ss := p.wait(t, time.Duration(playFor+120)*time.Second)
		if f := filepath.Join(art, "play-"+point+"-"+[]string{"hls", "dash"}[i]+".log"); os.WriteFile(f, append(p.out.Bytes(), p.errb.String()...), 0o644) == nil {
			t.Logf("sluice play output in %s", f)
		}
		skipped, failovers, switches := 0, 0, 0
		for _, s := range ss {
			skipped += s.Skipped
			failovers += s.Failovers
			switches += s.PathwaySwitches
			if !s.OK {
				t.Errorf("sluice play session %d: %s", s.Session, s.Error)
			}
		}
		t.Logf("sluice play %s: %d/%d ok, %d fragments, %d stalls, %d errors, %d skipped, %d failovers, %d pathway switches",
			[]string{"HLS", "DASH"}[i], agg.SessionsOK, agg.Sessions, agg.Fragments, agg.Stalls, agg.Errors, skipped, failovers, switches)
		if agg.SessionsOK != agg.Sessions || agg.Stalls != 0 || skipped != 0 {
			t.Errorf("sluice play %s: %d of %d ok, %d stalls, %d skipped", []string{"HLS", "DASH"}[i], agg.SessionsOK, agg.Sessions, agg.Stalls, skipped)
		}
	}

	// The browser players.
	victimHost := strings.TrimPrefix(victim.base, "http://")
	for _, p := range players {
		r := p.res
		checkPlayed(t, p.name, r)
		// A stall (a second without progress) with data buffered ahead is
		// the page not getting the CPU, not the network: say which.
		for i := 1; i < len(r.Samples); i++ {
			if adv := r.Samples[i].T - r.Samples[i-1].T; adv < 0.2 {
				t.Logf("%s: stall in second %d: advanced %.2f s with %.1f s buffered", p.name, i+1, adv, r.Samples[i].Buf)
			}
		}
		if b, err := json.Marshal(r); err == nil {
			_ = os.WriteFile(filepath.Join(art, "play-"+strings.NewReplacer(" ", "-", "(", "", ")", "", ".", "").Replace(p.name)+"-"+point+".json"), b, 0o644)
		}
		after, fromDead, checked := 0, 0, 0
		for _, f := range r.Fetched {
			u, err := url.Parse(f.URL)
			if err != nil {
				t.Errorf("%s fetched %q", p.name, f.URL)
				continue
			}
			at := time.UnixMilli(f.AtMS)
			if at.After(killAt) {
				after++
				// (A response that was on its way at the kill may arrive
				// a moment later.)
				if u.Host == victimHost && at.After(killAt.Add(time.Second)) && at.Before(backAt) {
					fromDead++
				}
			}
			parts := strings.Split(u.Path, "/") // "", "b", token, point..., track, file
			file, track := parts[len(parts)-1], parts[len(parts)-2]
			if want := orig.sum(t, point, track, file); want != f.SHA256 {
				t.Errorf("%s: %s differs from the origin's (%d bytes)", p.name, f.URL, f.Size)
			}
			checked++
		}
		t.Logf("%s: %d segments received, all checked against the origin; %d after the kill", p.name, checked, after)
		if after == 0 || fromDead > 0 {
			t.Errorf("%s: %d segments after the kill, %d of them from the dead sender", p.name, after, fromDead)
		}
	}

	// The grants were renewed at least three times.
	grants, _ := scrapeMetric(senders[0].base, "sluice_sender_session_grants_total")
	t.Logf("grants (and renewals) at %s during the phase: %v, for %d browser, 2 own and 6 sluice play sessions", senders[0].name, grants-grantsBefore, len(players))
	if grants-grantsBefore < 3*float64(len(players)) {
		t.Errorf("%v grants for %d player sessions: fewer than three renewals", grants-grantsBefore, len(players))
	}

	rec.check(t)
	if f := filepath.Join(art, "reloads-"+point+".json"); rec.save(f) == nil {
		t.Logf("manifest reloads in %s", f)
	}
}

// reloads records what a session's manifests list, reload after reload.
type reloads struct {
	mu       sync.Mutex
	mpd      []string            // BaseURLs, templates, Location and steering server of each MPD
	master   []string            // the URIs and pathways of each master playlist
	pathways map[string][]string // "<pathway> <track>" -> "<seq> <uri>" lines seen
	n        int
	failed   int // pathway playlists not loaded (their sender down)
}

var seqRe = regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`)

// take reloads the MPD, the master and every pathway's media playlists.
func (r *reloads) take(t *testing.T, sched, mpdPath, masterPath string) {
	c := &http.Client{Timeout: 5 * time.Second}
	var mpdKey string
	if body, err := fetchText(c, sched+mpdPath); err == nil {
		if m, err := parseSessionMPD(body); err == nil && m.ContentSteering != nil {
			b, _ := json.Marshal(struct {
				B, L any
				T    []string
				C    string
			}{m.BaseURL, m.Location, m.templates(), m.ContentSteering.Value})
			mpdKey = string(b)
		}
	}
	master, err := fetchText(c, sched+masterPath)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if mpdKey != "" {
		r.mpd = append(r.mpd, mpdKey)
	}
	if err != nil {
		return
	}
	r.master = append(r.master, masterURIs(master))
	base, _ := url.Parse(sched + masterPath)
	byPathway, _ := masterPlaylists(base, master)
	if r.pathways == nil {
		r.pathways = map[string][]string{}
	}
	for pw, uris := range byPathway {
		for _, u := range uris {
			pl, err := fetchPlaylist(c, u, pw)
			if err != nil {
				r.failed++
				continue
			}
			m := seqRe.FindStringSubmatch(pl.text)
			if m == nil {
				continue
			}
			var seq int
			fmt.Sscan(m[1], &seq)
			key := pw + " " + pl.track
			for i, su := range pl.uris {
				line := su
				if i > 0 { // the first is the EXT-X-MAP
					line = fmt.Sprintf("%d %s", seq+i-1, su)
				}
				if !slices.Contains(r.pathways[key], line) {
					r.pathways[key] = append(r.pathways[key], line)
				}
			}
		}
	}
}

// masterURIs keeps what names resources in a master playlist: the
// steering server, the pathway and group IDs and the URIs (not the
// bitrates, which follow the live window).
func masterURIs(master string) string {
	var b strings.Builder
	for _, line := range strings.Split(master, "\n") {
		for _, re := range []*regexp.Regexp{steeringURIRe, pathwayAttrRe, groupAttrRe, uriAttrRe} {
			for _, m := range re.FindAllString(line, -1) {
				b.WriteString(m + " ")
			}
		}
		if line != "" && !strings.HasPrefix(line, "#") {
			b.WriteString(line)
		}
		b.WriteString("\n")
	}
	return b.String()
}

var steeringURIRe = regexp.MustCompile(`SERVER-URI="[^"]+"`)

// check asserts that no reload listed another URI than a previous one for
// the same thing.
func (r *reloads) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 1; i < len(r.mpd); i++ {
		if r.mpd[i] != r.mpd[0] {
			t.Errorf("MPD reload %d lists other BaseURLs, template or steering server:\n%s\n---\n%s", i, r.mpd[0], r.mpd[i])
		}
	}
	for i := 1; i < len(r.master); i++ {
		if r.master[i] != r.master[0] {
			t.Errorf("master reload %d differs:\n%s\n---\n%s", i, r.master[0], r.master[i])
		}
	}
	lines := 0
	for key, ls := range r.pathways {
		seen := map[string]string{} // seq -> uri
		for _, l := range ls {
			seq, uri, ok := strings.Cut(l, " ")
			if !ok {
				seq, uri = "map", l
			}
			if old, dup := seen[seq]; dup && old != uri {
				t.Errorf("%s: sequence %s listed as %s and as %s", key, seq, old, uri)
			}
			seen[seq] = uri
			lines++
		}
	}
	t.Logf("%d reloads: %d MPDs, %d masters, %d media playlists of %d pathways × tracks (%d URIs, %d unavailable while their sender was down): every listed URI the same in every reload",
		r.n, len(r.mpd), len(r.master), lines, len(r.pathways), lines, r.failed)
	if len(r.mpd) < 10 || len(r.master) < 10 || len(r.pathways) == 0 {
		t.Errorf("too few reloads: %d MPDs, %d masters, %d pathway playlists", len(r.mpd), len(r.master), len(r.pathways))
	}
}

// save writes the records to a file.
func (r *reloads) save(file string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := json.MarshalIndent(map[string]any{"mpd": r.mpd, "pathways": r.pathways, "failed": r.failed}, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}
