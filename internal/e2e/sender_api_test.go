package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/placement"
	"github.com/sluice-media/sluice/internal/testkit"
)

// TestSenderProcessAPI drives one `sluice sender` process over its internal
// API as two schedulers would: pins count once per (scheduler, session,
// block), a look-ahead beyond the RAM budget is refused, tokens are checked
// (403 for forged, expired and other-track tokens), sends are served from
// RAM and reported to the scheduler of the session, and when scheduler A
// stops renewing its lease exactly its pins are released, within the lease.
func TestSenderProcessAPI(t *testing.T) {
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	// RAM for 4 blocks of 256 KiB.
	s := startSenderProc(t, bin, "sender", "--ram", "1M", "--no-admit", "--session-grace", "1ms")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	cli := placement.NewClient([]byte(e2eClusterSecret), nil)

	const point, track = "live/ch1", "video_2000000"
	blk := func(i int) cluster.BlockID {
		return cluster.BlockID{Point: point, Track: track, Start: int64(i) * 2_000_000}
	}
	// Blocks of 256 KiB that parse as the fragments their keys name (a
	// sender refuses anything else).
	body := func(i int) []byte {
		return testkit.CMAFFragment(uint32(i), blk(i).Start, 2000, 256<<10)
	}
	if err := cli.PutInit(ctx, s.base, point, track, testkit.CMAFInit(), "video/mp4"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		if _, err := cli.PutBlock(ctx, s.base, blk(i), body(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Signed with another key: 401.
	bad := placement.NewClient([]byte("wrong"), nil)
	if _, err := bad.Batch(ctx, s.base, cluster.Batch{Scheduler: "x"}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("batch with a wrong secret: %v", err)
	}

	pin := func(sess string, ids ...int) []cluster.Pin {
		var out []cluster.Pin
		for _, i := range ids {
			out = append(out, cluster.Pin{Session: sess, Block: blk(i)})
		}
		return out
	}
	lease := time.Second
	// Scheduler A: session a1 looks ahead over blocks 0-2 (twice: counted once).
	for range 2 {
		res, err := cli.Batch(ctx, s.base, cluster.Batch{Scheduler: "A", Lease: lease, Send: pin("a1", 0), LookAhead: pin("a1", 1, 2)})
		if err != nil || len(res.Refused) > 0 {
			t.Fatalf("batch A: %+v %v", res, err)
		}
	}
	// Scheduler B: session b1 shares block 2, adds 3, then asks for 4 and 5:
	// RAM (4 blocks) is full of pinned blocks, so those are refused.
	res, err := cli.Batch(ctx, s.base, cluster.Batch{Scheduler: "B", Lease: 30 * time.Second, LookAhead: pin("b1", 2, 3, 4, 5), Send: pin("b1", 99)})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Refused) != fmt.Sprint(pin("b1", 4, 5)) || len(res.Missing) != 1 || res.Missing[0] != blk(99) {
		t.Errorf("batch B: refused %v missing %v", res.Refused, res.Missing)
	}
	st := fetchSenderStats(t, s.base)
	if st.PinnedBlocks != 4 || st.PinnedBytes != 4*256<<10 || st.Refused != 2 {
		t.Errorf("after pins: %+v", st)
	}

	// Tokens: a session's token is valid while a scheduler grants the
	// session here (A grants a1, for the point), until it ends.
	if _, err := cli.Batch(ctx, s.base, cluster.Batch{Scheduler: "A", Lease: lease, GrantTTL: time.Minute,
		Grants: []cluster.Grant{{Session: "a1", Point: point}}}); err != nil {
		t.Fatal(err)
	}
	sign := func(key, sess, pt string) string {
		return cluster.Sign([]byte(key), cluster.Token{Session: sess, Point: pt})
	}
	for _, c := range []struct {
		name, tok string
		want      int
	}{
		{"valid", sign(e2eClusterSecret, "a1", point), 200},
		{"forged", sign("not-the-secret", "a1", point), 403},
		{"other point", sign(e2eClusterSecret, "a1", "elsewhere"), 403},
		{"a session no scheduler granted", sign(e2eClusterSecret, "nobody", point), 403},
	} {
		resp, err := http.Get(placement.ClientURL(s.base, c.tok, blk(0)))
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s token: %d %s", c.name, resp.StatusCode, b.String())
		}
		if c.want == 200 && (!bytes.Equal(b.Bytes(), body(0)) || !strings.HasPrefix(resp.Header.Get("Cache-Control"), "private")) {
			t.Errorf("valid token: wrong bytes or Cache-Control %q", resp.Header.Get("Cache-Control"))
		}
	}
	// The send was from RAM and is reported to A (not to B).
	res, err = cli.Batch(ctx, s.base, cluster.Batch{Scheduler: "A", Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sent) != 1 || res.Sent[0].Session != "a1" || res.Sent[0].Block != blk(0) || !res.Sent[0].FromRAM {
		t.Errorf("A's sent reports: %+v", res.Sent)
	}

	// A stops renewing (a scheduler killed): its pins go within the lease;
	// B keeps renewing and keeps its pins.
	stopped := time.Now()
	var released time.Duration
	for time.Since(stopped) < 5*time.Second {
		time.Sleep(50 * time.Millisecond)
		if _, err := cli.Batch(ctx, s.base, cluster.Batch{Scheduler: "B", Lease: 30 * time.Second}); err != nil {
			t.Fatal(err)
		}
		if st := fetchSenderStats(t, s.base); st.LeaseExpiries > 0 {
			released = time.Since(stopped)
			break
		}
	}
	t.Logf("scheduler A's pins released %v after its last batch (lease %v)", released.Round(10*time.Millisecond), lease)
	if released == 0 || released > lease+500*time.Millisecond {
		t.Fatalf("A's pins released after %v, lease %v", released, lease)
	}
	st = fetchSenderStats(t, s.base)
	if st.PinnedBlocks != 2 || st.LeaseExpiries != 1 {
		t.Errorf("after A's lease expired: %+v (want B's blocks 2 and 3 pinned)", st)
	}
	// Now there is room again for B's look-ahead.
	res, err = cli.Batch(ctx, s.base, cluster.Batch{Scheduler: "B", LookAhead: pin("b1", 4, 5)})
	if err != nil || len(res.Refused) != 0 {
		t.Errorf("look-ahead after A's pins were released: %+v %v", res, err)
	}
	code, metrics := get(t, s.base+"/metrics")
	for _, m := range []string{"sluice_sender_lease_expiries_total 1", "sluice_sender_refused_total 2", "sluice_sender_sends_total{from=\"ram\"} 1", "sluice_sender_preload_seconds_count"} {
		if code != 200 || !strings.Contains(string(metrics), m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
}
