package scheduler

import (
	"context"
	"encoding/json"
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/store"
)

var testSecret = []byte("test-secret")

// testVerifier checks the signatures of the scheduler's requests to the
// fake senders (as a real sender does).
var testVerifier = &clusterauth.Verifier{Keys: clusterauth.NewKeys(testSecret)}

// fakeSender implements the sender side of the contract in memory: pins
// keyed by (scheduler, session, block), a budget of pinned blocks, sent
// reports per scheduler, and the token check on client requests.
type fakeSender struct {
	id     string
	srv    *httptest.Server
	budget int // most pinned blocks; <0 unlimited

	mu      sync.Mutex
	held    map[cluster.BlockID]bool            // blocks written to it
	pins    map[string]map[cluster.Pin]bool     // scheduler -> pins
	owner   map[string]string                   // session -> scheduler
	reports map[string][]cluster.SentReport     // scheduler -> pending reports
	batches []cluster.Batch                     // every batch received
	gets    []string                            // client paths served
	leases  map[string]time.Time                // scheduler -> lease end
	counts  map[string]map[cluster.BlockID]bool // scheduler -> blocks with a pin (for counting)
	grants  map[string]string                   // session -> scheduler that granted it last
	ended   map[string]bool
	boot    string          // BatchResult.Boot
	orphans []cluster.Grant // offered with the next batch answer to orphansTo
	// orphansTo is the scheduler the orphans go to.
	orphansTo string
	// jsonOnly: it decodes batches as JSON whatever their type, as
	// senders from before the binary encoding did.
	jsonOnly bool
}

func newFakeSender(t testing.TB, id string, budget int) *fakeSender {
	f := &fakeSender{id: id, budget: budget, held: map[cluster.BlockID]bool{}, pins: map[string]map[cluster.Pin]bool{},
		owner: map[string]string{}, reports: map[string][]cluster.SentReport{}, leases: map[string]time.Time{},
		grants: map[string]string{}, ended: map[string]bool{}, boot: "boot-1"}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSender) member() membership.Member { return membership.Member{ID: f.id, URL: f.srv.URL} }

func (f *fakeSender) pinned() int {
	n := map[cluster.BlockID]bool{}
	for _, ps := range f.pins {
		for p := range ps {
			n[p.Block] = true
		}
	}
	return len(n)
}

// Pins returns the pins a scheduler holds here.
func (f *fakeSender) Pins(sched string) map[cluster.Pin]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[cluster.Pin]bool{}
	for p := range f.pins[sched] {
		out[p] = true
	}
	return out
}

func (f *fakeSender) AllPins() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, ps := range f.pins {
		n += len(ps)
	}
	return n
}

func (f *fakeSender) Batches() []cluster.Batch {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]cluster.Batch(nil), f.batches...)
}

func (f *fakeSender) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/internal/v1/batch":
		if err := testVerifier.Verify(r); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		f.mu.Lock()
		jsonOnly := f.jsonOnly
		f.mu.Unlock()
		if jsonOnly {
			var b cluster.Batch
			if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
				http.Error(w, "bad batch: "+err.Error(), http.StatusBadRequest)
				return
			}
			json.NewEncoder(w).Encode(f.apply(b))
			return
		}
		b, err := readBatch(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeBatchResult(w, f.apply(b))
	case r.URL.Path == "/internal/v1/stats":
		f.mu.Lock()
		st := cluster.SenderStats{ID: f.id, PinnedBlocks: f.pinned()}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(st)
	case strings.HasPrefix(r.URL.Path, "/b/"):
		f.client(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeSender) apply(b cluster.Batch) cluster.BatchResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, b)
	f.leases[b.Scheduler] = time.Now().Add(b.Lease)
	for _, g := range b.Grants {
		f.grants[g.Session] = b.Scheduler
		f.owner[g.Session] = b.Scheduler
		delete(f.ended, g.Session)
	}
	for _, id := range b.Ends {
		if f.grants[id] == b.Scheduler {
			delete(f.grants, id)
			f.ended[id] = true
		}
	}
	ps := f.pins[b.Scheduler]
	if ps == nil {
		ps = map[cluster.Pin]bool{}
		f.pins[b.Scheduler] = ps
	}
	var res cluster.BatchResult
	for _, p := range b.Cancel {
		delete(ps, p)
	}
	missing := map[cluster.BlockID]bool{}
	for _, list := range [][]cluster.Pin{b.Send, b.LookAhead} {
		for _, p := range list {
			f.owner[p.Session] = b.Scheduler
			if !f.held[p.Block] {
				if !missing[p.Block] {
					missing[p.Block] = true
					res.Missing = append(res.Missing, p.Block)
				}
				continue
			}
			if ps[p] {
				continue
			}
			if f.budget >= 0 && f.pinned() >= f.budget {
				res.Refused = append(res.Refused, p)
				continue
			}
			ps[p] = true
		}
	}
	res.Sent = f.reports[b.Scheduler]
	delete(f.reports, b.Scheduler)
	res.Boot = f.boot
	if b.Scheduler == f.orphansTo {
		res.Orphans, f.orphans = f.orphans, nil
	}
	return res
}

