// Package distribution is Sluice's distribution tier (docs/distribution.md):
// a regional, content-aware caching reverse proxy in front of origins.
//
// It understands the origin's URL space (urls package) and its manifests:
//
//   - It goes upstream only when a client asks: a channel nobody watches
//     costs nothing.
//   - Concurrent misses for one URL share one upstream request (a flight);
//     every waiter gets the status and headers as soon as they are known
//     and the body as it arrives.
//   - Responses are kept in a RAM cache with a byte budget (LRU) for their
//     Cache-Control lifetime: manifests for about one fragment, fragments
//     (immutable) until they fall out of the last Window of their live
//     channel or out of the budget.
//   - Fragment, init-segment and HLS media-playlist requests are checked
//     against the latest manifest of their point (the DASH MPD for
//     tracks/<id>/..., the Smooth Manifest for QualityLevels(..)/Fragments(..))
//     and answered 404 locally when the manifest cannot contain them: a
//     malformed name, an unknown track or point, a time more than Slack
//     fragment durations past the live edge or before the DVR window, or a
//     time inside the listed span where no fragment starts. A stale manifest
//     is refreshed (once per its lifetime, coalesced) before a refusal.
//   - Origins are tried in configured order, skipping those whose circuit
//     breaker is open; connection errors, timeouts and 5xx move the same
//     client request on to the next origin, and a body that breaks off is
//     resumed from the next origin with Range + If-Range, so players see no
//     5xx while one origin works.
//
// ETag, Cache-Control, Content-Type, Last-Modified and CORS headers pass
// through unchanged, Age counts the time spent in this cache, and Range and
// If-None-Match are answered from the cache.
package distribution

import (
	"bytes"
	"context"
	"github.com/sluice-media/sluice/internal/manifest"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/httpx"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/urls"
)

// staleKeep is how long an expired entry is kept for revalidation and for
// answering while no origin responds (stale-if-error).
const staleKeep = time.Minute

// flightTimeout bounds one upstream fetch with all its failovers.
const flightTimeout = 2 * time.Minute

// Object kinds (metric label values).
const (
	kindManifest = "manifest"
	kindFragment = "fragment"
	kindInit     = "init"
	kindPart     = "part" // an LL-HLS part (part-<start>.m4s)
)

// Layout formats: which manifest a request is checked against.
const (
	formatDASH   = "dash"
	formatSmooth = "smooth"
	formatHLS    = "hls"
)

// Proxy is the distribution handler. Create it with New, run its
// background work with Run, and serve it as an http.Handler.
type Proxy struct {
	cfg     config.Distribution
	log     *slog.Logger
	m       *metricSet
	cache   *cache
	flights group
	up      *upstream
	now     func() time.Time

	mu     sync.Mutex
	points map[string]*pointLayouts

	lastClient atomic.Int64 // unix nanoseconds of the last client request
}

// pointLayouts are the latest layouts of one point, by manifest format.
type pointLayouts struct {
	dash, smooth *layout
	// seen is the latest start (seconds) of a fragment fetched for the
	// point: the live edge moves on with it even while nobody reloads the
	// manifest a layout comes from (HLS players check against the MPD).
	seen float64
}

func (pl *pointLayouts) get(format string) *layout {
	if pl == nil {
		return nil
	}
	if format == formatSmooth {
		return pl.smooth
	}
	return pl.dash
}

// New builds a distribution proxy for the configured origins, registering
// its metrics in reg.
func New(cfg config.Distribution, reg prometheus.Registerer, log *slog.Logger) (*Proxy, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{cfg: cfg, log: log, now: time.Now, points: map[string]*pointLayouts{}}
	p.cache = newCache(int64(cfg.CacheBytes), func(reason string, n int) {
		if p.m != nil {
			p.m.evictions.WithLabelValues(reason).Add(float64(n))
		}
	})
	m, err := newMetrics(reg, p.cache.stats, p.flights.inFlight)
	if err != nil {
		return nil, err
	}
	p.m = m
	if p.up, err = newUpstream(cfg.Origins, cfg.UpstreamTimeout, cfg.Backoff, m, log); err != nil {
		return nil, err
	}
	return p, nil
}

// Ready reports whether some origin is usable (its breaker is closed).
func (p *Proxy) Ready() bool { return p.up.ready() }

