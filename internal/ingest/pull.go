package ingest

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/urls"
)

// StreamManifest is the JSON document served at /<pp>.isml/StreamManifest:
// the ingest streams a point holds, for origins that pull.
type StreamManifest struct {
	Point   string         `json:"point"`
	Streams []StreamStatus `json:"streams"`
}

// StreamStatus describes one ingest stream.
type StreamStatus struct {
	ID     string        `json:"id"`
	Tracks []TrackStatus `json:"tracks"`
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
	point, err := h.st.Point(pp)
	if err != nil {
		http.Error(w, "unknown publishing point", http.StatusNotFound)
		return
	}
	if pc, ok := h.cfg.Point(pp); ok && !authorized(r, pc) {
		h.refuse(w, r, pp, http.StatusForbidden, "missing or wrong token for pulling "+strconv.Quote(pp))
		return
	}
	if rest == "StreamManifest" {
		h.streamManifest(w, point)
		return
	}
	id, start, hasStart, _ := urls.Stream(rest)
	var info *store.StreamInfo
	for _, s := range point.Streams() {
		if s.ID == id {
			info = &s
			break
		}
	}
	if info == nil {
		http.Error(w, "unknown stream", http.StatusNotFound)
		return
	}
	h.m.PullConnections.Inc()
	defer h.m.PullConnections.Dec()
	h.serveStream(w, r, point, *info, start, hasStart)
}

func (h *Handler) streamManifest(w http.ResponseWriter, point *store.Point) {
	v := point.View(0)
	sm := StreamManifest{Point: point.Name}
	for _, s := range point.Streams() {
		ss := StreamStatus{ID: s.ID}
		for tid, id := range s.Tracks {
			tv, ok := v.Track(id)
			if !ok {
				continue
			}
			ts := TrackStatus{ID: id, TrackID: tid, Kind: tv.Info.Kind, Bitrate: tv.Info.Bitrate,
				Timescale: tv.Info.Timescale, Ended: tv.Ended, Fragments: len(tv.Frags)}
			if n := len(tv.Frags); n > 0 {
				ts.First, ts.Last = tv.Frags[0].Start, tv.Frags[n-1].Start
			}
			ss.Tracks = append(ss.Tracks, ts)
		}
		sort.Slice(ss.Tracks, func(i, j int) bool { return ss.Tracks[i].TrackID < ss.Tracks[j].TrackID })
		sm.Streams = append(sm.Streams, ss)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	json.NewEncoder(w).Encode(sm)
}

// serveStream writes the stream as an encoder would send it: the header
// (unless resuming with StartTime), then the fragments of all its tracks in
// time order, then, while the stream is live, each new fragment as it is
// stored; an empty mfra ends it once every track has ended.
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request, point *store.Point, info store.StreamInfo, start int64, resume bool) {
	w.Header().Set("Content-Type", "video/mp4")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		return
	}
	rc := http.NewResponseController(w)
	if !resume {
		if _, err := w.Write(info.Header); err != nil {
			return
		}
	}
	type cursor struct {
		id   string
		next int64 // start time of the next fragment to send
		ts   float64
		done bool
	}
	var cur []*cursor
	for _, id := range info.Tracks {
		c := &cursor{id: id, next: -1 << 62}
		cur = append(cur, c)
	}
	sort.Slice(cur, func(i, j int) bool { return cur[i].id < cur[j].id })
	first := true
	ctx := r.Context()
	for {
		changed := point.Changed()
		v := point.View(0)
		type pending struct {
			c   *cursor
			ref store.FragRef
			sec float64
		}
		var todo []pending
		allEnded := true
		for _, c := range cur {
			tv, ok := v.Track(c.id)
			if !ok {
				continue
			}
			if first && resume {
				c.next = nearest(tv, start)
			}
			i := sort.Search(len(tv.Frags), func(i int) bool { return tv.Frags[i].Start >= c.next })
			for _, f := range tv.Frags[i:] {
				todo = append(todo, pending{c: c, ref: f, sec: tv.Seconds(f.Start)})
			}
			if !tv.Ended {
				allEnded = false
			}
		}
		first = false
		sort.SliceStable(todo, func(i, j int) bool { return todo[i].sec < todo[j].sec })
		for _, p := range todo {
			data, _, err := point.ReadFragment(p.c.id, p.ref.Start)
			if err != nil {
				if errors.Is(err, store.ErrNotFound) {
					p.c.next = p.ref.End()
					continue // pruned meanwhile
				}
				h.log.Warn("pull: read fragment", "err", err)
				return
			}
			if _, err := w.Write(data); err != nil {
				return
			}
			h.m.BytesOut.WithLabelValues("pull").Add(float64(len(data)))
			p.c.next = p.ref.Start + 1
		}
		if err := rc.Flush(); err != nil {
			return
		}
		if allEnded {
			w.Write(emptyMfra)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-time.After(30 * time.Second):
			// Keep idle connections of sparse tracks alive without data:
			// the next loop re-checks and flushes.
		}
	}
}

// nearest returns the start time of the fragment nearest t in a track.
func nearest(tv store.TrackView, t int64) int64 {
	if len(tv.Frags) == 0 {
		return t
	}
	i := sort.Search(len(tv.Frags), func(i int) bool { return tv.Frags[i].Start >= t })
	if i == len(tv.Frags) {
		return tv.Frags[i-1].Start
	}
	if i > 0 && t-tv.Frags[i-1].Start < tv.Frags[i].Start-t {
		return tv.Frags[i-1].Start
	}
	return tv.Frags[i].Start
}

var emptyMfra = []byte{0, 0, 0, 8, 'm', 'f', 'r', 'a'}