// Granted returns the scheduler that granted a session last ("" none) and
// whether it was ended since.
func (f *fakeSender) Granted(sess string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.grants[sess], f.ended[sess]
}

func (f *fakeSender) client(w http.ResponseWriter, r *http.Request) {
	tok, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/b/"), "/")
	i := strings.LastIndexByte(rest, '/')
	j := strings.LastIndexByte(rest[:i], '/')
	id := cluster.BlockID{Point: rest[:j], Track: rest[j+1 : i]}
	file := rest[i+1:]
	if file != "init.mp4" {
		id.Start, _ = strconv.ParseInt(strings.TrimSuffix(file, ".m4s"), 10, 64)
	}
	t, err := cluster.Verify(testSecret, tok, id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets = append(f.gets, r.URL.Path)
	if file == "init.mp4" {
		w.Write([]byte("init"))
		return
	}
	if !f.held[id] {
		http.NotFound(w, r)
		return
	}
	ram := false
	for _, ps := range f.pins {
		for p := range ps {
			if p.Block == id {
				ram = true
			}
		}
	}
	if sched, ok := f.owner[t.Session]; ok {
		rep := cluster.SentReport{Session: t.Session, Block: id, At: time.Now(), Bytes: 4, FromRAM: ram}
		for _, kv := range strings.Split(r.Header.Get("CMCD-Request"), ",") {
			if v, ok := strings.CutPrefix(kv, "nor="); ok {
				rep.Next, _ = url.PathUnescape(strings.Trim(v, `"`))
			}
		}
		f.reports[sched] = append(f.reports[sched], rep)
	}
	w.Write([]byte("frag"))
}

// fakeTimeline serves a mutable view.
type fakeTimeline struct {
	mu    sync.Mutex
	v     map[string]store.View
	views atomic.Int64 // View calls
}

func (f *fakeTimeline) View(_ context.Context, p string) (store.View, error) {
	f.views.Add(1)
	return f.get(p)
}

// get is View without counting the call.
func (f *fakeTimeline) get(p string) (store.View, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.v[p]
	if !ok {
		return v, fmt.Errorf("point %q: %w", p, store.ErrNotFound)
	}
	return v, nil
}

func (f *fakeTimeline) set(v store.View) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.v == nil {
		f.v = map[string]store.View{}
	}
	f.v[v.Name] = v
}

// testView is a point with one video track (2 s fragments, timescale 1000)
// and one audio track, n fragments from 0.
func testView(name string, n int, vod bool) store.View {
	mk := func(id, kind string, br int) store.TrackView {
		t := store.TrackView{ID: id, Info: media.TrackInfo{Kind: kind, Timescale: 1000, Bitrate: br, Codec: "avc1.64001F", SampleEntry: "avc1"}}
		if kind == "audio" {
			t.Info.Codec, t.Info.SampleEntry = "mp4a.40.2", "mp4a"
		}
		for i := 0; i < n; i++ {
			t.Frags = append(t.Frags, store.FragRef{Start: int64(i) * 2000, Duration: 2000, Size: 1000, Key: true})
		}
		return t
	}
	return store.View{Name: name, Meta: store.PointMeta{VOD: vod, Anchor: time.Now().Add(-time.Duration(n) * 2 * time.Second)},
		Tracks: []store.TrackView{mk("video_1000", "video", 1000000), mk("audio_128", "audio", 128000)}}
}

