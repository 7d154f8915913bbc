package placement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/blockstore"
	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/sender"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/testkit"
)

var realSecret = []byte("rebalance-secret")

// realSender is an internal/sender server on 127.0.0.1 that can be
// stopped and started again on the same address with the same blocks.
type realSender struct {
	id, addr string
	disk     *blockstore.Disk
	snd      *sender.Sender
	srv      *http.Server
	// refuseBlocks makes block PUTs fail with 500 (an owner that cannot
	// take what the rebalance pushes).
	refuseBlocks atomic.Bool
}

func startRealSender(t *testing.T, id string) *realSender {
	t.Helper()
	disk, err := blockstore.OpenDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bs, err := blockstore.New(blockstore.Options{Backend: disk, RAMBudget: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	snd, err := sender.New(sender.Options{ID: id, Secret: realSecret, Store: bs})
	if err != nil {
		t.Fatal(err)
	}
	rs := &realSender{id: id, disk: disk, snd: snd}
	rs.start(t, "127.0.0.1:0")
	t.Cleanup(rs.stop)
	return rs
}

func (rs *realSender) start(t *testing.T, addr string) {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger for a moment
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	rs.addr = ln.Addr().String()
	h := rs.snd.Handler()
	rs.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rs.refuseBlocks.Load() && r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/internal/v1/blocks/") {
			http.Error(w, "disk full", http.StatusInternalServerError)
			return
		}
		h.ServeHTTP(w, r)
	})}
	go rs.srv.Serve(ln)
}

// stop closes the listener and every connection: requests to it are
// refused.
func (rs *realSender) stop() { rs.srv.Close() }

func (rs *realSender) member() membership.Member {
	return membership.Member{ID: rs.id, URL: "http://" + rs.addr}
}

// holds returns the blocks of ids the sender has on disk.
func (rs *realSender) holds(t *testing.T, ids []cluster.BlockID) map[cluster.BlockID]bool {
	t.Helper()
	out := map[cluster.BlockID]bool{}
	for _, id := range ids {
		_, err := rs.disk.StatBlock(context.Background(), id)
		if err == nil {
			out[id] = true
		} else if !errors.Is(err, blockstore.ErrNotFound) {
			t.Fatal(err)
		}
	}
	return out
}

// fillStore makes a store with n points of the bundled small ismv (12
// fragments each) and returns every block of it.
func fillStore(t *testing.T, n int) (*store.Store, []cluster.BlockID) {
	t.Helper()
	body, err := os.ReadFile("../media/testdata/small.ismv")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var ids []cluster.BlockID
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("live/ch%d", i)
		p, err := st.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range testkit.StoreISMV(t, p, body).Tracks {
			for _, f := range tr.Frags {
				ids = append(ids, cluster.BlockID{Point: name, Track: tr.ID, Start: f.Start})
			}
		}
	}
	if len(ids) < 12*n {
		t.Fatalf("store has %d blocks", len(ids))
	}
	return st, ids
}

// ownedBy returns the blocks of ids that member id owns among ms.
func ownedBy(ms []membership.Member, ids []cluster.BlockID, r int, id string) map[cluster.BlockID]bool {
	out := map[cluster.BlockID]bool{}
	for _, b := range ids {
		for _, m := range Owners(ms, b, r) {
			if m.ID == id {
				out[b] = true
			}
		}
	}
	return out
}

