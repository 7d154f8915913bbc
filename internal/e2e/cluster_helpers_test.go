package e2e

// Helpers of the scheduler acceptance tests (cluster_*_test.go): a cluster
// of real `sluice sender`, `sluice origin` and `sluice scheduler` processes
// on 127.0.0.1, players (`sluice play`, dash.js in Chromium) against the
// scheduler, and readings of the senders' counters.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
)

// clSender is a `sluice sender` that can be killed and started again on the
// same port and block directory.
type clSender struct {
	name, dir, addr, base string
	args                  []string
	p                     *proc
}

// startClSender starts a sender on a free port with its block directory in
// dir and waits until it is ready.
func startClSender(t *testing.T, bin, name, dir string, extra ...string) *clSender {
	t.Helper()
	return startClSenderAt(t, bin, name, dir, "127.0.0.1:"+strconv.Itoa(freePort(t)), extra...)
}

// startClSenderAt starts a sender listening on addr.
func startClSenderAt(t *testing.T, bin, name, dir, addr string, extra ...string) *clSender {
	t.Helper()
	s := &clSender{name: name, dir: dir, addr: addr}
	s.base = "http://" + s.addr
	s.args = append([]string{bin, "sender", "--listen", s.addr, "--data", dir,
		"--cluster-secret", e2eClusterSecret}, extra...)
	s.start(t)
	return s
}

func (s *clSender) start(t *testing.T) {
	t.Helper()
	s.p = startProc(t, s.name, filepath.Join(artifactsDir(t), s.name+"-"+strconv.FormatInt(time.Now().UnixNano()%1e6, 10)+".log"), s.args...)
	waitHTTP(t, s.base+"/readyz", 30*time.Second, s.p)
}

// kill ends the sender with SIGKILL and waits for it (it may run on
// another goroutine than the test's).
func (s *clSender) kill(t *testing.T) {
	syscall.Kill(-s.p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not die", s.name)
	}
}

// clSched is a `sluice scheduler` process.
type clSched struct {
	base string
	p    *proc
}

// startClSched starts a scheduler on a free port reading the timeline from
// origin, with the given membership and region flags, and waits until it
// answers.
func startClSched(t *testing.T, bin, name, origin string, extra ...string) *clSched {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	args := append([]string{bin, "scheduler", "--listen", addr, "--origin", origin,
		"--cluster-secret", e2eClusterSecret, "--id", name}, extra...)
	p := startProc(t, name, filepath.Join(artifactsDir(t), name+".log"), args...)
	s := &clSched{base: "http://" + addr, p: p}
	waitHTTP(t, s.base+"/healthz", 30*time.Second, p)
	return s
}

// senderList is the --senders value for a set of senders.
func senderList(ss []*clSender) string {
	var out []string
	for _, s := range ss {
		out = append(out, s.base)
	}
	return strings.Join(out, ",")
}

// sendTotals sums the senders' sends from RAM and from disk.
func sendTotals(t *testing.T, ss []*clSender) (ram, disk int64, stats []cluster.SenderStats) {
	t.Helper()
	for _, s := range ss {
		if s.p.exited() {
			continue
		}
		st := fetchSenderStats(t, s.base)
		ram += st.SendsRAM
		disk += st.SendsDisk
		stats = append(stats, st)
	}
	return ram, disk, stats
}

// clPlayAggregate is the aggregate line of `sluice play --json --sessions N`.
type clPlayAggregate struct {
	Aggregate  bool           `json:"aggregate"`
	Sessions   int            `json:"sessions"`
	SessionsOK int            `json:"sessions_ok"`
	Stalls     int            `json:"stalls"`
	StallMS    int64          `json:"stall_ms"`
	Fragments  int            `json:"fragments"`
	Errors     int            `json:"errors"`
	Skipped    int            `json:"skipped"`
	Failovers  int            `json:"failovers"`
	Bytes      int64          `json:"bytes"`
	HTTPStatus map[string]int `json:"http_status"`
}

