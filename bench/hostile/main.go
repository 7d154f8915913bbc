// Command hostile reproduces resource-exhaustion attacks (the ones
// docs/ingest.md, "Limits", bounds: oversized boxes, slow and idle pushes,
// push floods, slow readers) against a sluice binary and prints what it
// measured, so that
// one build can be compared with another under the same reproduction:
//
//	go build -o /tmp/sluice-old ./cmd/sluice     # on the old commit
//	go run ./bench/hostile -bin /tmp/sluice-old -case all
//
// Each case starts its own processes on free loopback ports in a temporary
// directory, and uses only flags every build has. Not run in CI: some cases
// wait minutes on a build that has the defect (that is the measurement).
// The full-disk case needs root (it mounts a tmpfs).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-media/sluice/internal/hostile"
)

var (
	bin    = flag.String("bin", "", "sluice binary to measure (required)")
	which  = flag.String("case", "all", "case to run: all, or a comma-separated list of "+strings.Join(caseNames(), ", "))
	sample = flag.String("sample", "", "sample MP4 for the good push (default: testdata/sample/sample.mp4 of this checkout)")
	keep   = flag.Bool("keep", false, "keep the temporary directory")
)

type benchCase struct {
	name, item string
	run        func(e *env)
}

var cases = []benchCase{
	{"bigbox", "7", bigBoxes},
	{"memflood", "7", memFlood},
	{"freeflood", "7", freeFlood},
	{"trickle", "8", trickle},
	{"readers", "9", slowReaders},
	{"junk", "10", junkIDs},
	{"fulldisk", "11", fullDisk},
	{"tmp", "12", tempFiles},
	{"disk", "14", diskErrors},
}

func caseNames() []string {
	var out []string
	for _, c := range cases {
		out = append(out, c.name)
	}
	return out
}

func main() {
	flag.Parse()
	if *bin == "" {
		flag.Usage()
		os.Exit(2)
	}
	if *sample == "" {
		_, file, _, _ := runtime.Caller(0)
		*sample = filepath.Join(filepath.Dir(file), "..", "..", "testdata", "sample", "sample.mp4")
	}
	want := map[string]bool{}
	for _, n := range strings.Split(*which, ",") {
		want[n] = true
	}
	for _, c := range cases {
		if !want["all"] && !want[c.name] {
			continue
		}
		dir, err := os.MkdirTemp("", "hostile-"+c.name+"-")
		if err != nil {
			log.Fatal(err)
		}
		e := &env{dir: dir}
		fmt.Printf("== item %s: %s (%s)\n", c.item, c.name, *bin)
		func() {
			defer e.stop()
			c.run(e)
		}()
		if !*keep {
			os.RemoveAll(dir)
		}
	}
}

// env holds the processes of one case.
type env struct {
	dir   string
	procs []*exec.Cmd
}

type node struct {
	base, data string
	cmd        *exec.Cmd
}

