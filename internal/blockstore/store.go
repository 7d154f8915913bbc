// Package blockstore is the block store of a sender (docs/cluster.md,
// "Block store decisions"):
// blocks (fragment bytes, named by cluster.BlockID) on mass storage, and a
// RAM tier under a byte budget in front of it.
//
// Every block has a usage counter: the number of pins it holds. A pin
// belongs to (scheduler, session, block), so a repeated look-ahead does not
// count twice and the pins of one scheduler can be dropped exactly when its
// lease expires. A block whose counter is non-zero is never evicted; blocks
// with a zero counter are evicted least-recently-used when room is needed.
// A pin on a block that is not in RAM reserves its bytes at once and
// preloads it from mass storage in the background (bounded concurrency, one
// load per block however many ask). When the RAM budget is taken by pinned
// blocks, a further pin is refused (Refused): the store never over-commits.
//
// RAM blocks are sealed memfds (see memBlock): outside the Go heap, and sent
// with sendfile like a disk file.
//
// Delete removes a block from mass storage at once. An unpinned block
// leaves RAM with it; a pinned one stays in RAM, still served to the
// sessions that pinned it, takes no new pin, and leaves RAM when its last
// pin goes (DeleteDeferred): deleting never breaks a session being served.
package blockstore

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
)

// Options configure a Store.
type Options struct {
	// Backend is the mass storage (required).
	Backend Backend
	// RAMBudget is the most bytes of blocks held in RAM (required, > 0).
	RAMBudget int64
	// Preloaders bounds concurrent loads from mass storage (4 when 0).
	Preloaders int
	// NoAdmitOnMiss: a block read from mass storage for a response is not
	// loaded into RAM. By default it is (in the background, only into room
	// that unpinned blocks can make), which makes the RAM tier a plain LRU
	// cache when no scheduler pins anything.
	NoAdmitOnMiss bool
	// CopyRAM serves RAM blocks by writing them from a read-only mapping
	// of their memfd (one user-to-kernel copy per response) instead of
	// reopening the memfd for sendfile. Which is cheaper depends on the
	// kernel and the NIC; BenchmarkServe in internal/sender measures both.
	CopyRAM bool
	// LoadWait is how long a response for a block that is being loaded
	// waits for the load before it is served from mass storage (100 ms
	// when 0).
	LoadWait time.Duration
	// DefaultLease is the lease of a scheduler that pins before it renews
	// (10 s when 0).
	DefaultLease time.Duration
	// OnPreload, if set, is called after each load into RAM with its
	// duration and error (metrics).
	OnPreload func(d time.Duration, err error)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Log receives load errors (discarded when nil).
	Log *slog.Logger
}

// PinStatus is the outcome of a pin.
type PinStatus int

// Pin outcomes.
const (
	// Pinned: a new pin; the block's counter was incremented and the block
	// is in RAM or being loaded.
	Pinned PinStatus = iota + 1
	// Repeated: this (scheduler, session, block) already held a pin;
	// nothing changed.
	Repeated
	// Refused: the block is not in RAM and RAM is full of pinned blocks.
	Refused
	// Missing: the block is not in mass storage.
	Missing
)

func (p PinStatus) String() string {
	switch p {
	case Pinned:
		return "pinned"
	case Repeated:
		return "repeated"
	case Refused:
		return "refused"
	case Missing:
		return "missing"
	}
	return fmt.Sprintf("PinStatus(%d)", int(p))
}

type state int

const (
	absent   state = iota // not in RAM (kept only while pinned, after a failed load)
	loading               // bytes reserved, load in flight
	resident              // in RAM
)

type entry struct {
	id    cluster.BlockID
	size  int64
	count int // usage counter: pins held
	state state
	mem   *memBlock     // resident
	done  chan struct{} // loading: closed when the load ends
	elem  *list.Element // in the LRU list: resident and count == 0
	// deleted: the block was deleted from mass storage while pinned or
	// loading; it takes no new pin and leaves RAM when unpinned.
	deleted bool
}

func (e *entry) inRAM() bool { return e.state != absent }

type schedState struct {
	pins  map[cluster.Pin]struct{}
	lease time.Time
}

