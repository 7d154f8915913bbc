package evhttp

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// BenchmarkSmallResponse: one small response (a playlist-sized body) on a
// keep-alive connection, the client in the same process. What the server
// adds per response besides the bytes shows here: the request goroutine,
// the header, the descriptor handling.
func BenchmarkSmallResponse(b *testing.B) {
	body := make([]byte, 2000)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		w.Write(body)
	})}
	go s.Serve(ln)
	b.Cleanup(func() { s.Shutdown(b.Context()) })
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReaderSize(nc, 16<<10)
	req := []byte("GET /live/v.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n")
	get := func() {
		if _, err := nc.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != int64(len(body)) {
			b.Fatalf("%d bytes, %v", n, err)
		}
	}
	for range 10 {
		get()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		get()
	}
}
