package sender

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/testkit"
)

// sessionID is a valid session ID opened at opened.
func sessionID(t *testing.T, opened time.Time) string {
	t.Helper()
	id, err := cluster.NewSessionID(secret, opened, []string{cluster.PathwayLabel("s1")})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// noRedirect is a client that reports redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func status(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := noRedirect.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// TestTokens: a token is valid while its session holds a grant here, for
// the point it names; it carries no expiry of its own.
func TestTokens(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_900_000_000, 0))
	f := newFixtureWith(t, 1<<20, false, func(o *Options) { o.Now = clk.Now })
	f.put(t, 2, 1000)
	ctx := context.Background()
	clk.Add(time.Hour) // well past the sender's start (SessionGrace)
	now := clk.Now()
	granted := sessionID(t, now.Add(-time.Hour))
	if _, err := f.s.Apply(ctx, cluster.Batch{Scheduler: "A", Lease: time.Minute, GrantTTL: time.Minute,
		Grants: []cluster.Grant{{Session: granted, Point: "live/ch"}}}); err != nil {
		t.Fatal(err)
	}
	if n := f.s.Stats().Sessions; n != 1 {
		t.Errorf("stats: %d sessions after one grant, want 1", n)
	}
	good := token(granted, secret)
	blockURL := func(tok string) string { return f.base + "/b/" + tok + "/live/ch/video_800000/20000000.m4s" }
	check := func(name, u string, want int, reason string) {
		t.Helper()
		code, body := status(t, u)
		if code != want || !strings.Contains(body, reason) {
			t.Errorf("%s: %d %q, want %d with %q", name, code, body, want, reason)
		}
	}
	check("granted", blockURL(good), 200, "")
	check("granted init", f.base+"/b/"+good+"/live/ch/video_800000/init.mp4", 200, "")
	check("forged", blockURL(token(granted, []byte("other"))), 403, "bad signature")
	check("other point", f.base+"/b/"+good+"/other/video_800000/20000000.m4s", 403, "another publishing point")
	check("tampered", blockURL("x"+good), 403, "invalid session token")
	check("garbage", f.base+"/b/abc/live/ch/video_800000/0.m4s", 403, "malformed")
	check("not a session ID", blockURL(token("sess", secret)), 403, "invalid session ID")
	check("unknown old session", blockURL(token(sessionID(t, now.Add(-time.Minute)), secret)), 403, "unknown session")
	check("new session, grant on its way", blockURL(token(sessionID(t, now.Add(-5*time.Second)), secret)), 200, "")
	check("block not held, no placement", f.base+"/b/"+good+"/live/ch/video_800000/99.m4s", 404, "")
	check("bad name", f.base+"/b/"+good+"/live/ch/video_800000/x.mp4", 404, "")

	// A grant for another point than the token's.
	other := sessionID(t, now.Add(-time.Hour))
	f.s.Apply(ctx, cluster.Batch{Scheduler: "A", Lease: time.Minute, Grants: []cluster.Grant{{Session: other, Point: "elsewhere"}}})
	check("granted for another point", blockURL(token(other, secret)), 403, "another publishing point")

	// Renewed before it runs out, a grant lives on; without renewal it
	// expires.
	clk.Add(50 * time.Second)
	f.s.Apply(ctx, cluster.Batch{Scheduler: "A", Lease: time.Minute, GrantTTL: time.Minute, Grants: []cluster.Grant{{Session: granted, Point: "live/ch"}}})
	clk.Add(50 * time.Second)
	check("renewed", blockURL(good), 200, "")
	clk.Add(11 * time.Second)
	check("expired", blockURL(good), 403, "session expired")

	// Ended by its scheduler: refused at once; an end from another
	// scheduler changes nothing.
	f.s.Apply(ctx, cluster.Batch{Scheduler: "A", Lease: time.Minute, GrantTTL: time.Minute, Grants: []cluster.Grant{{Session: granted, Point: "live/ch"}}})
	f.s.Apply(ctx, cluster.Batch{Scheduler: "B", Lease: time.Minute, Ends: []string{granted}})
	check("ended by another scheduler", blockURL(good), 200, "")
	before := f.s.Stats().Sessions
	f.s.Apply(ctx, cluster.Batch{Scheduler: "A", Lease: time.Minute, Ends: []string{granted}})
	check("ended", blockURL(good), 403, "session ended")
	if n := f.s.Stats().Sessions; n != before-1 {
		t.Errorf("stats: %d sessions after an end, want %d", n, before-1)
	}
	// Granted again (a scheduler adopted it): valid again.
	f.s.Apply(ctx, cluster.Batch{Scheduler: "B", Lease: time.Minute, GrantTTL: time.Minute, Grants: []cluster.Grant{{Session: granted, Point: "live/ch"}}})
	check("granted again", blockURL(good), 200, "")
}