// Stats is a snapshot of a store's state and counters.
type Stats struct {
	Blocks        int   // blocks in mass storage
	Resident      int   // blocks in RAM
	RAMBytes      int64 // bytes in RAM or being loaded
	RAMBudget     int64
	PinnedBlocks  int   // blocks with a non-zero counter
	PinnedBytes   int64 // bytes of pinned blocks in RAM or being loaded
	Pins          int   // (scheduler, session, block) pins held
	Schedulers    int   // schedulers with a lease
	Refused       int64 // pins refused (RAM full of pinned blocks)
	LeaseExpiries int64 // scheduler leases that expired
	PinsExpired   int64 // pins dropped by lease expiry
	Preloads      int64 // loads into RAM completed
	PreloadErrors int64
	Evictions     int64
	OpensRAM      int64 // blocks opened from RAM
	OpensDisk     int64 // blocks opened from mass storage
}

// Store is a sender's block store.
type Store struct {
	o   Options
	sem chan struct{}
	log *slog.Logger
	wg  sync.WaitGroup

	mu           sync.Mutex
	closed       bool
	entries      map[cluster.BlockID]*entry
	lru          *list.List // unpinned resident blocks, most recent first
	lruBytes     int64
	used         int64
	pinnedBytes  int64
	pinnedBlocks int
	scheds       map[string]*schedState
	st           Stats
}

// New returns a store over o.Backend.
func New(o Options) (*Store, error) {
	if o.Backend == nil {
		return nil, errors.New("blockstore: no backend")
	}
	if o.RAMBudget <= 0 {
		return nil, fmt.Errorf("blockstore: RAM budget %d must be positive", o.RAMBudget)
	}
	if o.Preloaders <= 0 {
		o.Preloaders = 4
	}
	if o.LoadWait <= 0 {
		o.LoadWait = 100 * time.Millisecond
	}
	if o.DefaultLease <= 0 {
		o.DefaultLease = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{
		o: o, sem: make(chan struct{}, o.Preloaders), log: log,
		entries: map[cluster.BlockID]*entry{}, lru: list.New(), scheds: map[string]*schedState{},
	}, nil
}

// Backend is the store's mass storage.
func (s *Store) Backend() Backend { return s.o.Backend }

// Put stores a block in mass storage (the first copy wins; see
// Backend.PutBlock).
func (s *Store) Put(ctx context.Context, id cluster.BlockID, data []byte) (bool, error) {
	added, err := s.o.Backend.PutBlock(ctx, id, data)
	if added {
		s.mu.Lock()
		if e := s.entries[id]; e != nil {
			e.deleted = false // stored again: a RAM copy still pinned is it
		}
		s.mu.Unlock()
	}
	return added, err
}

// DeleteOutcome is the outcome of a Delete.
type DeleteOutcome int

// Delete outcomes.
const (
	// DeleteAbsent: the store held the block neither in mass storage nor
	// in RAM.
	DeleteAbsent DeleteOutcome = iota + 1
	// Deleted: the block is gone from mass storage and RAM.
	Deleted
	// DeleteDeferred: the block is gone from mass storage, but it is
	// pinned: its RAM copy serves the sessions that pinned it and is
	// dropped when the last pin goes.
	DeleteDeferred
)

func (d DeleteOutcome) String() string {
	switch d {
	case DeleteAbsent:
		return "absent"
	case Deleted:
		return "deleted"
	case DeleteDeferred:
		return "deferred"
	}
	return fmt.Sprintf("DeleteOutcome(%d)", int(d))
}

// Delete removes a block from mass storage and from RAM; a pinned block
// stays in RAM until its last pin goes (DeleteDeferred). The error is the
// backend's (ErrReadOnly for one that does not delete: then nothing
// changed).
func (s *Store) Delete(ctx context.Context, id cluster.BlockID) (DeleteOutcome, error) {
	removed, err := s.o.Backend.DeleteBlock(ctx, id)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	switch {
	case e == nil:
		if removed {
			return Deleted, nil
		}
		return DeleteAbsent, nil
	case e.count > 0:
		e.deleted = true
		return DeleteDeferred, nil
	case e.state == resident:
		s.drop(e)
	default: // loading, unpinned: dropped when the load ends
		e.deleted = true
	}
	return Deleted, nil
}

// sched returns the state of a scheduler, creating it with the default
// lease. s.mu must be held.
func (s *Store) sched(name string) *schedState {
	sc := s.scheds[name]
	if sc == nil {
		sc = &schedState{pins: map[cluster.Pin]struct{}{}, lease: s.o.Now().Add(s.o.DefaultLease)}
		s.scheds[name] = sc
	}
	return sc
}

// Renew extends a scheduler's lease to now+d: its pins live at least that
// long unless cancelled.
func (s *Store) Renew(sched string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sched(sched).lease = s.o.Now().Add(d)
}

// Pin increments the usage counter of p.Block for (sched, p.Session) unless
// that pin is held already, and makes sure the block is in RAM or being
// loaded. See PinStatus for the outcomes.
func (s *Store) Pin(ctx context.Context, sched string, p cluster.Pin) PinStatus {
	s.mu.Lock()
	if st, done := s.pinHeld(sched, p); done {
		s.mu.Unlock()
		return st
	}
	s.mu.Unlock()
	size, err := s.o.Backend.StatBlock(ctx, p.Block)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.log.Warn("stat block", "block", p.Block, "err", err)
		}
		return Missing
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[p.Block]; e != nil && e.deleted {
		// Deleted while pinned, and stored again since (the stat found it).
		e.deleted = false
	}
	if st, done := s.pinHeld(sched, p); done {
		return st
	}
	if s.closed || !s.reserve(size) {
		s.st.Refused++
		return Refused
	}
	e := s.entries[p.Block]
	if e == nil {
		e = &entry{id: p.Block}
		s.entries[p.Block] = e
	}
	e.size = size
	s.startLoad(e)
	s.addPin(s.sched(sched), p, e)
	return Pinned
}