// clPlaySession is one session line of `sluice play --json`.
type clPlaySession struct {
	Session   int    `json:"session"`
	SessionID string `json:"sid"`
	OK        bool   `json:"ok"`
	Error     string `json:"error"`
	Stalls    int    `json:"stalls"`
	Fragments int    `json:"fragments"`
	Skipped   int    `json:"skipped"`
	Errors    int    `json:"errors"`
	// Failovers: fragments fetched at the URL a reloaded manifest named
	// after their own URL failed; FailoverReloads: the reloads for that.
	Failovers       int `json:"failovers"`
	FailoverReloads int `json:"failover_reloads"`
	// ConnectFailures: connection attempts that failed, each address of a
	// name apart (an owner-set name's dead member).
	ConnectFailures int `json:"connect_failures"`
	// PathwaySwitches: moves to another content-steering pathway after a
	// failure.
	PathwaySwitches int `json:"pathway_switches"`
}

// clPlay is a running `sluice play --json`.
type clPlay struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	errb   *tailBuffer
	done   chan struct{}
	runErr error
}

// startClPlay starts `sluice play --json` with args (flags, then the URL).
func startClPlay(t *testing.T, bin string, args ...string) *clPlay {
	t.Helper()
	return startClPlayIn(t, nil, bin, args...)
}

