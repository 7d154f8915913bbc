package sender

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/manifest"
)

// Every sender is a pathway of the sessions that name it (HLS and DASH
// content steering): a player fetches every block of a session from its
// pathway's sender, which serves the blocks it holds and redirects the
// others to the sender that should hold them. The placement is the one
// the schedulers send (cluster.Batch.Placement: the live senders with the
// URLs players use, and R), so a dead sender is left out as soon as a
// scheduler noticed. A block's senders are tried in its rendezvous order
// over the live senders (cluster.Owners) — the order the origin's writer
// places copies in, its owners first —, each hop given in the hopParam
// query argument: a request at hop h goes to the first sender of that
// order from position h on that is not this one, with hop set to its
// position + 1. The positions only grow, so a chain ends (404) after at
// most as many hops as there are senders.

// hopParam is the query argument that carries a redirect's hop.
const hopParam = "sluice-hop"

// redirect answers a request for something this sender does not hold (key
// is the block's placement key, kind the metric label) with a 302 to the
// next sender of the key's rendezvous order, and reports whether it did.
func (s *Sender) redirect(w http.ResponseWriter, r *http.Request, key, kind string) bool {
	hop := 0
	if v := r.URL.Query().Get(hopParam); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return false
		}
		hop = n
	}
	s.mu.Lock()
	p := s.placement
	s.mu.Unlock()
	if p == nil || hop >= len(p.Senders) {
		return false
	}
	urls := make(map[string]string, len(p.Senders))
	ids := make([]string, 0, len(p.Senders))
	for _, m := range p.Senders {
		urls[m.ID] = m.URL
		ids = append(ids, m.ID)
	}
	order := cluster.Owners(key, ids, len(ids))
	for i := hop; i < len(order); i++ {
		if order[i] == s.o.ID || urls[order[i]] == "" {
			continue
		}
		q := r.URL.Query()
		q.Set(hopParam, strconv.Itoa(i+1))
		target := strings.TrimSuffix(urls[order[i]], "/") + r.URL.EscapedPath() + "?" + q.Encode()
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Sluice-Sender", s.o.ID)
		http.Redirect(w, r, target, http.StatusFound)
		s.m.redirects.WithLabelValues(kind).Inc()
		return true
	}
	return false
}

// maxPlaylist bounds a media playlist fetched from a scheduler.
const maxPlaylist = 16 << 20

// servePlaylist answers a player's request for the session media playlist
// of a track on this sender's pathway: the scheduler renders it (with URIs
// relative to this request, init.mp4 and <start>.m4s, so that the player
// fetches the track's blocks here) and the sender passes it on, so that a
// player whose pathway this is resolves the segments against this
// sender's URL, whatever player it is. The session's scheduler answers
// while its lease runs, else any scheduler with a lease (which adopts the
// session); at most two are tried.
//
// An answer the scheduler marks as its point's shared one
// (cluster.SharedPlaylistHeader) is kept for the time it allows, and the
// session is marked: its next reloads of any track of the point are
// answered with the copy of that track while it is fresh (fetched once
// for all the sessions waiting when it is not) and reported to the
// scheduler in the next batch result (cluster.BatchResult.Reloads).
func (s *Sender) servePlaylist(w http.ResponseWriter, r *http.Request, t cluster.Token, track string) {
	path := "/s/" + escapePoint(t.Point) + "/~" + t.Session + "/" + url.PathEscape(track) + "/rel.m3u8"
	// LL-HLS delivery directives (a blocking reload, a delta update) go
	// with it; the rest of the query (CMCD) stays here.
	query := manifest.DeliveryDirectives(r.URL.Query())
	if s.o.Playlists != nil {
		req := r.Clone(r.Context())
		req.URL = &url.URL{Path: path, RawQuery: query}
		req.RequestURI = req.URL.RequestURI()
		rec := &bufferedResponse{h: http.Header{}, code: http.StatusOK}
		s.o.Playlists.ServeHTTP(rec, req)
		s.copyPlaylist(w, rec.code, rec.h, rec.body.Bytes())
		return
	}
	var (
		done    func(SharedPlaylist, time.Duration)
		doneKey SharedKey
	)
	if key, ok := s.sharedKey(t, track, query); ok {
		doneKey = key
		p, fresh, d := s.shared.Get(r.Context(), key)
		if fresh {
			s.reportReload(cluster.Reload{Session: t.Session, Point: t.Point, Track: track, At: s.o.Now()})
			s.writePlaylist(w, http.StatusOK, p.ContentType, p.CacheControl, "", p.Body, "shared")
			return
		}
		done = d
	}
	// done (a fetch others may wait for) is called once, whatever happens.
	var lastErr error
	for _, base := range s.schedulersFor(t.Session) {
		u := base + path
		if query != "" {
			u += "?" + query
		}
		code, h, body, err := s.fetchPlaylist(r.Context(), u, query != "")
		if err != nil {
			lastErr = err
			continue
		}
		if code >= 500 {
			lastErr = fmt.Errorf("scheduler %s: status %d", base, code)
			continue
		}
		var ttl time.Duration
		if code == http.StatusOK {
			ttl = ParseSharedTTL(h.Get(cluster.SharedPlaylistHeader))
		}
		p := SharedPlaylist{Body: body, ContentType: h.Get("Content-Type"), CacheControl: h.Get("Cache-Control")}
		s.markShared(t.Session, base, ttl > 0)
		key := SharedKey{Scheduler: base, Point: t.Point, Track: track, Query: query}
		if done != nil && key == doneKey {
			done(p, ttl)
			done = nil
		} else if ttl > 0 {
			s.shared.Put(key, p, ttl) // another scheduler's answer: its own key
		}
		if done != nil {
			done(SharedPlaylist{}, 0) // the waiters ask on their own
		}
		s.copyPlaylist(w, code, h, body)
		return
	}
	if done != nil {
		done(SharedPlaylist{}, 0)
	}
	if r.Context().Err() != nil {
		return // the player left (a blocking reload it gave up)
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no scheduler holds a lease here")
	}
	s.m.playlists.WithLabelValues("error").Inc()
	s.log.Warn("session playlist unavailable", "session", sessionLabel(t.Session), "track", track, "err", lastErr)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Retry-After", "1")
	http.Error(w, "playlist unavailable: "+lastErr.Error(), http.StatusServiceUnavailable)
}