// TestStartupGrace: a sender that just started accepts tokens of sessions
// it holds no grant for (it lost them; the schedulers grant them again),
// for SessionGrace.
func TestStartupGrace(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_900_000_000, 0))
	f := newFixtureWith(t, 1<<20, false, func(o *Options) { o.Now = clk.Now; o.SessionGrace = 10 * time.Second })
	f.put(t, 2, 1000)
	old := token(sessionID(t, clk.Now().Add(-time.Hour)), secret)
	u := f.base + "/b/" + old + "/live/ch/video_800000/0.m4s"
	if code, body := status(t, u); code != 200 {
		t.Fatalf("within the grace: %d %s", code, body)
	}
	clk.Add(11 * time.Second)
	if code, body := status(t, u); code != 403 || !strings.Contains(body, "unknown session") {
		t.Fatalf("after the grace: %d %s", code, body)
	}
}

// TestOrphans: a session whose scheduler's lease ran out (or whose grant is
// overdue) while its player fetches on is offered to the next scheduler
// that sends a batch; once that one grants it, it is not offered again.
func TestOrphans(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_900_000_000, 0))
	f := newFixtureWith(t, 1<<20, false, func(o *Options) { o.Now = clk.Now })
	f.put(t, 2, 1000)
	ctx := context.Background()
	clk.Add(time.Hour)
	active, idle := sessionID(t, clk.Now()), sessionID(t, clk.Now())
	grants := []cluster.Grant{{Session: active, Point: "live/ch"}, {Session: idle, Point: "live/ch"}}
	if res, _ := f.s.Apply(ctx, cluster.Batch{Scheduler: "A", Lease: time.Second, GrantTTL: 30 * time.Second, Grants: grants}); res.Boot == "" || len(res.Orphans) != 0 {
		t.Fatalf("first batch: %+v", res)
	}
	if code, _ := status(t, f.base+"/b/"+token(active, secret)+"/live/ch/video_800000/0.m4s"); code != 200 {
		t.Fatalf("fetch: %d", code)
	}
	// A is alive and renews: nothing to offer B.
	if res, _ := f.s.Apply(ctx, cluster.Batch{Scheduler: "B", Lease: 10 * time.Second}); len(res.Orphans) != 0 {
		t.Fatalf("orphans while A lives: %+v", res.Orphans)
	}
	clk.Add(2 * time.Second) // A's lease is over
	res, _ := f.s.Apply(ctx, cluster.Batch{Scheduler: "B", Lease: 10 * time.Second})
	if len(res.Orphans) != 1 || res.Orphans[0] != (cluster.Grant{Session: active, Point: "live/ch"}) {
		t.Fatalf("orphans: %+v, want the active session only", res.Orphans)
	}
	clk.Add(2 * time.Second)
	f.s.Apply(ctx, cluster.Batch{Scheduler: "B", Lease: 10 * time.Second, GrantTTL: 30 * time.Second, Grants: res.Orphans})
	clk.Add(2 * time.Second)
	if res, _ := f.s.Apply(ctx, cluster.Batch{Scheduler: "B", Lease: 10 * time.Second}); len(res.Orphans) != 0 {
		t.Fatalf("orphans after the adoption: %+v", res.Orphans)
	}
	// The adopted session's sends are reported to B.
	if code, _ := status(t, f.base+"/b/"+token(active, secret)+"/live/ch/video_800000/0.m4s"); code != 200 {
		t.Fatalf("fetch after adoption: %d", code)
	}
	if res, _ := f.s.Apply(ctx, cluster.Batch{Scheduler: "B", Lease: 10 * time.Second}); len(res.Sent) != 1 || res.Sent[0].Session != active {
		t.Fatalf("reports to B: %+v", res.Sent)
	}
}