func (e *env) stop() {
	for _, c := range e.procs {
		c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range e.procs {
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.Process.Kill()
		}
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs `sluice <role> --listen ... --data <dir>/<name> args...` and
// waits for /healthz.
func (e *env) start(role, name string, args ...string) *node {
	port := freePort()
	n := &node{base: fmt.Sprintf("http://127.0.0.1:%d", port), data: filepath.Join(e.dir, name)}
	if i := indexOf(args, "--data"); i >= 0 {
		n.data = args[i+1]
	} else {
		args = append([]string{"--data", n.data}, args...)
	}
	argv := append([]string{role, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--log-level", "warn"}, args...)
	n.cmd = e.run(name, *bin, argv...)
	waitFor(30*time.Second, func() bool { c, _ := get(n.base + "/healthz"); return c == 200 })
	return n
}

func indexOf(ss []string, s string) int {
	for i, x := range ss {
		if x == s {
			return i
		}
	}
	return -1
}

func (e *env) run(name, path string, argv ...string) *exec.Cmd {
	logf, err := os.Create(filepath.Join(e.dir, name+".log"))
	if err != nil {
		log.Fatal(err)
	}
	c := exec.Command(path, argv...)
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.Start(); err != nil {
		log.Fatal(err)
	}
	e.procs = append(e.procs, c)
	return c
}

// goodPush starts `sluice push --loop` of the sample to point live,
// stream good, and waits until the ingest stored a few fragments.
func (e *env) goodPush(n *node) *exec.Cmd {
	c := e.run("good-push", *bin, "push", "--quiet", "--loop", *sample, n.base+"/live.isml/Streams(good)")
	waitFor(30*time.Second, func() bool { return fragments(n.base) >= 4 })
	return c
}

func get(url string) (int, []byte) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// fragments counts the fragments a node's StreamManifest of live lists,
// once per track.
func fragments(base string) int {
	_, b := get(base + "/live.isml/StreamManifest")
	var sm struct {
		Streams []struct {
			Tracks []struct {
				ID        string
				Fragments int
			}
		}
	}
	json.Unmarshal(b, &sm)
	seen, n := map[string]bool{}, 0
	for _, s := range sm.Streams {
		for _, t := range s.Tracks {
			if !seen[t.ID] {
				seen[t.ID] = true
				n += t.Fragments
			}
		}
	}
	return n
}

// metric sums a Prometheus metric's samples at base/metrics.
func metric(base, name string) float64 {
	_, b := get(base + "/metrics")
	sum := 0.0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name+" ") || strings.HasPrefix(l, name+"{") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func mem(c *exec.Cmd) hostile.Mem {
	m, _ := hostile.Memory(c.Process.Pid)
	return m
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// header returns the stored header and one fragment of the good stream.
func header(base string) (hdr, frag []byte) {
	resp, err := http.Get(base + "/live.isml/Streams(good)")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var buf []byte
	chunk := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(chunk)
		buf = append(buf, chunk[:n]...)
		var boxes [][]byte
		for off := 0; off+8 <= len(buf); {
			size := int(uint32(buf[off])<<24 | uint32(buf[off+1])<<16 | uint32(buf[off+2])<<8 | uint32(buf[off+3]))
			if size < 8 || off+size > len(buf) {
				break
			}
			boxes = append(boxes, buf[off:off+size])
			off += size
		}
		for i, b := range boxes {
			if string(b[4:8]) == "moof" && i+1 < len(boxes) {
				return hdr, append(append([]byte(nil), b...), boxes[i+1]...)
			}
			if string(b[4:8]) != "moof" {
				hdr = append(hdr, b...)
			}
		}
		hdr = nil
		if err != nil {
			log.Fatalf("pull: %v", err)
		}
	}
}

func push(ctx context.Context, url string, body hostile.Body) hostile.Answer {
	return hostile.Push(ctx, url, body)
}

func summary(as []hostile.Answer) string {
	counts := map[string]int{}
	var keys []string
	for _, a := range as {
		k := "no answer"
		if a.Status != 0 {
			k = strconv.Itoa(a.Status)
		}
		if counts[k] == 0 {
			keys = append(keys, k)
		}
		counts[k]++
	}
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d×%s", counts[k], k))
	}
	return strings.Join(parts, ", ")
}

// bigBoxes: 8 pushes declare 64 MiB boxes and send 4 MiB of each, twice:
// the second round runs on memory the first one left to the heap (a
// server that has run a while), which Go zeroes when it hands it out again.
func bigBoxes(e *env) {
	in := e.start("ingest", "ingest", "--point", "live")
	e.goodPush(in)
	hdr, _ := header(in.base)
	before := mem(in.cmd)
	var during hostile.Mem
	var answers []hostile.Answer
	start := time.Now()
	for round := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := push(ctx, fmt.Sprintf("%s/live.isml/Streams(big%d-%d)", in.base, round, i),
					hostile.Then(hostile.Bytes(hdr, hostile.BoxHeader(64<<20, "mdat"), make([]byte, 4<<20)), hostile.Hold))
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
			}()
		}
		time.Sleep(3 * time.Second)
		during = mem(in.cmd)
		wg.Wait()
		cancel()
	}
	fmt.Printf("RSS %s before, %s 3 s into the second round of 8 pushes that declare 64 MiB boxes and send 4 MiB (peak %s); answers after %v: %s\n",
		mib(before.RSS), mib(during.RSS), mib(mem(in.cmd).HWM), time.Since(start).Round(time.Second), summary(answers))
}

// memFlood: 8 pushes each send 60 MiB of a 64 MiB box as fast as they can.
func memFlood(e *env) {
	in := e.start("ingest", "ingest", "--point", "live")
	e.goodPush(in)
	hdr, _ := header(in.base)
	before := mem(in.cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	answers := make([]hostile.Answer, 8)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = push(ctx, fmt.Sprintf("%s/live.isml/Streams(mem%d)", in.base, i),
				hostile.Then(hostile.Bytes(hdr, hostile.BoxHeader(64<<20, "uuid")), hostile.Then(hostile.Repeat(make([]byte, 1<<20), 60), hostile.Hold)))
		}()
	}
	time.Sleep(5 * time.Second)
	during := mem(in.cmd)
	wg.Wait()
	fmt.Printf("RSS %s before, %s with 8 pushes holding 60 MiB each (peak %s); answers: %s; good push still stored: %v\n",
		mib(before.RSS), mib(during.RSS), mib(mem(in.cmd).HWM), summary(answers), stillStoring(in.base))
}

// stillStoring reports whether the good push stores a fragment within 10 s.
func stillStoring(base string) bool {
	n := fragments(base)
	return waitFor(10*time.Second, func() bool { return fragments(base) > n })
}

