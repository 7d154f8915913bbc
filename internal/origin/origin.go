// Package origin serves players: Smooth Streaming, DASH and HLS manifests
// rendered from one fragment index, and the fragments themselves at stable
// REST URLs, with the cache, range and CORS headers HTTP caches and browsers
// need.
package origin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/httpx"
	"github.com/sluice-media/sluice/internal/manifest"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/metrics"
	"github.com/sluice-media/sluice/internal/netconn"
	"github.com/sluice-media/sluice/internal/pacing"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/texttrack"
	"github.com/sluice-media/sluice/internal/urls"
)

// Handler serves the client URLs of every publishing point in a store.
type Handler struct {
	st  *store.Store
	cfg config.Config
	m   *metrics.Metrics
	log *slog.Logger
	now func() time.Time
	// viewAuth checks the signature of index requests when the origin has
	// a cluster secret (nil otherwise).
	viewAuth *clusterauth.Verifier
}

// New returns the origin handler.
func New(st *store.Store, cfg config.Config, m *metrics.Metrics, log *slog.Logger) *Handler {
	h := &Handler{st: st, cfg: cfg, m: m, log: log, now: time.Now}
	if cfg.Cluster.Secret != "" {
		var reg prometheus.Registerer
		if m != nil {
			reg = m.Registry
		}
		h.viewAuth = &clusterauth.Verifier{Keys: clusterauth.NewKeys([]byte(cfg.Cluster.Secret)), Log: log,
			Refused: clusterauth.NewMetrics(reg).RequestRefused}
	}
	return h
}

// CORS headers: players on other origins send CMCD request headers and read
// CMSD response headers.
// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !httpx.ClientMethods(w, r) {
		return
	}
	pp, rest, ok := urls.Split(r.URL.Path)
	if !ok {
		h.notFound(w, "no publishing point in path", 60)
		return
	}
	if rest == "view.json" && !h.viewAllowed(w, r) {
		return
	}
	point, err := h.st.Point(pp)
	if err != nil {
		h.notFound(w, "unknown publishing point", 2)
		return
	}
	switch {
	case rest == "Manifest":
		h.manifest(w, r, point, "smooth", "", "text/xml; charset=utf-8", manifest.Smooth)
	case rest == "manifest.mpd" || rest == ".mpd":
		h.manifest(w, r, point, "dash", "", "application/dash+xml", manifest.DASH)
	case rest == "master.m3u8" || rest == ".m3u8":
		h.manifest(w, r, point, "hls", "", "application/vnd.apple.mpegurl", manifest.HLSMaster)
	case rest == "view.json":
		h.serveView(w, r, point)
	case strings.HasPrefix(rest, "QualityLevels("):
		h.smoothFragment(w, r, point, rest)
	default:
		track, file, ok := urls.TrackFile(rest)
		if !ok {
			h.notFound(w, "unknown resource", 60)
			return
		}
		switch {
		case file == "media.m3u8":
			h.mediaPlaylist(w, r, point, track)
		case strings.HasPrefix(file, "part-") && strings.HasSuffix(file, ".m4s"):
			t, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(file, "part-"), ".m4s"), 10, 64)
			if err != nil {
				h.notFound(w, "part name must be part-<start time>.m4s", 60)
				return
			}
			h.part(w, r, point, track, t)
		case file == "init.mp4":
			h.init(w, r, point, track)
		case strings.HasSuffix(file, ".m4s"):
			t, err := strconv.ParseInt(strings.TrimSuffix(file, ".m4s"), 10, 64)
			if err != nil {
				h.notFound(w, "fragment name must be <start time>.m4s", 60)
				return
			}
			h.fragment(w, r, point, track, t)
		case strings.HasSuffix(file, ".vtt"):
			t, err := strconv.ParseInt(strings.TrimSuffix(file, ".vtt"), 10, 64)
			if err != nil {
				h.notFound(w, "WebVTT segment name must be <start time>.vtt", 60)
				return
			}
			h.webVTT(w, r, point, track, t)
		default:
			h.notFound(w, "unknown resource", 60)
		}
	}
}