// testCluster is a scheduler over fake senders that hold every block of the
// view on its owners.
type testCluster struct {
	t       testing.TB
	senders []*fakeSender
	tl      *fakeTimeline
	s       *Scheduler
	srv     *httptest.Server
	cancel  context.CancelFunc
	done    chan struct{}
}

func quietLog() *slog.Logger {
	if os.Getenv("SCHED_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newTestCluster(t testing.TB, cfg Config, nSenders, budget int, views ...store.View) *testCluster {
	t.Helper()
	c := &testCluster{t: t, tl: &fakeTimeline{}}
	var ms []membership.Member
	for i := 0; i < nSenders; i++ {
		f := newFakeSender(t, fmt.Sprintf("s%d", i), budget)
		c.senders = append(c.senders, f)
		ms = append(ms, f.member())
	}
	for _, v := range views {
		c.tl.set(v)
		c.write(v)
	}
	set, err := membership.Static(ms...)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Secret = testSecret
	if cfg.Tick == 0 {
		cfg.Tick = 20 * time.Millisecond
	}
	if cfg.StatsInterval == 0 {
		cfg.StatsInterval = -1
	}
	c.s, err = New(cfg, c.tl, set, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.done = make(chan struct{})
	go func() { c.s.Run(ctx); close(c.done) }()
	c.srv = httptest.NewServer(c.s)
	t.Cleanup(func() { c.stop(); c.srv.Close() })
	return c
}

func (c *testCluster) stop() {
	c.cancel()
	<-c.done
}

// write puts every block of v on its R owners among all senders.
func (c *testCluster) write(v store.View) {
	var ids []string
	byID := map[string]*fakeSender{}
	for _, f := range c.senders {
		ids = append(ids, f.id)
		byID[f.id] = f
	}
	for _, t := range v.Tracks {
		for _, fr := range t.Frags {
			b := cluster.BlockID{Point: v.Name, Track: t.ID, Start: fr.Start}
			for _, o := range cluster.Owners(b.Key(), ids, 2) {
				f := byID[o]
				f.mu.Lock()
				f.held[b] = true
				f.mu.Unlock()
			}
		}
	}
}

func (c *testCluster) sender(id string) *fakeSender {
	for _, f := range c.senders {
		if f.id == id {
			return f
		}
	}
	c.t.Fatalf("no sender %s", id)
	return nil
}

func (c *testCluster) get(path string) (int, string) {
	c.t.Helper()
	resp, err := http.Get(c.srv.URL + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// recorder is a minimal http.ResponseWriter for direct handler calls.
type recorder struct {
	h    http.Header
	code int
	body strings.Builder
}

func newRecorder() *recorder { return &recorder{h: http.Header{}, code: 200} }

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(c int)           { r.code = c }

func mustReq(t testing.TB, path string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://sched"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// newServerAt serves h at addr (a fake sender that comes back).
func newServerAt(t *testing.T, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// readBatch decodes a scheduler's batch (the binary encoding it sends).
func readBatch(r *http.Request) (cluster.Batch, error) {
	if ct := r.Header.Get("Content-Type"); ct != cluster.BatchContentType {
		return cluster.Batch{}, fmt.Errorf("batch of type %q", ct)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return cluster.Batch{}, err
	}
	return cluster.DecodeBatch(body)
}

// writeBatchResult answers a batch as a sender does.
func writeBatchResult(w http.ResponseWriter, res cluster.BatchResult) {
	w.Header().Set("Content-Type", cluster.BatchContentType)
	w.Write(cluster.AppendBatchResult(nil, &res))
}
