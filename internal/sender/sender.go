// Package sender is the sender of the distributed sending cluster (docs/architecture.md,
// docs/cluster.md): it holds its share of the blocks of every track in
// a blockstore (mass storage plus a RAM tier), takes the batched look-ahead,
// cancel and send requests of the schedulers, and serves the players'
// segment requests directly, each authorised by a session token the
// scheduler signed.
//
// Routes (see internal/cluster for the contract):
//
//	POST /internal/v1/batch                            cluster.Batch -> cluster.BatchResult (binary, cluster.BatchContentType, or JSON)
//	PUT  /internal/v1/blocks/<point>/<track>/<start>   store a block (201 new, 200 already held)
//	PUT  /internal/v1/init/<point>/<track>             store a track's CMAF header (Content-Type kept)
//	PUT  /internal/v1/parts/<point>/<track>/<start>/<i> keep part i of a live fragment in progress in RAM (parts.go)
//	PUT  /internal/v1/parts/<point>/<track>/<start>/end?at=<end>  that fragment is complete
//	GET  /internal/v1/stats                            cluster.SenderStats
//	POST /internal/v1/missing                          cluster.HaveQuery -> the blocks and headers it lacks
//	POST /internal/v1/delete                           cluster.DeleteRequest -> cluster.DeleteResult
//	GET  /b/<token>/<point>/<track>/<start>.m4s        a block, for the session the token designates
//	GET  /b/<token>/<point>/<track>/part-<start>.m4s   a part (LL-HLS), from RAM
//	GET  /b/<token>/<point>/<track>/init.mp4           a track's CMAF header
//	GET  /b/<token>/<point>/<track>/media.m3u8         the session's HLS media playlist (from a scheduler)
//	GET  /internal/v1/proof?c=<challenge>              clusterauth.ProofAnswer: proves the cluster key
//	GET  /healthz, /readyz, /metrics                   (Handler only)
//
// Internal routes need a request signed with the cluster key for this
// sender's URL (internal/clusterauth; 401 with the reason otherwise); the
// secret itself never travels. Client routes need a token for the block's
// point whose session is valid here (403 with the reason otherwise; see
// sessions.go). A block or header the sender does not hold is answered
// with a redirect to a live sender that should (redirect.go), so that a
// player may fetch every block of a session from any sender: each sender
// is a pathway of the session (HLS and DASH content steering,
// docs/cluster.md). Every uploaded block must parse as the fragment its key
// names, every track header as a CMAF header (400 otherwise).
package sender

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-media/sluice/internal/blockstore"
	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/httpx"
	"github.com/sluice-media/sluice/internal/media"
)

// Options configure a Sender.
type Options struct {
	// ID is the sender's placement identity (membership.Member.ID).
	ID string
	// Secret is the cluster secret: internal requests are signed with keys
	// derived from it, and it verifies session tokens (required).
	Secret []byte
	// URL is the sender's advertised base URL (membership.Member.URL): the
	// challenge answer proves the cluster key for it, and internal requests
	// must be signed for its host:port. SetURL sets it later.
	URL string
	// Names are other host:port names internal requests may be signed
	// for (e.g. the listen address).
	Names []string
	// Store holds the blocks (required).
	Store *blockstore.Store
	// Registry receives the sender's metrics (a new one when nil).
	Registry *prometheus.Registry
	// DefaultLease is the lease of a batch that names none (10 s when 0);
	// MaxLease caps the lease a scheduler may ask for (5 min when 0).
	DefaultLease, MaxLease time.Duration
	// MaxReports bounds the sent-reports queued for one scheduler between
	// two of its batches (100 000 when 0); the oldest are dropped.
	MaxReports int
	// SessionIdle forgets which scheduler a session belongs to after this
	// long without a request naming it, for sessions that were named in
	// pins but never granted (10 min when 0).
	SessionIdle time.Duration
	// SessionGrace is how long a token of a session the sender holds no
	// grant for is accepted after the session opened (the grant may still
	// be on its way) and after the sender started (it lost its grants;
	// the schedulers grant them again at once). 30 s when 0.
	SessionGrace time.Duration
	// DefaultGrantTTL is the lifetime of a grant of a batch that names
	// none (60 s when 0).
	DefaultGrantTTL time.Duration
	// Playlists, if set, answers the session media playlists of players on
	// this sender's pathway in process (the scheduler of `sluice serve`);
	// else they are fetched from the session's scheduler over HTTP
	// (cluster.Batch.URL) with Client.
	Playlists http.Handler
	// Client fetches playlists from schedulers (a client with a 5 s
	// timeout when nil).
	Client *http.Client
	// Ready, if set, is an extra readiness check (e.g. the etcd
	// registration).
	Ready func() error
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	Log *slog.Logger
}

