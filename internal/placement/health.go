package placement

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/sluice-media/sluice/internal/membership"
)

// memberHealth is the writer's view of one sender: whether it answers,
// and when to probe it again if not.
type memberHealth struct {
	down    bool
	since   time.Time
	retryAt time.Time
	backoff time.Duration
	probing bool
}

// unreachable reports whether err means the sender did not answer at all:
// nobody listens (refused), the connection broke (reset, EOF), or no answer
// came in time. An HTTP error status is an answer.
func unreachable(err error) bool {
	if err == nil {
		return false
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EHOSTUNREACH,
		syscall.ENETUNREACH, syscall.EPIPE, context.DeadlineExceeded, io.EOF, io.ErrUnexpectedEOF} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// put runs one request to m bounded by the writer's timeout; if m does
// not answer it leaves the targets at once (markDown).
func (w *Writer) put(ctx context.Context, m membership.Member, f func(ctx context.Context) error) error {
	pctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	err := f(pctx)
	if err != nil && ctx.Err() == nil && unreachable(err) {
		w.markDown(m, err)
	}
	return err
}

// isDown reports whether the writer has taken a sender out of its targets.
func (w *Writer) isDown(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.health[id]
	return h != nil && h.down
}

// markDown takes a sender that did not answer out of the targets of the
// writes; the probe loop asks it again after ProbeMin, backing off to
// ProbeMax.
func (w *Writer) markDown(m membership.Member, err error) {
	now := time.Now()
	w.mu.Lock()
	h := w.health[m.ID]
	if h == nil {
		h = &memberHealth{}
		w.health[m.ID] = h
	}
	if h.down {
		w.mu.Unlock()
		return
	}
	h.down, h.since, h.backoff = true, now, w.o.ProbeMin
	h.retryAt = now.Add(h.backoff)
	w.mu.Unlock()
	w.downs.Add(1)
	w.log.Warn("sender does not answer: out of the writer's targets until it does (its blocks go to the next owners)",
		"sender", m.ID, "url", m.URL, "err", err)
}

// markUp puts a sender that answered a probe back among the targets and
// asks for a rebalance: it gets what it missed while it was down.
func (w *Writer) markUp(m membership.Member) {
	w.mu.Lock()
	h := w.health[m.ID]
	if h == nil || !h.down {
		w.mu.Unlock()
		return
	}
	down := time.Since(h.since)
	delete(w.health, m.ID)
	w.mu.Unlock()
	w.log.Info("sender answers again: back in the writer's targets", "sender", m.ID, "down_for", down.Round(time.Millisecond))
	w.kickRebalance()
}

// forgetLeft drops the health of senders no longer in the set: one that
// comes back is a new member (and the set change brings a rebalance).
func (w *Writer) forgetLeft(ms []membership.Member) {
	in := make(map[string]bool, len(ms))
	for _, m := range ms {
		in[m.ID] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.health {
		if !in[id] {
			delete(w.health, id)
		}
	}
}

// liveMembers returns the members of the set the writer has not taken out.
func (w *Writer) liveMembers() []membership.Member {
	ms := w.o.Members.Members()
	out := ms[:0]
	for _, m := range ms {
		if !w.isDown(m.ID) {
			out = append(out, m)
		}
	}
	return out
}

// LiveSenders returns how many senders of the set the writer writes to.
func (w *Writer) LiveSenders() int { return len(w.liveMembers()) }

// probeLoop asks senders that stopped answering again, with a backoff per
// sender from ProbeMin doubling to ProbeMax, until ctx ends.
func (w *Writer) probeLoop(ctx context.Context) {
	t := time.NewTicker(min(w.o.ProbeMin, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		for _, m := range w.o.Members.Members() {
			w.mu.Lock()
			h := w.health[m.ID]
			due := h != nil && h.down && !h.probing && !now.Before(h.retryAt)
			if due {
				h.probing = true
			}
			w.mu.Unlock()
			if due {
				go w.probe(ctx, m)
			}
		}
	}
}

// probe asks one sender for its stats.
func (w *Writer) probe(ctx context.Context, m membership.Member) {
	pctx, cancel := context.WithTimeout(ctx, min(w.o.Timeout, 2*time.Second))
	_, err := w.o.Client.Stats(pctx, m.URL)
	cancel()
	if err == nil {
		w.markUp(m)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if h := w.health[m.ID]; h != nil {
		h.probing = false
		h.backoff = min(2*h.backoff, w.o.ProbeMax)
		h.retryAt = time.Now().Add(h.backoff)
	}
}
