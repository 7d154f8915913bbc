package distribution

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/testkit"
)

// fakeOrigin serves a live point "ch" with one track "v" (timescale 1000,
// 2 s fragments from t=100000) and counts requests per path.
type fakeOrigin struct {
	t  *testing.T
	ts *httptest.Server

	mu     sync.Mutex
	counts map[string]int
	frags  int // fragments listed
	live   bool
	// fail, when set, answers a request itself (return true).
	fail func(w http.ResponseWriter, r *http.Request) bool
	// gate, when not nil, holds fragment bodies after their first half
	// until closed.
	gate chan struct{}
	// mpdCC is the Cache-Control of the MPD ("": public, max-age=1);
	// noETag leaves its ETag out.
	mpdCC  string
	noETag bool
}

const fakeStart, fakeDur = 100000, 2000

func newFakeOrigin(t *testing.T) *fakeOrigin {
	f := &fakeOrigin{t: t, counts: map[string]int{}, frags: 10, live: true}
	f.ts = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.ts.Close)
	return f
}

func (f *fakeOrigin) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[path]
}

func (f *fakeOrigin) total(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for p, c := range f.counts {
		if strings.HasPrefix(p, prefix) {
			n += c
		}
	}
	return n
}

// fragBody is the deterministic body of fragment t.
func fragBody(t int64) []byte {
	b := make([]byte, 100_000+int(t%977))
	for i := range b {
		b[i] = byte(int64(i)*7 + t)
	}
	return b
}

func (f *fakeOrigin) mpd() string {
	f.mu.Lock()
	n, live := f.frags, f.live
	f.mu.Unlock()
	typ := "static"
	if live {
		typ = "dynamic"
	}
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="%s">
  <Period id="0" start="PT0S">
    <AdaptationSet contentType="video">
      <SegmentTemplate media="tracks/$RepresentationID$/$Time$.m4s" initialization="tracks/$RepresentationID$/init.mp4" timescale="1000">
        <SegmentTimeline><S t="%d" d="%d" r="%d"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation id="v" bandwidth="1000000"/>
    </AdaptationSet>
  </Period>
</MPD>
`, typ, fakeStart, fakeDur, n-1)
}

func (f *fakeOrigin) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.counts[r.URL.Path]++
	fail, gate := f.fail, f.gate
	f.mu.Unlock()
	if fail != nil && fail(w, r) {
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	switch {
	case r.URL.Path == "/ch.isml/manifest.mpd":
		body := f.mpd()
		w.Header().Set("Content-Type", "application/dash+xml")
		f.mu.Lock()
		cc, noETag := f.mpdCC, f.noETag
		f.mu.Unlock()
		if cc == "" {
			cc = "public, max-age=1"
		}
		w.Header().Set("Cache-Control", cc)
		if !noETag {
			w.Header().Set("ETag", fmt.Sprintf(`"m-%d"`, len(body)+f.frags))
		}
		if et := w.Header().Get("ETag"); et != "" && r.Header.Get("If-None-Match") == et {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, body)
	case strings.HasPrefix(r.URL.Path, "/ch.isml/tracks/v/") && strings.HasSuffix(r.URL.Path, ".m4s"):
		t, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/ch.isml/tracks/v/"), ".m4s"), 10, 64)
		if err != nil || t < fakeStart || (t-fakeStart)%fakeDur != 0 {
			w.Header().Set("Cache-Control", "public, max-age=1")
			http.NotFound(w, r)
			return
		}
		body := fragBody(t)
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("ETag", fmt.Sprintf(`"f-%d-%d"`, t, len(body)))
		if gate != nil && r.Header.Get("Range") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(http.StatusOK)
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			<-gate
			w.Write(body[len(body)/2:])
			return
		}
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(body)))
	case strings.HasPrefix(r.URL.Path, "/ch.isml/tracks/v/init.mp4"):
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		io.WriteString(w, "init")
	case r.URL.Path == "/healthz":
		io.WriteString(w, "ok\n")
	default:
		w.Header().Set("Cache-Control", "public, max-age=2")
		http.NotFound(w, r)
	}
}

// testProxy is a Proxy in front of origins, served by httptest.
type testProxy struct {
	p   *Proxy
	ts  *httptest.Server
	reg *prometheus.Registry
}

func newTestProxy(t *testing.T, mod func(*config.Distribution), origins ...string) *testProxy {
	t.Helper()
	cfg := config.Defaults().Distribution
	cfg.Origins = origins
	cfg.Backoff = 500 * time.Millisecond
	cfg.UpstreamTimeout = 2 * time.Second
	cfg.KeepAlive = 0
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	p, err := New(cfg, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(p)
	t.Cleanup(ts.Close)
	return &testProxy{p: p, ts: ts, reg: reg}
}

// newClockedProxy is newTestProxy on a fake clock (the cache's and the
// upstream's), which the test advances.
func newClockedProxy(t *testing.T, mod func(*config.Distribution), origins ...string) (*testProxy, *testkit.Clock) {
	t.Helper()
	tp := newTestProxy(t, mod, origins...)
	clk := testkit.NewClock(time.Now())
	tp.p.now, tp.p.up.now = clk.Now, clk.Now
	return tp, clk
}

func (tp *testProxy) get(t *testing.T, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, tp.ts.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s body: %v", path, err)
	}
	return resp, b
}

// metric reads a counter or gauge of the proxy.
func (tp *testProxy) metric(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func fragPath(t int64) string { return "/ch.isml/tracks/v/" + strconv.FormatInt(t, 10) + ".m4s" }
func listedFrag(i int) int64  { return fakeStart + int64(i)*fakeDur }

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx, cancel
}
