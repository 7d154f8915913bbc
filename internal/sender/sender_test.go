package sender

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/blockstore"
	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/netconn"
	"github.com/sluice-media/sluice/internal/placement"
	"github.com/sluice-media/sluice/internal/testkit"
)

var secret = []byte("cluster-secret")

type fixture struct {
	s    *Sender
	st   *blockstore.Store
	base string
	cli  *placement.Client
}

func newFixture(t *testing.T, budget int64, admit bool) *fixture {
	t.Helper()
	return newFixtureWith(t, budget, admit, nil)
}

// newFixtureWith is newFixture with options changed by opt (nil: none).
func newFixtureWith(t *testing.T, budget int64, admit bool, opt func(*Options)) *fixture {
	t.Helper()
	d, err := blockstore.OpenDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := blockstore.New(blockstore.Options{Backend: d, RAMBudget: budget, NoAdmitOnMiss: !admit})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{ID: "s1", Secret: secret, Store: st}
	if opt != nil {
		opt(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Config.ConnContext = netconn.ConnContext
	srv.Start()
	s.SetURL(srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	go s.Run(ctx)
	t.Cleanup(func() {
		cancel()
		srv.Close()
		st.Close()
	})
	return &fixture{s: s, st: st, base: srv.URL, cli: placement.NewClient(secret, nil)}
}

func blk(i int) cluster.BlockID {
	return cluster.BlockID{Point: "live/ch", Track: "video_800000", Start: int64(i) * 20_000_000}
}

// data is block i: a fragment n bytes long that starts at blk(i).Start.
func data(i, n int) []byte {
	return testkit.CMAFFragment(uint32(i), blk(i).Start, 2000, n)
}

// initData is the header of the track of the blocks.
var initData = testkit.CMAFInit()

// put stores n blocks of size bytes and the track's init.
func (f *fixture) put(t *testing.T, n, size int) {
	t.Helper()
	ctx := context.Background()
	if err := f.cli.PutInit(ctx, f.base, "live/ch", "video_800000", initData, "video/mp4"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		added, err := f.cli.PutBlock(ctx, f.base, blk(i), data(i, size))
		if err != nil || !added {
			t.Fatalf("put %d: %v %v", i, added, err)
		}
	}
	if added, err := f.cli.PutBlock(ctx, f.base, blk(0), data(0, size)); err != nil || added {
		t.Fatalf("second put of a block: added=%v %v", added, err)
	}
}

// token is a session's token for point live/ch. The fixture's sender
// accepts it during its SessionGrace (it started a moment ago); the
// session tests grant sessions.
func token(sess string, key []byte) string {
	return cluster.Sign(key, cluster.Token{Session: sess, Point: "live/ch"})
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestInternalAuth: internal requests are accepted only signed with the
// cluster key for this sender, once, with the signed body; the secret in
// a header (the old scheme) is refused.
func TestInternalAuth(t *testing.T) {
	f := newFixture(t, 1<<20, false)
	keys := clusterauth.NewKeys(secret)
	u, _ := url.Parse(f.base)
	send := func(method, path string, body string, sign func(*http.Request)) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, f.base+path, strings.NewReader(body))
		if sign != nil {
			sign(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	signed := func(r *http.Request) { keys.Sign(r, time.Now()) }
	var replayed http.Header
	for _, c := range []struct {
		name, method, path, body string
		sign                     func(*http.Request)
		want                     int
		reason                   string
	}{
		{"unsigned batch", "POST", "/internal/v1/batch", "{}", nil, 401, "unsigned"},
		{"the secret in clear", "POST", "/internal/v1/batch", "{}", func(r *http.Request) { r.Header.Set("Sluice-Cluster-Secret", string(secret)) }, 401, "unsigned"},
		{"another key", "GET", "/internal/v1/stats", "", func(r *http.Request) { clusterauth.NewKeys([]byte("wrong")).Sign(r, time.Now()) }, 401, "bad_signature"},
		{"stale", "GET", "/internal/v1/stats", "", func(r *http.Request) { keys.Sign(r, time.Now().Add(-time.Minute)) }, 401, "skew"},
		{"signed for another sender", "GET", "/internal/v1/stats", "", func(r *http.Request) {
			r.Host = "10.9.9.9:9001"
			keys.Sign(r, time.Now())
			r.Host = u.Host
		}, 401, "wrong_target"},
		{"body swapped", "PUT", "/internal/v1/init/live/ch/video_800000", string(initData), func(r *http.Request) {
			keys.Sign(r, time.Now())
			r.Body = io.NopCloser(strings.NewReader("other"))
			r.ContentLength = 5
		}, 401, "body_digest"},
		{"stats", "GET", "/internal/v1/stats", "", func(r *http.Request) { signed(r); replayed = r.Header.Clone() }, 200, ""},
		{"replay", "GET", "/internal/v1/stats", "", func(r *http.Request) { r.Header = replayed }, 401, "replay"},
		{"missing, empty body", "POST", "/internal/v1/missing", "", signed, 400, ""},
		{"batch, empty body", "POST", "/internal/v1/batch", "", signed, 400, ""},
		{"bad start", "PUT", "/internal/v1/blocks/live/ch/video_800000/x", string(data(0, 500)), signed, 400, ""},
		{"bad point", "PUT", "/internal/v1/blocks/.hidden/ch/video_800000/1", string(data(0, 500)), signed, 400, ""},
		{"the proof needs no signature", "GET", "/internal/v1/proof?c=0123456789abcdef0123456789abcdef", "", nil, 200, "proof"},
	} {
		code, body := send(c.method, c.path, c.body, c.sign)
		if code != c.want || !strings.Contains(body, c.reason) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, code, body, c.want, c.reason)
		}
	}
	if got := testkit.Sum(t, f.s.reg, "sluice_cluster_auth_refusals_total", "reason=replay"); got != 1 {
		t.Errorf("replays counted: %v", got)
	}
	if err := keys.Prove(context.Background(), nil, f.base); err != nil {
		t.Errorf("the sender does not prove the key for its own URL: %v", err)
	}
}

// TestBlockValidation: a sender stores a block only when it parses as the
// fragment its key names, a track header only when it parses as a CMAF
// header; anything else is 400 with a reason and stores nothing.
func TestBlockValidation(t *testing.T) {
	f := newFixture(t, 1<<20, false)
	ctx := context.Background()
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(i*7 + i>>8)
	}
	if err := f.cli.PutInit(ctx, f.base, "live/ch", "video_800000", random[:4096], "video/mp4"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("junk header: %v, want a 400", err)
	}
	if _, err := f.cli.Missing(ctx, f.base, cluster.HaveQuery{Inits: []string{"live/ch/video_800000"}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		id   cluster.BlockID
		data []byte
	}{
		{"random 64 KiB (the attack)", blk(0), random},
		{"empty", blk(0), nil},
		{"a header", blk(0), initData},
		{"the fragment of another start", blk(1), data(0, 500)},
		{"truncated", blk(0), data(0, 500)[:400]},
		{"two fragments", blk(0), append(data(0, 500), data(1, 500)...)},
	} {
		_, err := f.cli.PutBlock(ctx, f.base, c.id, c.data)
		if err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("%s: %v, want 400", c.name, err)
		}
	}
	if n := f.s.Stats().Blocks; n != 0 {
		t.Fatalf("%d blocks stored after refused uploads", n)
	}
	// A valid block before the header is known, then the header, then a
	// block of another track of the header's.
	if added, err := f.cli.PutBlock(ctx, f.base, blk(0), data(0, 500)); err != nil || !added {
		t.Fatalf("valid block: %v %v", added, err)
	}
	if err := f.cli.PutInit(ctx, f.base, "live/ch", "video_800000", initData, "video/mp4"); err != nil {
		t.Fatal(err)
	}
	if added, err := f.cli.PutBlock(ctx, f.base, blk(1), data(1, 500)); err != nil || !added {
		t.Fatalf("valid block after the header: %v %v", added, err)
	}
	if got := testkit.Sum(t, f.s.reg, "sluice_sender_invalid_uploads_total", "kind=block"); got != 6 {
		t.Errorf("invalid blocks counted: %v", got)
	}
	if got := testkit.Sum(t, f.s.reg, "sluice_sender_invalid_uploads_total", "kind=init"); got != 1 {
		t.Errorf("invalid headers counted: %v", got)
	}
}

func TestServeHeadersRangeAndBytes(t *testing.T) {
	f := newFixture(t, 1<<20, false)
	f.put(t, 2, 100_000)
	tok := token("sess", secret)
	resp, body := get(t, f.base+"/b/"+tok+"/live/ch/video_800000/20000000.m4s")
	if resp.StatusCode != 200 || !bytes.Equal(body, data(1, 100_000)) {
		t.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
	}
	h := resp.Header
	if cc := h.Get("Cache-Control"); !strings.HasPrefix(cc, "private") {
		t.Errorf("Cache-Control %q", cc)
	}
	if h.Get("Content-Type") != "video/mp4" || h.Get("Sluice-Sender") != "s1" || h.Get("ETag") == "" {
		t.Errorf("headers %v", h)
	}
	resp, body = get(t, f.base+"/b/"+tok+"/live/ch/video_800000/20000000.m4s", "Range", "bytes=10-19")
	if resp.StatusCode != 206 || !bytes.Equal(body, data(1, 100_000)[10:20]) {
		t.Errorf("range: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, f.base+"/b/"+tok+"/live/ch/video_800000/init.mp4")
	if resp.StatusCode != 200 || !bytes.Equal(body, initData) {
		t.Errorf("init: %d %q", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodOptions, f.base+"/b/"+tok+"/live/ch/video_800000/0.m4s", nil)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 204 || !strings.Contains(r2.Header.Get("Access-Control-Allow-Headers"), "Range") {
		t.Errorf("preflight: %d %v", r2.StatusCode, r2.Header)
	}
}

func TestBatchPinsRefusalsAndReports(t *testing.T) {
	// Budget: 3 blocks of 10 000 bytes.
	f := newFixture(t, 30_000, false)
	f.put(t, 6, 10_000)
	ctx := context.Background()
	p := func(sess string, i int) cluster.Pin { return cluster.Pin{Session: sess, Block: blk(i)} }
	for _, c := range []struct {
		name    string
		batch   cluster.Batch
		refused []cluster.Pin
		missing []cluster.BlockID
		pinned  int
		count   map[int]int
	}{
		{"look-ahead pins", cluster.Batch{Scheduler: "A", LookAhead: []cluster.Pin{p("s1", 0), p("s1", 1)}}, nil, nil, 2, map[int]int{0: 1, 1: 1}},
		{"repeats do not double count", cluster.Batch{Scheduler: "A", LookAhead: []cluster.Pin{p("s1", 0), p("s1", 1)}}, nil, nil, 2, map[int]int{0: 1, 1: 1}},
		{"send pins too", cluster.Batch{Scheduler: "A", Send: []cluster.Pin{p("s2", 0), p("s2", 2)}}, nil, nil, 3, map[int]int{0: 2, 2: 1}},
		{"full: refused, and missing named", cluster.Batch{Scheduler: "B", LookAhead: []cluster.Pin{p("t1", 3), p("t1", 99), p("t2", 99), p("t1", 1)}},
			[]cluster.Pin{p("t1", 3)}, []cluster.BlockID{blk(99)}, 3, map[int]int{1: 2, 3: 0}},
		{"cancel then room", cluster.Batch{Scheduler: "A", Cancel: []cluster.Pin{p("s1", 0), p("s2", 0)}, LookAhead: []cluster.Pin{p("s1", 4)}},
			nil, nil, 3, map[int]int{0: 0, 4: 1}},
	} {
		res, err := f.cli.Batch(ctx, f.base, c.batch)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if fmt.Sprint(res.Refused) != fmt.Sprint(c.refused) || fmt.Sprint(res.Missing) != fmt.Sprint(c.missing) {
			t.Errorf("%s: refused %v missing %v, want %v %v", c.name, res.Refused, res.Missing, c.refused, c.missing)
		}
		for i, want := range c.count {
			if got := f.st.Count(blk(i)); got != want {
				t.Errorf("%s: count of %d = %d, want %d", c.name, i, got, want)
			}
		}
		if st := f.s.Stats(); st.PinnedBlocks != c.pinned {
			t.Errorf("%s: %d pinned, want %d", c.name, st.PinnedBlocks, c.pinned)
		}
		// A block still loading leaves no room (blockstore.reserve): let
		// this row's loads end so the next row sees the RAM it describes.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		for i := range 6 {
			f.st.WaitLoaded(wctx, blk(i))
		}
		cancel()
	}
	// Sends are served from RAM and reported to the scheduler of the session.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	f.st.WaitLoaded(wctx, blk(2))
	tok := token("s2", secret)
	if resp, _ := get(t, f.base+"/b/"+tok+"/live/ch/video_800000/40000000.m4s"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	if resp, _ := get(t, f.base+"/b/"+tok+"/live/ch/video_800000/100000000.m4s"); resp.StatusCode != 200 { // block 5: unpinned, disk
		t.Fatal(resp.Status)
	}
	resB, _ := f.cli.Batch(ctx, f.base, cluster.Batch{Scheduler: "B"})
	if len(resB.Sent) != 0 {
		t.Errorf("scheduler B got reports of A's session: %v", resB.Sent)
	}
	res, err := f.cli.Batch(ctx, f.base, cluster.Batch{Scheduler: "A"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sent) != 2 || !res.Sent[0].FromRAM || res.Sent[0].Block != blk(2) || res.Sent[0].Bytes != 10_000 ||
		res.Sent[1].FromRAM || res.Sent[1].Session != "s2" {
		t.Errorf("sent reports %+v", res.Sent)
	}
	if res, _ := f.cli.Batch(ctx, f.base, cluster.Batch{Scheduler: "A"}); len(res.Sent) != 0 {
		t.Errorf("reports returned twice: %+v", res.Sent)
	}
	st, err := f.cli.Stats(ctx, f.base)
	if err != nil {
		t.Fatal(err)
	}
	if st.SendsRAM != 1 || st.SendsDisk != 1 || st.Refused != 1 || st.Blocks != 6 || st.ID != "s1" {
		t.Errorf("stats %+v", st)
	}
}

func TestLeaseExpiryReleasesExactlyThatSchedulersPins(t *testing.T) {
	f := newFixture(t, 1<<20, false)
	f.put(t, 3, 1000)
	ctx := context.Background()
	pins := func(sess string, ids ...int) []cluster.Pin {
		var out []cluster.Pin
		for _, i := range ids {
			out = append(out, cluster.Pin{Session: sess, Block: blk(i)})
		}
		return out
	}
	if _, err := f.cli.Batch(ctx, f.base, cluster.Batch{Scheduler: "A", Lease: 400 * time.Millisecond, LookAhead: pins("a", 0, 1, 2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cli.Batch(ctx, f.base, cluster.Batch{Scheduler: "B", Lease: 400 * time.Millisecond, LookAhead: pins("b", 1, 2)}); err != nil {
		t.Fatal(err)
	}
	// B keeps renewing; A stops.
	t0 := time.Now()
	var gone time.Duration
	for time.Since(t0) < 3*time.Second {
		time.Sleep(100 * time.Millisecond)
		if _, err := f.cli.Batch(ctx, f.base, cluster.Batch{Scheduler: "B", Lease: 400 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		if f.st.Count(blk(0)) == 0 {
			gone = time.Since(t0)
			break
		}
	}
	if gone == 0 {
		t.Fatal("A's pins were not released")
	}
	t.Logf("A's pins released %v after its last batch (lease 400 ms)", gone.Round(10*time.Millisecond))
	if gone > time.Second {
		t.Errorf("released after %v, lease 400 ms", gone)
	}
	for i, want := range []int{0, 1, 1} {
		if got := f.st.Count(blk(i)); got != want {
			t.Errorf("count of %d = %d, want %d (B's pins only)", i, got, want)
		}
	}
	if st := f.s.Stats(); st.LeaseExpiries != 1 || st.PinnedBlocks != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestSentReportCarriesCMCDNor: the player's CMCD nor (header or query
// mode) on a block request reaches the scheduler in SentReport.Next,
// percent-decoded and still relative, as the scheduler resolves it.
func TestSentReportCarriesCMCDNor(t *testing.T) {
	f := newFixture(t, 1<<20, false)
	f.put(t, 2, 1000)
	ctx := context.Background()
	if _, err := f.cli.Batch(ctx, f.base, cluster.Batch{Scheduler: "A", LookAhead: []cluster.Pin{{Session: "s1", Block: blk(0)}}}); err != nil {
		t.Fatal(err)
	}
	tok := token("s1", secret)
	u := f.base + "/b/" + tok + "/live/ch/video_800000/0.m4s"
	for _, c := range []struct {
		name  string
		query string
		hdr   []string
		want  string
	}{
		{"header", "", []string{"CMCD-Request", `bl=4000,nor="20000000.m4s"`}, "20000000.m4s"},
		{"header, encoded other track", "", []string{"CMCD-Request", `nor="..%2Fvideo_400000%2F20000000.m4s"`}, "../video_400000/20000000.m4s"},
		{"query", "?CMCD=" + url.QueryEscape(`bl=2000,nor="20000000.m4s",sid="x"`), nil, "20000000.m4s"},
		{"query among other arguments", "?a=1&CMCD=" + url.QueryEscape(`nor="%2Fb%2Ft%2Flive%2Fch%2Fvideo_800000%2F20000000.m4s"`), nil, "/b/t/live/ch/video_800000/20000000.m4s"},
		{"no CMCD", "", nil, ""},
		{"CMCD without nor", "", []string{"CMCD-Request", `bl=4000`}, ""},
		{"malformed nor ignored", "", []string{"CMCD-Request", `nor=12,bl=x`}, ""},
	} {
		resp, _ := get(t, u+c.query, c.hdr...)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", c.name, resp.Status)
		}
		res, err := f.cli.Batch(ctx, f.base, cluster.Batch{Scheduler: "A"})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Sent) != 1 || res.Sent[0].Next != c.want {
			t.Errorf("%s: reports %+v, want one with Next %q", c.name, res.Sent, c.want)
		}
	}
}

// TestConcurrentRAMResponses serves one pinned RAM block to concurrent
// clients (whole, ranges, HEAD, conditional): every body is right, and
// once the block is unpinned and evicted the process holds no more
// descriptors than before it was pinned.
func TestConcurrentRAMResponses(t *testing.T) {
	const size = 200_000
	f := newFixture(t, 300_000, false) // room for one block
	f.put(t, 2, size)
	ctx := context.Background()
	tok := token("sess", secret)
	url := f.base + "/b/" + tok + "/live/ch/video_800000/0.m4s"
	want := data(0, size)
	cli := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	t.Cleanup(cli.CloseIdleConnections)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	get(t, url) // from disk: connection, init and poller set up
	cli.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(50 * time.Millisecond)
	base := fds()

	if st := f.st.Pin(ctx, "A", cluster.Pin{Session: "sess", Block: blk(0)}); st != blockstore.Pinned {
		t.Fatal(st)
	}
	f.st.WaitLoaded(ctx, blk(0))
	resp, _ := get(t, url)
	etag := resp.Header.Get("ETag")
	cases := []struct {
		method, hdr, val string
		status           int
		body             []byte
	}{
		{"GET", "", "", 200, want},
		{"GET", "Range", "bytes=100-199", 206, want[100:200]},
		{"GET", "Range", "bytes=199000-", 206, want[199000:]},
		{"HEAD", "", "", 200, nil},
		{"GET", "If-None-Match", "", 304, nil}, // the ETag, filled in below
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 25; j++ {
				c := cases[(g+j)%len(cases)]
				req, _ := http.NewRequest(c.method, url, nil)
				if c.hdr == "If-None-Match" {
					c.val = etag
				}
				if c.hdr != "" {
					req.Header.Set(c.hdr, c.val)
				}
				resp, err := cli.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.status || !bytes.Equal(body, c.body) {
					t.Errorf("%s %s %q: status %d, %d bytes", c.method, c.hdr, c.val, resp.StatusCode, len(body))
					return
				}
			}
		}()
	}
	wg.Wait()
	st, err := f.cli.Stats(ctx, f.base)
	if err != nil {
		t.Fatal(err)
	}
	if st.SendsRAM < 100 {
		t.Errorf("%d sends from RAM, want every one of the ≥ 100 GETs", st.SendsRAM)
	}
	// Unpin, then pinning block 1 evicts block 0.
	f.st.Unpin("A", cluster.Pin{Session: "sess", Block: blk(0)})
	f.st.Pin(ctx, "A", cluster.Pin{Session: "sess", Block: blk(1)})
	f.st.WaitLoaded(ctx, blk(1))
	f.st.Unpin("A", cluster.Pin{Session: "sess", Block: blk(1)})
	cli.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(2 * time.Second)
	for fds() > base+1 && time.Now().Before(deadline) { // + block 1's memfd
		time.Sleep(10 * time.Millisecond)
	}
	if got := fds(); got != base+1 {
		t.Errorf("%d descriptors after the responses and the eviction, want %d (before) + 1 (block 1's memfd)", got, base)
	}
}

// TestFallbackRequestsCounted: a request whose Host is an owner-set name
// that lists this sender after another one counts as a fallback (the
// player could not connect to the first owner); other hosts do not.
func TestFallbackRequestsCounted(t *testing.T) {
	f := newFixture(t, 1<<20, false)
	f.put(t, 1, 1000)
	tok := token("sess", secret)
	for _, c := range []struct {
		host     string
		fallback bool
	}{
		{"s0--s1.senders.example:9001", true},
		{"s2--s0--s1.senders.example", true},
		{"s1--s0.senders.example:9001", false}, // first owner
		{"s0--s2.senders.example", false},      // not named
		{"127.0.0.1:9001", false},
		{"s1.senders.example", false},
	} {
		before := testkit.Sum(t, f.s.reg, "sluice_sender_fallback_requests_total")
		req, _ := http.NewRequest(http.MethodGet, f.base+"/b/"+tok+"/live/ch/video_800000/0.m4s", nil)
		req.Host = c.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", c.host, resp.StatusCode)
		}
		got := testkit.Sum(t, f.s.reg, "sluice_sender_fallback_requests_total") - before
		if want := map[bool]float64{true: 1, false: 0}[c.fallback]; got != want {
			t.Errorf("%s: counted %v, want %v", c.host, got, want)
		}
	}
}

// TestBatchBinaryEncoding: a batch in the binary encoding (what a
// scheduler sends) is answered in it, with the same effect as in JSON; a
// malformed one is a 400 with the reason, and pins nothing.
func TestBatchBinaryEncoding(t *testing.T) {
	f := newFixture(t, 1<<20, false)
	f.put(t, 2, 10_000)
	keys := clusterauth.NewKeys(secret)
	post := func(body []byte) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, f.base+"/internal/v1/batch", bytes.NewReader(body))
		req.Header.Set("Content-Type", cluster.BatchContentType)
		keys.Sign(req, time.Now())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	bad := cluster.AppendBatch(nil, &cluster.Batch{Scheduler: "A", LookAhead: []cluster.Pin{{Session: "s1", Block: blk(0)}}})
	resp, body := post(bad[:len(bad)-1])
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "malformed binary batch") {
		t.Fatalf("truncated batch: %d %q", resp.StatusCode, body)
	}
	if n := f.s.Stats().PinnedBlocks; n != 0 {
		t.Fatalf("a malformed batch pinned %d blocks", n)
	}
	b := cluster.Batch{Scheduler: "A", Lease: time.Minute,
		LookAhead: []cluster.Pin{{Session: "s1", Block: blk(0)}, {Session: "s1", Block: blk(1)}, {Session: "s1", Block: blk(7)}}}
	resp, body = post(cluster.AppendBatch(nil, &b))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != cluster.BatchContentType {
		t.Fatalf("batch: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	res, err := cluster.DecodeBatchResult(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Missing) != 1 || res.Missing[0] != blk(7) || res.Boot == "" {
		t.Fatalf("result %+v: want blk(7) missing and the boot", res)
	}
	if n := f.s.Stats().PinnedBlocks; n != 2 {
		t.Fatalf("pinned %d blocks, want 2", n)
	}
}
