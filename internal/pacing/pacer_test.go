package pacing

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/metrics"
	"github.com/sluice-media/sluice/internal/netconn"
	"github.com/sluice-media/sluice/internal/sfv"
)

// unlimited is SO_MAX_PACING_RATE's default.
const unlimited = ^uint64(0)

// testLog sends slog output to t.Log.
type testLog struct {
	mu sync.Mutex
	t  *testing.T
	b  bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	return len(p), nil
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testServer is a real HTTP server on 127.0.0.1 with the pacer in front of
// a handler that reads the socket back: X-Sock-Rate is SO_MAX_PACING_RATE
// (getsockopt), X-Info-Rate is tcpi_max_pacing_rate, X-Mss the MSS, and
// X-Client the client's address (to see keep-alive reuse). ?size=N sets the
// body size (default 16 KiB).
type testServer struct {
	*httptest.Server
	p   *Pacer
	m   *metrics.Metrics
	log *testLog
}

func newTestServer(t *testing.T, cfg config.Pacing, useTLS bool) *testServer {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	lg := &testLog{t: t}
	m := metrics.New()
	p := New(cfg, m, slog.New(slog.NewTextHandler(lg, &slog.HandlerOptions{Level: slog.LevelDebug})))
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := netconn.TCP(r)
		if !ok {
			http.Error(w, "no socket", http.StatusInternalServerError)
			return
		}
		rate, err := SocketPacingRate(c)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		ti, err := TCPInfo(c)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		var lowat int
		netconn.Control(c, func(fd int) error {
			lowat, err = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT)
			return err
		})
		w.Header().Set("X-Lowat", strconv.Itoa(lowat))
		size := 16 << 10
		if s := r.URL.Query().Get("size"); s != "" {
			size, _ = strconv.Atoi(s)
		}
		h := w.Header()
		h.Set("X-Sock-Rate", strconv.FormatUint(rate, 10))
		h.Set("X-Info-Rate", strconv.FormatUint(ti.Max_pacing_rate, 10))
		h.Set("X-Info-Pacing", strconv.FormatUint(ti.Pacing_rate, 10))
		h.Set("X-Mss", strconv.FormatUint(uint64(ti.Snd_mss), 10))
		h.Set("X-Client", r.RemoteAddr)
		h.Set("Content-Length", strconv.Itoa(size))
		buf := make([]byte, 64<<10)
		for size > 0 {
			n := min(size, len(buf))
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
			size -= n
		}
	})
	media := func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, ".m4s") }
	srv := httptest.NewUnstartedServer(p.Middleware(inner, media))
	srv.Config.ConnContext = ConnContext
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", lg)
		}
	})
	return &testServer{Server: srv, p: p, m: m, log: lg}
}

// result is what one test request saw.
type result struct {
	status   int
	sockRate uint64
	infoRate uint64
	pacing   uint64 // tcpi_pacing_rate when the handler ran
	mss      uint64
	client   string
	lowat    int               // TCP_NOTSENT_LOWAT when the handler ran
	cmsd     map[string]string // CMSD-Dynamic parameters of our hop
	bodyLen  int
	elapsed  time.Duration
}

func (r result) src() string { return r.cmsd["com.sluice-src"] }

// get sends one GET with headers and returns what the server applied.
func (ts *testServer) get(t *testing.T, c *http.Client, path string, hdr map[string]string) result {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	res := result{status: resp.StatusCode, bodyLen: len(body), elapsed: time.Since(t0), client: resp.Header.Get("X-Client")}
	res.sockRate, _ = strconv.ParseUint(resp.Header.Get("X-Sock-Rate"), 10, 64)
	res.infoRate, _ = strconv.ParseUint(resp.Header.Get("X-Info-Rate"), 10, 64)
	res.pacing, _ = strconv.ParseUint(resp.Header.Get("X-Info-Pacing"), 10, 64)
	res.mss, _ = strconv.ParseUint(resp.Header.Get("X-Mss"), 10, 64)
	res.lowat, _ = strconv.Atoi(resp.Header.Get("X-Lowat"))
	if v := resp.Header.Get("CMSD-Dynamic"); v != "" {
		res.cmsd = cmsdParams(t, v)
	}
	return res
}