// startClPlayIn starts `sluice play --json` behind a command prefix (e.g.
// inHostsNamespace).
func startClPlayIn(t *testing.T, prefix []string, bin string, args ...string) *clPlay {
	t.Helper()
	p := &clPlay{errb: &tailBuffer{max: 4 << 20}, done: make(chan struct{})}
	argv := append(append(append([]string{}, prefix...), bin, "play", "--json"), args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, p.errb
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start sluice play: %v", err)
	}
	go func() { p.runErr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

// wait waits for the players (at most timeout) and parses their report.
func (p *clPlay) wait(t *testing.T, timeout time.Duration) (clPlayAggregate, []clPlaySession) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		t.Fatalf("sluice play did not finish within %v; stderr:\n%s", timeout, p.errb)
	}
	var agg clPlayAggregate
	var sessions []clPlaySession
	sc := bufio.NewScanner(bytes.NewReader(p.out.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.Contains(line, []byte(`"aggregate":true`)) {
			if err := json.Unmarshal(line, &agg); err != nil {
				t.Fatalf("play aggregate: %v", err)
			}
			continue
		}
		var s clPlaySession
		if err := json.Unmarshal(line, &s); err == nil {
			sessions = append(sessions, s)
		}
	}
	if !agg.Aggregate && len(sessions) == 1 {
		s := sessions[0]
		agg = clPlayAggregate{Aggregate: true, Sessions: 1, Stalls: s.Stalls, Fragments: s.Fragments, Errors: s.Errors}
		if s.OK {
			agg.SessionsOK = 1
		}
	}
	if !agg.Aggregate {
		t.Fatalf("sluice play printed no aggregate (%v); stdout:\n%.4000s\nstderr:\n%s", p.runErr, p.out.String(), p.errb)
	}
	return agg, sessions
}

// shmDir returns a fresh directory on tmpfs (/dev/shm) when there is one,
// else a temporary directory: the tests write thousands of small blocks,
// and fsync on a VM disk would dominate their run time. The "mass storage"
// of the senders is then RAM too, but what the tests measure is the
// senders' own RAM tier (their hit counters), which does not care.
func shmDir(t *testing.T, name string) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "sluice-e2e-"+name+"-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// runAll runs the commands concurrently (at most par at a time) and fails
// the test when one fails.
func runAll(t *testing.T, par int, cmds [][]string) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, par)
	errs := make(chan string, len(cmds))
	for _, c := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput()
			if err != nil {
				errs <- fmt.Sprintf("%v: %v\n%s", c[1:], err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

// redirector answers /next.m3u8 (and /next.mpd) with a redirect to the
// scheduler URL next() returns, and every other path with a redirect to the
// same path at the scheduler: one `sluice play --sessions N` process then
// plays N different (point, position) sessions.
func redirector(t *testing.T, sched string, next func(ext string) string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/next.m3u8":
			http.Redirect(w, r, sched+next("m3u8"), http.StatusFound)
		case "/next.mpd":
			http.Redirect(w, r, sched+next("mpd"), http.StatusFound)
		default:
			http.Redirect(w, r, sched+r.URL.RequestURI(), http.StatusFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// requireFFmpeg fails the test when ffmpeg is missing.
func requireFFmpeg(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatalf("ffmpeg is required (apt-get install ffmpeg): %v", err)
	}
	return p
}

// startAssetEncode starts ffmpeg encoding the on-demand asset of the
// session tests into mp4: secs seconds of a 320x180 test pattern at
// 400 kbit/s with 2 s GOPs, and 48 kbit/s AAC. The encoding runs while the
// test starts its processes; the returned func waits for it and fails the
// test if ffmpeg failed.
func startAssetEncode(t *testing.T, ffmpeg, mp4 string, secs int) (wait func()) {
	t.Helper()
	enc := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=22050",
		"-t", strconv.Itoa(secs), "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-b:v", "400k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "48k", mp4)
	var out bytes.Buffer
	enc.Stdout, enc.Stderr = &out, &out
	if err := enc.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := enc.Wait(); err != nil {
			t.Fatalf("ffmpeg (asset): %v\n%s", err, out.String())
		}
	}
}

// senderCluster is the storage side of the session tests: a real etcd,
// three senders (sender-0..2, 64 MB of RAM each) on one port at 127.0.0.11,
// .12 and .13 — distinct addresses, since Shaka Player bans a failed host by
// name, not by port, for a minute — and an origin that takes point "live"
// and writes it to the senders with two replicas.
type senderCluster struct {
	etcd       *e2eEtcd
	port       int // the senders' port
	senders    []*clSender
	data       string // the origin's data directory
	originBase string
	origin     *proc
}

// startSenderCluster starts a senderCluster and waits until every part
// answers; the origin logs to origin.log in art.
func startSenderCluster(t *testing.T, bin, art string) *senderCluster {
	t.Helper()
	c := &senderCluster{etcd: startEtcdServer(t), port: freePort(t)}
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("sender-%d", i)
		c.senders = append(c.senders, startClSenderAt(t, bin, name, shmDir(t, fmt.Sprintf("s%d", i)), fmt.Sprintf("127.0.0.%d:%d", 11+i, c.port),
			append([]string{"--id", name, "--ram", "64M", "--etcd-ttl", "2s"}, c.etcd.senderArgs()...)...))
	}
	c.data = shmDir(t, "origin")
	c.originBase, c.origin = startOrigin(t, bin, c.data, append([]string{"--point", "live", "--replicas", "2", "--cluster-secret", e2eClusterSecret},
		c.etcd.readerArgs()...)...)
	return c
}

// loadAsset imports mp4 at the origin as point name and writes its blocks
// to the senders (sluice import, then sluice sender-load).
func (c *senderCluster) loadAsset(t *testing.T, bin, mp4, name string) {
	t.Helper()
	runAll(t, 1, [][]string{{bin, "import", "--data", c.data, mp4, name}})
	runAll(t, 1, [][]string{append(append([]string{bin, "sender-load"}, c.etcd.readerArgs()...), "--replicas", "2", "--cluster-secret", e2eClusterSecret, c.data, name)})
}

// startOrigin starts `sluice origin` over the data directory data on a free
// port of 127.0.0.1 with the given flags (points, senders, replicas, the
// cluster secret …), logging to origin.log in the test's artifacts. It
// returns the origin's base URL and process once /healthz answers.
func startOrigin(t *testing.T, bin, data string, args ...string) (string, *proc) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startProc(t, "origin", filepath.Join(artifactsDir(t), "origin.log"),
		append([]string{bin, "origin", "--listen", addr, "--data", data}, args...)...)
	base := "http://" + addr
	waitHTTP(t, base+"/healthz", 30*time.Second, p)
	return base, p
}
