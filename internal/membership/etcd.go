package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sluice-media/sluice/internal/pause"
)

// DefaultPrefix is the etcd key prefix senders register under.
const DefaultPrefix = "/sluice/senders/"

// EtcdConfig names an etcd cluster and the prefix of the member keys.
type EtcdConfig struct {
	Endpoints []string // e.g. http://127.0.0.1:2379
	Prefix    string   // DefaultPrefix when empty
	// DialTimeout bounds connecting and each registration call (3 s when 0).
	DialTimeout time.Duration
	Log         *slog.Logger
}

func (c EtcdConfig) prefix() string {
	if c.Prefix == "" {
		return DefaultPrefix
	}
	return c.Prefix
}

func (c EtcdConfig) dialTimeout() time.Duration {
	if c.DialTimeout <= 0 {
		return 3 * time.Second
	}
	return c.DialTimeout
}

func (c EtcdConfig) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

func (c EtcdConfig) client() (*clientv3.Client, error) {
	if len(c.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: c.dialTimeout(),
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return cli, nil
}

// EtcdSet is the set of senders registered under a prefix in etcd, kept up
// to date by a watch. It implements Set.
type EtcdSet struct {
	cfg    EtcdConfig
	cli    *clientv3.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	members map[string]Member // by key
	sorted  []Member
	changed chan struct{}
	synced  bool
}

// Etcd connects to etcd, lists the members under the prefix and follows
// them until Close. It returns once the first listing has succeeded, or
// with an error when ctx ends first: ctx bounds the wait for the first
// listing only, so a caller may pass a short timeout (the watch outlives
// it; it used to end with it, and origins and schedulers then never saw a
// sender join or leave). When etcd becomes unreachable later, the
// set keeps its last known members until the watch resumes.
func Etcd(ctx context.Context, cfg EtcdConfig) (*EtcdSet, error) {
	cli, err := cfg.client()
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &EtcdSet{cfg: cfg, cli: cli, cancel: cancel, done: make(chan struct{}),
		members: map[string]Member{}, changed: make(chan struct{})}
	first := make(chan struct{})
	go s.run(wctx, first)
	select {
	case <-first:
		return s, nil
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("etcd membership %v: %w", cfg.Endpoints, ctx.Err())
	}
}

// Members implements Set.
func (s *EtcdSet) Members() []Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Member(nil), s.sorted...)
}

// Changed implements Set.
func (s *EtcdSet) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Close stops watching and closes the etcd client.
func (s *EtcdSet) Close() error {
	s.cancel()
	<-s.done
	return s.cli.Close()
}

func (s *EtcdSet) run(ctx context.Context, first chan struct{}) {
	defer close(s.done)
	log := s.cfg.log()
	prefix := s.cfg.prefix()
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("etcd membership: list failed", "err", err)
			}
			_ = pause.For(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		all := map[string]Member{}
		for _, kv := range resp.Kvs {
			if m, ok := decodeMember(kv.Value); ok {
				all[string(kv.Key)] = m
			}
		}
		s.replace(all)
		if first != nil {
			close(first)
			first = nil
		}
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := s.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		for wr := range wch {
			if err := wr.Err(); err != nil {
				log.Warn("etcd membership: watch ended; listing again", "err", err)
				break
			}
			s.apply(wr.Events)
		}
		wcancel()
	}
}

func decodeMember(b []byte) (Member, bool) {
	var m Member
	if err := json.Unmarshal(b, &m); err != nil || m.ID == "" || m.URL == "" {
		return Member{}, false
	}
	return m, true
}

func (s *EtcdSet) replace(all map[string]Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members = all
	s.publish()
}

func (s *EtcdSet) apply(evs []*clientv3.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range evs {
		key := string(ev.Kv.Key)
		switch ev.Type {
		case clientv3.EventTypeDelete:
			delete(s.members, key)
		case clientv3.EventTypePut:
			if m, ok := decodeMember(ev.Kv.Value); ok {
				s.members[key] = m
			}
		}
	}
	s.publish()
}

