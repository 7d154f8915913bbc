package puller_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/ingest"
	"github.com/sluice-media/sluice/internal/manifest"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/metrics"
	"github.com/sluice-media/sluice/internal/puller"
	"github.com/sluice-media/sluice/internal/server"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var points = []config.Point{{Name: "live", Token: "tok"}}

// ingestNode is an ingest server on httptest.
type ingestNode struct {
	srv *server.Server
	ts  *httptest.Server
}

func newIngest(t *testing.T) *ingestNode {
	t.Helper()
	cfg := config.Defaults()
	cfg.Data = t.TempDir()
	cfg.Points = points
	srv, err := server.New(cfg, server.Roles{Ingest: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &ingestNode{srv: srv, ts: ts}
}

// push posts body to the ingest's stream s1 and returns the status.
func (n *ingestNode) push(body io.Reader) (int, error) {
	req, _ := http.NewRequest(http.MethodPost, n.ts.URL+"/live.isml/Streams(s1)", body)
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// mustPush pushes a whole body.
func (n *ingestNode) mustPush(t *testing.T, body []byte) {
	t.Helper()
	if code, err := n.push(bytes.NewReader(body)); code != 200 {
		t.Fatalf("push: %d %v", code, err)
	}
}

// originNode is a store with a puller.
type originNode struct {
	st   *store.Store
	reg  *prometheus.Registry
	logs *syncBuffer
}

func startOrigin(t *testing.T, ingests []string, stall time.Duration) *originNode {
	t.Helper()
	cfg := config.Defaults()
	cfg.Data = t.TempDir()
	cfg.Points = points
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	st, err := store.Open(cfg.Data, log)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	h := ingest.New(st, cfg, m, log)
	p := puller.New(st, h, puller.Options{Ingests: ingests, Points: points, Poll: 200 * time.Millisecond,
		Stall: stall, Log: log, Registry: m.Registry})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("origin log:\n%s", logs)
		}
	})
	return &originNode{st: st, reg: m.Registry, logs: logs}
}

// snapshot reads every fragment of point live.
func snapshot(t *testing.T, st *store.Store) map[string][]byte {
	t.Helper()
	p, err := st.Point("live")
	if err != nil {
		return nil
	}
	out := map[string][]byte{}
	for _, tr := range p.View(0).Tracks {
		for _, f := range tr.Frags {
			b, _, err := p.ReadFragment(tr.ID, f.Start)
			if err != nil {
				t.Fatal(err)
			}
			out[tr.ID+"/"+strconv.FormatInt(f.Start, 10)] = b
		}
	}
	return out
}

func equal(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// waitComplete waits until the origin holds exactly want and has ended.
func waitComplete(t *testing.T, o *originNode, want map[string][]byte, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := snapshot(t, o.st)
		ended := false
		if p, err := o.st.Point("live"); err == nil {
			ended = p.View(0).Ended
		}
		if ended && equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("origin holds %d fragments (ended %v), want %d", len(got), ended, len(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	fixOnce sync.Once
	fixBody []byte
	fixErr  error
)

// fixture is a small ismv stream (about 6 s, 1 s fragments).
func fixture(t *testing.T) []byte {
	t.Helper()
	fixOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-puller")
		if err != nil {
			fixErr = err
			return
		}
		defer os.RemoveAll(dir)
		p := filepath.Join(dir, "a.ismv")
		testmedia.Run(t, []string{"-hide_banner", "-loglevel", "error", "-y",
			"-t", "6", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=10",
			"-t", "6", "-f", "lavfi", "-i", "sine=sample_rate=8000",
			"-c:v", "libx264", "-g", "10", "-keyint_min", "10", "-sc_threshold", "0", "-b:v", "20k",
			"-c:a", "aac", "-b:a", "16k", "-avoid_negative_ts", "make_non_negative",
			"-f", "ismv", "-movflags", "isml+frag_keyframe", p})
		fixBody, fixErr = os.ReadFile(p)
	})
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fixBody
}

// boxes splits a body into its top-level boxes.
func boxes(t *testing.T, body []byte) [][]byte {
	t.Helper()
	br := media.NewBoxReader(bytes.NewReader(body), uint64(len(body)))
	var out [][]byte
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Raw)
	}
}

func join(bs [][]byte) []byte { return bytes.Join(bs, nil) }

// TestPullWhole: an origin pulls a whole stream, byte for byte, with the
// ingest's anchor, and ends when it ends.
func TestPullWhole(t *testing.T) {
	a := newIngest(t)
	a.mustPush(t, fixture(t))
	o := startOrigin(t, []string{a.ts.URL}, 0)
	waitComplete(t, o, snapshot(t, a.srv.Store), 10*time.Second)
	pa, _ := a.srv.Store.Point("live")
	po, _ := o.st.Point("live")
	if !pa.Meta().Anchor.Equal(po.Meta().Anchor) {
		t.Errorf("anchor %v, ingest's %v", po.Meta().Anchor, pa.Meta().Anchor)
	}
}

