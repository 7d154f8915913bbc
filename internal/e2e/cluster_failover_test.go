package e2e

import (
	"errors"
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
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	originBase = "http://" + addr
	origin := startProc(t, "origin", filepath.Join(art, "origin.log"), bin, "origin", "--listen", addr,
		"--data", shmDir(t, "origin"), "--point", "live", "--senders", senderList(senders), "--replicas", "2",
		"--cluster-secret", e2eClusterSecret)
	waitHTTP(t, originBase+"/healthz", 30*time.Second, origin)
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
// refuses (403) a segment whose token is forged, expired, or issued for
// another block, and serves the genuine one.
func TestClusterTokens(t *testing.T) {
	ffmpeg := requireFFmpeg(t)
	root := repoRoot(t)
	tmp := t.TempDir()
	bin := buildSluice(t, root, tmp)
	var senders []*clSender
	for i := 0; i < 3; i++ {
		senders = append(senders, startClSender(t, bin, fmt.Sprintf("sender-%d", i), shmDir(t, fmt.Sprintf("s%d", i)), "--ram", "16M"))
	}
	// A 4 s asset: on-demand tokens live the TTL plus twice the asset's
	// duration, so the expiry check waits only a few seconds.
	mp4 := filepath.Join(tmp, "short.mp4")
	if out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=22050",
		"-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k", mp4).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	data := shmDir(t, "origin")
	runAll(t, 1, [][]string{{bin, "import", "--data", data, mp4, "vod"}})
	runAll(t, 1, [][]string{{bin, "sender-load", "--senders", senderList(senders), "--replicas", "2", "--cluster-secret", e2eClusterSecret, data, "vod"}})
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	origin := startProc(t, "origin", filepath.Join(artifactsDir(t), "origin.log"), bin, "origin", "--listen", addr, "--data", data)
	waitHTTP(t, "http://"+addr+"/healthz", 30*time.Second, origin)
	sched := startClSched(t, bin, "scheduler", "http://"+addr, "--senders", senderList(senders))
	short := startClSched(t, bin, "scheduler-short", "http://"+addr, "--senders", senderList(senders), "--token-ttl", "1s")

	segs := sessionSegments(t, sched.base, "vod", "")
	var video, audio *sessSegment
	for i := range segs {
		s := &segs[i]
		if s.file == "init.mp4" {
			continue
		}
		if strings.HasPrefix(s.track, "video") && video == nil {
			video = s
		}
		if strings.HasPrefix(s.track, "audio") && audio == nil {
			audio = s
		}
	}
	if video == nil || audio == nil {
		t.Fatalf("no video and audio segments in the session: %+v", segs)
	}
	status := func(u string) int {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	tokenOf := func(u string) string { return strings.Split(u, "/")[4] }
	withToken := func(u, tok string) string {
		parts := strings.Split(u, "/")
		parts[4] = tok
		return strings.Join(parts, "/")
	}
	forged := cluster.Sign([]byte("not-the-cluster-secret"), cluster.Token{Session: "x", Point: "vod", Track: video.track, Expires: time.Now().Add(time.Hour)})
	tok := tokenOf(video.url)
	tampered := tok[:len(tok)-3] + map[bool]string{true: "AAA", false: "BBB"}[!strings.HasSuffix(tok, "AAA")]
	for _, c := range []struct {
		name string
		url  string
		want int
	}{
		{"genuine", video.url, 200},
		{"forged (other secret)", withToken(video.url, forged), 403},
		{"tampered signature", withToken(video.url, tampered), 403},
		{"audio token on a video block", withToken(video.url, tokenOf(audio.url)), 403},
		{"video token on an audio block", withToken(audio.url, tok), 403},
		{"other point", strings.Replace(video.url, "/vod/", "/other/", 1), 403},
	} {
		if got := status(c.url); got != c.want {
			t.Errorf("%s: %d, want %d (%s)", c.name, got, c.want, c.url)
		}
	}

	// Expiry: a token of the short-TTL scheduler works at once and is
	// refused once expired (TTL 1 s + twice the 4 s asset, rounded up).
	ss := sessionSegments(t, short.base, "vod", "")
	var su string
	for _, s := range ss {
		if s.file != "init.mp4" {
			su = s.url
			break
		}
	}
	if got := status(su); got != 200 {
		t.Fatalf("fresh short-lived token: %d", got)
	}
	exp, err := tokenExpiry(tokenOf(su))
	if err != nil {
		t.Fatal(err)
	}
	if wait := time.Until(exp) + 1100*time.Millisecond; wait > 20*time.Second {
		t.Fatalf("short token expires in %v", wait)
	} else {
		t.Logf("waiting %v for the token to expire", wait.Round(time.Millisecond))
		time.Sleep(wait)
	}
	if got := status(su); got != 403 {
		t.Errorf("expired token: %d, want 403", got)
	}
}

// tokenExpiry reads the expiry of a token (cluster.Verify with the right
// secret reports it).
func tokenExpiry(tok string) (time.Time, error) {
	tk, err := cluster.Verify([]byte(e2eClusterSecret), tok, cluster.BlockID{}, time.Now())
	if err != nil && !errors.Is(err, cluster.ErrToken) {
		return time.Time{}, err
	}
	if tk.Expires.IsZero() {
		return time.Time{}, fmt.Errorf("token %q: %v", tok, err)
	}
	return tk.Expires, nil
}
