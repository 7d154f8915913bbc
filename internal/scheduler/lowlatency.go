package scheduler

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sluice-media/sluice/internal/manifest"
	"github.com/sluice-media/sluice/internal/store"
)

// Low latency (docs/cluster.md, "Low latency"). A point whose origin keeps
// parts of its fragments in progress (a chunked push) has them in its
// index; the sessions' HLS pathway playlists and DASH MPDs then list them
// (manifest.HLSMedia, manifest.DASH), the senders serve them from RAM (the
// origin forwards every part to every sender), and this file answers the
// playlist requests that wait for them.

// llPoll is how often a blocking playlist request has the point's index
// fetched again while it waits: at most this is added to the moment a part
// is listed.
const llPoll = 50 * time.Millisecond

// llRefresh is how old a low-latency point's index may get before it is
// fetched again (Config.ViewRefresh when that is shorter): a DASH MPD lists
// a new fragment in progress at most this late.
const llRefresh = 100 * time.Millisecond

// blockingLimit is how long a blocking request may wait, in target
// durations (RFC 8216bis 6.2.5.2: three, then 503).
const blockingLimit = 3

// directives are the delivery directives of a media playlist request.
type directives struct {
	blocking  bool
	msn, part int64 // part < 0: the whole segment
	skip      bool  // a delta update (_HLS_skip=YES or v2)
}

// parseDirectives reads _HLS_msn, _HLS_part and _HLS_skip; a malformed
// number is an error to answer with 400.
func parseDirectives(q url.Values) (directives, string) {
	d := directives{part: -1}
	d.skip = q.Get("_HLS_skip") == "YES" || q.Get("_HLS_skip") == "v2"
	if m := q.Get("_HLS_msn"); m != "" {
		n, err := strconv.ParseInt(m, 10, 64)
		if err != nil || n < 0 {
			return d, "_HLS_msn must be a media sequence number"
		}
		d.blocking, d.msn = true, n
	}
	if p := q.Get("_HLS_part"); p != "" {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 0 || !d.blocking {
			return d, "_HLS_part must be a part number, with _HLS_msn"
		}
		d.part = n
	}
	return d, ""
}

// awaitPart holds a blocking playlist request until the session's listed
// view of the track holds the segment and part it asks for
// (manifest.HasPart), fetching the point's index every llPoll meanwhile,
// at most three target durations. It returns 0 when the playlist may be
// answered (it holds them, or the track is not a low-latency one: nothing
// to wait for), else the status to answer with its reason: 400 for a
// segment more than two ahead, 503 when the limit passed, 0 with an empty
// reason when the client left.
func (s *Scheduler) awaitPart(ctx context.Context, sess *session, track string, d directives) (int, string) {
	var deadline time.Time
	for {
		s.mu.Lock()
		v, _ := s.sessionView(sess, s.now())
		s.mu.Unlock()
		t, ok := v.Track(track)
		if !ok || len(t.Frags) == 0 || !manifest.LowLatency(v, t) {
			return 0, ""
		}
		if manifest.TooFarAhead(t, d.msn) {
			return http.StatusBadRequest, "_HLS_msn is more than two segments ahead of the playlist"
		}
		if manifest.HasPart(t, d.msn, d.part) {
			return 0, ""
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(time.Duration(blockingLimit*manifest.TargetDuration(t)) * time.Second)
		}
		if !now.Before(deadline) {
			return http.StatusServiceUnavailable, "the playlist did not reach that segment or part in three target durations"
		}
		if !s.nextView(ctx, sess.point, deadline) {
			return 0, ""
		}
	}
}

// nextView waits for the point's next index: from its watch (watchPoint),
// or fetched llPoll after the last fetch. It reports false when ctx ended.
func (s *Scheduler) nextView(ctx context.Context, ps *pointState, deadline time.Time) bool {
	s.mu.Lock()
	if !ps.watching {
		s.mu.Unlock()
		return s.refreshSoon(ctx, ps)
	}
	if ps.changed == nil {
		ps.changed = make(chan struct{})
	}
	ch := ps.changed
	s.mu.Unlock()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
		return false
	}
	return true
}

// watchPoint keeps a live point's index current with w (one watch in
// flight: a change at the origin — a fragment, or a part of a low-latency
// stream — is installed the moment it happens, and the new blocks are
// reserved at once), while the point is live and used (sessions, or a
// request in the last 30 s). A failed watch is retried after 500 ms; meanwhile the
// periodic fetches take over.
func (s *Scheduler) watchPoint(ctx context.Context, ps *pointState, w Watcher) {
	tag := ""
	for {
		s.mu.Lock()
		if ctx.Err() != nil || !ps.live || (len(ps.sessions) == 0 && s.now().Sub(ps.used.load()) > 30*time.Second) {
			ps.watching = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		t0 := time.Now()
		v, t, changed, err := w.Watch(ctx, ps.name, tag)
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			s.log.Debug("watch of a low-latency point", "point", ps.name, "err", err)
			s.mu.Lock()
			ps.watching = false // the periodic fetches take over meanwhile
			s.mu.Unlock()
			select {
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
			}
			s.mu.Lock()
			if ps.watching || ctx.Err() != nil {
				s.mu.Unlock()
				return // another watch started meanwhile
			}
			ps.watching = true
			s.mu.Unlock()
			tag = ""
			continue
		}
		s.mu.Lock()
		if changed {
			tag = t
			s.installView(ps, v, nil)
		} else {
			ps.fetched = s.now() // still current
		}
		s.mu.Unlock()
		if !changed && time.Since(t0) < watchWait/2 {
			// An origin that does not wait (one from before the long
			// poll) answers at once: poll it instead of spinning.
			select {
			case <-time.After(llRefresh):
			case <-ctx.Done():
			}
		}
	}
}

// refreshSoon fetches a point's index again, llPoll after the last fetch,
// or waits for the fetch in flight. It reports false when ctx ended.
func (s *Scheduler) refreshSoon(ctx context.Context, ps *pointState) bool {
	for {
		s.mu.Lock()
		if ps.fetching {
			done := ps.done
			s.mu.Unlock()
			select {
			case <-done:
				return true
			case <-ctx.Done():
				return false
			}
		}
		wait := llPoll - s.now().Sub(ps.fetched)
		if wait <= 0 {
			ps.fetching = true
			ps.done = make(chan struct{})
			s.mu.Unlock()
			s.fetchView(ctx, ps)
			return ctx.Err() == nil
		}
		s.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

// partsComplete reports whether the track keeps the parts of its fragment
// that starts at start, complete: every sender holds them, so the block is
// servable everywhere before its owners confirm it (listedView holds
// nothing back for it).
func partsComplete(t store.TrackView, start int64) bool {
	for _, pf := range t.Parts {
		if pf.Start == start {
			return pf.Complete
		}
	}
	return false
}