// cmsdParams parses CMSD-Dynamic (it must be a valid sf-list) and returns
// the parameters of the last hop, with the hop id under "id".
func cmsdParams(t *testing.T, v string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := sfv.ParseList(v, func(it sfv.Item) error {
		clear(out)
		out["id"] = it.Str
		return sfv.ParseParams(it.Params, func(k string, pv sfv.Item) error {
			out[k] = pv.Text()
			return nil
		})
	})
	if err != nil {
		t.Fatalf("CMSD-Dynamic %q is not an sf-list: %v", v, err)
	}
	return out
}

func freshClient(ts *testServer) *http.Client {
	c := ts.Client()
	tr := c.Transport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func keepAliveClient(ts *testServer) *http.Client {
	c := ts.Client()
	tr := c.Transport.(*http.Transport).Clone()
	tr.MaxConnsPerHost = 1
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func cmcdQuery(s string) string { return "?CMCD=" + url.QueryEscape(s) }

// TestSpecificationApplied: each way of asking for a rate sets
// SO_MAX_PACING_RATE on the socket before the body (read back by the handler
// with getsockopt and TCP_INFO), and the response says so in CMSD-Dynamic.
func TestSpecificationApplied(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "tcp"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			cfg := config.PacingDefaults()
			cfg.Mode = config.PacingBoth
			ts := newTestServer(t, cfg, useTLS)
			for _, c := range []struct {
				name  string
				query string
				hdr   map[string]string
				src   string
				rate  func(mss uint64) uint64 // bytes/s; unlimited: not paced
			}{
				{"sluice-pacing rate", "", map[string]string{HeaderName: "rate=4000"}, "spec", fixed(500_000)},
				{"sluice-pacing burst and gap", "", map[string]string{HeaderName: "burst=2, gap=100"}, "spec",
					func(mss uint64) uint64 { return 2 * mss * 10 }},
				{"cmcd header rtp", "", map[string]string{"CMCD-Status": "rtp=8000", "CMCD-Request": "bl=10000"}, "rtp", fixed(1_000_000)},
				{"cmcd query rtp", cmcdQuery("bl=10000,br=800,ot=v,rtp=12000"), nil, "rtp", fixed(1_500_000)},
				{"cmcd query custom spec keys", cmcdQuery("com.sluice-rate=3000,rtp=12000"), nil, "spec", fixed(375_000)},
				{"spec beats rtp", "", map[string]string{HeaderName: "rate=2000", "CMCD-Status": "rtp=9000"}, "spec", fixed(250_000)},
				{"rtp not below 1.2 x br", cmcdQuery("br=3000,rtp=2000"), nil, "rtp", fixed(450_000)},
				{"rtp clamped up", "", map[string]string{"CMCD-Status": "rtp=1"}, "rtp", fixed(12_500)},
				{"rtp clamped down", "", map[string]string{"CMCD-Status": "rtp=99999999999"}, "rtp", fixed(1_250_000_000)},
				{"startup not paced", "", map[string]string{HeaderName: "rate=4000", "CMCD-Request": "su"}, "urgent", fixed(unlimited)},
				{"starved not paced", cmcdQuery("bs,rtp=5000"), nil, "urgent", fixed(unlimited)},
				{"small buffer not paced", "", map[string]string{"CMCD-Request": "bl=1500", "CMCD-Status": "rtp=5000"}, "urgent", fixed(unlimited)},
				{"off", "", map[string]string{HeaderName: "off", "CMCD-Status": "rtp=5000"}, "off", fixed(unlimited)},
				{"no specification: first response of the connection", "", nil, "first", fixed(unlimited)},
			} {
				t.Run(c.name, func(t *testing.T) {
					r := ts.get(t, freshClient(ts), "/v/1.m4s"+c.query, c.hdr)
					want := c.rate(r.mss)
					if r.status != 200 || r.bodyLen != 16<<10 {
						t.Fatalf("status %d, %d bytes", r.status, r.bodyLen)
					}
					if r.sockRate != want || r.infoRate != want {
						t.Errorf("socket rate %d (TCP_INFO %d), want %d", r.sockRate, r.infoRate, want)
					}
					if r.src() != c.src {
						t.Errorf("source %q, want %q (CMSD %v)", r.src(), c.src, r.cmsd)
					}
					wantKbps := "0"
					if want != unlimited {
						wantKbps = strconv.FormatUint(want*8/1000, 10)
						if b, _ := strconv.Atoi(r.cmsd["com.sluice-burst"]); b < 1 {
							t.Errorf("no effective burst in %v", r.cmsd)
						}
					}
					if r.cmsd["com.sluice-rate"] != wantKbps {
						t.Errorf("com.sluice-rate %q, want %s", r.cmsd["com.sluice-rate"], wantKbps)
					}
					if r.cmsd["id"] != "sluice" || r.cmsd["rtt"] == "" {
						t.Errorf("CMSD-Dynamic %v lacks the hop id or rtt", r.cmsd)
					}
				})
			}
		})
	}
}