// pinHeld settles a pin that needs no RAM: one held already, or one on a
// block in RAM or being loaded. s.mu must be held.
func (s *Store) pinHeld(sched string, p cluster.Pin) (PinStatus, bool) {
	sc := s.sched(sched)
	if _, ok := sc.pins[p]; ok {
		return Repeated, true
	}
	if e := s.entries[p.Block]; e != nil && e.inRAM() && !e.deleted {
		s.addPin(sc, p, e)
		return Pinned, true
	}
	return 0, false
}

// reserve makes room for size bytes by evicting unpinned blocks, least
// recently used first. It evicts nothing and returns false when pinned and
// loading blocks leave no room. s.mu must be held.
func (s *Store) reserve(size int64) bool {
	if s.used-s.lruBytes+size > s.o.RAMBudget {
		return false
	}
	for s.used+size > s.o.RAMBudget {
		s.drop(s.lru.Back().Value.(*entry))
		s.st.Evictions++
	}
	return true
}

// drop removes an unpinned resident block from RAM (responses that opened
// it keep their reference). s.mu must be held.
func (s *Store) drop(e *entry) {
	s.lru.Remove(e.elem)
	e.elem = nil
	s.lruBytes -= e.size
	s.used -= e.size
	e.state = absent
	e.mem.release()
	e.mem = nil
	delete(s.entries, e.id)
}

// addPin records a new pin. s.mu must be held.
func (s *Store) addPin(sc *schedState, p cluster.Pin, e *entry) {
	sc.pins[p] = struct{}{}
	e.count++
	if e.count > 1 {
		return
	}
	s.pinnedBlocks++
	if e.inRAM() {
		s.pinnedBytes += e.size
	}
	if e.elem != nil {
		s.lru.Remove(e.elem)
		e.elem = nil
		s.lruBytes -= e.size
	}
	if e.mem != nil {
		e.mem.setPooled(true)
	}
}

// dropPin decrements the counter of a pinned block. s.mu must be held.
func (s *Store) dropPin(id cluster.BlockID) {
	e := s.entries[id]
	if e == nil || e.count == 0 {
		return
	}
	e.count--
	if e.count > 0 {
		return
	}
	s.pinnedBlocks--
	switch e.state {
	case resident:
		s.pinnedBytes -= e.size
		e.elem = s.lru.PushFront(e)
		s.lruBytes += e.size
		e.mem.setPooled(false)
		if e.deleted {
			s.drop(e) // deleted from mass storage while pinned
		}
	case loading:
		s.pinnedBytes -= e.size // it joins the LRU list when loaded
	case absent:
		delete(s.entries, id)
	}
}