// Run sweeps the cache (live window, expired entries) and keeps upstream
// connections warm while clients are active, until ctx ends.
func (p *Proxy) Run(ctx context.Context) {
	sweep := time.NewTicker(2 * time.Second)
	defer sweep.Stop()
	var ka <-chan time.Time
	if p.cfg.KeepAlive > 0 {
		t := time.NewTicker(p.cfg.KeepAlive)
		defer t.Stop()
		ka = t.C
	}
	for {
		select {
		case <-ctx.Done():
			p.up.close()
			return
		case <-sweep.C:
			p.sweep()
		case <-ka:
			last := time.Unix(0, p.lastClient.Load())
			if p.now().Sub(last) < max(2*p.cfg.KeepAlive, time.Minute) {
				p.up.ping(ctx)
			}
		}
	}
}

// object is a classified client request.
type object struct {
	path   string // escaped URL path: cache key and upstream path
	point  string
	kind   string // manifest, fragment, init
	format string // manifests: dash, smooth, hls
	// layoutFormat names the manifest the request is checked against
	// (dash or smooth; "" for none), trackKey the track in it.
	layoutFormat string
	trackKey     string
	t            int64
	hasT         bool
}

// classify parses a client URL. reason is non-empty for a URL the origin
// cannot serve.
func classify(r *http.Request) (object, string) {
	pp, rest, ok := urls.Split(r.URL.Path)
	if !ok || !store.ValidPointName(pp) {
		return object{}, refuseResource
	}
	obj := object{path: r.URL.EscapedPath(), point: pp}
	switch {
	case rest == "Manifest":
		obj.kind, obj.format = kindManifest, formatSmooth
	case rest == "manifest.mpd" || rest == ".mpd":
		obj.kind, obj.format = kindManifest, formatDASH
	case rest == "master.m3u8" || rest == ".m3u8":
		obj.kind, obj.format = kindManifest, formatHLS
	case strings.HasPrefix(rest, "QualityLevels("):
		br, name, t, ok := urls.SmoothFragment(rest)
		if !ok {
			return obj, refuseMalformed
		}
		obj.kind, obj.layoutFormat, obj.trackKey, obj.t, obj.hasT = kindFragment, formatSmooth, smoothKey(name, br), t, true
	default:
		track, file, ok := urls.TrackFile(rest)
		if !ok {
			return obj, refuseResource
		}
		if !store.ValidID(track) {
			return obj, refuseMalformed
		}
		obj.layoutFormat, obj.trackKey = formatDASH, track
		switch {
		case file == "media.m3u8":
			obj.kind, obj.format = kindManifest, formatHLS
			// A blocking playlist reload (LL-HLS) is its own object:
			// forwarded with its query, cached under it, coalesced.
			if q := manifest.DeliveryDirectives(r.URL.Query()); q != "" {
				obj.path += "?" + q
			}
		case strings.HasPrefix(file, "part-") && strings.HasSuffix(file, ".m4s"):
			t, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(file, "part-"), ".m4s"), 10, 64)
			if err != nil || "part-"+strconv.FormatInt(t, 10)+".m4s" != file {
				return obj, refuseMalformed
			}
			// Parts start anywhere in a fragment: only the track is
			// checked. A part not there yet (a preload hint) waits at the
			// origin; concurrent requests for it share one upstream wait.
			obj.kind = kindPart
		case file == "init.mp4":
			obj.kind = kindInit
		case strings.HasSuffix(file, ".m4s"), strings.HasSuffix(file, ".vtt"):
			// <t>.vtt: a text fragment as WebVTT (HLS), the same listed
			// time as <t>.m4s.
			ext := file[len(file)-4:]
			t, err := strconv.ParseInt(strings.TrimSuffix(file, ext), 10, 64)
			if err != nil || strconv.FormatInt(t, 10)+ext != file {
				return obj, refuseMalformed
			}
			obj.kind, obj.t, obj.hasT = kindFragment, t, true
		default:
			return obj, refuseResource
		}
	}
	return obj, ""
}

