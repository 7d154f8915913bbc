package sender

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/blockstore"
	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/httpx"
	"github.com/sluice-media/sluice/internal/netconn"
	"github.com/sluice-media/sluice/internal/pacing"
	"github.com/sluice-media/sluice/internal/texttrack"
)

// client serves GET /b/<token>/<point>/<track>/<start>.m4s, init.mp4 and
// media.m3u8.
func (s *Sender) client(w http.ResponseWriter, r *http.Request) {
	// CORS, preflights and methods as on the origin (CMCD, Range,
	// conditional requests).
	if !httpx.ClientMethods(w, r) {
		return
	}
	tok, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/b/"), "/")
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		s.notFound(w, "want /b/<token>/<point>/<track>/<start>.m4s, init.mp4 or media.m3u8")
		return
	}
	point, track, ok := splitTrack(rest[:i])
	file := rest[i+1:]
	if !ok || !blockstore.ValidBlock(cluster.BlockID{Point: point, Track: track}) {
		s.notFound(w, "no such point or track")
		return
	}
	id := cluster.BlockID{Point: point, Track: track}
	isInit, isPlaylist := file == "init.mp4", file == "media.m3u8"
	partStart, isPart := partName(file)
	// <start>.vtt: the block of a WebVTT text track as an HLS WebVTT
	// segment, under the block's own token.
	isVTT := strings.HasSuffix(file, ".vtt")
	if isPart {
		id.Start = partStart
	} else if !isInit && !isPlaylist {
		start, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSuffix(file, ".m4s"), ".vtt"), 10, 64)
		if err != nil || !strings.HasSuffix(file, ".m4s") && !isVTT {
			s.notFound(w, "want <start>.m4s, <start>.vtt, init.mp4 or media.m3u8")
			return
		}
		id.Start = start
	}
	now := s.o.Now()
	var t cluster.Token
	var err error
	if tok == "" {
		err = fmt.Errorf("%w: missing", cluster.ErrToken)
	} else if t, err = cluster.Verify(s.o.Secret, tok, id); err == nil {
		err = s.checkSession(t.Session, point, now)
	}
	if err != nil {
		reason := strings.TrimPrefix(strings.TrimPrefix(err.Error(), cluster.ErrToken.Error()), ": ")
		s.m.tokenRefused.WithLabelValues(refusalReason(reason)).Inc()
		s.log.Debug("token refused", "path", r.URL.Path, "reason", reason)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "forbidden: "+err.Error(), http.StatusForbidden)
		return
	}
	if isPlaylist {
		s.servePlaylist(w, r, t, track)
		return
	}
	// Session URLs are for one player: browsers may keep them, shared
	// caches must not. (They never change while the session lives; the
	// token stops working when it ends.)
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Header().Set("Sluice-Sender", s.o.ID)
	if ids := cluster.OwnerSetMembers(r.Host); len(ids) > 1 && ids[0] != s.o.ID && slices.Contains(ids[1:], s.o.ID) {
		s.m.fallbacks.Inc()
	}
	if isInit {
		s.serveInit(w, r, point, track)
		return
	}
	if isVTT {
		s.serveWebVTT(w, r, id, t)
		return
	}
	if isPart {
		s.servePart(w, r, id, t)
		return
	}
	s.serveBlock(w, r, id, t)
}

