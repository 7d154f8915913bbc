package scheduler

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/manifest"
	"github.com/sluice-media/sluice/internal/store"
)

// role is what a reservation asks of a sender.
type role uint8

const (
	roleNone role = iota
	roleLook      // look-ahead: pin and preload
	roleSend      // send request: stage for the session (also pins)
)

// pinKey names one reservation of a session: a block at a sender.
type pinKey struct {
	sender string
	block  cluster.BlockID
}

// pinSet is a session's reservations. A session holds a few dozen at most
// (its regions times the replicas), so a list searched from the end,
// comparing a block's start first, costs less than hashing keys of three
// strings on every lookup, insert and delete.
type pinSet []pinEntry

// pinEntry is one reservation of a pinSet.
type pinEntry struct {
	k pinKey
	p *pinState
}

// index is the position of k in the set, or -1.
func (ps pinSet) index(k pinKey) int {
	for i := len(ps) - 1; i >= 0; i-- {
		e := &ps[i].k
		if e.block.Start == k.block.Start && e.block.Track == k.block.Track && e.sender == k.sender && e.block.Point == k.block.Point {
			return i
		}
	}
	return -1
}

// get returns the reservation of k, or nil.
func (ps pinSet) get(k pinKey) *pinState {
	if i := ps.index(k); i >= 0 {
		return ps[i].p
	}
	return nil
}

// put adds a reservation whose key is not in the set.
func (ps *pinSet) put(k pinKey, p *pinState) {
	*ps = append(*ps, pinEntry{k, p})
}

// remove deletes the entry at i; the last entry takes its place, so a
// loop that removes entries while it walks the set goes from the end.
func (ps *pinSet) remove(i int) {
	last := len(*ps) - 1
	(*ps)[i] = (*ps)[last]
	(*ps)[last] = pinEntry{}
	*ps = (*ps)[:last]
}

// pinState is a reservation this scheduler holds (or has queued).
type pinState struct {
	role   role
	acked  bool   // the sender took it
	posted bool   // it left in a batch
	wanted uint64 // the latest reconcile (Scheduler.reconciles) that wanted it
	// dropped: no longer the session's (dropPin); an answer to a batch
	// that carried it is ignored.
	dropped bool
}

// kindPos is a session's position in one media kind.
type kindPos struct {
	track string    // active track; "" while unknown
	next  float64   // media time (s) of the next block the player fetches
	known bool      // next comes from the player (a sent report)
	at    time.Time // time of the report next comes from
}

// session is one player session, or the edge session of a live point
// (edge): it reserves the two newest blocks of every track at their
// primary, which preloads what players at the live edge fetch next and
// tells the scheduler when a new block has reached the senders.
type session struct {
	id     string
	edge   bool
	point  *pointState
	opened time.Time
	seen   stamp // last request or report (written under the read lock too)
	// start is the deep-link position of an on-demand session (s), or -1.
	start  float64
	kinds  map[string]*kindPos
	pins   pinSet
	sent   map[cluster.BlockID]time.Time // blocks sent within the retry period
	refuse map[pinKey]time.Time          // sender refused or lacked the block until
	// sentNext and refuseNext are the first expiry of an entry of sent
	// (its time + RetryPeriod) and of refuse; zero when they are empty.
	sentNext, refuseNext time.Time
	// token is the session's token (cluster.Sign), the same all its life.
	token string
	// pathways are its senders' pathways, in its order of preference (from
	// the session ID); pathway is the sender whose pathway the player said
	// it uses (steering requests), "" before it did or on the direct one.
	pathways []pathway
	pathway  string
	// listed are the pathways its manifests list (listedPathways) and
	// pathwaysKey their name in a rendering key, fixed with pathways.
	listed      []pathway
	pathwaysKey string
	// steering is its steering manifest as of live set steeringVer.
	steering    []byte
	steeringVer uint64

	unpinned int  // region blocks no owner took, in the last reconcile
	played   bool // a sender reported a block sent to the session

	dirty    bool
	closed   bool
	deadline time.Time
	waiters  []chan struct{}
}

