package placement

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/store"
)

// deleteChunk is the most blocks the writer names in one delete request
// (a sender takes up to cluster.MaxDeleteBlocks).
const deleteChunk = 5_000

// PruneHook returns a store.OnPrune hook that queues the fragments the
// origin's retention deleted for deletion on every sender (non-blocking:
// a full queue drops the batch and counts it in DeletesDropped).
func (w *Writer) PruneHook() func(store.FragmentsPruned) {
	return func(ev store.FragmentsPruned) {
		ids := make([]cluster.BlockID, len(ev.Starts))
		for i, s := range ev.Starts {
			ids[i] = cluster.BlockID{Point: ev.Point, Track: ev.Track, Start: s}
		}
		w.EnqueueDelete(ids)
	}
}

// EnqueueDelete queues blocks to be deleted from every sender of the set
// (non-blocking); it reports false when the queue was full and the blocks
// were dropped (they stay on the senders).
func (w *Writer) EnqueueDelete(ids []cluster.BlockID) bool {
	if len(ids) == 0 {
		return true
	}
	select {
	case w.delQueue <- ids:
		return true
	default:
		w.delDropped.Add(int64(len(ids)))
		w.log.Warn("delete queue full; pruned blocks stay on the senders", "blocks", len(ids), "first", ids[0])
		return false
	}
}

// deleteLoop sends queued deletions to every sender of the set, one batch
// at a time within DeleteRate blocks per second, until ctx ends. A sender
// that is down, or fails after the retries, keeps the blocks in its
// pending list: the rebalance of its next answer sends them again.
func (w *Writer) deleteLoop(ctx context.Context) {
	lim := newRateLimiter(w.o.DeleteRate)
	for {
		var ids []cluster.BlockID
		select {
		case <-ctx.Done():
			return
		case ids = <-w.delQueue:
		}
		for i := 0; i < len(ids); i += deleteChunk {
			chunk := ids[i:min(i+deleteChunk, len(ids))]
			if lim.wait(ctx, int64(len(chunk))) != nil {
				return
			}
			w.deleteEverywhere(ctx, chunk)
		}
	}
}

// deleteEverywhere deletes blocks on every sender of the set, in parallel.
func (w *Writer) deleteEverywhere(ctx context.Context, ids []cluster.BlockID) {
	done := make(chan struct{})
	ms := w.o.Members.Members()
	for _, m := range ms {
		go func() {
			defer func() { done <- struct{}{} }()
			if w.isDown(m.ID) {
				w.addPending(m.ID, ids)
				return
			}
			err := w.retry(ctx, func() error {
				return w.deleteOn(ctx, m, ids, &w.delBlocks)
			})
			if err != nil && ctx.Err() == nil {
				w.delFailures.Add(int64(len(ids)))
				w.addPending(m.ID, ids)
				w.log.Warn("delete pruned blocks on a sender; kept for its next rebalance", "sender", m.ID, "blocks", len(ids), "err", err)
			}
		}()
	}
	for range ms {
		<-done
	}
}

// deleteOn sends one delete request (at most cluster.MaxDeleteBlocks) to m
// and adds the blocks it deleted (or deferred: pinned) to count.
func (w *Writer) deleteOn(ctx context.Context, m membership.Member, ids []cluster.BlockID, count interface{ Add(int64) int64 }) error {
	return w.put(ctx, m, func(ctx context.Context) error {
		res, err := w.o.Client.Delete(ctx, m.URL, ids)
		if err == nil {
			count.Add(int64(res.Deleted + res.Deferred))
		}
		return err
	})
}

// addPending keeps blocks a sender missed for its next rebalance, at most
// MaxPendingDeletes a sender (the oldest are dropped and counted).
func (w *Writer) addPending(id string, ids []cluster.BlockID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := append(w.pending[id], ids...)
	if over := len(p) - w.o.MaxPendingDeletes; over > 0 {
		w.delDropped.Add(int64(over))
		p = append([]cluster.BlockID(nil), p[over:]...)
	}
	w.pending[id] = p
}

