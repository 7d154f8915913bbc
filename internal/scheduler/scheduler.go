package scheduler

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/membership"
)

// Config configures a scheduler.
type Config struct {
	// ID names the scheduler at the senders (its lease and pins); default
	// "sched-<host>-<random>".
	ID string
	// Secret is the cluster secret: it authenticates batches, signs the
	// tokens in segment URLs and the session IDs.
	Secret []byte
	// Replicas is the replication factor R of the placement (default 2).
	Replicas int
	// Tick is the timeslot: control traffic to each sender is batched
	// into at most one request per tick (default 100 ms).
	Tick time.Duration
	// Lease is how long a sender keeps this scheduler's pins without a
	// renewal (default 3 s). Every batch renews it.
	Lease time.Duration
	// RetryPeriod is how long a sent block stays reserved for the session
	// after the send, so that a retry is served from RAM (default 4 s).
	RetryPeriod time.Duration
	// AltSend is the size of the alternative-send region (default 2;
	// negative: 0).
	AltSend int
	// LookAhead is the size L of the look-ahead region in blocks (default
	// 4; negative: 0).
	LookAhead int
	// Guard is the number of blocks reserved at the play position on the
	// other tracks of a kind, for bitrate switches (default 1; negative: 0).
	Guard int
	// NoPins turns reservations off: no look-ahead, send or cancel
	// requests, only manifests (the senders then work as plain LRU caches).
	NoPins bool
	// LiveStart is how many fragments behind the live edge a new live
	// session is assumed to start (default 4).
	LiveStart int
	// TokenTTL is how long a sender accepts a session's token without a
	// renewal: the scheduler grants every session it holds to every live
	// sender (cluster.Batch.Grants) and renews the grants every third of
	// TokenTTL; a session that ends is ended at the senders at once
	// (default 60 s). The token itself never changes.
	TokenTTL time.Duration
	// SteeringTTL is the TTL of the sessions' steering manifests: how
	// often players ask which pathways to use (default 2 s: a DASH player
	// whose request meets a sender that died retries it there for 3 s
	// before it moves on, so the sooner it learns, the better).
	SteeringTTL time.Duration
	// Pathways bounds the pathways (senders) of a session (default 8, at
	// most cluster.MaxPathways).
	Pathways int
	// URL is this scheduler's base URL as senders reach it: they fetch
	// the session media playlists of their pathway there
	// (cluster.Batch.URL). Empty when the senders answer them in process
	// (sluice serve).
	URL string
	// Idle ends a session that neither reloaded a manifest nor fetched a
	// block for this long (default 60 s).
	Idle time.Duration
	// ViewRefresh is how old a live point's index may get before it is
	// fetched again (default 500 ms; on-demand indexes: 30 s).
	ViewRefresh time.Duration
	// OpenWait bounds how long the first manifest of a session waits for
	// the senders to confirm its first reservations (default 500 ms).
	OpenWait time.Duration
	// BatchTimeout bounds one batch request (default 1 s).
	BatchTimeout time.Duration
	// RefuseBackoff is how long a sender that refused or lacked a block is
	// not asked for it again by the same session (default 2 s).
	RefuseBackoff time.Duration
	// StatsInterval is how often the senders' stats are read for the
	// metrics (default 2 s; negative: never).
	StatsInterval time.Duration
	// ClientURL, if set, returns the base URL players use for a sender
	// (default: its member URL). "" makes segment URLs path-absolute, on
	// the host the player asked for the manifest: the in-process sender of
	// `sluice serve`.
	ClientURL func(membership.Member) string
	// OwnerSetURL, if set, names a block in segment URLs by its owner set
	// instead of one sender: a template such as
	// "http://{owners}.senders.example:9001" where {owners} becomes the
	// owner set's label (OwnerSetLabel: the block's sender first, then its
	// other owners), a name that must resolve to every owner's address in
	// that order (a DNS zone, or the hosts listing OwnerSetHosts serves).
	// A player whose connection to the first owner is refused then
	// fetches the same URL at the next one, so a request made with a
	// manifest from before a sender died still succeeds. Every sender
	// must listen on the template's port. Overrides ClientURL.
	OwnerSetURL string
}

