package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
)

// clusterLive starts three senders, an origin forwarding to them (R = 2)
// and a live channel "live" pushed into it by `sluice push --loop` of the
// sample, and waits until the channel has a few fragments.
func clusterLive(t *testing.T, bin, root string) (senders []*clSender, originBase string) {
	t.Helper()
	art := artifactsDir(t)
	for i := 0; i < 3; i++ {
		senders = append(senders, startClSender(t, bin, fmt.Sprintf("sender-%d", i), shmDir(t, fmt.Sprintf("s%d", i)), "--ram", "64M"))
	}
	originBase, origin := startOrigin(t, bin, shmDir(t, "origin"), "--point", "live", "--senders", senderList(senders), "--replicas", "2",
		"--cluster-secret", e2eClusterSecret)
	push := startProc(t, "push", filepath.Join(art, "push.log"), bin, "push", "--loop", "--epoch", "--retry", "--quiet",
		filepath.Join(root, "testdata", "sample", "sample.mp4"), originBase+"/live.isml/Streams(live)")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if push.exited() {
			t.Fatalf("sluice push exited: %v\n%s", push.err, push.out)
		}
		if code, master := get(t, originBase+"/live.isml/master.m3u8"); code == 200 {
			if code, pl := get(t, originBase+"/live.isml/"+firstPlaylist(string(master))); code == 200 && strings.Count(string(pl), ".m4s") >= 4 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live channel did not list 4 fragments within 30 s; origin log:\n%s", origin.out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return senders, originBase
}

// firstPlaylist returns the first media playlist URI of a master playlist.
func firstPlaylist(master string) string {
	for _, l := range strings.Split(master, "\n") {
		if strings.HasPrefix(l, "tracks/") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// failoverFront is what a load balancer in front of schedulers does: it
// forwards every request to the first scheduler that answers, and stays
// with it.
type failoverFront struct {
	URL     string
	targets []string
	cur     atomic.Int32
	moved   atomic.Int32 // requests that failed over
}

func newFailoverFront(t *testing.T, targets ...string) *failoverFront {
	f := &failoverFront{targets: targets}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var lastErr error
		for i := 0; i < len(f.targets); i++ {
			k := (int(f.cur.Load()) + i) % len(f.targets)
			req, _ := http.NewRequestWithContext(r.Context(), r.Method, f.targets[k]+r.URL.RequestURI(), nil)
			req.Header = r.Header.Clone()
			// As a proxy in front of schedulers should: the absolute URLs
			// of a DASH MPD (its steering server) name the front.
			req.Header.Set("X-Forwarded-Host", r.Host)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				lastErr = err
				if i == 0 {
					f.moved.Add(1)
				}
				f.cur.CompareAndSwap(int32(k), int32((k+1)%len(f.targets)))
				continue
			}
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
			resp.Body.Close()
			return
		}
		http.Error(w, fmt.Sprint("no scheduler answers: ", lastErr), http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// TestClusterSchedulerKill: two schedulers behind a failover front (what a
// load balancer does) and three senders; 10 live sessions play through the
// first. It is killed with SIGKILL mid-run. Checked: every sender drops the
// dead scheduler's pins when its lease runs out (3 s; the release is counted
// at the senders: lease expiry and pins released by lease), the second
// scheduler adopts the sessions at their next playlist reload and reserves
// ahead of them again (the senders report their sends to it), and the
// players play on without a stall.
func TestClusterSchedulerKill(t *testing.T) {
	longTest(t)
	root := repoRoot(t)
	tmp := t.TempDir()
	t0 := time.Now()
	bin := buildSluice(t, root, tmp)
	senders, originBase := clusterLive(t, bin, root)
	const lease = 3 * time.Second
	a := startClSched(t, bin, "scheduler-a", originBase, "--senders", senderList(senders), "--lease", lease.String())
	b := startClSched(t, bin, "scheduler-b", originBase, "--senders", senderList(senders), "--lease", lease.String())
	front := newFailoverFront(t, a.base, b.base)
	t.Logf("cluster up after %v", time.Since(t0).Round(time.Millisecond))

	const playFor = 30 * time.Second
	players := startClPlay(t, bin, "--sessions", "10", "--ramp", "2s", "--duration", playFor.String(), "--buffer", "6",
		front.URL+"/s/live/master.m3u8")
	time.Sleep(10 * time.Second)

	before := map[string]cluster.SenderStats{}
	leaseReleased := map[string]float64{}
	var held float64
	for _, s := range senders {
		before[s.addr] = fetchSenderStats(t, s.base)
		leaseReleased[s.addr], _ = scrapeMetric(s.base, "sluice_sender_pins_released_total", `reason="lease"`)
		n, _ := scrapeMetric(s.base, "sluice_sender_pins")
		held += n
	}
	aPins, _ := scrapeMetric(a.base, "sluice_scheduler_pins")
	aSessions, _ := scrapeMetric(a.base, "sluice_scheduler_sessions")
	killAt := time.Now()
	a.p.stop9(t)
	t.Logf("killed scheduler-a holding %v pins for %v sessions (the senders held %v pins)", aPins, aSessions, held)
	if aPins == 0 {
		t.Fatal("scheduler-a held no pins")
	}

	// Every sender drops scheduler-a's pins within the lease.
	released := map[string]time.Duration{}
	var releasedPins float64
	for len(released) < len(senders) && time.Since(killAt) < lease+5*time.Second {
		for _, s := range senders {
			if _, ok := released[s.addr]; ok {
				continue
			}
			if st := fetchSenderStats(t, s.base); st.LeaseExpiries > before[s.addr].LeaseExpiries {
				released[s.addr] = time.Since(killAt)
				n, _ := scrapeMetric(s.base, "sluice_sender_pins_released_total", `reason="lease"`)
				releasedPins += n - leaseReleased[s.addr]
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	var worst time.Duration
	for _, s := range senders {
		d, ok := released[s.addr]
		if !ok {
			t.Errorf("%s did not expire scheduler-a's lease within %v", s.name, lease+5*time.Second)
			continue
		}
		worst = max(worst, d)
		t.Logf("%s released scheduler-a's pins %v after the kill", s.name, d.Round(10*time.Millisecond))
	}
	t.Logf("pins released by lease expiry at the senders: %v (scheduler-a held %v); slowest release %v after the kill (lease %v)",
		releasedPins, aPins, worst.Round(10*time.Millisecond), lease)
	// The senders check leases every 100 ms and the stats are polled
	// every 50 ms, on a machine that may be loaded: allow for both.
	if worst > lease+500*time.Millisecond {
		t.Errorf("pins released %v after the kill, want within the lease %v", worst, lease)
	}
	// Scheduler-a's pins change every few hundred milliseconds: the count
	// read before the kill is close, not exact.
	if releasedPins == 0 || releasedPins < aPins/2 || releasedPins > 2*aPins {
		t.Errorf("%v pins released by lease expiry; scheduler-a held %v", releasedPins, aPins)
	}

	agg, sessions := players.wait(t, playFor+60*time.Second)
	adopted, _ := scrapeMetric(b.base, "sluice_scheduler_session_events_total", `event="adopted"`)
	sentB, _ := scrapeMetric(b.base, "sluice_scheduler_sent_blocks_total")
	pinsB, _ := scrapeMetric(b.base, "sluice_scheduler_pins")
	t.Logf("players: %d/%d ok, %d fragments, %d stalls, %d errors; scheduler-b adopted %v sessions, got %v sent reports, holds %v pins; %d requests failed over",
		agg.SessionsOK, agg.Sessions, agg.Fragments, agg.Stalls, agg.Errors, adopted, sentB, pinsB, front.moved.Load())
	for _, s := range sessions {
		if !s.OK {
			t.Errorf("session %d: %s", s.Session, s.Error)
		}
	}
	if agg.SessionsOK != 10 || agg.Stalls != 0 {
		t.Errorf("%d of 10 sessions ok, %d stalls", agg.SessionsOK, agg.Stalls)
	}
	if adopted < 10 || sentB == 0 {
		t.Errorf("scheduler-b adopted %v sessions and got %v sent reports; want the 10 sessions continued there", adopted, sentB)
	}
}

// stop9 kills a process group with SIGKILL and waits for it.
func (p *proc) stop9(t *testing.T) {
	t.Helper()
	if p.exited() {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not die", p.name)
	}
}

// TestClusterTokens checks, through the scheduler's URLs, that a sender
// serves a session's segments with its token and refuses (403) a forged or
// tampered token, one for another point, and one of a session no scheduler
// granted; that a session's token dies with the session (it idles out at
// its scheduler, which ends it at every sender); and that it outlives its
// scheduler as long as another one adopts the session (the senders offer it
// to a live scheduler), but not its scheduler's death without an adopter.
func TestClusterTokens(t *testing.T) {
	longTest(t)
	ffmpeg := requireFFmpeg(t)
	root := repoRoot(t)
	tmp := t.TempDir()
	bin := buildSluice(t, root, tmp)
	var senders []*clSender
	for i := 0; i < 3; i++ {
		senders = append(senders, startClSender(t, bin, fmt.Sprintf("sender-%d", i), shmDir(t, fmt.Sprintf("s%d", i)),
			"--ram", "16M", "--session-grace", "2s"))
	}
	mp4 := shortMP4(t, ffmpeg, tmp)
	data := shmDir(t, "origin")
	runAll(t, 1, [][]string{{bin, "import", "--data", data, mp4, "vod"}})
	runAll(t, 1, [][]string{{bin, "sender-load", "--senders", senderList(senders), "--replicas", "2", "--cluster-secret", e2eClusterSecret, data, "vod"}})
	originBase, _ := startOrigin(t, bin, data)
	short := []string{"--senders", senderList(senders), "--session-idle", "3s", "--token-ttl", "3s", "--lease", "1s"}
	sched := startClSched(t, bin, "scheduler", originBase, short...)

	segs := sessionSegments(t, sched.base, "vod", "")
	var video *sessSegment
	for i := range segs {
		if s := &segs[i]; s.file != "init.mp4" && strings.HasPrefix(s.track, "video") && video == nil {
			video = s
		}
	}
	if video == nil {
		t.Fatalf("no video segment in the session: %+v", segs)
	}
	status := func(u string) (int, string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	tokenOf := func(u string) string { return strings.Split(u, "/")[4] }
	withToken := func(u, tok string) string {
		parts := strings.Split(u, "/")
		parts[4] = tok
		return strings.Join(parts, "/")
	}
	tok := tokenOf(video.url)
	info, err := cluster.Verify([]byte(e2eClusterSecret), tok, cluster.BlockID{Point: "vod"})
	if err != nil {
		t.Fatalf("the session's token: %v", err)
	}
	forged := cluster.Sign([]byte("not-the-cluster-secret"), cluster.Token{Session: info.Session, Point: "vod"})
	tampered := tok[:len(tok)-3] + map[bool]string{true: "AAA", false: "BBB"}[!strings.HasSuffix(tok, "AAA")]
	stranger, _ := cluster.NewSessionID([]byte(e2eClusterSecret), time.Now().Add(-time.Hour), nil)
	time.Sleep(2 * time.Second) // past the senders' --session-grace since they started
	for _, c := range []struct {
		name   string
		url    string
		want   int
		reason string
	}{
		{"genuine", video.url, 200, ""},
		{"forged (other secret)", withToken(video.url, forged), 403, "bad signature"},
		{"tampered signature", withToken(video.url, tampered), 403, "invalid session token"},
		{"other point", strings.Replace(video.url, "/vod/", "/other/", 1), 403, "another publishing point"},
		{"a session no scheduler granted", withToken(video.url, cluster.Sign([]byte(e2eClusterSecret), cluster.Token{Session: stranger, Point: "vod"})), 403, "unknown session"},
	} {
		if got, body := status(c.url); got != c.want || !strings.Contains(body, c.reason) {
			t.Errorf("%s: %d %q, want %d with %q (%s)", c.name, got, body, c.want, c.reason, c.url)
		}
	}

	// head asks for the segment without renewing the session (a HEAD is
	// not a send: no sent-report reaches the scheduler).
	head := func(u string) (int, string) {
		resp, err := http.Head(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	// waitRefused polls u with HEAD until a sender refuses it (at most
	// within), and returns after how long, with the reason a GET gives.
	waitRefused := func(u string, within time.Duration) (time.Duration, string) {
		t.Helper()
		t0 := time.Now()
		for {
			if code, _ := head(u); code == 403 {
				_, body := status(u)
				return time.Since(t0), body
			}
			if time.Since(t0) > within {
				t.Fatalf("%s still valid %v later", u, within)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The session idles out (no manifest, no send for --session-idle 3 s):
	// its scheduler ends it at every sender; the token is refused at once.
	after, body := waitRefused(video.url, 15*time.Second)
	if !strings.Contains(body, "session ended") {
		t.Errorf("idle session: %q, want it ended", body)
	}
	t.Logf("an idle session's token was refused %v after its last use (--session-idle 3s)", after.Round(100*time.Millisecond))

	// A session of a scheduler that dies lives on at another scheduler
	// (a sender offers it to the next scheduler it hears from, which adopts
	// it): the token stays valid past its TTL while the player fetches.
	schedA := startClSched(t, bin, "scheduler-a", originBase, short...)
	segsA := sessionSegments(t, schedA.base, "vod", "")
	var seg string
	for _, s := range segsA {
		if s.file != "init.mp4" {
			seg = s.url
			break
		}
	}
	if code, _ := status(seg); code != 200 {
		t.Fatalf("scheduler-a's session: %d", code)
	}
	schedA.p.stop9(t)
	killed := time.Now()
	for time.Since(killed) < 8*time.Second {
		if code, body := status(seg); code != 200 {
			t.Fatalf("%v after its scheduler died: %d %q", time.Since(killed).Round(100*time.Millisecond), code, body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if n, _ := scrapeMetric(sched.base, "sluice_scheduler_session_events_total", `event="adopted"`); n < 1 {
		t.Errorf("the surviving scheduler adopted %v sessions", n)
	}
	// With no scheduler left to renew it, it expires with its grant.
	sched.p.stop9(t)
	after, body = waitRefused(seg, 15*time.Second)
	if !strings.Contains(body, "session expired") {
		t.Errorf("orphaned session: %q, want it expired", body)
	}
	t.Logf("with every scheduler dead, the token was refused %v later (--token-ttl 3s)", after.Round(100*time.Millisecond))
}

// shortMP4 encodes a 4 s progressive MP4 (320x180 H.264 at 25 fps with a
// key frame every second, AAC) into dir with ffmpeg and returns its path.
func shortMP4(t *testing.T, ffmpeg, dir string) string {
	t.Helper()
	mp4 := filepath.Join(dir, "short.mp4")
	if out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=22050",
		"-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k", mp4).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return mp4
}
