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
	"github.com/sluice-media/sluice/internal/manifest"
	"github.com/sluice-media/sluice/internal/origin"
	"github.com/sluice-media/sluice/internal/store"
)

// Prefix is the path prefix of the scheduler's client URLs.
const Prefix = "/s/"

// request is a parsed client URL.
type request struct {
	point   string
	session string // "" opens a session
	file    string // manifest.mpd, master.m3u8 or media.m3u8
	track   string // for media.m3u8
}

// parsePath parses /s/<point>[/~<session>]/<file>.
func parsePath(p string) (request, error) {
	rest, ok := strings.CutPrefix(p, Prefix)
	if !ok {
		return request{}, errors.New("not a scheduler URL")
	}
	segs := strings.Split(rest, "/")
	var r request
	i := 0
	for i < len(segs) && !strings.HasPrefix(segs[i], "~") && !isManifestFile(segs[i]) {
		i++
	}
	r.point = strings.Join(segs[:i], "/")
	if !store.ValidPointName(r.point) {
		return r, errors.New("malformed publishing point name")
	}
	if i < len(segs) && strings.HasPrefix(segs[i], "~") {
		r.session = segs[i][1:]
		i++
	}
	switch tail := segs[i:]; {
	case len(tail) == 1 && (tail[0] == "manifest.mpd" || tail[0] == "master.m3u8"):
		r.file = tail[0]
	case len(tail) == 2 && tail[1] == "media.m3u8" && r.session != "" && store.ValidID(tail[0]):
		r.file, r.track = tail[1], tail[0]
	default:
		return r, errors.New("unknown resource: want manifest.mpd, master.m3u8 or ~<session>/<track>/media.m3u8")
	}
	return r, nil
}

func isManifestFile(s string) bool { return s == "manifest.mpd" || s == "master.m3u8" }

