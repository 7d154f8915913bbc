package origin

import (
	"bytes"

	"net/http"
	"strconv"
	"time"

	"github.com/sluice-media/sluice/internal/manifest"
	"github.com/sluice-media/sluice/internal/pacing"
	"github.com/sluice-media/sluice/internal/store"
)

// Low-latency HLS (RFC 8216bis): blocking playlist reloads and parts. A
// chunked push makes each chunk a part the moment it arrives
// (store.Point.AddPart); a track with parts gets a low-latency media
// playlist (manifest.HLSMedia), whose parts are served here from memory.

// hlsPlaylist is the content type of HLS playlists.
const hlsPlaylist = "application/vnd.apple.mpegurl"

// blockLimit is how long a blocking request may wait, in target durations
// (RFC 8216bis 6.2.5.2: three, then 503).
const blockLimit = 3

// mediaPlaylist serves a track's HLS media playlist. With _HLS_msn (and
// _HLS_part) it is a blocking reload: the answer waits until the playlist
// holds that media sequence number (and part of it), at most three target
// durations (then 503); a number more than two segments ahead of the
// playlist is a 400. The answer to a blocking reload names a playlist that
// never loses what it was asked for, so caches may keep it for a target
// duration; a plain low-latency playlist changes with every part and is
// not kept (max-age=0). _HLS_skip=YES (or v2) asks for a delta update.
func (h *Handler) mediaPlaylist(w http.ResponseWriter, r *http.Request, point *store.Point, track string) {
	q := r.URL.Query()
	// _HLS_skip=YES asks for a delta update (v2 would also skip date
	// ranges, which these playlists do not have).
	skip := q.Get("_HLS_skip") == "YES" || q.Get("_HLS_skip") == "v2"
	render := func(v store.View, o manifest.Options) ([]byte, error) {
		o.Skip = skip
		return manifest.HLSMedia(v, track, o)
	}
	msnArg, partArg := q.Get("_HLS_msn"), q.Get("_HLS_part")
	v := h.view(point)
	if msnArg == "" {
		// A low-latency playlist changes with every part (LiveMaxAge).
		h.renderManifest(w, r, point, v, "hls", track, hlsPlaylist, "", render)
		return
	}
	msn, err := strconv.ParseInt(msnArg, 10, 64)
	if err != nil || msn < 0 {
		http.Error(w, "_HLS_msn must be a media sequence number", http.StatusBadRequest)
		return
	}
	part := int64(-1)
	if partArg != "" {
		if part, err = strconv.ParseInt(partArg, 10, 64); err != nil || part < 0 {
			http.Error(w, "_HLS_part must be a part number", http.StatusBadRequest)
			return
		}
	}
	var deadline *time.Timer
	defer stopTimer(&deadline)
	for {
		changed := point.Changed()
		v = h.view(point)
		t, ok := v.Track(track)
		if !ok || len(t.Frags) == 0 || !manifest.LowLatency(v, t) {
			// Nothing to block on (an unknown or ended track, no parts):
			// the playlist as it is.
			h.renderManifest(w, r, point, v, "hls", track, hlsPlaylist, "", render)
			return
		}
		if manifest.TooFarAhead(t, msn) {
			http.Error(w, "_HLS_msn is more than two segments ahead of the playlist", http.StatusBadRequest)
			return
		}
		if manifest.HasPart(t, msn, part) {
			target := manifest.TargetDuration(t)
			h.renderManifest(w, r, point, v, "hls", track, hlsPlaylist, "public, max-age="+strconv.FormatUint(target, 10), render)
			return
		}
		if !h.await(w, r, point, track, changed, &deadline, "the playlist did not reach that segment or part in three target durations") {
			return
		}
	}
}

// await waits for the point to change, within the limit of a blocking
// request: three target durations of the track from the first call (which
// starts *deadline). It reports false when the request is over: the limit
// passed (answered 503 with why, never cached) or the client left.
func (h *Handler) await(w http.ResponseWriter, r *http.Request, point *store.Point, track string,
	changed <-chan struct{}, deadline **time.Timer, why string) bool {
	if *deadline == nil {
		*deadline = time.NewTimer(h.blockingWait(point, track))
	}
	select {
	case <-changed:
		return true
	case <-(*deadline).C:
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, why, http.StatusServiceUnavailable)
		return false
	case <-r.Context().Done():
		return false
	}
}

