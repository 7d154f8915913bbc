package placement

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/manifest"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/pause"
	"github.com/sluice-media/sluice/internal/store"
)

// RebalanceResult counts one rebalance.
type RebalanceResult struct {
	Senders int   // live senders considered
	Owned   int   // (block, owner) pairs in the retained windows and assets
	Missing int   // of which the owner lacked the block
	Pushed  int   // blocks written to owners that lacked them
	Bytes   int64 // their bytes
	Inits   int   // track headers written to senders that lacked them
	Failed  int   // pushes that failed
	// Complete blocks: every owner confirmed holding them (it did not lack
	// them, or the push succeeded).
	Complete int
	Deleted  int // copies on senders that do not own them, deleted
}

// haveChunk is the most blocks asked about in one HaveQuery.
const haveChunk = 20_000

// kickRebalance asks the rebalancer for a run (coalesced).
func (w *Writer) kickRebalance() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// rebalanceLoop runs a rebalance after every kick, once the set has been
// quiet for RebalanceDelay; a kick during a run cancels it and starts
// over with the new set.
func (w *Writer) rebalanceLoop(ctx context.Context) {
	type run struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var cur *run
	stop := func() {
		if cur != nil {
			cur.cancel()
			<-cur.done
			cur = nil
		}
	}
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		}
		// Let the set settle: kicks within the delay make one run.
		for settled := false; !settled; {
			t := time.NewTimer(w.o.RebalanceDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-w.kick:
				t.Stop()
			case <-t.C:
				settled = true
			}
		}
		stop()
		cur = &run{done: make(chan struct{})}
		var rctx context.Context
		rctx, cur.cancel = context.WithCancel(ctx)
		go func(done chan struct{}) {
			defer close(done)
			if _, err := w.Rebalance(rctx); err != nil && ctx.Err() == nil {
				if errors.Is(err, context.Canceled) {
					w.log.Info("rebalance cancelled: the sender set changed again")
				} else {
					w.log.Warn("rebalance", "err", err)
				}
			}
		}(cur.done)
	}
}

// owned is what one sender owns of the retained content.
type owned struct {
	m      membership.Member
	blocks []cluster.BlockID
}

