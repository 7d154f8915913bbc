// Package puller makes an origin pull its publishing points from ingests
// (docs/origin.md, "Pulling from ingests"): for each configured point it polls the StreamManifest of the
// ingest in use, opens GET Streams(<id>) for every stream listed, and feeds
// each body through the ingest's own Receive — the code path of a push — into
// the local store. When a pull fails (connection error, end of body without
// end of stream, nothing stored for about two fragment durations) it
// resumes from the next ingest with Streams(<id>)/StartTime(<track>=<last
// stored start + 1>,...), so the archive has no gap and, the store being
// keyed by (track, start), no duplicate.
//
// Every origin that pulls the same ingests stores byte-identical fragments
// (ingest normalisation is idempotent) under the same track ids (derived
// from the content), and adopts the ingest's anchor (media time zero on the
// wall clock) before its first fragment, so their manifests agree.
package puller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/ingest"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/metrics"
	"github.com/sluice-media/sluice/internal/store"
)

// Receiver stores an ingest body: *ingest.Handler.
type Receiver interface {
	Receive(ctx context.Context, point *store.Point, streamID string, body io.Reader, opts ingest.ReceiveOptions) (ingest.Result, error)
}

// Options configure a Puller.
type Options struct {
	// Ingests are the base URLs of the ingests, in order of preference.
	Ingests []string
	// Points are the publishing points to pull (their tokens are sent).
	Points []config.Point
	// Poll is the interval of StreamManifest polls (0: 1 s).
	Poll time.Duration
	// Stall fails a pull over when it stores nothing for this long (0: two
	// fragment durations, at least MinStall).
	Stall time.Duration
	// MaxPulls bounds the streams pulled at a time over every point (0:
	// unbounded). Live streams are started first; a stream over the bound
	// is skipped (logged, sluice_pull_streams_skipped_total) and taken up
	// when a pull ends.
	MaxPulls int
	// OnRestart is the restart policy of points that name none
	// (config.Config.OnRestart): under "archive" the origin archives the
	// presentation before each encoder restart the ingest reports, as the
	// ingest does.
	OnRestart string
	// Log receives events; nil discards them.
	Log *slog.Logger
	// Registry, if not nil, gets the puller's metrics.
	Registry *prometheus.Registry
}

// MinStall is the shortest stall timeout when it derives from fragment
// durations.
const MinStall = 3 * time.Second

// defaultFragment stands in for the fragment duration before one is known.
const defaultFragment = 2 * time.Second

// Puller pulls publishing points from ingests. Run drives it.
type Puller struct {
	st     *store.Store
	recv   Receiver
	opts   Options
	log    *slog.Logger
	client *http.Client // stream pulls: no overall timeout
	query  *http.Client // StreamManifest polls
	points []*pointPuller

	fragments *prometheus.CounterVec // point, ingest, result
	failovers *prometheus.CounterVec // point, reason
	connected prometheus.Gauge
	failTime  *prometheus.GaugeVec // point
	skipped   prometheus.Counter

	// active counts the pulls in progress (opts.MaxPulls).
	active atomic.Int64
}

// New returns a puller of opts.Points from opts.Ingests into st.
func New(st *store.Store, recv Receiver, opts Options) *Puller {
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.Ingests = append([]string(nil), opts.Ingests...)
	for i, in := range opts.Ingests {
		opts.Ingests[i] = strings.TrimSuffix(in, "/")
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 10 * time.Second}).DialContext,
		ResponseHeaderTimeout: 5 * time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       60 * time.Second,
		DisableCompression:    true,
	}
	f := metrics.NewFactory(opts.Registry)
	p := &Puller{
		st: st, recv: recv, opts: opts, log: log,
		client:    &http.Client{Transport: tr},
		query:     &http.Client{Transport: tr, Timeout: 3 * time.Second},
		fragments: f.CounterVec("sluice_pull_fragments_total", "Fragments an origin pulled from ingests, by point, ingest and result (added, duplicate).", "point", "ingest", "result"),
		failovers: f.CounterVec("sluice_pull_failovers_total", "Pulls failed over to the next ingest, by point and reason (error, eof, stall, manifest).", "point", "reason"),
		connected: f.Gauge("sluice_pull_streams_connected", "Ingest streams being pulled right now."),
		failTime:  f.GaugeVec("sluice_pull_last_failover_seconds", "Time from the last failed pull to the first fragment stored from the next ingest.", "point"),
		skipped:   f.Counter("sluice_pull_streams_skipped_total", "Streams an ingest listed that were not pulled because --max-pulls pulls were in progress (counted per poll)."),
	}
	if err := f.Err(); err != nil {
		panic(err) // names are fixed: only a programming error gets here
	}
	for _, pc := range opts.Points {
		p.points = append(p.points, &pointPuller{p: p, cfg: pc, streams: map[string]*streamState{}, seen: map[string]time.Time{},
			archived: map[string]bool{}})
	}
	return p
}