func (c *Config) setDefaults() error {
	if len(c.Secret) == 0 {
		return errors.New("scheduler: a cluster secret is required")
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		var b [4]byte
		rand.Read(b[:])
		c.ID = "sched-" + host + "-" + hex.EncodeToString(b[:])
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Replicas <= 0 {
		c.Replicas = 2
	}
	def(&c.Tick, 100*time.Millisecond)
	def(&c.Lease, 3*time.Second)
	def(&c.RetryPeriod, 4*time.Second)
	def(&c.TokenTTL, time.Minute)
	def(&c.SteeringTTL, 2*time.Second)
	if c.Pathways <= 0 {
		c.Pathways = 8
	}
	c.Pathways = min(c.Pathways, cluster.MaxPathways)
	def(&c.Idle, 60*time.Second)
	def(&c.ViewRefresh, 500*time.Millisecond)
	def(&c.OpenWait, 500*time.Millisecond)
	def(&c.BatchTimeout, time.Second)
	def(&c.RefuseBackoff, 2*time.Second)
	if c.StatsInterval == 0 {
		c.StatsInterval = 2 * time.Second
	}
	c.AltSend = max(c.AltSend, 0)
	c.LookAhead = max(c.LookAhead, 0)
	c.Guard = max(c.Guard, 0)
	if c.LiveStart <= 0 {
		c.LiveStart = 4
	}
	if c.OwnerSetURL != "" {
		if err := CheckOwnerSetURL(c.OwnerSetURL); err != nil {
			return fmt.Errorf("scheduler: %w", err)
		}
	}
	if c.TokenTTL < 3*c.Tick {
		return fmt.Errorf("scheduler: token TTL %v must be at least three ticks (%v)", c.TokenTTL, c.Tick)
	}
	if c.Lease < 2*c.Tick {
		return fmt.Errorf("scheduler: lease %v must be at least two ticks (%v)", c.Lease, c.Tick)
	}
	return nil
}

// DefaultConfig returns the defaults of the sizes that are not zero-valued
// by default (AltSend 2, LookAhead 4, Guard 1); flags start from it.
func DefaultConfig() Config {
	return Config{Replicas: 2, AltSend: 2, LookAhead: 4, Guard: 1}
}

// Scheduler owns sessions, renders their manifests and reserves their blocks
// at the senders. It is an http.Handler for /s/...; Run drives it.
type Scheduler struct {
	cfg      Config
	ownerTpl ownerSetTpl // parsed cfg.OwnerSetURL
	timeline Timeline
	members  membership.Set
	client   *http.Client
	verifier *clusterauth.Verifier // signed internal requests (the owner-set listing)
	log      *slog.Logger
	m        *metrics
	now      func() time.Time

	// mu guards what follows. A reload that needs nothing changed
	// (serveRead) takes it shared; everything else exclusively.
	mu       sync.RWMutex
	sessions map[string]*session
	points   map[string]*pointState
	senders  map[string]*senderConn // by member ID, every member
	epochs   map[string]int         // next incarnation for members that left
	known    map[string]string      // member ID -> client base URL, of every member seen
	byLabel  map[string]string      // pathway label -> member ID, of every member seen
	liveIDs  []string               // members that answer, sorted
	liveVer  uint64                 // bumped when liveIDs changes
	// liveCount is len(liveIDs), for requests that need it without s.mu.
	liveCount atomic.Int64
	// sharedReloads counts the reloads served under s.mu held shared
	// (serveRead), for the tests.
	sharedReloads atomic.Int64
	dirty         []*session
	timers        deadlines
	wake          chan struct{} // kicks the loop
	scratch       wants
	reconciles    uint64         // reconcile calls: marks the pins each one wants
	workers       sync.WaitGroup // the sender workers (startWorker)
	// hurry makes the next timeslot send its batches at once (a live
	// point's new blocks to reserve, listed only once confirmed);
	// retrying is a hurried timeslot already due (retryFresh).
	hurry, retrying bool
	started         bool
	lastScan        time.Time
	// lastGauges is when the session and pin gauges were set last.
	lastGauges time.Time
	runCtx     context.Context // Run's, for fetches started under s.mu
}

// New returns a scheduler. timeline gives the index of points, members the
// senders; reg (may be nil) receives the metrics.
func New(cfg Config, timeline Timeline, members membership.Set, reg prometheus.Registerer, log *slog.Logger) (*Scheduler, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if timeline == nil || members == nil {
		return nil, errors.New("scheduler: a timeline and a sender set are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	s := &Scheduler{
		cfg: cfg, timeline: timeline, members: members, log: log.With("scheduler", cfg.ID),
		// Every request to a sender is signed with the cluster key.
		client: &http.Client{Transport: clusterauth.NewTransport(clusterauth.NewKeys(cfg.Secret), tr)}, m: newMetrics(reg), now: time.Now,
		sessions: map[string]*session{}, points: map[string]*pointState{}, senders: map[string]*senderConn{},
		epochs: map[string]int{}, known: map[string]string{}, byLabel: map[string]string{},
		wake: make(chan struct{}, 1), runCtx: context.Background(),
	}
	am := clusterauth.NewMetrics(reg)
	s.verifier = &clusterauth.Verifier{Keys: clusterauth.NewKeys(cfg.Secret), Log: s.log, Refused: am.RequestRefused}
	if cfg.OwnerSetURL != "" {
		s.ownerTpl, _ = parseOwnerSetURL(cfg.OwnerSetURL) // checked by setDefaults
	}
	s.syncMembers(members.Members())
	return s, nil
}

// ID is the scheduler's ID at the senders.
func (s *Scheduler) ID() string { return s.cfg.ID }

// Run drives the timeslots, the sender workers and the membership until ctx
// ends; then it cancels every reservation it holds (best effort) and returns.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("scheduler: Run called twice")
	}
	s.started = true
	s.runCtx = ctx
	for _, sc := range s.senders {
		s.startWorker(ctx, sc)
	}
	s.mu.Unlock()
	go s.watchMembers(ctx)
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.shutdown()
			return nil
		case <-t.C:
		case <-s.wake:
		}
		s.tick(ctx)
	}
}

