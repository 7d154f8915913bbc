package placement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/pause"
	"github.com/sluice-media/sluice/internal/store"
)

// WriterOptions configure a Writer.
type WriterOptions struct {
	// Members is the live set of senders (required).
	Members membership.Set
	// Replicas is R, the owners of each block (2 when 0).
	Replicas int
	// Client calls the senders (required).
	Client *Client
	// Queue bounds the blocks waiting to be written by Enqueue (1024 when
	// 0); a block that finds the queue full is dropped and counted.
	Queue int
	// Workers write queued blocks in parallel (4 when 0).
	Workers int
	// Retries per owner after a PUT the sender answered with an error (3
	// when 0), with a backoff from 100 ms doubling. A sender that does not
	// answer (connection refused or reset, timeout) is not retried: it
	// leaves the writer's targets at once (see Health).
	Retries int
	// Timeout bounds one PUT (5 s when 0); running out of it counts as
	// the sender not answering.
	Timeout time.Duration
	// ProbeMin and ProbeMax bound the backoff between probes of a sender
	// that did not answer (250 ms and 10 s when 0).
	ProbeMin, ProbeMax time.Duration

	// Store, when set, is the source of every block (the origin's store):
	// Run then rebalances when the sender set changes or a sender answers
	// again — each live sender gets the blocks it owns but lacks. Nil (as
	// in sender-load): no rebalance.
	Store *store.Store
	// Window returns the DVR window of a live point: only its blocks in
	// the window are rebalanced (nil or 0: all of them). Ended points and
	// on-demand assets are rebalanced whole.
	Window func(point string) time.Duration
	// RebalanceConcurrency bounds the block PUTs of a rebalance in flight
	// (4 when 0); RebalanceRate its bytes per second (64 MiB/s when 0,
	// negative: unlimited); RebalanceDelay is how long it waits for the
	// set to settle after a change (500 ms when 0).
	RebalanceConcurrency int
	RebalanceRate        int64
	RebalanceDelay       time.Duration

	// DeleteQueue bounds the batches of pruned blocks waiting to be
	// deleted from the senders (1024 when 0; see PruneHook); DeleteRate
	// bounds the blocks a second named in those deletions (10 000 when 0,
	// negative: unlimited); MaxPendingDeletes bounds the blocks kept for
	// one sender that missed their deletion (down, or failing) until its
	// next rebalance (100 000 when 0).
	DeleteQueue       int
	DeleteRate        int64
	MaxPendingDeletes int

	Log *slog.Logger
}

// WriterStats count a writer's work.
type WriterStats struct {
	Blocks      int64 // blocks written to at least one owner
	Copies      int64 // block PUTs that succeeded
	Failures    int64 // block PUTs that failed after the retries
	Dropped     int64 // blocks dropped because the queue was full
	Inits       int64 // init PUTs that succeeded
	InitFailure int64
	Fallbacks   int64 // copies written to a later owner because an earlier one failed or was down
	Downs       int64 // times a sender was taken out of the targets for not answering
	// Rebalance counters.
	RebalanceRuns     int64 // rebalances finished (not cancelled)
	RebalanceBlocks   int64 // blocks pushed to owners that lacked them
	RebalanceBytes    int64
	RebalanceFailures int64 // pushes that failed
	// Deletion counters.
	RebalanceDeletes int64 // copies on senders that do not own them, deleted by the rebalance
	Deletes          int64 // pruned blocks deleted on a sender (or deferred there: pinned)
	DeleteFailures   int64 // pruned blocks a sender failed to delete (kept pending)
	DeletesDropped   int64 // pruned blocks not deleted: queue full or pending list over its bound
	// Parts of live fragments in progress (parts.go).
	Parts        int64 // part PUTs that succeeded
	PartFailures int64 // part and fragment-end PUTs that failed (not retried)
	PartsDropped int64 // part events dropped: a sender's queue was full
}

type initRec struct {
	data        []byte
	contentType string
}

type job struct {
	id   cluster.BlockID
	data []byte
	init func() ([]byte, string, error)
}

// Writer writes blocks to their owners and track headers to every sender.
type Writer struct {
	o     WriterOptions
	log   *slog.Logger
	queue chan job

	mu    sync.Mutex
	inits map[string]initRec // "<point>/<track>"
	// sent records which member already has which init: a member that
	// joins later gets every init (PushInits).
	sent map[string]map[string]bool // member ID -> track key

	// health is the writer's view of each member (health.go).
	health map[string]*memberHealth
	kick   chan struct{} // asks the rebalancer for a run

	delQueue chan []cluster.BlockID // pruned blocks to delete everywhere
	// pending are deletions a sender missed (member ID -> blocks), sent
	// again by its next rebalance.
	pending map[string][]cluster.BlockID

	blocks, copies, failures, dropped, initsOK, initsFailed atomic.Int64
	fallbacks, downs                                        atomic.Int64
	rbRuns, rbBlocks, rbBytes, rbFailures                   atomic.Int64
	rbDeletes, delBlocks, delFailures, delDropped           atomic.Int64
	parts, partFailures, partsDropped                       atomic.Int64

	runCtx     context.Context         // Run's, for the part workers
	partQueues map[string]chan partJob // member ID -> its part worker's queue (parts.go)
}

