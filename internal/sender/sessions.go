package sender

import (
	"errors"
	"fmt"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
)

// Session validity. A player's token names its session (cluster.Token); the
// sender accepts it while the session is valid here:
//
//   - granted: a scheduler granted the session (cluster.Batch.Grants) and
//     the grant has not run out (cluster.Batch.GrantTTL after the last
//     renewal) nor been ended (cluster.Batch.Ends);
//   - new: the sender has no grant for it, but the session opened less than
//     Options.SessionGrace ago (its grant may still be on the way: a
//     player can ask before the scheduler's next batch);
//   - restarted: the sender itself started less than Options.SessionGrace
//     ago, and has lost the grants it held (every scheduler grants all its
//     sessions again within a batch of seeing BatchResult.Boot change).
//
// Anything else is refused with 403: a session that ended, or whose
// scheduler stopped renewing it for a whole GrantTTL without another
// scheduler adopting it.

// session is what the sender knows of one session.
type session struct {
	sched   string    // the scheduler that named it last (reports go there)
	seen    time.Time // last batch that named it
	point   string    // granted: the point its tokens are for
	expires time.Time // granted: valid until then; zero: never granted
	renewed time.Time // granted: when the grant was last renewed
	ttl     time.Duration
	active  time.Time // last client request with its token
	offered time.Time // last time it was reported as an orphan
	// sharedFrom is the scheduler (base URL) whose latest playlist answer
	// for it was its point's shared one (servePlaylist); "": none.
	sharedFrom string
}

// errSession is the cause of a refused session (wrapped into
// cluster.ErrToken for the 403).
var errSession = errors.New("session")

// checkSession tells whether a session is valid here for point at now, and
// notes the request as the session's activity.
func (s *Sender) checkSession(id, point string, now time.Time) error {
	s.mu.Lock()
	ss := s.sessions[id]
	if ss != nil && !ss.expires.IsZero() {
		defer s.mu.Unlock()
		switch {
		case ss.point != point:
			return fmt.Errorf("%w: session granted for another publishing point", cluster.ErrToken)
		case !now.Before(ss.expires):
			return fmt.Errorf("%w: %w expired (no renewal from a scheduler)", cluster.ErrToken, errSession)
		}
		ss.active = now
		return nil
	}
	ended := s.ended[id]
	s.mu.Unlock()
	if !ended.IsZero() {
		return fmt.Errorf("%w: %w ended", cluster.ErrToken, errSession)
	}
	if now.Sub(s.started) < s.o.SessionGrace {
		return nil
	}
	info, err := cluster.ParseSessionID(s.o.Secret, id)
	if err != nil {
		return fmt.Errorf("%w: %w", cluster.ErrToken, err)
	}
	if age := now.Sub(info.Opened); age < s.o.SessionGrace && age > -s.o.SessionGrace {
		return nil
	}
	return fmt.Errorf("%w: unknown %w", cluster.ErrToken, errSession)
}

// maxGrantTTL caps the lifetime of a grant a scheduler may ask for.
const maxGrantTTL = 24 * time.Hour

// applyGrants takes a batch's grants and ends. s.mu must be held.
func (s *Sender) applyGrants(b cluster.Batch, now time.Time) {
	ttl := b.GrantTTL
	switch {
	case ttl <= 0:
		ttl = s.o.DefaultGrantTTL
	case ttl > maxGrantTTL:
		ttl = maxGrantTTL
	}
	for _, g := range b.Grants {
		if g.Session == "" {
			continue
		}
		ss := s.sessions[g.Session]
		if ss == nil {
			ss = &session{}
			s.sessions[g.Session] = ss
		}
		ss.sched, ss.seen = b.Scheduler, now
		ss.point, ss.ttl, ss.renewed = g.Point, ttl, now
		ss.expires = now.Add(ttl)
		delete(s.ended, g.Session)
	}
	if len(b.Grants) > 0 {
		s.m.grants.Add(float64(len(b.Grants)))
	}
	for _, id := range b.Ends {
		ss := s.sessions[id]
		if ss == nil || ss.sched != b.Scheduler {
			// Another scheduler adopted it since: not this one's to end.
			continue
		}
		delete(s.sessions, id)
		if len(s.ended) < maxEnded {
			s.ended[id] = now
		}
	}
}

// maxEnded bounds the ended sessions remembered (so that their tokens are
// refused at once even within SessionGrace); maxOrphans the orphans offered
// in one batch answer.
const (
	maxEnded   = 100_000
	maxOrphans = 1000
)

// orphans returns the sessions to offer scheduler sched for adoption:
// valid here, used by a player lately, and either attributed to a scheduler
// whose lease has run out or overdue for a renewal (no grant for two
// thirds of their TTL), each offered at most once a second. s.mu must be
// held.
func (s *Sender) orphans(sched string, now time.Time) []cluster.Grant {
	var out []cluster.Grant
	for id, ss := range s.sessions {
		if ss.expires.IsZero() || !now.Before(ss.expires) || now.Sub(ss.offered) < time.Second {
			continue
		}
		if ss.active.IsZero() || now.Sub(ss.active) > max(ss.ttl, 30*time.Second) {
			continue
		}
		leased := now.Before(s.leases[ss.sched])
		overdue := now.Sub(ss.renewed) > 2*ss.ttl/3
		if leased && !overdue {
			continue
		}
		if leased && ss.sched != sched && now.Sub(ss.renewed) < ss.ttl-ss.ttl/10 {
			// Its scheduler is alive and may still renew it: only it is
			// asked until the grant is nearly out.
			continue
		}
		ss.offered = now
		out = append(out, cluster.Grant{Session: id, Point: ss.point})
		if len(out) == maxOrphans {
			break
		}
	}
	if len(out) > 0 {
		s.m.orphans.Add(float64(len(out)))
	}
	return out
}

// forgetSessions drops sessions whose grant ran out more than SessionGrace
// ago (until then their tokens are refused as expired, not as unknown), or
// that were never granted and have not been named for SessionIdle, and
// ended sessions remembered for longer than SessionGrace.
func (s *Sender) forgetSessions(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ss := range s.sessions {
		if ss.expires.IsZero() {
			if now.Sub(ss.seen) > s.o.SessionIdle {
				delete(s.sessions, id)
			}
			continue
		}
		if now.Sub(ss.expires) > s.o.SessionGrace {
			delete(s.sessions, id)
		}
	}
	for id, at := range s.ended {
		if now.Sub(at) > s.o.SessionGrace {
			delete(s.ended, id)
		}
	}
	for id, until := range s.leases {
		if now.Sub(until) > time.Hour {
			delete(s.leases, id)
			delete(s.schedURLs, id)
		}
	}
}

// validSessions counts the granted sessions that have not expired.
func (s *Sender) validSessions() int {
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ss := range s.sessions {
		if now.Before(ss.expires) {
			n++
		}
	}
	return n
}
