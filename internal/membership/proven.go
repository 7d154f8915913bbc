package membership

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/pause"
)

// ProveConfig configures Proven.
type ProveConfig struct {
	// Prove checks that a member holds the cluster key (required):
	// clusterauth.Keys.Prove on its URL. An error wrapping
	// clusterauth.ErrBadSignature is a refusal; any other error (the member
	// does not answer) is retried.
	Prove func(ctx context.Context, m Member) error
	// Timeout bounds one challenge (3 s when 0).
	Timeout time.Duration
	// Retry is the first pause before a member that failed is challenged
	// again (250 ms when 0), doubling up to MaxRetry (10 s when 0).
	Retry, MaxRetry time.Duration
	// Reprove is how often a member that proved itself is challenged again
	// (1 min when 0; negative: never). One that then fails with a refusal
	// leaves the set; one that does not answer stays (writers and
	// schedulers deal with members that do not answer).
	Reprove time.Duration
	// Rejected, when set, is called with "proof_failed" for every refused
	// challenge (a metric).
	Rejected func(reason string)
	Log      *slog.Logger
}

// ProvenSet is the part of another Set whose members proved that they hold
// the cluster key (docs/cluster.md, "Membership proof"): nothing but the
// challenge is sent to a member before it is in this set. It implements
// Set.
type ProvenSet struct {
	inner  Set
	cfg    ProveConfig
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	provers map[Member]*prover // members of inner, each with its challenger
	sorted  []Member
	changed chan struct{}
	wg      sync.WaitGroup
}

type prover struct {
	cancel context.CancelFunc
	proven bool
	tried  chan struct{} // closed after the first challenge
}

// Proven follows inner and challenges each of its members until it
// proves itself. It returns once every member present at the start has
// been challenged once (or ctx ends: the wait only, the set runs until
// Close).
func Proven(ctx context.Context, inner Set, cfg ProveConfig) (*ProvenSet, error) {
	if cfg.Prove == nil {
		return nil, errors.New("membership: Proven needs a Prove function")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 250 * time.Millisecond
	}
	if cfg.MaxRetry <= 0 {
		cfg.MaxRetry = 10 * time.Second
	}
	if cfg.Reprove == 0 {
		cfg.Reprove = time.Minute
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &ProvenSet{inner: inner, cfg: cfg, log: log, cancel: cancel, done: make(chan struct{}),
		provers: map[Member]*prover{}, changed: make(chan struct{})}
	tried := s.reconcile(rctx, inner.Members())
	go s.run(rctx)
	for _, ch := range tried {
		select {
		case <-ch:
		case <-ctx.Done():
			return s, nil
		}
	}
	return s, nil
}

// Members implements Set: the members of inner that proved themselves,
// sorted by ID.
func (s *ProvenSet) Members() []Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Member(nil), s.sorted...)
}

// Changed implements Set.
func (s *ProvenSet) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Close stops the challenges (inner is not closed).
func (s *ProvenSet) Close() error {
	s.cancel()
	<-s.done
	s.wg.Wait()
	return nil
}

func (s *ProvenSet) run(ctx context.Context) {
	defer close(s.done)
	for {
		ch := s.inner.Changed()
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
		s.reconcile(ctx, s.inner.Members())
	}
}

// reconcile starts a challenger for every new member of inner and drops
// those that left; it returns the first-attempt channels of the new ones.
func (s *ProvenSet) reconcile(ctx context.Context, ms []Member) []chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := map[Member]bool{}
	var tried []chan struct{}
	for _, m := range ms {
		now[m] = true
		if s.provers[m] != nil {
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		p := &prover{cancel: cancel, tried: make(chan struct{})}
		s.provers[m] = p
		tried = append(tried, p.tried)
		s.wg.Add(1)
		go s.challenge(pctx, m, p)
	}
	for m, p := range s.provers {
		if !now[m] {
			p.cancel()
			delete(s.provers, m)
		}
	}
	s.publish()
	return tried
}

// challenge proves m, retrying with backoff until it has, then again
// every Reprove.
func (s *ProvenSet) challenge(ctx context.Context, m Member, p *prover) {
	defer s.wg.Done()
	backoff := s.cfg.Retry
	first := true
	lastReason := ""
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		err := s.cfg.Prove(cctx, m)
		cancel()
		if ctx.Err() != nil {
			break
		}
		refused := errors.Is(err, clusterauth.ErrBadSignature)
		s.mu.Lock()
		was := p.proven
		switch {
		case err == nil:
			p.proven = true
		case refused:
			p.proven = false
		}
		if p.proven != was && s.provers[m] == p {
			s.publish()
		}
		s.mu.Unlock()
		if first {
			close(p.tried)
			first = false
		}
		switch {
		case err == nil:
			if !was {
				s.log.Info("cluster member proved the cluster key", "id", m.ID, "url", m.URL)
			}
			lastReason, backoff = "", s.cfg.Retry
			if s.cfg.Reprove < 0 {
				return
			}
			pause.For(ctx, s.cfg.Reprove)
			continue
		case refused:
			if s.cfg.Rejected != nil {
				s.cfg.Rejected("proof_failed")
			}
			if lastReason != "proof_failed" {
				s.log.Warn("cluster member ignored: it did not prove the cluster key", "id", m.ID, "url", m.URL, "err", err)
			}
			lastReason = "proof_failed"
		default:
			if !was && lastReason != "unreachable" {
				s.log.Info("cluster member not proven yet: no answer to the challenge", "id", m.ID, "url", m.URL, "err", err)
				lastReason = "unreachable"
			}
			if was {
				// Proven, now silent: it stays; ask again later.
				pause.For(ctx, s.cfg.Reprove)
				continue
			}
		}
		pause.For(ctx, backoff)
		backoff = min(2*backoff, s.cfg.MaxRetry)
	}
	if first {
		close(p.tried)
	}
}

// publish recomputes the proven members and wakes the watchers if they
// changed. s.mu must be held.
func (s *ProvenSet) publish() {
	var ms []Member
	for m, p := range s.provers {
		if p.proven {
			ms = append(ms, m)
		}
	}
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].ID != ms[j].ID {
			return ms[i].ID < ms[j].ID
		}
		return ms[i].URL < ms[j].URL
	})
	if slices.Equal(ms, s.sorted) {
		return
	}
	s.sorted = ms
	close(s.changed)
	s.changed = make(chan struct{})
}