// freeFlood: one push sends 1 GiB of 1 MiB free boxes after a header.
func freeFlood(e *env) {
	in := e.start("ingest", "ingest", "--point", "live")
	e.goodPush(in)
	hdr, _ := header(in.base)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	sent := &countWriterBody{}
	a := push(ctx, in.base+"/live.isml/Streams(flood)", hostile.Then(hostile.Bytes(hdr), sent.body(hostile.Box("free", 1<<20), 1024)))
	fmt.Printf("1 GiB of free boxes: %v; %s sent before the answer; peak RSS %s\n", a, mib(sent.n.Load()), mib(mem(in.cmd).HWM))
}

type countWriterBody struct{ n atomicInt }

type atomicInt struct {
	mu sync.Mutex
	v  int64
}

func (a *atomicInt) Add(n int64) { a.mu.Lock(); a.v += n; a.mu.Unlock() }
func (a *atomicInt) Load() int64 { a.mu.Lock(); defer a.mu.Unlock(); return a.v }

func (c *countWriterBody) body(p []byte, n int) hostile.Body {
	return func(ctx context.Context, w io.Writer) error {
		for range n {
			if _, err := w.Write(p); err != nil {
				return err
			}
			c.n.Add(int64(len(p)))
		}
		return nil
	}
}

// trickle: one byte every 20 s into a declared 64 MiB box (the original
// reproduction), watched for up to 100 s.
func trickle(e *env) {
	in := e.start("ingest", "ingest", "--point", "live")
	e.goodPush(in)
	hdr, _ := header(in.base)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	a := push(ctx, in.base+"/live.isml/Streams(trickle)",
		hostile.Then(hostile.Bytes(hdr, hostile.BoxHeader(64<<20, "mdat")), hostile.Every(20*time.Second, []byte{0})))
	if a.Status == 0 {
		fmt.Printf("1 byte / 20 s into a 64 MiB box: not cut after %v (%v)\n", a.Elapsed.Round(time.Second), a.Err)
		return
	}
	fmt.Printf("1 byte / 20 s into a 64 MiB box: %v\n", a)
}

// slowReaders: 20 clients open Streams(good) and never read.
func slowReaders(e *env) {
	in := e.start("ingest", "ingest", "--point", "live")
	e.goodPush(in)
	time.Sleep(5 * time.Second)
	sock0, _ := hostile.Sockets(in.cmd.Process.Pid)
	c, err := hostile.SlowReaders(strings.TrimPrefix(in.base, "http://"), "/live.isml/Streams(good)", 20)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	waitFor(10*time.Second, func() bool { return metric(in.base, "sluice_pull_connections") >= 20 })
	closed := waitFor(150*time.Second, func() bool { return metric(in.base, "sluice_pull_connections") == 0 })
	sock1, _ := hostile.Sockets(in.cmd.Process.Pid)
	if !closed {
		fmt.Printf("20 pulls that read nothing: %v open after %v (server sockets %d before, %d now)\n",
			metric(in.base, "sluice_pull_connections"), time.Since(start).Round(time.Second), sock0, sock1)
		return
	}
	fmt.Printf("20 pulls that read nothing: all closed after %v (server sockets %d before, %d now)\n", time.Since(start).Round(time.Second), sock0, sock1)
}

// has reports whether the binary's `sluice ingest` has a flag.
func has(flag string) bool {
	out, _ := exec.Command(*bin, "ingest", "--help").CombinedOutput()
	return strings.Contains(string(out), "-"+flag+" ")
}

// junkIDs: 300 refused pushes with new stream ids, an origin pulling. The
// per-client push limit, where a build has one, is turned off: it would
// answer most of them 429, which is another measure.
func junkIDs(e *env) {
	args := []string{"--point", "live"}
	if has("push-rate") {
		args = append(args, "--push-rate", "0")
	}
	in := e.start("ingest", "ingest", args...)
	org := e.start("origin", "origin", "--point", "live", "--ingest", in.base)
	e.goodPush(in)
	waitFor(30*time.Second, func() bool { c, _ := get(org.base + "/readyz"); return c == 200 })
	hdr, _ := header(in.base)
	_, sm0 := get(in.base + "/live.isml/StreamManifest")
	g0 := metric(org.base, "go_goroutines")
	ctx := context.Background()
	var answers []hostile.Answer
	for i := range 300 {
		answers = append(answers, push(ctx, fmt.Sprintf("%s/live.isml/Streams(junk%d)", in.base, i), hostile.Bytes(hdr, bytes.Repeat([]byte{0xde, 0xad}, 64))))
	}
	_, sm1 := get(in.base + "/live.isml/StreamManifest")
	notReady, maxPulls, maxG := 0, 0.0, 0.0
	for range 90 {
		if c, _ := get(org.base + "/readyz"); c != 200 {
			notReady++
		}
		maxPulls = max(maxPulls, metric(org.base, "sluice_pull_streams_connected"))
		maxG = max(maxG, metric(org.base, "go_goroutines"))
		time.Sleep(time.Second)
	}
	fmt.Printf("300 junk pushes (%s): StreamManifest %d -> %d bytes; origin: /readyz not 200 for %d of 90 s, up to %.0f pulls connected, goroutines %.0f -> up to %.0f\n",
		summary(answers), len(sm0), len(sm1), notReady, maxPulls, g0, maxG)
}

