package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/httpx"
	"github.com/sluice-media/sluice/internal/manifest"
	"github.com/sluice-media/sluice/internal/store"
)

// Prefix is the path prefix of the scheduler's client URLs.
const Prefix = "/s/"

// request is a parsed client URL.
type request struct {
	point   string
	session string // "" opens a session
	file    string // manifest.mpd, master.m3u8, steering.json, media.m3u8 or rel.m3u8
	track   string // for media.m3u8 and rel.m3u8
}

// parsePath parses /s/<point>[/~<session>]/<file> and
// /s/<point>/~<session>/<track>/{media,rel}.m3u8 (without splitting the
// path: this runs for every manifest request).
func parsePath(p string) (request, error) {
	rest, ok := strings.CutPrefix(p, Prefix)
	if !ok {
		return request{}, errors.New("not a scheduler URL")
	}
	var r request
	// rem: the segments not parsed yet (has: there is at least one).
	rem, has := rest, true
	n := 0 // bytes of rest taken by the point's segments, with a '/' each
	for has {
		seg, after, more := strings.Cut(rem, "/")
		if strings.HasPrefix(seg, "~") || isManifestFile(seg) {
			break
		}
		n += len(seg) + 1
		rem, has = after, more
	}
	r.point = rest[:max(n-1, 0)]
	if !store.ValidPointName(r.point) {
		return r, errors.New("malformed publishing point name")
	}
	if has && strings.HasPrefix(rem, "~") {
		var seg string
		seg, rem, has = strings.Cut(rem, "/")
		r.session = seg[1:]
	}
	first, second, two := strings.Cut(rem, "/")
	switch {
	case has && !two && (first == "manifest.mpd" || first == "master.m3u8"):
		r.file = first
	case has && !two && first == "steering.json" && r.session != "":
		r.file = first
	case has && two && !strings.Contains(second, "/") && (second == "media.m3u8" || second == "rel.m3u8") && r.session != "" && store.ValidID(first):
		r.file, r.track = second, first
	default:
		return r, errors.New("unknown resource: want manifest.mpd, master.m3u8, ~<session>/steering.json or ~<session>/<track>/media.m3u8")
	}
	return r, nil
}

func isManifestFile(s string) bool { return s == "manifest.mpd" || s == "master.m3u8" }

// SessionResource reports whether a /s/ path is one of a session's
// resources reached with its session ID alone, not with the player's
// signed URL: its steering manifest (players poll it without the query of
// the URL they opened with) and the media playlists the senders fetch for
// the players of their pathway (rel.m3u8; the sender checked the
// session's token). A signed-URL check leaves them out.
func SessionResource(p string) bool {
	r, err := parsePath(p)
	return err == nil && r.session != "" && (r.file == "steering.json" || r.file == "rel.m3u8")
}