// metricValue scrapes one series from the metrics handler (-1: absent).
func metricValue(t *testing.T, m *metrics.Metrics, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

func fixed(v uint64) func(uint64) uint64 { return func(uint64) uint64 { return v } }

// TestKeepAliveAlternating: on one connection, each request gets its own
// rate, and a request without a specification gets the default back.
func TestKeepAliveAlternating(t *testing.T) {
	cfg := config.PacingDefaults() // mode client
	ts := newTestServer(t, cfg, false)
	c := keepAliveClient(ts)
	steps := []struct {
		query string
		hdr   map[string]string
		want  uint64
		src   string
	}{
		{"", map[string]string{HeaderName: "rate=4000"}, 500_000, "spec"},
		{"", nil, unlimited, "none"},
		{cmcdQuery("bl=8000,rtp=16000"), nil, 2_000_000, "rtp"},
		{"", nil, unlimited, "none"},
		{"", map[string]string{"CMCD-Status": "rtp=3000", "CMCD-Request": "bl=9000"}, 375_000, "rtp"},
		{"", map[string]string{HeaderName: "rate=(1 2)"}, unlimited, "none"}, // malformed
		{"", map[string]string{HeaderName: "rate=6000"}, 750_000, "spec"},
		{"", map[string]string{HeaderName: "rate=2000"}, 250_000, "spec"},
		{"", map[string]string{"CMCD-Request": "su", "CMCD-Status": "rtp=3000"}, unlimited, "urgent"},
	}
	var client string
	for i, s := range steps {
		r := ts.get(t, c, "/v/"+strconv.Itoa(i)+".m4s"+s.query, s.hdr)
		if i == 0 {
			client = r.client
		} else if r.client != client {
			t.Fatalf("step %d: new connection %s (was %s): keep-alive not exercised", i, r.client, client)
		}
		if r.status != 200 || r.sockRate != s.want || r.infoRate != s.want || r.src() != s.src {
			t.Errorf("step %d: status %d, socket %d (TCP_INFO %d) source %q; want %d %q", i, r.status, r.sockRate, r.infoRate, r.src(), s.want, s.src)
		}
		// A small unsent queue only while paced.
		if wantLowat := map[bool]int{true: cfg.NotsentLowat, false: 0}[s.want != unlimited]; r.lowat != wantLowat {
			t.Errorf("step %d: TCP_NOTSENT_LOWAT %d, want %d", i, r.lowat, wantLowat)
		}
		if i > 0 && r.cmsd["com.sluice-loss"] == "" {
			t.Errorf("step %d: no loss rate of the previous response in %v", i, r.cmsd)
		}
	}
	// A manifest or any non-media request passes untouched.
	resp, err := c.Get(ts.URL + "/v/manifest.mpd")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Header.Get("CMSD-Dynamic") != "" {
		t.Error("non-media response got CMSD-Dynamic")
	}
	for _, c := range []struct {
		series string
		want   float64
	}{
		{`sluice_pacing_responses_total{source="spec"}`, 3},
		{`sluice_pacing_responses_total{source="rtp"}`, 2},
		{`sluice_pacing_malformed_total`, 1},
		{`sluice_pacing_retransmits_per_response_count{pacing="paced"}`, 5},
		{`sluice_pacing_retransmits_per_response_count{pacing="unpaced"}`, 3},
		{`sluice_pacing_bytes_total{pacing="paced"}`, 5 * 16 << 10},
		{`sluice_pacing_bytes_total{pacing="unpaced"}`, 4 * 16 << 10},
		{`sluice_pacing_rate_bits_per_second_count{source="spec"}`, 3},
		{`sluice_pacing_rate_bits_per_second_sum{source="spec"}`, (4000 + 6000 + 2000) * 1000},
	} {
		if got := metricValue(t, ts.m, c.series); got != c.want {
			t.Errorf("%s = %v, want %v", c.series, got, c.want)
		}
	}
}

// TestMalformedNeverFails: garbage in every side channel still gets the
// response, unpaced or with the parts that parsed.
func TestMalformedNeverFails(t *testing.T) {
	cfg := config.PacingDefaults()
	cfg.Mode = config.PacingBoth
	ts := newTestServer(t, cfg, false)
	c := keepAliveClient(ts)
	for i, hdr := range []map[string]string{
		{HeaderName: "}}}"},
		{HeaderName: "rate=-5, burst=abc, gap=?1"},
		{HeaderName: `rate="4000"`},
		{HeaderName: strings.Repeat("rate=1,", 2000) + "x"},
		{"CMCD-Status": "rtp=12x"},
		{"CMCD-Request": "bl=(1 2", "CMCD-Object": `br="x"`, "CMCD-Session": `sid=unterminated"`},
		{"CMCD-Status": "rtp=1000000000000000000000"},
		{HeaderName: "rate=4000;ss=0;rec=-1"},
	} {
		r := ts.get(t, c, "/v/"+strconv.Itoa(i)+".m4s", hdr)
		if r.status != 200 || r.bodyLen != 16<<10 {
			t.Errorf("%v: status %d, %d bytes", hdr, r.status, r.bodyLen)
		}
	}
	for i, q := range []string{"?CMCD=%zz", "?CMCD=" + url.QueryEscape("rtp=,bl=1"), "?CMCD=" + url.QueryEscape(strings.Repeat("(", 5000))} {
		r := ts.get(t, c, "/v/q"+strconv.Itoa(i)+".m4s"+q, nil)
		if r.status != 200 || r.bodyLen != 16<<10 {
			t.Errorf("%s: status %d, %d bytes", q, r.status, r.bodyLen)
		}
	}
	// The partly valid spec kept its valid part.
	r := ts.get(t, c, "/v/x.m4s", map[string]string{HeaderName: "rate=4000;ss=0;rec=-1"})
	if r.sockRate != 500_000 {
		t.Errorf("valid part of a partly malformed spec not applied: %d", r.sockRate)
	}
	if !strings.Contains(ts.log.String(), "level=WARN msg=\"pacing: malformed side channel ignored\"") {
		t.Error("no warning logged for malformed input")
	}
	if n := strings.Count(ts.log.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings on one connection, want 1 (then debug)", n)
	}
}

// TestPacingTakesEffect: the kernel really paces a response at the
// requested rate, and the next response on the connection has the default
// back (TestRaiseTakesEffect checks that the socket paces faster at once).
func TestPacingTakesEffect(t *testing.T) {
	ts := newTestServer(t, config.PacingDefaults(), false)
	c := keepAliveClient(ts)
	// Warm the connection (the kernel never paces its first 10 segments).
	ts.get(t, c, "/v/0.m4s", nil)
	const size = 3 << 20
	paced := ts.get(t, c, "/v/1.m4s?size="+strconv.Itoa(size), map[string]string{HeaderName: "rate=48000"}) // 6 MB/s
	unpaced := ts.get(t, c, "/v/2.m4s?size="+strconv.Itoa(size), nil)
	t.Logf("3 MiB paced at 48 Mbit/s: %v (%.1f Mbit/s); unpaced: %v", paced.elapsed, float64(size)*8/paced.elapsed.Seconds()/1e6, unpaced.elapsed)
	// 3 MiB at 6 MB/s is 524 ms; allow for the first GSO packet.
	if paced.elapsed < 350*time.Millisecond || paced.elapsed > 5*time.Second {
		t.Errorf("paced response took %v, want about 0.5 s", paced.elapsed)
	}
	// The unpaced one is not timed against the paced one: on a loaded
	// machine (or under -race) the reading client is the bottleneck.
	if paced.sockRate != 6_000_000 || unpaced.sockRate != unlimited {
		t.Errorf("socket rates %d, %d", paced.sockRate, unpaced.sockRate)
	}
}

// TestRaiseTakesEffect: the kernel only lowers the socket's current pacing
// rate when the cap changes; after a raise the first packet would still be
// spaced at the old rate. With BBR the pacer re-initialises the congestion
// control, so that the socket paces at the new cap before the body (and, on
// a keep-alive connection alternating a low and a high cap, each pair of
// responses takes what the two rates say).
func TestRaiseTakesEffect(t *testing.T) {
	ts := newTestServer(t, config.PacingDefaults(), false)
	c := keepAliveClient(ts)
	first := ts.get(t, c, "/v/0.m4s", nil)
	cc := ""
	if tcp, err := net.Dial("tcp", ts.Listener.Addr().String()); err == nil {
		netconn.Control(tcp.(*net.TCPConn), func(fd int) error {
			cc, _ = unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION)
			return nil
		})
		tcp.Close()
	}
	if cc != "bbr" {
		t.Skipf("congestion control %q: the raise is only made immediate for BBR (first response %v)", cc, first.src())
	}
	var pairs []time.Duration
	for i := 1; i <= 4; i++ {
		low := ts.get(t, c, "/a/"+strconv.Itoa(i)+".m4s?size=6008", map[string]string{HeaderName: "rate=600"})
		high := ts.get(t, c, "/v/"+strconv.Itoa(i)+".m4s?size=300000", map[string]string{HeaderName: "rate=6000"})
		if high.sockRate != 750_000 || high.pacing != 750_000 {
			t.Errorf("pair %d: after a raise from 75000 to 750000 B/s the socket paces at %d (cap %d)", i, high.pacing, high.sockRate)
		}
		pairs = append(pairs, low.elapsed+high.elapsed)
	}
	restored := ts.get(t, c, "/v/5.m4s", nil)
	if restored.sockRate != unlimited || restored.pacing <= 750_000 {
		t.Errorf("unpaced after a cap: socket cap %d, pacing %d", restored.sockRate, restored.pacing)
	}
	// 6 KB at 75 kB/s + 300 kB at 750 kB/s: about 0.48 s per pair (at a
	// stale 75 kB/s the first 64 KB packet alone would add 0.8 s).
	for i, d := range pairs {
		if d > 1200*time.Millisecond {
			t.Errorf("pair %d took %v, want about 0.5 s", i+1, d)
		}
	}
	t.Logf("low/high pairs: %v", pairs)
}

