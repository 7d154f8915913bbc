package sender

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-media/sluice/internal/blockstore"
	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/netconn"
	"github.com/sluice-media/sluice/internal/placement"
)

// BenchmarkServe compares the server CPU cost of one block response over
// loopback:
//
//   - ram: a pinned block, from its memfd with sendfile;
//   - ram-copy: a pinned block written from a read-only mapping of its
//     memfd (blockstore.Options.CopyRAM: off the Go heap, one user-to-kernel
//     copy);
//   - disk: an unpinned block from the block directory (page cache warm),
//     with sendfile;
//   - disk-cold: the same after dropping the file from the page cache
//     (posix_fadvise DONTNEED) before each request: a real disk read;
//   - heap-copy: the same bytes from a []byte on the Go heap
//     (http.ServeContent over a bytes.Reader: a user-space copy per
//     response, the naive RAM cache).
//
// The server runs in a child process (this test binary re-executed), so
// srv-cpu-us/op is the server's CPU time (user+system, /proc/<pid>/stat)
// per response and cli-cpu-us/op the client's. With SLUICE_BENCH_PIN=1 the
// server is pinned to CPU 1 and the client to CPU 0 (as the sender
// benchmarks of bench/README.md are).
// Run: go test -run '^$' -bench Serve -benchtime 2000x ./internal/sender
func BenchmarkServe(b *testing.B) {
	for _, size := range []int{200 << 10, 2 << 20} {
		srv := startBenchServer(b, size)
		for _, variant := range []string{"ram", "ram-copy", "disk", "disk-cold", "heap-copy"} {
			b.Run(fmt.Sprintf("%s/%dKiB", variant, size>>10), func(b *testing.B) { benchServe(b, srv, variant, size) })
		}
		srv.stop()
	}
}

// benchServer is the child process serving the benchmark's blocks.
type benchServer struct {
	cmd             *exec.Cmd
	stdin           io.WriteCloser
	base, copy, tok string
	coldFile        string
}

func (s *benchServer) stop() {
	s.stdin.Close()
	s.cmd.Wait()
}

// cpu is the child's user+system CPU time so far.
func (s *benchServer) cpu(b *testing.B) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func startBenchServer(b *testing.B, size int) *benchServer {
	dir := b.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestBenchServerChild$")
	cmd.Env = append(os.Environ(), "SLUICE_BENCH_SERVER="+dir, "SLUICE_BENCH_SIZE="+strconv.Itoa(size), "GOMAXPROCS=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 4 || f[0] != "READY" {
		b.Fatalf("bench server: %q %v", line, err)
	}
	if os.Getenv("SLUICE_BENCH_PIN") == "1" {
		var one, zero unix.CPUSet
		one.Set(1)
		zero.Set(0)
		unix.SchedSetaffinity(cmd.Process.Pid, &one)
		unix.SchedSetaffinity(0, &zero)
	}
	return &benchServer{cmd: cmd, stdin: stdin, base: f[1], copy: f[2], tok: f[3],
		coldFile: filepath.Join(dir, "ch", "video_5000000", "0.m4s")}
}

// TestBenchServerChild is the child process of BenchmarkServe (it does
// nothing in a normal test run).
func TestBenchServerChild(t *testing.T) {
	dir := os.Getenv("SLUICE_BENCH_SERVER")
	if dir == "" {
		t.Skip("only the child of BenchmarkServe")
	}
	size, _ := strconv.Atoi(os.Getenv("SLUICE_BENCH_SIZE"))
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	base, closeA := benchSender(t, dir, body, false)
	copyBase, closeB := benchSender(t, filepath.Join(dir, "copy"), body, true)
	tok := cluster.Sign(secret, cluster.Token{Session: "s", Point: "ch"})
	fmt.Printf("READY %s %s %s\n", base, copyBase, tok)
	io.Copy(io.Discard, os.Stdin) // until the benchmark closes stdin
	closeA()
	closeB()
}

