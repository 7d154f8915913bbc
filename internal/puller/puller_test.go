package puller_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/ingest"
	"github.com/sluice-media/sluice/internal/manifest"
	"github.com/sluice-media/sluice/internal/metrics"
	"github.com/sluice-media/sluice/internal/puller"
	"github.com/sluice-media/sluice/internal/server"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/testkit"
	"github.com/sluice-media/sluice/internal/testmedia"
)

var points = []config.Point{{Name: "live", Token: "tok"}}

// ingestNode is an ingest server on httptest.
type ingestNode struct {
	srv *server.Server
	ts  *httptest.Server
}

func newIngest(t *testing.T) *ingestNode {
	t.Helper()
	return newIngestWith(t, func(*config.Config) {})
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
	logs *testkit.Buffer
}

func startOrigin(t *testing.T, ingests []string, stall time.Duration) *originNode {
	t.Helper()
	return startOriginWith(t, ingests, stall, nil)
}

// startOriginWith is startOrigin with the puller options changed by mod.
func startOriginWith(t *testing.T, ingests []string, stall time.Duration, mod func(*puller.Options)) *originNode {
	t.Helper()
	o, _ := startOriginPuller(t, ingests, stall, mod)
	return o
}

// startOriginPuller is startOriginWith that returns the puller too.
func startOriginPuller(t *testing.T, ingests []string, stall time.Duration, mod func(*puller.Options)) (*originNode, *puller.Puller) {
	t.Helper()
	cfg := config.Defaults()
	cfg.Data = t.TempDir()
	cfg.Points = points
	log, logs := testkit.Logger()
	st, err := store.Open(cfg.Data, log)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	h := ingest.New(st, cfg, m, log)
	opts := puller.Options{Ingests: ingests, Points: points, Poll: 200 * time.Millisecond,
		Stall: stall, Log: log, Registry: m.Registry}
	if mod != nil {
		mod(&opts)
	}
	p := puller.New(st, h, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	logs.LogOnFailure(t, "origin")
	return &originNode{st: st, reg: m.Registry, logs: logs}, p
}

// waitComplete waits until the origin holds exactly want and has ended.
func waitComplete(t *testing.T, o *originNode, want map[string][]byte, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := testkit.Snapshot(t, o.st, "live")
		ended := false
		if p, err := o.st.Point("live"); err == nil {
			ended = p.View(0).Ended
		}
		if ended && testkit.SameFragments(got, want) {
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
		testmedia.Run(t, testmedia.TinyISMVArgs(6, "64x64", p))
		fixBody, fixErr = os.ReadFile(p)
	})
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fixBody
}

// TestPullWhole: an origin pulls a whole stream, byte for byte, with the
// ingest's anchor, and ends when it ends.
func TestPullWhole(t *testing.T) {
	a := newIngest(t)
	a.mustPush(t, fixture(t))
	o := startOrigin(t, []string{a.ts.URL}, 0)
	waitComplete(t, o, testkit.Snapshot(t, a.srv.Store, "live"), 10*time.Second)
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
	waitComplete(t, o, testkit.Snapshot(t, b.srv.Store, "live"), 10*time.Second)
}

// TestPullStallFailover: ingest A stops receiving in the middle (its
// stream stays live); the origin fails over to B when nothing arrives for
// the stall time and resumes where it was, without gap or duplicate.
func TestPullStallFailover(t *testing.T) {
	body := fixture(t)
	bs := testmedia.Boxes(t, body)
	a, b := newIngest(t), newIngest(t)
	half := len(bs) / 2
	for bs[half].Type != "moof" {
		half++
	}
	a.mustPush(t, testmedia.Join(bs[:half])) // no end of stream
	b.mustPush(t, body)
	o := startOrigin(t, []string{a.ts.URL, b.ts.URL}, 500*time.Millisecond)
	waitComplete(t, o, testkit.Snapshot(t, b.srv.Store, "live"), 10*time.Second)
	if n := testkit.Sum(t, o.reg, "sluice_pull_failovers_total", "reason=stall"); n < 1 {
		t.Errorf("stall failovers: %v", n)
	}
	if n := testkit.Sum(t, o.reg, "sluice_pull_fragments_total", "result=duplicate"); n != 0 {
		t.Errorf("%v fragments pulled twice", n)
	}
}

// TestPullConnectionLost: the ingest in use goes away in the middle of a
// live stream; the origin resumes from the other one with StartTime.
func TestPullConnectionLost(t *testing.T) {
	body := fixture(t)
	bs := testmedia.Boxes(t, body)
	a, b := newIngest(t), newIngest(t)
	b.mustPush(t, body)
	pr, pw := io.Pipe()
	go a.push(pr)
	go func() {
		for _, x := range bs[:len(bs)-1] {
			if _, err := pw.Write(x.Raw); err != nil {
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
	waitComplete(t, o, testkit.Snapshot(t, b.srv.Store, "live"), 15*time.Second)
	if n := testkit.Sum(t, o.reg, "sluice_pull_failovers_total"); n < 1 {
		t.Errorf("failovers: %v", n)
	}
	if n := testkit.Sum(t, o.reg, "sluice_pull_fragments_total", "result=duplicate"); n != 0 {
		t.Errorf("%v fragments pulled twice", n)
	}
}

// TestTwoOriginsAgree: two origins pulling the same ingest store the same
// bytes and render the same manifests.
func TestTwoOriginsAgree(t *testing.T) {
	a := newIngest(t)
	a.mustPush(t, fixture(t))
	want := testkit.Snapshot(t, a.srv.Store, "live")
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

// TestPullStreamOnlyOnOther: a stream that only the second ingest holds
// (an encoder pushing to B alone) is found and pulled, while the first
// ingest stays in use.
func TestPullStreamOnlyOnOther(t *testing.T) {
	a, b := newIngest(t), newIngest(t)
	b.mustPush(t, fixture(t))
	o := startOrigin(t, []string{a.ts.URL, b.ts.URL}, 0)
	waitComplete(t, o, testkit.Snapshot(t, b.srv.Store, "live"), 10*time.Second)
}