// Sender serves one sender's internal API and client URLs.
type Sender struct {
	o   Options
	st  *blockstore.Store
	m   *senderMetrics
	reg *prometheus.Registry
	log *slog.Logger

	sendsRAM, sendsDisk atomic.Int64
	refused             atomic.Int64

	keys     clusterauth.Keys
	verifier *clusterauth.Verifier
	url      atomic.Pointer[string] // advertised base URL
	started  time.Time              // for SessionGrace
	boot     string                 // names this run (cluster.BatchResult.Boot)

	mu        sync.Mutex
	sessions  map[string]*session             // session -> what is known of it
	ended     map[string]time.Time            // sessions ended by their scheduler, when
	reports   map[string][]cluster.SentReport // scheduler -> reports not yet returned
	reloads   map[string][]cluster.Reload     // scheduler -> shared reloads not yet returned
	shared    *SharedPlaylists                // pathway playlists schedulers marked shared
	inits     map[string]initEntry            // "<point>/<track>" -> header
	leases    map[string]time.Time            // scheduler -> end of its lease
	schedURLs map[string]string               // scheduler -> its cluster.Batch.URL
	placement *cluster.Placement              // the latest a scheduler sent

	parts *liveParts // parts of live fragments in progress (parts.go)
}

type initEntry struct {
	data        []byte
	contentType string
	header      *media.Header // parsed; nil until a block needs it
}

// checkBlock checks that data is the fragment id names: one moof+mdat
// (checkFragment) whose start time is id.Start.
func (s *Sender) checkBlock(ctx context.Context, id cluster.BlockID, data []byte) error {
	fi, err := s.checkFragment(ctx, id.Point, id.Track, data)
	if err != nil {
		return err
	}
	if fi.Start != id.Start {
		return fmt.Errorf("the fragment starts at %d, its key names %d", fi.Start, id.Start)
	}
	return nil
}

// checkFragment checks that data is one moof+mdat (media.CheckFragment)
// and, when this sender holds the track's header, of that header's track,
// and returns its timing.
func (s *Sender) checkFragment(ctx context.Context, point, track string, data []byte) (media.FragInfo, error) {
	var h *media.Header
	if ie, err := s.init(ctx, point, track); err == nil {
		h = ie.header
		if h == nil {
			if h, err = media.ParseCMAFHeader(ie.data); err != nil {
				return media.FragInfo{}, fmt.Errorf("the track's stored header does not parse: %w", err)
			}
			s.mu.Lock()
			ie.header = h
			s.inits[point+"/"+track] = ie
			s.mu.Unlock()
		}
	}
	return media.CheckFragment(data, h)
}

