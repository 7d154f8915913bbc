// Command viewers is the load generator of bench/viewers.sh: N players, each
// one keep-alive HTTP/1.1 connection that fetches one fragment per fragment
// duration, round-robin over a list of fragment paths, against one server.
// It measures the server from /proc while it does so.
//
//	viewers -addr 127.0.0.1:8080 -paths frags.txt -sizes sizes.txt -n 10000 -pids 1234,1235
//	viewers -mode idle -addr ... -n 50000 -pids ...
//
// fetch mode: every connection i connects just before its first request
// and sends its k-th request at start + i·I/N + k·I
// (I = -interval), for fragment paths[(i+k) mod len(paths)], reads the whole
// response (status 200 and, with -sizes, the file's length, else an error)
// and waits for its next slot; a connection that is behind its schedule
// sends at once. Measured over -duration after -warmup (at least one
// interval, so that every connection has been used): responses, errors,
// latency (request written → last body byte) p50/p99/max, the achieved
// rate against the intended N/I, the CPU of the server processes (-pids,
// utime+stime from /proc/PID/stat) per response, the generator's own CPU and
// everything else the machine did (other CPU), and RSS per connection =
// (RSS of the server processes at the end of the window − RSS before the
// first connection) / N.
//
// idle mode: every connection fetches one fragment (spread over
// max(-interval, N / -idle-rate)), then stays open and idle; after -settle the RSS per connection is
// measured the same way.
//
// Past -per-src connections, connections bind their source address to
// 127.0.0.2, 127.0.0.3, … (IP_BIND_ADDRESS_NO_PORT), since one source
// address has only ~28 000 ports towards one destination.
//
// It prints one line "RESULT key=value ..." on stdout (progress on stderr).
// The generator is cheap by design: one goroutine per connection (with a
// small stack), no net/http, a 64 KB read buffer taken from a pool only
// while a response is read.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/bits"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "viewers:", err)
		stop()
		os.Exit(1)
	}
}

type config struct {
	addr     string
	host     string
	paths    []string
	sizes    []int64 // per path; nil: not checked
	n        int
	interval time.Duration
	warmup   time.Duration
	duration time.Duration
	settle   time.Duration
	timeout  time.Duration
	idle     bool
	perSrc   int
	pids     []int
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("viewers", flag.ContinueOnError)
	var c config
	fs.StringVar(&c.addr, "addr", "", "server host:port")
	fs.StringVar(&c.host, "host", "", "Host header (default: -addr)")
	pathsFile := fs.String("paths", "", "file with one fragment path a line (/…), fetched round-robin")
	sizesFile := fs.String("sizes", "", "file with the expected body length of each path, same order (optional)")
	fs.IntVar(&c.n, "n", 1000, "connections (players)")
	fs.DurationVar(&c.interval, "interval", 2*time.Second, "one fragment per connection per interval (the fragment duration)")
	fs.DurationVar(&c.warmup, "warmup", 0, "time before the window (default: 2 intervals)")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "measurement window")
	fs.DurationVar(&c.settle, "settle", 3*time.Second, "idle: wait after the last first request before measuring")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "per request: write, response and body")
	mode := fs.String("mode", "fetch", "fetch or idle")
	fs.IntVar(&c.perSrc, "per-src", 20000, "connections per source address 127.0.0.x")
	idleRate := fs.Int("idle-rate", 2000, "idle: first requests per second (spread over max(-interval, n/idle-rate))")
	pids := fs.String("pids", "", "comma-separated server pids (CPU and RSS are summed over them)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch *mode {
	case "fetch":
	case "idle":
		c.idle = true
	default:
		return fmt.Errorf("-mode %q: want fetch or idle", *mode)
	}
	if c.addr == "" || *pathsFile == "" || c.n <= 0 || c.interval <= 0 || c.duration <= 0 {
		return errors.New("need -addr, -paths, -n > 0, -interval > 0, -duration > 0")
	}
	if c.host == "" {
		c.host = c.addr
	}
	if c.idle && *idleRate > 0 {
		// The first requests of idle connections are spread out further, so
		// that a starved server does not time them out.
		c.interval = max(c.interval, time.Duration(float64(c.n)/float64(*idleRate)*float64(time.Second)))
		// Only the connection's existence is measured: a slow first answer
		// on a starved machine is no reason to lose the connection.
		c.timeout = max(c.timeout, time.Minute)
	}
	if c.warmup == 0 {
		c.warmup = 2 * c.interval
	}
	if c.warmup < c.interval {
		return fmt.Errorf("-warmup %v is shorter than one -interval %v: not every connection would have been used", c.warmup, c.interval)
	}
	var err error
	if c.paths, err = readLines(*pathsFile); err != nil {
		return err
	}
	if len(c.paths) == 0 {
		return fmt.Errorf("%s: no paths", *pathsFile)
	}
	if *sizesFile != "" {
		lines, err := readLines(*sizesFile)
		if err != nil {
			return err
		}
		if len(lines) != len(c.paths) {
			return fmt.Errorf("%s has %d lines, %s %d", *sizesFile, len(lines), *pathsFile, len(c.paths))
		}
		for _, l := range lines {
			v, err := strconv.ParseInt(l, 10, 64)
			if err != nil {
				return fmt.Errorf("%s: %w", *sizesFile, err)
			}
			c.sizes = append(c.sizes, v)
		}
	}
	for _, p := range strings.Split(*pids, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		v, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("-pids: %w", err)
		}
		c.pids = append(c.pids, v)
	}
	if len(c.pids) == 0 {
		return errors.New("need -pids")
	}
	res, err := bench(ctx, &c)
	if err != nil {
		return err
	}
	fmt.Println(res)
	return nil
}