// SetUpstreamQuery makes every fetch from an origin carry the query q
// returns (e.g. a signed-URL token, for origins that require one). Call
// it before serving.
func (p *Proxy) SetUpstreamQuery(q func() string) { p.up.query = q }

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	httpx.SetCORS(w.Header())
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		httpx.Preflight(w)
		return
	default:
		p.m.refused.WithLabelValues(refuseMethod).Inc()
		httpx.MethodNotAllowed(w)
		return
	}
	p.lastClient.Store(p.now().UnixNano())
	obj, reason := classify(r)
	if reason == "" {
		reason = p.check(r.Context(), obj)
	}
	if reason != "" {
		p.refuse(w, r, reason)
		return
	}
	p.serve(w, r, obj)
}

// refuse answers 404 without going upstream.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, reason string) {
	p.m.refused.WithLabelValues(reason).Inc()
	p.log.Debug("refused", "path", r.URL.Path, "reason", reason)
	maxAge := 60
	switch reason {
	case refuseFuture, refuseTrack, refusePoint:
		// May become valid soon (the edge moves, a track or point appears).
		maxAge = 2
	case refusePast, refuseUnlisted:
		maxAge = 10
	}
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(maxAge))
	http.Error(w, "not found ("+strings.ReplaceAll(reason, "_", " ")+")", http.StatusNotFound)
}

// check returns the refusal reason of a request that its point's manifest
// cannot contain, or "". Without a usable manifest (no origin answers, or
// the manifest is not understood) requests pass: refusing is an
// optimisation, never a reason to fail a player.
func (p *Proxy) check(ctx context.Context, obj object) string {
	if obj.layoutFormat == "" {
		return ""
	}
	l := p.layoutOf(ctx, obj.point, obj.layoutFormat, false)
	if l == nil {
		return ""
	}
	reason := p.checkIn(l, obj)
	if reason != "" && !p.now().Before(l.expires) {
		// The manifest may be out of date: refresh it once, then decide.
		if l = p.layoutOf(ctx, obj.point, obj.layoutFormat, true); l == nil {
			return ""
		}
		reason = p.checkIn(l, obj)
	}
	return reason
}

func (p *Proxy) checkIn(l *layout, obj object) string {
	if !obj.hasT {
		switch {
		case l.opaque:
			return ""
		case l.missing:
			return refusePoint
		case l.tracks[obj.trackKey] == nil:
			return refuseTrack
		}
		return ""
	}
	return l.check(obj.trackKey, obj.t, p.cfg.Slack, p.now())
}

// manifestPath is the URL of the manifest a layout comes from.
func manifestPath(point, format string) string {
	if format == formatSmooth {
		return "/" + point + ".isml/Manifest"
	}
	return "/" + point + ".isml/manifest.mpd"
}

// layoutOf returns the latest layout of a point's manifest, fetching the
// manifest (through the cache, coalesced with client requests for it)
// when there is none or refresh is set and the cached one is stale.
func (p *Proxy) layoutOf(ctx context.Context, point, format string, refresh bool) *layout {
	p.mu.Lock()
	l := p.points[point].get(format)
	p.mu.Unlock()
	if l != nil && !refresh {
		return l
	}
	obj := object{path: manifestPath(point, format), point: point, kind: kindManifest, format: format}
	e, err := p.obtain(ctx, obj)
	if err != nil {
		p.log.Debug("no manifest to check against", "point", point, "format", format, "err", err)
		return l
	}
	p.mu.Lock()
	nl := p.points[point].get(format)
	p.mu.Unlock()
	if nl == nil || nl.expires.Before(e.expires) {
		// A cache hit: learn from the entry itself.
		nl = p.learn(obj, e)
	}
	if nl == nil {
		return l
	}
	return nl
}

