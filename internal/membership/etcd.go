package membership

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sluice-media/sluice/internal/clusterauth"
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
	// TLS, when set, secures the connection to etcd (https:// endpoints):
	// the CA that signed etcd's certificate and, when etcd asks for one
	// (--client-cert-auth), this client's certificate. See LoadTLS.
	TLS *tls.Config
	// Username and Password authenticate to etcd when it has
	// authentication enabled (empty: none).
	Username, Password string
	// Keys sign the records Register puts and verify the records Etcd
	// reads: a record that is unsigned or not signed with the cluster key
	// is ignored (a log line, and Rejected). Zero Keys neither sign nor
	// verify (tools and tests that only watch; every role sets them).
	Keys clusterauth.Keys
	// Rejected, when set, is called with the reason of every ignored
	// record ("unsigned", "bad_signature", "skew", "malformed"): a metric.
	Rejected func(reason string)
	Log      *slog.Logger
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
		TLS:         c.TLS,
		Username:    c.Username,
		Password:    c.Password,
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

	mu       sync.Mutex
	members  map[string]Member // by key
	rejected map[string]string // key -> the ignored value last logged
	sorted   []Member
	changed  chan struct{}
	synced   bool
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
		members: map[string]Member{}, rejected: map[string]string{}, changed: make(chan struct{})}
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
			if m, ok := s.decode(string(kv.Key), kv.Value); ok {
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

// record is the value of a member's key: the member, when it was
// registered (unix seconds) and the signature of the three
// (clusterauth.Keys.SignMember).
type record struct {
	ID   string `json:"id"`
	URL  string `json:"url"`
	Time int64  `json:"time,omitempty"`
	Sig  string `json:"sig,omitempty"`
}

func decodeRecord(b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%w: not a member record: %v", clusterauth.ErrMalformed, err)
	}
	if r.ID == "" || r.URL == "" {
		return r, fmt.Errorf("%w: member record without an id or a URL", clusterauth.ErrMalformed)
	}
	if _, err := FromURL(r.URL); err != nil {
		return r, fmt.Errorf("%w: %v", clusterauth.ErrMalformed, err)
	}
	return r, nil
}

// decode reads the record under key; with Keys it must be signed with the
// cluster key. An ignored record is logged (once per key and value) and
// counted.
func (s *EtcdSet) decode(key string, b []byte) (Member, bool) {
	r, err := decodeRecord(b)
	if err == nil && s.cfg.Keys.Valid() {
		err = s.cfg.Keys.VerifyMember(r.ID, r.URL, r.Time, r.Sig, time.Now())
	}
	if err != nil {
		s.mu.Lock()
		first := s.rejected[key] != string(b)
		if first && len(s.rejected) < 10_000 {
			s.rejected[key] = string(b)
		}
		s.mu.Unlock()
		if first {
			s.cfg.log().Warn("etcd membership: record ignored", "key", key, "reason", clusterauth.Reason(err), "err", err)
		}
		if s.cfg.Rejected != nil {
			s.cfg.Rejected(clusterauth.Reason(err))
		}
		return Member{}, false
	}
	s.mu.Lock()
	delete(s.rejected, key)
	s.mu.Unlock()
	return Member{ID: r.ID, URL: r.URL}, true
}

func (s *EtcdSet) replace(all map[string]Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members = all
	s.publish()
}

func (s *EtcdSet) apply(evs []*clientv3.Event) {
	type change struct {
		key string
		m   Member
		ok  bool
	}
	// Records are checked before the lock (decode takes it to log).
	cs := make([]change, 0, len(evs))
	for _, ev := range evs {
		c := change{key: string(ev.Kv.Key)}
		if ev.Type == clientv3.EventTypePut {
			c.m, c.ok = s.decode(c.key, ev.Kv.Value)
		}
		cs = append(cs, c)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		if c.ok {
			s.members[c.key] = c.m
		} else {
			// Deleted, or overwritten with a record that is not valid.
			delete(s.members, c.key)
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
	if s.synced && slices.Equal(ms, s.sorted) {
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

// Registration keeps one sender's key alive in etcd.
type Registration struct {
	cfg    EtcdConfig
	cli    *clientv3.Client
	key    string
	m      Member
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
	secs := int64((ttl + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &Registration{cfg: cfg, cli: cli, key: cfg.prefix() + m.ID, m: m, ttl: secs,
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

// value is the record put under the key: signed with the cluster key when
// the configuration has one.
func (r *Registration) value(now time.Time) string {
	rec := record{ID: r.m.ID, URL: r.m.URL}
	if r.cfg.Keys.Valid() {
		rec.Time = now.Unix()
		rec.Sig = r.cfg.Keys.SignMember(rec.ID, rec.URL, rec.Time)
	}
	b, _ := json.Marshal(rec)
	return string(b)
}

func (r *Registration) register(ctx context.Context) (clientv3.LeaseID, error) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.dialTimeout())
	defer cancel()
	g, err := r.cli.Grant(cctx, r.ttl)
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	if _, err := r.cli.Put(cctx, r.key, r.value(time.Now()), clientv3.WithLease(g.ID)); err != nil {
		return 0, fmt.Errorf("put %s: %w", r.key, err)
	}
	return g.ID, nil
}

// TLSFiles names the PEM files of a TLS connection to etcd.
type TLSFiles struct {
	// CA is the certificate of the authority that signed etcd's server
	// certificate (the system's roots when empty).
	CA string
	// Cert and Key are this client's certificate and key, for an etcd
	// that authenticates clients by certificate (--client-cert-auth).
	Cert, Key string
}

// Config returns the TLS configuration of the files; nil (plain HTTP)
// when none is named.
func (f TLSFiles) Config() (*tls.Config, error) {
	if f.CA == "" && f.Cert == "" && f.Key == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("etcd CA: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA %s: no PEM certificate", f.CA)
		}
	}
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New("etcd client certificate: name both the certificate and its key")
	}
	if f.Cert != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// EtcdPasswordEnv is the environment variable a password is read from
// when no password file is named.
const EtcdPasswordEnv = "SLUICE_ETCD_PASSWORD"

// Credentials completes c with a TLS configuration from files and a user
// whose password is read from passwordFile (trailing newline trimmed) or,
// when that is empty, from $SLUICE_ETCD_PASSWORD: never from a command
// line, where every user of the machine could read it.
func (c EtcdConfig) Credentials(files TLSFiles, user, passwordFile string) (EtcdConfig, error) {
	tc, err := files.Config()
	if err != nil {
		return c, err
	}
	c.TLS = tc
	if user == "" {
		if passwordFile != "" {
			return c, errors.New("etcd: a password file without a user")
		}
		return c, nil
	}
	c.Username = user
	if passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return c, fmt.Errorf("etcd password: %w", err)
		}
		c.Password = strings.TrimRight(string(b), "\r\n")
	} else {
		c.Password = os.Getenv(EtcdPasswordEnv)
	}
	if c.Password == "" {
		return c, fmt.Errorf("etcd user %q without a password: name a password file or set $%s", user, EtcdPasswordEnv)
	}
	return c, nil
}