func readLines(name string) ([]string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

// stats are shared by all connections; counted only inside the window.
type stats struct {
	inWindow  atomic.Bool
	responses atomic.Int64
	bytes     atomic.Int64
	late      atomic.Int64 // requests sent > 100 ms after their slot
	errStatus atomic.Int64 // non-200 or wrong length
	errIO     atomic.Int64 // write/read errors, timeouts, server closes
	reconn    atomic.Int64
	connErr   atomic.Int64 // failed connects (all phases)
	logged    atomic.Int64 // errors printed
	dialFail  atomic.Int64 // players that could not connect (after retries): gone
	first     atomic.Int64 // connections that completed their first request (all phases)
	hist      histogram
}

// histogram of microseconds: 32 sub-buckets per power of two (≤ 3 % error).
type histogram struct{ b [64 * 34]atomic.Int64 }

func bucket(us uint64) int {
	if us < 64 {
		return int(us)
	}
	s := bits.Len64(us) - 6
	return s*32 + int(us>>s)
}

func bucketValue(i int) uint64 {
	if i < 64 {
		return uint64(i)
	}
	s := i/32 - 1
	return uint64(i-32*s) << s
}

func (h *histogram) add(d time.Duration) {
	i := bucket(uint64(d.Microseconds()))
	if i >= len(h.b) {
		i = len(h.b) - 1
	}
	h.b[i].Add(1)
}

// quantile q in [0,1] in microseconds (upper end of the bucket); max for q=1.
func (h *histogram) quantile(q float64) uint64 {
	var total int64
	for i := range h.b {
		total += h.b[i].Load()
	}
	if total == 0 {
		return 0
	}
	want := int64(q*float64(total) + 0.5)
	if want < 1 {
		want = 1
	}
	var seen int64
	for i := range h.b {
		seen += h.b[i].Load()
		if seen >= want {
			return bucketValue(i + 1)
		}
	}
	return bucketValue(len(h.b))
}

var bufPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// player is one connection.
type player struct {
	c    *config
	st   *stats
	id   int
	src  net.IP
	conn net.Conn
	reqs [][]byte
}

func (p *player) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	if p.src != nil {
		d.LocalAddr = &net.TCPAddr{IP: p.src}
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, 24 /* IP_BIND_ADDRESS_NO_PORT */, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	var err error
	for try := 0; try < 8; try++ {
		var conn net.Conn
		conn, err = d.DialContext(ctx, "tcp", p.c.addr)
		if err == nil {
			p.conn = conn
			return nil
		}
		p.st.connErr.Add(1)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(time.Duration(50<<try) * time.Millisecond)
	}
	return err
}

var (
	errStatus  = errors.New("bad status or length")
	errClosing = errors.New("server answered Connection: close") // not an error: reconnect
)

// fetch sends one request and reads the whole response.
func (p *player) fetch(k int) error {
	i := (p.id + k) % len(p.c.paths)
	deadline := time.Now().Add(p.c.timeout)
	_ = p.conn.SetDeadline(deadline)
	if _, err := p.conn.Write(p.reqs[i]); err != nil {
		return err
	}
	r := bufPool.Get().(*bufio.Reader)
	r.Reset(p.conn)
	defer func() { r.Reset(nil); bufPool.Put(r) }()
	line, err := r.ReadSlice('\n')
	if err != nil {
		return err
	}
	ok := bytes.HasPrefix(line, []byte("HTTP/1.1 200 "))
	length := int64(-1)
	closing := false
	for {
		line, err = r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		k, v, found := bytes.Cut(line, []byte(":"))
		if !found {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			length, err = strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("content-length %q", v)
			}
		case bytes.EqualFold(k, []byte("Connection")):
			closing = bytes.EqualFold(v, []byte("close"))
		}
	}
	if length < 0 {
		return errors.New("no content-length")
	}
	if n, err := r.Discard(int(length)); err != nil {
		return fmt.Errorf("body: %d of %d bytes: %w", n, length, err)
	}
	if r.Buffered() != 0 {
		return errors.New("bytes after the body")
	}
	if p.st.inWindow.Load() || p.c.idle {
		p.st.bytes.Add(length)
	}
	if !ok || (p.c.sizes != nil && length != p.c.sizes[i]) {
		return errStatus
	}
	if closing {
		return errClosing
	}
	return nil
}