// publish recomputes the sorted view and wakes the watchers if it changed.
// s.mu must be held.
func (s *EtcdSet) publish() {
	all := make([]Member, 0, len(s.members))
	for _, m := range s.members {
		all = append(all, m)
	}
	sortMembers(all)
	// Two keys for one ID (a restart under another prefix entry): keep one.
	ms := all[:0]
	for i, m := range all {
		if i == 0 || m.ID != all[i-1].ID {
			ms = append(ms, m)
		}
	}
	if s.synced && equal(ms, s.sorted) {
		return
	}
	s.synced = true
	s.sorted = ms
	close(s.changed)
	s.changed = make(chan struct{})
}

func sortMembers(ms []Member) {
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].ID != ms[j].ID {
			return ms[i].ID < ms[j].ID
		}
		return ms[i].URL < ms[j].URL
	})
}

func equal(a, b []Member) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Registration keeps one sender's key alive in etcd.
type Registration struct {
	cfg    EtcdConfig
	cli    *clientv3.Client
	key    string
	val    string
	ttl    int64
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	lease clientv3.LeaseID
	up    bool
	err   error
}

// Register puts m under "<prefix><m.ID>" with a lease of ttl (rounded up
// to whole seconds, at least 1; etcd may raise it to its minimum) and keeps
// the lease alive until Close or ctx ends. When the lease is lost (etcd
// restarted, a partition longer than the TTL) it registers again. It returns
// once the first registration succeeded or ctx ends.
func Register(ctx context.Context, cfg EtcdConfig, m Member, ttl time.Duration) (*Registration, error) {
	if m.ID == "" || m.URL == "" || strings.Contains(m.ID, "/") {
		return nil, fmt.Errorf("etcd registration: member needs an id without '/' and a URL: %+v", m)
	}
	cli, err := cfg.client()
	if err != nil {
		return nil, err
	}
	val, _ := json.Marshal(m)
	secs := int64((ttl + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &Registration{cfg: cfg, cli: cli, key: cfg.prefix() + m.ID, val: string(val), ttl: secs,
		cancel: cancel, done: make(chan struct{})}
	first := make(chan struct{})
	go r.run(rctx, first)
	select {
	case <-first:
		return r, nil
	case <-ctx.Done():
		r.Close()
		return nil, fmt.Errorf("etcd registration of %s: %w (last error: %v)", m.ID, ctx.Err(), r.Err())
	}
}

// Key is the etcd key of the registration.
func (r *Registration) Key() string { return r.key }

// Registered reports whether the key is in etcd with a live lease (as far
// as the last keepalive knows).
func (r *Registration) Registered() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.up
}

// Err is the last registration error, if any.
func (r *Registration) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close revokes the lease (the member leaves the set at once) and closes
// the client.
func (r *Registration) Close() error {
	r.cancel()
	<-r.done
	r.mu.Lock()
	lease := r.lease
	r.mu.Unlock()
	var err error
	if lease != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.dialTimeout())
		_, err = r.cli.Revoke(ctx, lease)
		cancel()
		if err != nil {
			err = fmt.Errorf("revoke lease: %w", err)
		}
	}
	return errors.Join(err, r.cli.Close())
}

func (r *Registration) set(lease clientv3.LeaseID, up bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lease, r.up = lease, up
	if err != nil {
		r.err = err
	}
}

func (r *Registration) run(ctx context.Context, first chan struct{}) {
	defer close(r.done)
	log := r.cfg.log()
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		lease, err := r.register(ctx)
		if err != nil {
			r.set(0, false, err)
			if ctx.Err() == nil {
				log.Warn("etcd registration failed", "key", r.key, "err", err)
			}
			_ = pause.For(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		ka, err := r.cli.KeepAlive(ctx, lease)
		if err != nil {
			r.set(0, false, fmt.Errorf("keepalive: %w", err))
			continue
		}
		r.set(lease, true, nil)
		log.Info("registered in etcd", "key", r.key, "ttl_s", r.ttl)
		if first != nil {
			close(first)
			first = nil
		}
		for range ka {
		}
		r.set(lease, false, errors.New("lease keepalive ended"))
		if ctx.Err() == nil {
			log.Warn("etcd lease lost; registering again", "key", r.key)
		}
	}
}

func (r *Registration) register(ctx context.Context) (clientv3.LeaseID, error) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.dialTimeout())
	defer cancel()
	g, err := r.cli.Grant(cctx, r.ttl)
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	if _, err := r.cli.Put(cctx, r.key, r.val, clientv3.WithLease(g.ID)); err != nil {
		return 0, fmt.Errorf("put %s: %w", r.key, err)
	}
	return g.ID, nil
}