// Unpin removes the pin of (sched, p.Session, p.Block) (a look-ahead
// cancel) and reports whether it was held.
func (s *Store) Unpin(sched string, p cluster.Pin) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scheds[sched]
	if sc == nil {
		return false
	}
	if _, ok := sc.pins[p]; !ok {
		return false
	}
	delete(sc.pins, p)
	s.dropPin(p.Block)
	return true
}

// DropScheduler removes every pin of a scheduler and forgets it; it
// returns how many pins it held.
func (s *Store) DropScheduler(sched string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropSched(sched)
}

func (s *Store) dropSched(sched string) int {
	sc := s.scheds[sched]
	if sc == nil {
		return 0
	}
	for p := range sc.pins {
		s.dropPin(p.Block)
	}
	delete(s.scheds, sched)
	return len(sc.pins)
}

// Expired says which scheduler's lease expired and how many pins it held.
type Expired struct {
	Scheduler string
	Pins      int
}

// ExpireLeases drops the pins of every scheduler whose lease has run out
// (its pins can be released exactly because each names its scheduler) and
// returns them, sorted by name.
func (s *Store) ExpireLeases() []Expired {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Now()
	var out []Expired
	for name, sc := range s.scheds {
		if now.Before(sc.lease) {
			continue
		}
		n := s.dropSched(name)
		s.st.LeaseExpiries++
		s.st.PinsExpired += int64(n)
		out = append(out, Expired{Scheduler: name, Pins: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Scheduler < out[j].Scheduler })
	return out
}

// Count is the usage counter of a block.
func (s *Store) Count(id cluster.BlockID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[id]; e != nil {
		return e.count
	}
	return 0
}

// Resident reports whether a block is in RAM (loaded).
func (s *Store) Resident(id cluster.BlockID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	return e != nil && e.state == resident
}

// WaitLoaded waits until no load of id is in flight (or ctx ends) and
// reports whether the block is then in RAM.
func (s *Store) WaitLoaded(ctx context.Context, id cluster.BlockID) bool {
	s.mu.Lock()
	e := s.entries[id]
	var done chan struct{}
	if e != nil && e.state == loading {
		done = e.done
	}
	s.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return false
		}
	}
	return s.Resident(id)
}

// Stats returns a snapshot of the store.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	st := s.st
	st.RAMBytes = s.used
	st.RAMBudget = s.o.RAMBudget
	st.PinnedBlocks = s.pinnedBlocks
	st.PinnedBytes = s.pinnedBytes
	st.Schedulers = len(s.scheds)
	for _, sc := range s.scheds {
		st.Pins += len(sc.pins)
	}
	for _, e := range s.entries {
		if e.state == resident {
			st.Resident++
		}
	}
	s.mu.Unlock()
	st.Blocks = s.o.Backend.Blocks()
	return st
}

// startLoad reserves e's bytes (already made room for) and loads it in the
// background. s.mu must be held.
func (s *Store) startLoad(e *entry) {
	e.state = loading
	e.done = make(chan struct{})
	s.used += e.size
	if e.count > 0 {
		s.pinnedBytes += e.size
	}
	s.wg.Add(1)
	go s.load(e)
}

func (s *Store) load(e *entry) {
	defer s.wg.Done()
	s.sem <- struct{}{}
	t0 := time.Now()
	mem, err := s.fill(e.id, e.size)
	<-s.sem
	d := time.Since(t0)
	s.mu.Lock()
	done := e.done
	e.done = nil
	if err == nil && s.closed {
		mem.release()
		err = errors.New("store closed")
	}
	if err != nil {
		s.st.PreloadErrors++
		e.state = absent
		s.used -= e.size
		if e.count > 0 {
			s.pinnedBytes -= e.size
		} else {
			delete(s.entries, e.id)
		}
	} else {
		s.st.Preloads++
		e.state = resident
		e.mem = mem
		if e.count == 0 {
			e.elem = s.lru.PushFront(e)
			s.lruBytes += e.size
			if e.deleted {
				s.drop(e) // deleted from mass storage during the load
			}
		} else {
			mem.setPooled(true)
		}
	}
	s.mu.Unlock()
	close(done)
	if err != nil {
		s.log.Warn("load block into RAM", "block", e.id, "err", err)
	}
	if s.o.OnPreload != nil {
		s.o.OnPreload(d, err)
	}
}

