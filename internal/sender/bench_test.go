package sender

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
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
)

// BenchmarkServe compares the cost of one block response over loopback:
//
//   - ram: a pinned block, from its memfd with sendfile;
//   - disk: an unpinned block from the block directory (page cache warm),
//     with sendfile;
//   - disk-cold: the same after dropping the file from the page cache
//     (posix_fadvise DONTNEED) before each request: a real disk read;
//   - heap-copy: the same bytes from a []byte on the Go heap
//     (http.ServeContent over a bytes.Reader: a user-space copy per
//     response, the naive RAM cache).
//
// Client and server share the process: cpu-us/op is the process CPU time
// (user+system) per response, client included, so compare the variants
// with each other. Run: go test -run '^$' -bench Serve -benchtime 2000x ./internal/sender
func BenchmarkServe(b *testing.B) {
	for _, size := range []int{200 << 10, 2 << 20} {
		for _, variant := range []string{"ram", "disk", "disk-cold", "heap-copy"} {
			b.Run(fmt.Sprintf("%s/%dKiB", variant, size>>10), func(b *testing.B) { benchServe(b, variant, size) })
		}
	}
}

func benchServe(b *testing.B, variant string, size int) {
	dir := b.TempDir()
	d, err := blockstore.OpenDisk(dir)
	if err != nil {
		b.Fatal(err)
	}
	st, err := blockstore.New(blockstore.Options{Backend: d, RAMBudget: 64 << 20, NoAdmitOnMiss: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s, err := New(Options{ID: "bench", Secret: secret, Store: st})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	id := cluster.BlockID{Point: "ch", Track: "video_5000000", Start: 0}
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	if _, err := st.Put(ctx, id, body); err != nil {
		b.Fatal(err)
	}
	st.Backend().PutInit(ctx, "ch", "video_5000000", []byte("init"), "video/mp4")
	if variant == "ram" {
		if ps := st.Pin(ctx, "bench", cluster.Pin{Session: "s", Block: id}); ps != blockstore.Pinned {
			b.Fatal(ps)
		}
		st.WaitLoaded(ctx, id)
	}
	blockFile := filepath.Join(dir, "ch", "video_5000000", "0.m4s")
	mux := http.NewServeMux()
	s.Routes(mux)
	mux.HandleFunc("/heap", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "video/mp4")
		h.Set("Cache-Control", "private, max-age=60")
		h.Set("ETag", `"f-0-`+strconv.Itoa(len(body))+`"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnContext = netconn.ConnContext
	srv.Start()
	defer srv.Close()
	tok := cluster.Sign(secret, cluster.Token{Session: "s", Point: "ch", Track: "video_5000000", Expires: time.Now().Add(time.Hour)})
	url := srv.URL + "/b/" + tok + "/ch/video_5000000/0.m4s"
	if variant == "heap-copy" {
		url = srv.URL + "/heap"
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	buf := make([]byte, 256<<10)
	fetch := func() {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != int64(len(body)) {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
	dropCache := func() {
		if f, err := os.Open(blockFile); err == nil {
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
			f.Close()
		}
	}
	fetch() // connection and page cache warm
	var r0, r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if variant == "disk-cold" {
			dropCache()
		}
		fetch()
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cpu := time.Duration(r1.Utime.Nano()-r0.Utime.Nano()+r1.Stime.Nano()-r0.Stime.Nano()) * time.Nanosecond
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
	stats := s.Stats()
	switch {
	case variant == "ram" && stats.SendsDisk > 0, (variant == "disk" || variant == "disk-cold") && stats.SendsRAM > 0:
		b.Fatalf("variant %s: sends %+v", variant, stats)
	}
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
