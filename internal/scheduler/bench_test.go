package scheduler

// The control-plane benchmark of bench/scheduler.sh: a real `sluice
// scheduler` process against simulated senders, a simulated origin and N
// simulated players, all in this test process; the scheduler's CPU time
// (utime+stime from /proc) over a measurement window gives its cost per
// session-second. It runs only when SLUICE_SCHED_BENCH_BIN names the sluice
// binary (not in CI).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/store"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// simSender is a sender that takes every pin and returns the sent reports
// the simulated players queue for it.
type simSender struct {
	srv     *http.Server
	url     string
	mu      sync.Mutex
	reports []cluster.SentReport
	batches atomic.Int64
	ops     atomic.Int64
}

func (f *simSender) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/internal/v1/batch":
		var b cluster.Batch
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f.batches.Add(1)
		f.ops.Add(int64(len(b.LookAhead) + len(b.Send) + len(b.Cancel)))
		f.mu.Lock()
		res := cluster.BatchResult{Sent: f.reports}
		f.reports = nil
		f.mu.Unlock()
		json.NewEncoder(w).Encode(res)
	case "/internal/v1/stats":
		json.NewEncoder(w).Encode(cluster.SenderStats{})
	default:
		http.NotFound(w, r)
	}
}

func (f *simSender) sent(r cluster.SentReport) {
	f.mu.Lock()
	f.reports = append(f.reports, r)
	f.mu.Unlock()
}

// simOrigin serves view.json: a live point whose window advances with the
// clock (2 s fragments, 2 video tracks and audio, 60 fragments), and a
// 10-minute on-demand point.
type simOrigin struct {
	start time.Time
}

func (o *simOrigin) view(name string) (store.View, bool) {
	mk := func(id, kind string, br int, first, n int64) store.TrackView {
		t := store.TrackView{ID: id, First: first, Info: media.TrackInfo{Kind: kind, Timescale: 1000, Bitrate: br,
			Codec: "avc1.64001F", SampleEntry: "avc1", Width: 640, Height: 360}}
		if kind == "audio" {
			t.Info.Codec, t.Info.SampleEntry = "mp4a.40.2", "mp4a"
		}
		for i := first; i < first+n; i++ {
			t.Frags = append(t.Frags, store.FragRef{Start: i * 2000, Duration: 2000, Size: 200000, Key: true})
		}
		return t
	}
	switch name {
	case "live":
		edge := int64(time.Since(o.start)/(2*time.Second)) + 60
		first := edge - 60
		return store.View{Name: name, Meta: store.PointMeta{Anchor: o.start.Add(-120 * time.Second)},
			Tracks: []store.TrackView{mk("v1", "video", 1000000, first, 60), mk("v2", "video", 500000, first, 60), mk("a", "audio", 128000, first, 60)}}, true
	case "vod":
		return store.View{Name: name, Meta: store.PointMeta{VOD: true, Anchor: o.start},
			Tracks: []store.TrackView{mk("v1", "video", 1000000, 0, 300), mk("v2", "video", 500000, 0, 300), mk("a", "audio", 128000, 0, 300)}}, true
	}
	return store.View{}, false
}

func (o *simOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), ".isml/view.json")
	v, ok := o.view(name)
	if !ok {
		http.NotFound(w, r)
		return
	}
	json.NewEncoder(w).Encode(v)
}

func serveOn(t *testing.T, h http.Handler) (string, *http.Server) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String(), srv
}

// procCPU is a process's user+system CPU time.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, nil // USER_HZ
}

var (
	// The master's first pathway's media playlists (at a sender), the
	// session ID (of the steering server's URI), and the segments of a
	// pathway playlist (relative).
	benchPlRe  = regexp.MustCompile(`http://[^/"\s]+/b/[^/]+/[^/]+/([^/]+)/media\.m3u8`)
	benchSidRe = regexp.MustCompile(`SERVER-URI="/s/[^/]+/~([0-9a-f]+)/steering\.json"`)
	benchSegRe = regexp.MustCompile(`(?m)^(\d+)\.m4s$`)
)