// flushPending sends a sender the deletions it missed; what fails goes
// back to its pending list.
func (w *Writer) flushPending(ctx context.Context, m membership.Member) error {
	w.mu.Lock()
	ids := w.pending[m.ID]
	delete(w.pending, m.ID)
	w.mu.Unlock()
	for i := 0; i < len(ids); i += deleteChunk {
		chunk := ids[i:min(i+deleteChunk, len(ids))]
		if err := w.deleteOn(ctx, m, chunk, &w.delBlocks); err != nil {
			w.addPending(m.ID, ids[i:])
			return fmt.Errorf("pending deletes: %w", err)
		}
	}
	return nil
}

// PendingDeletes is the number of blocks kept for senders that missed
// their deletion.
func (w *Writer) PendingDeletes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, p := range w.pending {
		n += len(p)
	}
	return n
}

// deleteCopies is the second phase of a rebalance: every live sender is
// asked which of the blocks it does not own it holds (the inverse of a
// HaveQuery's answer), and deletes those, but only blocks all of whose
// current owners confirmed holding them in the first phase (complete), so
// a run with a failed query or push, or a sender down, loses no copy.
// It stops, deleting nothing more, as soon as the set is no longer the one
// the run computed the owners over.
func (w *Writer) deleteCopies(ctx context.Context, live []membership.Member, want map[string]*owned, complete []cluster.BlockID) (int, error) {
	var (
		total int
		errs  []error
	)
	for _, m := range live {
		mine := make(map[cluster.BlockID]bool, len(want[m.ID].blocks))
		for _, id := range want[m.ID].blocks {
			mine[id] = true
		}
		var cand []cluster.BlockID
		for _, id := range complete {
			if !mine[id] {
				cand = append(cand, id)
			}
		}
		for i := 0; i < len(cand); i += haveChunk {
			if !w.sameLive(live) {
				return total, errSetChanged
			}
			q := cluster.HaveQuery{Blocks: cand[i:min(i+haveChunk, len(cand))]}
			var ans cluster.HaveQuery
			err := w.put(ctx, m, func(ctx context.Context) error {
				var err error
				ans, err = w.o.Client.Missing(ctx, m.URL, q)
				return err
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("sender %s: which copies it holds: %w", m.ID, err))
				break
			}
			lacks := make(map[cluster.BlockID]bool, len(ans.Blocks))
			for _, id := range ans.Blocks {
				lacks[id] = true
			}
			var held []cluster.BlockID
			for _, id := range q.Blocks {
				if !lacks[id] {
					held = append(held, id)
				}
			}
			var n counter
			for j := 0; j < len(held) && err == nil; j += deleteChunk {
				if !w.sameLive(live) {
					return total, errSetChanged
				}
				err = w.deleteOn(ctx, m, held[j:min(j+deleteChunk, len(held))], &n)
			}
			total += int(n)
			w.rbDeletes.Add(int64(n))
			if err != nil {
				errs = append(errs, fmt.Errorf("sender %s: delete copies it does not own: %w", m.ID, err))
				break
			}
		}
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
	return total, errors.Join(errs...)
}

// errSetChanged stops deleting copies when the live set changed during a
// rebalance (the next run computes the owners again).
var errSetChanged = errors.New("the live sender set changed; copies are left for the next rebalance")

// sameLive reports whether the live members are still those of live.
func (w *Writer) sameLive(live []membership.Member) bool {
	now := w.liveMembers()
	if len(now) != len(live) {
		return false
	}
	for i := range now {
		if now[i] != live[i] {
			return false
		}
	}
	return true
}

// counter is a plain int64 counter for deleteOn.
type counter int64

func (c *counter) Add(n int64) int64 { *c += counter(n); return int64(*c) }