// kick makes the loop run a timeslot now.
func (s *Scheduler) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// freshRetry is how soon a reservation of a new live block that an owner
// did not hold yet is made again: the origin writes the block to its
// owners while the scheduler learns of it, and the block is listed only
// once an owner confirms it, so waiting a timeslot or two would add that
// much to every new block's listing.
// Only within freshWindow of the block's appearance: one that has not
// reached an owner by then gets the ordinary back-off.
const (
	freshRetry  = 20 * time.Millisecond
	freshWindow = time.Second
)

// retryFresh runs a hurried timeslot after freshRetry (once, however
// many answers ask for it meanwhile). s.mu must be held.
func (s *Scheduler) retryFresh() {
	if s.retrying {
		return
	}
	s.retrying = true
	time.AfterFunc(freshRetry, func() {
		s.mu.Lock()
		s.retrying = false
		s.hurry = true
		s.mu.Unlock()
		s.kick()
	})
}

// tick runs one timeslot: due timers, idle sessions, view refreshes,
// reconciliation of every changed session, and a wake-up for every sender
// worker (each posts one batch).
func (s *Scheduler) tick(ctx context.Context) {
	t0 := time.Now()
	s.mu.Lock()
	now := s.now()
	for s.timers.Len() > 0 && !s.timers[0].at.After(now) {
		it := heap.Pop(&s.timers).(deadline)
		if it.sess.deadline.Equal(it.at) && !it.sess.closed {
			it.sess.deadline = time.Time{}
			s.markDirty(it.sess)
		}
	}
	if now.Sub(s.lastScan) >= time.Second {
		s.lastScan = now
		s.expireIdle(now)
	}
	s.refreshViews(ctx, now)
	s.reconcileDirty(now)
	if s.hurry {
		s.hurry = false
		for _, sc := range s.senders {
			if sc.up && len(sc.pend) > 0 {
				sc.urgent = true
				sc.hurry()
			}
		}
	}
	for _, sc := range s.senders {
		if sc.up && !now.Before(sc.renewAt) {
			s.grantAll(sc, now)
		}
		sc.poke()
	}
	if now.Sub(s.lastGauges) >= time.Second {
		// Counting every session each timeslot costs more than the
		// gauges are worth (they are scraped every few seconds).
		s.lastGauges = now
		s.updateGauges()
	}
	s.mu.Unlock()
	s.m.tickSeconds.Observe(time.Since(t0).Seconds())
}

