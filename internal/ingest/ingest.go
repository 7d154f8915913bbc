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
	"time"

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
}

// New returns the ingest handler. With cfg.Standby set, every push it
// receives is forwarded to that ingest (see proxy.go); Close ends the
// forwarding still in progress.
func New(st *store.Store, cfg config.Config, m *metrics.Metrics, log *slog.Logger) *Handler {
	h := &Handler{st: st, cfg: cfg, log: log, m: m, feeds: newFeeds()}
	if cfg.Standby != "" {
		h.sb = newStandby(h, cfg.Standby, cfg.StandbyBuffer, m.Registry)
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

// refuse answers an ingest request with an error status and logs why.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, pp string, status int, reason string, args ...any) {
	h.log.Warn("ingest refused", append([]any{"status", status, "reason", reason, "point", pp,
		"path", r.URL.Path, "remote", r.RemoteAddr}, args...)...)
	h.m.IngestErrors.WithLabelValues(metricPoint(pp, h.cfg), strconv.Itoa(status)).Inc()
	// Close instead of draining the rest of a long body: the encoder learns
	// of the refusal now, not after the server has read and thrown away
	// another 256 KiB.
	w.Header().Set("Connection", "close")
	http.Error(w, reason, status)
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
	point, err := h.st.Create(pp)
	if err != nil {
		h.refuse(w, r, pp, http.StatusInternalServerError, "cannot open publishing point: "+err.Error())
		return
	}
	h.m.ActivePushes.Inc()
	defer h.m.ActivePushes.Dec()
	start := time.Now()
	rc := http.NewResponseController(w)
	var body io.Reader = &deadlineReader{r: r.Body, rc: rc, idle: h.cfg.IngestIdle}
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
	res, err := h.Receive(r.Context(), point, streamID, body, ReceiveOptions{Push: push})
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
	case errors.Is(err, media.ErrBoxTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, media.ErrConfigChanged), errors.Is(err, media.ErrNoHeader):
		status = http.StatusPreconditionFailed
	case errors.Is(err, media.ErrUnsupported):
		status = http.StatusUnsupportedMediaType
	case errors.Is(err, ErrRestartRefused):
		status = http.StatusConflict
	case errors.As(err, &nerr) && nerr.Timeout():
		status = http.StatusRequestTimeout
	case errors.Is(err, errClientGone), errors.Is(err, context.Canceled):
		status = 499
	case isStoreFailure(err):
		status = http.StatusInternalServerError
	}
	h.m.Pushes.WithLabelValues(metricPoint(pp, h.cfg), strconv.Itoa(status)).Inc()
	h.refuse(w, r, pp, status, err.Error(), "stream", streamID, "offset", res.Bytes, "stored_fragments", res.Fragments)
}

var errClientGone = errors.New("encoder connection closed")

// deadlineReader extends the read deadline before every read, so a push that
// goes silent is cut after the idle time while a long push is never cut.
type deadlineReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.idle > 0 {
		_ = d.rc.SetReadDeadline(time.Now().Add(d.idle))
	}
	n, err := d.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		var nerr interface{ Timeout() bool }
		if errors.As(err, &nerr) && nerr.Timeout() {
			return n, err
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return n, fmt.Errorf("%w: %v", errClientGone, err)
		}
	}
	return n, err
}

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
