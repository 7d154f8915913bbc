package scheduler

import (
	"encoding/json"
	"net/url"
	"strings"
)

// steeringManifest is a content steering manifest (HLS and DASH share the
// keys; ETSI TS 103 998, RFC 8216bis 7.2).
type steeringManifest struct {
	Version  int      `json:"VERSION"`
	TTL      int      `json:"TTL"`
	Priority []string `json:"PATHWAY-PRIORITY"`
}

// steering answers a session's steering manifest (GET
// /s/<point>/~<session>/steering.json): its pathways in its order of
// preference, the senders the scheduler holds for dead left out (the
// direct pathway first when owner-set names are configured: DNS leaves a
// dead owner out of their answers). When no sender of the session is live
// they are all listed, since a list without them would leave the player
// nowhere to go. The player's current pathway (_HLS_pathway, _DASH_pathway)
// is noted: the session's blocks are reserved at its sender first. A
// steering request renews the session like a manifest reload, so a paused
// player keeps it.
func (s *Scheduler) steering(sess *session, q url.Values) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.steeringLocked(sess, q), nil
}

// steeringLocked is steering with s.mu held. The manifest depends only on
// which of the session's senders are live: it is made once per change of
// the live set (Scheduler.liveVer) and kept with the session.
func (s *Scheduler) steeringLocked(sess *session, q url.Values) []byte {
	if member, move := s.steeringPathway(sess, q); move {
		sess.pathway = member
		s.markDirty(sess)
	}
	if sess.steering != nil && sess.steeringVer == s.liveVer {
		return sess.steering
	}
	m := steeringManifest{Version: 1, TTL: max(int(s.cfg.SteeringTTL.Seconds()), 1)}
	if s.cfg.OwnerSetURL != "" {
		m.Priority = append(m.Priority, directPathway)
	}
	var dead []string
	for _, p := range sess.pathways {
		if p.member == "" {
			continue
		}
		if sc := s.senders[p.member]; sc != nil && sc.up {
			m.Priority = append(m.Priority, pathwayID(p.label))
		} else {
			dead = append(dead, pathwayID(p.label))
		}
	}
	if len(m.Priority) == 0 {
		m.Priority = dead
	}
	b, _ := json.Marshal(m) // a struct of ints and strings
	sess.steering, sess.steeringVer = b, s.liveVer
	return b
}

// steeringPathway is the sender whose pathway a steering request says the
// player uses (_HLS_pathway or _DASH_pathway; the last of a list), and
// whether that moves the session off the pathway it was on. s.mu must be
// held, shared will do.
func (s *Scheduler) steeringPathway(sess *session, q url.Values) (member string, move bool) {
	cur := q.Get("_HLS_pathway")
	if cur == "" {
		cur = q.Get("_DASH_pathway")
	}
	cur = strings.Trim(cur, `"`)
	if i := strings.LastIndexByte(cur, ','); i >= 0 {
		cur = cur[i+1:]
	}
	for _, p := range sess.pathways {
		if cur == pathwayID(p.label) {
			member = p.member
		}
	}
	return member, member != sess.pathway && (member != "" || cur == directPathway)
}

// steeringMoves reports whether a steering request moves its session to
// another pathway. s.mu must be held, shared will do.
func (s *Scheduler) steeringMoves(sess *session, q url.Values) bool {
	_, move := s.steeringPathway(sess, q)
	return move
}
