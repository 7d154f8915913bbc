package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/urls"
)

// StreamManifest is the JSON document served at /<pp>.isml/StreamManifest:
// the ingest streams a point holds, for origins that pull.
type StreamManifest struct {
	Point string `json:"point"`
	// Anchor is the wall-clock time of media time zero (zero while the
	// point has no fragment): downstream tiers adopt it, so that every node
	// announces the same availabilityStartTime.
	Anchor  time.Time      `json:"anchor,omitzero"`
	Streams []StreamStatus `json:"streams"`
	// Restarts are the point's encoder restarts: downstream tiers adopt
	// them, so that their manifests mark the same boundaries.
	Restarts []store.Restart `json:"restarts,omitempty"`
}

// StreamStatus describes one ingest stream. Only streams that received a
// fragment are listed.
type StreamStatus struct {
	ID     string        `json:"id"`
	Tracks []TrackStatus `json:"tracks"`
	// Abandoned: the stream has not ended but received nothing, and has no
	// push in progress, for the stream expiry (an encoder that went away
	// without ending it). Origins pull it only while they lack some of its
	// fragments, and do not wait for it to be ready.
	Abandoned bool `json:"abandoned,omitempty"`
}

// Ended reports whether every track of the stream has ended.
func (s StreamStatus) Ended() bool {
	for _, t := range s.Tracks {
		if !t.Ended {
			return false
		}
	}
	return len(s.Tracks) > 0
}

// TrackStatus describes one track of an ingest stream.
type TrackStatus struct {
	ID        string `json:"id"`
	TrackID   uint32 `json:"track_id"`
	Kind      string `json:"kind"`
	Bitrate   int    `json:"bitrate"`
	Timescale uint32 `json:"timescale"`
	Ended     bool   `json:"ended"`
	Fragments int    `json:"fragments"`
	First     int64  `json:"first"`
	Last      int64  `json:"last"` // start time of the newest fragment
}