func (h *Handler) notFound(w http.ResponseWriter, reason string, maxAge int) {
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(maxAge))
	http.Error(w, reason, http.StatusNotFound)
}

// view returns the index cut to the DVR window while live, whole otherwise.
func (h *Handler) view(point *store.Point) store.View {
	v := point.View(h.cfg.DVR(point.Name))
	if !manifest.Live(v) {
		v = point.View(0)
	}
	return v
}

func (h *Handler) options() manifest.Options {
	return manifest.Options{Now: h.now(), LookAhead: h.cfg.LookAhead}
}

// cacheClockSlack is what a shared cache that keeps time in whole seconds
// (nginx) may keep a response past its max-age: LiveMaxAge leaves it.
const cacheClockSlack = time.Second

// LiveMaxAge is the Cache-Control max-age, in whole seconds, of a live
// manifest rendered from v at now (of the HLS media playlist of track, or,
// with track "", of a manifest listing every track): the time until its
// next fragment is due — the newest fragment's arrival (TrackView.Arrived)
// plus its duration, the earliest over the tracks that have not ended —
// less the second a cache with a one-second clock may add, rounded down.
// So no cache in front keeps the manifest past the moment it is due to
// change. It is 0 (revalidate every time; caches that hold it anyway
// must keep it only briefly, see docs/distribution.md) within that last
// second, when a fragment is overdue, and when no fragment arrived since
// this process started. A live manifest changes only when a fragment
// arrives (or a track ends or restarts, which happens at an arrival too) —
// unless it is a low-latency one (manifest.LowLatency: a track has parts),
// which changes with every part: it is 0 then.
func LiveMaxAge(v store.View, track string, now time.Time) int {
	var due time.Time
	for _, t := range v.Tracks {
		if t.Ended || (track != "" && t.ID != track) {
			continue
		}
		if len(t.Frags) == 0 || t.Arrived.IsZero() || manifest.LowLatency(v, t) {
			return 0
		}
		last := t.Frags[len(t.Frags)-1]
		next := t.Arrived.Add(time.Duration(t.Seconds(int64(last.Duration)) * float64(time.Second)))
		if due.IsZero() || next.Before(due) {
			due = next
		}
	}
	if due.IsZero() {
		return 0
	}
	return max(int((due.Sub(now)-cacheClockSlack)/time.Second), 0)
}

// manifest serves a manifest rendered from the point's view; track names
// the one track an HLS media playlist lists ("" for the others).
func (h *Handler) manifest(w http.ResponseWriter, r *http.Request, point *store.Point, format, track, ctype string,
	render func(store.View, manifest.Options) ([]byte, error)) {
	h.renderManifest(w, r, point, h.view(point), format, track, ctype, "", render)
}