// Run pulls until ctx ends.
func (p *Puller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, pp := range p.points {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pp.run(ctx)
		}()
	}
	p.log.Info("pulling from ingests", "ingests", strings.Join(p.opts.Ingests, ","), "points", len(p.points))
	wg.Wait()
}

// Ready reports why the origin cannot serve what it pulls: no ingest
// answered a StreamManifest recently, or a live stream it pulls has not been
// connected for a while. It judges the streams that carry media: a stream
// that never received a fragment is not listed by the ingest, and an
// abandoned one (see ingest.StreamStatus), or one over the pull bound, is
// not waited for. A live stream just listed, or whose pull is failing over,
// has the grace of a few polls.
func (p *Puller) Ready() error {
	if len(p.opts.Ingests) == 0 {
		return errors.New("no ingest configured")
	}
	var errs []error
	fresh := p.grace()
	now := time.Now()
	for _, pp := range p.points {
		pp.mu.Lock()
		switch {
		case pp.lastOK.IsZero() || now.Sub(pp.lastOK) > fresh:
			err := pp.lastErr
			if err == nil {
				err = errors.New("not polled yet")
			}
			errs = append(errs, fmt.Errorf("point %s: no ingest reachable: %w", pp.cfg.Name, err))
		default:
			for _, id := range pp.live {
				s := pp.streams[id]
				if s != nil && s.connected {
					continue
				}
				since := pp.seen[id]
				if s != nil && s.lastConnected.After(since) {
					since = s.lastConnected
				}
				if s == nil && pp.skipped[id] {
					continue // over the pull bound: logged and counted
				}
				if now.Sub(since) > fresh {
					errs = append(errs, fmt.Errorf("point %s: stream %s is not being pulled", pp.cfg.Name, id))
				}
			}
		}
		pp.mu.Unlock()
	}
	return errors.Join(errs...)
}

// grace is how long a poll stays fresh, and how long a live stream may go
// unpulled before the origin is not ready.
func (p *Puller) grace() time.Duration { return max(3*p.opts.Poll, 5*time.Second) }

// pointPuller pulls one publishing point.
type pointPuller struct {
	p   *Puller
	cfg config.Point
	// cur indexes (modulo the count) the ingest in use; a failed pull
	// moves it on with compare-and-swap, so that streams failing together
	// move once.
	cur atomic.Int64

	mu      sync.Mutex
	lastOK  time.Time
	lastErr error
	live    []string // streams live at the ingest (not ended, not abandoned), from the last poll
	ended   map[string]bool
	streams map[string]*streamState
	seen    map[string]time.Time // when each live stream was first listed
	skipped map[string]bool      // streams the last poll did not start (MaxPulls)
	// archived holds the restarts whose archiving was attempted (policy
	// archive), by restartKey.
	archived map[string]bool
	// lastRestarts is when the restarts were last refreshed at a
	// discontinuity of a pulled track.
	lastRestarts time.Time
}

// streamState is an active pull of one stream.
type streamState struct {
	connected     bool
	lastConnected time.Time          // when the last connected pull ended
	cancel        context.CancelFunc // stops the pull
}

func (pp *pointPuller) ingest(i int64) string {
	n := int64(len(pp.p.opts.Ingests))
	return pp.p.opts.Ingests[((i%n)+n)%n]
}