// ServeHTTP serves the client URLs under /s/ (see the package doc).
func (s *Scheduler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !httpx.ClientMethods(w, r) {
		return
	}
	req, err := parsePath(r.URL.Path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if s.liveCount.Load() == 0 {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "no sender available", http.StatusServiceUnavailable)
		return
	}
	// LL-HLS delivery directives on a media playlist: a blocking reload
	// or a delta update takes the general path.
	var dir directives
	if req.track != "" && r.URL.RawQuery != "" {
		var bad string
		if dir, bad = parseDirectives(r.URL.Query()); bad != "" {
			http.Error(w, bad, http.StatusBadRequest)
			return
		}
	}
	if req.session != "" && !dir.blocking && !dir.skip && s.serveKnown(w, r, req) {
		return
	}
	ctx := r.Context()
	ps, err := s.pointView(ctx, req.point)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			w.Header().Set("Cache-Control", "max-age=2")
			http.Error(w, "unknown publishing point", http.StatusNotFound)
			return
		}
		s.log.Warn("point index unavailable", "point", req.point, "err", err)
		http.Error(w, "publishing point index unavailable", http.StatusServiceUnavailable)
		return
	}
	var start float64 = -1
	if q := r.URL.Query().Get("start"); q != "" && req.session == "" {
		if f, err := strconv.ParseFloat(q, 64); err == nil && f >= 0 && !math.IsInf(f, 0) {
			start = f
		}
	}
	sess, wait, err := s.session(ps, req.session, start)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if wait != nil {
		t := time.NewTimer(s.cfg.OpenWait)
		select {
		case <-wait:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	if dir.blocking {
		code, why := s.awaitPart(ctx, sess, req.track, dir)
		if code != 0 {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, why, code)
			return
		}
		if ctx.Err() != nil {
			return
		}
	}
	format, ctype := req.kind()
	var (
		tpl  *template
		sv   sessionValues
		body []byte
	)
	switch req.file {
	case "steering.json":
		body, err = s.steering(sess, r.URL.Query())
	default:
		tpl, sv, err = s.renderTemplate(sess, req.track, format, requestBase(r), dir.skip, req.renderer(dir.skip))
	}
	if err != nil {
		s.m.manifestDone(format, false)
		if errors.Is(err, store.ErrNotFound) {
			w.Header().Set("Cache-Control", "max-age=1")
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		s.log.Error("render manifest", "point", req.point, "format", format, "err", err)
		http.Error(w, "cannot render manifest", http.StatusInternalServerError)
		return
	}
	if req.file == "rel.m3u8" {
		s.mu.RLock()
		shared := sharedValue(sess, s.now())
		s.mu.RUnlock()
		markShared(w, req, shared)
	}
	s.respond(w, r, format, ctype, tpl, &sv, body)
}

// kind is the format (in metrics and rendering keys) and content type of
// a request's manifest.
func (req request) kind() (format, ctype string) {
	switch req.file {
	case "manifest.mpd":
		return "dash", "application/dash+xml"
	case "master.m3u8":
		return "hls-master", "application/vnd.apple.mpegurl"
	case "steering.json":
		return "steering", "application/json"
	case "rel.m3u8":
		return "hls-pathway", "application/vnd.apple.mpegurl"
	}
	return "hls-media", "application/vnd.apple.mpegurl"
}

// renderer is the manifest writer of a request's rendering; skip asks a
// media playlist for an LL-HLS delta update.
func (req request) renderer(skip bool) func(store.View, manifest.Options) ([]byte, error) {
	switch req.file {
	case "manifest.mpd":
		return manifest.DASH
	case "master.m3u8":
		return manifest.HLSMaster
	}
	track := req.track
	return func(v store.View, o manifest.Options) ([]byte, error) {
		o.Skip = skip
		return manifest.HLSMedia(v, track, o)
	}
}

// Header values of every manifest response: constants, shared by all
// responses and never modified (a header map takes them without a copy).
var (
	noStore    = []string{"no-store"}
	ctypeByKey = map[string][]string{
		"application/dash+xml":          {"application/dash+xml"},
		"application/vnd.apple.mpegurl": {"application/vnd.apple.mpegurl"},
		"application/json":              {"application/json"},
	}
)

// respond answers a manifest: the expansion of a shared rendering for
// sv, or body.
func (s *Scheduler) respond(w http.ResponseWriter, r *http.Request, format, ctype string, tpl *template, sv *sessionValues, body []byte) {
	s.m.manifestDone(format, true)
	n := len(body)
	if tpl != nil {
		n = tpl.length(sv)
	}
	h := w.Header()
	h["Content-Type"] = ctypeByKey[ctype]
	h["Cache-Control"] = noStore
	h["Content-Length"] = []string{strconv.Itoa(n)}
	if r.Method == http.MethodHead {
		return
	}
	if tpl != nil {
		bp := bodyPool.Get().(*[]byte)
		b := tpl.appendTo((*bp)[:0], sv)
		w.Write(b)
		if cap(b) <= 1<<20 {
			*bp = b
			bodyPool.Put(bp)
		}
		return
	}
	w.Write(body)
}

// serveKnown answers a request of a session this scheduler holds, of a
// point whose index is usable, from its shared rendering, taking s.mu
// once: the reload of a session, which is most of what a scheduler
// serves. It reports false, having answered nothing, when the request
// needs more (an index to fetch, a rendering to make, an error to
// answer): ServeHTTP's general path then does it.
func (s *Scheduler) serveKnown(w http.ResponseWriter, r *http.Request, req request) bool {
	if s.serveRead(w, r, req) {
		return true
	}
	format, ctype := req.kind()
	s.mu.Lock()
	ps := s.points[req.point]
	sess := s.sessions[req.session]
	now := s.now()
	if ps == nil || ps.tracks == nil || sess == nil || sess.point != ps || sess.closed ||
		(now.Sub(ps.fetched) >= s.refreshInterval(ps) && !ps.fetching) {
		s.mu.Unlock()
		return false
	}
	if req.file == "steering.json" {
		ps.used.store(now)
		sess.seen.store(now)
		body := s.steeringLocked(sess, r.URL.Query())
		s.mu.Unlock()
		s.respond(w, r, format, ctype, nil, nil, body)
		return true
	}
	if req.track != "" && ps.tracks[req.track] == nil {
		s.mu.Unlock()
		return false
	}
	tpl, _, _ := s.cachedTemplate(sess, req.track, format, false, now)
	if tpl == nil {
		s.mu.Unlock()
		return false
	}
	ps.used.store(now)
	sess.seen.store(now)
	if req.track != "" {
		s.hintTrack(sess, req.track)
	}
	sv := s.placeholders(sess, "", now)
	shared := sharedValue(sess, now)
	s.mu.Unlock()
	if tpl.host {
		sv.host = requestBase(r)
	}
	markShared(w, req, shared)
	s.respond(w, r, format, ctype, tpl, &sv, nil)
	return true
}

// serveRead is serveKnown for a reload that changes nothing but the
// session's and point's last-use times (atomic): the session's listed view
// and its rendering are cached, its steering manifest is current, the
// player stays on its pathway and track. It holds s.mu shared, so reloads
// do not queue behind one another for the lock (at 10 000 sessions they
// did, and a batch worker waiting for the lock behind thousands of them
// made the batches fall to a few a second). It reports false, having
// answered nothing, when anything needs the exclusive lock.
func (s *Scheduler) serveRead(w http.ResponseWriter, r *http.Request, req request) bool {
	format, ctype := req.kind()
	s.mu.RLock()
	ps := s.points[req.point]
	sess := s.sessions[req.session]
	now := s.now()
	if ps == nil || ps.tracks == nil || sess == nil || sess.point != ps || sess.closed ||
		(now.Sub(ps.fetched) >= s.refreshInterval(ps) && !ps.fetching) {
		s.mu.RUnlock()
		return false
	}
	if req.file == "steering.json" {
		// Without a query the player names no pathway: nothing moves.
		if sess.steering == nil || sess.steeringVer != s.liveVer || (r.URL.RawQuery != "" && s.steeringMoves(sess, r.URL.Query())) {
			s.mu.RUnlock()
			return false
		}
		body := sess.steering
		ps.used.store(now)
		sess.seen.store(now)
		s.mu.RUnlock()
		s.sharedReloads.Add(1)
		s.respond(w, r, format, ctype, nil, nil, body)
		return true
	}
	if req.track != "" {
		t := ps.tracks[req.track]
		if t == nil {
			s.mu.RUnlock()
			return false
		}
		if kp := sess.kinds[t.kind]; kp == nil || kp.track != req.track {
			s.mu.RUnlock()
			return false // hintTrack has something to record
		}
	}
	vk, ok := s.sharedViewKey(sess, now)
	var tpl *template
	if ok {
		tpl = ps.templates[tplKey{format: format, track: req.track, pathways: sess.pathwaysKey, view: vk}]
	}
	if tpl == nil {
		s.mu.RUnlock()
		return false
	}
	ps.used.store(now)
	sess.seen.store(now)
	sv := s.placeholders(sess, "", now)
	shared := sharedValue(sess, now)
	s.mu.RUnlock()
	s.sharedReloads.Add(1)
	if tpl.host {
		sv.host = requestBase(r)
	}
	markShared(w, req, shared)
	s.respond(w, r, format, ctype, tpl, &sv, nil)
	return true
}

// sharedViewKey is the viewKey of a session's listed view when it is the
// point's shared one and that is current (sessionView would return it
// without computing anything). s.mu must be held, shared will do.
func (s *Scheduler) sharedViewKey(sess *session, now time.Time) (string, bool) {
	ps := sess.point
	if !listsShared(sess) {
		return "", false
	}
	c := ps.shared
	if c != nil && c.viewVer == ps.viewVer && c.holdVer == ps.holdVer && c.liveVer == s.liveVer && now.Before(c.until) {
		return c.key, true
	}
	return "", false
}

// session finds or opens the session of a request. A new (or adopted)
// session is reconciled at once and the senders woken; the returned channel
// closes when its first reservations are confirmed.
func (s *Scheduler) session(ps *pointState, id string, start float64) (*session, <-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ps.used.store(now)
	var info cluster.SessionInfo
	if id != "" {
		if sess := s.sessions[id]; sess != nil {
			if sess.point != ps {
				return nil, nil, errors.New("the session belongs to another publishing point")
			}
			sess.seen.store(now)
			return sess, nil, nil
		}
		var err error
		if info, err = cluster.ParseSessionID(s.cfg.Secret, id); err != nil {
			return nil, nil, errors.New("unknown session")
		}
	}
	event := "adopted"
	if id == "" {
		var err error
		if id, err = s.newSessionID(now); err != nil {
			return nil, nil, err
		}
		info, _ = cluster.ParseSessionID(s.cfg.Secret, id)
		event = "opened"
	}
	if ps.live {
		start = -1
	}
	sess := s.newClientSession(id, ps, now, start, info)
	s.sessions[id] = sess
	s.attach(ps, sess)
	s.grantSession(sess)
	s.m.sessionEvents.WithLabelValues(event).Inc()
	s.log.Debug("session "+event, "session", sessionLabel(id), "point", ps.name, "live", ps.live)
	s.reconcile(sess, now)
	var wait chan struct{}
	if len(sess.pins) > 0 {
		wait = make(chan struct{})
		sess.waiters = append(sess.waiters, wait)
		for _, sc := range s.senders {
			if len(sc.pend) > 0 {
				// A player waits for these: no coalescing.
				sc.urgent = true
				sc.hurry()
			}
		}
	}
	return sess, wait, nil
}

// attach adds a session to a point, and the point's edge session with the
// first one. s.mu must be held.
func (s *Scheduler) attach(ps *pointState, sess *session) {
	if ps.sessions == nil {
		ps.sessions = map[*session]struct{}{}
	}
	ps.sessions[sess] = struct{}{}
	if ps.edge == nil && !s.cfg.NoPins {
		e := newSession(edgeID(ps.name), ps, s.now(), -1)
		e.edge = true
		ps.edge = e
		s.sessions[e.id] = e
		ps.sessions[e] = struct{}{}
		s.markDirty(e)
	}
}

// adoptOrphan takes a session a sender offered for adoption (its
// scheduler stopped renewing it while its player fetches on): an unknown
// one is adopted as if its player had asked here, a known one (this
// scheduler's, whose renewal was late) is granted again. s.mu must be held.
func (s *Scheduler) adoptOrphan(g cluster.Grant, now time.Time) {
	if sess := s.sessions[g.Session]; sess != nil {
		s.grantSession(sess)
		return
	}
	info, err := cluster.ParseSessionID(s.cfg.Secret, g.Session)
	if err != nil || !store.ValidPointName(g.Point) {
		s.log.Warn("orphan session not adopted", "session", sessionLabel(g.Session), "point", g.Point, "err", err)
		return
	}
	ps := s.points[g.Point]
	if ps == nil {
		ps = &pointState{name: g.Point}
		s.points[g.Point] = ps
	}
	ps.used.store(now)
	sess := s.newClientSession(g.Session, ps, now, -1, info)
	sess.played = true
	s.sessions[g.Session] = sess
	s.attach(ps, sess)
	s.grantSession(sess)
	s.markDirty(sess)
	s.m.sessionEvents.WithLabelValues("adopted").Inc()
	s.log.Info("session adopted from a sender's report (its scheduler stopped renewing it)", "session", sessionLabel(g.Session), "point", g.Point)
	if ps.tracks == nil && !ps.fetching {
		ps.fetching = true
		ps.done = make(chan struct{})
		go s.fetchView(s.runCtx, ps)
	}
}

// newClientSession makes a player session with its token and pathways.
// s.mu must be held.
func (s *Scheduler) newClientSession(id string, ps *pointState, now time.Time, start float64, info cluster.SessionInfo) *session {
	sess := newSession(id, ps, now, start)
	sess.token = cluster.Sign(s.cfg.Secret, cluster.Token{Session: id, Point: ps.name})
	sess.pathways = s.sessionPathways(info.Pathways)
	sess.listed = listedPathways(sess.pathways)
	sess.pathwaysKey = pathwaysKey(sess.listed)
	if s.cfg.OwnerSetURL == "" {
		// Players start on the default pathway (until a steering request
		// says otherwise): reserve there from the first block on.
		for _, p := range sess.pathways {
			if p.member != "" {
				sess.pathway = p.member
				break
			}
		}
	}
	return sess
}

// edgeID is the session ID of a point's edge session (no client session ID
// looks like it).
func edgeID(point string) string { return "~edge/" + point }

// newSession makes a session.
func newSession(id string, ps *pointState, now time.Time, start float64) *session {
	sess := &session{
		id: id, point: ps, opened: now, start: start,
		kinds: map[string]*kindPos{}, sent: map[cluster.BlockID]time.Time{},
		refuse: map[pinKey]time.Time{},
	}
	sess.seen.store(now)
	return sess
}

// pointView returns a point's state with an index no older than the
// refresh interval, fetching it when needed (one fetch at a time per point).
func (s *Scheduler) pointView(ctx context.Context, name string) (*pointState, error) {
	for {
		s.mu.Lock()
		ps := s.points[name]
		if ps == nil {
			ps = &pointState{name: name}
			s.points[name] = ps
		}
		now := s.now()
		ps.used.store(now)
		fresh := ps.tracks != nil && now.Sub(ps.fetched) < s.refreshInterval(ps)
		if fresh || (ps.tracks != nil && ps.fetching) {
			// A fetch in flight does not hold back a request that has a
			// usable index.
			s.mu.Unlock()
			return ps, nil
		}
		if ps.fetching {
			done := ps.done
			s.mu.Unlock()
			select {
			case <-done:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if !ps.fetched.IsZero() && ps.tracks == nil && now.Sub(ps.fetched) < time.Second && ps.err != nil {
			err := ps.err
			s.mu.Unlock()
			return nil, err
		}
		ps.fetching = true
		ps.done = make(chan struct{})
		s.mu.Unlock()
		s.fetchView(ctx, ps)
	}
}

// refreshInterval is the age at which a point's index is fetched again.
func (s *Scheduler) refreshInterval(ps *pointState) time.Duration {
	if ps.tracks != nil && !ps.live {
		return 30 * time.Second
	}
	if ps.watching {
		return watchWait + 5*time.Second // the watch keeps it current
	}
	if ps.lowLatency {
		return min(s.cfg.ViewRefresh, llRefresh)
	}
	return s.cfg.ViewRefresh
}

// fetchView fetches a point's index (ps.fetching is set by the caller) and
// installs it; sessions of a point whose index changed are reconciled.
func (s *Scheduler) fetchView(ctx context.Context, ps *pointState) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	v, err := s.timeline.View(fctx, ps.name)
	cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	ps.fetching = false
	close(ps.done)
	s.installView(ps, v, err)
}

// installView installs a point's index (or the error of fetching it),
// reconciles the sessions of a point whose index changed, wakes the
// requests waiting for a change (ps.changed) and starts watching a
// low-latency point (watchPoint). s.mu must be held.
func (s *Scheduler) installView(ps *pointState, v store.View, err error) {
	ps.fetched = s.now()
	ps.err = err
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			ps.tracks = nil
		}
		return
	}
	if ps.setView(v, ps.fetched, !s.cfg.NoPins) {
		for sess := range ps.sessions {
			s.markDirty(sess)
		}
		if ps.watching && len(ps.sessions) > 0 {
			// Reserve the new blocks now, in batches that leave at once:
			// they are listed once an owner confirms them.
			s.hurry = true
			s.kick()
		}
	}
	if ps.changed != nil {
		close(ps.changed)
		ps.changed = nil
	}
	if w, ok := s.timeline.(Watcher); ok && ps.live && !ps.watching && s.runCtx != nil {
		ps.watching = true
		go s.watchPoint(s.runCtx, ps, w)
	}
}