// renderManifest serves a manifest rendered from v; cacheControl, when
// set, replaces the one derived from v.
func (h *Handler) renderManifest(w http.ResponseWriter, r *http.Request, point *store.Point, v store.View, format, track, ctype, cacheControl string,
	render func(store.View, manifest.Options) ([]byte, error)) {
	o := h.options()
	o.DVRWindow = h.cfg.DVR(point.Name)
	t0 := time.Now()
	body, err := render(v, o)
	h.m.ManifestRenderNs.WithLabelValues(format).Observe(time.Since(t0).Seconds())
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			h.notFound(w, err.Error(), 2)
			return
		}
		h.log.Error("render manifest", "point", point.Name, "format", format, "err", err)
		http.Error(w, "cannot render manifest", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", ctype)
	if cacheControl != "" {
		hd.Set("Cache-Control", cacheControl)
	} else if manifest.Live(v) {
		hd.Set("Cache-Control", "public, max-age="+strconv.Itoa(LiveMaxAge(v, track, h.now())))
	} else {
		hd.Set("Cache-Control", "public, max-age=3600")
	}
	sum := sha256.Sum256(body)
	hd.Set("ETag", `"`+hex.EncodeToString(sum[:10])+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// Shared header values of fragment responses: read-only (net/http copies
// them when it writes the header; Header.Add appends to a copy).
var (
	immutableValue = []string{"public, max-age=31536000, immutable"}
	videoMP4Value  = []string{"video/mp4"}
	audioMP4Value  = []string{"audio/mp4"}
	appMP4Value    = []string{"application/mp4"}
)

func contentTypeValue(kind string) []string {
	switch kind {
	case "audio":
		return audioMP4Value
	case "text":
		return appMP4Value
	}
	return videoMP4Value
}

func contentType(kind string) string {
	if kind == "audio" {
		return "audio/mp4"
	}
	if kind == "text" {
		return "application/mp4"
	}
	return "video/mp4"
}

func (h *Handler) init(w http.ResponseWriter, r *http.Request, point *store.Point, track string) {
	data, err := point.Init(track)
	if err != nil {
		h.notFound(w, "unknown track", 2)
		return
	}
	info, _ := point.TrackInfo(track)
	hd := w.Header()
	hd.Set("Content-Type", contentType(info.Kind))
	hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	hd.Set("ETag", `"i-`+info.ConfigHash+`"`)
	hd.Set("CMSD-Static", pacing.StaticHeader("i", info.Bitrate, 0, 0))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// fragment serves a stored fragment as it is on disk (sendfile for whole
// responses, ranges supported).
func (h *Handler) fragment(w http.ResponseWriter, r *http.Request, point *store.Point, track string, t int64) {
	f, ref, err := point.OpenFragment(track, t)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			if _, _, known := point.PartsFrom(track, t, 0); known {
				h.growing(w, r, point, track, t)
				return
			}
			h.trimmedFragment(w, r, point, track, t)
			return
		}
		h.log.Error("open fragment", "point", point.Name, "track", track, "t", t, "err", err)
		http.Error(w, "cannot read fragment", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	// A fragment stored with in-band events is served with them: its emsg
	// boxes (version 1, absolute times) before the moof, as DASH
	// InbandEventStream and HLS fMP4 timed metadata carry them.
	var body io.ReadSeeker = f
	size := ref.Size
	if evs := point.Events(track, t); len(evs) > 0 {
		pre, err := media.EncodeEvents(evs)
		if err == nil {
			buf := make([]byte, len(pre)+int(ref.Size))
			copy(buf, pre)
			_, err = f.ReadAt(buf[len(pre):], 0)
			body, size = bytes.NewReader(buf), int64(len(buf))
		}
		if err != nil {
			h.log.Error("read fragment with events", "point", point.Name, "track", track, "t", t, "err", err)
			http.Error(w, "cannot read fragment", http.StatusInternalServerError)
			return
		}
	}
	info, _ := point.TrackInfo(track)
	hd := w.Header()
	// Constant values are shared read-only slices, the others are built
	// into one: no allocation per header (docs/capacity.md).
	hd["Content-Type"] = contentTypeValue(info.Kind)
	hd["Cache-Control"] = immutableValue
	etag := make([]byte, 0, 48)
	etag = append(etag, `"f-`...)
	etag = strconv.AppendInt(etag, ref.Start, 10)
	etag = append(etag, '-')
	etag = strconv.AppendInt(etag, size, 10)
	etag = append(etag, '"')
	vals := [2]string{string(etag), pacing.StaticHeader(pacing.ObjectType(info.Kind), info.Bitrate, ref.Duration, info.Timescale)}
	hd["Etag"] = vals[0:1:1]
	hd["Cmsd-Static"] = vals[1:2:2]
	if c, ok := netconn.TCP(r); ok {
		// Header and body leave in full segments, as with nginx's
		// tcp_nopush: a lone header segment slows the client measurably.
		if err := netconn.Cork(c, true); err == nil {
			defer netconn.Cork(c, false)
		}
	}
	// The *os.File itself (not a wrapper) lets net/http use sendfile.
	http.ServeContent(w, r, "", time.Time{}, body)
}

// webVTT serves <start>.vtt of a WebVTT or TTML text track: the stored
// fragment that starts at t converted to an HLS WebVTT segment
// (texttrack.Segment).
// The conversion is deterministic, so the answer is as immutable as the
// fragment.
func (h *Handler) webVTT(w http.ResponseWriter, r *http.Request, point *store.Point, track string, t int64) {
	info, err := point.TrackInfo(track)
	if err != nil || !manifest.HLSWebVTT(info) {
		h.notFound(w, "no text track of that name with a WebVTT form", 2)
		return
	}
	init, err := point.Init(track)
	if err != nil {
		h.notFound(w, "unknown track", 2)
		return
	}
	data, ref, err := point.ReadFragment(track, t)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			h.notFound(w, "no fragment at that time", 1)
			return
		}
		h.log.Error("read text fragment", "point", point.Name, "track", track, "t", t, "err", err)
		http.Error(w, "cannot read fragment", http.StatusInternalServerError)
		return
	}
	body, err := texttrack.Segment(init, data)
	if err != nil {
		h.log.Error("convert text fragment to WebVTT", "point", point.Name, "track", track, "t", t, "err", err)
		http.Error(w, "cannot convert fragment to WebVTT", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/vtt; charset=utf-8")
	hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	hd.Set("ETag", fmt.Sprintf(`"v-%d-%d"`, ref.Start, ref.Size))
	hd.Set("CMSD-Static", pacing.StaticHeader(pacing.ObjectType(info.Kind), info.Bitrate, ref.Duration, info.Timescale))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// trimmedFragment answers a DASH/HLS fragment URL that names no stored
// fragment: the manifests list the fragment that straddles the presentation
// start from that start (manifest.Trimmed), which is served cut there
// (store.ReadTrimmed); anything else is a 404.
func (h *Handler) trimmedFragment(w http.ResponseWriter, r *http.Request, point *store.Point, track string, t int64) {
	if !point.Across(track, t) {
		h.notFound(w, "no fragment at that time", 1)
		return
	}
	data, ref, ok := h.trimmed(point, h.view(point), track, t)
	if !ok {
		h.notFound(w, "no fragment at that time", 1)
		return
	}
	if data == nil {
		http.Error(w, "cannot prepare fragment", http.StatusInternalServerError)
		return
	}
	if evs := point.Events(track, ref.Start); len(evs) > 0 {
		// The stored fragment's in-band events, as fragment serves them.
		pre, err := media.EncodeEvents(evs)
		if err != nil {
			h.log.Error("encode events", "point", point.Name, "track", track, "t", t, "err", err)
			http.Error(w, "cannot prepare fragment", http.StatusInternalServerError)
			return
		}
		data = append(pre, data...)
	}
	info, _ := point.TrackInfo(track)
	hd := w.Header()
	hd.Set("Content-Type", contentType(info.Kind))
	hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	hd.Set("ETag", fmt.Sprintf(`"f-%d-%d"`, t, len(data)))
	hd.Set("CMSD-Static", pacing.StaticHeader(pacing.ObjectType(info.Kind), info.Bitrate, uint64(ref.End()-t), info.Timescale))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// trimmed returns the stored fragment that the manifests rendered from v
// list cut to start at t, cut there; ok is false when they list no such
// fragment, data nil (after a log line) when it cannot be cut.
func (h *Handler) trimmed(point *store.Point, v store.View, track string, t int64) (data []byte, ref store.FragRef, ok bool) {
	ref, ok = manifest.Trimmed(v, track, t)
	if !ok {
		return nil, ref, false
	}
	data, err := point.ReadTrimmed(track, ref.Start, t)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ref, false
		}
		h.log.Error("cut fragment at the presentation start", "point", point.Name, "track", track, "t", t, "err", err)
		return nil, ref, true
	}
	return data, ref, true
}

// sampleTimeText is a stored stpp fragment of a track with its TTML
// documents' times relative to their samples (texttrack.SampleTimeStpp).
func sampleTimeText(point *store.Point, track string, frag []byte) ([]byte, error) {
	init, err := point.Init(track)
	if err != nil {
		return nil, err
	}
	tr, err := texttrack.ParseInit(init)
	if err != nil {
		return nil, err
	}
	out, _, err := tr.SampleTimeStpp(frag)
	return out, err
}

// smoothFragment serves QualityLevels(b)/Fragments(name=t): the stored
// fragment with a tfxd and a tfrf announcing the next LookAhead fragments.
func (h *Handler) smoothFragment(w http.ResponseWriter, r *http.Request, point *store.Point, rest string) {
	bitrate, name, t, ok := urls.SmoothFragment(rest)
	if !ok {
		h.notFound(w, "malformed Smooth fragment URL", 60)
		return
	}
	v := h.view(point)
	var tv *store.TrackView
	for i := range v.Tracks {
		if v.Tracks[i].Info.Name == name && manifest.SmoothBitrate(v.Tracks[i]) == bitrate {
			tv = &v.Tracks[i]
			break
		}
	}
	if tv == nil {
		h.notFound(w, "no quality level with that bitrate and name", 2)
		return
	}
	data, ref, err := point.ReadFragment(tv.ID, t)
	if errors.Is(err, store.ErrNotFound) {
		var ok bool
		if data, ref, ok = h.trimmed(point, v, tv.ID, t); !ok {
			h.notFound(w, "no fragment at that time", 1)
			return
		}
		if data == nil {
			http.Error(w, "cannot prepare fragment", http.StatusInternalServerError)
			return
		}
		err = nil
	}
	if err != nil {
		http.Error(w, "cannot read fragment", http.StatusInternalServerError)
		return
	}
	var next []media.TimeDur
	complete := !manifest.Live(v)
	for i, f := range tv.Frags {
		if f.Start != ref.Start {
			continue
		}
		for _, n := range tv.Frags[i+1:] {
			if len(next) == h.cfg.LookAhead {
				break
			}
			next = append(next, media.TimeDur{Time: uint64(n.Start), Duration: n.Duration})
		}
		complete = complete || len(next) == h.cfg.LookAhead
		break
	}
	if tv.Info.SampleEntry == "stpp" {
		// Smooth clients read a TTML sample's times as relative to the
		// sample; stored, they are media times (store.Point.AddFragment).
		data, err = sampleTimeText(point, tv.ID, data)
	}
	var moofRaw []byte
	var off int
	if err == nil {
		moofRaw, off, err = media.SplitFragment(data)
	}
	if err == nil {
		var m *media.Moof
		if m, err = media.DecodeMoof(moofRaw); err == nil {
			// The stored form has no Smooth boxes (media.Moof.Normalize):
			// the tfxd (the fragment as listed: t, cut or not) and the tfrf
			// are written here, with the stream's own track_ID.
			moofRaw, err = m.SmoothBoxes(t, uint64(ref.End()-t), next, tv.Info.TrackID)
		}
	}
	if err != nil {
		h.log.Error("smooth fragment", "point", point.Name, "track", tv.ID, "t", t, "err", err)
		http.Error(w, "cannot prepare fragment", http.StatusInternalServerError)
		return
	}
	body := append(moofRaw, data[off:]...)
	hd := w.Header()
	hd.Set("Content-Type", contentType(tv.Info.Kind))
	if complete {
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		// The tfrf will name more fragments once they exist.
		hd.Set("Cache-Control", "public, max-age=1")
	}
	hd.Set("ETag", fmt.Sprintf(`"s-%d-%d-%d"`, ref.Start, ref.Size, len(next)))
	hd.Set("CMSD-Static", pacing.StaticHeader(pacing.ObjectType(tv.Info.Kind), tv.Info.Bitrate, ref.Duration, tv.Info.Timescale))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}