// TestPerPhase: a spec with a slow-start rate applies it on a new
// connection (CUBIC: cwnd below ssthresh; BBR: STARTUP gain).
func TestPerPhase(t *testing.T) {
	ts := newTestServer(t, config.PacingDefaults(), false)
	r := ts.get(t, freshClient(ts), "/v/0.m4s", map[string]string{HeaderName: "rate=4000;ss=8000;rec=2000"})
	if r.sockRate != 1_000_000 || r.cmsd["com.sluice-phase"] != "ss" {
		t.Errorf("socket %d, CMSD %v; want 1000000 in phase ss", r.sockRate, r.cmsd)
	}
}

// throttledClient reads at about rate bytes/s through a small receive
// window: a bottleneck the server's estimator can measure on loopback.
func throttledClient(rate int) *http.Client {
	d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 32<<10) })
		return serr
	}}
	tr := &http.Transport{DialContext: d.DialContext, MaxConnsPerHost: 1, DisableCompression: true}
	return &http.Client{Transport: &throttle{tr, rate}, Timeout: 30 * time.Second}
}

type throttle struct {
	rt   http.RoundTripper
	rate int
}

func (t *throttle) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &slowBody{ReadCloser: resp.Body, rate: t.rate, start: time.Now()}
	return resp, nil
}