// refreshViews starts a background fetch for every point with sessions
// whose index is due. s.mu must be held.
func (s *Scheduler) refreshViews(ctx context.Context, now time.Time) {
	for _, ps := range s.points {
		if len(ps.sessions) == 0 || ps.fetching || now.Sub(ps.fetched) < s.refreshInterval(ps) {
			continue
		}
		ps.fetching = true
		ps.done = make(chan struct{})
		go s.fetchView(ctx, ps)
	}
}

// render renders a manifest of a session. Sessions of a point with the
// same listed pathways share one rendering per index version (a template
// with the session ID, its token, its default pathway, the request's
// scheme and host and the time as placeholders).
func (s *Scheduler) render(sess *session, track, format, host string, f func(store.View, manifest.Options) ([]byte, error)) ([]byte, error) {
	tpl, sv, err := s.renderTemplate(sess, track, format, host, false, f)
	if err != nil {
		return nil, err
	}
	return tpl.expand(&sv), nil
}

// renderTemplate returns a session's shared rendering, rendering it when
// it is not cached, and the session's values for it.
func (s *Scheduler) renderTemplate(sess *session, track, format, host string, skip bool, f func(store.View, manifest.Options) ([]byte, error)) (*template, sessionValues, error) {
	s.mu.Lock()
	now := s.now()
	ps := sess.point
	if track != "" {
		if ps.tracks[track] == nil {
			s.mu.Unlock()
			return nil, sessionValues{}, fmt.Errorf("track %q: %w", track, store.ErrNotFound)
		}
		s.hintTrack(sess, track)
	}
	tpl, v, key := s.cachedTemplate(sess, track, format, skip, now)
	if tpl == nil {
		u := s.urls(ps, format, sess.listed, placeholderValues())
		s.mu.Unlock()
		body, err := f(v, manifest.Options{Now: templateNow, URLs: s.lockedURLs(u)})
		if err != nil {
			return nil, sessionValues{}, err
		}
		tpl = newTemplate(body)
		s.mu.Lock()
		if ps.templates == nil || len(ps.templates) > 256 {
			ps.templates = map[tplKey]*template{}
		}
		ps.templates[key] = tpl
	}
	sv := s.placeholders(sess, host, now)
	s.mu.Unlock()
	return tpl, sv, nil
}

