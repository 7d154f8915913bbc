package sender

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/httpx"
	"github.com/sluice-media/sluice/internal/parts"
)

// Low latency in the cluster (docs/cluster.md, "Low latency"): the origin
// forwards every part of a live fragment in progress to every sender the
// moment it arrives (PUT /internal/v1/parts/…), and the fragment's end
// when it is stored complete. A sender keeps them in RAM (parts.Track: the
// open fragment and the three before it, per track) and serves, on every
// pathway and without a redirect:
//
//   - a part (LL-HLS EXT-X-PART, part-<start>.m4s), waiting for one a
//     preload hint names before it exists;
//   - a block it does not hold (yet) whose parts it keeps: while the
//     fragment grows, with chunked transfer, each part as it arrives
//     (LL-DASH lists the segment in progress); once complete, the parts
//     one after the other until the block itself arrives from the origin.

// partWait bounds how long a request for a part or a growing block waits
// for the next part: three 2 s target durations, the most a blocking
// request waits at the origin for the usual fragment duration.
const partWait = 6 * time.Second

// maxPartTracks bounds the tracks whose parts a sender keeps; maxPart a
// part's size.
const (
	maxPartTracks = 4096
	maxPart       = 32 << 20
)

// partIdle is how long a track's parts are kept after the last one
// arrived: a stream that stopped is forgotten.
const partIdle = time.Minute

// liveParts are the parts a sender keeps, per "<point>/<track>". Safe for
// concurrent use.
type liveParts struct {
	mu     sync.Mutex
	tracks map[string]*partTrack
}

type partTrack struct {
	t       parts.Track
	changed chan struct{} // closed and replaced at every change
	used    time.Time     // when the last part or end arrived
}

func newLiveParts() *liveParts { return &liveParts{tracks: map[string]*partTrack{}} }

// track returns a track's parts (nil when none are kept and !create).
// lp.mu must be held.
func (lp *liveParts) track(key string, create bool, now time.Time) *partTrack {
	pt := lp.tracks[key]
	if pt == nil && create {
		if len(lp.tracks) >= maxPartTracks {
			lp.dropOldest()
		}
		pt = &partTrack{changed: make(chan struct{})}
		lp.tracks[key] = pt
	}
	if pt != nil && create {
		pt.used = now
	}
	return pt
}

// dropOldest forgets the track that received nothing for the longest.
// lp.mu must be held.
func (lp *liveParts) dropOldest() {
	var oldest string
	var at time.Time
	for k, pt := range lp.tracks {
		if oldest == "" || pt.used.Before(at) {
			oldest, at = k, pt.used
		}
	}
	if pt := lp.tracks[oldest]; pt != nil {
		close(pt.changed)
		delete(lp.tracks, oldest)
	}
}

func (pt *partTrack) notify() {
	close(pt.changed)
	pt.changed = make(chan struct{})
}

// forget drops the tracks that received nothing for partIdle.
func (lp *liveParts) forget(now time.Time) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	for k, pt := range lp.tracks {
		if now.Sub(pt.used) > partIdle {
			close(pt.changed)
			delete(lp.tracks, k)
		}
	}
}

// AddPart keeps part index of the fragment of a track that starts at
// fragStart (what the origin forwards, or the store of `sluice serve`
// hands over in process). It reports false when the part does not fit
// (parts.Track.Add). data must not be changed afterwards.
func (s *Sender) AddPart(point, track string, fragStart int64, index int, ref parts.Ref, data []byte) bool {
	lp := s.parts
	lp.mu.Lock()
	defer lp.mu.Unlock()
	pt := lp.track(point+"/"+track, true, s.o.Now())
	if !pt.t.Add("", fragStart, index, ref, data) {
		return false
	}
	pt.notify()
	s.m.partsIn.Inc()
	return true
}