// fill copies a block from mass storage into a new memBlock.
func (s *Store) fill(id cluster.BlockID, size int64) (*memBlock, error) {
	obj, err := s.o.Backend.OpenBlock(context.Background(), id)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	if obj.Size() != size {
		return nil, fmt.Errorf("block %s changed size: %d, was %d", id, obj.Size(), size)
	}
	var src io.Reader = io.NewSectionReader(obj, 0, size)
	if f := obj.File(); f != nil {
		src = f
	}
	return newMemBlock(id.Key(), src, size)
}

// Block is a block opened for one response. Close it when done.
type Block struct {
	ID      cluster.BlockID
	Size    int64
	FromRAM bool
	file    *os.File
	obj     Object
	mem     *memBlock // CopyRAM: the RAM block, referenced until Close
	// ram: the RAM block file was taken from (sendfile), referenced until
	// Close gives file back to it.
	ram *memBlock
}

// File is the block as an *os.File positioned at 0, when it is one (RAM
// blocks unless CopyRAM, local disk blocks): net/http sends it with
// sendfile. Nil otherwise: use ReadSeeker.
func (b *Block) File() *os.File { return b.file }

// ReadSeeker reads the block from the start: the file (sendfile), the
// mapping of a RAM block (CopyRAM), or a section of a mass-storage object.
func (b *Block) ReadSeeker() io.ReadSeeker {
	switch {
	case b.mem != nil:
		return bytes.NewReader(b.mem.data)
	case b.file != nil:
		return b.file
	}
	return io.NewSectionReader(b.obj, 0, b.Size)
}

// Close releases the block.
func (b *Block) Close() error {
	switch {
	case b.mem != nil:
		b.mem.release()
		return nil
	case b.ram != nil:
		b.ram.put(b.file)
		b.ram.release()
		return nil
	case b.obj != nil:
		return b.obj.Close()
	}
	return b.file.Close()
}

// Open opens a block for a response: from RAM when it is there (waiting up
// to LoadWait for a load in flight), else from mass storage (ErrNotFound
// when the store does not hold it). A block read from mass storage is
// admitted into RAM in the background unless NoAdmitOnMiss.
func (s *Store) Open(ctx context.Context, id cluster.BlockID) (*Block, error) {
	s.mu.Lock()
	e := s.entries[id]
	if e != nil && e.state == loading {
		done := e.done
		s.mu.Unlock()
		t := time.NewTimer(s.o.LoadWait)
		select {
		case <-done:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
		s.mu.Lock()
		e = s.entries[id]
	}
	if e != nil && e.state == resident {
		if e.elem != nil {
			s.lru.MoveToFront(e.elem)
		}
		m := e.mem
		m.refs.Add(1)
		s.st.OpensRAM++
		s.mu.Unlock()
		if s.o.CopyRAM {
			return &Block{ID: id, Size: m.size, FromRAM: true, mem: m}, nil
		}
		f, err := m.open()
		if err == nil {
			return &Block{ID: id, Size: m.size, FromRAM: true, file: f, ram: m}, nil
		}
		m.release()
		s.log.Warn("open RAM block; reading mass storage", "block", id, "err", err)
		s.mu.Lock()
		s.st.OpensRAM--
	}
	s.mu.Unlock()
	obj, err := s.o.Backend.OpenBlock(ctx, id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.st.OpensDisk++
	if !s.o.NoAdmitOnMiss && !s.closed && s.entries[id] == nil && s.reserve(obj.Size()) {
		e := &entry{id: id, size: obj.Size()}
		s.entries[id] = e
		s.startLoad(e)
	}
	s.mu.Unlock()
	return &Block{ID: id, Size: obj.Size(), obj: obj, file: obj.File()}, nil
}

// Close drops every block from RAM once the loads in flight have ended.
// Blocks opened for responses stay readable until they are closed.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, e := range s.entries {
		if e.mem != nil {
			e.mem.release()
			e.mem = nil
		}
		delete(s.entries, id)
	}
	s.lru.Init()
	s.used, s.lruBytes, s.pinnedBytes, s.pinnedBlocks = 0, 0, 0, 0
	return nil
}