// TestRedirect: a block (or header) the sender does not hold is redirected
// along its rendezvous order over the placement the schedulers sent, each
// hop further down the order, never back.
func TestRedirect(t *testing.T) {
	f := newFixture(t, 1<<20, false)
	f.put(t, 2, 1000)
	ctx := context.Background()
	tok := token(sessionID(t, time.Now()), secret)
	missing := cluster.BlockID{Point: "live/ch", Track: "video_800000", Start: 99}
	u := f.base + "/b/" + tok + "/live/ch/video_800000/99.m4s"
	if code, _ := status(t, u); code != 404 {
		t.Fatalf("without a placement: %d, want 404", code)
	}
	pl := &cluster.Placement{Replicas: 2, Senders: []cluster.PlacedSender{
		{ID: "s1", URL: f.base}, {ID: "s2", URL: "http://s2.test:9001"}, {ID: "s3", URL: "http://s3.test:9001/"},
	}}
	f.s.Apply(ctx, cluster.Batch{Scheduler: "A", Lease: time.Minute, Placement: pl})
	order := cluster.Owners(missing.Key(), []string{"s1", "s2", "s3"}, 3)
	urls := map[string]string{"s2": "http://s2.test:9001", "s3": "http://s3.test:9001"}
	hop := 0
	var seen []string
	for {
		resp, err := noRedirect.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 404 {
			break
		}
		if resp.StatusCode != 302 {
			t.Fatalf("hop %d: %d", hop, resp.StatusCode)
		}
		loc := resp.Header.Get("Location")
		// The next sender of the order after position hop, other than s1.
		want := ""
		for i := hop; i < len(order); i++ {
			if order[i] != "s1" {
				want, hop = order[i], i+1
				break
			}
		}
		if want == "" || !strings.HasPrefix(loc, urls[want]+"/b/"+tok+"/live/ch/video_800000/99.m4s?") || !strings.Contains(loc, "sluice-hop=") {
			t.Fatalf("redirect to %q, want %s at hop %d (order %v)", loc, want, hop, order)
		}
		seen = append(seen, want)
		// The chain continues as if each sender redirected again: ask s1
		// with the new hop (it has the same placement).
		u = f.base + loc[len(urls[want]):]
		if len(seen) > 3 {
			t.Fatal("redirect loop")
		}
	}
	if len(seen) != 2 {
		t.Errorf("redirected to %v, want both other senders once", seen)
	}
	// A header this sender lacks goes elsewhere too.
	if code, _ := status(t, f.base+"/b/"+tok+"/live/ch/audio_1/init.mp4"); code != 302 {
		t.Errorf("init not held: %d, want 302", code)
	}
	// A block it holds is served, whatever the placement.
	if code, _ := status(t, f.base+"/b/"+tok+"/live/ch/video_800000/0.m4s"); code != 200 {
		t.Errorf("held block: %d", code)
	}
}