// slowBody sleeps n/rate after each read of n bytes: it never catches up
// after a delay, so it never reads faster than rate (a bottleneck does not
// either).
type slowBody struct {
	io.ReadCloser
	rate  int
	start time.Time
}

func (b *slowBody) Read(p []byte) (int, error) {
	if len(p) > 8<<10 {
		p = p[:8<<10]
	}
	n, err := b.ReadCloser.Read(p)
	time.Sleep(time.Duration(float64(n) / float64(b.rate) * float64(time.Second)))
	return n, err
}

// TestServerEstimate: without a client specification the first response
// goes out unpaced and measures the path; the next ones are paced at the
// configured fraction of the estimate; every Nth is a probe, paced at
// probeGain × the estimate.
func TestServerEstimate(t *testing.T) {
	cfg := config.PacingDefaults()
	cfg.Mode = config.PacingServer
	cfg.ReprobeEvery = 3
	ts := newTestServer(t, cfg, false)
	const rate = 2_000_000 // the client reads at 2 MB/s
	c := throttledClient(rate)
	first := ts.get(t, c, "/v/0.m4s?size="+strconv.Itoa(1500<<10), nil)
	if first.src() != "first" || first.sockRate != unlimited {
		t.Fatalf("first response: source %q, socket %d", first.src(), first.sockRate)
	}
	var srcs []string
	var est, probe uint64
	for i := 1; i <= 4; i++ {
		r := ts.get(t, c, "/v/"+strconv.Itoa(i)+".m4s?size="+strconv.Itoa(64<<10), nil)
		srcs = append(srcs, r.src())
		if r.src() == "probe" {
			probe = r.sockRate
		}
		if r.src() == "estimate" && est == 0 {
			est = r.sockRate
			etp, _ := strconv.ParseUint(r.cmsd["etp"], 10, 64)
			t.Logf("client reads at %d B/s; estimate %d kbit/s; paced at %d B/s (%.2f of the read rate)",
				rate, etp, r.sockRate, float64(r.sockRate)/rate)
			if got, want := float64(r.sockRate), 0.9*float64(etp)*125; got < want*0.99 || got > want*1.01 {
				t.Errorf("paced at %v, want 0.9 x etp = %v", got, want)
			}
		}
	}
	if want := "estimate estimate probe estimate"; strings.Join(srcs, " ") != want {
		t.Errorf("sources %v, want %s", srcs, want)
	}
	// The 64 KiB responses are too small to measure: the probe is paced at
	// probeGain × the same estimate.
	if want := float64(est) / 0.9 * probeGain; float64(probe) < want*0.99 || float64(probe) > want*1.01 {
		t.Errorf("probe paced at %d B/s, want %.0f (%.2f x the estimate)", probe, want, probeGain)
	}
	// The estimate is of the client's read rate (at most rate; less when
	// the machine is busy and the reader's timers run late — 0.36 of it was
	// seen while the e2e suite ran beside), paced at 0.9 of it. The receive
	// buffer lets it look a little faster; loopback alone is far faster.
	if est < uint64(0.9*0.2*rate) || est > uint64(0.9*1.15*rate) {
		t.Errorf("paced at %d B/s, want about 0.9 x %d", est, rate)
	}
}

