package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/membership"
)

// op is a queued request to a sender.
type op uint8

const (
	opLook op = iota + 1
	opSend
	opCancel
)

func (o op) String() string {
	switch o {
	case opLook:
		return "lookahead"
	case opSend:
		return "send"
	case opCancel:
		return "cancel"
	}
	return "none"
}

func opOf(r role) op {
	if r == roleSend {
		return opSend
	}
	return opLook
}

// pendOp is a request waiting for the next batch.
type pendOp struct {
	op   op
	st   *pinState // nil for cancels
	sess *session  // nil for cancels
}

// reservation is a look-ahead or send request that left in a batch, with
// the session and reservation state it was made for (applyResult takes
// the answer without looking them up again).
type reservation struct {
	pin  cluster.Pin
	sess *session
	st   *pinState
}

// senderConn is this scheduler's side of one sender: the queued requests,
// its liveness and a worker that posts the batches.
type senderConn struct {
	m     membership.Member
	up    bool
	gone  bool      // left the membership
	fails int       // consecutive failed batches
	okAt  time.Time // last successful batch
	epoch int       // incarnation of this scheduler at the sender
	pend  map[cluster.Pin]pendOp
	// jsonBatches: the sender predates the binary batch encoding (it
	// answered one with JSON's syntax error); only its worker reads it.
	jsonBatches bool
	sends       int // reservations held, by role
	looks       int
	wake        chan struct{}
	posted      time.Time // last batch sent (s.now)
	// postedAt is when the last batch left (wall clock, for coalescing);
	// urgent lets the next batch leave at once.
	postedAt time.Time
	urgent   bool
	urgentCh chan struct{}
	running  bool // the worker runs
	stats    cluster.SenderStats
	statsAt  time.Time
	// Session grants and ends for the next batch, the time of the next
	// renewal of every grant, the sender's boot ID (BatchResult.Boot), and
	// the live set version and time of the placement it got last.
	grants   map[string]struct{}
	ends     map[string]struct{}
	renewAt  time.Time
	boot     string
	placed   uint64
	placedAt time.Time
}

func newSenderConn(m membership.Member) *senderConn {
	return &senderConn{m: m, up: true, pend: map[cluster.Pin]pendOp{}, wake: make(chan struct{}, 1), urgentCh: make(chan struct{}, 1),
		grants: map[string]struct{}{}, ends: map[string]struct{}{}}
}

// poke wakes the worker.
func (sc *senderConn) poke() {
	select {
	case sc.wake <- struct{}{}:
	default:
	}
}

// hurry wakes the worker and lets its next batch leave before the
// timeslot is over (set sc.urgent too, under s.mu).
func (sc *senderConn) hurry() {
	sc.poke()
	select {
	case sc.urgentCh <- struct{}{}:
	default:
	}
}

// count adjusts the reservation counters.
func (sc *senderConn) count(r role, d int) {
	if r == roleSend {
		sc.sends += d
	} else {
		sc.looks += d
	}
}

// queue adds a request to the next batch; a later request for the same pin
// replaces an earlier one that has not left.
func (sc *senderConn) queue(p cluster.Pin, o op, st *pinState, sess *session) {
	sc.pend[p] = pendOp{o, st, sess}
}

// schedulerID is the ID this scheduler uses at the sender: its own ID, with
// the incarnation appended once the sender has been lost and found again.
func (s *Scheduler) schedulerID(sc *senderConn) string {
	if sc.epoch == 0 {
		return s.cfg.ID
	}
	return s.cfg.ID + "." + strconv.Itoa(sc.epoch)
}