// blockingPlaylistTimeout bounds a blocking playlist request to a
// scheduler: three target durations of up to 6 s, and some.
const blockingPlaylistTimeout = 20 * time.Second

// sharedKey is the key of the shared copy of a track's pathway playlist
// that a session's reloads may be answered with: when its latest answer
// came marked as shared from its own scheduler, whose lease runs.
func (s *Sender) sharedKey(t cluster.Token, track, query string) (SharedKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessions[t.Session]
	if ss == nil || ss.sharedFrom == "" || ss.sharedFrom != s.schedURLs[ss.sched] || !s.o.Now().Before(s.leases[ss.sched]) {
		return SharedKey{}, false
	}
	return SharedKey{Scheduler: ss.sharedFrom, Point: t.Point, Track: track, Query: query}, true
}

// markShared records whether a session's latest playlist answer, from the
// scheduler at base, was its point's shared one.
func (s *Sender) markShared(session, base string, shared bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.sessions[session]; ss != nil {
		ss.sharedFrom = ""
		if shared {
			ss.sharedFrom = base
		}
	}
}

// reportReload queues a reload answered from a shared copy for the
// session's scheduler's next batch result.
func (s *Sender) reportReload(rl cluster.Reload) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessions[rl.Session]
	if ss == nil {
		return
	}
	q := append(s.reloads[ss.sched], rl)
	if len(q) > s.o.MaxReports {
		q = q[len(q)-s.o.MaxReports:]
	}
	s.reloads[ss.sched] = q
}

// copyPlaylist writes a scheduler's answer to the player.
func (s *Sender) copyPlaylist(w http.ResponseWriter, code int, h http.Header, body []byte) {
	result := "ok"
	if code != http.StatusOK {
		result = "error"
	}
	s.writePlaylist(w, code, h.Get("Content-Type"), h.Get("Cache-Control"), h.Get("Retry-After"), body, result)
}

// writePlaylist writes a playlist answer and counts it by result.
func (s *Sender) writePlaylist(w http.ResponseWriter, code int, ctype, cc, retry string, body []byte, result string) {
	hd := w.Header()
	for _, kv := range [][2]string{{"Content-Type", ctype}, {"Cache-Control", cc}, {"Retry-After", retry}} {
		if kv[1] != "" {
			hd.Set(kv[0], kv[1])
		}
	}
	hd.Set("Sluice-Sender", s.o.ID)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	w.Write(body)
	s.m.playlists.WithLabelValues(result).Inc()
}

// fetchPlaylist GETs a playlist from a scheduler: within 5 s, or, for a
// request with LL-HLS delivery directives (which may wait three target
// durations at the scheduler), within blockingPlaylistTimeout.
func (s *Sender) fetchPlaylist(ctx context.Context, u string, directives bool) (int, http.Header, []byte, error) {
	timeout := 5 * time.Second
	if directives {
		timeout = blockingPlaylistTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	resp, err := s.o.Client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPlaylist+1))
	if err != nil {
		return 0, nil, nil, err
	}
	if len(body) > maxPlaylist {
		return 0, nil, nil, fmt.Errorf("playlist over %d bytes", maxPlaylist)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// schedulersFor returns the base URLs of at most two schedulers to ask for
// a session's playlist: its own while its lease runs, then the one with
// the latest lease.
func (s *Sender) schedulersFor(session string) []string {
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	own := ""
	if ss := s.sessions[session]; ss != nil && now.Before(s.leases[ss.sched]) && s.schedURLs[ss.sched] != "" {
		own = ss.sched
		out = append(out, s.schedURLs[own])
	}
	best, bestUntil := "", time.Time{}
	for id, until := range s.leases {
		if id == own || !now.Before(until) || s.schedURLs[id] == "" {
			continue
		}
		if until.After(bestUntil) {
			best, bestUntil = id, until
		}
	}
	if best != "" {
		out = append(out, s.schedURLs[best])
	}
	return out
}

// escapePoint escapes each segment of a point name for a URL path.
func escapePoint(p string) string {
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/")
}

// sessionLabel is a short form of a session ID for logs.
func sessionLabel(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// bufferedResponse keeps an in-process handler's answer.
type bufferedResponse struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.h }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(code int)        { b.code = code }