// TestModes: off does nothing; server mode ignores client specs.
func TestModes(t *testing.T) {
	cfg := config.PacingDefaults()
	cfg.Mode = config.PacingOff
	ts := newTestServer(t, cfg, false)
	r := ts.get(t, freshClient(ts), "/v/0.m4s", map[string]string{HeaderName: "rate=4000"})
	if r.sockRate != unlimited || r.cmsd != nil {
		t.Errorf("mode off: socket %d, CMSD %v", r.sockRate, r.cmsd)
	}
	cfg.Mode = config.PacingServer
	ts = newTestServer(t, cfg, false)
	r = ts.get(t, freshClient(ts), "/v/0.m4s", map[string]string{HeaderName: "rate=4000", "CMCD-Status": "rtp=4000"})
	if r.sockRate != unlimited || r.src() != "first" {
		t.Errorf("mode server: socket %d, source %q", r.sockRate, r.src())
	}
}

// TestHighCPU: above cpu_high the pacer raises tcp_min_tso_segs (here a
// file standing in for the sysctl), keeps the rate, reports it, and puts
// the sysctl back afterwards.
func TestHighCPU(t *testing.T) {
	dir := t.TempDir()
	ctl := sysctl{dir: dir}
	if err := ctl.set("tcp_min_tso_segs", 2); err != nil {
		t.Fatal(err)
	}
	ctl.set("tcp_tso_rtt_log", 9)
	stat := dir + "/stat"
	cfg := config.PacingDefaults()
	cfg.CPUBurst = 12
	ts := newTestServer(t, cfg, false)
	ts.p.sys, ts.p.procStat = ctl, stat
	cs := cpuSampler{path: stat}
	tick := func(busy, idle int) {
		t.Helper()
		if err := writeFile(stat, fmt.Sprintf("cpu  %d 0 0 %d 0 0 0 0 0 0\n", busy, idle)); err != nil {
			t.Fatal(err)
		}
		ts.p.cpuTick(&cs)
	}
	tick(0, 0)
	tick(950, 50)   // 95 %
	tick(1900, 100) // 95 %
	if v, _ := ctl.get("tcp_min_tso_segs"); v != 12 || !ts.p.hiCPU.Load() {
		t.Fatalf("high load: sysctl %d, high %v", v, ts.p.hiCPU.Load())
	}
	r := ts.get(t, freshClient(ts), "/v/0.m4s", map[string]string{HeaderName: "rate=4000"})
	if r.sockRate != 500_000 {
		t.Errorf("rate changed under load: %d", r.sockRate)
	}
	if _, ok := r.cmsd["com.sluice-hicpu"]; !ok || r.cmsd["com.sluice-cpu"] == "" {
		t.Errorf("CMSD %v does not report the load", r.cmsd)
	}
	for i := 0; i < 5; i++ {
		tick(1900+10*(i+1), 100+1000*(i+1)) // idle
	}
	if v, _ := ctl.get("tcp_min_tso_segs"); v != 2 || ts.p.hiCPU.Load() {
		t.Fatalf("after the load: sysctl %d, high %v", v, ts.p.hiCPU.Load())
	}
	// Run restores on exit too.
	ctx, cancel := context.WithCancel(context.Background())
	ts.p.setHighCPU(true)
	cancel()
	ts.p.Run(ctx)
	if v, _ := ctl.get("tcp_min_tso_segs"); v != 2 {
		t.Fatalf("Run left the sysctl at %d", v)
	}
}