// NewWriter returns a writer. Call Run to start the queue workers and the
// membership follower.
func NewWriter(o WriterOptions) (*Writer, error) {
	if o.Members == nil || o.Client == nil {
		return nil, errors.New("placement writer: members and client are required")
	}
	if o.Replicas <= 0 {
		o.Replicas = 2
	}
	if o.Queue <= 0 {
		o.Queue = 1024
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Retries <= 0 {
		o.Retries = 3
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.ProbeMin <= 0 {
		o.ProbeMin = 250 * time.Millisecond
	}
	if o.ProbeMax < o.ProbeMin {
		o.ProbeMax = max(10*time.Second, o.ProbeMin)
	}
	if o.RebalanceConcurrency <= 0 {
		o.RebalanceConcurrency = 4
	}
	if o.RebalanceRate == 0 {
		o.RebalanceRate = 64 << 20
	}
	if o.RebalanceDelay <= 0 {
		o.RebalanceDelay = 500 * time.Millisecond
	}
	if o.DeleteQueue <= 0 {
		o.DeleteQueue = 1024
	}
	if o.DeleteRate == 0 {
		o.DeleteRate = 10_000
	}
	if o.MaxPendingDeletes <= 0 {
		o.MaxPendingDeletes = 100_000
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Writer{o: o, log: log, queue: make(chan job, o.Queue),
		inits: map[string]initRec{}, sent: map[string]map[string]bool{}, partQueues: map[string]chan partJob{},
		health: map[string]*memberHealth{}, kick: make(chan struct{}, 1),
		delQueue: make(chan []cluster.BlockID, o.DeleteQueue), pending: map[string][]cluster.BlockID{}}, nil
}

// Stats returns the writer's counters.
func (w *Writer) Stats() WriterStats {
	return WriterStats{
		Blocks: w.blocks.Load(), Copies: w.copies.Load(), Failures: w.failures.Load(),
		Dropped: w.dropped.Load(), Inits: w.initsOK.Load(), InitFailure: w.initsFailed.Load(),
		Fallbacks: w.fallbacks.Load(), Downs: w.downs.Load(),
		RebalanceRuns: w.rbRuns.Load(), RebalanceBlocks: w.rbBlocks.Load(),
		RebalanceBytes: w.rbBytes.Load(), RebalanceFailures: w.rbFailures.Load(),
		RebalanceDeletes: w.rbDeletes.Load(), Deletes: w.delBlocks.Load(),
		DeleteFailures: w.delFailures.Load(), DeletesDropped: w.delDropped.Load(),
		Parts: w.parts.Load(), PartFailures: w.partFailures.Load(), PartsDropped: w.partsDropped.Load(),
	}
}

// retry runs f until it succeeds, the retries are used up, the sender
// does not answer (unreachable: no retry) or ctx ends.
func (w *Writer) retry(ctx context.Context, f func() error) error {
	backoff := 100 * time.Millisecond
	var err error
	for i := 0; i <= w.o.Retries; i++ {
		if err = f(); err == nil {
			return nil
		}
		if i == w.o.Retries || unreachable(err) || ctx.Err() != nil {
			break
		}
		if cerr := pause.For(ctx, backoff); cerr != nil {
			return errors.Join(err, cerr)
		}
		backoff *= 2
	}
	return err
}

// WriteInit stores a track's header on every sender now in the set and
// remembers it for senders that join later.
func (w *Writer) WriteInit(ctx context.Context, point, track string, data []byte, contentType string) error {
	key := point + "/" + track
	w.mu.Lock()
	w.inits[key] = initRec{data: data, contentType: contentType}
	w.mu.Unlock()
	return w.pushInit(ctx, w.o.Members.Members(), key, true)
}

// pushInit puts one init on the given members (all, or only those that do
// not have it yet).
func (w *Writer) pushInit(ctx context.Context, ms []membership.Member, key string, force bool) error {
	w.mu.Lock()
	rec, ok := w.inits[key]
	w.mu.Unlock()
	if !ok {
		return nil
	}
	point, track, _ := cutLast(key)
	var wg sync.WaitGroup
	errs := make([]error, len(ms))
	for i, m := range ms {
		w.mu.Lock()
		have := w.sent[m.ID][key]
		w.mu.Unlock()
		if have && !force {
			continue
		}
		if w.isDown(m.ID) {
			// The rebalance gives it its headers when it answers again.
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.retry(ctx, func() error {
				return w.put(ctx, m, func(ctx context.Context) error {
					return w.o.Client.PutInit(ctx, m.URL, point, track, rec.data, rec.contentType)
				})
			})
			if err != nil {
				w.initsFailed.Add(1)
				errs[i] = fmt.Errorf("sender %s: %w", m.ID, err)
				return
			}
			w.initsOK.Add(1)
			w.mu.Lock()
			if w.sent[m.ID] == nil {
				w.sent[m.ID] = map[string]bool{}
			}
			w.sent[m.ID][key] = true
			w.mu.Unlock()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func cutLast(key string) (string, string, bool) {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return "", key, false
}

// PushInits gives every member every remembered init it does not have yet
// (Run calls it when the set changes).
func (w *Writer) PushInits(ctx context.Context) error {
	w.mu.Lock()
	keys := make([]string, 0, len(w.inits))
	for k := range w.inits {
		keys = append(keys, k)
	}
	w.mu.Unlock()
	ms := w.o.Members.Members()
	var errs []error
	for _, k := range keys {
		errs = append(errs, w.pushInit(ctx, ms, k, false))
	}
	return errors.Join(errs...)
}

// HasInit reports whether the writer knows a track's header.
func (w *Writer) HasInit(point, track string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.inits[point+"/"+track]
	return ok
}

// WriteBlock stores a block on R senders and returns the IDs of those
// that took it: its owners by rendezvous order among the senders now in
// the set, skipping those the writer knows do not answer (Health); when
// an owner fails (it does not answer, or errs after the retries), the
// copy goes to the next sender in the block's order, so that R copies
// exist among the live senders (the scheduler, which leaves dead senders
// out of its owner lists too, finds them there). A sender that missed a
// block it owns gets it from the rebalance when it answers again. The
// error joins the owners' failures when fewer than R copies were written.
func (w *Writer) WriteBlock(ctx context.Context, id cluster.BlockID, data []byte) ([]string, error) {
	ms := w.o.Members.Members()
	ranked := Owners(ms, id, len(ms))
	r := min(w.o.Replicas, len(ranked))
	var (
		held []string
		errs []error
		next int
	)
	for len(held) < r {
		// The next wave: as many live senders as copies are missing.
		var (
			wave []membership.Member
			rank []int
		)
		for next < len(ranked) && len(wave) < r-len(held) {
			m := ranked[next]
			if !w.isDown(m.ID) {
				wave = append(wave, m)
				rank = append(rank, next)
			}
			next++
		}
		if len(wave) == 0 {
			break
		}
		werrs := make([]error, len(wave))
		var wg sync.WaitGroup
		for i, m := range wave {
			wg.Add(1)
			go func() {
				defer wg.Done()
				werrs[i] = w.retry(ctx, func() error {
					return w.put(ctx, m, func(ctx context.Context) error {
						_, err := w.o.Client.PutBlock(ctx, m.URL, id, data)
						return err
					})
				})
			}()
		}
		wg.Wait()
		for i, m := range wave {
			if werrs[i] != nil {
				w.failures.Add(1)
				errs = append(errs, fmt.Errorf("sender %s: %w", m.ID, werrs[i]))
				continue
			}
			w.copies.Add(1)
			if rank[i] >= r {
				w.fallbacks.Add(1)
			}
			held = append(held, m.ID)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(held) > 0 {
		w.blocks.Add(1)
	}
	if len(held) >= r && r > 0 {
		return held, nil
	}
	if len(ranked) == 0 {
		errs = append(errs, errors.New("no senders"))
	} else if len(errs) == 0 {
		errs = append(errs, errors.New("no sender of the set answers"))
	}
	if len(held) == 0 {
		w.log.Debug("block on no sender; the rebalance places it when one answers", "block", id)
	}
	return held, fmt.Errorf("write block %s: %d of %d copies: %w", id, len(held), r, errors.Join(errs...))
}

// Enqueue queues a block for the workers (non-blocking). init, called by a
// worker the first time a track is seen, returns the track's header and
// content type. It reports false when the queue was full and the block was
// dropped.
func (w *Writer) Enqueue(id cluster.BlockID, data []byte, init func() ([]byte, string, error)) bool {
	select {
	case w.queue <- job{id: id, data: data, init: init}:
		return true
	default:
		w.dropped.Add(1)
		w.log.Warn("placement queue full; block dropped", "block", id)
		return false
	}
}

// Run writes queued blocks, sends queued deletions (EnqueueDelete),
// probes senders that stopped answering, and follows the membership (a
// sender that joins gets every init) until ctx ends. With a Store it also
// rebalances: once at the start, at every change of the set and when a
// sender answers again.
func (w *Writer) Run(ctx context.Context) {
	w.mu.Lock()
	w.runCtx = ctx
	w.mu.Unlock()
	go w.probeLoop(ctx)
	go w.deleteLoop(ctx)
	if w.o.Store != nil {
		go w.rebalanceLoop(ctx)
		w.kickRebalance()
	}
	var wg sync.WaitGroup
	for i := 0; i < w.o.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-w.queue:
					w.write(ctx, j)
				}
			}
		}()
	}
	for {
		ch := w.o.Members.Changed()
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-ch:
		}
		w.forgetLeft(w.o.Members.Members())
		if err := w.PushInits(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("push inits to new senders", "err", err)
		}
		w.kickRebalance()
	}
}

func (w *Writer) write(ctx context.Context, j job) {
	if !w.HasInit(j.id.Point, j.id.Track) && j.init != nil {
		data, ct, err := j.init()
		if err != nil {
			w.log.Warn("track header for the senders", "point", j.id.Point, "track", j.id.Track, "err", err)
		} else if err := w.WriteInit(ctx, j.id.Point, j.id.Track, data, ct); err != nil {
			w.log.Warn("write init to senders", "point", j.id.Point, "track", j.id.Track, "err", err)
		}
	}
	if w.pruned(j.id) {
		return // retention deleted it while it waited: its deletion is queued already
	}
	if _, err := w.WriteBlock(ctx, j.id, j.data); err != nil && ctx.Err() == nil {
		w.log.Warn("write block to its owners", "block", j.id, "err", err)
	}
}

// pruned reports whether the writer's store (if any) no longer holds a
// block: a queued block retention pruned before a worker took it is not
// written, or it would outlive its deletion on the senders.
func (w *Writer) pruned(id cluster.BlockID) bool {
	if w.o.Store == nil {
		return false
	}
	p, err := w.o.Store.Point(id.Point)
	if err != nil {
		return errors.Is(err, store.ErrNotFound)
	}
	_, err = p.Lookup(id.Track, id.Start)
	return errors.Is(err, store.ErrNotFound)
}

// ContentType is the MIME type of a track's segments by kind.
func ContentType(kind string) string {
	switch kind {
	case "audio":
		return "audio/mp4"
	case "text":
		return "application/mp4"
	}
	return "video/mp4"
}

// StoreHook returns a store.OnFragment hook that queues every fragment the
// store adds for its owners (the live origin's forwarding). The bytes are
// copied: the caller may reuse its buffer.
func (w *Writer) StoreHook(st *store.Store) func(store.FragmentAdded) {
	return func(ev store.FragmentAdded) {
		id := cluster.BlockID{Point: ev.Point, Track: ev.Track, Start: ev.Ref.Start}
		data := append([]byte(nil), ev.Data...)
		w.Enqueue(id, data, func() ([]byte, string, error) { return TrackInit(st, ev.Point, ev.Track) })
	}
}

// TrackInit reads a track's header and content type from a store.
func TrackInit(st *store.Store, point, track string) ([]byte, string, error) {
	p, err := st.Point(point)
	if err != nil {
		return nil, "", err
	}
	data, err := p.Init(track)
	if err != nil {
		return nil, "", err
	}
	info, err := p.TrackInfo(track)
	if err != nil {
		return nil, "", err
	}
	return data, ContentType(info.Kind), nil
}

// LoadAsset writes every track header and fragment of a stored point (a
// VOD asset) to the senders, conc blocks at a time, and returns how many
// blocks it wrote. Blocks the owners already hold are not sent twice (the
// senders keep the first copy).
func (w *Writer) LoadAsset(ctx context.Context, st *store.Store, point string, conc int, progress func(done, total int)) (int, error) {
	p, err := st.Point(point)
	if err != nil {
		return 0, err
	}
	v := p.View(0)
	type item struct {
		track string
		start int64
	}
	var items []item
	for _, t := range v.Tracks {
		data, ct, err := TrackInit(st, point, t.ID)
		if err != nil {
			return 0, err
		}
		if err := w.WriteInit(ctx, point, t.ID, data, ct); err != nil {
			return 0, fmt.Errorf("init of %s: %w", t.ID, err)
		}
		for _, f := range t.Frags {
			items = append(items, item{t.ID, f.Start})
		}
	}
	if conc <= 0 {
		conc = 4
	}
	var (
		next, done atomic.Int64
		wg         sync.WaitGroup
		errMu      sync.Mutex
		firstErr   error
	)
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				k := int(next.Add(1)) - 1
				if k >= len(items) {
					return
				}
				it := items[k]
				data, _, err := p.ReadFragment(it.track, it.start)
				if err == nil {
					_, err = w.WriteBlock(ctx, cluster.BlockID{Point: point, Track: it.track, Start: it.start}, data)
				}
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
				}
				n := int(done.Add(1))
				if progress != nil {
					progress(n, len(items))
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return int(done.Load()), firstErr
}
