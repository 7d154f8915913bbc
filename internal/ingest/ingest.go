// Package ingest receives encoder pushes at /<pp>.isml/Streams(<id>) — the
// Smooth/ismv long chunked POST and DASH-IF CMAF ingest (a long POST per
// track, or one POST/PUT per segment after the CMAF header) — parses the body
// as a box stream and stores every fragment durably. It also serves the pull
// side (StreamManifest, Streams(<id>), Streams(<id>)/StartTime(<t>)) that
// origins use to fetch what an ingest holds.
package ingest

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/httpx"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/metrics"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/urls"
)

// Handler serves the ingest URLs of the configured publishing points.
type Handler struct {
	st  *store.Store
	cfg config.Config
	log *slog.Logger
	m   *metrics.Metrics
	// sb forwards pushes to the standby ingest (push proxy); nil without one.
	sb *standby
	// feeds knows which pushes are feeding which tracks (restart.go).
	feeds *feeds
	// mem bounds the box buffers of all pushes (nil: unbounded).
	mem *budget
	// pushes counts the pushes in progress per point (cfg.MaxPushes).
	pushMu sync.Mutex
	pushes map[string]int
}

// New returns the ingest handler. With cfg.Standby set, every push it
// receives is forwarded to that ingest (see proxy.go); Close ends the
// forwarding still in progress.
func New(st *store.Store, cfg config.Config, m *metrics.Metrics, log *slog.Logger) *Handler {
	h := &Handler{st: st, cfg: cfg, log: log, m: m, feeds: newFeeds(), pushes: map[string]int{}}
	if cfg.IngestMemory > 0 {
		h.mem = newBudget(int64(cfg.IngestMemory))
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_ingest_buffer_bytes", Help: "Bytes of ingest box buffers held by the pushes in progress (bounded by --ingest-memory).",
		}, func() float64 { return float64(h.mem.Used()) }))
	}
	if cfg.Standby != "" {
		h.sb = newStandby(h, cfg.Standby, int64(cfg.StandbyBuffer), m.Registry)
	}
	return h
}

// Close stops forwarding to the standby. Pushes still in progress are no
// longer forwarded.
func (h *Handler) Close() {
	if h.sb != nil {
		h.sb.close()
	}
}

// Handles reports whether the request is an ingest request this handler
// serves: a POST or PUT to a stream, or a pull (GET of StreamManifest or a
// stream). Origin routes are left to the origin handler.
func Handles(r *http.Request) bool {
	_, rest, ok := urls.Split(r.URL.Path)
	if !ok {
		return false
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut:
		return true
	case http.MethodGet, http.MethodHead:
		if rest == "StreamManifest" {
			return true
		}
		_, _, isStream := parseStreamPath(rest)
		return isStream
	}
	return false
}