// loop runs the player's schedule until ctx ends.
func (p *player) loop(ctx context.Context, start time.Time) {
	next := start.Add(time.Duration(int64(p.c.interval) * int64(p.id) / int64(p.c.n)))
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for k := 0; ; k++ {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if p.conn == nil {
			if err := p.dial(ctx); err != nil {
				if ctx.Err() == nil {
					p.st.dialFail.Add(1)
					fmt.Fprintf(os.Stderr, "viewers: connection %d: %v\n", p.id, err)
				}
				return
			}
			if k > 0 {
				p.st.reconn.Add(1)
			}
		}
		sent := time.Now()
		late := sent.Sub(next) > 100*time.Millisecond
		err := p.fetch(k)
		took := time.Since(sent)
		if k == 0 {
			p.st.first.Add(1)
		}
		if p.st.inWindow.Load() || p.c.idle {
			p.st.responses.Add(1)
			if late {
				p.st.late.Add(1)
			}
			p.st.hist.add(took)
			switch {
			case errors.Is(err, errStatus):
				p.st.errStatus.Add(1)
			case err != nil && !errors.Is(err, errClosing):
				p.st.errIO.Add(1)
			}
			if err != nil && !errors.Is(err, errClosing) && p.st.logged.Add(1) <= 5 {
				fmt.Fprintf(os.Stderr, "viewers: connection %d, request %d (%.1fs after its slot): %v\n", p.id, k, time.Since(next).Seconds(), err)
			}
		}
		if err != nil && !errors.Is(err, errStatus) {
			p.conn.Close()
			p.conn = nil
		}
		if p.c.idle {
			<-ctx.Done()
			return
		}
		next = next.Add(p.c.interval)
		if d := time.Until(next); d > 0 {
			timer.Reset(d)
		} else {
			timer.Reset(0)
		}
	}
}

// proc is a /proc snapshot.
type proc struct {
	serverTicks int64 // utime+stime of the pids
	selfTicks   int64
	busyTicks   int64 // all CPUs: user+nice+system+irq+softirq+steal
	rssKB       int64 // VmRSS of the pids
	at          time.Time
}

func readTicks(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: short", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st, nil
}

func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

func snapshot(pids []int) (proc, error) {
	s := proc{at: time.Now()}
	for _, pid := range pids {
		t, err := readTicks(strconv.Itoa(pid))
		if err != nil {
			return s, fmt.Errorf("server pid %d: %w", pid, err)
		}
		s.serverTicks += t
		r, err := readRSS(pid)
		if err != nil {
			return s, err
		}
		s.rssKB += r
	}
	var err error
	if s.selfTicks, err = readTicks("self"); err != nil {
		return s, err
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		if i < len(f) {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			s.busyTicks += v
		}
	}
	return s, nil
}

const hz = 100 // USER_HZ: /proc/stat and /proc/PID/stat count in 1/100 s on Linux