// New returns a sender.
func New(o Options) (*Sender, error) {
	if len(o.Secret) == 0 {
		return nil, errors.New("sender: a cluster secret is required")
	}
	if o.Store == nil {
		return nil, errors.New("sender: no block store")
	}
	if o.DefaultLease <= 0 {
		o.DefaultLease = 10 * time.Second
	}
	if o.MaxLease <= 0 {
		o.MaxLease = 5 * time.Minute
	}
	if o.MaxReports <= 0 {
		o.MaxReports = 100_000
	}
	if o.SessionIdle <= 0 {
		o.SessionIdle = 10 * time.Minute
	}
	if o.SessionGrace <= 0 {
		o.SessionGrace = 30 * time.Second
	}
	if o.DefaultGrantTTL <= 0 {
		o.DefaultGrantTTL = time.Minute
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	var boot [8]byte
	rand.Read(boot[:])
	s := &Sender{
		o: o, st: o.Store, reg: reg, log: o.Log, started: o.Now(), boot: hex.EncodeToString(boot[:]),
		sessions: map[string]*session{}, ended: map[string]time.Time{}, reports: map[string][]cluster.SentReport{},
		reloads: map[string][]cluster.Reload{}, shared: NewSharedPlaylists(o.Now),
		inits: map[string]initEntry{}, leases: map[string]time.Time{}, schedURLs: map[string]string{},
		parts: newLiveParts(),
	}
	m, err := newMetrics(reg, s)
	if err != nil {
		return nil, err
	}
	s.m = m
	s.keys = clusterauth.NewKeys(o.Secret)
	am := clusterauth.NewMetrics(reg)
	s.verifier = &clusterauth.Verifier{Keys: s.keys, Targets: s.names, Log: s.log, MaxBody: maxBlock,
		Refused: func(reason string) { s.m.unauthorized.Inc(); am.RequestRefused(reason) }}
	s.SetURL(o.URL)
	return s, nil
}

// SetURL sets the sender's advertised base URL (Options.URL), for a
// sender whose address is known only once it listens.
func (s *Sender) SetURL(u string) { s.url.Store(&u) }

func (s *Sender) self() (string, string) { return s.o.ID, *s.url.Load() }

// names are the host:port names internal requests must be signed for.
func (s *Sender) names() []string {
	var out []string
	if u, err := url.Parse(*s.url.Load()); err == nil && u.Host != "" {
		out = append(out, clusterauth.NormalizeHost(u.Host, u.Scheme == "https"))
	}
	for _, n := range s.o.Names {
		out = append(out, clusterauth.NormalizeHost(n, false))
	}
	return out
}

// ObservePreload records one load into RAM (see blockstore.Options.OnPreload).
func (s *Sender) ObservePreload(d time.Duration, err error) {
	if err == nil {
		s.m.preload.Observe(d.Seconds())
	}
}

// Routes registers the internal API and the client URLs on mux (for a
// process that serves other roles too).
func (s *Sender) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /internal/v1/batch", s.auth(s.batch))
	mux.HandleFunc("PUT /internal/v1/blocks/", s.auth(s.putBlock))
	mux.HandleFunc("PUT /internal/v1/init/", s.auth(s.putInit))
	mux.HandleFunc("PUT /internal/v1/parts/", s.auth(s.putPart))
	mux.HandleFunc("GET /internal/v1/stats", s.auth(s.stats))
	mux.HandleFunc("POST /internal/v1/missing", s.auth(s.missing))
	mux.HandleFunc("POST /internal/v1/delete", s.auth(s.delete))
	mux.HandleFunc("GET "+clusterauth.ProofPath, s.keys.ProofHandler(s.self))
	mux.HandleFunc("/b/", s.client)
}

// Handler is the whole HTTP surface of a sender process: Routes plus
// /healthz, /readyz and /metrics.
func (s *Sender) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Routes(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", httpx.Healthz)
	mux.HandleFunc("GET /readyz", httpx.Readyz(s.Ready))
	return mux
}

// Ready is nil when the sender can serve (Options.Ready, e.g. registered
// in etcd), else why not.
func (s *Sender) Ready() error {
	if s.o.Ready != nil {
		return s.o.Ready()
	}
	return nil
}