func sameSet(a, b map[cluster.BlockID]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeAll(t *testing.T, w *Writer, st *store.Store, ids []cluster.BlockID) {
	t.Helper()
	for _, id := range ids {
		p, err := st.Point(id.Point)
		if err != nil {
			t.Fatal(err)
		}
		data, _, err := p.ReadFragment(id.Track, id.Start)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteBlock(context.Background(), id, data); err != nil {
			t.Fatalf("write %s: %v", id, err)
		}
	}
}

// TestRebalanceOnJoin: blocks written to two senders; a third joins and
// ends up holding exactly the blocks it owns among the three (R = 2), with
// their track headers, pushed by the rebalance from the store.
func TestRebalanceOnJoin(t *testing.T) {
	st, ids := fillStore(t, 4)
	s1, s2, s3 := startRealSender(t, "s1"), startRealSender(t, "s2"), startRealSender(t, "s3")
	two := []membership.Member{s1.member(), s2.member()}
	set := &changingSet{ms: two, changed: make(chan struct{})}
	w, err := NewWriter(WriterOptions{Members: set, Replicas: 2, Client: NewClient(realSecret, nil),
		Store: st, RebalanceDelay: 20 * time.Millisecond, RebalanceConcurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, st, ids)
	for _, s := range []*realSender{s1, s2} {
		if got := s.holds(t, ids); len(got) != len(ids) {
			t.Fatalf("%s holds %d of %d blocks before the join", s.id, len(got), len(ids))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	// The run at the start finds nothing missing.
	waitFor(t, "first rebalance", 5*time.Second, func() bool { return w.Stats().RebalanceRuns >= 1 })
	if st := w.Stats(); st.RebalanceBlocks != 0 {
		t.Fatalf("rebalance with nothing missing pushed %d blocks", st.RebalanceBlocks)
	}

	all := []membership.Member{s1.member(), s2.member(), s3.member()}
	set.set(all)
	want := ownedBy(all, ids, 2, "s3")
	t.Logf("s3 joins: owns %d of %d blocks", len(want), len(ids))
	if len(want) == 0 || len(want) == len(ids) {
		t.Fatalf("s3 owns %d of %d blocks: the test needs some, not all", len(want), len(ids))
	}
	waitFor(t, "s3 holds what it owns", 10*time.Second, func() bool { return len(s3.holds(t, ids)) >= len(want) })
	waitFor(t, "second rebalance counted", 5*time.Second, func() bool { return w.Stats().RebalanceRuns >= 2 })
	if got := s3.holds(t, ids); !sameSet(got, want) {
		t.Errorf("s3 holds %d blocks, owns %d (exactly those expected)", len(got), len(want))
	}
	if st := w.Stats(); st.RebalanceBlocks != int64(len(want)) || st.RebalanceFailures != 0 || st.RebalanceBytes <= 0 {
		t.Errorf("stats %+v, want %d blocks pushed", st, len(want))
	}
	// Every track header came too (every sender holds every header).
	missing, err := s3.snd.Missing(ctx, cluster.HaveQuery{Inits: tracksOf(ids)})
	if err != nil || len(missing.Inits) != 0 {
		t.Errorf("s3 lacks headers %v (%v)", missing.Inits, err)
	}
}

func tracksOf(blocks []cluster.BlockID) []string {
	seen := map[string]bool{}
	for _, b := range blocks {
		seen[b.Point+"/"+b.Track] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// threeSenderWriter starts three real senders (a, b, c) and a Writer over
// st that writes to them with R = 2, rebalances 20 ms after a change and
// probes a failed sender every 50 to 200 ms.
func threeSenderWriter(t *testing.T, st *store.Store) ([]*realSender, []membership.Member, *Writer) {
	t.Helper()
	s := []*realSender{startRealSender(t, "a"), startRealSender(t, "b"), startRealSender(t, "c")}
	ms := []membership.Member{s[0].member(), s[1].member(), s[2].member()}
	set, err := membership.Static(ms...)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(WriterOptions{Members: set, Replicas: 2, Client: NewClient(realSecret, nil),
		Store: st, RebalanceDelay: 20 * time.Millisecond, ProbeMin: 50 * time.Millisecond, ProbeMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s, ms, w
}

// TestWriterDeadSender: a sender that refuses connections leaves the
// writer's targets at its first failure (one down, no retries per block),
// every block still gets R copies among the live senders, and when it
// answers again the probe brings it back and the rebalance gives it the
// blocks it owns that it missed.
func TestWriterDeadSender(t *testing.T) {
	st, ids := fillStore(t, 3)
	s, ms, w := threeSenderWriter(t, st)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	dead := s[2]
	dead.stop()
	t0 := time.Now()
	writeAll(t, w, st, ids)
	took := time.Since(t0)
	t.Logf("%d blocks written with one of three senders dead in %v", len(ids), took)
	// Without the health check every block owned by the dead sender cost
	// the retries' backoff (0.7 s); now only the first one finds out.
	if took > 3*time.Second {
		t.Errorf("writing %d blocks with a dead sender took %v", len(ids), took)
	}
	if d := w.Stats().Downs; d != 1 {
		t.Errorf("sender taken out %d times, want 1", d)
	}
	for _, b := range ids {
		var n int
		for _, rs := range s[:2] {
			if rs.holds(t, []cluster.BlockID{b})[b] {
				n++
			}
		}
		if n != 2 {
			t.Fatalf("block %s on %d live senders, want 2", b, n)
		}
	}
	if fb := w.Stats().Fallbacks; fb != int64(len(ownedBy(ms, ids, 2, "c"))) {
		t.Errorf("%d copies at a later owner, want %d (those c owns)", fb, len(ownedBy(ms, ids, 2, "c")))
	}
	if got := dead.holds(t, ids); len(got) != 0 {
		t.Fatalf("dead sender holds %d blocks", len(got))
	}
	// It answers again at the same address: probed back, then given what
	// it owns and missed.
	dead.start(t, dead.addr)
	want := ownedBy(ms, ids, 2, "c")
	waitFor(t, "the sender that came back holds what it owns", 10*time.Second, func() bool {
		return sameSet(dead.holds(t, ids), want)
	})
	if w.isDown("c") {
		t.Error("sender still out of the targets")
	}
	if missing, err := dead.snd.Missing(ctx, cluster.HaveQuery{Inits: tracksOf(ids)}); err != nil || len(missing.Inits) != 0 {
		t.Errorf("the sender that came back lacks headers %v (%v)", missing.Inits, err)
	}
	if w.Stats().RebalanceBlocks < int64(len(want)) {
		t.Errorf("stats %+v, want at least %d blocks rebalanced", w.Stats(), len(want))
	}
}
