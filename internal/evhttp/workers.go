package evhttp

import (
	"sync"
	"time"
)

// workers runs the request goroutines. A goroutine that served a request
// waits for the next one for a while instead of exiting: its stack has
// grown to what the handler chain needs (8 KB for a fragment response), so
// a warm worker saves the new goroutine and the stack copies of every
// request (~5 % of a fragment response's CPU). At most max wait; a worker
// idle for longer than idleFor exits (trim).
type workers struct {
	mu      sync.Mutex
	idle    []*worker // the most recently used last (taken first: warm)
	max     int
	idleFor time.Duration
}

type worker struct {
	ch    chan func()
	since time.Time
}

// run runs f on an idle worker, or on a new goroutine.
func (p *workers) run(f func()) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.ch <- f
		return
	}
	p.mu.Unlock()
	go p.loop(&worker{ch: make(chan func(), 1)}, f)
}

func (p *workers) loop(w *worker, f func()) {
	for f != nil {
		f()
		p.mu.Lock()
		if len(p.idle) >= p.max {
			p.mu.Unlock()
			return
		}
		w.since = time.Now()
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		f = <-w.ch // nil: trimmed
	}
}

// trim ends the workers idle since before now − idleFor (the oldest are
// first in the list).
func (p *workers) trim(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for n < len(p.idle) && now.Sub(p.idle[n].since) > p.idleFor {
		p.idle[n].ch <- nil
		n++
	}
	if n > 0 {
		p.idle = append(p.idle[:0], p.idle[n:]...)
	}
}

// idleCount is the number of waiting workers (tests).
func (p *workers) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}