func (h *Handler) pull(w http.ResponseWriter, r *http.Request, pp, rest string) {
	pc, configured := h.cfg.Point(pp)
	if configured && !authorized(r, pc) {
		h.refuse(w, r, pp, http.StatusForbidden, "missing or wrong token for pulling "+strconv.Quote(pp))
		return
	}
	point, err := h.st.Point(pp)
	if err != nil {
		if configured && rest == "StreamManifest" {
			// Configured, nothing pushed yet: reachable and empty.
			writeJSON(w, StreamManifest{Point: pp, Streams: []StreamStatus{}})
			return
		}
		http.Error(w, "unknown publishing point", http.StatusNotFound)
		return
	}
	if rest == "StreamManifest" {
		writeJSON(w, streamManifest(point, h.cfg.StreamExpiry, time.Now()))
		return
	}
	id, spec, ok := parseStreamPath(rest)
	if !ok {
		http.Error(w, "want Streams(<id>) or Streams(<id>)/StartTime(<t>)", http.StatusNotFound)
		return
	}
	info, ok := streamInfo(point, id)
	if !ok || !info.Fed {
		// A stream that never received a fragment carries nothing to pull.
		http.Error(w, "unknown stream", http.StatusNotFound)
		return
	}
	h.m.PullConnections.Inc()
	defer h.m.PullConnections.Dec()
	w.Header().Set("Content-Type", "video/mp4")
	w.Header().Set("Cache-Control", "no-store")
	if r.Header.Get(ChunksHeader) == "1" {
		spec.Chunks = true
		w.Header().Set(ChunksHeader, "1")
	}
	if r.Method == http.MethodHead {
		return
	}
	rc := http.NewResponseController(w)
	err = h.writeStream(r.Context(), w, rc.Flush, point, info, spec, nil)
	if err != nil && r.Context().Err() == nil {
		h.log.Warn("pull ended", "point", pp, "stream", id, "remote", r.RemoteAddr, "err", err)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	json.NewEncoder(w).Encode(v)
}

// streamInfo finds a stream of a point.
func streamInfo(point *store.Point, id string) (store.StreamInfo, bool) {
	for _, s := range point.Streams() {
		if s.ID == id {
			return s, true
		}
	}
	return store.StreamInfo{}, false
}

// streamManifest describes the streams of a point that received a
// fragment; a stream idle for expiry (0: never) at now is abandoned.
func streamManifest(point *store.Point, expiry time.Duration, now time.Time) StreamManifest {
	sm := StreamManifest{Point: point.Name, Anchor: point.Meta().Anchor, Streams: []StreamStatus{}, Restarts: point.Restarts()}
	for _, s := range point.Streams() {
		if !s.Fed {
			continue
		}
		ss := StreamStatus{ID: s.ID}
		for tid, id := range s.Tracks {
			st, ok := point.Stats(id)
			if !ok {
				continue
			}
			ts := TrackStatus{ID: id, TrackID: tid, Kind: st.Info.Kind, Bitrate: st.Info.Bitrate,
				Timescale: st.Info.Timescale, Ended: st.Ended, Fragments: st.Count}
			if st.Count > 0 {
				ts.First, ts.Last = st.First, st.Last
			}
			ss.Tracks = append(ss.Tracks, ts)
		}
		sort.Slice(ss.Tracks, func(i, j int) bool { return ss.Tracks[i].TrackID < ss.Tracks[j].TrackID })
		ss.Abandoned = expiry > 0 && !ss.Ended() && !s.Receiving && now.Sub(s.Idle) > expiry
		sm.Streams = append(sm.Streams, ss)
	}
	return sm
}

// StartSpec says where a pulled stream starts.
type StartSpec struct {
	// Header sends the stored stream header first (a pull without StartTime).
	Header bool
	// Nearest, with HasNearest, starts every track at its fragment nearest
	// this time (in the track's timescale): StartTime(<t>).
	Nearest    int64
	HasNearest bool
	// From starts each listed track at its first fragment at or after the
	// given time (in the track's timescale); unlisted tracks start at their
	// first fragment: StartTime(<track>=<t>,...). Origins resume with it,
	// naming the last stored start + 1 of each track, so that nothing is
	// skipped and nothing sent twice whatever the tracks' timescales.
	From map[string]int64
	// Chunks forwards the fragments still being received as they arrive,
	// chunk by chunk, a styp before each fragment saying whether it is
	// complete or its chunks follow (media.SegmentMark). A puller asks
	// with the request header ChunksHeader: "1"; the answer carries it
	// too.
	Chunks bool
}

// ChunksHeader is the request and response header of a chunked pull.
const ChunksHeader = "Sluice-Chunks"

// Path is the URL path, below /<pp>.isml/, that pulls stream id from s.
func (s StartSpec) Path(id string) string {
	p := "Streams(" + id + ")"
	switch {
	case s.Header:
		return p
	case s.HasNearest:
		return p + "/StartTime(" + strconv.FormatInt(s.Nearest, 10) + ")"
	}
	ids := make([]string, 0, len(s.From))
	for t := range s.From {
		ids = append(ids, t)
	}
	sort.Strings(ids)
	var b strings.Builder
	for i, t := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(t + "=" + strconv.FormatInt(s.From[t], 10))
	}
	return p + "/StartTime(" + b.String() + ")"
}