// serveWebVTT serves a block of a WebVTT text track converted to an HLS
// WebVTT segment (texttrack.Segment, as the origin does).
func (s *Sender) serveWebVTT(w http.ResponseWriter, r *http.Request, id cluster.BlockID, t cluster.Token) {
	ie, err := s.init(r.Context(), id.Point, id.Track)
	if err != nil {
		if errors.Is(err, blockstore.ErrNotFound) {
			s.notFound(w, "this sender holds no header for that track")
			return
		}
		s.log.Error("read init", "block", id, "err", err)
		http.Error(w, "cannot read init", http.StatusInternalServerError)
		return
	}
	b, err := s.st.Open(r.Context(), id)
	if err != nil {
		if errors.Is(err, blockstore.ErrNotFound) {
			s.notFound(w, "this sender does not hold that block")
			return
		}
		s.log.Error("open block", "block", id, "err", err)
		http.Error(w, "cannot read block", http.StatusInternalServerError)
		return
	}
	defer b.Close()
	if b.Size > texttrack.MaxInput {
		http.Error(w, "text block too large to convert", http.StatusInternalServerError)
		return
	}
	data, err := io.ReadAll(io.LimitReader(b.ReadSeeker(), b.Size))
	var body []byte
	if err == nil {
		body, err = texttrack.Segment(ie.data, data)
	}
	if err != nil {
		s.log.Error("convert block to WebVTT", "block", id, "err", err)
		http.Error(w, "cannot convert block to WebVTT", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/vtt; charset=utf-8")
	w.Header().Set("ETag", fmt.Sprintf(`"v-%d-%d"`, id.Start, b.Size))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	if r.Method == http.MethodGet {
		s.report(cluster.SentReport{Session: t.Session, Block: id, At: s.o.Now(), Bytes: int64(len(body)), FromRAM: b.FromRAM, Next: s.nextRequest(r)})
	}
}

// refusalReason is the metric label of a token refusal: the reason
// without the details after a parenthesis or a colon.
func refusalReason(reason string) string {
	if i := strings.IndexAny(reason, "(:"); i > 0 {
		reason = reason[:i]
	}
	return strings.TrimSpace(reason)
}

func (s *Sender) notFound(w http.ResponseWriter, reason string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, reason, http.StatusNotFound)
}

func (s *Sender) serveInit(w http.ResponseWriter, r *http.Request, point, track string) {
	ie, err := s.init(r.Context(), point, track)
	if err != nil {
		if errors.Is(err, blockstore.ErrNotFound) {
			if s.redirect(w, r, point+"/"+track+"/init", "init") {
				return
			}
			s.notFound(w, "this sender holds no header for that track")
			return
		}
		s.log.Error("read init", "point", point, "track", track, "err", err)
		http.Error(w, "cannot read init", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ie.contentType)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(ie.data))
}

func (s *Sender) serveBlock(w http.ResponseWriter, r *http.Request, id cluster.BlockID, t cluster.Token) {
	b, err := s.st.Open(r.Context(), id)
	if err != nil {
		if errors.Is(err, blockstore.ErrNotFound) {
			// The block is still arriving (or just arrived at the
			// origin): every sender keeps the parts of the newest ones.
			if s.serveFromParts(w, r, id, t) {
				return
			}
			if s.redirect(w, r, id.Key(), "block") {
				return
			}
			s.notFound(w, "this sender does not hold that block")
			return
		}
		s.log.Error("open block", "block", id, "err", err)
		http.Error(w, "cannot read block", http.StatusInternalServerError)
		return
	}
	defer b.Close()
	ct := "video/mp4"
	if ie, err := s.init(r.Context(), id.Point, id.Track); err == nil {
		ct = ie.contentType
	}
	hd := w.Header()
	hd.Set("Content-Type", ct)
	hd.Set("ETag", fmt.Sprintf(`"f-%d-%d"`, id.Start, b.Size))
	corked := false
	if c, ok := netconn.TCP(r); ok {
		// Header and body leave in full segments (nginx's tcp_nopush).
		if err := netconn.Cork(c, true); err == nil {
			corked = true
			defer netconn.Cork(c, false)
		}
	}
	cw := httpx.NewCountingWriter(w)
	var out http.ResponseWriter = cw
	if corked && b.File() != nil {
		out = flushHeader{cw}
	}
	// An *os.File (RAM memfd or disk file) lets net/http use sendfile.
	http.ServeContent(out, r, "", time.Time{}, b.ReadSeeker())
	if r.Method != http.MethodGet || cw.Status != http.StatusOK && cw.Status != http.StatusPartialContent {
		return
	}
	from := "disk"
	if b.FromRAM {
		from = "ram"
		s.sendsRAM.Add(1)
	} else {
		s.sendsDisk.Add(1)
	}
	s.m.sends.WithLabelValues(from).Inc()
	s.m.sendBytes.WithLabelValues(from).Add(float64(cw.Bytes))
	s.report(cluster.SentReport{Session: t.Session, Block: id, At: s.o.Now(), Bytes: cw.Bytes, FromRAM: b.FromRAM, Next: s.nextRequest(r)})
}

// flushHeader sends the response header as soon as the status is written,
// before a file body that net/http sends with sendfile. Otherwise net/http
// copies the body's first 512 bytes through user space (a read syscall and
// a copy per response) to hold the header back until the body is readable.
// Only for a corked connection: the header still leaves in the body's
// first segment.
type flushHeader struct{ *httpx.CountingWriter }

// WriteHeader writes the status and flushes the header of a 200 or 206.
func (w flushHeader) WriteHeader(code int) {
	w.CountingWriter.WriteHeader(code)
	if code == http.StatusOK || code == http.StatusPartialContent {
		// An error here is the connection's: the body's write reports it.
		_ = http.NewResponseController(w.CountingWriter).Flush()
	}
}

// nextRequest returns the player's next object request as it announced it
// with r (CMCD nor, from the CMCD-Request header or the CMCD= query
// argument), percent-decoded, or "". The URL stays as the player sent it,
// relative to the block's URL or absolute: the scheduler resolves it.
// Malformed CMCD costs a debug line, never the request.
func (s *Sender) nextRequest(r *http.Request) string {
	c, err := pacing.ParseCMCD(r)
	if err != nil {
		s.log.Debug("malformed CMCD on a block request", "path", r.URL.Path, "err", err)
	}
	if c.NOR == "" {
		return ""
	}
	if u, err := url.PathUnescape(c.NOR); err == nil {
		return u
	}
	return c.NOR
}
