// Package hostile drives hostile HTTP clients against a Sluice server —
// malformed and abusive pushes, readers that never read, slowloris — and
// reads a process's memory and sockets from /proc. The adversarial e2e
// suite (internal/e2e) and the before/after reproduction (bench/hostile)
// use it; nothing else imports it.
package hostile

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Answer is how a server answered one request.
type Answer struct {
	Status     int    // 0: no answer (Err says why)
	Reason     string // the first line of the body
	RetryAfter string
	Err        error
	Elapsed    time.Duration
}

func (a Answer) String() string {
	if a.Status == 0 {
		return fmt.Sprintf("no answer after %v: %v", a.Elapsed.Round(time.Millisecond), a.Err)
	}
	return fmt.Sprintf("%d after %v: %s", a.Status, a.Elapsed.Round(time.Millisecond), a.Reason)
}

// Body writes a push body as it goes; a write error means the server has
// answered (or ctx ended), and the body should stop.
type Body func(ctx context.Context, w io.Writer) error

// Push posts the body to url (chunked, as encoders send) with the headers
// given as "Key: value" strings, and returns the answer. It speaks HTTP/1.1
// over its own connection and reads the answer while it writes, as an
// encoder that checks statuses must: a server may answer in the middle of
// the body, and an answer read only after the body failed to go out can be
// lost. ctx bounds the push.
func Push(ctx context.Context, url string, body Body, headers ...string) Answer {
	start := time.Now()
	u, err := neturl.Parse(url)
	if err != nil {
		return Answer{Err: err}
	}
	conn, err := dial(u.Host, 0)
	if err != nil {
		return Answer{Err: err, Elapsed: time.Since(start)}
	}
	defer conn.Close()
	req := "POST " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nTransfer-Encoding: chunked\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	answered := make(chan Answer, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answered <- Answer{Err: err}
			return
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		a := Answer{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After")}
		a.Reason, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
		answered <- a
	}()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
			return
		}
		cw := chunkWriter{conn}
		if body(wctx, cw) == nil {
			io.WriteString(conn, "0\r\n\r\n")
		}
	}()
	var a Answer
	select {
	case a = <-answered:
	case <-ctx.Done():
		a.Err = ctx.Err()
	}
	a.Elapsed = time.Since(start)
	return a
}

// chunkWriter writes each Write as one HTTP/1.1 chunk.
type chunkWriter struct{ w io.Writer }

func (c chunkWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if _, err := fmt.Fprintf(c.w, "%x\r\n", len(p)); err != nil {
		return 0, err
	}
	if _, err := c.w.Write(p); err != nil {
		return 0, err
	}
	if _, err := io.WriteString(c.w, "\r\n"); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Bytes is a body of fixed parts.
func Bytes(parts ...[]byte) Body {
	return func(ctx context.Context, w io.Writer) error {
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return nil
	}
}

// Then is a body of a, then b.
func Then(a, b Body) Body {
	return func(ctx context.Context, w io.Writer) error {
		if err := a(ctx, w); err != nil {
			return err
		}
		return b(ctx, w)
	}
}

// Every writes p every d until the server answers or ctx ends.
func Every(d time.Duration, p []byte) Body {
	return func(ctx context.Context, w io.Writer) error {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			if _, err := w.Write(p); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}

// Hold writes nothing more until ctx ends (the server answers).
func Hold(ctx context.Context, w io.Writer) error {
	<-ctx.Done()
	return ctx.Err()
}

// Repeat writes p n times, as fast as the server reads.
func Repeat(p []byte, n int) Body {
	return func(ctx context.Context, w io.Writer) error {
		for i := 0; i < n; i++ {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return nil
	}
}

// BoxHeader is the header of an ISO-BMFF box of the given total size and
// type (a 64-bit large size above 4 GiB).
func BoxHeader(size uint64, typ string) []byte {
	if size > 1<<32-1 {
		b := make([]byte, 16)
		binary.BigEndian.PutUint32(b, 1)
		copy(b[4:], typ)
		binary.BigEndian.PutUint64(b[8:], size)
		return b
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, uint32(size))
	copy(b[4:], typ)
	return b
}

// Box is a whole box of type typ with n payload bytes (zeros).
func Box(typ string, n int) []byte {
	return append(BoxHeader(uint64(n)+8, typ), make([]byte, n)...)
}

// Conns are raw client connections held open against a server.
type Conns struct {
	mu     sync.Mutex
	conns  []net.Conn
	closed []bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// dial connects with a receive buffer of rcvbuf bytes (0: the default),
// set before the handshake so that the window stays that small.
func dial(addr string, rcvbuf int) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
		}
	}
	return d.Dial("tcp", addr)
}

// SlowReaders opens n connections to addr that each send a GET of path
// (with the headers given) and never read the answer, with a 4 KiB
// receive window.
func SlowReaders(addr, path string, n int, headers ...string) (*Conns, error) {
	c := &Conns{stop: make(chan struct{})}
	for i := 0; i < n; i++ {
		conn, err := dial(addr, 4<<10)
		if err != nil {
			c.Close()
			return nil, err
		}
		req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n"
		for _, h := range headers {
			req += h + "\r\n"
		}
		if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
			c.Close()
			return nil, err
		}
		c.conns = append(c.conns, conn)
		c.closed = append(c.closed, false)
	}
	return c, nil
}

// Slowloris opens n connections to addr that send a request line, then
// one byte of a header every d, never finishing the header. Closed counts
// the connections the server has closed.
func Slowloris(addr string, n int, d time.Duration) (*Conns, error) {
	c := &Conns{stop: make(chan struct{})}
	for i := 0; i < n; i++ {
		conn, err := dial(addr, 0)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.conns = append(c.conns, conn)
		c.closed = append(c.closed, false)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.loris(i, conn, d)
		}()
	}
	return c, nil
}

func (c *Conns) loris(i int, conn net.Conn, d time.Duration) {
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		c.markClosed(i)
		return
	}
	// A reader notices the server closing (EOF or reset) at once.
	go func() {
		io.Copy(io.Discard, conn)
		c.markClosed(i)
	}()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if _, err := conn.Write([]byte("a")); err != nil {
			c.markClosed(i)
			return
		}
	}
}

func (c *Conns) markClosed(i int) {
	c.mu.Lock()
	c.closed[i] = true
	c.mu.Unlock()
}

// Closed is how many of the connections the server has closed (known to
// slowloris connections only; see Sockets for readers that never read).
func (c *Conns) Closed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, x := range c.closed {
		if x {
			n++
		}
	}
	return n
}

// Len is the number of connections.
func (c *Conns) Len() int { return len(c.conns) }

// Close closes every connection.
func (c *Conns) Close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	for _, conn := range c.conns {
		conn.Close()
	}
	c.wg.Wait()
}

// Mem is a process's memory from /proc/<pid>/status, in bytes.
type Mem struct {
	RSS int64 // resident now (VmRSS)
	HWM int64 // the peak resident size since the process started (VmHWM)
}

// Memory reads the memory of process pid.
func Memory(pid int) (Mem, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Mem{}, err
	}
	defer f.Close()
	var m Mem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.HWM
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return m, fmt.Errorf("%s: %q: %w", k, v, err)
		}
		*dst = kb << 10
	}
	return m, sc.Err()
}

// Sockets counts the sockets process pid holds open.
func Sockets(pid int) (int, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n, nil
}