// cachedTemplate returns the shared rendering of a session's manifest
// (nil when there is none yet), the view it lists and its key. s.mu must
// be held.
func (s *Scheduler) cachedTemplate(sess *session, track, format string, skip bool, now time.Time) (*template, store.View, tplKey) {
	v, vk := s.sessionView(sess, now)
	key := tplKey{format: format, track: track, pathways: sess.pathwaysKey, view: vk, skip: skip}
	return sess.point.templates[key], v, key
}

// lockedURLs wraps URL functions that need s.mu in functions that take it
// for each call, so that a rendering runs without holding it.
func (s *Scheduler) lockedURLs(u *manifest.URLs) *manifest.URLs {
	if u == nil {
		return nil
	}
	out := *u
	if u.Init != nil {
		out.Init = func(id string) string {
			s.mu.Lock()
			defer s.mu.Unlock()
			return u.Init(id)
		}
	}
	if u.Segment != nil {
		out.Segment = func(id string, t int64) string {
			s.mu.Lock()
			defer s.mu.Unlock()
			return u.Segment(id, t)
		}
	}
	return &out
}

// sharedView is the index that the manifests of every session of a point
// without a deep-link position list (sessionView), while the point's
// index, its hold-back state and the live senders are the same and until
// the first held-back block's hold ends.
type sharedView struct {
	view                      store.View
	key                       string // viewKey
	viewVer, holdVer, liveVer uint64
	until                     time.Time
}

