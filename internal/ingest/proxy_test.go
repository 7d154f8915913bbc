package ingest_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/server"
	"github.com/sluice-media/sluice/internal/testkit"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// newEnvWith is newEnv with a changed configuration, served on ln when
// ln is not nil.
func newEnvWith(t *testing.T, ln net.Listener, mod func(*config.Config)) *env {
	t.Helper()
	cfg := config.Defaults()
	cfg.Data = t.TempDir()
	cfg.MaxBox = 4 << 20
	cfg.Points = []config.Point{{Name: "live"}, {Name: "secure", Token: "s3cret"}}
	if mod != nil {
		mod(&cfg)
	}
	log, logs := testkit.Logger()
	srv, err := server.New(cfg, server.Roles{Ingest: true, Origin: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	if ln != nil {
		ts.Listener.Close()
		ts.Listener = ln
	}
	ts.Start()
	t.Cleanup(ts.Close)
	logs.LogOnFailure(t, ts.URL)
	return &env{t: t, srv: srv, ts: ts, logs: logs}
}

// reserve returns a listener on a free port and its base URL; the
// listener is closed, so that the port refuses connections until a server
// is started on it with listenOn.
func reserve(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func listenOn(t *testing.T, base string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", base[len("http://"):]); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

// waitSame waits until the standby holds exactly the primary's fragments
// and, when ended, has ended too.
func waitSame(t *testing.T, a, b *env, ended bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		sa := a.snapshot("live")
		var sb map[string][]byte
		bEnded := false
		if _, err := b.srv.Store.Point("live"); err == nil {
			sb = b.snapshot("live")
			bEnded = b.view("live").Ended
		}
		if len(sa) > 0 && testkit.SameFragments(sa, sb) && bEnded == ended {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("standby holds %d fragments (ended %v), primary %d (ended %v)", len(sb), bEnded, len(sa), ended)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProxyTee: a push to an ingest with a standby reaches the standby byte
// for byte; the standby holds the same fragments, the same stream header
// and the primary's anchor.
func TestProxyTee(t *testing.T) {
	b := newEnvWith(t, nil, nil)
	a := newEnvWith(t, nil, func(c *config.Config) { c.Standby = b.ts.URL })
	body, _ := fixtures(t)
	a.mustPush("push", body)
	waitSame(t, a, b, true, 5*time.Second)
	pa, _ := a.srv.Store.Point("live")
	pb, _ := b.srv.Store.Point("live")
	if !pa.Meta().Anchor.Equal(pb.Meta().Anchor) {
		t.Errorf("anchors differ: primary %v, standby %v", pa.Meta().Anchor, pb.Meta().Anchor)
	}
	if !bytes.Equal(pa.Streams()[0].Header, pb.Streams()[0].Header) {
		t.Error("stream headers differ")
	}
	if n := testkit.Sum(t, a.srv.Metrics.Registry, "sluice_proxy_connections_total", "mode=tee"); n != 1 {
		t.Errorf("tee connections: %v, want 1", n)
	}
	if n := testkit.Sum(t, a.srv.Metrics.Registry, "sluice_proxy_bytes_total"); n != float64(len(body)) {
		t.Errorf("forwarded %v bytes, the push had %d", n, len(body))
	}
	// The standby does not forward a forwarded push (no loop when two
	// ingests name each other).
	if n := testkit.Sum(t, b.srv.Metrics.Registry, "sluice_proxy_connections_total"); n != 0 {
		t.Errorf("standby forwarded %v times", n)
	}
}

// TestProxyTokenForwarded: the token of the push goes along.
func TestProxyTokenForwarded(t *testing.T) {
	b := newEnvWith(t, nil, nil)
	a := newEnvWith(t, nil, func(c *config.Config) { c.Standby = b.ts.URL })
	body, _ := fixtures(t)
	if code, msg := a.post("/secure.isml/Streams(s1)", body, map[string]string{"Authorization": "Bearer s3cret"}); code != 200 {
		t.Fatalf("push: %d %s", code, msg)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if p, err := b.srv.Store.Point("secure"); err == nil && p.View(0).Ended {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("standby did not get the push with its token")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProxyStandbyDown: a standby that is down costs the push nothing; the
// next push catches it up from the primary's store.
func TestProxyStandbyDown(t *testing.T) {
	bURL := reserve(t)
	a := newEnvWith(t, nil, func(c *config.Config) { c.Standby = bURL })
	body, _ := fixtures(t)
	bs := testmedia.Boxes(t, body)
	// First push: everything but the end of stream; the standby is down.
	t0 := time.Now()
	if code, msg := a.post("/live.isml/Streams(s1)", testmedia.Join(bs[:len(bs)-1]), nil); code != 200 {
		t.Fatalf("push: %d %s", code, msg)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("push took %v with the standby down", d)
	}
	b := newEnvWith(t, listenOn(t, bURL), nil)
	// The next push (the encoder reconnecting with the rest) catches the
	// standby up: the fragments it lacks come from the primary's store.
	last := bs[len(bs)-3:]
	rest := append(append([]media.Box(nil), bs[:3]...), last...) // header + last fragment + mfra
	if code, msg := a.post("/live.isml/Streams(s1)", testmedia.Join(rest), nil); code != 200 {
		t.Fatalf("second push: %d %s", code, msg)
	}
	waitSame(t, a, b, true, 10*time.Second)
	if n := testkit.Sum(t, a.srv.Metrics.Registry, "sluice_proxy_connections_total", "mode=follow"); n < 1 {
		t.Errorf("follow connections: %v", n)
	}
}

// TestProxyCatchUpMidPush: the standby comes back in the middle of a long
// push; it is caught up with the fragments it missed and then follows the
// push to its end.
func TestProxyCatchUpMidPush(t *testing.T) {
	bURL := reserve(t)
	a := newEnvWith(t, nil, func(c *config.Config) { c.Standby = bURL })
	body, _ := fixtures(t)
	bs := testmedia.Boxes(t, body)
	pr, pw := io.Pipe()
	go func() {
		for _, b := range bs {
			if _, err := pw.Write(b.Raw); err != nil {
				return
			}
			time.Sleep(3 * time.Second / time.Duration(len(bs)))
		}
		pw.Close()
	}()
	var b *env
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(700 * time.Millisecond)
		b = newEnvWith(t, listenOn(t, bURL), nil)
	}()
	req, _ := http.NewRequest(http.MethodPost, a.ts.URL+"/live.isml/Streams(s1)", pr)
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("push: %s", resp.Status)
	}
	wg.Wait()
	waitSame(t, a, b, true, 10*time.Second)
	if n := testkit.Sum(t, a.srv.Metrics.Registry, "sluice_proxy_connections_total", "mode=follow"); n < 1 {
		t.Errorf("follow connections: %v", n)
	}
	if testing.Verbose() {
		t.Logf("primary's log:\n%s", a.logs)
	}
}

// bigFixture is an ismv stream of about 1 MB.
func bigFixture(t *testing.T) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "big.ismv")
	testmedia.Run(t, []string{"-hide_banner", "-loglevel", "error", "-y",
		"-t", "4", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
		"-t", "4", "-f", "lavfi", "-i", "sine=sample_rate=8000",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-b:v", "2M",
		"-c:a", "aac", "-b:a", "16k", "-avoid_negative_ts", "make_non_negative",
		"-f", "ismv", "-movflags", "isml+frag_keyframe", p})
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// smallBufListener shrinks the receive buffer of every accepted connection,
// so that a standby that does not read stops the sender quickly.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	return c, err
}

// TestProxySlowStandby: a standby that stops reading never slows the
// primary down: the proxy connection is dropped once the bounded buffer is
// full, and the push completes at the primary's pace.
func TestProxySlowStandby(t *testing.T) {
	release := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stuck := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // never reads the body
	}))
	stuck.Listener.Close()
	stuck.Listener = smallBufListener{ln}
	stuck.Start()
	t.Cleanup(stuck.Close)
	t.Cleanup(func() { close(release) })
	a := newEnvWith(t, nil, func(c *config.Config) {
		c.Standby = stuck.URL
		c.StandbyBuffer = 64 << 10
	})
	body := bigFixture(t)
	t0 := time.Now()
	a.mustPush("push", body)
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("push of %d bytes took %v behind a stuck standby", len(body), d)
	}
	if n := testkit.Sum(t, a.srv.Metrics.Registry, "sluice_proxy_drops_total", "reason=buffer_full"); n != 1 {
		t.Errorf("buffer_full drops: %v, want 1", n)
	}
	if !a.view("live").Ended {
		t.Error("the primary did not store the whole push")
	}
}

// TestPullStartTimeList: StartTime(<track>=<t>,...) resumes each track at
// its first fragment at or after t, without the header, so that a resumed
// pull neither skips nor repeats a fragment.
func TestPullStartTimeList(t *testing.T) {
	e := newEnv(t)
	a, _ := fixtures(t)
	e.mustPush("push", a)
	v := e.view("live")
	from := map[string]int64{}
	want := 0
	url := e.ts.URL + "/live.isml/Streams(s1)/StartTime("
	for i, tr := range v.Tracks {
		mid := tr.Frags[len(tr.Frags)/2]
		from[tr.ID] = mid.Start + 1
		want += len(tr.Frags) - len(tr.Frags)/2 - 1
		if i > 0 {
			url += ","
		}
		url += tr.ID + "=" + strconv.FormatInt(mid.Start+1, 10)
	}
	resp, err := http.Get(url + ")")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pull %s: %v %v", url, err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := 0
	for _, b := range testmedia.Boxes(t, body) {
		switch b.Type {
		case "ftyp", "moov":
			t.Fatalf("resumed pull carries %s", b.Type)
		case "moof":
			got++
		}
	}
	if got != want {
		t.Fatalf("resumed pull carries %d fragments, want %d", got, want)
	}
	if resp, _ := http.Get(e.ts.URL + "/live.isml/Streams(s1)/StartTime(bad=x)"); resp.StatusCode != 404 {
		t.Errorf("malformed StartTime list: %s", resp.Status)
	}
}
