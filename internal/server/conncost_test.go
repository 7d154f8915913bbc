package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/importer"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// What one connection and one response cost on the origin's serving path
// (docs/capacity.md); bench/viewers.sh measures the same against nginx.
//
//	go test -run '^$' -bench 'OriginResponse|OriginConn' -benchmem ./internal/server/

// originFragments imports the bundled sample and serves it with a
// `sluice origin` (pacing as by default) on a loopback port; it returns the
// address and the URL paths of the video fragments.
func originFragments(b *testing.B, engine string) (string, []string) {
	b.Helper()
	data := b.TempDir()
	if _, err := importer.Import(context.Background(), testmedia.Sample(b), importer.Options{DataDir: data, Asset: "vod"}); err != nil {
		b.Fatal(err)
	}
	var paths []string
	dirs, _ := filepath.Glob(filepath.Join(data, "vod", "t", "*"))
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.m4s"))
		for _, f := range files {
			paths = append(paths, "/vod.isml/tracks/"+filepath.Base(d)+"/"+filepath.Base(f))
		}
	}
	if len(paths) == 0 {
		b.Fatal("no fragments imported")
	}
	cfg := config.DefaultsFor("origin")
	cfg.Data = data
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTPEngine = engine
	s, err := Open(context.Background(), cfg, Roles{Origin: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := make(chan string, 1)
	go func() { done <- s.Serve(ctx, func(a string) { started <- a }) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case a := <-started:
		return a, paths
	case err := <-done:
		b.Fatal(err)
	}
	return "", nil
}

// rawClient is a keep-alive HTTP/1.1 client that allocates nothing per
// request, so that the benchmarks count the server's allocations.
type rawClient struct {
	conn net.Conn
	r    *bufio.Reader
	reqs [][]byte
}

func (c *rawClient) get(i int) (int64, error) {
	if _, err := c.conn.Write(c.reqs[i%len(c.reqs)]); err != nil {
		return 0, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return 0, fmt.Errorf("status %q", line)
	}
	n := int64(-1)
	for {
		line, err = c.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, _ = strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	if n < 0 {
		return 0, fmt.Errorf("no Content-Length")
	}
	_, err = c.r.Discard(int(n))
	return n, err
}

func requests(addr string, paths []string) [][]byte {
	reqs := make([][]byte, len(paths))
	for i, p := range paths {
		reqs[i] = []byte("GET " + p + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")
	}
	return reqs
}

// BenchmarkOriginResponse: one fragment response on a keep-alive connection
// (B/op and allocs/op are the server's: the client allocates nothing).
func BenchmarkOriginResponse(b *testing.B) {
	for _, engine := range []string{config.EngineEventLoop, config.EngineNetHTTP} {
		b.Run(engine, func(b *testing.B) { benchResponse(b, engine) })
	}
}

func benchResponse(b *testing.B, engine string) {
	addr, paths := originFragments(b, engine)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := &rawClient{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), reqs: requests(addr, paths)}
	var bytes int64
	for i := range 10 { // warm up the connection
		if _, err := c.get(i); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		n, err := c.get(i)
		if err != nil {
			b.Fatal(err)
		}
		bytes += n
	}
	b.SetBytes(bytes / int64(max(b.N, 1)))
}

// BenchmarkOriginConn: one op opens a connection, fetches one fragment on it
// and leaves it open. Reported per connection once all are open and idle:
// stack-B/conn (goroutine stacks, runtime.MemStats.StackInuse) and
// heap-B/conn (live heap after a GC). Run it with a fixed count, e.g.
// -benchtime 2000x; the client's side of each connection (a net.TCPConn,
// ~300 B of heap, no goroutine) is included in heap-B/conn.
func BenchmarkOriginConn(b *testing.B) {
	for _, engine := range []string{config.EngineEventLoop, config.EngineNetHTTP} {
		b.Run(engine, func(b *testing.B) { benchConn(b, engine) })
	}
}

func benchConn(b *testing.B, engine string) {
	addr, paths := originFragments(b, engine)
	reqs := requests(addr, paths)
	r := bufio.NewReaderSize(nil, 64<<10)
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	conns := make([]net.Conn, 0, b.N)
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, conn)
		r.Reset(conn)
		c := &rawClient{conn: conn, r: r, reqs: reqs}
		if _, err := c.get(i); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	time.Sleep(200 * time.Millisecond) // let the server's goroutines park after their responses
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	n := float64(b.N)
	b.ReportMetric(float64(int64(ms1.StackInuse)-int64(ms0.StackInuse))/n, "stack-B/conn")
	b.ReportMetric(float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc))/n, "heap-B/conn")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
	if p := os.Getenv("SLUICE_CONN_HEAP_PROFILE"); p != "" {
		writeHeap(b, p)
	}
}

// writeHeap writes a heap profile (in-use objects) to path.
func writeHeap(b *testing.B, path string) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}