// sessionView is the index a session's manifests list and its viewKey:
// from the deep-link position on for an on-demand session; for a live one
// without the newest fragments that no sender has confirmed yet or that
// every owner reported missing (not written yet; for at most 10 s). Every
// session without a deep-link position lists the same: it is computed once
// per change of what it depends on (sharedView). s.mu must be held.
func (s *Scheduler) sessionView(sess *session, now time.Time) (store.View, string) {
	ps := sess.point
	if !listsShared(sess) {
		v, _ := s.listedView(ps, sess.start, now)
		return v, viewKey(v)
	}
	if c := ps.shared; c != nil && c.viewVer == ps.viewVer && c.holdVer == ps.holdVer && c.liveVer == s.liveVer && now.Before(c.until) {
		return c.view, c.key
	}
	v, until := s.listedView(ps, -1, now)
	ps.shared = &sharedView{view: v, key: viewKey(v), viewVer: ps.viewVer, holdVer: ps.holdVer, liveVer: s.liveVer, until: until}
	return v, ps.shared.key
}

// listsShared reports whether a session's manifests list its point's
// shared view (sessionView): all but an on-demand session's opened at a
// deep-link position. s.mu must be held.
func listsShared(sess *session) bool {
	return !(sess.start > 0 && !sess.point.live)
}

