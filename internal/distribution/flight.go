package distribution

import (
	"context"
	"errors"
	"net/http"
	"sync"
)

// errUpstream means no origin produced a response.
var errUpstream = errors.New("no origin answered")

// flight is one upstream fetch that any number of client requests for the
// same URL share: they see the status and headers once known and the body
// as it arrives, so a crowd of misses costs one upstream request.
type flight struct {
	key string

	mu      sync.Mutex
	status  int
	header  http.Header
	length  int64 // upstream Content-Length of a 200, -1 when unknown
	body    []byte
	started bool // status and header are known
	done    bool
	err     error
	// notify is closed (and replaced) at every change.
	notify chan struct{}
	// stale is the cached entry the fetch revalidates, if any; result is
	// the entry made from the response once complete.
	stale  *entry
	result *entry
}

func newFlight(key string, stale *entry) *flight {
	return &flight{key: key, stale: stale, length: -1, notify: make(chan struct{})}
}

// changed must be called with f.mu held.
func (f *flight) changed() {
	close(f.notify)
	f.notify = make(chan struct{})
}

// start publishes the status and headers.
func (f *flight) start(status int, h http.Header, length int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.header, f.started = status, h, true
	if length >= 0 {
		f.length = length
		if length <= 64<<20 {
			f.body = make([]byte, 0, length)
		}
	}
	f.changed()
}

// write appends body bytes.
func (f *flight) write(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.body = append(f.body, p...)
	f.changed()
}

// size is the number of body bytes received so far.
func (f *flight) size() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.body))
}

// finish ends the flight; err is nil when the whole body arrived.
func (f *flight) finish(result *entry, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done, f.err, f.result = true, err, result
	f.changed()
}

// state is a snapshot of a flight for a waiter.
type state struct {
	started bool
	status  int
	header  http.Header
	length  int64
	body    []byte // the bytes so far (never modified later)
	done    bool
	err     error
	result  *entry
	notify  <-chan struct{}
}

func (f *flight) snapshot() state {
	f.mu.Lock()
	defer f.mu.Unlock()
	return state{started: f.started, status: f.status, header: f.header, length: f.length,
		body: f.body[:len(f.body):len(f.body)], done: f.done, err: f.err, result: f.result, notify: f.notify}
}

// wait blocks until cond holds for the flight's state or ctx ends.
func (f *flight) wait(ctx context.Context, cond func(state) bool) (state, error) {
	for {
		s := f.snapshot()
		if cond(s) {
			return s, nil
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return s, ctx.Err()
		}
	}
}

// group holds the flights in progress, one per key.
type group struct {
	mu sync.Mutex
	m  map[string]*flight
}

// join returns the flight in progress for key, or, when there is none and
// fresh (called under the group lock) finds no fresh cache entry, a new
// flight that the caller (leader) must run. A fresh entry found then is
// returned instead: it was stored by a flight that just ended.
func (g *group) join(key string, fresh func() *entry, stale *entry) (f *flight, leader bool, e *entry) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.m[key]; f != nil {
		return f, false, nil
	}
	if e := fresh(); e != nil {
		return nil, false, e
	}
	if g.m == nil {
		g.m = map[string]*flight{}
	}
	f = newFlight(key, stale)
	g.m[key] = f
	return f, true, nil
}

// leave removes a finished flight (after its entry is in the cache).
func (g *group) leave(f *flight) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m[f.key] == f {
		delete(g.m, f.key)
	}
}

// inFlight is the number of flights in progress.
func (g *group) inFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.m)
}