// CompleteParts records that the fragment of a track that starts at
// fragStart was stored complete, ending at end (parts.Track.Complete).
func (s *Sender) CompleteParts(point, track string, fragStart, end int64) {
	lp := s.parts
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if pt := lp.track(point+"/"+track, false, s.o.Now()); pt != nil && pt.t.Complete(fragStart, end) {
		pt.used = s.o.Now()
		pt.notify()
	}
}

// partAt returns a kept part (ok), or whether one may still come there
// (pending), and the channel closed at the track's next change.
func (lp *liveParts) partAt(key string, start int64) (data []byte, ref parts.Ref, fragStart int64, ok, pending bool, changed <-chan struct{}) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	pt := lp.tracks[key]
	if pt == nil {
		return nil, parts.Ref{}, 0, false, false, nil
	}
	data, ref, ok, pending = pt.t.Part(start)
	if ok {
		fragStart, _ = pt.t.FragOf(start)
	}
	return data, ref, fragStart, ok, pending, pt.changed
}

// from returns the parts of a fragment from the from-th on
// (parts.Track.From) and the channel closed at the track's next change.
func (lp *liveParts) from(key string, fragStart int64, from int) (data [][]byte, complete, known bool, changed <-chan struct{}) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	pt := lp.tracks[key]
	if pt == nil {
		return nil, false, false, nil
	}
	data, complete, known = pt.t.From(fragStart, from)
	return data, complete, known, pt.changed
}