// sharedPlaylistTTL is how long a sender may answer the reloads of a
// shared pathway playlist with its copy (cluster.SharedPlaylistHeader):
// the most it delays the listing of a new fragment. While a live point's
// newest blocks wait for an owner's confirmation the listing is about to
// change, and a copy is kept for sharedPendingTTL only.
const (
	sharedPlaylistTTL = 50 * time.Millisecond
	sharedPendingTTL  = 10 * time.Millisecond
)

// The header's values: the TTLs in ms.
var (
	sharedPlaylistValue = []string{strconv.FormatInt(sharedPlaylistTTL.Milliseconds(), 10)}
	sharedPendingValue  = []string{strconv.FormatInt(sharedPendingTTL.Milliseconds(), 10)}
)

// sharedValue is the shared-playlist header value of a session's pathway
// playlists at now: nil when it does not list the shared view
// (listsShared); the short TTL while a live point's blocks that appeared
// within the last second wait for a confirmation. s.mu must be held
// (shared is enough).
func sharedValue(sess *session, now time.Time) []string {
	ps := sess.point
	switch {
	case !listsShared(sess):
		return nil
	case ps.live && len(ps.unconfirmed) > 0 && now.Sub(ps.unconfirmedAt) < time.Second:
		return sharedPendingValue
	}
	return sharedPlaylistValue
}

// markShared marks a pathway playlist response (req.file rel.m3u8) as the
// shared one of its point and track with the header value v (sharedValue;
// nil: not shared), so that its sender answers the next reloads with it
// (sender package, docs/cluster.md "Pathway playlists").
func markShared(w http.ResponseWriter, req request, v []string) {
	if v != nil && req.file == "rel.m3u8" {
		w.Header()[cluster.SharedPlaylistHeader] = v
	}
}