// TestPlaylist: the session media playlist of a player on this sender's
// pathway comes from the session's scheduler (its URL from its batches),
// from another scheduler when that one's lease ran out, and from the
// in-process handler of Options.Playlists.
func TestPlaylist(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	sched := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			asked = append(asked, name+" "+r.URL.Path)
			mu.Unlock()
			w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
			w.Write([]byte("#EXTM3U\n# from " + name + "\n"))
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := sched("A"), sched("B")
	clk := testkit.NewClock(time.Now())
	f := newFixtureWith(t, 1<<20, false, func(o *Options) { o.Now = clk.Now })
	ctx := context.Background()
	sess := sessionID(t, clk.Now())
	tok := token(sess, secret)
	u := f.base + "/b/" + tok + "/live/ch/video_800000/media.m3u8"
	if code, body := status(t, u); code != 503 || !strings.Contains(body, "no scheduler") {
		t.Fatalf("no scheduler yet: %d %q", code, body)
	}
	f.s.Apply(ctx, cluster.Batch{Scheduler: "B", Lease: 30 * time.Second, URL: b.URL})
	f.s.Apply(ctx, cluster.Batch{Scheduler: "A", Lease: 10 * time.Second, URL: a.URL, Grants: []cluster.Grant{{Session: sess, Point: "live/ch"}}})
	want := "/s/live/ch/~" + sess + "/video_800000/rel.m3u8"
	if code, body := status(t, u); code != 200 || !strings.Contains(body, "from A") {
		t.Fatalf("from the session's scheduler: %d %q", code, body)
	}
	clk.Add(11 * time.Second) // A's lease is over; B's is not
	if code, body := status(t, u); code != 200 || !strings.Contains(body, "from B") {
		t.Fatalf("from another scheduler: %d %q", code, body)
	}
	mu.Lock()
	if len(asked) != 2 || asked[0] != "A "+want || asked[1] != "B "+want {
		t.Errorf("schedulers asked %v, want %s at A then B", asked, want)
	}
	mu.Unlock()
	// A forged token gets nothing from any scheduler.
	if code, _ := status(t, f.base+"/b/"+token(sess, []byte("x"))+"/live/ch/video_800000/media.m3u8"); code != 403 {
		t.Errorf("forged token: %d", code)
	}

	// In process.
	g := newFixtureWith(t, 1<<20, false, func(o *Options) {
		o.Playlists = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
			w.Write([]byte("#EXTM3U\n# in process " + r.URL.Path + "\n"))
		})
	})
	if code, body := status(t, g.base+"/b/"+tok+"/live/ch/video_800000/media.m3u8"); code != 200 || !strings.Contains(body, "in process "+want) {
		t.Fatalf("in process: %d %q", code, body)
	}
}