// Rebalance gives every live sender the blocks of the store it owns
// (rendezvous hashing over the live senders, R owners) but lacks, and
// every track header it lacks (every sender holds every header): it asks each sender which it lacks
// (POST /internal/v1/missing) and writes those, RebalanceConcurrency at a
// time within RebalanceRate bytes per second. Live points count with
// their DVR window (Window), ended points and assets whole. It is what
// places the blocks a sender owns after it joined, and the blocks it
// missed while it did not answer. Each sender first gets the deletions of
// pruned blocks it missed (pending). Then, the blocks every owner
// confirmed holding are deleted from the live senders that hold them but
// do not own them (deleteCopies): the fallback owner's copy after a
// death, the old replica's after a join. Track headers are never deleted.
func (w *Writer) Rebalance(ctx context.Context) (RebalanceResult, error) {
	var res RebalanceResult
	st := w.o.Store
	if st == nil {
		return res, errors.New("rebalance: the writer has no store")
	}
	t0 := time.Now()
	live := w.liveMembers()
	res.Senders = len(live)
	if len(live) == 0 {
		return res, nil
	}
	want := map[string]*owned{}
	for _, m := range live {
		want[m.ID] = &owned{m: m}
	}
	var (
		tracks []string // "<point>/<track>", every sender's headers
		all    []cluster.BlockID
	)
	for _, name := range st.Points() {
		p, err := st.Point(name)
		if err != nil {
			continue
		}
		for _, t := range retainedView(p, w.o.Window).Tracks {
			tracks = append(tracks, name+"/"+t.ID)
			for _, f := range t.Frags {
				id := cluster.BlockID{Point: name, Track: t.ID, Start: f.Start}
				all = append(all, id)
				for _, m := range Owners(live, id, w.o.Replicas) {
					o := want[m.ID]
					o.blocks = append(o.blocks, id)
					res.Owned++
				}
			}
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
		// confirmed counts, per block, the owners that hold it.
		confirmed = make(map[cluster.BlockID]int, len(all))
	)
	sem := make(chan struct{}, w.o.RebalanceConcurrency)
	lim := newRateLimiter(w.o.RebalanceRate)
	for _, m := range live {
		o := want[m.ID]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.flushPending(ctx, o.m); err != nil && ctx.Err() == nil {
				w.log.Warn("rebalance: deletions a sender missed", "sender", o.m.ID, "err", err)
			}
			if len(o.blocks) == 0 && len(tracks) == 0 {
				return
			}
			r, held, err := w.rebalanceSender(ctx, o, tracks, sem, lim)
			mu.Lock()
			defer mu.Unlock()
			for _, id := range held {
				confirmed[id]++
			}
			res.Missing += r.Missing
			res.Pushed += r.Pushed
			res.Bytes += r.Bytes
			res.Inits += r.Inits
			res.Failed += r.Failed
			if err != nil {
				errs = append(errs, fmt.Errorf("sender %s: %w", o.m.ID, err))
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	// Copies beyond the owners: only of complete blocks, and only while
	// some live sender owns nothing of a block (R < live senders).
	if r := min(w.o.Replicas, len(live)); r < len(live) {
		var complete []cluster.BlockID
		for _, id := range all {
			if confirmed[id] >= r {
				complete = append(complete, id)
			}
		}
		res.Complete = len(complete)
		n, err := w.deleteCopies(ctx, live, want, complete)
		res.Deleted = n
		if err != nil {
			errs = append(errs, err)
		}
	} else {
		res.Complete = len(all)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	w.rbRuns.Add(1)
	lvl := w.log.Debug
	if res.Missing > 0 || res.Failed > 0 || res.Deleted > 0 {
		lvl = w.log.Info
	}
	lvl("rebalance done", "senders", res.Senders, "owned", res.Owned, "missing", res.Missing,
		"pushed", res.Pushed, "bytes", res.Bytes, "inits", res.Inits, "failed", res.Failed,
		"complete", res.Complete, "deleted", res.Deleted,
		"took", time.Since(t0).Round(time.Millisecond))
	return res, errors.Join(errs...)
}

// rebalanceSender writes to one sender the blocks it owns and the track
// headers it lacks, and returns the owned blocks it then holds: those it
// did not lack and those pushed to it.
func (w *Writer) rebalanceSender(ctx context.Context, o *owned, tracks []string, sem chan struct{}, lim *rateLimiter) (RebalanceResult, []cluster.BlockID, error) {
	var res RebalanceResult
	var missing []cluster.BlockID
	var missingInits []string
	for i := 0; i == 0 || i < len(o.blocks); i += haveChunk {
		q := cluster.HaveQuery{Blocks: o.blocks[i:min(i+haveChunk, len(o.blocks))]}
		if i == 0 {
			q.Inits = tracks
		}
		var ans cluster.HaveQuery
		err := w.put(ctx, o.m, func(ctx context.Context) error {
			var err error
			ans, err = w.o.Client.Missing(ctx, o.m.URL, q)
			return err
		})
		if err != nil {
			return res, nil, err
		}
		missing = append(missing, ans.Blocks...)
		missingInits = append(missingInits, ans.Inits...)
	}
	res.Missing = len(missing)
	lacks := make(map[cluster.BlockID]bool, len(missing))
	for _, id := range missing {
		lacks[id] = true
	}
	held := make([]cluster.BlockID, 0, len(o.blocks))
	for _, id := range o.blocks {
		if !lacks[id] {
			held = append(held, id)
		}
	}
	if len(missing) == 0 && len(missingInits) == 0 {
		return res, held, nil
	}
	st := w.o.Store
	// Headers first: a block is of no use to a player without its track's.
	for _, k := range missingInits {
		point, track, _ := cutLast(k)
		data, ct, err := TrackInit(st, point, track)
		if err != nil {
			res.Failed++
			continue
		}
		err = w.put(ctx, o.m, func(ctx context.Context) error {
			return w.o.Client.PutInit(ctx, o.m.URL, point, track, data, ct)
		})
		if err != nil {
			res.Failed++
			w.rbFailures.Add(1)
			if unreachable(err) || ctx.Err() != nil {
				return res, held, err
			}
			continue
		}
		res.Inits++
		w.mu.Lock()
		if w.sent[o.m.ID] == nil {
			w.sent[o.m.ID] = map[string]bool{}
		}
		w.sent[o.m.ID][k] = true
		w.mu.Unlock()
	}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		fatal error
	)
	pctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	for _, id := range missing {
		select {
		case sem <- struct{}{}:
		case <-pctx.Done():
		}
		if pctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p, err := st.Point(id.Point)
			if err != nil {
				return // gone since the listing
			}
			data, _, err := p.ReadFragment(id.Track, id.Start)
			if errors.Is(err, store.ErrNotFound) {
				return // pruned since the listing
			}
			if err == nil {
				err = lim.wait(pctx, int64(len(data)))
			}
			if err == nil {
				err = w.put(pctx, o.m, func(ctx context.Context) error {
					_, err := w.o.Client.PutBlock(ctx, o.m.URL, id, data)
					return err
				})
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if pctx.Err() == nil {
					res.Failed++
					w.rbFailures.Add(1)
				}
				if unreachable(err) && fatal == nil {
					fatal = err
					stop(err) // it does not answer: the rest waits for the next run
				}
				return
			}
			res.Pushed++
			res.Bytes += int64(len(data))
			held = append(held, id)
			w.rbBlocks.Add(1)
			w.rbBytes.Add(int64(len(data)))
		}()
	}
	wg.Wait()
	if fatal != nil {
		return res, held, fatal
	}
	return res, held, ctx.Err()
}

// retainedView is what of a point the senders should hold: the DVR window
// of a live point, all of an ended point or asset.
func retainedView(p *store.Point, window func(string) time.Duration) store.View {
	var d time.Duration
	if window != nil {
		d = window(p.Name)
	}
	v := p.View(d)
	if d > 0 && !manifest.Live(v) {
		v = p.View(0)
	}
	return v
}

// rateLimiter spaces transfers so that they average at most rate bytes
// per second.
type rateLimiter struct {
	mu   sync.Mutex
	rate float64
	next time.Time
}

func newRateLimiter(bytesPerSecond int64) *rateLimiter {
	return &rateLimiter{rate: float64(bytesPerSecond)}
}

// wait returns when n more bytes fit in the rate, or with ctx's error.
func (l *rateLimiter) wait(ctx context.Context, n int64) error {
	if l == nil || l.rate <= 0 {
		return ctx.Err()
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	at := l.next
	l.next = l.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	l.mu.Unlock()
	return pause.For(ctx, time.Until(at))
}