// putPart serves PUT /internal/v1/parts/<point>/<track>/<fragStart>/<index>
// (a part: one moof+mdat of the track) and
// PUT /internal/v1/parts/<point>/<track>/<fragStart>/end?at=<end> (the
// fragment was stored complete, ending at end).
func (s *Sender) putPart(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/internal/v1/parts/")
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		http.Error(w, "want /internal/v1/parts/<point>/<track>/<start>/<index> or …/end", http.StatusBadRequest)
		return
	}
	id, ok := parseBlockPath(p[:i])
	last := p[i+1:]
	if !ok {
		http.Error(w, "want /internal/v1/parts/<point>/<track>/<start>/<index> or …/end", http.StatusBadRequest)
		return
	}
	if last == "end" {
		end, err := strconv.ParseInt(r.URL.Query().Get("at"), 10, 64)
		if err != nil || end < id.Start {
			http.Error(w, "want ?at=<end of the fragment>", http.StatusBadRequest)
			return
		}
		s.CompleteParts(id.Point, id.Track, id.Start, end)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	index, err := strconv.Atoi(last)
	if err != nil || index < 0 {
		http.Error(w, "want a part index", http.StatusBadRequest)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPart))
	if err != nil {
		http.Error(w, "read part: "+err.Error(), http.StatusBadRequest)
		return
	}
	fi, err := s.checkFragment(r.Context(), id.Point, id.Track, data)
	if err != nil {
		s.m.invalidUploads.WithLabelValues("part").Inc()
		s.log.Warn("part refused: not a fragment of its track", "block", id, "index", index, "bytes", len(data), "remote", r.RemoteAddr, "err", err)
		http.Error(w, "part refused: "+err.Error(), http.StatusBadRequest)
		return
	}
	ref := parts.Ref{Start: fi.Start, Duration: fi.Duration, Key: fi.Key, Size: len(data)}
	if !s.AddPart(id.Point, id.Track, id.Start, index, ref, data) {
		// Out of order or already complete: nothing to retry.
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// servePart serves GET /b/<token>/<point>/<track>/part-<start>.m4s from
// RAM. A part the kept parts say comes next (a preload hint names it) is
// waited for, at most partWait; one not kept is a 404 (the player then
// fetches the whole block).
func (s *Sender) servePart(w http.ResponseWriter, r *http.Request, id cluster.BlockID, t cluster.Token) {
	key := id.Point + "/" + id.Track
	deadline := time.NewTimer(partWait)
	defer deadline.Stop()
	for {
		data, ref, fragStart, ok, pending, changed := s.parts.partAt(key, id.Start)
		if ok {
			hd := w.Header()
			hd.Set("Content-Type", s.contentType(r, id))
			hd.Set("ETag", `"p-`+strconv.FormatInt(ref.Start, 10)+"-"+strconv.Itoa(ref.Size)+`"`)
			cw := httpx.NewCountingWriter(w)
			http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(data))
			if r.Method == http.MethodGet && (cw.Status == http.StatusOK || cw.Status == http.StatusPartialContent) {
				s.m.parts.WithLabelValues("ram").Inc()
				s.m.sendBytes.WithLabelValues("ram").Add(float64(cw.Bytes))
				s.report(cluster.SentReport{Session: t.Session, Block: cluster.BlockID{Point: id.Point, Track: id.Track, Start: fragStart},
					At: s.o.Now(), Bytes: cw.Bytes, FromRAM: true, Next: s.nextRequest(r)})
			}
			return
		}
		if !pending {
			s.m.parts.WithLabelValues("missing").Inc()
			s.notFound(w, "this sender keeps no part at that time")
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			s.m.parts.WithLabelValues("timeout").Inc()
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "the part did not arrive in time", http.StatusServiceUnavailable)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// serveFromParts serves a block this sender does not hold from its kept
// parts, and reports false (having written nothing) when it keeps none. A
// fragment still growing is sent with chunked transfer, each part flushed
// as it arrives, the body ending with the fragment; one that stops growing
// (no part for partWait, or its parts forgotten) aborts the response so
// that nothing keeps a partial body as complete. The bytes are the parts
// one after the other — a CMAF segment of several chunks — where the
// stored block is merged; both carry the same samples.
func (s *Sender) serveFromParts(w http.ResponseWriter, r *http.Request, id cluster.BlockID, t cluster.Token) bool {
	key := id.Point + "/" + id.Track
	data, complete, known, changed := s.parts.from(key, id.Start, 0)
	if !known {
		return false
	}
	hd := w.Header()
	hd.Set("Content-Type", s.contentType(r, id))
	cw := httpx.NewCountingWriter(w)
	defer func() {
		if r.Method == http.MethodGet && cw.Bytes > 0 {
			s.m.parts.WithLabelValues("growing").Inc()
			s.m.sendBytes.WithLabelValues("ram").Add(float64(cw.Bytes))
			s.report(cluster.SentReport{Session: t.Session, Block: id, At: s.o.Now(), Bytes: cw.Bytes, FromRAM: true, Next: s.nextRequest(r)})
		}
	}()
	if complete {
		http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(bytes.Join(data, nil)))
		return true
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return true
	}
	rc := http.NewResponseController(w)
	sent := 0
	idle := time.NewTimer(partWait)
	defer idle.Stop()
	for {
		for _, d := range data {
			if _, err := cw.Write(d); err != nil {
				return true
			}
			sent++
		}
		if len(data) > 0 {
			if err := rc.Flush(); err != nil {
				return true
			}
			idle.Reset(partWait)
		}
		if complete {
			return true
		}
		select {
		case <-changed:
		case <-idle.C:
			s.log.Warn("growing block stopped growing; response aborted", "block", id, "parts_sent", sent)
			panic(http.ErrAbortHandler)
		case <-r.Context().Done():
			return true
		}
		data, complete, known, changed = s.parts.from(key, id.Start, sent)
		if !known {
			s.log.Warn("growing block's parts forgotten while being served; response aborted", "block", id, "parts_sent", sent)
			panic(http.ErrAbortHandler)
		}
	}
}

// contentType is the type of a track's segments: the header's, else
// video/mp4.
func (s *Sender) contentType(r *http.Request, id cluster.BlockID) string {
	if ie, err := s.init(r.Context(), id.Point, id.Track); err == nil {
		return ie.contentType
	}
	return "video/mp4"
}

// partName parses "part-<start>.m4s".
func partName(file string) (int64, bool) {
	v, ok := strings.CutPrefix(file, "part-")
	if !ok {
		return 0, false
	}
	v, ok = strings.CutSuffix(v, ".m4s")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}
