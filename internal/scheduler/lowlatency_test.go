package scheduler

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/membership"

	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/testkit/llhls"
)

// llView is testView live, with the video track's newest fragment's parts
// kept complete and the next fragment in progress with open parts (0.5 s
// each).
func llView(n, open int) store.View {
	v := testView("live", n, false)
	t := &v.Tracks[0]
	part := func(start int64, i int) store.PartRef {
		return store.PartRef{Start: start + int64(i)*500, Duration: 500, Key: i == 0, Size: 100}
	}
	last := t.Frags[n-1].Start
	pf := store.PartFrag{Start: last, Complete: true}
	for i := 0; i < 4; i++ {
		pf.Parts = append(pf.Parts, part(last, i))
	}
	t.Parts = []store.PartFrag{pf}
	if open > 0 {
		of := store.PartFrag{Start: last + 2000}
		for i := 0; i < open; i++ {
			of.Parts = append(of.Parts, part(last+2000, i))
		}
		t.Parts = append(t.Parts, of)
	}
	t.PartTarget = 500
	return v
}

// TestBlockingReload: a session's pathway playlist of a low-latency point
// lists the parts (and passes the RFC 8216bis checks); a blocking reload
// for a part not there yet waits until the index has it, and is answered
// then; one for a segment more than two ahead is a 400, one that is never
// satisfied a 503 after three target durations; a delta update skips.
func TestBlockingReload(t *testing.T) {
	c := newTestCluster(t, DefaultConfig(), 3, -1, llView(10, 1))
	sid, _ := openHLS(t, c, "live", "")
	pl := "/s/live/~" + sid + "/video_1000/rel.m3u8"
	code, body := c.get(pl)
	if code != 200 || !strings.Contains(body, "#EXT-X-PART:") || !strings.Contains(body, `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-20500.m4s"`) {
		t.Fatalf("pathway playlist: %d\n%s", code, body)
	}
	if err := llhls.Check([]byte(body)); err != nil {
		t.Errorf("pathway playlist: %v\n%s", err, body)
	}
	// Segment 10 (the open one, 20000–22000) part 1 arrives 300 ms later.
	go func() {
		time.Sleep(300 * time.Millisecond)
		c.tl.set(llView(10, 2))
	}()
	t0 := time.Now()
	code, body = c.get(pl + "?_HLS_msn=10&_HLS_part=1")
	took := time.Since(t0)
	if code != 200 || !strings.Contains(body, `URI="part-20500.m4s"`) {
		t.Fatalf("blocking reload: %d after %v\n%s", code, took, body)
	}
	if took < 250*time.Millisecond || took > 2*time.Second {
		t.Errorf("blocking reload answered after %v; want when the part arrived (300 ms)", took)
	}
	if code, body = c.get(pl + "?_HLS_msn=13"); code != 400 {
		t.Errorf("three segments ahead: %d %s", code, body)
	}
	if code, _ = c.get(pl + "?_HLS_part=1"); code != 400 {
		t.Errorf("_HLS_part without _HLS_msn: %d", code)
	}
	t0 = time.Now()
	code, body = c.get(pl + "?_HLS_msn=11&_HLS_part=0")
	if took := time.Since(t0); code != 503 || took < 5*time.Second {
		t.Errorf("a part that never comes: %d after %v (want 503 after three 2 s target durations)\n%s", code, took, body)
	}
	// A long enough playlist skips its older segments in a delta update.
	c.tl.set(llView(30, 2))
	eventually(t, "the longer index", 2*time.Second, func() bool {
		_, b := c.get(pl)
		return strings.Contains(b, "\n58000.m4s\n")
	})
	q := fmt.Sprintf("?_HLS_msn=%d&_HLS_part=%d", 30, 1)
	_, full := c.get(pl + q)
	_, delta := c.get(pl + q + "&_HLS_skip=YES")
	if err := llhls.CheckDelta([]byte(full), []byte(delta)); err != nil {
		t.Errorf("delta update: %v\n%s", err, delta)
	}
}

// watchTimeline is a fakeTimeline that is also a Watcher: a watch is
// answered when set installs another index (or after wait, unchanged).
type watchTimeline struct {
	*fakeTimeline
	mu      sync.Mutex
	changed chan struct{}
	watches atomic.Int64
}

func newWatchTimeline() *watchTimeline {
	return &watchTimeline{fakeTimeline: &fakeTimeline{}, changed: make(chan struct{})}
}