// learn records the layout of a manifest response (DASH MPD or Smooth
// Manifest); an error status marks the point missing for the response's
// lifetime.
func (p *Proxy) learn(obj object, e *entry) *layout {
	if obj.kind != kindManifest || (obj.format != formatDASH && obj.format != formatSmooth) {
		return nil
	}
	var l *layout
	switch {
	case e.status == http.StatusOK:
		var err error
		if obj.format == formatSmooth {
			l, err = parseSmooth(e.body)
		} else {
			l, err = parseMPD(e.body)
		}
		if err != nil {
			p.log.Warn("manifest not understood; its requests pass unchecked", "path", obj.path, "err", err)
			l = &layout{opaque: true}
		}
	case e.status == http.StatusNotFound || e.status == http.StatusGone:
		l = &layout{missing: true}
	default:
		return nil
	}
	l.fetched, l.expires = e.date, e.expires
	if !l.expires.After(l.fetched) {
		// An uncacheable manifest is still good for a second.
		l.expires = l.fetched.Add(time.Second)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pl := p.points[obj.point]
	if pl == nil {
		pl = &pointLayouts{}
		p.points[obj.point] = pl
	}
	if obj.format == formatSmooth {
		pl.smooth = l
	} else {
		pl.dash = l
	}
	return l
}

// timelineOf returns the timeline a fragment request belongs to.
func (p *Proxy) timelineOf(obj object) *timeline {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.points[obj.point].get(obj.layoutFormat).track(obj.trackKey)
}

// listed reports whether the fragment is listed by the point's manifest.
func (p *Proxy) listed(obj object) bool {
	tl := p.timelineOf(obj)
	return obj.hasT && tl != nil && tl.has(obj.t)
}

// liveEdge returns whether a point is live and its edge in seconds.
func (p *Proxy) liveEdge(point string) (bool, float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pl := p.points[point]
	if pl == nil {
		return false, 0
	}
	live, edge := false, pl.seen
	for _, l := range []*layout{pl.dash, pl.smooth} {
		if l != nil && !l.missing && l.live {
			live = true
			edge = max(edge, l.edge())
		}
	}
	return live, edge
}

// outOfWindow reports whether a fragment lies before the kept window of
// its live channel.
func (p *Proxy) outOfWindow(e *entry) bool {
	if !e.frag || !e.hasAt || p.cfg.Window <= 0 {
		return false
	}
	live, edge := p.liveEdge(e.point)
	return live && e.at < edge-p.cfg.Window.Seconds()
}

// sweep drops fragments that left the live window, expired entries past
// staleKeep (fragment errors at once), and layouts long expired.
func (p *Proxy) sweep() {
	now := p.now()
	p.cache.sweep(func(e *entry) string {
		switch {
		case p.outOfWindow(e):
			return "window"
		case e.frag && !e.fresh(now):
			return "expired"
		case now.Sub(e.expires) > staleKeep:
			return "expired"
		}
		return ""
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, pl := range p.points {
		old := func(l *layout) bool { return l == nil || now.Sub(l.expires) > 10*time.Minute }
		if old(pl.dash) && old(pl.smooth) {
			delete(p.points, name)
		}
	}
}

// serve answers from the cache, or joins (or starts) the flight for the URL.
func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, obj object) {
	kind := obj.kind
	e := p.cache.get(obj.path)
	if e != nil && e.fresh(p.now()) {
		p.m.lookups.WithLabelValues(kind, "hit").Inc()
		p.writeEntry(w, r, e, "cache")
		return
	}
	f, leader, hit := p.flights.join(obj.path, func() *entry {
		if x := p.cache.get(obj.path); x != nil && x.fresh(p.now()) {
			return x
		}
		return nil
	}, e)
	switch {
	case hit != nil:
		p.m.lookups.WithLabelValues(kind, "hit").Inc()
		p.writeEntry(w, r, hit, "cache")
		return
	case leader:
		p.m.lookups.WithLabelValues(kind, "miss").Inc()
		go p.run(f, obj)
	default:
		p.m.lookups.WithLabelValues(kind, "coalesced").Inc()
		p.m.coalesced.Inc()
	}
	p.writeFlight(w, r, f, kind)
}

// obtain returns the complete response for obj: from the cache when fresh,
// else from a flight (joined or started), else a usable stale entry.
func (p *Proxy) obtain(ctx context.Context, obj object) (*entry, error) {
	e := p.cache.get(obj.path)
	if e != nil && e.fresh(p.now()) {
		return e, nil
	}
	f, leader, hit := p.flights.join(obj.path, func() *entry {
		if x := p.cache.get(obj.path); x != nil && x.fresh(p.now()) {
			return x
		}
		return nil
	}, e)
	if hit != nil {
		return hit, nil
	}
	if leader {
		go p.run(f, obj)
	}
	s, err := f.wait(ctx, func(s state) bool { return s.done })
	if err != nil {
		return nil, err
	}
	if s.err != nil {
		if f.stale != nil && p.now().Sub(f.stale.expires) < staleKeep {
			return f.stale, nil
		}
		return nil, s.err
	}
	return s.result, nil
}

// run performs a flight: fetch with failover, store, learn, finish.
func (p *Proxy) run(f *flight, obj object) {
	ctx, cancel := context.WithTimeout(context.Background(), flightTimeout)
	defer cancel()
	blocking := obj.kind == kindPart || (obj.kind == kindManifest && strings.Contains(obj.path, "_HLS_msn="))
	res, err := p.up.fetch(ctx, f, obj.path, obj.kind == kindFragment && p.listed(obj), blocking)
	var e *entry
	if err == nil {
		e = p.store(obj, f, res)
		p.learn(obj, e)
	} else {
		p.log.Warn("upstream fetch failed", "path", obj.path, "err", err)
	}
	f.finish(e, err)
	p.flights.leave(f)
}

// store makes the cache entry of a completed flight and keeps it when the
// response is cacheable, fits, and (a fragment) lies in the live window.
func (p *Proxy) store(obj object, f *flight, res fetchResult) *entry {
	s := f.snapshot()
	e := &entry{key: obj.path, status: s.status, header: s.header, body: s.body, point: obj.point,
		date: res.received.Add(-res.age)}
	lifetime, ok := freshness(s.header, s.status)
	if obj.kind == kindManifest {
		e.manifest = true
		if !ok && s.status == http.StatusOK && p.cfg.ManifestRefresh > 0 && revalidateNow(s.header) {
			// A live manifest due to change within the second: kept
			// briefly, so that a crowd costs one revalidation per
			// ManifestRefresh, and a new fragment is listed here at most
			// that much later than at the origin.
			lifetime, ok = p.cfg.ManifestRefresh, true
		}
	}
	e.expires = e.date.Add(lifetime)
	if obj.kind == kindFragment {
		e.frag = true
		if tl := p.timelineOf(obj); tl != nil {
			e.at, e.hasAt = tl.seconds(obj.t), true
			if e.status == http.StatusOK {
				p.mu.Lock()
				if pl := p.points[obj.point]; pl != nil {
					pl.seen = max(pl.seen, e.at)
				}
				p.mu.Unlock()
			}
		}
	}
	if ok && int64(len(e.body)) <= int64(p.cfg.MaxObject) && !p.outOfWindow(e) {
		p.cache.put(e)
	}
	return e
}

// freshness returns the lifetime a shared cache may keep a response for,
// from Cache-Control (s-maxage, else max-age), and whether it may keep it.
func freshness(h http.Header, status int) (time.Duration, bool) {
	switch status {
	case http.StatusOK, http.StatusMovedPermanently, http.StatusNotFound, http.StatusGone:
	default:
		return 0, false
	}
	var maxAge, sMaxAge = -1, -1
	for _, cc := range h.Values("Cache-Control") {
		for _, d := range strings.Split(cc, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "private", "no-cache":
				return 0, false
			case "max-age":
				maxAge, _ = strconv.Atoi(strings.Trim(val, `"`))
			case "s-maxage":
				sMaxAge, _ = strconv.Atoi(strings.Trim(val, `"`))
			}
		}
	}
	if sMaxAge >= 0 {
		maxAge = sMaxAge
	}
	if maxAge <= 0 {
		return 0, false
	}
	return time.Duration(maxAge) * time.Second, true
}

// revalidateNow reports whether h allows a shared cache to store the
// response but asks for revalidation at once: a max-age (or s-maxage) of 0
// with an ETag, and neither no-store, no-cache nor private.
func revalidateNow(h http.Header) bool {
	if h.Get("Etag") == "" {
		return false
	}
	zero := false
	for _, cc := range h.Values("Cache-Control") {
		for _, d := range strings.Split(cc, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "private", "no-cache":
				return false
			case "max-age", "s-maxage":
				if n, err := strconv.Atoi(strings.Trim(val, `"`)); err == nil && n == 0 {
					zero = true
				}
			}
		}
	}
	return zero
}