func writeFile(path, s string) error {
	return os.WriteFile(path, []byte(s), 0o644)
}

// TestHighCPULogRateLimited: a load that flaps around cpu_high enters
// high-CPU mode again and again; the first entry is logged, later ones at
// most once per hiCPULogEvery with the count of entries they stand for.
func TestHighCPULogRateLimited(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	var l hiCPULog
	for _, c := range []struct {
		at   time.Duration
		log  bool
		want int
	}{
		{0, true, 1},
		{time.Minute, false, 0},
		{5 * time.Minute, false, 0},
		{hiCPULogEvery - time.Second, false, 0},
		{hiCPULogEvery, true, 4},
		{hiCPULogEvery + time.Minute, false, 0},
		{3 * hiCPULogEvery, true, 2},
	} {
		n, ok := l.due(t0.Add(c.at))
		if ok != c.log || n != c.want {
			t.Errorf("entry at +%v: logged %v with %d episodes; want %v, %d", c.at, ok, n, c.log, c.want)
		}
	}

	// Through the pacer: 20 entries in a row log one line.
	var buf bytes.Buffer
	p := New(config.PacingDefaults(), nil, slog.New(slog.NewTextHandler(&buf, nil)))
	for i := 0; i < 20; i++ {
		p.setHighCPU(true)
		p.setHighCPU(false)
	}
	if n := strings.Count(buf.String(), "level=INFO"); n != 1 {
		t.Errorf("20 entries into high-CPU mode logged %d lines:\n%s", n, buf.String())
	}
}
