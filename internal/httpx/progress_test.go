package httpx

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// smallBuffers gives accepted connections a small send buffer, so that a
// client that reads slowly holds the writer back after a few KiB.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(32 << 10)
	}
	return c, err
}

// progressServer serves body (from memory with Write, or as a file with
// http.ServeContent) through WriteProgress and reports each response's
// write error.
func progressServer(t *testing.T, timeout time.Duration, body []byte, file bool) (string, <-chan error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if file {
			f, _ := os.Open(path)
			defer f.Close()
			cw := NewCountingWriter(w) // as the servers wrap it
			http.ServeContent(cw, r, "", time.Time{}, f)
			if cw.Bytes < int64(len(body)) {
				errs <- fmt.Errorf("sent %d of %d bytes", cw.Bytes, len(body))
				return
			}
			errs <- nil
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		for b := body; len(b) > 0; b = b[min(len(b), 1<<20):] {
			if _, err := w.Write(b[:min(len(b), 1<<20)]); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	})
	ts := httptest.NewUnstartedServer(WriteProgress(h, timeout, 0))
	ts.Listener = smallBuffers{ts.Listener}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts.Listener.Addr().String(), errs
}

// request opens a connection with a small receive buffer and sends a GET.
func request(t *testing.T, addr string) net.Conn {
	t.Helper()
	// Set before connecting: the window scale is agreed on at the
	// handshake.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	t.Cleanup(func() { c.Close() })
	return c
}

// TestWriteProgressCutsStalledReader: a client that never reads its
// response is cut once timeout passes without progress (memory and file
// bodies); one that reads slowly but steadily gets every byte.
func TestWriteProgressCutsStalledReader(t *testing.T) {
	const timeout = 300 * time.Millisecond
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<20/16) // 1 MiB
	for _, file := range []bool{false, true} {
		t.Run(fmt.Sprintf("file=%v", file), func(t *testing.T) {
			addr, errs := progressServer(t, timeout, body, file)
			request(t, addr) // never reads
			select {
			case err := <-errs:
				if err == nil {
					t.Fatal("the whole body went to a client that reads nothing")
				}
				t.Logf("stalled reader cut: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("a response without progress was not cut")
			}

			// 32 KiB every 20 ms: ~1.6 MB/s, far slower than loopback,
			// each 4 KiB chunk takes well under the timeout.
			c := request(t, addr)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 0, len(body))
			buf := make([]byte, 32<<10)
			start := time.Now()
			for len(got) < len(body) {
				n, err := resp.Body.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("slow reader got %d of %d bytes", len(got), len(body))
			}
			if err := <-errs; err != nil {
				t.Fatalf("slow but steady reader cut after %v: %v", time.Since(start), err)
			}
			t.Logf("slow reader read %d bytes in %v", len(got), time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestWriteProgressIdleHandler: a handler that waits without writing (a
// live pull between fragments) is not cut, and writes again afterwards.
func TestWriteProgressIdleHandler(t *testing.T) {
	h := WriteProgress(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first\n"))
		http.NewResponseController(w).Flush()
		time.Sleep(600 * time.Millisecond) // twice the timeout
		w.Write([]byte("second\n"))
	}), 300*time.Millisecond, 0)
	ts := httptest.NewServer(h)
	defer ts.Close()
	resp, err := http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != "first\nsecond\n" {
		t.Fatalf("%q %v", b, err)
	}
}

func TestChunkSize(t *testing.T) {
	for _, c := range []struct {
		timeout time.Duration
		rate    int64
		want    int
	}{
		{30 * time.Second, 0, maxChunk},
		{30 * time.Second, 12500, 93750}, // pacing's default 100 kbit/s floor
		{300 * time.Millisecond, 0, 4915},
		{time.Millisecond, 0, minChunk},
	} {
		if got := ChunkSize(c.timeout, c.rate); got != c.want {
			t.Errorf("ChunkSize(%v, %d) = %d, want %d", c.timeout, c.rate, got, c.want)
		}
	}
}

// BenchmarkServeFile measures what the chunks of WriteProgress cost a
// file response sent with sendfile (2 MiB, loopback, one client): plain,
// and with the chunk of the default pacing floor (92 KiB) and the
// unpaced one (256 KiB).
func BenchmarkServeFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(path, bytes.Repeat([]byte{1}, 2<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	file := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, _ := os.Open(path)
		defer f.Close()
		http.ServeContent(NewCountingWriter(w), r, "", time.Time{}, f)
	})
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"plain", file},
		{"chunk=92KiB", WriteProgress(file, 30*time.Second, 12500)},
		{"chunk=256KiB", WriteProgress(file, 30*time.Second, 0)},
	} {
		b.Run(c.name, func(b *testing.B) {
			ts := httptest.NewServer(c.h)
			defer ts.Close()
			b.SetBytes(2 << 20)
			for b.Loop() {
				resp, err := http.Get(ts.URL)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