// reconcileChunk is how many sessions reconcileDirty reconciles before it
// lets the requests waiting for s.mu in (with tens of thousands of
// sessions a timeslot may reconcile thousands).
const reconcileChunk = 512

// reconcileDirty reconciles every session marked dirty, including those
// marked meanwhile. s.mu must be held; it is released between chunks.
func (s *Scheduler) reconcileDirty(now time.Time) {
	for i := 0; i < len(s.dirty); i++ {
		if i > 0 && i%reconcileChunk == 0 {
			s.mu.Unlock()
			runtime.Gosched()
			s.mu.Lock()
		}
		sess := s.dirty[i]
		sess.dirty = false
		if !sess.closed {
			s.reconcile(sess, now)
		}
	}
	clear(s.dirty)
	s.dirty = s.dirty[:0]
}

// markDirty queues a session for reconciliation. s.mu must be held.
func (s *Scheduler) markDirty(sess *session) {
	if !sess.dirty {
		sess.dirty = true
		s.dirty = append(s.dirty, sess)
	}
}

// expireIdle ends sessions that have been idle for Config.Idle and points
// that nobody asked for lately. s.mu must be held.
func (s *Scheduler) expireIdle(now time.Time) {
	for id, sess := range s.sessions {
		if sess.edge {
			// The edge session lives while the point has others.
			if len(sess.point.sessions) > 1 {
				continue
			}
			sess.point.edge = nil
		} else if now.Sub(sess.seen.load()) < s.cfg.Idle && !s.neverPlayed(sess, now) {
			continue
		}
		s.closeSession(sess)
		if !sess.edge && now.Sub(sess.seen.load()) >= s.cfg.Idle {
			// Idle: the session ends, and its token with it. (One that
			// never played keeps its grants until they run out: a
			// player that starts late adopts it again.)
			s.endSession(sess)
		}
		delete(s.sessions, id)
		s.m.sessionEvents.WithLabelValues("expired").Inc()
		s.log.Debug("session expired", "session", id, "point", sess.point.name)
	}
	for name, ps := range s.points {
		if len(ps.sessions) == 0 && now.Sub(ps.used.load()) > 2*s.cfg.Idle && !ps.fetching {
			delete(s.points, name)
		}
	}
}

// neverPlayed reports whether a session has held reservations for a while
// (a third of Config.Idle, at least 10 s) without fetching anything from a
// sender: a manifest fetched by something that is not a player. Its pins
// go; if it does play later, its next manifest request adopts it again.
func (s *Scheduler) neverPlayed(sess *session, now time.Time) bool {
	return !s.cfg.NoPins && !sess.played && now.Sub(sess.opened) >= max(s.cfg.Idle/3, 10*time.Second)
}

