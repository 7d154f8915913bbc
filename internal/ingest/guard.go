package ingest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/sluice-media/sluice/internal/media"
)

// Errors of a push that makes too little progress (408).
var (
	// errNoProgress: no header, fragment or end of stream for the idle time.
	errNoProgress = errors.New("no progress")
	// errTooSlow: a box arrived slower than the minimum receive rate.
	errTooSlow = errors.New("receive rate too low")
)

// parserState is what a guard watches of the parser reading its body.
type parserState interface {
	InBox() bool
	Events() int64
}

// guard wraps the body of a push and enforces, with read deadlines (so that
// a push that sends nothing is cut too):
//
//   - progress: a header, a fragment or the end of the stream at least
//     every idle (a push that trickles bytes into a box that never
//     completes, or sends only padding, is cut);
//   - the minimum receive rate: while a box is arriving, at least rate
//     bytes/s in each window (tumbling windows from the box's first byte).
//     Between boxes the rate is not judged: an encoder waits for its next
//     fragment, however sparse its track.
//
// It also aborts the push when the memory budget cuts it.
type guard struct {
	r      io.Reader
	rc     *http.ResponseController
	idle   time.Duration
	rate   int64 // bytes/s; 0: not judged
	window time.Duration
	state  parserState // set once the parser exists (attach)
	hold   *hold       // the push's memory, nil without a budget

	events   int64
	progress time.Time // the last event, or the start
	inBox    bool
	winStart time.Time // the current rate window
	winBytes int64     // bytes received in it

	mu  sync.Mutex // cut and the read deadline
	cut bool
}

func newGuard(r io.Reader, rc *http.ResponseController, idle time.Duration, rate int64, window time.Duration) *guard {
	return &guard{r: r, rc: rc, idle: idle, rate: rate, window: window, progress: time.Now()}
}

// attach makes the guard follow the parser reading its body and account
// the parser's buffers to its hold.
func (g *guard) attach(p *media.StreamParser) {
	g.state = p
	if g.hold != nil {
		p.SetMemory(g.hold)
	}
}

// abort cuts the push now (the memory budget chose it): the pending read
// returns at once.
func (g *guard) abort() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cut = true
	_ = g.rc.SetReadDeadline(time.Now())
}

// observe updates the progress and the rate window from the parser.
func (g *guard) observe(now time.Time) {
	if g.state == nil {
		return
	}
	if e := g.state.Events(); e != g.events {
		g.events, g.progress = e, now
	}
	in := g.state.InBox()
	if in && !g.inBox {
		g.winStart, g.winBytes = now, 0
	}
	g.inBox = in
}

// check returns why the push must be cut at now, or nil. Rate windows
// that have elapsed are judged and left behind.
func (g *guard) check(now time.Time) error {
	if g.idle > 0 && now.Sub(g.progress) >= g.idle {
		return fmt.Errorf("%w: no header, fragment or end of stream for %v", errNoProgress, g.idle)
	}
	if !g.inBox || g.rate <= 0 || g.window <= 0 {
		return nil
	}
	need := g.need()
	for now.Sub(g.winStart) >= g.window {
		if g.winBytes < need {
			return fmt.Errorf("%w: %d bytes of a box arrived in %v, the minimum is %d bytes/s", errTooSlow, g.winBytes, g.window, g.rate)
		}
		g.winStart, g.winBytes = g.winStart.Add(g.window), 0
	}
	return nil
}

func (g *guard) need() int64 { return int64(float64(g.rate) * g.window.Seconds()) }

// deadline is the earliest time at which, if no byte arrives, check fails.
func (g *guard) deadline() time.Time {
	var d time.Time
	if g.idle > 0 {
		d = g.progress.Add(g.idle)
	}
	if g.inBox && g.rate > 0 && g.window > 0 {
		w := g.winStart.Add(g.window)
		if g.winBytes >= g.need() {
			w = w.Add(g.window) // this window passes; the next one, empty, fails
		}
		if d.IsZero() || w.Before(d) {
			d = w
		}
	}
	return d
}

func (g *guard) Read(p []byte) (int, error) {
	now := time.Now()
	g.observe(now)
	if err := g.check(now); err != nil {
		return 0, err
	}
	g.mu.Lock()
	if g.cut {
		g.mu.Unlock()
		return 0, fmt.Errorf("%w: this push held the most", ErrOverBudget)
	}
	_ = g.rc.SetReadDeadline(g.deadline())
	g.mu.Unlock()
	n, err := g.r.Read(p)
	now = time.Now()
	if g.inBox {
		// Bytes belong to the window in which they arrived.
		if cerr := g.check(now); cerr != nil && err == nil {
			err = cerr
		}
		g.winBytes += int64(n)
	}
	if err == nil || errors.Is(err, io.EOF) {
		return n, err
	}
	var nerr interface{ Timeout() bool }
	if errors.As(err, &nerr) && nerr.Timeout() {
		g.mu.Lock()
		cut := g.cut
		g.mu.Unlock()
		if cut {
			return n, fmt.Errorf("%w: this push held the most", ErrOverBudget)
		}
		if cerr := g.check(now); cerr != nil {
			return n, cerr
		}
		return n, err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return n, fmt.Errorf("%w: %v", errClientGone, err)
	}
	return n, err
}