// benchSender serves blocks 0 (on disk) and 1 (pinned in RAM) of body from
// a sender over a block directory.
func benchSender(t *testing.T, dir string, body []byte, copyRAM bool) (string, func()) {
	d, err := blockstore.OpenDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := blockstore.New(blockstore.Options{Backend: d, RAMBudget: 64 << 20, NoAdmitOnMiss: true, CopyRAM: copyRAM})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{ID: "bench", Secret: secret, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The bench session's token is valid for the run (a scheduler's grant).
	if _, err := s.Apply(ctx, cluster.Batch{Scheduler: "bench", Grants: []cluster.Grant{{Session: "s", Point: "ch"}}, GrantTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	for _, start := range []int64{0, 1} {
		if _, err := st.Put(ctx, cluster.BlockID{Point: "ch", Track: "video_5000000", Start: start}, body); err != nil {
			t.Fatal(err)
		}
	}
	st.Backend().PutInit(ctx, "ch", "video_5000000", []byte("init"), "video/mp4")
	ram := cluster.BlockID{Point: "ch", Track: "video_5000000", Start: 1}
	if ps := st.Pin(ctx, "bench", cluster.Pin{Session: "s", Block: ram}); ps != blockstore.Pinned {
		t.Fatal(ps)
	}
	st.WaitLoaded(ctx, ram)
	mux := http.NewServeMux()
	s.Routes(mux)
	mux.HandleFunc("/heap", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "video/mp4")
		h.Set("Cache-Control", "private, max-age=60")
		h.Set("ETag", `"f-0-`+strconv.Itoa(len(body))+`"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ConnContext: netconn.ConnContext}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() {
		srv.Close()
		st.Close()
	}
}

func benchServe(b *testing.B, srv *benchServer, variant string, size int) {
	url := srv.base + "/b/" + srv.tok + "/ch/video_5000000/1.m4s"
	base := srv.base
	switch variant {
	case "ram-copy":
		base = srv.copy
		url = base + "/b/" + srv.tok + "/ch/video_5000000/1.m4s"
	case "disk", "disk-cold":
		url = srv.base + "/b/" + srv.tok + "/ch/video_5000000/0.m4s"
	case "heap-copy":
		url = srv.base + "/heap"
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	defer client.CloseIdleConnections()
	buf := make([]byte, 256<<10)
	fetch := func() {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != int64(size/16*16) {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
	dropCache := func() {
		if f, err := os.Open(srv.coldFile); err == nil {
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
			f.Close()
		}
	}
	fetch() // connection and page cache warm
	pc := placement.NewClient(secret, nil)
	stats := func() cluster.SenderStats {
		st, err := pc.Stats(context.Background(), base)
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	st0 := stats()
	var r0, r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	s0 := srv.cpu(b)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if variant == "disk-cold" {
			dropCache()
		}
		fetch()
	}
	b.StopTimer()
	s1 := srv.cpu(b)
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cli := time.Duration(r1.Utime.Nano()-r0.Utime.Nano()+r1.Stime.Nano()-r0.Stime.Nano()) * time.Nanosecond
	st1 := stats()
	switch {
	case strings.HasPrefix(variant, "ram") && st1.SendsRAM-st0.SendsRAM != int64(b.N),
		strings.HasPrefix(variant, "disk") && st1.SendsDisk-st0.SendsDisk != int64(b.N):
		b.Fatalf("%s: sends %+v -> %+v", variant, st0, st1)
	}
	b.ReportMetric(float64((s1-s0).Microseconds())/float64(b.N), "srv-cpu-us/op")
	b.ReportMetric(float64(cli.Microseconds())/float64(b.N), "cli-cpu-us/op")
}

// BenchmarkRAMFootprint pins 256 MiB of 1 MiB blocks and reports where the
// bytes live: the Go heap (runtime.MemStats.HeapAlloc) stays small, the
// blocks are shared memory (Shmem of /proc/meminfo, system-wide: other
// processes add noise; the memfds are never mapped, so they are not in the
// process's RSS either), so GOGC never doubles them and no GOMEMLIMIT is
// needed.
// Run: go test -run '^$' -bench RAMFootprint -benchtime 1x ./internal/sender
func BenchmarkRAMFootprint(b *testing.B) {
	for i := 0; i < b.N; i++ {
		d, err := blockstore.OpenDisk(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		st, err := blockstore.New(blockstore.Options{Backend: d, RAMBudget: 300 << 20, NoAdmitOnMiss: true})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		body := bytes.Repeat([]byte("x"), 1<<20)
		var heap0 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&heap0)
		shm0 := procKiB("/proc/meminfo", "Shmem")
		for k := 0; k < 256; k++ {
			id := cluster.BlockID{Point: "ch", Track: "v", Start: int64(k)}
			st.Put(ctx, id, body)
			st.Pin(ctx, "s", cluster.Pin{Session: "x", Block: id})
		}
		for k := 0; k < 256; k++ {
			st.WaitLoaded(ctx, cluster.BlockID{Point: "ch", Track: "v", Start: int64(k)})
		}
		var heap1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&heap1)
		b.ReportMetric(float64(st.Stats().RAMBytes)/(1<<20), "cached-MiB")
		b.ReportMetric((float64(heap1.HeapAlloc)-float64(heap0.HeapAlloc))/(1<<20), "heap-growth-MiB")
		b.ReportMetric(float64(procKiB("/proc/meminfo", "Shmem")-shm0)/1024, "shmem-growth-MiB")
		st.Close()
	}
}

// procKiB reads a "<field>: N kB" line of a /proc file.
func procKiB(file, field string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