// advance moves from ingest i to the next one, once.
func (pp *pointPuller) advance(i int64, reason string, err error) {
	if pp.cur.CompareAndSwap(i, i+1) {
		pp.p.failovers.WithLabelValues(pp.cfg.Name, reason).Inc()
		pp.p.log.Warn("ingest failover", "point", pp.cfg.Name, "from", pp.ingest(i), "to", pp.ingest(i+1),
			"reason", reason, "err", err)
	}
}

// othersEvery is how many polls pass between looks at the ingests not in
// use, for streams that only they hold (an encoder pushing to B alone).
const othersEvery = 5

func (pp *pointPuller) run(ctx context.Context) {
	failures := 0
	for poll := 0; ; poll++ {
		i := pp.cur.Load()
		base := pp.ingest(i)
		sm, err := pp.p.manifest(ctx, base, pp.cfg)
		if ctx.Err() != nil {
			return
		}
		wait := pp.p.opts.Poll
		if err != nil {
			pp.mu.Lock()
			pp.lastErr = err
			pp.mu.Unlock()
			failures++
			pp.advance(i, "manifest", err)
			if failures < len(pp.p.opts.Ingests) {
				wait = 0 // try the next ingest at once
			}
		} else {
			failures = 0
			if poll%othersEvery == 0 {
				pp.merge(ctx, sm, i)
			}
			pp.update(ctx, sm)
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}

// merge adds to sm the streams that only the other ingests list.
func (pp *pointPuller) merge(ctx context.Context, sm *ingest.StreamManifest, cur int64) {
	have := map[string]bool{}
	for _, s := range sm.Streams {
		have[s.ID] = true
	}
	for k := int64(1); k < int64(len(pp.p.opts.Ingests)); k++ {
		other, err := pp.p.manifest(ctx, pp.ingest(cur+k), pp.cfg)
		if err != nil {
			continue
		}
		for _, s := range other.Streams {
			if !have[s.ID] {
				have[s.ID] = true
				sm.Streams = append(sm.Streams, s)
			}
		}
		if sm.Anchor.IsZero() {
			sm.Anchor = other.Anchor
		}
	}
}

// update records a StreamManifest and starts pulls for its streams: live
// ones first, then those whose local copy lacks fragments (ended or
// abandoned at the ingest), within the pull bound. The pull of an abandoned
// stream whose fragments are all here is stopped.
func (pp *pointPuller) update(ctx context.Context, sm *ingest.StreamManifest) {
	var live []string
	ended := map[string]bool{}
	for _, s := range sm.Streams {
		switch {
		case s.Ended():
			ended[s.ID] = true
		case !s.Abandoned:
			live = append(live, s.ID)
		}
	}
	sort.Strings(live)
	var point *store.Point
	if len(sm.Streams) > 0 {
		var err error
		if point, err = pp.p.st.Create(pp.cfg.Name); err != nil {
			pp.p.log.Error("open publishing point", "point", pp.cfg.Name, "err", err)
			return
		}
		pp.adopt(point, sm.Anchor)
		pp.restarts(point, sm.Restarts)
	}
	now := time.Now()
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.lastOK, pp.lastErr, pp.live, pp.ended = now, nil, live, ended
	seen := map[string]time.Time{}
	for _, id := range live {
		seen[id] = now
		if t, ok := pp.seen[id]; ok {
			seen[id] = t
		}
	}
	pp.seen = seen
	// Live streams first: they are what players watch now.
	order := make([]ingest.StreamStatus, 0, len(sm.Streams))
	for _, s := range sm.Streams {
		if !s.Ended() && !s.Abandoned {
			order = append(order, s)
		}
	}
	for _, s := range sm.Streams {
		if s.Ended() || s.Abandoned {
			order = append(order, s)
		}
	}
	skipped := map[string]bool{}
	for _, s := range order {
		done := (s.Ended() || s.Abandoned) && complete(point, s)
		if st := pp.streams[s.ID]; st != nil {
			if done && s.Abandoned && st.cancel != nil {
				st.cancel() // nothing more will come
			}
			continue
		}
		if done {
			continue
		}
		if limit := pp.p.opts.MaxPulls; limit > 0 && pp.p.active.Load() >= int64(limit) {
			skipped[s.ID] = true
			pp.p.skipped.Inc()
			if !pp.skipped[s.ID] {
				pp.p.log.Warn("not pulling a stream: --max-pulls pulls in progress", "point", pp.cfg.Name, "stream", s.ID, "max_pulls", limit)
			}
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		st := &streamState{cancel: cancel}
		pp.streams[s.ID] = st
		pp.p.active.Add(1)
		go func() {
			defer cancel()
			defer pp.p.active.Add(-1)
			pp.pullStream(sctx, s.ID, st)
		}()
	}
	pp.skipped = skipped
}

// adopt takes the ingest's anchor when the point has none.
func (pp *pointPuller) adopt(point *store.Point, anchor time.Time) {
	if ok, err := point.AdoptAnchor(anchor); err != nil {
		pp.p.log.Warn("adopt anchor", "point", pp.cfg.Name, "err", err)
	} else if ok {
		pp.p.log.Info("adopted the ingest's anchor", "point", pp.cfg.Name, "anchor", anchor)
	}
}

// restarts adopts the encoder restarts the ingest reports (their
// boundaries split this origin's manifests as they split the ingest's) and,
// under the archive policy, archives the presentation before each once this
// origin holds it all: once every track of the restarted stream holds a
// fragment after the boundary, the pull (in time order) has delivered
// everything before it.
func (pp *pointPuller) restarts(point *store.Point, rs []store.Restart) {
	for _, r := range rs {
		if ok, err := point.AdoptRestart(r); err != nil {
			pp.p.log.Warn("adopt encoder restart", "point", pp.cfg.Name, "err", err)
		} else if ok {
			pp.p.log.Info("adopted the ingest's encoder restart", "point", pp.cfg.Name, "stream", r.Stream,
				"offset_seconds", float64(r.OffsetNs)/1e9)
		}
	}
	policy := pp.cfg.OnRestart
	if policy == "" {
		policy = pp.p.opts.OnRestart
	}
	if policy != config.RestartArchive {
		return
	}
	for _, r := range point.Restarts() {
		key := restartKey(r)
		pp.mu.Lock()
		done := pp.archived[key]
		pp.mu.Unlock()
		if done || r.Archived != "" || !after(point, r) {
			continue
		}
		pp.mu.Lock()
		pp.archived[key] = true
		pp.mu.Unlock()
		asset, err := pp.p.st.ArchiveRestart(point.Name, r)
		switch {
		case err != nil:
			pp.p.log.Error("archive the presentation before an encoder restart", "point", pp.cfg.Name, "err", err)
		case asset != "":
			pp.p.log.Info("encoder restart: the presentation before it is archived", "point", pp.cfg.Name, "asset", asset)
		}
	}
}

func restartKey(r store.Restart) string {
	return r.Stream + "/" + strconv.FormatInt(r.OffsetNs, 10) + "/" + r.PushStart.UTC().Format(time.RFC3339Nano)
}

// after reports whether every track of the restarted stream holds a
// fragment at or after its boundary.
func after(point *store.Point, r store.Restart) bool {
	for _, s := range point.Streams() {
		if s.ID != r.Stream {
			continue
		}
		for _, id := range s.Tracks {
			st, ok := point.Stats(id)
			e, has := r.Ends[id]
			if !ok || st.Count == 0 || (has && st.Last < e) {
				return false
			}
		}
		return true
	}
	return false
}

// refreshRestarts adopts the ingest's restarts before a pulled fragment
// that does not continue its track is stored (at most once a second): the
// first fragments of a restarted encoder arrive before the next poll, and
// the manifests must split at the boundary from the start.
func (pp *pointPuller) refreshRestarts(ctx context.Context, base string, point *store.Point, track string, f *media.Fragment) {
	st, ok := point.Stats(track)
	if !ok || st.Count == 0 {
		return
	}
	ref, err := point.Lookup(track, st.Last)
	if err != nil || ref.End() == f.Info.Start {
		return
	}
	pp.mu.Lock()
	recent := time.Since(pp.lastRestarts) < time.Second
	if !recent {
		pp.lastRestarts = time.Now()
	}
	pp.mu.Unlock()
	if recent {
		return
	}
	if sm, err := pp.p.manifest(ctx, base, pp.cfg); err == nil {
		pp.restarts(point, sm.Restarts)
	}
}

// complete reports whether the local copy of an ended (or abandoned) ingest
// stream holds its newest fragments and, if it ended, has ended too.
func complete(point *store.Point, s ingest.StreamStatus) bool {
	if point == nil {
		return false
	}
	for _, t := range s.Tracks {
		st, ok := point.Stats(t.ID)
		if !ok || (s.Ended() && !st.Ended) {
			return false
		}
		if t.Fragments > 0 && (st.Count == 0 || st.Last < t.Last) {
			return false
		}
	}
	return true
}

// manifest fetches the StreamManifest of a point from an ingest.
func (p *Puller) manifest(ctx context.Context, base string, pc config.Point) (*ingest.StreamManifest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/"+pc.Name+".isml/StreamManifest", nil)
	if err != nil {
		return nil, fmt.Errorf("stream manifest request: %w", err)
	}
	auth(req, pc)
	resp, err := p.query.Do(req)
	if err != nil {
		return nil, fmt.Errorf("stream manifest from %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("stream manifest from %s: %s", base, resp.Status)
	}
	var sm ingest.StreamManifest
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&sm); err != nil {
		return nil, fmt.Errorf("stream manifest from %s: %w", base, err)
	}
	return &sm, nil
}

func auth(req *http.Request, pc config.Point) {
	if pc.Token != "" {
		req.Header.Set("Authorization", "Bearer "+pc.Token)
	}
}

// outcome is how one pull attempt ended.
type outcome struct {
	ended    bool // the stream ended (empty mfra)
	progress bool // something was stored or recognised
	reason   string
	err      error
}

// pullStream pulls one stream until it ends or ctx does, failing over
// between ingests.
func (pp *pointPuller) pullStream(ctx context.Context, id string, st *streamState) {
	defer func() {
		pp.mu.Lock()
		delete(pp.streams, id)
		pp.mu.Unlock()
	}()
	var failedAt time.Time
	idle := 0
	for ctx.Err() == nil {
		i := pp.cur.Load()
		o := pp.pullOnce(ctx, pp.ingest(i), id, st, &failedAt)
		if ctx.Err() != nil {
			return
		}
		if o.ended {
			pp.p.log.Info("pulled stream ended", "point", pp.cfg.Name, "stream", id, "ingest", pp.ingest(i))
			return
		}
		if failedAt.IsZero() || o.progress {
			failedAt = time.Now()
		}
		pp.advance(i, o.reason, o.err)
		if o.progress {
			idle = 0
			continue // resume from the next ingest at once
		}
		// Nothing came from this ingest either: back off a little, up to 5 s,
		// once every ingest has been tried.
		idle++
		if idle >= len(pp.p.opts.Ingests) {
			d := min(time.Duration(idle-len(pp.p.opts.Ingests)+1)*250*time.Millisecond, 5*time.Second)
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
	}
}

// resumeSpec says where to pull a stream from: from its start when nothing
// of it is stored here, else after the newest stored fragment of each track.
func resumeSpec(point *store.Point, id string) ingest.StartSpec {
	var info *store.StreamInfo
	for _, s := range point.Streams() {
		if s.ID == id {
			info = &s
		}
	}
	if info == nil {
		return ingest.StartSpec{Header: true}
	}
	spec := ingest.StartSpec{From: map[string]int64{}}
	for _, tid := range info.Tracks {
		if st, ok := point.Stats(tid); ok && st.Count > 0 {
			spec.From[tid] = st.Last + 1
		}
	}
	if len(spec.From) == 0 {
		return ingest.StartSpec{Header: true}
	}
	return spec
}

// stallAfter is how long a pull may store nothing before it fails over.
func (pp *pointPuller) stallAfter(frag time.Duration) time.Duration {
	if pp.p.opts.Stall > 0 {
		return pp.p.opts.Stall
	}
	return max(2*frag, MinStall)
}

// pullOnce is one GET Streams(<id>) from one ingest.
func (pp *pointPuller) pullOnce(ctx context.Context, base, id string, st *streamState, failedAt *time.Time) outcome {
	point, err := pp.p.st.Create(pp.cfg.Name)
	if err != nil {
		return outcome{reason: "error", err: fmt.Errorf("open point: %w", err)}
	}
	spec := resumeSpec(point, id)
	url := base + "/" + pp.cfg.Name + ".isml/" + spec.Path(id)
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, url, nil)
	if err != nil {
		return outcome{reason: "error", err: fmt.Errorf("pull request: %w", err)}
	}
	auth(req, pp.cfg)
	// Fragments in progress come chunk by chunk (low latency).
	req.Header.Set(ingest.ChunksHeader, "1")
	resp, err := pp.p.client.Do(req)
	if err != nil {
		return outcome{reason: "error", err: fmt.Errorf("pull %s: %w", url, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return outcome{reason: "error", err: fmt.Errorf("pull %s: %s", url, resp.Status)}
	}
	pp.mu.Lock()
	st.connected = true
	ingestEnded := pp.ended[id]
	pp.mu.Unlock()
	pp.p.connected.Inc()
	defer func() {
		pp.mu.Lock()
		st.connected = false
		st.lastConnected = time.Now()
		pp.mu.Unlock()
		pp.p.connected.Dec()
	}()
	pp.p.log.Info("pulling stream", "point", pp.cfg.Name, "stream", id, "ingest", base, "from", spec.Path(id))

	var stalled atomic.Bool
	frag := defaultFragment
	stall := pp.stallAfter(frag)
	watchdog := time.AfterFunc(stall, func() {
		stalled.Store(true)
		cancel()
	})
	defer watchdog.Stop()
	first := true
	hooks := ingest.Hooks{
		Before: func(track string, f *media.Fragment) {
			pp.refreshRestarts(reqCtx, base, point, track, f)
			if f.Info.Start >= 0 && point.Meta().Anchor.IsZero() {
				// Take the ingest's anchor before this first fragment
				// would set one from the local clock.
				if sm, err := pp.p.manifest(reqCtx, base, pp.cfg); err == nil {
					pp.adopt(point, sm.Anchor)
				}
			}
		},
		After: func(track string, f *media.Fragment, res store.AddResult) {
			if ti, err := point.TrackInfo(track); err == nil && ti.Timescale > 0 {
				d := time.Duration(float64(f.Info.Duration) / float64(ti.Timescale) * float64(time.Second))
				frag = max(frag, d)
			}
			watchdog.Reset(pp.stallAfter(frag))
			result := "duplicate"
			if res == store.Added {
				result = "added"
				if first && !failedAt.IsZero() {
					d := time.Since(*failedAt)
					pp.p.failTime.WithLabelValues(pp.cfg.Name).Set(d.Seconds())
					pp.p.log.Info("pull resumed: first fragment stored from the next ingest", "point", pp.cfg.Name,
						"stream", id, "ingest", base, "track", track, "start", f.Info.Start, "after", d.Round(time.Millisecond))
				}
				first = false
			}
			pp.p.fragments.WithLabelValues(pp.cfg.Name, base, result).Inc()
		},
	}
	res, err := pp.p.recv.Receive(reqCtx, point, id, resp.Body, ingest.ReceiveOptions{
		Resume: !spec.Header, Restart: !ingestEnded, Hooks: hooks,
		Marked: resp.Header.Get(ingest.ChunksHeader) == "1",
	})
	progress := res.Fragments > 0 || res.Duplicates > 0
	switch {
	case stalled.Load():
		return outcome{progress: progress, reason: "stall", err: fmt.Errorf("nothing stored from %s for %v", base, pp.stallAfter(frag))}
	case err != nil:
		return outcome{progress: progress, reason: "error", err: err}
	case res.Ended:
		return outcome{ended: true, progress: progress}
	}
	return outcome{progress: progress, reason: "eof", err: fmt.Errorf("%s ended the body without the end of the stream", base)}
}
