package sender

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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