// Run expires scheduler leases until ctx ends: when a scheduler's lease
// runs out, the store drops exactly that scheduler's pins.
func (s *Sender) Run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	lastGC := s.o.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.expire()
		if now := s.o.Now(); now.Sub(lastGC) > time.Second {
			lastGC = now
			s.forgetSessions(now)
			s.parts.forget(now)
		}
	}
}

// expire drops the pins of schedulers whose lease ran out.
func (s *Sender) expire() {
	for _, e := range s.st.ExpireLeases() {
		s.m.leaseExpiries.Inc()
		s.m.pinsReleased.WithLabelValues("lease").Add(float64(e.Pins))
		s.mu.Lock()
		delete(s.reports, e.Scheduler)
		delete(s.reloads, e.Scheduler)
		for id, ss := range s.sessions {
			// Granted sessions stay valid until their grant runs out:
			// another scheduler adopts them (orphans).
			if ss.sched == e.Scheduler && ss.expires.IsZero() {
				delete(s.sessions, id)
			}
		}
		s.mu.Unlock()
		s.log.Info("scheduler lease expired; its pins are released", "scheduler", e.Scheduler, "pins", e.Pins)
	}
}

// auth wraps an internal handler with the signature check
// (clusterauth.Verifier: signed with the cluster key for this sender,
// within the replay window, once, with the signed body).
func (s *Sender) auth(h http.HandlerFunc) http.HandlerFunc {
	return s.verifier.Middleware(h).ServeHTTP
}

// maxBatch bounds a batch body; maxBlock a block PUT.
const (
	maxBatch = 64 << 20
	maxBlock = 256 << 20
)

func (s *Sender) lease(d time.Duration) time.Duration {
	switch {
	case d <= 0:
		return s.o.DefaultLease
	case d < 100*time.Millisecond:
		return 100 * time.Millisecond
	case d > s.o.MaxLease:
		return s.o.MaxLease
	}
	return d
}

// Apply carries out one batch of a scheduler (what POST /internal/v1/batch
// does): renew its lease, cancel, stage sends, then look ahead, and return
// the refusals, the missing blocks and the sent-reports queued for it.
// Sends go before look-aheads so that, when RAM is tight, the block a
// player fetches now wins over blocks it fetches later.
func (s *Sender) Apply(ctx context.Context, b cluster.Batch) (cluster.BatchResult, error) {
	if b.Scheduler == "" {
		return cluster.BatchResult{}, errors.New("batch without a scheduler")
	}
	t0 := time.Now()
	now := s.o.Now()
	lease := s.lease(b.Lease)
	s.st.Renew(b.Scheduler, lease)
	s.mu.Lock()
	s.leases[b.Scheduler] = now.Add(lease)
	if b.URL != "" {
		s.schedURLs[b.Scheduler] = b.URL
	}
	if b.Placement != nil && len(b.Placement.Senders) > 0 {
		p := *b.Placement
		s.placement = &p
	}
	s.applyGrants(b, now)
	for _, list := range [][]cluster.Pin{b.Cancel, b.Send, b.LookAhead} {
		for _, p := range list {
			if p.Session == "" {
				continue
			}
			ss := s.sessions[p.Session]
			if ss == nil {
				ss = &session{}
				s.sessions[p.Session] = ss
			}
			if ss.expires.IsZero() || ss.sched == b.Scheduler || !now.Before(s.leases[ss.sched]) {
				// A granted session's reports go to the scheduler that
				// granted it last while that one lives.
				ss.sched = b.Scheduler
			}
			ss.seen = now
		}
	}
	s.mu.Unlock()

	var res cluster.BatchResult
	missing := map[cluster.BlockID]bool{}
	for _, p := range b.Cancel {
		if s.st.Unpin(b.Scheduler, p) {
			s.m.pinsReleased.WithLabelValues("cancel").Inc()
		}
	}
	pinAll := func(list []cluster.Pin, kind string) {
		for _, p := range list {
			switch s.st.Pin(ctx, b.Scheduler, p) {
			case blockstore.Pinned, blockstore.Repeated:
				s.m.requests.WithLabelValues(kind, "ok").Inc()
			case blockstore.Refused:
				s.m.requests.WithLabelValues(kind, "refused").Inc()
				s.refused.Add(1)
				res.Refused = append(res.Refused, p)
			case blockstore.Missing:
				s.m.requests.WithLabelValues(kind, "missing").Inc()
				if !missing[p.Block] {
					missing[p.Block] = true
					res.Missing = append(res.Missing, p.Block)
				}
			}
		}
	}
	pinAll(b.Send, "send")
	pinAll(b.LookAhead, "lookahead")
	s.m.requests.WithLabelValues("cancel", "ok").Add(float64(len(b.Cancel)))

	s.mu.Lock()
	res.Sent = s.reports[b.Scheduler]
	delete(s.reports, b.Scheduler)
	res.Reloads = s.reloads[b.Scheduler]
	delete(s.reloads, b.Scheduler)
	res.Orphans = s.orphans(b.Scheduler, s.o.Now())
	s.mu.Unlock()
	res.Boot = s.boot
	s.m.batches.Inc()
	s.m.batchSeconds.Observe(time.Since(t0).Seconds())
	return res, nil
}