// blockingWait is the limit of a blocking request on a track: three of
// its target durations (three of 2 s for a track not known).
func (h *Handler) blockingWait(point *store.Point, track string) time.Duration {
	if t, ok := h.view(point).Track(track); ok {
		return time.Duration(blockLimit*manifest.TargetDuration(t)) * time.Second
	}
	return blockLimit * 2 * time.Second
}

func stopTimer(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
	}
}

// part serves a part of a track's newest fragments from memory. A part
// that the newest parts say comes next (a preload hint names it) is
// waited for, at most three target durations; a part not kept is a 404,
// after which players fetch the whole fragment.
func (h *Handler) part(w http.ResponseWriter, r *http.Request, point *store.Point, track string, start int64) {
	var deadline *time.Timer
	defer stopTimer(&deadline)
	for {
		changed := point.Changed()
		data, ref, ok, pending := point.Part(track, start)
		if ok {
			info, _ := point.TrackInfo(track)
			hd := w.Header()
			hd["Content-Type"] = contentTypeValue(info.Kind)
			// The bytes of a part never change; it is listed for a few
			// target durations only.
			hd.Set("Cache-Control", "public, max-age=60")
			hd.Set("ETag", `"p-`+strconv.FormatInt(ref.Start, 10)+"-"+strconv.Itoa(ref.Size)+`"`)
			hd.Set("CMSD-Static", pacing.StaticHeader(pacing.ObjectType(info.Kind), info.Bitrate, ref.Duration, info.Timescale))
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
			return
		}
		if !pending {
			h.notFound(w, "no part at that time", 1)
			return
		}
		if !h.await(w, r, point, track, changed, &deadline, "the part did not arrive in three target durations") {
			return
		}
	}
}

// growing serves a fragment still being received (LL-DASH: the segment a
// low-latency MPD lists before it is complete) as its parts arrive: with
// chunked transfer encoding, each part written and flushed the moment it
// exists, the body ending when the fragment is complete. The bytes are
// the parts one after the other — a CMAF segment of several chunks — not
// the merged fragment stored afterwards; both carry the same samples. A
// fragment that stops growing (its parts dropped, or none for three
// target durations) aborts the response, so that no cache keeps a partial
// body as complete. Such a response is application-limited: the pacer's
// estimator learns only from path-limited stretches of it (the kernel's
// app-limited flag, see docs/pacing.md).
func (h *Handler) growing(w http.ResponseWriter, r *http.Request, point *store.Point, track string, start int64) {
	info, _ := point.TrackInfo(track)
	hd := w.Header()
	hd["Content-Type"] = contentTypeValue(info.Kind)
	// Complete once it ends; the stored fragment that replaces it has the
	// same samples.
	hd.Set("Cache-Control", "public, max-age=60")
	hd.Set("CMSD-Static", pacing.StaticHeader(pacing.ObjectType(info.Kind), info.Bitrate, 0, info.Timescale))
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	wait := h.blockingWait(point, track)
	rc := http.NewResponseController(w)
	sent := 0
	idle := time.NewTimer(wait)
	defer idle.Stop()
	for {
		changed := point.Changed()
		data, complete, known := point.PartsFrom(track, start, sent)
		if !known {
			h.log.Warn("growing fragment dropped while being served; response aborted", "point", point.Name, "track", track, "t", start, "parts_sent", sent)
			panic(http.ErrAbortHandler)
		}
		for _, d := range data {
			if _, err := w.Write(d); err != nil {
				return
			}
			sent++
		}
		if len(data) > 0 {
			if err := rc.Flush(); err != nil {
				return
			}
			idle.Reset(wait)
		}
		if complete {
			return
		}
		select {
		case <-changed:
		case <-idle.C:
			h.log.Warn("growing fragment stopped growing; response aborted", "point", point.Name, "track", track, "t", start, "parts_sent", sent)
			panic(http.ErrAbortHandler)
		case <-r.Context().Done():
			return
		}
	}
}