// listedView is a point's index as a session's manifests list it (see
// sessionView): from start (s) on when start > 0 and the point is not live,
// and for a live point without its held-back newest fragments. until is
// when the first of those holds ends (the view may change then without
// anything else changing). s.mu must be held.
func (s *Scheduler) listedView(ps *pointState, start float64, now time.Time) (store.View, time.Time) {
	v := ps.view
	until := now.Add(time.Hour)
	cut := start > 0 && !ps.live
	hold := ps.live && len(ps.missing)+len(ps.unconfirmed) > 0
	if !cut && !hold {
		return v, until
	}
	// held reports whether a block is held back, and until when.
	held := func(b cluster.BlockID) (bool, time.Time) {
		if at, ok := ps.unconfirmed[b]; ok && now.Sub(at) < unconfirmedHold {
			return true, at.Add(unconfirmedHold)
		}
		if len(ps.missing) == 0 {
			return false, time.Time{}
		}
		owners := s.ownersOf(ps, b)
		var end time.Time
		for _, o := range owners {
			if !ps.lacks(o, b, now) {
				return false, time.Time{}
			}
			if e := ps.missing[pinKey{o, b}].Add(missingHold); end.IsZero() || e.Before(end) {
				end = e
			}
		}
		return len(owners) > 0, end
	}
	tracks := make([]store.TrackView, len(v.Tracks))
	copy(tracks, v.Tracks)
	for i := range tracks {
		t := &tracks[i]
		ti := ps.tracks[t.ID]
		if cut && ti != nil {
			pos := int64(start*float64(ti.timescale)) + 1
			j := 0
			for j < len(t.Frags) && t.Frags[j].End() <= pos {
				j++
			}
			if j == len(t.Frags) && j > 0 {
				j-- // past the end: the last fragment
			}
			t.First += int64(j)
			t.Frags = t.Frags[j:]
		}
		if hold {
			n := len(t.Frags)
			for n > 0 {
				if partsComplete(*t, t.Frags[n-1].Start) {
					break // every sender keeps its parts (lowlatency.go)
				}
				h, end := held(cluster.BlockID{Point: ps.name, Track: t.ID, Start: t.Frags[n-1].Start})
				if !h {
					break
				}
				if end.Before(until) {
					until = end
				}
				n--
			}
			t.Frags = t.Frags[:n]
		}
	}
	v.Tracks = tracks
	return v, until
}

// placeholderValues are the placeholders of a shared rendering.
func placeholderValues() sessionValues {
	return sessionValues{
		sid: phOpen + phSession + phClose, tok: phOpen + phToken + phClose,
		def: phOpen + phPathway + phClose, host: phOpen + phHost + phClose,
	}
}

// urls returns the URL mapping of a format for sessions of a point that
// list the given pathways. Its functions must be called with s.mu held. s.mu
// must be held.
//
//   - DASH (manifest.mpd): one MPD-level BaseURL per pathway,
//     <sender>/b/<token>/<point>/, with serviceLocation p<label>; the
//     segments relative to them ($RepresentationID$/$Time$.m4s); the
//     steering server (absolute, dash.js does not resolve it) and the
//     session's default pathway;
//   - HLS master: every variant and rendition once per pathway, at
//     <sender>/b/<token>/<point>/<track>/media.m3u8 (the sender passes on
//     the rel.m3u8 rendering, below), after the direct pathway
//     (/s/.../<track>/media.m3u8) when owner-set names are configured;
//   - HLS media.m3u8 (the direct pathway): each segment at the URL its
//     block was first listed with (the owner set's name, or its sender),
//     and never another one (listedURL);
//   - HLS rel.m3u8: the segments relative to the playlist (init.mp4,
//     <start>.m4s), for the senders to answer on their pathways.
func (s *Scheduler) urls(ps *pointState, format string, listed []pathway, sv sessionValues) *manifest.URLs {
	pointPath := escapePoint(ps.name)
	base := Prefix + pointPath + "/~" + sv.sid + "/"
	senderBase := func(member string) string {
		return s.senderURL(member) + "/b/" + sv.tok + "/" + pointPath + "/"
	}
	steering := &manifest.Steering{URI: base + "steering.json", DefaultPathway: sv.def, QueryBeforeStart: true}
	switch format {
	case "dash":
		u := &manifest.URLs{Manifest: base + "manifest.mpd", Stored: true}
		for _, p := range listed {
			u.BaseURLs = append(u.BaseURLs, manifest.BaseURL{URL: senderBase(p.member), ServiceLocation: pathwayID(p.label)})
		}
		steering.URI = sv.host + steering.URI
		u.Steering = steering
		return u
	case "hls-master":
		u := &manifest.URLs{Steering: steering, Stored: true}
		if s.cfg.OwnerSetURL != "" {
			u.Pathways = append(u.Pathways, manifest.Pathway{ID: directPathway, Playlist: func(id string) string { return base + id + "/media.m3u8" }})
		}
		for _, p := range listed {
			sb := senderBase(p.member)
			u.Pathways = append(u.Pathways, manifest.Pathway{ID: pathwayID(p.label), Playlist: func(id string) string { return sb + id + "/media.m3u8" }})
		}
		return u
	case "hls-pathway":
		return &manifest.URLs{Stored: true}
	}
	// hls-media: the direct pathway.
	return &manifest.URLs{
		Init: func(id string) string {
			return s.listedInit(ps, id) + "/b/" + sv.tok + "/" + pointPath + "/" + id + "/init.mp4"
		},
		Segment: func(id string, t int64) string {
			b := cluster.BlockID{Point: ps.name, Track: id, Start: t}
			return s.listedURL(ps, b) + "/b/" + sv.tok + "/" + pointPath + "/" + id + "/" + strconv.FormatInt(t, 10) + ".m4s"
		},
	}
}