// batch answers POST /internal/v1/batch in the encoding it was sent in:
// the binary one (cluster.BatchContentType) or JSON.
func (s *Sender) batch(w http.ResponseWriter, r *http.Request) {
	binary := r.Header.Get("Content-Type") == cluster.BatchContentType
	var b cluster.Batch
	if binary {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBatch))
		if err == nil {
			b, err = cluster.DecodeBatch(body)
		}
		if err != nil {
			s.log.Warn("bad batch", "remote", r.RemoteAddr, "err", err)
			http.Error(w, "bad batch: "+err.Error(), http.StatusBadRequest)
			return
		}
	} else if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBatch)).Decode(&b); err != nil {
		s.log.Warn("bad batch", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "bad batch: "+err.Error(), http.StatusBadRequest)
		return
	}
	res, err := s.Apply(r.Context(), b)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if binary {
		out := cluster.AppendBatchResult(nil, &res)
		w.Header().Set("Content-Type", cluster.BatchContentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		w.Write(out)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

// parseBlockPath parses "<point>/<track>/<start>" (the point may have
// several segments).
func parseBlockPath(p string) (cluster.BlockID, bool) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return cluster.BlockID{}, false
	}
	start, err := strconv.ParseInt(p[i+1:], 10, 64)
	if err != nil {
		return cluster.BlockID{}, false
	}
	point, track, ok := splitTrack(p[:i])
	if !ok {
		return cluster.BlockID{}, false
	}
	id := cluster.BlockID{Point: point, Track: track, Start: start}
	return id, blockstore.ValidBlock(id)
}

// splitTrack splits "<point>/<track>".
func splitTrack(p string) (string, string, bool) {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "", "", false
	}
	return p[:i], p[i+1:], true
}