// closeSession cancels every reservation of a session. s.mu must be held.
func (s *Scheduler) closeSession(sess *session) {
	sess.closed = true
	for i := len(sess.pins) - 1; i >= 0; i-- {
		s.dropPin(sess, sess.pins[i].k, true)
	}
	delete(sess.point.sessions, sess)
	for _, ch := range sess.waiters {
		close(ch)
	}
	sess.waiters = nil
}

// shutdown cancels every pin this scheduler holds, in one last batch per
// sender, so that the senders need not wait for the lease.
func (s *Scheduler) shutdown() {
	// The workers first: a batch they have in flight is answered before
	// the sessions' reservations are cancelled.
	s.workers.Wait()
	s.mu.Lock()
	for id, sess := range s.sessions {
		s.closeSession(sess)
		delete(s.sessions, id)
	}
	var conns []*senderConn
	for _, sc := range s.senders {
		if sc.up && len(sc.pend) > 0 {
			conns = append(conns, sc)
		}
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.BatchTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, sc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				s.mu.Lock()
				b, _ := s.takeBatch(sc, s.now(), true)
				s.mu.Unlock()
				if b == nil {
					return
				}
				if _, err := s.post(ctx, sc, b); err != nil {
					s.log.Debug("final cancels", "sender", sc.m.ID, "err", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// updateGauges sets the session and pin gauges. s.mu must be held.
func (s *Scheduler) updateGauges() {
	var live, vod int
	for _, sess := range s.sessions {
		if sess.edge {
			continue
		}
		if sess.point.live {
			live++
		} else {
			vod++
		}
	}
	s.m.sessions.WithLabelValues("live").Set(float64(live))
	s.m.sessions.WithLabelValues("vod").Set(float64(vod))
	var send, look int
	for _, sc := range s.senders {
		send += sc.sends
		look += sc.looks
	}
	s.m.pins.WithLabelValues("send").Set(float64(send))
	s.m.pins.WithLabelValues("lookahead").Set(float64(look))
	s.m.liveSenders.Set(float64(len(s.liveIDs)))
}

// deadline is a timer entry: reconcile sess at at.
type deadline struct {
	at   time.Time
	sess *session
}

// deadlines is a min-heap of timer entries.
type deadlines []deadline

func (d deadlines) Len() int           { return len(d) }
func (d deadlines) Less(i, j int) bool { return d[i].at.Before(d[j].at) }
func (d deadlines) Swap(i, j int)      { d[i], d[j] = d[j], d[i] }
func (d *deadlines) Push(x any)        { *d = append(*d, x.(deadline)) }
func (d *deadlines) Pop() any {
	old := *d
	x := old[len(old)-1]
	old[len(old)-1] = deadline{}
	*d = old[:len(old)-1]
	return x
}

// setDeadline makes sure sess is reconciled at (or soon after) at. s.mu must
// be held.
func (s *Scheduler) setDeadline(sess *session, at time.Time) {
	if at.IsZero() || (!sess.deadline.IsZero() && !at.Before(sess.deadline)) {
		return
	}
	sess.deadline = at
	heap.Push(&s.timers, deadline{at, sess})
}

// Sessions returns the number of client sessions (for tests and the
// status page).
func (s *Scheduler) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sess := range s.sessions {
		if !sess.edge {
			n++
		}
	}
	return n
}

// LiveSenders returns the IDs of the senders in the live set.
func (s *Scheduler) LiveSenders() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.liveIDs...)
}

// setLive recomputes the live set from the sender states. s.mu must be held.
func (s *Scheduler) setLive() {
	var ids []string
	for id, sc := range s.senders {
		if sc.up {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if slices.Equal(ids, s.liveIDs) {
		return
	}
	s.liveIDs = ids
	s.liveVer++
	s.liveCount.Store(int64(len(ids)))
	for _, ps := range s.points {
		clear(ps.owners)
	}
	for _, sess := range s.sessions {
		s.markDirty(sess)
	}
}