func bench(ctx context.Context, c *config) (string, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < uint64(c.n)+100 {
		return "", fmt.Errorf("open-file limit %d is below %d connections: raise ulimit -n", rl.Cur, c.n)
	}
	before, err := snapshot(c.pids)
	if err != nil {
		return "", err
	}
	st := &stats{}
	reqs := make([][]byte, len(c.paths))
	for i, p := range c.paths {
		reqs[i] = []byte("GET " + p + " HTTP/1.1\r\nHost: " + c.host + "\r\nUser-Agent: sluice-bench-viewers\r\n\r\n")
	}
	srcs := (c.n + c.perSrc - 1) / c.perSrc
	players := make([]*player, c.n)
	for i := range players {
		p := &player{c: c, st: st, id: i, reqs: reqs}
		if srcs > 1 {
			p.src = net.IPv4(127, 0, 0, byte(1+i/c.perSrc))
		}
		players[i] = p
	}
	// Every player connects just before its first request, as a player
	// does: a server may close a connection that sends no request for a
	// while (Sluice: after 10 s, ReadHeaderTimeout).
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now().Add(50 * time.Millisecond)
	fmt.Fprintf(os.Stderr, "viewers: %d players (%d source addresses), first requests over %v\n", c.n, srcs, c.interval)
	var pw sync.WaitGroup
	for _, p := range players {
		pw.Add(1)
		go func() { defer pw.Done(); p.loop(runCtx, start) }()
	}
	defer func() {
		cancel()
		pw.Wait()
		for _, p := range players {
			if p.conn != nil {
				p.conn.Close()
			}
		}
	}()
	sleep := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}

	var w0, w1 proc
	window := c.duration
	if c.idle {
		// Wait until every connection has had its first answer, then settle.
		deadline := time.Now().Add(c.interval + c.timeout + 10*time.Second)
		for st.first.Load() < int64(c.n) && time.Now().Before(deadline) {
			if err := sleep(100 * time.Millisecond); err != nil {
				return "", err
			}
		}
		if err := sleep(c.settle); err != nil {
			return "", err
		}
		if w0, err = snapshot(c.pids); err != nil {
			return "", err
		}
		if err := sleep(c.duration); err != nil {
			return "", err
		}
	} else {
		if err := sleep(time.Until(start.Add(c.warmup))); err != nil {
			return "", err
		}
		if w0, err = snapshot(c.pids); err != nil {
			return "", err
		}
		st.inWindow.Store(true)
		if err := sleep(c.duration); err != nil {
			return "", err
		}
		st.inWindow.Store(false)
	}
	if w1, err = snapshot(c.pids); err != nil {
		return "", err
	}
	window = w1.at.Sub(w0.at)
	secs := window.Seconds()
	serverCPU := float64(w1.serverTicks-w0.serverTicks) / hz
	selfCPU := float64(w1.selfTicks-w0.selfTicks) / hz
	other := float64(w1.busyTicks-w0.busyTicks)/hz - serverCPU - selfCPU
	if other < 0 {
		other = 0
	}
	resp := st.responses.Load()
	intended := float64(c.n) / c.interval.Seconds()
	usPer := 0.0
	if resp > 0 {
		usPer = serverCPU / float64(resp) * 1e6
	}
	var b strings.Builder
	mode := "fetch"
	if c.idle {
		mode = "idle"
	}
	fmt.Fprintf(&b, "RESULT mode=%s n=%d srcs=%d window_s=%.1f", mode, c.n, srcs, secs)
	if !c.idle {
		fmt.Fprintf(&b, " responses=%d rate=%.1f intended=%.1f achieved_pct=%.1f late=%d mbytes_s=%.1f",
			resp, float64(resp)/secs, intended, 100*float64(resp)/secs/intended, st.late.Load(), float64(st.bytes.Load())/secs/1e6)
		fmt.Fprintf(&b, " p50_ms=%.3f p99_ms=%.3f max_ms=%.3f",
			float64(st.hist.quantile(0.5))/1000, float64(st.hist.quantile(0.99))/1000, float64(st.hist.quantile(1))/1000)
	}
	fmt.Fprintf(&b, " errors=%d err_status=%d err_io=%d err_connect=%d reconnects=%d connect_retries=%d first_done=%d",
		st.errStatus.Load()+st.errIO.Load()+st.dialFail.Load(), st.errStatus.Load(), st.errIO.Load(), st.dialFail.Load(),
		st.reconn.Load(), st.connErr.Load(), st.first.Load())
	fmt.Fprintf(&b, " server_cpu_pct=%.1f us_per_resp=%.1f rss_before_kb=%d rss_loaded_kb=%d rss_per_conn_kb=%.2f gen_cpu_pct=%.1f other_cpu_pct=%.1f",
		100*serverCPU/secs, usPer, before.rssKB, w1.rssKB, float64(w1.rssKB-before.rssKB)/float64(c.n),
		100*selfCPU/secs, 100*other/secs)
	return b.String(), nil
}