// kind returns the position of a kind, creating it.
func (sess *session) kind(k string) *kindPos {
	kp := sess.kinds[k]
	if kp == nil {
		kp = &kindPos{}
		sess.kinds[k] = kp
	}
	return kp
}

// trackIndex is one track of a point's cached index.
type trackIndex struct {
	id        string
	kind      string
	timescale uint32
	frags     []store.FragRef // listable fragments (start >= 0)
	// owners of each fragment (trackOwners) as of live set ownersVer.
	owners    [][]string
	ownersVer uint64
}

// seconds converts a time of the track to seconds.
func (t *trackIndex) seconds(x int64) float64 {
	if t.timescale == 0 {
		return 0
	}
	return float64(x) / float64(t.timescale)
}

// at returns the index of the first fragment that ends after pos (s):
// the fragment that holds pos, or the first after it.
func (t *trackIndex) at(pos float64) int {
	x := int64(pos*float64(t.timescale)) + 1
	return sort.Search(len(t.frags), func(i int) bool { return t.frags[i].End() > x })
}

// pointState is the cached index of a publishing point and its sessions.
type pointState struct {
	name    string
	view    store.View
	live    bool
	fetched time.Time
	// lowLatency: a track of the live point has parts (lowlatency.go).
	// A live point's index is watched (watching, with a Watcher
	// timeline), else fetched every ViewRefresh (llRefresh for a
	// low-latency one).
	lowLatency bool
	watching   bool
	// changed is closed when the next index is installed (nil: nobody
	// waits; changedChan makes one).
	changed  chan struct{}
	used     stamp // last request (written under the read lock too)
	err      error
	fetching bool
	done     chan struct{} // closed when the fetch in flight ends
	tracks   map[string]*trackIndex
	kinds    []string            // kinds present, in view order
	byKind   map[string][]string // kind -> track IDs, view order
	duration float64             // span of the listable fragments (s)
	sessions map[*session]struct{}
	edge     *session                     // the edge session while the point is live and watched
	owners   map[cluster.BlockID][]string // placement cache for liveVer
	// missing: (sender, block) a sender reported it does not hold (yet),
	// since when; unconfirmed: blocks new in the live index that no sender
	// confirmed yet, since when. Manifests point a block at an owner not
	// known to lack it; live manifests hold back, at their end, blocks no
	// sender confirmed yet (at most 2 s) and blocks every owner lacks (at
	// most 10 s).
	missing     map[pinKey]time.Time
	unconfirmed map[cluster.BlockID]time.Time
	// unconfirmedAt is when the newest block of unconfirmed appeared.
	unconfirmedAt time.Time
	// has: (sender, block) near the live edge that a sender confirmed it
	// holds (a reservation taken or refused for want of RAM), since when.
	has      map[pinKey]time.Time
	stateVer uint64 // bumped when missing or has changes
	// templates are the shared renderings (by tplKey).
	templates map[tplKey]*template
	// shared is the view sessions without a deep-link position list
	// (sessionView); viewVer counts the views installed, holdVer the
	// changes of missing and unconfirmed.
	shared           *sharedView
	viewVer, holdVer uint64
	// listed: the base URL each block was first listed with on the direct
	// pathway (listedURL), listedInits each track's header; blocks that
	// left the index are forgotten.
	listed      map[cluster.BlockID]string
	listedInits map[string]string
}

// stamp is a time that reloads served under the read lock renew
// (session.seen, pointState.used): Unix nanoseconds, 0 for the zero time.
type stamp struct{ ns atomic.Int64 }

func (t *stamp) store(v time.Time) {
	if v.IsZero() {
		t.ns.Store(0)
		return
	}
	t.ns.Store(v.UnixNano())
}