func (w *watchTimeline) set(v store.View) {
	w.fakeTimeline.set(v)
	w.mu.Lock()
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

func (w *watchTimeline) Watch(ctx context.Context, p, since string) (store.View, string, bool, error) {
	w.watches.Add(1)
	for {
		w.mu.Lock()
		ch := w.changed
		w.mu.Unlock()
		v, err := w.get(p)
		if err != nil {
			return store.View{}, "", false, err
		}
		if tag := viewKey(v); tag != since {
			return v, tag, true, nil
		}
		select {
		case <-ch:
		case <-time.After(2 * time.Second):
			return store.View{}, since, false, nil
		case <-ctx.Done():
			return store.View{}, since, false, ctx.Err()
		}
	}
}

// TestWatchedPoint: a live point's index is watched (Watcher): a blocking
// reload is answered as soon as the watch delivers the part, without
// polling the timeline.
func TestWatchedPoint(t *testing.T) {
	tl := newWatchTimeline()
	tl.set(llView(10, 1))
	w := startWatched(t, tl, 20*time.Millisecond)
	get := func(path string) (int, string, time.Duration) {
		t0 := time.Now()
		code, body, _ := w.get(path)
		return code, body, time.Since(t0)
	}
	pl := w.openSession("video_1000")
	eventually(t, "the point watched", 2*time.Second, func() bool { return tl.watches.Load() > 0 })
	fetches := tl.views.Load()
	go func() {
		time.Sleep(300 * time.Millisecond)
		tl.set(llView(10, 2))
	}()
	code, body, took := get(pl + "?_HLS_msn=10&_HLS_part=1")
	if code != 200 || !strings.Contains(body, `URI="part-20500.m4s"`) || took > time.Second {
		t.Fatalf("blocking reload: %d after %v\n%s", code, took, body)
	}
	if n := tl.views.Load() - fetches; n > 2 {
		t.Errorf("%d index fetches while the point was watched; want the watch alone", n)
	}
}

// TestFreshBlockHurried: a watched live point's new fragment is reserved
// at its owners in a batch that leaves at once, and when the owners do not
// hold it yet (the origin is still writing it to them) it is asked for
// again within freshRetry — not a timeslot later: with a timeslot of an
// hour, only that path lists the fragment.
func TestFreshBlockHurried(t *testing.T) {
	tl := newWatchTimeline()
	tl.set(testView("live", 10, false))
	w := startWatched(t, tl, 0)
	s, fs := w.s, w.senders
	hold := func(v store.View) {
		for _, f := range fs {
			f.mu.Lock()
			for _, tr := range v.Tracks {
				for _, fr := range tr.Frags {
					f.held[cluster.BlockID{Point: "live", Track: tr.ID, Start: fr.Start}] = true
				}
			}
			f.mu.Unlock()
		}
	}
	hold(testView("live", 10, false))
	get := func(path string) string {
		_, body, _ := w.get(path)
		return body
	}
	pl := w.openSession("video_1000")
	eventually(t, "the point watched and its fragments listed", 5*time.Second, func() bool {
		return tl.watches.Load() > 0 && strings.Contains(get(pl), "\n18000.m4s")
	})
	// The timeslot is an hour from now on: batches leave only when hurried.
	s.mu.Lock()
	s.cfg.Tick = time.Hour
	s.mu.Unlock()
	time.Sleep(300 * time.Millisecond) // the last ordinary timeslot is over
	// The index lists a new fragment that its owners do not hold yet:
	// senders keep their shared copy of the playlist for a short while
	// only, since the listing is about to change.
	shared := func() string {
		_, _, h := w.get(pl)
		return h.Get(cluster.SharedPlaylistHeader)
	}
	tl.set(testView("live", 11, false))
	eventually(t, "the short shared TTL", time.Second, func() bool { return shared() == "10" })
	// Then the fragment reaches them.
	hold(testView("live", 11, false))
	eventually(t, "the new fragment listed", 5*time.Second, func() bool { return strings.Contains(get(pl), "\n20000.m4s") })
	if v := shared(); v != "50" {
		t.Errorf("shared TTL %q once the fragment is confirmed; want 50", v)
	}
	missing := 0
	for _, f := range fs {
		for _, b := range f.Batches() {
			for _, p := range append(b.Send, b.LookAhead...) {
				if p.Block.Start == 20000 {
					missing++
				}
			}
		}
	}
	if missing < 2 {
		t.Errorf("the new fragment was reserved %d times; want at least twice (missing, then held)", missing)
	}
}

// watched is a running scheduler over two fake senders and a watched
// timeline, with an HTTP server in front of it.
type watched struct {
	t       *testing.T
	s       *Scheduler
	senders []*fakeSender
	url     string
}

// startWatched starts a scheduler on tl (tick 0: the default), stopped
// when the test ends.
func startWatched(t *testing.T, tl *watchTimeline, tick time.Duration) *watched {
	w := &watched{t: t}
	var ms []membership.Member
	for i := 0; i < 2; i++ {
		f := newFakeSender(t, fmt.Sprintf("s%d", i), -1)
		w.senders = append(w.senders, f)
		ms = append(ms, f.member())
	}
	set, err := membership.Static(ms...)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Secret, cfg.StatsInterval = testSecret, -1
	if tick > 0 {
		cfg.Tick = tick
	}
	if w.s, err = New(cfg, tl, set, nil, quietLog()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go w.s.Run(ctx)
	srv := httptest.NewServer(w.s)
	t.Cleanup(srv.Close)
	w.url = srv.URL
	return w
}

// get fetches a path of the scheduler.
func (w *watched) get(path string) (int, string, http.Header) {
	resp, err := http.Get(w.url + path)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// openSession opens an HLS session on point live and returns the path of
// its pathway playlist of track.
func (w *watched) openSession(track string) string {
	_, master, _ := w.get("/s/live/master.m3u8")
	m := regexp.MustCompile(`/s/live/~([^/]+)/`).FindStringSubmatch(master)
	if m == nil {
		w.t.Fatalf("no session in\n%s", master)
	}
	return "/s/live/~" + m[1] + "/" + track + "/rel.m3u8"
}