// takeBatch builds the next batch for a sender from its queue, or returns
// nil when there is nothing to send and the lease is not due. force builds
// one whenever something is queued. s.mu must be held.
func (s *Scheduler) takeBatch(sc *senderConn, now time.Time, force bool) (*cluster.Batch, []reservation) {
	if !sc.up {
		return nil, nil
	}
	placement := sc.placed != s.liveVer || now.Sub(sc.placedAt) >= s.cfg.Lease/3
	if len(sc.pend) == 0 && len(sc.grants) == 0 && len(sc.ends) == 0 && !placement {
		// Nothing queued: still post to renew the lease, and every
		// timeslot while reservations are held, to collect sent reports.
		since := now.Sub(sc.posted)
		held := sc.sends+sc.looks > 0
		if force || (since < s.cfg.Lease/3 && (!held || since < s.cfg.Tick/2)) {
			return nil, nil
		}
	}
	b := &cluster.Batch{Scheduler: s.schedulerID(sc), Lease: s.cfg.Lease, URL: s.cfg.URL, GrantTTL: s.cfg.TokenTTL}
	if placement {
		b.Placement = s.placement()
		sc.placed, sc.placedAt = s.liveVer, now
	}
	for id := range sc.grants {
		if len(b.Grants) == maxBatchGrants {
			break
		}
		delete(sc.grants, id)
		if sess := s.sessions[id]; sess != nil && !sess.closed {
			b.Grants = append(b.Grants, cluster.Grant{Session: id, Point: sess.point.name})
		}
	}
	for id := range sc.ends {
		if len(b.Ends) == maxBatchGrants {
			break
		}
		delete(sc.ends, id)
		b.Ends = append(b.Ends, id)
	}
	var reserved []reservation
	n := 0
	for p, o := range sc.pend {
		if n == maxBatch {
			break // the rest goes in the next batch, right after this one
		}
		n++
		delete(sc.pend, p)
		switch o.op {
		case opLook:
			b.LookAhead = append(b.LookAhead, p)
			reserved = append(reserved, reservation{p, o.sess, o.st})
		case opSend:
			b.Send = append(b.Send, p)
			reserved = append(reserved, reservation{p, o.sess, o.st})
		case opCancel:
			b.Cancel = append(b.Cancel, p)
		}
		if o.st != nil {
			o.st.posted = true
		}
	}
	sc.posted = now
	return b, reserved
}

// maxBatch bounds the requests in one batch, so that a burst (a sender
// back, thousands of sessions moving at once) goes out in pieces that each
// stay well within the batch timeout.
const maxBatch = 4096

// maxBatchGrants bounds the grants (and the ends) of one batch.
const maxBatchGrants = 20000

// placement is the live set as senders redirect over it. s.mu must be held.
func (s *Scheduler) placement() *cluster.Placement {
	p := &cluster.Placement{Replicas: s.cfg.Replicas}
	for _, id := range s.liveIDs {
		p.Senders = append(p.Senders, cluster.PlacedSender{ID: id, URL: s.senderURL(id)})
	}
	return p
}

// grantAll queues a grant of every session to a sender and sets its next
// renewal. s.mu must be held.
func (s *Scheduler) grantAll(sc *senderConn, now time.Time) {
	for id, sess := range s.sessions {
		if !sess.edge && !sess.closed {
			sc.grants[id] = struct{}{}
		}
	}
	sc.renewAt = now.Add(s.cfg.TokenTTL / 3)
}

// grantSession queues a grant of a session to every live sender. s.mu
// must be held.
func (s *Scheduler) grantSession(sess *session) {
	if sess.edge {
		return
	}
	for _, sc := range s.senders {
		if sc.up {
			sc.grants[sess.id] = struct{}{}
			delete(sc.ends, sess.id)
		}
	}
}

// endSession queues the end of a session at every live sender: its token
// is refused from then on. s.mu must be held.
func (s *Scheduler) endSession(sess *session) {
	for _, sc := range s.senders {
		delete(sc.grants, sess.id)
		if sc.up {
			sc.ends[sess.id] = struct{}{}
		}
	}
}

