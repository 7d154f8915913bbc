package placement

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/store"
)

func mustPoint(t *testing.T, st *store.Store, name string) *store.Point {
	t.Helper()
	p, err := st.Point(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPruneDeletesEverywhere: the fragments the origin's retention prunes
// are deleted from every sender that holds them; a sender that is down at
// the time gets the deletion from the rebalance when it answers again.
func TestPruneDeletesEverywhere(t *testing.T) {
	st, ids := fillStore(t, 1)
	s, ms, w := threeSenderWriter(t, st)
	st.OnPrune(w.PruneHook())
	writeAll(t, w, st, ids)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	waitFor(t, "first rebalance", 5*time.Second, func() bool { return w.Stats().RebalanceRuns >= 1 })
	// A copy on a non-owner too (as a fallback write leaves), after
	// the first rebalance: the prune deletes it as well.
	extra := ids[0]
	for _, rs := range s {
		if !rs.holds(t, ids[:1])[extra] {
			data, _, _ := mustPoint(t, st, extra.Point).ReadFragment(extra.Track, extra.Start)
			if _, err := NewClient(realSecret, nil).PutBlock(ctx, "http://"+rs.addr, extra, data); err != nil {
				t.Fatal(err)
			}
		}
	}

	down := s[2]
	down.stop()
	p := mustPoint(t, st, ids[0].Point)
	v := p.View(0)
	tv := v.Tracks[0]
	keep := time.Duration(tv.Seconds(int64(tv.Frags[len(tv.Frags)-1].Duration)) * 3 * float64(time.Second))
	n, err := p.Prune(keep)
	if err != nil || n == 0 {
		t.Fatalf("prune: %d %v", n, err)
	}
	var pruned, kept []cluster.BlockID
	for _, id := range ids {
		if _, _, err := p.ReadFragment(id.Track, id.Start); err != nil {
			pruned = append(pruned, id)
		} else {
			kept = append(kept, id)
		}
	}
	t.Logf("%d of %d blocks pruned", len(pruned), len(ids))
	if _, _, err := p.ReadFragment(extra.Track, extra.Start); err == nil {
		t.Fatal("the block with a copy on every sender was not pruned")
	}
	waitFor(t, "the live senders deleted the pruned blocks", 5*time.Second, func() bool {
		return len(s[0].holds(t, pruned))+len(s[1].holds(t, pruned)) == 0
	})
	waitFor(t, "the deletion is pending for the sender that is down", 5*time.Second, func() bool {
		return w.PendingDeletes() > 0
	})
	if got := len(down.holds(t, pruned)); got == 0 {
		t.Fatal("the stopped sender holds none of the pruned blocks: the test proves nothing")
	}
	// Kept blocks stay on their owners.
	for _, id := range kept {
		for _, o := range Owners(ms, id, 2) {
			for _, rs := range s {
				if rs.id == o.ID && !rs.holds(t, []cluster.BlockID{id})[id] {
					t.Errorf("kept block %s gone from its owner %s", id, o.ID)
				}
			}
		}
	}
	down.start(t, down.addr)
	waitFor(t, "the sender that came back deleted the pruned blocks", 10*time.Second, func() bool {
		return len(down.holds(t, pruned)) == 0
	})
	if st := w.Stats(); st.Deletes < int64(len(pruned)) || w.PendingDeletes() != 0 {
		t.Errorf("stats %+v, %d pending; want at least %d deletes", st, w.PendingDeletes(), len(pruned))
	}
}

// TestRebalanceDeletesNonOwnerCopies: after a join, the copies on senders
// that no longer own a block are deleted, but only once every owner of the
// block holds it: while the new sender refuses what it is pushed, the old
// copies of the blocks it owns stay.
func TestRebalanceDeletesNonOwnerCopies(t *testing.T) {
	st, ids := fillStore(t, 2)
	s1, s2, s3 := startRealSender(t, "s1"), startRealSender(t, "s2"), startRealSender(t, "s3")
	set := &changingSet{ms: []membership.Member{s1.member(), s2.member()}, changed: make(chan struct{})}
	w, err := NewWriter(WriterOptions{Members: set, Replicas: 2, Client: NewClient(realSecret, nil), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, st, ids)
	ctx := context.Background()
	all := []membership.Member{s1.member(), s2.member(), s3.member()}
	set.set(all)

	// s3 cannot store blocks: no owner set of a block s3 owns is complete.
	s3.refuseBlocks.Store(true)
	res, err := w.Rebalance(ctx)
	if err != nil {
		t.Logf("rebalance with a failing owner: %v", err)
	}
	owned3 := ownedBy(all, ids, 2, "s3")
	if res.Failed != len(owned3) || res.Complete != len(ids)-len(owned3) || res.Deleted != 0 {
		t.Errorf("failing owner: %+v; want %d failed, %d complete, nothing deleted", res, len(owned3), len(ids)-len(owned3))
	}
	for _, rs := range []*realSender{s1, s2} {
		if got := rs.holds(t, ids); len(got) != len(ids) {
			t.Errorf("%s holds %d of %d blocks after an incomplete run: a copy was deleted", rs.id, len(got), len(ids))
		}
	}

	// It can now: every block is complete, and each sender ends up with
	// exactly what it owns.
	s3.refuseBlocks.Store(false)
	res, err = w.Rebalance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pushed != len(owned3) || res.Complete != len(ids) || res.Deleted != len(owned3) {
		t.Errorf("second run: %+v; want %d pushed, %d complete, %d deleted", res, len(owned3), len(ids), len(owned3))
	}
	for _, rs := range []*realSender{s1, s2, s3} {
		if got, want := rs.holds(t, ids), ownedBy(all, ids, 2, rs.id); !sameSet(got, want) {
			t.Errorf("%s holds %d blocks, owns %d", rs.id, len(got), len(want))
		}
		// Headers are never deleted.
		if m, err := rs.snd.Missing(ctx, cluster.HaveQuery{Inits: tracksOf(ids)}); err != nil || len(m.Inits) != 0 {
			t.Errorf("%s lacks headers %v (%v)", rs.id, m.Inits, err)
		}
	}
	if st := w.Stats(); st.RebalanceDeletes != int64(len(owned3)) {
		t.Errorf("RebalanceDeletes %d, want %d", st.RebalanceDeletes, len(owned3))
	}

	// A sender down: the owners among the live ones hold everything (R
	// among two), nothing is deleted from them.
	s3.stop()
	w.markDown(s3.member(), context.DeadlineExceeded)
	res, err = w.Rebalance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Senders != 2 || res.Deleted != 0 {
		t.Errorf("with a sender down: %+v", res)
	}
}

// TestQueuedBlockPrunedIsNotWritten: a block that retention pruned while it
// waited in the writer's queue is not written (it would outlive its
// deletion on the senders).
func TestQueuedBlockPrunedIsNotWritten(t *testing.T) {
	st, ids := fillStore(t, 1)
	rs := startRealSender(t, "a")
	set, err := membership.Static(rs.member())
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(WriterOptions{Members: set, Replicas: 1, Client: NewClient(realSecret, nil), Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	w.o.Store = st // the source of truth, without the rebalance Run would start
	p := mustPoint(t, st, ids[0].Point)
	tv := p.View(0).Tracks[0]
	if _, err := p.Prune(time.Duration(tv.Seconds(int64(tv.Frags[len(tv.Frags)-1].Duration)) * float64(time.Second))); err != nil {
		t.Fatal(err)
	}
	gone, kept := ids[0], tv.Frags[len(tv.Frags)-1]
	keptID := cluster.BlockID{Point: gone.Point, Track: tv.ID, Start: kept.Start}
	initFn := func() ([]byte, string, error) { return TrackInit(st, gone.Point, gone.Track) }
	keptData, _, err := p.ReadFragment(keptID.Track, keptID.Start)
	if err != nil {
		t.Fatal(err)
	}
	w.Enqueue(gone, []byte("pruned"), initFn)
	w.Enqueue(keptID, keptData, initFn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	waitFor(t, "the kept block written", 5*time.Second, func() bool { return w.Stats().Blocks >= 1 })
	if got := rs.holds(t, []cluster.BlockID{gone, keptID}); got[gone] || !got[keptID] || w.Stats().Blocks != 1 {
		t.Errorf("sender holds %v, %d blocks written; want only the kept one", got, w.Stats().Blocks)
	}
}