// withMaxAge returns the Cache-Control values cc with every max-age and
// s-maxage set to secs.
func withMaxAge(cc []string, secs int) []string {
	out := make([]string, len(cc))
	for i, v := range cc {
		ds := strings.Split(v, ",")
		for j, d := range ds {
			name, _, _ := strings.Cut(strings.TrimSpace(d), "=")
			if n := strings.ToLower(name); n == "max-age" || n == "s-maxage" {
				ds[j] = " " + n + "=" + strconv.Itoa(secs)
			}
		}
		out[i] = strings.TrimSpace(strings.Join(ds, ","))
	}
	return out
}

// writeEntry answers from a complete response: Range, If-None-Match and
// HEAD through http.ServeContent for 200s.
func (p *Proxy) writeEntry(w http.ResponseWriter, r *http.Request, e *entry, source string) {
	h := w.Header()
	for k, v := range e.header {
		h[k] = v
	}
	if e.manifest && e.status == http.StatusOK {
		// A manifest's lifetime is passed on as what is left of it, in
		// whole seconds (rounded down), with no Age: caches in front that
		// ignore Age (nginx) keep it no longer than this one does.
		left := max(int(e.expires.Sub(p.now())/time.Second), 0)
		if cc := e.header.Values("Cache-Control"); len(cc) > 0 {
			h["Cache-Control"] = withMaxAge(cc, left)
		}
	} else if age := p.now().Sub(e.date); age >= time.Second {
		h.Set("Age", strconv.Itoa(int(age/time.Second)))
	}
	cw := &countWriter{ResponseWriter: w}
	switch {
	case e.status == http.StatusOK && !conditional(r):
		// The common case in one write (http.ServeContent would copy the
		// body through a 32 KB buffer).
		h.Set("Accept-Ranges", "bytes")
		h.Set("Content-Length", strconv.Itoa(len(e.body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			cw.Write(e.body)
		}
	case e.status == http.StatusOK:
		http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(e.body))
	default:
		h.Set("Content-Length", strconv.Itoa(len(e.body)))
		w.WriteHeader(e.status)
		if r.Method != http.MethodHead {
			cw.Write(e.body)
		}
	}
	p.m.served.WithLabelValues(source).Add(float64(cw.n))
}

// conditional reports whether r has a Range or a precondition, which
// http.ServeContent answers.
func conditional(r *http.Request) bool {
	for _, k := range [...]string{"Range", "If-Range", "If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since"} {
		if len(r.Header[k]) > 0 {
			return true
		}
	}
	return false
}

// writeFlight answers from a flight: streamed as it arrives for a plain
// GET of a 200, else once complete.
func (p *Proxy) writeFlight(w http.ResponseWriter, r *http.Request, f *flight, kind string) {
	ctx := r.Context()
	s, err := f.wait(ctx, func(s state) bool { return s.started || s.done })
	if err != nil {
		return
	}
	// A manifest goes out once complete and learnt (p.learn), so that a
	// player's next request, for a fragment it lists, is checked against it.
	whole := !s.started || kind == kindManifest || s.status != http.StatusOK || r.Method == http.MethodHead ||
		r.Header.Get("Range") != "" || r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != ""
	if whole {
		if s, err = f.wait(ctx, func(s state) bool { return s.done }); err != nil {
			return
		}
		if s.err != nil {
			p.failed(w, r, f, kind)
			return
		}
		e := s.result
		if e == nil {
			e = &entry{status: s.status, header: s.header, body: s.body, date: p.now()}
		}
		p.writeEntry(w, r, e, "upstream")
		return
	}
	h := w.Header()
	for k, v := range s.header {
		h[k] = v
	}
	if s.length >= 0 {
		h.Set("Content-Length", strconv.FormatInt(s.length, 10))
	}
	w.WriteHeader(s.status)
	rc := http.NewResponseController(w)
	off := 0
	for {
		s, err = f.wait(ctx, func(s state) bool { return len(s.body) > off || s.done })
		if err != nil {
			return
		}
		if len(s.body) > off {
			n, werr := w.Write(s.body[off:])
			off += n
			p.m.served.WithLabelValues("upstream").Add(float64(n))
			if werr != nil {
				return
			}
			rc.Flush()
			continue
		}
		if s.err != nil {
			// Broken off and not resumable: abort the connection so that
			// the client does not take a truncated body for a whole one.
			panic(http.ErrAbortHandler)
		}
		return
	}
}

// failed answers a request whose flight found no origin: with a stale
// entry when there is one, else 502 (never cached).
func (p *Proxy) failed(w http.ResponseWriter, r *http.Request, f *flight, kind string) {
	if f.stale != nil && p.now().Sub(f.stale.expires) < staleKeep {
		p.m.lookups.WithLabelValues(kind, "stale").Inc()
		p.writeEntry(w, r, f.stale, "cache")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "no origin available", http.StatusBadGateway)
}

// countWriter counts body bytes written.
type countWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

func (c *countWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