// worker posts the batches of one sender, one at a time, and probes it
// while it is down.
func (s *Scheduler) worker(ctx context.Context, sc *senderConn) {
	statsT := time.Now()
	var nextProbe time.Time
	for {
		var probe <-chan time.Time
		s.mu.Lock()
		down, gone := !sc.up, sc.gone
		s.mu.Unlock()
		if gone {
			return
		}
		if down {
			// Probe once a second, however often the worker is woken
			// meanwhile (every timeslot pokes it).
			if nextProbe.IsZero() {
				nextProbe = time.Now().Add(time.Second)
			}
			probe = time.After(time.Until(nextProbe))
		} else {
			nextProbe = time.Time{}
		}
		select {
		case <-ctx.Done():
			return
		case <-sc.wake:
		case <-probe:
			nextProbe = time.Now().Add(time.Second)
			s.probe(ctx, sc)
			continue
		}
		if down {
			continue
		}
		if s.cfg.StatsInterval > 0 && time.Since(statsT) >= s.cfg.StatsInterval {
			statsT = time.Now()
			go s.readStats(ctx, sc)
		}
		// Coalesce: at most one batch per timeslot, so that what a burst
		// of sent reports and manifest requests queues goes out together
		// (a new session's first reservations, which its player waits
		// for, and the rest of an overfull batch go at once).
		s.mu.Lock()
		if d := time.Until(sc.postedAt.Add(s.cfg.Tick)); d > 0 && !sc.urgent {
			s.mu.Unlock()
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			case <-sc.urgentCh:
				t.Stop()
			}
			s.mu.Lock()
		}
		sc.urgent = false
		b, reserved := s.takeBatch(sc, s.now(), false)
		if b != nil {
			sc.postedAt = time.Now()
		}
		s.mu.Unlock()
		if b == nil {
			continue
		}
		t0 := time.Now()
		// A batch in flight when Run ends is finished (within the batch
		// timeout) and its answer applied: cut off, the sender might still
		// take its reservations after the final cancels (shutdown).
		res, err := s.post(context.WithoutCancel(ctx), sc, b)
		la := "no"
		if len(b.LookAhead) > 0 {
			la = "yes"
		}
		s.m.batchSeconds.WithLabelValues(la).Observe(time.Since(t0).Seconds())
		s.mu.Lock()
		s.applyResult(sc, b, reserved, res, err)
		more, pending := len(sc.pend) >= maxBatch, len(sc.pend) > 0
		sc.urgent = sc.urgent || more
		s.mu.Unlock()
		if more {
			sc.hurry()
		} else if pending {
			sc.poke()
		}
	}
}

// post sends one batch.
func (s *Scheduler) post(ctx context.Context, sc *senderConn, b *cluster.Batch) (*cluster.BatchResult, error) {
	res, legacy, err := s.postAs(ctx, sc, b, sc.jsonBatches)
	if legacy {
		// A sender from before the binary encoding (a rolling upgrade):
		// JSON from now on, and this batch again.
		s.log.Info("sender takes JSON batches only", "sender", sc.m.ID)
		sc.jsonBatches = true
		res, _, err = s.postAs(ctx, sc, b, true)
	}
	return res, err
}

// legacyBatchAnswer is how a sender that decodes batches as JSON only
// answers the binary encoding (its magic, "SLB1", is no JSON).
const legacyBatchAnswer = "invalid character 'S' looking for beginning of value"

// postAs posts a batch in the binary encoding or, with asJSON, in JSON.
// legacy reports a binary batch that the sender refused as malformed JSON.
func (s *Scheduler) postAs(ctx context.Context, sc *senderConn, b *cluster.Batch, asJSON bool) (res *cluster.BatchResult, legacy bool, err error) {
	ctype := cluster.BatchContentType
	var body []byte
	if asJSON {
		ctype = "application/json"
		if body, err = json.Marshal(b); err != nil {
			return nil, false, err
		}
	} else {
		body = cluster.AppendBatch(nil, b)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.BatchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sc.m.URL+"/internal/v1/batch", bytes.NewReader(body))
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := s.client.Do(req) // signed by its transport
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		legacy = !asJSON && resp.StatusCode == http.StatusBadRequest && strings.Contains(string(msg), legacyBatchAnswer)
		return nil, legacy, fmt.Errorf("sender %s: batch: status %d: %s", sc.m.ID, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	if asJSON {
		var r cluster.BatchResult
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxBatchResult)).Decode(&r); err != nil {
			return nil, false, fmt.Errorf("sender %s: batch result: %w", sc.m.ID, err)
		}
		return &r, false, nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != cluster.BatchContentType {
		return nil, false, fmt.Errorf("sender %s: batch result of type %q, want %s", sc.m.ID, ct, cluster.BatchContentType)
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(max(resp.ContentLength, 512), maxBatchResult)))
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxBatchResult+1)); err != nil {
		return nil, false, fmt.Errorf("sender %s: batch result: %w", sc.m.ID, err)
	}
	if buf.Len() > maxBatchResult {
		return nil, false, fmt.Errorf("sender %s: batch result larger than %d bytes", sc.m.ID, maxBatchResult)
	}
	r, err := cluster.DecodeBatchResult(buf.Bytes())
	if err != nil {
		return nil, false, fmt.Errorf("sender %s: batch result: %w", sc.m.ID, err)
	}
	return &r, false, nil
}