func (s *Sender) putBlock(w http.ResponseWriter, r *http.Request) {
	id, ok := parseBlockPath(strings.TrimPrefix(r.URL.Path, "/internal/v1/blocks/"))
	if !ok {
		http.Error(w, "want /internal/v1/blocks/<point>/<track>/<start>", http.StatusBadRequest)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBlock))
	if err != nil {
		http.Error(w, "read block: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.checkBlock(r.Context(), id, data); err != nil {
		s.m.invalidUploads.WithLabelValues("block").Inc()
		s.log.Warn("block refused: not the fragment its key names", "block", id, "bytes", len(data), "remote", r.RemoteAddr, "err", err)
		http.Error(w, "block refused: "+err.Error(), http.StatusBadRequest)
		return
	}
	added, err := s.st.Put(r.Context(), id, data)
	if err != nil {
		s.log.Error("store block", "block", id, "err", err)
		http.Error(w, "cannot store block", http.StatusInternalServerError)
		return
	}
	if added {
		s.m.blocksIn.Inc()
		s.m.blockBytesIn.Add(float64(len(data)))
		w.WriteHeader(http.StatusCreated)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Sender) putInit(w http.ResponseWriter, r *http.Request) {
	point, track, ok := splitTrack(strings.TrimPrefix(r.URL.Path, "/internal/v1/init/"))
	if !ok || !blockstore.ValidBlock(cluster.BlockID{Point: point, Track: track}) {
		http.Error(w, "want /internal/v1/init/<point>/<track>", http.StatusBadRequest)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
	if err != nil {
		http.Error(w, "read init: "+err.Error(), http.StatusBadRequest)
		return
	}
	h, err := media.ParseCMAFHeader(data)
	if err != nil {
		s.m.invalidUploads.WithLabelValues("init").Inc()
		s.log.Warn("track header refused: not a CMAF header", "point", point, "track", track, "bytes", len(data), "remote", r.RemoteAddr, "err", err)
		http.Error(w, "track header refused: not a CMAF header: "+err.Error(), http.StatusBadRequest)
		return
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" || ct == "application/octet-stream" {
		ct = "video/mp4"
	}
	if err := s.st.Backend().PutInit(r.Context(), point, track, data, ct); err != nil {
		s.log.Error("store init", "point", point, "track", track, "err", err)
		http.Error(w, "cannot store init", http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	s.inits[point+"/"+track] = initEntry{data: data, contentType: ct, header: h}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// init returns a track's header, cached after the first read.
func (s *Sender) init(ctx context.Context, point, track string) (initEntry, error) {
	key := point + "/" + track
	s.mu.Lock()
	ie, ok := s.inits[key]
	s.mu.Unlock()
	if ok {
		return ie, nil
	}
	data, ct, err := s.st.Backend().Init(ctx, point, track)
	if err != nil {
		return initEntry{}, err
	}
	if ct == "" {
		ct = "video/mp4"
	}
	ie = initEntry{data: data, contentType: ct}
	s.mu.Lock()
	s.inits[key] = ie
	s.mu.Unlock()
	return ie, nil
}

// maxHaveQuery bounds the entries of one HaveQuery.
const maxHaveQuery = 200_000

// Missing returns the blocks and track headers of q this sender does not
// hold (what POST /internal/v1/missing answers).
func (s *Sender) Missing(ctx context.Context, q cluster.HaveQuery) (cluster.HaveQuery, error) {
	var res cluster.HaveQuery
	for _, b := range q.Blocks {
		if !blockstore.ValidBlock(b) {
			return res, fmt.Errorf("invalid block %s", b)
		}
		if _, err := s.st.Backend().StatBlock(ctx, b); err != nil {
			if !errors.Is(err, blockstore.ErrNotFound) {
				return res, fmt.Errorf("stat block %s: %w", b, err)
			}
			res.Blocks = append(res.Blocks, b)
		}
	}
	for _, k := range q.Inits {
		point, track, ok := splitTrack(k)
		if !ok || !blockstore.ValidBlock(cluster.BlockID{Point: point, Track: track}) {
			return res, fmt.Errorf("invalid track %q", k)
		}
		if _, err := s.init(ctx, point, track); err != nil {
			if !errors.Is(err, blockstore.ErrNotFound) {
				return res, fmt.Errorf("init %s: %w", k, err)
			}
			res.Inits = append(res.Inits, k)
		}
	}
	return res, nil
}

func (s *Sender) missing(w http.ResponseWriter, r *http.Request) {
	var q cluster.HaveQuery
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBatch)).Decode(&q); err != nil {
		http.Error(w, "bad query: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(q.Blocks)+len(q.Inits) > maxHaveQuery {
		http.Error(w, fmt.Sprintf("too many entries (at most %d a query)", maxHaveQuery), http.StatusRequestEntityTooLarge)
		return
	}
	res, err := s.Missing(r.Context(), q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

// maxDeleteBody bounds a delete request's body (MaxDeleteBlocks IDs of
// long names fit).
const maxDeleteBody = 8 << 20

// errBadDelete marks a delete request that names no block or an invalid one.
var errBadDelete = errors.New("bad delete request")

// Delete deletes the blocks of req from mass storage and RAM (what POST
// /internal/v1/delete does); pinned blocks stay in RAM until their last
// pin goes (blockstore.DeleteDeferred), so no session being served
// breaks. Every ID is checked before anything is deleted (errBadDelete).
// A backend that does not delete (blockstore.ErrReadOnly) fails the
// request at its first block.
func (s *Sender) Delete(ctx context.Context, req cluster.DeleteRequest) (cluster.DeleteResult, error) {
	var res cluster.DeleteResult
	if len(req.Blocks) == 0 {
		return res, fmt.Errorf("%w: no blocks", errBadDelete)
	}
	for _, b := range req.Blocks {
		if !blockstore.ValidBlock(b) {
			return res, fmt.Errorf("%w: invalid block %s", errBadDelete, b)
		}
	}
	for _, b := range req.Blocks {
		out, err := s.st.Delete(ctx, b)
		if err != nil {
			return res, fmt.Errorf("delete block %s: %w", b, err)
		}
		switch out {
		case blockstore.Deleted:
			res.Deleted++
		case blockstore.DeleteAbsent:
			res.Absent++
		case blockstore.DeleteDeferred:
			res.Deferred++
		}
		s.m.deleted.WithLabelValues(out.String()).Inc()
	}
	return res, nil
}

func (s *Sender) delete(w http.ResponseWriter, r *http.Request) {
	var req cluster.DeleteRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxDeleteBody)).Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("delete request over %d bytes", maxDeleteBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "bad delete request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(req.Blocks) > cluster.MaxDeleteBlocks {
		http.Error(w, fmt.Sprintf("too many blocks (at most %d a request)", cluster.MaxDeleteBlocks), http.StatusRequestEntityTooLarge)
		return
	}
	res, err := s.Delete(r.Context(), req)
	switch {
	case errors.Is(err, errBadDelete):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case errors.Is(err, blockstore.ErrReadOnly):
		http.Error(w, err.Error(), http.StatusConflict)
		return
	case err != nil:
		s.log.Error("delete blocks", "err", err)
		http.Error(w, "cannot delete blocks", http.StatusInternalServerError)
		return
	}
	if res.Deleted+res.Deferred > 0 {
		s.log.Debug("blocks deleted", "deleted", res.Deleted, "absent", res.Absent, "deferred", res.Deferred)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

// Stats returns the sender's counters.
func (s *Sender) Stats() cluster.SenderStats {
	st := s.st.Stats()
	return cluster.SenderStats{
		ID: s.o.ID, Blocks: st.Blocks, RAMBytes: st.RAMBytes, RAMBudget: st.RAMBudget,
		PinnedBlocks: st.PinnedBlocks, PinnedBytes: st.PinnedBytes,
		SendsRAM: s.sendsRAM.Load(), SendsDisk: s.sendsDisk.Load(),
		Refused: s.refused.Load(), LeaseExpiries: st.LeaseExpiries, Sessions: s.validSessions(),
	}
}

func (s *Sender) stats(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.Stats())
}

// report queues a sent-report for the scheduler of the session, if known.
func (s *Sender) report(rep cluster.SentReport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessions[rep.Session]
	if ss == nil {
		s.m.unattributed.Inc()
		return
	}
	q := append(s.reports[ss.sched], rep)
	if len(q) > s.o.MaxReports {
		q = q[len(q)-s.o.MaxReports:]
	}
	s.reports[ss.sched] = q
}

func (s *Sender) String() string { return fmt.Sprintf("sender %s", s.o.ID) }