// fullDisk: a tmpfs filled up to 32 KiB.
func fullDisk(e *env) {
	dir := filepath.Join(e.dir, "small")
	os.MkdirAll(dir, 0o755)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=160m"); err != nil {
		fmt.Printf("skipped: cannot mount a tmpfs (needs root): %v\n", err)
		return
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	in := e.start("ingest", "ingest", "--point", "live", "--data", filepath.Join(dir, "data"))
	e.goodPush(in)
	f, _ := os.Create(filepath.Join(dir, "filler"))
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	st, _ := f.Stat()
	f.Truncate(st.Size() - 32<<10)
	f.Close()
	n := fragments(in.base)
	time.Sleep(5 * time.Second) // the good push meets the full disk
	code, body := get(in.base + "/readyz")
	log500, _ := os.ReadFile(filepath.Join(e.dir, "ingest.log"))
	fmt.Printf("disk full (32 KiB left): /readyz %d %q; fragments stored in 5 s: %d; push refusals with 500 logged: %d\n",
		code, strings.TrimSpace(string(body)), fragments(in.base)-n, strings.Count(string(log500), "status=500"))
	os.Remove(filepath.Join(dir, "filler"))
	ok := waitFor(10*time.Second, func() bool { c, _ := get(in.base + "/readyz"); return c == 200 })
	fmt.Printf("space freed: ready again within 10 s: %v\n", ok)
}

// tempFiles: the temporary files a kill -9 leaves in point and stream
// directories (planted where writeFileAtomic makes them), then a start.
func tempFiles(e *env) {
	in := e.start("ingest", "ingest", "--point", "live")
	e.goodPush(in)
	e.stop()
	e.procs = nil
	plant := []string{
		filepath.Join(in.data, "live", ".tmp-111"),              // point.json being rewritten (anchor)
		filepath.Join(in.data, "live", "s", "good", ".tmp-222"), // stream header being written
		filepath.Join(in.data, "newpoint", ".tmp-333"),          // a point being created
	}
	for _, p := range plant {
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("partial"), 0o644)
	}
	e.start("ingest", "ingest2", "--point", "live", "--data", in.data)
	left := 0
	for _, p := range plant {
		if _, err := os.Stat(p); err == nil {
			left++
		}
	}
	fmt.Printf("temporary files left by a crash in point and stream directories: %d of %d still there after a start\n", left, len(plant))
}

// diskErrors: writes the filesystem refuses on the stream header, the
// anchor and the end of a track (a non-empty directory where the file
// goes).
func diskErrors(e *env) {
	tiny := filepath.Join(e.dir, "tiny.ismv")
	ff := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-t", "3", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=10",
		"-t", "3", "-f", "lavfi", "-i", "sine=sample_rate=8000", "-c:v", "libx264", "-g", "10", "-b:v", "20k", "-c:a", "aac", "-b:a", "16k",
		"-f", "ismv", "-movflags", "isml+frag_keyframe", tiny)
	if out, err := ff.CombinedOutput(); err != nil {
		log.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	body, _ := os.ReadFile(tiny)
	block := func(p string) { os.RemoveAll(p); os.MkdirAll(filepath.Join(p, "x"), 0o755) }
	ctx := context.Background()
	run := func(name string, setup func(in *node)) {
		in := e.start("ingest", "ingest-"+name, "--point", "live")
		setup(in)
		a := push(ctx, in.base+"/live.isml/Streams(s1)", hostile.Bytes(body))
		fmt.Printf("%s write refused: %v\n", name, a)
	}
	run("stream header", func(in *node) { block(filepath.Join(in.data, "live", "s", "s1", "header.mp4")) })
	run("anchor", func(in *node) {
		push(ctx, in.base+"/live.isml/Streams(probe)", hostile.Bytes(body[:8])) // creates the point
		block(filepath.Join(in.data, "live", "point.json"))
	})
	run("end of track", func(in *node) {
		push(ctx, in.base+"/live.isml/Streams(s1)", hostile.Bytes(body))
		ents, _ := os.ReadDir(filepath.Join(in.data, "live", "t"))
		for _, t := range ents {
			block(filepath.Join(in.data, "live", "t", t.Name(), "track.json"))
		}
	})
}