// maxBatchResult bounds a sender's answer to a batch.
const maxBatchResult = 64 << 20

// applyResult takes a batch's answer: refused and missing reservations move
// to the next owner, the others are confirmed, sent reports advance the
// sessions. A failed batch counts against the sender. s.mu must be held.
func (s *Scheduler) applyResult(sc *senderConn, b *cluster.Batch, reserved []reservation, res *cluster.BatchResult, err error) {
	if err != nil {
		s.m.batches.WithLabelValues(sc.m.ID, "error").Inc()
		sc.fails++
		// A refused connection means nobody listens: the sender is gone.
		// Timeouts may as well be this process or the machine being
		// overloaded: only three in a row over three batch timeouts take a
		// sender out, and never the last one that answered.
		refused := errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
		slow := sc.fails >= 3 && s.now().Sub(sc.okAt) >= 3*s.cfg.BatchTimeout && len(s.liveIDs) > 1
		if sc.up && (refused || slow) {
			s.log.Warn("sender unreachable: leaving the live set", "sender", sc.m.ID, "err", err)
			s.senderDown(sc)
		} else if sc.up {
			// The batch may or may not have been applied: send its
			// reservations again with the next one (repeats do not count
			// twice), and its cancels too.
			for _, p := range b.Cancel {
				if _, ok := sc.pend[p]; !ok {
					sc.pend[p] = pendOp{op: opCancel}
				}
			}
			for _, g := range b.Grants {
				sc.grants[g.Session] = struct{}{}
			}
			for _, id := range b.Ends {
				if _, ok := sc.grants[id]; !ok {
					sc.ends[id] = struct{}{}
				}
			}
			if b.Placement != nil {
				sc.placed = 0
			}
			for _, r := range reserved {
				if r.sess.closed || r.st.dropped {
					continue
				}
				if _, ok := sc.pend[r.pin]; !ok {
					sc.pend[r.pin] = pendOp{opOf(r.st.role), r.st, r.sess}
				}
			}
		}
		return
	}
	s.m.batches.WithLabelValues(sc.m.ID, "ok").Inc()
	now := s.now()
	sc.fails, sc.okAt = 0, now
	if res.Boot != "" && sc.boot != res.Boot {
		if sc.boot != "" {
			// The sender restarted and lost its grants.
			s.log.Info("sender restarted: granting every session again", "sender", sc.m.ID)
			s.grantAll(sc, now)
		}
		sc.boot = res.Boot
	}
	for _, g := range res.Orphans {
		s.adoptOrphan(g, now)
	}
	refused := map[cluster.Pin]bool{}
	for _, p := range res.Refused {
		refused[p] = true
	}
	missing := map[cluster.BlockID]bool{}
	for _, bl := range res.Missing {
		missing[bl] = true
	}
	touched := map[*session]bool{}
	for _, r := range reserved {
		sess, st, p := r.sess, r.st, r.pin
		if sess.closed || st.dropped {
			continue // dropped meanwhile (a new reservation of the block is another one)
		}
		k := pinKey{sc.m.ID, p.Block}
		touched[sess] = true
		ps := sess.point
		switch {
		case refused[p] || missing[p.Block]:
			reason, backoff := "refused", s.cfg.RefuseBackoff
			if missing[p.Block] && !refused[p] {
				// Not written to this sender yet (live) or lost: ask
				// again soon.
				reason, backoff = "missing", 2*s.cfg.Tick
				if at, ok := ps.unconfirmed[p.Block]; ok && ps.live && now.Sub(at) < freshWindow {
					// A new block still on its way from the origin.
					backoff = min(freshRetry, backoff)
					s.retryFresh()
				}
				before := s.pointSender(ps, p.Block)
				mark(&ps.missing, k, now)
				ps.holdVer++
				if s.pointSender(ps, p.Block) != before {
					ps.stateVer++ // shared renderings name another sender
				}
			}
			s.m.refused.WithLabelValues(reason).Inc()
			s.dropPin(sess, k, false)
			until := now.Add(backoff)
			sess.refuse[k] = until
			if sess.refuseNext.IsZero() || until.Before(sess.refuseNext) {
				sess.refuseNext = until
			}
			s.markDirty(sess)
			if reason == "refused" {
				// Refused for want of RAM: the sender holds the block.
				s.confirm(ps, k, now)
			}
		default:
			st.acked = true
			s.confirm(ps, k, now)
		}
	}
	for _, r := range res.Sent {
		s.onSent(r)
	}
	for _, r := range res.Reloads {
		s.onReload(r, now)
	}
	for sess := range touched {
		s.notifyIfReady(sess)
	}
	if len(touched) > 0 || len(res.Sent) > 0 {
		s.kick()
	}
}