// ServeHTTP serves the client URLs under /s/ (see the package doc).
func (s *Scheduler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	origin.SetCORS(w.Header())
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "CMCD-Request, CMCD-Object, CMCD-Status, CMCD-Session")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	req, err := parsePath(r.URL.Path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if len(s.LiveSenders()) == 0 {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "no sender available", http.StatusServiceUnavailable)
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
	var (
		body   []byte
		ctype  = "application/vnd.apple.mpegurl"
		format = "hls-media"
	)
	switch req.file {
	case "manifest.mpd":
		format, ctype = "dash", "application/dash+xml"
		body, err = s.render(sess, "", format, manifest.DASH)
	case "master.m3u8":
		format = "hls-master"
		body, err = s.render(sess, "", format, manifest.HLSMaster)
	default:
		body, err = s.render(sess, req.track, format, func(v store.View, o manifest.Options) ([]byte, error) {
			return manifest.HLSMedia(v, req.track, o)
		})
	}
	if err != nil {
		s.m.manifests.WithLabelValues(format, "error").Inc()
		if errors.Is(err, store.ErrNotFound) {
			w.Header().Set("Cache-Control", "max-age=1")
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		s.log.Error("render manifest", "point", req.point, "format", format, "err", err)
		http.Error(w, "cannot render manifest", http.StatusInternalServerError)
		return
	}
	s.m.manifests.WithLabelValues(format, "ok").Inc()
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// session finds or opens the session of a request. A new (or adopted)
// session is reconciled at once and the senders woken; the returned channel
// closes when its first reservations are confirmed.
func (s *Scheduler) session(ps *pointState, id string, start float64) (*session, <-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ps.used = now
	if id != "" {
		if sess := s.sessions[id]; sess != nil {
			if sess.point != ps {
				return nil, nil, errors.New("the session belongs to another publishing point")
			}
			sess.seen = now
			return sess, nil, nil
		}
		if !validSessionID(s.cfg.Secret, id) {
			return nil, nil, errors.New("unknown session")
		}
	}
	event := "adopted"
	if id == "" {
		id = newSessionID(s.cfg.Secret)
		event = "opened"
	}
	if ps.live {
		start = -1
	}
	sess := newSession(id, ps, now, start)
	s.sessions[id] = sess
	s.attach(ps, sess)
	s.m.sessionEvents.WithLabelValues(event).Inc()
	s.log.Debug("session "+event, "session", sessionLabel(id), "point", ps.name, "live", ps.live)
	s.reconcile(sess, now)
	var wait chan struct{}
	if len(sess.pins) > 0 {
		wait = make(chan struct{})
		sess.waiters = append(sess.waiters, wait)
		for _, sc := range s.senders {
			if len(sc.pend) > 0 {
				sc.poke()
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

// edgeID is the session ID of a point's edge session (no client session ID
// looks like it).
func edgeID(point string) string { return "~edge/" + point }

// newSession makes a session.
func newSession(id string, ps *pointState, now time.Time, start float64) *session {
	return &session{
		id: id, point: ps, opened: now, seen: now, start: start,
		kinds: map[string]*kindPos{}, pins: map[pinKey]*pinState{}, sent: map[cluster.BlockID]time.Time{},
		refuse: map[pinKey]time.Time{}, tokens: map[string]tokenEntry{},
	}
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
		ps.used = now
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

// render renders a manifest of a session with its URLs. Sessions of a
// point that hold no reservation off the block's usual sender share one
// rendering per index version and sender set (a template with the session
// ID, its tokens and the time as placeholders); the others get their own.
func (s *Scheduler) render(sess *session, track, format string, f func(store.View, manifest.Options) ([]byte, error)) ([]byte, error) {
	s.mu.Lock()
	now := s.now()
	ps := sess.point
	if track != "" {
		if ps.tracks[track] == nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("track %q: %w", track, store.ErrNotFound)
		}
		s.hintTrack(sess, track)
	}
	v := s.sessionView(sess, now)
	if s.personal(sess) {
		u := s.urls(ps, sess, now)
		s.mu.Unlock()
		return f(v, manifest.Options{Now: now, URLs: s.lockedURLs(u)})
	}
	key := templateKey(format, track, v, s.liveVer, ps.stateVer)
	tpl := ps.templates[key]
	if tpl == nil {
		u := s.urls(ps, nil, now)
		s.mu.Unlock()
		body, err := f(v, manifest.Options{Now: templateNow, URLs: s.lockedURLs(u)})
		if err != nil {
			return nil, err
		}
		tpl = newTemplate(body)
		s.mu.Lock()
		if ps.templates == nil || len(ps.templates) > 256 {
			ps.templates = map[string]*template{}
		}
		ps.templates[key] = tpl
	}
	vals := s.placeholders(sess, now)
	s.mu.Unlock()
	return tpl.expand(vals), nil
}

// lockedURLs wraps URL functions that need s.mu in functions that take it
// for each call, so that a rendering runs without holding it.
func (s *Scheduler) lockedURLs(u *manifest.URLs) *manifest.URLs {
	return &manifest.URLs{
		Manifest: u.Manifest, Playlist: u.Playlist,
		Init: func(id string) string {
			s.mu.Lock()
			defer s.mu.Unlock()
			return u.Init(id)
		},
		Segment: func(id string, t int64) string {
			s.mu.Lock()
			defer s.mu.Unlock()
			return u.Segment(id, t)
		},
	}
}

// personal reports whether a session holds a reservation that sends one of
// its blocks to another sender than the shared rendering names (a refusal
// moved it to a replica). s.mu must be held.
func (s *Scheduler) personal(sess *session) bool {
	for k := range sess.pins {
		if s.segmentSender(sess, k.block) != s.pointSender(sess.point, k.block) {
			return true
		}
	}
	return false
}

// sessionView is the index a session's manifests list: from the deep-link
// position on for an on-demand session; for a live one without the newest
// fragments that no sender has confirmed yet or that every owner reported
// missing (not written yet; for at most 10 s). s.mu must be held.
func (s *Scheduler) sessionView(sess *session, now time.Time) store.View {
	ps := sess.point
	v := ps.view
	cut := sess.start > 0 && !ps.live
	hold := ps.live && len(ps.missing)+len(ps.unconfirmed) > 0
	if !cut && !hold {
		return v
	}
	held := func(b cluster.BlockID) bool {
		if at, ok := ps.unconfirmed[b]; ok && now.Sub(at) < unconfirmedHold {
			return true
		}
		if len(ps.missing) == 0 {
			return false
		}
		owners := s.ownersOf(ps, b)
		for _, o := range owners {
			if !ps.lacks(o, b, now) {
				return false
			}
		}
		return len(owners) > 0
	}
	tracks := make([]store.TrackView, len(v.Tracks))
	copy(tracks, v.Tracks)
	for i := range tracks {
		t := &tracks[i]
		ti := ps.tracks[t.ID]
		if cut && ti != nil {
			pos := int64(sess.start*float64(ti.timescale)) + 1
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
			for n > 0 && held(cluster.BlockID{Point: ps.name, Track: t.ID, Start: t.Frags[n-1].Start}) {
				n--
			}
			t.Frags = t.Frags[:n]
		}
	}
	v.Tracks = tracks
	return v
}

// urls returns the URL mapping of a session's manifests, or with sess nil
// that of the point's shared rendering, with placeholders for the session
// ID and its tokens. Its functions must be called with s.mu held. s.mu must
// be held.
func (s *Scheduler) urls(ps *pointState, sess *session, now time.Time) *manifest.URLs {
	sid := phOpen + phSession + phClose
	if sess != nil {
		ps, sid = sess.point, sess.id
	}
	base := Prefix + escapePoint(ps.name) + "/~" + sid + "/"
	ttl := s.tokenTTL(ps)
	tok := func(id string) string {
		if sess == nil {
			return phOpen + phToken(id) + phClose
		}
		return s.token(sess, id, now, ttl)
	}
	pointPath := escapePoint(ps.name)
	return &manifest.URLs{
		Manifest: base + "manifest.mpd",
		Playlist: func(id string) string { return base + id + "/media.m3u8" },
		Init: func(id string) string {
			return s.initBase(ps, id) + "/b/" + tok(id) + "/" + pointPath + "/" + id + "/init.mp4"
		},
		Segment: func(id string, t int64) string {
			b := cluster.BlockID{Point: ps.name, Track: id, Start: t}
			var snd string
			if sess != nil {
				snd = s.segmentSender(sess, b)
			} else {
				snd = s.pointSender(ps, b)
			}
			base := s.senderURL(snd)
			if s.cfg.OwnerSetURL != "" && snd != "" {
				base = s.ownerSetBase(snd, s.ownersOf(ps, b))
			}
			return base + "/b/" + tok(id) + "/" + pointPath + "/" + id + "/" + strconv.FormatInt(t, 10) + ".m4s"
		},
	}
}

// tokenTTL is the token lifetime of a point's sessions: Config.TokenTTL,
// plus twice the duration of an on-demand asset (its manifest is not
// reloaded).
func (s *Scheduler) tokenTTL(ps *pointState) time.Duration {
	ttl := s.cfg.TokenTTL
	if !ps.live {
		ttl += 2 * time.Duration(ps.duration*float64(time.Second))
	}
	return ttl
}

// placeholders returns the values of a shared rendering's placeholders for
// a session. s.mu must be held.
func (s *Scheduler) placeholders(sess *session, now time.Time) map[string]string {
	ps := sess.point
	ttl := s.tokenTTL(ps)
	vals := make(map[string]string, len(ps.tracks)+2)
	vals[phSession] = sess.id
	vals[phNow] = now.UTC().Format(dashDateTime)
	for id := range ps.tracks {
		vals[phToken(id)] = s.token(sess, id, now, ttl)
	}
	return vals
}

// segmentSender is the sender a session fetches a block from: the first
// owner that took a reservation of the session for it, else pointSender.
// s.mu must be held.
func (s *Scheduler) segmentSender(sess *session, b cluster.BlockID) string {
	ps := sess.point
	if len(sess.pins) > 0 {
		for _, o := range s.ownersOf(ps, b) {
			if p := sess.pins[pinKey{o, b}]; p != nil && p.acked {
				return o
			}
		}
	}
	return s.pointSender(ps, b)
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
func (s *Scheduler) initBase(ps *pointState, track string) string {
	o := cluster.Owners(ps.name+"/"+track+"/init", s.liveIDs, s.cfg.Replicas)
	if len(o) == 0 {
		return s.senderURL("")
	}
	if s.cfg.OwnerSetURL != "" {
		return s.ownerSetBase(o[0], o)
	}
	return s.senderURL(o[0])
}

// senderURL is the base URL of a sender. s.mu must be held.
func (s *Scheduler) senderURL(id string) string {
	if sc := s.senders[id]; sc != nil {
		if s.cfg.ClientURL != nil {
			return s.cfg.ClientURL(sc.m)
		}
		return sc.m.URL
	}
	return "http://no-sender.invalid"
}