// TestPullFirstUnreachable: the first reachable ingest wins.
func TestPullFirstUnreachable(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	b := newIngest(t)
	b.mustPush(t, fixture(t))
	o := startOrigin(t, []string{dead.URL, b.ts.URL}, 0)
	waitComplete(t, o, snapshot(t, b.srv.Store), 10*time.Second)
}

// TestPullStallFailover: ingest A stops receiving in the middle (its
// stream stays live); the origin fails over to B when nothing arrives for
// the stall time and resumes where it was, without gap or duplicate.
func TestPullStallFailover(t *testing.T) {
	body := fixture(t)
	bs := boxes(t, body)
	a, b := newIngest(t), newIngest(t)
	half := len(bs) / 2
	for string(bs[half][4:8]) != "moof" {
		half++
	}
	a.mustPush(t, join(bs[:half])) // no end of stream
	b.mustPush(t, body)
	o := startOrigin(t, []string{a.ts.URL, b.ts.URL}, 500*time.Millisecond)
	waitComplete(t, o, snapshot(t, b.srv.Store), 10*time.Second)
	if n := testutilSum(t, o.reg, "sluice_pull_failovers_total", "reason", "stall"); n < 1 {
		t.Errorf("stall failovers: %v", n)
	}
	if n := testutilSum(t, o.reg, "sluice_pull_fragments_total", "result", "duplicate"); n != 0 {
		t.Errorf("%v fragments pulled twice", n)
	}
}

// TestPullConnectionLost: the ingest in use goes away in the middle of a
// live stream; the origin resumes from the other one with StartTime.
func TestPullConnectionLost(t *testing.T) {
	body := fixture(t)
	bs := boxes(t, body)
	a, b := newIngest(t), newIngest(t)
	b.mustPush(t, body)
	pr, pw := io.Pipe()
	go a.push(pr)
	go func() {
		for _, x := range bs[:len(bs)-1] {
			if _, err := pw.Write(x); err != nil {
				return
			}
			time.Sleep(40 * time.Millisecond)
		}
		// A dies in the middle of its stream.
		a.ts.CloseClientConnections()
		a.ts.Close()
		pw.CloseWithError(errors.New("gone"))
	}()
	o := startOrigin(t, []string{a.ts.URL, b.ts.URL}, 0)
	waitComplete(t, o, snapshot(t, b.srv.Store), 15*time.Second)
	if n := testutilSum(t, o.reg, "sluice_pull_failovers_total", "", ""); n < 1 {
		t.Errorf("failovers: %v", n)
	}
	if n := testutilSum(t, o.reg, "sluice_pull_fragments_total", "result", "duplicate"); n != 0 {
		t.Errorf("%v fragments pulled twice", n)
	}
}

// TestTwoOriginsAgree: two origins pulling the same ingest store the same
// bytes and render the same manifests.
func TestTwoOriginsAgree(t *testing.T) {
	a := newIngest(t)
	a.mustPush(t, fixture(t))
	want := snapshot(t, a.srv.Store)
	o1 := startOrigin(t, []string{a.ts.URL}, 0)
	o2 := startOrigin(t, []string{a.ts.URL}, 0)
	waitComplete(t, o1, want, 10*time.Second)
	waitComplete(t, o2, want, 10*time.Second)
	p1, _ := o1.st.Point("live")
	p2, _ := o2.st.Point("live")
	opts := manifest.Options{Now: time.Now(), LookAhead: 2}
	for name, render := range map[string]func(store.View, manifest.Options) ([]byte, error){
		"dash": manifest.DASH, "smooth": manifest.Smooth, "hls": manifest.HLSMaster,
	} {
		m1, err1 := render(p1.View(0), opts)
		m2, err2 := render(p2.View(0), opts)
		if err1 != nil || err2 != nil || !bytes.Equal(m1, m2) {
			t.Errorf("%s manifests differ (%v, %v)", name, err1, err2)
		}
	}
}

// TestReady: the origin is ready once an ingest answers and every live
// stream is pulled.
func TestReady(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	p := puller.New(nil, nil, puller.Options{Ingests: []string{dead.URL}, Points: points})
	if err := p.Ready(); err == nil {
		t.Fatal("ready before any poll")
	}
}

// testutilSum sums a metric's samples, optionally those with label k=v.
func testutilSum(t *testing.T, reg *prometheus.Registry, name, k, v string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			ok := k == ""
			for _, l := range m.GetLabel() {
				ok = ok || (l.GetName() == k && l.GetValue() == v)
			}
			if ok {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestPullStreamOnlyOnOther: a stream that only the second ingest holds
// (an encoder pushing to B alone) is found and pulled, while the first
// ingest stays in use.
func TestPullStreamOnlyOnOther(t *testing.T) {
	a, b := newIngest(t), newIngest(t)
	b.mustPush(t, fixture(t))
	o := startOrigin(t, []string{a.ts.URL, b.ts.URL}, 0)
	waitComplete(t, o, snapshot(t, b.srv.Store), 10*time.Second)
}