// confirm records that a sender holds a block. Near the live edge (a block
// not confirmed yet, or one some owner lacks) it is remembered, so that
// manifests send players to an owner known to hold it. s.mu must be held.
func (s *Scheduler) confirm(ps *pointState, k pinKey, now time.Time) {
	// Most confirmations are of blocks this sender confirmed lately and
	// that are neither unconfirmed nor reported missing: renewing the
	// time changes nothing a manifest or pointSender depends on.
	if at, ok := ps.has[k]; ok && now.Sub(at) < time.Minute {
		if _, m := ps.missing[k]; !m {
			if _, u := ps.unconfirmed[k.block]; !u {
				ps.has[k] = now
				return
			}
		}
	}
	before := s.pointSender(ps, k.block)
	defer func() {
		if s.pointSender(ps, k.block) != before {
			ps.stateVer++ // shared renderings name another sender
		}
	}()
	_, unconfirmed := ps.unconfirmed[k.block]
	edge := unconfirmed
	if _, ok := ps.missing[k]; ok {
		delete(ps.missing, k)
		ps.holdVer++
		edge = true
	}
	if !edge && (len(ps.has) > 0 || len(ps.missing) > 0) {
		for _, o := range s.ownersOf(ps, k.block) {
			if ps.lacks(o, k.block, now) || ps.holds(o, k.block, now) {
				edge = true
				break
			}
		}
	}
	if unconfirmed {
		delete(ps.unconfirmed, k.block)
		ps.holdVer++
	}
	if edge {
		mark(&ps.has, k, now)
	}
}

// notifyIfReady wakes the requests waiting for a new session's first
// reservations once none is outstanding. s.mu must be held.
func (s *Scheduler) notifyIfReady(sess *session) {
	if len(sess.waiters) == 0 || sess.dirty {
		return
	}
	for _, e := range sess.pins {
		if !e.p.acked {
			return
		}
	}
	for _, ch := range sess.waiters {
		close(ch)
	}
	sess.waiters = nil
}