// TestSharedPlaylist: a pathway playlist the scheduler marks as its
// point's shared one answers the reloads of every session whose latest
// answer was marked, on that scheduler, while it is fresh — fetched once
// for all the reloads that find it stale at the same time — and those
// reloads are reported in the scheduler's next batch result; a session
// whose answer was not marked (a deep-link position) is always asked for.
func TestSharedPlaylist(t *testing.T) {
	var asked atomic.Int64
	release := make(chan struct{})
	var gate atomic.Bool // hold fetches until release is closed
	notShared := map[string]bool{}
	var mu sync.Mutex
	sched := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := asked.Add(1)
		if gate.Load() {
			<-release
		}
		mu.Lock()
		own := false
		for s := range notShared {
			own = own || strings.Contains(r.URL.Path, s)
		}
		mu.Unlock()
		if !own {
			w.Header().Set(cluster.SharedPlaylistHeader, "1000")
		}
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "#EXTM3U\n# answer %d\n", n)
	}))
	t.Cleanup(sched.Close)
	clk := testkit.NewClock(time.Now())
	f := newFixtureWith(t, 1<<20, false, func(o *Options) { o.Now = clk.Now })
	ctx := context.Background()
	a, b, deep := sessionID(t, clk.Now()), sessionID(t, clk.Now().Add(time.Second)), sessionID(t, clk.Now().Add(2*time.Second))
	mu.Lock()
	notShared[deep] = true
	mu.Unlock()
	grants := []cluster.Grant{{Session: a, Point: "live/ch"}, {Session: b, Point: "live/ch"}, {Session: deep, Point: "live/ch"}}
	f.s.Apply(ctx, cluster.Batch{Scheduler: "A", Lease: time.Minute, URL: sched.URL, Grants: grants, GrantTTL: time.Hour})
	pl := func(sess string) string {
		return f.base + "/b/" + token(sess, secret) + "/live/ch/video_800000/media.m3u8"
	}
	reload := func(sess, want string) {
		t.Helper()
		resp, body := get(t, pl(sess))
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) || resp.Header.Get(cluster.SharedPlaylistHeader) != "" {
			t.Fatalf("%s: %d %q (%s %q), want %q", sessionLabel(sess), resp.StatusCode, body, cluster.SharedPlaylistHeader, resp.Header.Get(cluster.SharedPlaylistHeader), want)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
	}
	reload(a, "answer 1") // asked: a is not marked yet
	reload(a, "answer 1") // the copy
	reload(b, "answer 2") // asked: b is not marked yet (the copy is now answer 2)
	reload(a, "answer 2")
	reload(deep, "answer 3")
	reload(deep, "answer 4") // never marked: asked every time
	if n := asked.Load(); n != 4 {
		t.Fatalf("scheduler asked %d times, want 4", n)
	}
	res, err := f.s.Apply(ctx, cluster.Batch{Scheduler: "A", Lease: time.Minute, URL: sched.URL})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Reloads) != 2 || res.Reloads[0].Session != a || res.Reloads[1].Session != a ||
		res.Reloads[0].Track != "video_800000" || res.Reloads[0].Point != "live/ch" || !res.Reloads[0].At.Equal(clk.Now()) {
		t.Errorf("reloads reported: %+v", res.Reloads)
	}
	if res, _ := f.s.Apply(ctx, cluster.Batch{Scheduler: "A", Lease: time.Minute, URL: sched.URL}); len(res.Reloads) != 0 {
		t.Errorf("reloads reported twice: %+v", res.Reloads)
	}

	// Stale: the reloads arriving together fetch it once.
	clk.Add(2 * time.Second)
	gate.Store(true)
	const n = 8
	var wg sync.WaitGroup
	bodies := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess := a
			if i%2 == 1 {
				sess = b
			}
			resp, body := get(t, pl(sess))
			if resp.StatusCode != 200 {
				t.Errorf("concurrent reload %d: %d", i, resp.StatusCode)
			}
			bodies[i] = string(body)
		}()
	}
	// Let them all arrive before the one fetch is answered.
	eventually(t, func() bool { return asked.Load() == 5 })
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	if got := asked.Load(); got != 5 {
		t.Errorf("%d concurrent reloads of a stale copy asked %d times, want once", n, got-4)
	}
	for i, body := range bodies {
		if !strings.Contains(body, "answer 5") {
			t.Errorf("reload %d: %q", i, body)
		}
	}

	// Another scheduler's lease takes over (A's ended): not A's copy.
	f.s.Apply(ctx, cluster.Batch{Scheduler: "B", Lease: 10 * time.Minute, URL: sched.URL + "/other"})
	clk.Add(2 * time.Minute)
	reload(a, "answer 6")
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSharedPlaylistFailover: when the session's scheduler fails and
// another answers, that answer is not kept as the first one's copy: the
// other sessions of the first scheduler do not get it.
func TestSharedPlaylistFailover(t *testing.T) {
	var aDown atomic.Bool
	sched := func(name string, down *atomic.Bool) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down != nil && down.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set(cluster.SharedPlaylistHeader, "1000")
			w.Write([]byte("#EXTM3U\n# from " + name + "\n"))
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := sched("A", &aDown), sched("B", nil)
	clk := testkit.NewClock(time.Now())
	f := newFixtureWith(t, 1<<20, false, func(o *Options) { o.Now = clk.Now })
	ctx := context.Background()
	s1, s2 := sessionID(t, clk.Now()), sessionID(t, clk.Now().Add(time.Second))
	f.s.Apply(ctx, cluster.Batch{Scheduler: "B", Lease: time.Hour, URL: b.URL})
	f.s.Apply(ctx, cluster.Batch{Scheduler: "A", Lease: time.Hour, URL: a.URL, GrantTTL: time.Hour,
		Grants: []cluster.Grant{{Session: s1, Point: "live/ch"}, {Session: s2, Point: "live/ch"}}})
	want := func(sess, from string) {
		t.Helper()
		u := f.base + "/b/" + token(sess, secret) + "/live/ch/video_800000/media.m3u8"
		if code, body := status(t, u); code != 200 || !strings.Contains(body, "from "+from) {
			t.Fatalf("%s: %d %q, want the answer from %s", sessionLabel(sess), code, body, from)
		}
	}
	want(s1, "A") // both marked by A
	want(s2, "A")
	clk.Add(2 * time.Second) // A's copy is stale
	aDown.Store(true)
	want(s1, "B") // A fails: B answers s1
	aDown.Store(false)
	want(s2, "A") // s2 is A's: not B's answer
}
