package ingest

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// ErrOverBudget means the box buffers of every push together would exceed
// the ingest memory budget (--ingest-memory): the push gets 503 with
// Retry-After.
var ErrOverBudget = errors.New("ingest memory budget exhausted")

// evictWait bounds how long a push that needs memory waits for the push
// cut to make room for it.
const evictWait = 2 * time.Second

// budget bounds the memory that the box buffers of all pushes hold
// together. When a push needs more than is left, the push that holds the
// most is cut (503), so that one client sending huge boxes cannot starve
// encoders whose fragments are small; a push that itself holds the most is
// refused instead.
type budget struct {
	limit int64
	// collect runs a garbage collection after a push was cut or refused
	// for memory, at most once per collectEvery: the buffers of that
	// push are garbage at once, and would otherwise stay resident until
	// the heap doubles.
	collect func()
	lastGC  atomic.Int64 // unix nanoseconds of the last collection

	mu    sync.Mutex
	used  int64
	holds map[*hold]struct{}
	freed chan struct{} // closed and replaced when memory is released
}

func newBudget(limit int64) *budget {
	return &budget{limit: limit, holds: map[*hold]struct{}{}, freed: make(chan struct{}), collect: debug.FreeOSMemory}
}

// collectEvery bounds the garbage collections the budget asks for.
const collectEvery = time.Second

// reclaim asks for a collection, unless one was asked for lately.
func (b *budget) reclaim() {
	now := time.Now().UnixNano()
	last := b.lastGC.Load()
	if now-last < int64(collectEvery) || !b.lastGC.CompareAndSwap(last, now) {
		return
	}
	go b.collect()
}

// Used returns the bytes held now.
func (b *budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// hold is one push's share of the budget; it implements media.Memory.
type hold struct {
	b   *budget
	n   int64  // bytes held (under b.mu)
	cut func() // aborts the push (called once, without b.mu)
	// cutting is set (under b.mu) once the push was chosen to be cut.
	cutting bool
	stop    chan struct{} // closed when it is cut
}

// open returns a new hold; cut aborts the push that uses it.
func (b *budget) open(cut func()) *hold {
	h := &hold{b: b, cut: cut, stop: make(chan struct{})}
	b.mu.Lock()
	b.holds[h] = struct{}{}
	b.mu.Unlock()
	return h
}

// Grow takes n more bytes for the push, cutting the push that holds the
// most when the budget is short (and waiting up to evictWait for it to let
// go); ErrOverBudget when the push holds the most itself or none let go.
func (h *hold) Grow(n int) error {
	b := h.b
	deadline := time.NewTimer(evictWait)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		if h.cutting {
			b.mu.Unlock()
			return fmt.Errorf("%w: this push held the most", ErrOverBudget)
		}
		if b.used+int64(n) <= b.limit {
			b.used += int64(n)
			h.n += int64(n)
			b.mu.Unlock()
			return nil
		}
		var victim *hold
		pending := false
		for o := range b.holds {
			switch {
			case o.cutting:
				pending = true
			case o != h && o.n > h.n && (victim == nil || o.n > victim.n):
				victim = o
			}
		}
		if victim == nil && !pending {
			used := b.used
			b.mu.Unlock()
			b.reclaim()
			return fmt.Errorf("%w: %d of %d bytes in use, this push holds %d and needs %d more",
				ErrOverBudget, used, b.limit, h.n, n)
		}
		if victim != nil {
			victim.cutting = true
			close(victim.stop)
		}
		freed := b.freed
		b.mu.Unlock()
		if victim != nil {
			victim.cut()
		}
		select {
		case <-freed:
		case <-h.stop:
		case <-deadline.C:
			return fmt.Errorf("%w: no memory was released within %v", ErrOverBudget, evictWait)
		}
	}
}

// Release returns n bytes.
func (h *hold) Release(n int) {
	b := h.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= int64(n)
	h.n -= int64(n)
	close(b.freed)
	b.freed = make(chan struct{})
}

// close returns whatever the push still holds and forgets it.
func (h *hold) close() {
	b := h.b
	b.mu.Lock()
	cut := h.cutting
	delete(b.holds, h)
	b.used -= h.n
	h.n = 0
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
	if cut {
		b.reclaim()
	}
}

// wasCut reports whether the push was chosen to be cut.
func (h *hold) wasCut() bool {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	return h.cutting
}