// senderDown takes a sender out of the live set: its reservations are
// forgotten (it cannot be told), and every session is reconciled against
// the remaining owners. s.mu must be held.
func (s *Scheduler) senderDown(sc *senderConn) {
	sc.up = false
	s.m.senderDown.WithLabelValues(sc.m.ID).Inc()
	clear(sc.pend)
	clear(sc.grants)
	clear(sc.ends)
	for _, sess := range s.sessions {
		for i := len(sess.pins) - 1; i >= 0; i-- {
			if k := sess.pins[i].k; k.sender == sc.m.ID {
				s.dropPin(sess, k, false)
			}
		}
		s.notifyIfReady(sess)
	}
	sc.sends, sc.looks = 0, 0
	s.setLive()
	s.kick()
}

// probe checks whether a down sender answers again; if it does, it rejoins
// the live set under a new incarnation of this scheduler.
func (s *Scheduler) probe(ctx context.Context, sc *senderConn) {
	if _, err := s.fetchStats(ctx, sc); err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sc.gone || sc.up {
		return
	}
	s.log.Info("sender answers again: back in the live set", "sender", sc.m.ID)
	sc.up, sc.fails = true, 0
	sc.epoch++
	sc.posted = time.Time{}
	s.grantAll(sc, s.now())
	s.setLive()
	s.kick()
}

// readStats mirrors a sender's stats into the metrics.
func (s *Scheduler) readStats(ctx context.Context, sc *senderConn) {
	st, err := s.fetchStats(ctx, sc)
	if err != nil {
		return
	}
	s.m.senderStats(sc.m.ID, st)
	s.mu.Lock()
	sc.stats, sc.statsAt = st, time.Now()
	var ram, all int64
	for _, o := range s.senders {
		if o.up {
			ram += o.stats.SendsRAM
			all += o.stats.SendsRAM + o.stats.SendsDisk
		}
	}
	s.mu.Unlock()
	if all > 0 {
		s.m.ramHitRatio.Set(float64(ram) / float64(all))
	}
}

func (s *Scheduler) fetchStats(ctx context.Context, sc *senderConn) (cluster.SenderStats, error) {
	var st cluster.SenderStats
	ctx, cancel := context.WithTimeout(ctx, s.cfg.BatchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sc.m.URL+"/internal/v1/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := s.client.Do(req) // signed by its transport
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("sender %s: stats: status %d", sc.m.ID, resp.StatusCode)
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st)
	return st, err
}

// SenderStats returns the last stats read from each sender in the live set.
func (s *Scheduler) SenderStats() map[string]cluster.SenderStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]cluster.SenderStats{}
	for id, sc := range s.senders {
		if sc.up && !sc.statsAt.IsZero() {
			out[id] = sc.stats
		}
	}
	return out
}

// watchMembers follows the membership.
func (s *Scheduler) watchMembers(ctx context.Context) {
	for {
		ch := s.members.Changed()
		ms := s.members.Members()
		s.mu.Lock()
		s.syncMembers(ms)
		for _, sc := range s.senders {
			s.startWorker(ctx, sc)
		}
		s.mu.Unlock()
		s.kick()
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// syncMembers adds new members and removes departed ones. s.mu must be held.
func (s *Scheduler) syncMembers(ms []membership.Member) {
	seen := map[string]bool{}
	for _, m := range ms {
		seen[m.ID] = true
		s.remember(m)
		sc := s.senders[m.ID]
		if sc == nil {
			sc = newSenderConn(m)
			// A sender that left and came back may still hold what the
			// old incarnation reserved: use a new one.
			sc.epoch = s.epochs[m.ID]
			s.senders[m.ID] = sc
			s.grantAll(sc, s.now())
			continue
		}
		if sc.m.URL != m.URL {
			sc.m.URL = m.URL
		}
	}
	for id, sc := range s.senders {
		if seen[id] {
			continue
		}
		if sc.up {
			s.senderDown(sc)
		}
		sc.gone = true
		s.epochs[id] = sc.epoch + 1
		sc.poke()
		delete(s.senders, id)
		s.m.forgetSender(id)
	}
	s.setLive()
}

// startWorker starts a sender's worker once. s.mu must be held.
func (s *Scheduler) startWorker(ctx context.Context, sc *senderConn) {
	if sc.running {
		return
	}
	sc.running = true
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		s.worker(ctx, sc)
	}()
}
