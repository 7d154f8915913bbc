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
	// Retries per owner after a failed PUT (3 when 0), with a backoff from
	// 100 ms doubling.
	Retries int
	Log     *slog.Logger
}

// WriterStats count a writer's work.
type WriterStats struct {
	Blocks      int64 // blocks written to at least one owner
	Copies      int64 // block PUTs that succeeded
	Failures    int64 // block PUTs that failed after the retries
	Dropped     int64 // blocks dropped because the queue was full
	Inits       int64 // init PUTs that succeeded
	InitFailure int64
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

	blocks, copies, failures, dropped, initsOK, initsFailed atomic.Int64
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
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Writer{o: o, log: log, queue: make(chan job, o.Queue),
		inits: map[string]initRec{}, sent: map[string]map[string]bool{}}, nil
}

// Stats returns the writer's counters.
func (w *Writer) Stats() WriterStats {
	return WriterStats{
		Blocks: w.blocks.Load(), Copies: w.copies.Load(), Failures: w.failures.Load(),
		Dropped: w.dropped.Load(), Inits: w.initsOK.Load(), InitFailure: w.initsFailed.Load(),
	}
}

// retry runs f until it succeeds, the retries are used up or ctx ends.
func (w *Writer) retry(ctx context.Context, f func() error) error {
	backoff := 100 * time.Millisecond
	var err error
	for i := 0; i <= w.o.Retries; i++ {
		if err = f(); err == nil {
			return nil
		}
		if i == w.o.Retries {
			break
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.retry(ctx, func() error {
				return w.o.Client.PutInit(ctx, m.URL, point, track, rec.data, rec.contentType)
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

// WriteBlock stores a block on its R owners among the senders now in the
// set, in parallel, and returns the owners' IDs. The error joins the
// failures of owners that could not take it after the retries; the block
// is written as long as one owner succeeded.
func (w *Writer) WriteBlock(ctx context.Context, id cluster.BlockID, data []byte) ([]string, error) {
	owners := Owners(w.o.Members.Members(), id, w.o.Replicas)
	if len(owners) == 0 {
		w.failures.Add(1)
		return nil, fmt.Errorf("write block %s: no senders", id)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(owners))
	ids := make([]string, len(owners))
	for i, m := range owners {
		ids[i] = m.ID
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.retry(ctx, func() error {
				_, err := w.o.Client.PutBlock(ctx, m.URL, id, data)
				return err
			})
			if err != nil {
				w.failures.Add(1)
				errs[i] = fmt.Errorf("sender %s: %w", m.ID, err)
				return
			}
			w.copies.Add(1)
		}()
	}
	wg.Wait()
	err := errors.Join(errs...)
	ok := 0
	for _, e := range errs {
		if e == nil {
			ok++
		}
	}
	if ok > 0 {
		w.blocks.Add(1)
	}
	return ids, err
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

// Run writes queued blocks and follows the membership (a sender that
// joins gets every init) until ctx ends.
func (w *Writer) Run(ctx context.Context) {
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
		if err := w.PushInits(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("push inits to new senders", "err", err)
		}
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
	if _, err := w.WriteBlock(ctx, j.id, j.data); err != nil && ctx.Err() == nil {
		w.log.Warn("write block to its owners", "block", j.id, "err", err)
	}
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