func TestControlPlaneBench(t *testing.T) {
	bin := os.Getenv("SLUICE_SCHED_BENCH_BIN")
	if bin == "" {
		t.Skip("control-plane benchmark: run bench/scheduler.sh (SLUICE_SCHED_BENCH_BIN unset)")
	}
	sessions := envInt("SESSIONS", 1000)
	nSenders := envInt("SENDERS", 4)
	warm := time.Duration(envInt("WARMUP_S", 10)) * time.Second
	window := time.Duration(envInt("WINDOW_S", 20)) * time.Second
	mode := os.Getenv("MODE")
	if mode == "" {
		mode = "live"
	}

	originURL, _ := serveOn(t, &simOrigin{start: time.Now()})
	senders := map[string]*simSender{}
	var list []string
	for i := 0; i < nSenders; i++ {
		f := &simSender{}
		f.url, f.srv = serveOn(t, f)
		senders[strings.TrimPrefix(f.url, "http://")] = f
		list = append(list, f.url)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "scheduler", "--listen", addr, "--origin", originURL, "--senders", strings.Join(list, ","),
		"--cluster-secret", "bench", "--log-level", "warn", "--session-idle", "30s")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://" + addr
	for i := 0; ; i++ {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			t.Fatal("scheduler did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 1024}, Timeout: 30 * time.Second}
	get := func(path string) (string, error) {
		resp, err := client.Get(base + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
		return string(b), err
	}
	var manifests, steering, errs atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		if errs.Add(1) == 1 {
			firstErr.Store(err.Error())
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	// Each simulated player: open with the master playlist, load the
	// lowest video and the audio playlist of its first pathway (as the
	// sender of that pathway asks for them: rel.m3u8), then every 2 s (one
	// fragment) reload them (live), fetch the next block of each (its first
	// owner reports the send) and poll the steering manifest (every 2 s, the
	// default TTL).
	ids := sortedIDs(senders)
	player := func(i int) {
		defer wg.Done()
		// On-demand sessions open at the start (their renderings are
		// shared) and then jump to a position of their own: the first
		// block they fetch moves their regions there, as a seek does.
		master, err := get("/s/" + mode + "/master.m3u8")
		if err != nil {
			fail(err)
			return
		}
		manifests.Add(1)
		pls := benchPlRe.FindAllStringSubmatch(master, 3)
		sm := benchSidRe.FindStringSubmatch(master)
		if len(pls) < 3 || sm == nil {
			fail(fmt.Errorf("master playlist: %.200s", master))
			return
		}
		sid := sm[1]
		base := "/s/" + mode + "/~" + sid + "/"
		// The audio rendition and the lowest video.
		use := []string{base + pls[0][1] + "/rel.m3u8", base + pls[2][1] + "/rel.m3u8"}
		next := map[string]int64{}    // by playlist: start of the next block
		tracks := map[string]string{} // by playlist: its track
		for j, pl := range use {
			tracks[pl] = pls[[]int{0, 2}[j]][1]
		}
		report := func(b cluster.BlockID) {
			owner := cluster.Owners(b.Key(), ids, 2)[0]
			senders[owner].sent(cluster.SentReport{Session: sid, Block: b, At: time.Now(), Bytes: 200000, FromRAM: true})
		}
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		first := true
		for {
			if _, err := get(base + "steering.json"); err != nil {
				fail(err)
			} else {
				steering.Add(1)
			}
			if first || mode == "live" {
				for _, pl := range use {
					body, err := get(pl)
					if err != nil {
						fail(err)
						continue
					}
					manifests.Add(1)
					// The block to fetch: the one after the last fetched,
					// or at first a few behind the edge (live) or at the
					// session's own position (on-demand).
					var st int64
					if next[pl] == 0 {
						segs := benchSegRe.FindAllStringSubmatch(body, -1)
						if len(segs) < 5 {
							continue
						}
						sg := segs[len(segs)-4]
						if mode == "vod" {
							sg = segs[(i*37)%len(segs)]
						}
						st, _ = strconv.ParseInt(sg[1], 10, 64)
					} else {
						st = next[pl]
						if !strings.Contains(body, "\n"+strconv.FormatInt(st, 10)+".m4s\n") {
							continue
						}
					}
					next[pl] = st + 2000
					report(cluster.BlockID{Point: mode, Track: tracks[pl], Start: st})
				}
				first = false
			} else {
				// On-demand: the playlist is loaded once; the player
				// fetches the next block of each track.
				for pl, st := range next {
					report(cluster.BlockID{Point: "vod", Track: tracks[pl], Start: st})
					next[pl] = st + 2000
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}
	t0 := time.Now()
	for i := 0; i < sessions; i++ {
		wg.Add(1)
		go player(i)
		// Open them over about 5 s.
		if d := 5 * time.Second / time.Duration(sessions); d > 0 && i%10 == 9 {
			time.Sleep(10 * d)
		}
	}
	t.Logf("%d sessions opened in %v (%d errors)", sessions, time.Since(t0).Round(time.Millisecond), errs.Load())
	time.Sleep(warm)
	cpu0, _ := procCPU(cmd.Process.Pid)
	m0, s0, b0, o0 := manifests.Load(), steering.Load(), totalBatches(senders), totalOps(senders)
	w0 := time.Now()
	time.Sleep(window)
	cpu1, _ := procCPU(cmd.Process.Pid)
	el := time.Since(w0)
	m1, s1, b1, o1 := manifests.Load(), steering.Load(), totalBatches(senders), totalOps(senders)
	rss := procRSS(cmd.Process.Pid)
	cancel()
	cpu := cpu1 - cpu0
	perSS := float64(cpu.Microseconds()) / (float64(sessions) * el.Seconds())
	// A live player reloads two media playlists per fragment (2 s): the
	// load asked for is one manifest per session-second. When the machine
	// cannot generate it, the figure per session-second is not reached:
	// the line says how much of it was.
	mps := float64(m1-m0) / el.Seconds()
	load := 1.0
	if mode == "live" {
		load = mps / float64(sessions)
	}
	fmt.Printf("RESULT mode=%s sessions=%d senders=%d window=%.1fs cpu=%.2fs (%.0f%% of a core) us_per_session_second=%.1f manifests/s=%.0f (%.0f%% of the live load) steering/s=%.0f us_per_manifest_incl_share=%.0f batches/s=%.1f ops/s=%.0f rss_mb=%.0f errors=%d\n",
		mode, sessions, nSenders, el.Seconds(), cpu.Seconds(), 100*cpu.Seconds()/el.Seconds(), perSS,
		mps, 100*load, float64(s1-s0)/el.Seconds(), float64(cpu.Microseconds())/max(float64(m1-m0), 1), float64(b1-b0)/el.Seconds(), float64(o1-o0)/el.Seconds(), rss, errs.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Printf("first error: %v\n", e)
	}
	if errs.Load() > int64(sessions/100) {
		t.Errorf("%d errors; the first: %v", errs.Load(), firstErr.Load())
	}
}

func sortedIDs(m map[string]*simSender) []string {
	var out []string
	for id := range m {
		out = append(out, id)
	}
	return out
}

func totalBatches(m map[string]*simSender) (n int64) {
	for _, f := range m {
		n += f.batches.Load()
	}
	return n
}

func totalOps(m map[string]*simSender) (n int64) {
	for _, f := range m {
		n += f.ops.Load()
	}
	return n
}

// procRSS is a process's resident set in MB.
func procRSS(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
