package puller_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/puller"
	"github.com/sluice-media/sluice/internal/server"
	"github.com/sluice-media/sluice/internal/testkit"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// newIngestWith is newIngest with a changed configuration.
func newIngestWith(t *testing.T, mod func(*config.Config)) *ingestNode {
	t.Helper()
	cfg := config.Defaults()
	cfg.Data = t.TempDir()
	cfg.Points = points
	mod(&cfg)
	srv, err := server.New(cfg, server.Roles{Ingest: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &ingestNode{srv: srv, ts: ts}
}

// pushTo posts body to stream id of point live.
func (n *ingestNode) pushTo(t *testing.T, id string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.ts.URL+"/live.isml/Streams("+id+")", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("push %s: %v %v", id, err, resp)
	}
	resp.Body.Close()
}

// startPuller runs a puller of points from ingests into a fresh store,
// polling every 100 ms.
func startPuller(t *testing.T, ingests []string, mod func(*puller.Options)) (*originNode, *puller.Puller) {
	t.Helper()
	return startOriginPuller(t, ingests, 0, func(o *puller.Options) {
		o.Poll = 100 * time.Millisecond
		mod(o)
	})
}

// liveBody is the fixture without its end: the stream stays live.
func liveBody(t *testing.T) []byte {
	bs := testmedia.Boxes(t, fixture(t))
	return testmedia.Join(bs[:len(bs)-1])
}

// TestPullBounded: with more live streams than --max-pulls, an origin
// pulls no more than the bound at a time, counts the others as skipped,
// and stays ready.
func TestPullBounded(t *testing.T) {
	a := newIngestWith(t, func(*config.Config) {})
	body := liveBody(t)
	for _, id := range []string{"s1", "s2", "s3", "s4", "s5"} {
		a.pushTo(t, id, body)
	}
	o, p := startPuller(t, []string{a.ts.URL}, func(o *puller.Options) { o.MaxPulls = 2 })
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn := testkit.Sum(t, o.reg, "sluice_pull_streams_connected")
		if conn > 2 {
			t.Fatalf("%v pulls connected, bound 2", conn)
		}
		if conn == 2 && testkit.Sum(t, o.reg, "sluice_pull_streams_skipped_total") > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connected %v, skipped %v", conn, testkit.Sum(t, o.reg, "sluice_pull_streams_skipped_total"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.Ready(); err != nil {
		t.Fatalf("not ready: %v", err)
	}
}

// TestPullAbandoned: a live stream whose encoder went away without ending
// it is listed as abandoned once the ingest's stream expiry passes; an
// origin pulls it until it holds every fragment, then stops, and stays
// ready. An origin that starts later still gets the recording.
func TestPullAbandoned(t *testing.T) {
	a := newIngestWith(t, func(c *config.Config) { c.StreamExpiry = time.Second })
	a.pushTo(t, "s1", liveBody(t))
	want := testkit.Snapshot(t, a.srv.Store, "live")
	check := func(o *originNode, p *puller.Puller) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			abandoned := false
			if pt, err := a.srv.Store.Point("live"); err == nil {
				ss := pt.Streams()
				abandoned = len(ss) == 1 && time.Since(ss[0].Idle) > time.Second
			}
			same := testkit.SameFragments(testkit.Snapshot(t, o.st, "live"), want)
			conn := testkit.Sum(t, o.reg, "sluice_pull_streams_connected")
			if abandoned && same && conn == 0 && p.Ready() == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("abandoned %v, complete %v, connected %v, ready %v", abandoned, same, conn, p.Ready())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	check(startPuller(t, []string{a.ts.URL}, func(*puller.Options) {}))
	check(startPuller(t, []string{a.ts.URL}, func(*puller.Options) {}))
}