func (t *stamp) load() time.Time {
	if n := t.ns.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// mark records a key in one of the point's hold-back sets.
func mark[K comparable](m *map[K]time.Time, k K, at time.Time) {
	if *m == nil {
		*m = map[K]time.Time{}
	}
	(*m)[k] = at
}

// Hold-back limits of live manifests.
const (
	unconfirmedHold = 10 * time.Second
	missingHold     = 10 * time.Second
)

// holds reports whether a sender confirmed lately that it holds a block.
func (ps *pointState) holds(sender string, b cluster.BlockID, now time.Time) bool {
	at, ok := ps.has[pinKey{sender, b}]
	return ok && now.Sub(at) < time.Minute
}

// lacks reports whether a sender reported lately that it lacks a block.
func (ps *pointState) lacks(sender string, b cluster.BlockID, now time.Time) bool {
	at, ok := ps.missing[pinKey{sender, b}]
	return ok && now.Sub(at) < missingHold
}

// setView installs a new index and reports whether it changed. With
// confirm, the fragments a live index gained are unconfirmed until a sender
// takes a reservation for them.
func (ps *pointState) setView(v store.View, now time.Time, confirm bool) bool {
	var last map[string]int64
	if confirm && ps.tracks != nil {
		last = map[string]int64{}
		for id, t := range ps.tracks {
			if n := len(t.frags); n > 0 {
				last[id] = t.frags[n-1].Start
			}
		}
	}
	changed := ps.tracks == nil || len(v.Tracks) != len(ps.view.Tracks) || v.Ended != ps.view.Ended
	if !changed {
		for i, t := range v.Tracks {
			o := ps.view.Tracks[i]
			if t.ID != o.ID || len(t.Frags) != len(o.Frags) || t.Ended != o.Ended ||
				(len(t.Frags) > 0 && (t.Frags[0].Start != o.Frags[0].Start || t.Frags[len(t.Frags)-1].Start != o.Frags[len(o.Frags)-1].Start)) {
				changed = true
				break
			}
		}
	}
	ps.view = v
	ps.viewVer++
	ps.live = manifest.Live(v)
	ps.lowLatency = false
	for _, t := range v.Tracks {
		if manifest.LowLatency(v, t) {
			ps.lowLatency = true
		}
	}
	if !changed {
		return false
	}
	ps.tracks = map[string]*trackIndex{}
	ps.byKind = map[string][]string{}
	ps.kinds = ps.kinds[:0]
	var from, to float64
	first := true
	for _, t := range v.Tracks {
		i := 0
		for i < len(t.Frags) && t.Frags[i].Start < 0 {
			i++
		}
		ti := &trackIndex{id: t.ID, kind: t.Info.Kind, timescale: t.Info.Timescale, frags: t.Frags[i:]}
		ps.tracks[t.ID] = ti
		if _, ok := ps.byKind[ti.kind]; !ok {
			ps.kinds = append(ps.kinds, ti.kind)
		}
		ps.byKind[ti.kind] = append(ps.byKind[ti.kind], t.ID)
		if n := len(ti.frags); n > 0 && ti.timescale > 0 {
			a, b := ti.seconds(ti.frags[0].Start), ti.seconds(ti.frags[n-1].End())
			if first || a < from {
				from = a
			}
			if first || b > to {
				to = b
			}
			first = false
		}
	}
	ps.duration = to - from
	if len(ps.owners) > 4*ps.blocks()+1024 {
		clear(ps.owners)
	}
	if last != nil && ps.live {
		for id, t := range ps.tracks {
			l, ok := last[id]
			for i := len(t.frags) - 1; i >= 0 && ok && t.frags[i].Start > l; i-- {
				mark(&ps.unconfirmed, cluster.BlockID{Point: ps.name, Track: id, Start: t.frags[i].Start}, now)
				ps.unconfirmedAt = now
				ps.holdVer++
			}
		}
	}
	for k, at := range ps.missing {
		if now.Sub(at) > time.Minute {
			delete(ps.missing, k)
			ps.holdVer++
		}
	}
	for b, at := range ps.unconfirmed {
		if now.Sub(at) > time.Minute {
			delete(ps.unconfirmed, b)
			ps.holdVer++
		}
	}
	for k, at := range ps.has {
		if now.Sub(at) > time.Minute {
			delete(ps.has, k)
		}
	}
	for b := range ps.listed {
		if t := ps.tracks[b.Track]; t == nil || len(t.frags) == 0 || b.Start < t.frags[0].Start {
			delete(ps.listed, b)
		}
	}
	return true
}

// blocks is the number of listable fragments of all tracks.
func (ps *pointState) blocks() int {
	n := 0
	for _, t := range ps.tracks {
		n += len(t.frags)
	}
	return n
}

// trackOwners is ownersOf for the i-th fragment of a track, kept with the
// track's index until the live set changes. s.mu must be held.
func (s *Scheduler) trackOwners(ps *pointState, t *trackIndex, i int) []string {
	if t.ownersVer != s.liveVer || len(t.owners) != len(t.frags) {
		t.owners = make([][]string, len(t.frags))
		t.ownersVer = s.liveVer
	}
	if o := t.owners[i]; o != nil {
		return o
	}
	o := s.ownersOf(ps, cluster.BlockID{Point: ps.name, Track: t.id, Start: t.frags[i].Start})
	t.owners[i] = o
	return o
}

// ownersOf returns the owners of a block among the live senders, primary
// first (cached until the live set changes). s.mu must be held.
func (s *Scheduler) ownersOf(ps *pointState, b cluster.BlockID) []string {
	if o, ok := ps.owners[b]; ok {
		return o
	}
	o := cluster.Owners(b.Key(), s.liveIDs, s.cfg.Replicas)
	if ps.owners == nil {
		ps.owners = map[cluster.BlockID][]string{}
	}
	ps.owners[b] = o
	return o
}

// position returns the media time (s) of the next block of kind k the
// session will fetch. s.mu must be held.
func (s *Scheduler) position(sess *session, k string) float64 {
	if kp := sess.kinds[k]; kp != nil && kp.known {
		return kp.next
	}
	// Another kind's position is the best guess (the player fetches all
	// kinds in step).
	for _, kp := range sess.kinds {
		if kp.known {
			return kp.next
		}
	}
	ps := sess.point
	ids := ps.byKind[k]
	if len(ids) == 0 {
		return 0
	}
	t := ps.tracks[ids[0]]
	if len(t.frags) == 0 {
		return 0
	}
	if !ps.live {
		if sess.start >= 0 {
			return sess.start
		}
		return t.seconds(t.frags[0].Start)
	}
	i := max(len(t.frags)-s.cfg.LiveStart, 0)
	return t.seconds(t.frags[i].Start)
}

// want is one reservation a session should hold (desired).
type want struct {
	k pinKey
	r role
}

// wants is the list desired fills: a handful of entries, searched by
// scanning (cheaper than hashing a block's strings into a map).
type wants []want

// add records a reservation, keeping the stronger role of a repeat.
func (ws *wants) add(k pinKey, r role) {
	for i := range *ws {
		if (*ws)[i].k == k {
			(*ws)[i].r = max((*ws)[i].r, r)
			return
		}
	}
	*ws = append(*ws, want{k, r})
}

// desired computes the reservations a session should hold now into out.
// s.mu must be held.
func (s *Scheduler) desired(sess *session, now time.Time, out *wants) {
	if s.cfg.NoPins || len(s.liveIDs) == 0 {
		return
	}
	ps := sess.point
	if sess.edge {
		if !ps.live {
			return
		}
		for _, t := range ps.tracks {
			for i := max(len(t.frags)-2, 0); i < len(t.frags); i++ {
				b := cluster.BlockID{Point: ps.name, Track: t.id, Start: t.frags[i].Start}
				for _, o := range s.trackOwners(ps, t, i) {
					k := pinKey{o, b}
					if until, ok := sess.refuse[k]; ok && now.Before(until) {
						continue
					}
					out.add(k, roleLook)
					break
				}
			}
		}
		return
	}
	full := 1 + s.cfg.AltSend + s.cfg.LookAhead
	var order [cluster.MaxPathways]string
	for _, k := range ps.kinds {
		pos := s.position(sess, k)
		kp := sess.kinds[k]
		active := ""
		if kp != nil {
			active = kp.track
		}
		for _, id := range ps.byKind[k] {
			n := s.cfg.Guard
			if active == "" || active == id {
				n = full
			}
			t := ps.tracks[id]
			i0 := t.at(pos)
			for j := 0; j < n && i0+j < len(t.frags); j++ {
				b := cluster.BlockID{Point: ps.name, Track: id, Start: t.frags[i0+j].Start}
				owners := servingOrder(order[:0], s.trackOwners(ps, t, i0+j), sess.pathway)
				r, copies := roleLook, 1
				if n == full {
					switch {
					case j == 0:
						r = roleSend
					case j <= s.cfg.AltSend:
						r, copies = roleSend, 2
					}
				}
				placed := 0
				for _, o := range owners {
					if placed == copies {
						break
					}
					k := pinKey{o, b}
					if until, ok := sess.refuse[k]; ok && now.Before(until) {
						continue
					}
					out.add(k, r)
					placed++
				}
				if placed == 0 && len(owners) > 0 {
					sess.unpinned++
				}
			}
		}
	}
}

// servingOrder is the order of a block's owners in which the senders serve
// it to a session whose player fetches on the pathway of sender pathway:
// that sender when it owns the block, else (it redirects) the first owner.
// A reordered list is appended to buf.
func servingOrder(buf, owners []string, pathway string) []string {
	if pathway == "" || len(owners) < 2 || owners[0] == pathway {
		return owners
	}
	for i, o := range owners {
		if o == pathway {
			out := append(buf, o)
			out = append(out, owners[:i]...)
			return append(out, owners[i+1:]...)
		}
	}
	return owners
}

// reconcile brings a session's reservations to what it should hold:
// new ones are queued, a role upgrade (look-ahead to send) is queued, and
// those no longer wanted are cancelled — at once, or for a block sent to the
// session, once its retry period is over. s.mu must be held.
func (s *Scheduler) reconcile(sess *session, now time.Time) {
	want := s.scratch[:0]
	sess.unpinned = 0
	s.desired(sess, now, &want)
	s.scratch = want[:0]
	if sess.unpinned > 0 {
		s.m.unpinned.Add(float64(sess.unpinned))
	}
	var next time.Time
	soon := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	// Each wanted reservation is marked with this reconcile's number, so
	// that those no longer wanted are found in one pass over the pins
	// (not a search of the wanted list per pin).
	s.reconciles++
	s.m.reconciles.Inc()
	mark := s.reconciles
	held := 0 // wanted reservations the session holds
	for _, w := range want {
		p := sess.pins.get(w.k)
		if p == nil {
			if p = s.addPin(sess, w.k, w.r); p != nil {
				p.wanted = mark
				held++
			}
			continue
		}
		if p.wanted == mark {
			continue // a repeat (wants.add keeps one per key)
		}
		p.wanted = mark
		held++
		if w.r == roleSend && p.role == roleLook {
			s.upgradePin(sess, w.k, p)
		}
	}
	if len(sess.pins) > held {
		// From the end: dropPin moves the last entry into the gap.
		for i := len(sess.pins) - 1; i >= 0; i-- {
			k, p := sess.pins[i].k, sess.pins[i].p
			if p.wanted == mark {
				continue
			}
			if at, ok := sess.sent[k.block]; ok {
				if exp := at.Add(s.cfg.RetryPeriod); now.Before(exp) {
					soon(exp)
					continue
				}
			}
			s.dropPin(sess, k, true)
		}
	}
	// The sent blocks and refusals are scanned only once the first of
	// them expired (most reconciles come before that).
	if !sess.sentNext.IsZero() && !now.Before(sess.sentNext) {
		sess.sentNext = time.Time{}
		for b, at := range sess.sent {
			if exp := at.Add(s.cfg.RetryPeriod); !now.Before(exp) {
				delete(sess.sent, b)
			} else if sess.sentNext.IsZero() || exp.Before(sess.sentNext) {
				sess.sentNext = exp
			}
		}
	}
	if !sess.refuseNext.IsZero() && !now.Before(sess.refuseNext) {
		sess.refuseNext = time.Time{}
		for k, until := range sess.refuse {
			if !now.Before(until) {
				delete(sess.refuse, k)
			} else if sess.refuseNext.IsZero() || until.Before(sess.refuseNext) {
				sess.refuseNext = until
			}
		}
	}
	if !sess.sentNext.IsZero() {
		soon(sess.sentNext)
	}
	if !sess.refuseNext.IsZero() {
		soon(sess.refuseNext)
	}
	s.setDeadline(sess, next)
}

// addPin records a new reservation and queues it, and returns its state
// (nil for a sender that is not live: nothing is recorded). s.mu must be
// held.
func (s *Scheduler) addPin(sess *session, k pinKey, r role) *pinState {
	sc := s.senders[k.sender]
	if sc == nil || !sc.up {
		return nil
	}
	p := &pinState{role: r}
	sess.pins.put(k, p)
	sc.count(r, +1)
	sc.queue(cluster.Pin{Session: sess.id, Block: k.block}, opOf(r), p, sess)
	s.m.opCount[opOf(r)].Inc()
	return p
}

// upgradePin turns a look-ahead into a send request. s.mu must be held.
func (s *Scheduler) upgradePin(sess *session, k pinKey, p *pinState) {
	sc := s.senders[k.sender]
	if sc == nil {
		return
	}
	sc.count(p.role, -1)
	p.role = roleSend
	sc.count(p.role, +1)
	sc.queue(cluster.Pin{Session: sess.id, Block: k.block}, opSend, p, sess)
	s.m.opCount[opSend].Inc()
}

// dropPin forgets a reservation; with cancel, a cancel is queued (or the
// request withdrawn if it has not left yet). s.mu must be held.
func (s *Scheduler) dropPin(sess *session, k pinKey, cancel bool) {
	i := sess.pins.index(k)
	if i < 0 {
		return
	}
	p := sess.pins[i].p
	sess.pins.remove(i)
	p.dropped = true
	sc := s.senders[k.sender]
	if sc == nil {
		return
	}
	sc.count(p.role, -1)
	if !cancel {
		return
	}
	pin := cluster.Pin{Session: sess.id, Block: k.block}
	if !p.posted {
		delete(sc.pend, pin)
		return
	}
	if sc.up {
		sc.queue(pin, opCancel, nil, nil)
		s.m.opCount[opCancel].Inc()
	}
}

// onReload records a reload of a session's pathway playlist that a sender
// answered from its shared copy (cluster.BatchResult.Reloads): what
// serveRead would have recorded had the request come here. s.mu must be
// held.
func (s *Scheduler) onReload(r cluster.Reload, now time.Time) {
	sess := s.sessions[r.Session]
	if sess == nil || sess.closed || sess.point.name != r.Point {
		return
	}
	s.m.senderReloads.Inc()
	at := r.At
	if at.IsZero() || at.After(now) {
		at = now
	}
	if at.After(sess.seen.load()) {
		sess.seen.store(at)
	}
	if at.After(sess.point.used.load()) {
		sess.point.used.store(at)
	}
	s.hintTrack(sess, r.Track)
}

// onSent applies a sender's report that a block went to a session: the
// kind's active track and position follow the newest report. s.mu must be
// held.
func (s *Scheduler) onSent(r cluster.SentReport) {
	sess := s.sessions[r.Session]
	if sess == nil || sess.closed {
		return
	}
	src := 0 // disk
	if r.FromRAM {
		src = 1
	}
	s.m.sentCount[src].Inc()
	s.m.sentBytes.Add(float64(r.Bytes))
	ps := sess.point
	t := ps.tracks[r.Block.Track]
	if t == nil || r.Block.Point != ps.name {
		return
	}
	now := s.now()
	sess.seen.store(now)
	at := r.At
	if at.IsZero() || at.After(now) {
		at = now
	}
	sess.sent[r.Block] = at
	if exp := at.Add(s.cfg.RetryPeriod); sess.sentNext.IsZero() || exp.Before(sess.sentNext) {
		sess.sentNext = exp
	}
	sess.played = true
	kp := sess.kind(t.kind)
	if kp.known && at.Before(kp.at) {
		s.markDirty(sess)
		return
	}
	i := sort.Search(len(t.frags), func(i int) bool { return t.frags[i].Start >= r.Block.Start })
	end := t.seconds(r.Block.Start) + 0.001
	if i < len(t.frags) && t.frags[i].Start == r.Block.Start {
		end = t.seconds(t.frags[i].End())
	}
	kp.track, kp.next, kp.known, kp.at = t.id, end, true, at
	// The player said what it fetches next (CMCD nor): a bitrate switch
	// or a jump moves the regions before that request.
	if nb, ok := norBlock(r); ok && nb.Point == ps.name {
		if t2 := ps.tracks[nb.Track]; t2 != nil {
			kp2 := sess.kind(t2.kind)
			kp2.track, kp2.next, kp2.known, kp2.at = t2.id, t2.seconds(nb.Start), true, at
		}
	}
	s.markDirty(sess)
}

// norBlock resolves a sent report's CMCD nor (relative to the block's
// client URL, or absolute) to the block it names.
func norBlock(r cluster.SentReport) (cluster.BlockID, bool) {
	if r.Next == "" {
		return cluster.BlockID{}, false
	}
	ref, err := url.Parse(r.Next)
	if err != nil {
		return cluster.BlockID{}, false
	}
	base := &url.URL{Scheme: "http", Host: "sender", Path: "/b/t/" + r.Block.Point + "/" + r.Block.Track + "/" + strconv.FormatInt(r.Block.Start, 10) + ".m4s"}
	p, ok := strings.CutPrefix(base.ResolveReference(ref).Path, "/b/")
	if !ok {
		return cluster.BlockID{}, false
	}
	if _, p, ok = strings.Cut(p, "/"); !ok {
		return cluster.BlockID{}, false
	}
	i := strings.LastIndexByte(p, '/')
	if i < 0 || !strings.HasSuffix(p, ".m4s") {
		return cluster.BlockID{}, false
	}
	start, err := strconv.ParseInt(strings.TrimSuffix(p[i+1:], ".m4s"), 10, 64)
	j := strings.LastIndexByte(p[:i], '/')
	if err != nil || j <= 0 {
		return cluster.BlockID{}, false
	}
	return cluster.BlockID{Point: p[:j], Track: p[j+1 : i], Start: start}, true
}

// hintTrack records that the player loads a track's media playlist: before
// any report it is the active track of its kind, and a different track of
// a kind already known is a bitrate switch. s.mu must be held.
func (s *Scheduler) hintTrack(sess *session, track string) {
	t := sess.point.tracks[track]
	if t == nil {
		return
	}
	kp := sess.kind(t.kind)
	if kp.track != track {
		kp.track = track
		s.markDirty(sess)
	}
}

// sessionLabel is a short form of a session ID for logs.
func sessionLabel(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