// acceptedTypes are the Content-Types an ingest body may declare; none at all
// (ffmpeg sends none) is accepted too.
var acceptedTypes = map[string]bool{
	"video/mp4": true, "audio/mp4": true, "application/mp4": true, "video/iso.segment": true,
	"application/octet-stream": true, "video/vnd.ms-sstr+xml": true, "application/vnd.ms-sstr+xml": true,
	"video/ismv": true, "audio/isma": true,
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pp, rest, ok := urls.Split(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut:
		h.push(w, r, pp, rest)
	case http.MethodGet, http.MethodHead:
		h.pull(w, r, pp, rest)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// retryAfter is the Retry-After (seconds) of a push refused for want of
// memory or of a push slot.
const retryAfter = "5"

// refuse answers an ingest request with an error status and logs why.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, pp string, status int, reason string, args ...any) {
	h.log.Warn("ingest refused", append([]any{"status", status, "reason", reason, "point", pp,
		"path", r.URL.Path, "remote", r.RemoteAddr}, args...)...)
	h.m.IngestErrors.WithLabelValues(metricPoint(pp, h.cfg), strconv.Itoa(status)).Inc()
	// Close instead of draining the rest of a long body: the encoder learns
	// of the refusal now, not after the server has read and thrown away
	// another 256 KiB.
	w.Header().Set("Connection", "close")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	}
	// http.Error, with a length: the answer is whole even if lingerClose
	// takes the connection over.
	body := reason + "\n"
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// Lingering after a refusal in the middle of a body (lingerClose).
const (
	lingerTime  = time.Second
	lingerBytes = 16 << 20
)

// lingerClose ends the connection of a push refused in the middle of its
// body without losing the answer. Closing a socket with unread bytes makes
// the kernel send a reset, which can destroy the answer before the encoder
// has read it (net/http closes so when it gives up on a body). Instead the
// answer is flushed, the sending side closed (FIN), and what the encoder
// still sends is read and dropped — at most lingerBytes for lingerTime —
// before the connection is closed.
func lingerClose(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}
	conn, brw, err := rc.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	if brw.Flush() != nil {
		return
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	conn.SetReadDeadline(time.Now().Add(lingerTime))
	io.Copy(io.Discard, io.LimitReader(conn, lingerBytes))
}

// claim takes one of the point's push slots (cfg.MaxPushes); false when
// all are taken. release gives it back.
func (h *Handler) claim(pp string) (release func(), ok bool) {
	h.pushMu.Lock()
	defer h.pushMu.Unlock()
	if h.cfg.MaxPushes > 0 && h.pushes[pp] >= h.cfg.MaxPushes {
		return nil, false
	}
	h.pushes[pp]++
	return func() {
		h.pushMu.Lock()
		defer h.pushMu.Unlock()
		if h.pushes[pp]--; h.pushes[pp] <= 0 {
			delete(h.pushes, pp)
		}
	}, true
}

// metricPoint keeps label cardinality bounded: unknown names share one label.
func metricPoint(pp string, cfg config.Config) string {
	if _, ok := cfg.Point(pp); ok {
		return pp
	}
	return "_unknown"
}

// authorized checks the point's token, if one is configured: an
// "Authorization: Bearer <token>" header (no other scheme, and no bare
// token) or, without an Authorization header, ?token=.
func authorized(r *http.Request, p config.Point) bool {
	ok, _ := checkToken(r, p)
	return ok
}

// checkToken is authorized with the reason of a refusal.
func checkToken(r *http.Request, p config.Point) (bool, string) {
	if p.Token == "" {
		return true, ""
	}
	got, present, ok := httpx.Bearer(r.Header)
	switch {
	case present && !ok:
		return false, "the Authorization header must be \"Bearer <token>\" (no other scheme is accepted)"
	case !present:
		got = r.URL.Query().Get("token")
	}
	if got == "" {
		return false, "missing ingest token"
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(p.Token)) != 1 {
		return false, "wrong ingest token"
	}
	return true, ""
}

func (h *Handler) push(w http.ResponseWriter, r *http.Request, pp, rest string) {
	if !store.ValidPointName(pp) {
		h.refuse(w, r, pp, http.StatusBadRequest, "invalid publishing point name "+strconv.Quote(pp))
		return
	}
	pc, ok := h.cfg.Point(pp)
	if !ok {
		h.refuse(w, r, pp, http.StatusNotFound, "publishing point "+strconv.Quote(pp)+" is not configured")
		return
	}
	if ok, why := checkToken(r, pc); !ok {
		h.refuse(w, r, pp, http.StatusForbidden, why+" for "+strconv.Quote(pp))
		return
	}
	streamID, _, hasStart, ok := urls.Stream(rest)
	if !ok || hasStart {
		if strings.HasSuffix(rest, ".mpd") || strings.HasSuffix(rest, ".m3u8") {
			// DASH-IF ingest may POST a manifest first; Sluice derives its
			// own manifests, so it is acknowledged and not stored.
			io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
			w.WriteHeader(http.StatusOK)
			return
		}
		h.refuse(w, r, pp, http.StatusNotFound, "ingest path must be /<pp>.isml/Streams(<id>)")
		return
	}
	if !store.ValidID(streamID) {
		h.refuse(w, r, pp, http.StatusBadRequest, "invalid stream id "+strconv.Quote(streamID))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !acceptedTypes[mt] {
			h.refuse(w, r, pp, http.StatusUnsupportedMediaType, "unsupported media type "+strconv.Quote(ct)+"; send fragmented MP4")
			return
		}
	}
	if r.ContentLength == 0 {
		// The empty-body probe of MS-SSTR 3.3.3 / DASH-IF ingest: nothing to keep.
		w.WriteHeader(http.StatusOK)
		return
	}
	release, ok := h.claim(pp)
	if !ok {
		h.refuse(w, r, pp, http.StatusServiceUnavailable, fmt.Sprintf("%d pushes to %q in progress, the most allowed (max_pushes)", h.cfg.MaxPushes, pp))
		return
	}
	defer release()
	point, err := h.st.Create(pp)
	if err != nil {
		h.refuse(w, r, pp, http.StatusInternalServerError, "cannot open publishing point: "+err.Error())
		return
	}
	h.m.ActivePushes.Inc()
	defer h.m.ActivePushes.Dec()
	start := time.Now()
	rc := http.NewResponseController(w)
	g := newGuard(r.Body, rc, h.cfg.IngestIdle, h.cfg.IngestMinRate, h.cfg.IngestRateWindow)
	if h.mem != nil {
		g.hold = h.mem.open(g.abort)
		defer g.hold.close()
	}
	var body io.Reader = g
	proxied := r.Header.Get(ProxyHeader) != ""
	push := &PushInfo{Start: start, Policy: h.cfg.RestartPolicy(pp)}
	if proxied {
		// A push forwarded by a primary ingest: take its anchor, so that
		// this standby and everything pulling from it announce the same
		// media time zero.
		if t, err := time.Parse(time.RFC3339Nano, r.Header.Get(AnchorHeader)); err == nil {
			if _, err := point.AdoptAnchor(t); err != nil {
				h.log.Warn("adopt anchor", "point", pp, "err", err)
			}
		}
		// A tee is judged from the primary's push start, so that both place
		// a restarted encoder alike; a follow body is in stored form.
		if t, err := time.Parse(time.RFC3339Nano, r.Header.Get(PushStartHeader)); err == nil {
			push.Start = t
		}
		if r.Header.Get(ModeHeader) == "follow" {
			push = nil
		}
	}
	var fw *forward
	if h.sb != nil && !proxied {
		// Forward to the standby (one hop: a forwarded push is never
		// forwarded again, so two ingests may name each other).
		fw = h.sb.start(r, point, streamID, start)
		body = io.TeeReader(body, fw)
	}
	res, err := h.Receive(r.Context(), point, streamID, body, ReceiveOptions{Push: push, guard: g})
	closedAfterEnd := err != nil && res.Ended && clientGone(err)
	if closedAfterEnd {
		// ffmpeg's normal end: the empty mfra, then it closes the
		// connection without reading the answer. Nothing was refused.
		err = nil
	}
	if fw != nil {
		fw.finish(err)
	}
	if err != nil {
		h.fail(w, r, pp, streamID, err, res)
		return
	}
	h.m.Pushes.WithLabelValues(metricPoint(pp, h.cfg), "200").Inc()
	h.log.Info("push finished", "point", pp, "stream", streamID, "fragments", res.Fragments,
		"duplicates", res.Duplicates, "dropped", res.Dropped, "restarted", res.Restarted, "ended", res.Ended,
		"closed_after_end", closedAfterEnd, "bytes", res.Bytes, "proxied", proxied, "elapsed", elapsed(start))
	w.WriteHeader(http.StatusOK)
}

// clientGone reports whether a Receive error means the encoder closed the
// connection (or the request's context ended with it).
func clientGone(err error) bool {
	return errors.Is(err, errClientGone) || errors.Is(err, context.Canceled) || errors.Is(err, io.ErrUnexpectedEOF)
}

// fail maps a parse or store error to the status DASH-IF ingest defines.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, pp, streamID string, err error, res Result) {
	status := http.StatusBadRequest
	var nerr interface{ Timeout() bool }
	switch {
	case errors.Is(err, store.ErrDisk):
		status = http.StatusInternalServerError
	case errors.Is(err, ErrOverBudget):
		status = http.StatusServiceUnavailable
	case errors.Is(err, media.ErrBoxTooLarge), errors.Is(err, media.ErrEventsTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, media.ErrConfigChanged), errors.Is(err, media.ErrNoHeader):
		status = http.StatusPreconditionFailed
	case errors.Is(err, media.ErrUnsupported):
		status = http.StatusUnsupportedMediaType
	case errors.Is(err, ErrRestartRefused):
		status = http.StatusConflict
	case errors.Is(err, errNoProgress), errors.Is(err, errTooSlow), errors.As(err, &nerr) && nerr.Timeout():
		status = http.StatusRequestTimeout
	case errors.Is(err, errClientGone), errors.Is(err, context.Canceled):
		status = 499
	}
	h.m.Pushes.WithLabelValues(metricPoint(pp, h.cfg), strconv.Itoa(status)).Inc()
	h.refuse(w, r, pp, status, err.Error(), "stream", streamID, "offset", res.Bytes, "stored_fragments", res.Fragments)
	if status != 499 {
		lingerClose(w)
	}
}

var errClientGone = errors.New("encoder connection closed")

func trackList(h *media.Header, ids map[uint32]string) string {
	var b strings.Builder
	for i, t := range h.Tracks {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s(%s %s %d)", ids[t.TrackID], t.Kind, t.Codec, t.Bitrate)
	}
	return b.String()
}
