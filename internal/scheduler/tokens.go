package scheduler

import (
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/membership"
)

// Sessions, tokens and pathways.
//
// A session ID (cluster.NewSessionID) carries the time it opened and the
// labels of its pathways: the live senders when it opened (at most
// Config.Pathways, in an order of its own, so that sessions spread their
// requests over the senders), each a pathway of its manifests (a DASH
// BaseURL with serviceLocation, a copy of every HLS variant with its
// PATHWAY-ID) and of its steering manifest. A scheduler that adopts the
// session recovers the same pathways from the ID, so its manifests list the
// same URLs. The token (cluster.Sign of the session and the point) is the
// same all the session's life: it is valid at a sender while the session
// holds a grant there (Config.TokenTTL, renewed every third of it).

// maxKnown bounds the senders remembered by ID (for the pathways of
// sessions that name a sender which left the set).
const maxKnown = 10000

// remember records a member's client URL and pathway label, so that the
// pathway of a session keeps its URL after the sender left. s.mu must be
// held.
func (s *Scheduler) remember(m membership.Member) {
	if _, ok := s.known[m.ID]; !ok && len(s.known) >= maxKnown {
		return
	}
	u := m.URL
	if s.cfg.ClientURL != nil {
		u = s.cfg.ClientURL(m)
	}
	s.known[m.ID] = strings.TrimSuffix(u, "/")
	s.byLabel[cluster.PathwayLabel(m.ID)] = m.ID
}

// newSessionID makes the ID of a new session opened at now, with the live
// senders (at most Config.Pathways of them, shuffled) as its pathways.
// s.mu must be held.
func (s *Scheduler) newSessionID(now time.Time) (string, error) {
	ids := slices.Clone(s.liveIDs)
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	ids = ids[:min(len(ids), s.cfg.Pathways)]
	labels := make([]string, len(ids))
	for i, id := range ids {
		labels[i] = cluster.PathwayLabel(id)
	}
	return cluster.NewSessionID(s.cfg.Secret, now, labels)
}

// pathwayID is the PATHWAY-ID (HLS) and serviceLocation (DASH) of a
// sender's pathway: "p" and its label.
func pathwayID(label string) string { return "p" + label }

// directPathway is the PATHWAY-ID of the HLS pathway whose segment URLs
// name each block's owner set (Config.OwnerSetURL).
const directPathway = "direct"

// pathway is one pathway of a session: a sender's label and ID ("" when no
// sender known here has that label).
type pathway struct {
	label, member string
}

// sessionPathways maps the labels of a session ID to senders. s.mu must be
// held.
func (s *Scheduler) sessionPathways(labels []string) []pathway {
	out := make([]pathway, len(labels))
	for i, l := range labels {
		out[i] = pathway{label: l, member: s.byLabel[l]}
	}
	return out
}

// listedPathways are the pathways a session's manifests list: those with a
// known sender, in label order (the order does not matter to players, and
// sessions with the same senders then share one rendering; the session's
// preference is its default pathway and the steering manifest's
// priority).
func listedPathways(ps []pathway) []pathway {
	out := make([]pathway, 0, len(ps))
	for _, p := range ps {
		if p.member != "" {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b pathway) int { return strings.Compare(a.label, b.label) })
	return out
}

// pathwaysKey names a set of listed pathways in a rendering key.
func pathwaysKey(ps []pathway) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.label)
		b.WriteByte(',')
	}
	return b.String()
}