// parseStreamPath parses [Events(<e>)/]Streams(<id>)[/StartTime(<t>)], where
// <t> is a time or a list <track>=<time>,...
func parseStreamPath(rest string) (id string, spec StartSpec, ok bool) {
	if id, t, has, ok := urls.Stream(rest); ok {
		if has {
			return id, StartSpec{Nearest: t, HasNearest: true}, true
		}
		return id, StartSpec{Header: true}, true
	}
	head, arg, found := strings.Cut(rest, "/StartTime(")
	if !found || !strings.HasSuffix(arg, ")") {
		return "", StartSpec{}, false
	}
	id, _, has, ok := urls.Stream(head)
	if !ok || has {
		return "", StartSpec{}, false
	}
	spec.From = map[string]int64{}
	for _, kv := range strings.Split(strings.TrimSuffix(arg, ")"), ",") {
		if kv == "" {
			continue
		}
		k, v, found := strings.Cut(kv, "=")
		t, err := strconv.ParseInt(v, 10, 64)
		if !found || err != nil || !store.ValidID(k) {
			return "", StartSpec{}, false
		}
		spec.From[k] = t
	}
	return id, spec, true
}

// keepAlive is how long a pull stays silent before the loop re-checks.
const keepAlive = 30 * time.Second

// writeStream writes a point's stream as GET Streams(<id>) serves it: the
// header (spec.Header), then the fragments of all its tracks in time order
// from where spec says, then, while the stream is live, each new fragment as
// it is stored; an empty mfra ends it once every track has ended. It returns
// after the mfra, at a write error, when ctx ends, or — once stop is closed
// — after writing every fragment stored by then (a push proxy following
// the push it forwards). flush, if not nil, is called after each batch.
func (h *Handler) writeStream(ctx context.Context, w io.Writer, flush func() error, point *store.Point,
	info store.StreamInfo, spec StartSpec, stop <-chan struct{}) error {
	if spec.Header {
		if _, err := w.Write(info.Header); err != nil {
			return fmt.Errorf("write header: %w", err)
		}
	}
	type cursor struct {
		id    string
		next  int64 // start time of the next fragment to send
		fixed bool  // next was set from the spec
		ts    float64
		// With spec.Chunks: end is where the fragments sent so far end
		// (sent says it is known), and partFrag the start of the fragment
		// in progress whose first partsSent parts went out.
		end       int64
		sent      bool
		partFrag  int64
		partsSent int
	}
	var cur []*cursor
	// The stream's own track_IDs: fragments are stored with their
	// switching set's (media.Moof.Normalize) and sent with the stream's.
	streamID := map[string]uint32{}
	for tid, id := range info.Tracks {
		streamID[id] = tid
	}
	for _, id := range info.Tracks {
		c := &cursor{id: id, next: math.MinInt64}
		if t, ok := spec.From[id]; ok {
			c.next, c.fixed = t, true
		}
		cur = append(cur, c)
	}
	sort.Slice(cur, func(i, j int) bool { return cur[i].id < cur[j].id })
	timer := time.NewTimer(keepAlive)
	defer timer.Stop()
	for {
		stopping := closed(stop)
		changed := point.Changed()
		type pending struct {
			c   *cursor
			ref store.FragRef
			sec float64
		}
		var todo []pending
		allEnded, found := true, 0
		for _, c := range cur {
			if c.ts == 0 {
				ti, err := point.TrackInfo(c.id)
				if err != nil || ti.Timescale == 0 {
					continue
				}
				c.ts = float64(ti.Timescale)
			}
			if spec.HasNearest && !c.fixed {
				if st, ok := point.Stats(c.id); ok && st.Count > 0 {
					c.next, c.fixed = point.Nearest(c.id, spec.Nearest), true
				}
			}
			frags, ended, ok := point.Tail(c.id, c.next)
			if !ok {
				continue
			}
			found++
			for _, f := range frags {
				todo = append(todo, pending{c: c, ref: f, sec: float64(f.Start) / c.ts})
			}
			if !ended {
				allEnded = false
			}
		}
		sort.SliceStable(todo, func(i, j int) bool { return todo[i].sec < todo[j].sec })
		for _, p := range todo {
			if spec.Chunks && p.c.partsSent > 0 && p.c.partFrag == p.ref.Start {
				// Its first parts went out as it was received: the rest
				// of them, which complete it at the puller too.
				rest, complete, known := point.PartsFrom(p.c.id, p.ref.Start, p.c.partsSent)
				if !known || !complete {
					// Completed otherwise (another encoder's copy): the
					// puller must not keep what it has of it. Ending the
					// body mid-stream makes it drop that and resume from
					// the stored fragment.
					return fmt.Errorf("fragment %s/%d completed with other parts than those forwarded", p.c.id, p.ref.Start)
				}
				for _, d := range rest {
					if err := writeChunk(w, d, streamID[p.c.id]); err != nil {
						return err
					}
				}
				p.c.partsSent = 0
				p.c.next, p.c.end, p.c.sent = p.ref.Start+1, p.ref.End(), true
				continue
			}
			data, _, err := point.ReadFragment(p.c.id, p.ref.Start)
			if err != nil {
				if errors.Is(err, store.ErrNotFound) {
					p.c.next = p.ref.End()
					continue // pruned meanwhile
				}
				return fmt.Errorf("read fragment: %w", err)
			}
			if spec.Chunks {
				if _, err := w.Write(media.Styp(media.MarkWhole)); err != nil {
					return fmt.Errorf("write fragment: %w", err)
				}
			}
			// The fragment's in-band events go before it, as an encoder
			// sends them (version 1, absolute times on the track's
			// timescale): the puller stores them with it.
			if evs := point.Events(p.c.id, p.ref.Start); len(evs) > 0 {
				b, err := media.EncodeEvents(evs)
				if err == nil {
					_, err = w.Write(b)
				}
				if err != nil {
					return fmt.Errorf("events of fragment %s/%d: %w", p.c.id, p.ref.Start, err)
				}
			}
			if err := writeChunk(w, data, streamID[p.c.id]); err != nil {
				return fmt.Errorf("stored fragment %s/%d: %w", p.c.id, p.ref.Start, err)
			}
			h.m.BytesOut.WithLabelValues("pull").Add(float64(len(data)))
			p.c.next, p.c.end, p.c.sent = p.ref.Start+1, p.ref.End(), true
		}
		if spec.Chunks && !stopping {
			// The fragments in progress that continue what was sent: their
			// parts not sent yet.
			for _, c := range cur {
				if !c.sent {
					continue
				}
				from := 0
				start, ok := point.OpenStart(c.id)
				if !ok || start != c.end {
					continue
				}
				if c.partFrag == start {
					from = c.partsSent
				}
				parts, _, _ := point.PartsFrom(c.id, start, from)
				for i, d := range parts {
					if from+i == 0 {
						if _, err := w.Write(media.Styp(media.MarkChunked)); err != nil {
							return fmt.Errorf("write part: %w", err)
						}
					}
					if err := writeChunk(w, d, streamID[c.id]); err != nil {
						return err
					}
					h.m.BytesOut.WithLabelValues("pull").Add(float64(len(d)))
				}
				c.partFrag, c.partsSent = start, from+len(parts)
			}
		}
		if flush != nil {
			if err := flush(); err != nil {
				return fmt.Errorf("flush: %w", err)
			}
		}
		if allEnded && found > 0 {
			if _, err := w.Write(emptyMfra); err != nil {
				return fmt.Errorf("write end: %w", err)
			}
			if flush != nil {
				return flush()
			}
			return nil
		}
		if stopping {
			return nil
		}
		timer.Reset(keepAlive)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-stop:
		case <-timer.C:
			// Keep idle connections of sparse tracks alive without data:
			// the next loop re-checks and flushes.
		}
	}
}

// writeChunk writes a stored moof+mdat (a fragment or a part) with the
// stream's own track_ID.
func writeChunk(w io.Writer, data []byte, trackID uint32) error {
	moof, off, err := media.MoofWithTrackID(data, trackID)
	if err != nil {
		return err
	}
	if _, err := w.Write(moof); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if _, err := w.Write(data[off:]); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// closed reports whether c is closed (a nil channel never is).
func closed(c <-chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

var emptyMfra = []byte{0, 0, 0, 8, 'm', 'f', 'r', 'a'}