// listedURL is the base URL a block's segment URL names on the direct
// pathway: the one it was first listed with (a listed URL never changes,
// RFC 8216 6.2.1), chosen then as the owner set of its sender (with
// Config.OwnerSetURL) or that sender (pointSender). s.mu must be held.
func (s *Scheduler) listedURL(ps *pointState, b cluster.BlockID) string {
	if u, ok := ps.listed[b]; ok {
		return u
	}
	snd := s.pointSender(ps, b)
	u := s.senderURL(snd)
	if s.cfg.OwnerSetURL != "" && snd != "" {
		u = s.ownerSetBase(snd, s.ownersOf(ps, b))
	}
	if snd != "" {
		if ps.listed == nil {
			ps.listed = map[cluster.BlockID]string{}
		}
		ps.listed[b] = u
	}
	return u
}

// listedInit is the base URL a track's header is named with on the direct
// pathway, fixed the first time (initBase). s.mu must be held.
func (s *Scheduler) listedInit(ps *pointState, track string) string {
	if u, ok := ps.listedInits[track]; ok {
		return u
	}
	u, ok := s.initBase(ps, track)
	if ok {
		if ps.listedInits == nil {
			ps.listedInits = map[string]string{}
		}
		ps.listedInits[track] = u
	}
	return u
}

// placeholders returns the values of a shared rendering's placeholders for
// a session. s.mu must be held.
func (s *Scheduler) placeholders(sess *session, host string, now time.Time) sessionValues {
	return sessionValues{sid: sess.id, tok: sess.token, def: s.defaultPathway(sess), host: host, now: now}
}

// defaultPathway is the PATHWAY-ID (serviceLocation) a session's
// manifests name as the default: the direct one with owner-set names, else
// its first pathway with a known sender. s.mu must be held.
func (s *Scheduler) defaultPathway(sess *session) string {
	if s.cfg.OwnerSetURL != "" {
		return directPathway
	}
	for _, p := range sess.pathways {
		if p.member != "" {
			return pathwayID(p.label)
		}
	}
	return ""
}

// requestBase is the scheme and host a player asked for a manifest
// (X-Forwarded-Proto and X-Forwarded-Host of a proxy in front win), for
// the absolute URLs of a DASH MPD.
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
		scheme = p
	}
	host := r.Host
	if h := firstValue(r.Header.Get("X-Forwarded-Host")); h != "" {
		host = h
	}
	if host == "" || strings.ContainsAny(host, "/\\\"<>{}% ") {
		host = "localhost"
	}
	return scheme + "://" + host
}

// firstValue is the first of a comma-separated header value.
func firstValue(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.TrimSpace(v)
}

// pointSender is the sender a block is fetched from without a
// reservation: the first owner known to hold it (near the live edge), else
// the first owner not known to lack it, else the primary. s.mu must be
// held.
func (s *Scheduler) pointSender(ps *pointState, b cluster.BlockID) string {
	owners := s.ownersOf(ps, b)
	if len(owners) == 0 {
		return ""
	}
	if len(ps.has) == 0 && len(ps.missing) == 0 {
		return owners[0]
	}
	now := s.now()
	for _, o := range owners {
		if ps.holds(o, b, now) {
			return o
		}
	}
	for _, o := range owners {
		if !ps.lacks(o, b, now) {
			return o
		}
	}
	return owners[0]
}

// initBase is the base URL a track's CMAF header is fetched from. Every
// sender holds every header (internal/placement), so any live one will do:
// the one rendezvous hashing picks for the track, so that a session's
// header requests spread over the senders and stay put (with
// Config.OwnerSetURL: the owner set of R senders it heads). s.mu must be
// held.
func (s *Scheduler) initBase(ps *pointState, track string) (string, bool) {
	o := cluster.Owners(ps.name+"/"+track+"/init", s.liveIDs, s.cfg.Replicas)
	if len(o) == 0 {
		return s.senderURL(""), false
	}
	if s.cfg.OwnerSetURL != "" {
		return s.ownerSetBase(o[0], o), true
	}
	return s.senderURL(o[0]), true
}

// senderURL is the base URL of a sender. s.mu must be held.
func (s *Scheduler) senderURL(id string) string {
	if sc := s.senders[id]; sc != nil {
		if s.cfg.ClientURL != nil {
			return strings.TrimSuffix(s.cfg.ClientURL(sc.m), "/")
		}
		return strings.TrimSuffix(sc.m.URL, "/")
	}
	if u, ok := s.known[id]; ok {
		return u
	}
	return "http://no-sender.invalid"
}
