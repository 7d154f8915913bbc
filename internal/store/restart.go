package store

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Encoder restarts. An encoder that restarts sends times from zero (or from
// wherever its clock now is) to a stream whose fragments already cover those
// times. Point.Restart places the new encoder session right after what is
// stored: every time it sends is shifted by the stream's offset, computed
// from what is stored only, so that every node that stores the same
// fragments and sees the same push (an ingest and the standby it forwards
// to) computes the same offset and stores the same bytes.

// Restart records one encoder restart of a point.
type Restart struct {
	// Stream is the stream whose push the restart was detected on.
	Stream string `json:"stream"`
	// OffsetNs is what the new encoder session's times are shifted by, in
	// nanoseconds (OffsetTicks in each track's timescale; streams that
	// restart together join the same offset).
	OffsetNs int64 `json:"offset_ns"`
	// StartNs is the media time of the restarted session's earliest
	// fragment, in nanoseconds: where a DASH Period starts.
	StartNs int64 `json:"start_ns"`
	// PushStart is the wall-clock start of that push on the node that
	// received it from the encoder (a push proxy forwards it).
	PushStart time.Time `json:"push_start"`
	// Ends is, per track of the point, the end of its timeline when the
	// restart was detected (track timescale): the fragments before the
	// restart end at or before it, those after it start at or after it.
	Ends map[string]int64 `json:"ends"`
	// Archived names the on-demand asset the presentation before the
	// restart was cut into on this node (restart policy "archive").
	Archived string `json:"archived,omitempty"`
}

// same reports whether two records describe the same restart.
func (r Restart) same(o Restart) bool {
	return r.Stream == o.Stream && r.OffsetNs == o.OffsetNs && r.PushStart.Equal(o.PushStart)
}

const (
	// maxRestarts bounds PointMeta.Restarts.
	maxRestarts = 256
	// RestartJoin is how close in wall-clock time the pushes of two streams
	// that restart must start for the second to take the first one's offset
	// (the renditions of one encoder, one POST each, stay aligned).
	RestartJoin = 10 * time.Second
	// RestartMargin is how much earlier than the earliest fragment seen a
	// track of the restarting stream that has sent nothing yet is assumed
	// to start (AAC priming puts audio some 21 ms before video).
	RestartMargin = time.Second
)

// end is the end of the track's timeline: the end of its last fragment,
// else (every fragment pruned) the start of the first one kept by the last
// prune; ok is false when the track never had a fragment.
func (t *track) end() (int64, bool) {
	if n := len(t.frags); n > 0 {
		return t.frags[n-1].End(), true
	}
	if t.Pruned > 0 {
		return t.PrunedBefore, true
	}
	return 0, false
}

const nsPerSec = int64(time.Second)

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// OffsetTicks converts an offset in nanoseconds to a timescale, rounding
// down (exact integer arithmetic: every node gets the same value).
func OffsetTicks(ns int64, timescale uint32) int64 {
	ts := int64(timescale)
	q := floorDiv(ns, nsPerSec)
	return q*ts + (ns-q*nsPerSec)*ts/nsPerSec
}

// floorNs converts a time in a timescale to nanoseconds, rounding down.
func floorNs(t int64, timescale uint32) int64 {
	ts := int64(timescale)
	q := floorDiv(t, ts)
	return q*nsPerSec + (t-q*ts)*nsPerSec/ts
}

// offsetNs is the smallest offset in nanoseconds whose OffsetTicks in the
// timescale is at least d ticks (rounding up).
func offsetNs(d int64, timescale uint32) int64 {
	ts := int64(timescale)
	q := floorDiv(d, ts)
	r := d - q*ts
	return q*nsPerSec + -floorDiv(-r*nsPerSec, ts)
}

// StreamOffset returns the offset, in nanoseconds, that the times of a
// stream's encoder are shifted by (0 for a stream that never restarted or
// is unknown).
func (p *Point) StreamOffset(streamID string) int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if st := p.streams[streamID]; st != nil {
		return st.OffsetNs
	}
	return 0
}

// Restarts returns the point's restart records, oldest first.
func (p *Point) Restarts() []Restart {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return append([]Restart(nil), p.meta.Restarts...)
}

// Restart places a restarted encoder session of stream streamID (whose
// header must be stored) right after what the point holds, and returns the
// record and whether the stream joined the latest restart instead of
// starting a new one. first holds, per track id, the earliest start the
// restarted push has sent (in the track's timescale, before any offset);
// tracks of the stream missing from it are assumed to start up to
// RestartMargin earlier than the earliest of those.
//
// The offset is the smallest that puts every track of the stream at or
// after the end of its stored timeline: the track that ends last relative
// to its first new fragment goes on without a gap, the others with the gap
// by which they ended before it (an encoder that stops ends its tracks a
// little apart). Media time then runs behind the wall clock by the encoder's
// downtime (the anchor never changes). When the latest restart is
// another stream's, began within RestartJoin of pushStart and its offset
// already clears this stream's tracks (judged by the ends it recorded), the
// stream takes that offset: the renditions of an encoder that pushes one
// POST per bitrate stay aligned.
//
// The offset is persisted with the stream, so that a reconnection of the
// same encoder session (its times continuing) keeps it across restarts of
// the process. The record is kept in the point's metadata, where its ends
// mark a boundary in every track of the point (TrackView.Breaks): manifests
// show one discontinuity there, alike in every rendition.
func (p *Point) Restart(streamID string, first map[string]int64, pushStart time.Time) (Restart, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.streams[streamID]
	if st == nil {
		return Restart{}, false, fmt.Errorf("restart of stream %q: %w", streamID, ErrNotFound)
	}
	if len(first) == 0 {
		return Restart{}, false, errors.New("restart without a fragment")
	}
	// m0 is the earliest first start in nanoseconds (only for the tracks
	// that have sent nothing yet).
	m0 := int64(math.MaxInt64)
	for id, t := range first {
		tr := p.tracks[id]
		if tr == nil || tr.Info.Timescale == 0 {
			return Restart{}, false, fmt.Errorf("restart: track %q: %w", id, ErrNotFound)
		}
		m0 = min(m0, offsetNs(t, tr.Info.Timescale))
	}
	need := func(ends func(id string, t *track) (int64, bool)) int64 {
		n := int64(math.MinInt64)
		for _, id := range st.Tracks {
			t := p.tracks[id]
			if t == nil || t.Info.Timescale == 0 {
				continue
			}
			e, ok := ends(id, t)
			if !ok {
				continue
			}
			if f, seen := first[id]; seen {
				n = max(n, offsetNs(e-f, t.Info.Timescale))
			} else {
				n = max(n, offsetNs(e, t.Info.Timescale)-(m0-int64(RestartMargin)))
			}
		}
		return n
	}
	rec := Restart{Stream: streamID, PushStart: pushStart.UTC(), Ends: map[string]int64{}}
	joined := false
	if n := len(p.meta.Restarts); n > 0 {
		r := p.meta.Restarts[n-1]
		d := pushStart.Sub(r.PushStart)
		recorded := func(id string, t *track) (int64, bool) {
			if e, ok := r.Ends[id]; ok {
				return e, true
			}
			return t.end()
		}
		if r.Stream != streamID && d <= RestartJoin && d >= -RestartJoin && need(recorded) <= r.OffsetNs {
			rec, joined = r, true
		}
	}
	if !joined {
		rec.OffsetNs = max(need(func(_ string, t *track) (int64, bool) { return t.end() }), 0)
		rec.StartNs = math.MaxInt64
		for id, f := range first {
			ts := p.tracks[id].Info.Timescale
			rec.StartNs = min(rec.StartNs, floorNs(f+OffsetTicks(rec.OffsetNs, ts), ts))
		}
		for id, t := range p.tracks {
			if e, ok := t.end(); ok {
				rec.Ends[id] = e
			}
		}
		meta := p.meta
		meta.Restarts = p.appendRestart(rec)
		if err := p.writeMeta(meta); err != nil {
			return Restart{}, false, err
		}
	}
	if err := p.setOffset(st, rec.OffsetNs); err != nil {
		return Restart{}, false, err
	}
	p.notify()
	return rec, joined, nil
}

// breaks returns a track's restart boundaries, sorted: its end at each
// restart of the point recorded while it existed; p.mu is held.
func (p *Point) breaks(trackID string) []int64 {
	var out []int64
	for _, r := range p.meta.Restarts {
		if e, ok := r.Ends[trackID]; ok {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return slices.Compact(out)
}

// appendRestart returns the restart records with r added, at most
// maxRestarts: beyond that the oldest whose boundaries lie at or before
// every track's first fragment go first (they no longer split anything),
// then the oldest; p.mu is held.
func (p *Point) appendRestart(r Restart) []Restart {
	out := append(append([]Restart(nil), p.meta.Restarts...), r)
	for len(out) > maxRestarts {
		drop := 0
		for i, o := range out[:len(out)-1] {
			behind := true
			for id, e := range o.Ends {
				if t := p.tracks[id]; t != nil && len(t.frags) > 0 && e > t.frags[0].Start {
					behind = false
				}
			}
			if behind {
				drop = i
				break
			}
		}
		out = append(out[:drop], out[drop+1:]...)
	}
	return out
}

// writeMeta persists meta and makes it the point's; p.mu is held.
func (p *Point) writeMeta(meta PointMeta) error {
	if err := writeJSON(filepath.Join(p.dir, pointFile), meta); err != nil {
		return fmt.Errorf("save point: %w", err)
	}
	p.meta = meta
	return nil
}

// setOffset persists a stream's offset; p.mu is held.
func (p *Point) setOffset(st *stream, off int64) error {
	if st.OffsetNs == off {
		return nil
	}
	ns := *st
	ns.OffsetNs = off
	if err := writeJSON(filepath.Join(p.dir, "s", st.ID, streamFile), &ns); err != nil {
		return fmt.Errorf("save stream offset: %w", err)
	}
	st.OffsetNs = off
	return nil
}

// AdoptRestart records a restart that another node detected (an origin
// learns them from the ingest's StreamManifest) and reports whether it was
// new. Records are kept in the order adopted, at most maxRestarts.
func (p *Point) AdoptRestart(r Restart) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range p.meta.Restarts {
		if o.same(r) {
			return false, nil
		}
	}
	r.Archived = ""
	r.PushStart = r.PushStart.UTC()
	meta := p.meta
	meta.Restarts = p.appendRestart(r)
	if err := p.writeMeta(meta); err != nil {
		return false, err
	}
	p.notify()
	return true, nil
}

// Placement says where a fragment would fall in a track's timeline.
type Placement int

// Placements.
const (
	// PlaceAfter: at or after the end of the timeline (or the track has
	// none yet).
	PlaceAfter Placement = iota + 1
	// PlaceGap: before the end, in a hole of the timeline that it fits
	// without overlapping a stored fragment (a back-fill).
	PlaceGap
	// PlaceDuplicate: at the start of a stored fragment, identical bytes.
	PlaceDuplicate
	// PlaceDiffers: at the start of a stored fragment, different bytes.
	PlaceDiffers
	// PlaceOverlap: before the end, overlapping stored fragments.
	PlaceOverlap
)

func (pl Placement) String() string {
	switch pl {
	case PlaceAfter:
		return "after"
	case PlaceGap:
		return "gap"
	case PlaceDuplicate:
		return "duplicate"
	case PlaceDiffers:
		return "differs"
	case PlaceOverlap:
		return "overlap"
	}
	return "unknown"
}

// Place classifies a fragment of a track (start, duration and bytes as it
// would be stored) against the track's stored timeline without storing
// anything, and returns the end of that timeline (ok false when the track
// has none).
func (p *Point) Place(trackID string, start int64, dur uint64, data []byte) (pl Placement, end int64, ok bool) {
	p.mu.RLock()
	t := p.tracks[trackID]
	if t == nil {
		p.mu.RUnlock()
		return PlaceAfter, 0, false
	}
	end, ok = t.end()
	i, found := t.find(start)
	switch {
	case !ok || start >= end:
		pl = PlaceAfter
	case found:
		pl = PlaceDiffers
	case (i == 0 || t.frags[i-1].End() <= start) && (i == len(t.frags) || start+int64(dur) <= t.frags[i].Start) &&
		(t.Pruned == 0 || start >= t.PrunedBefore):
		pl = PlaceGap
	default:
		pl = PlaceOverlap
	}
	p.mu.RUnlock()
	if pl == PlaceDiffers {
		if old, err := os.ReadFile(filepath.Join(p.dir, "t", trackID, fragName(start))); err == nil && p.same(t, old, data) {
			pl = PlaceDuplicate
		}
	}
	return pl, end, ok
}

// PruneBefore deletes, in every track named in ends, the fragments that
// start before the given time (track timescale), as Prune does for
// retention: index first, files second, OnPrune hooks after. It returns the
// number of fragments deleted.
func (p *Point) PruneBefore(ends map[string]int64) (int, error) {
	return p.pruneFronts(func(t *track) int {
		end, ok := ends[t.ID]
		if !ok {
			return 0
		}
		return sort.Search(len(t.frags), func(i int) bool { return t.frags[i].Start >= end })
	})
}

// ArchiveRestart is the restart policy "archive" on this node: it cuts the
// presentation before restart r — every fragment of the point that ends at
// or before r's ends — into an on-demand asset and deletes those fragments
// from the point, which goes on with the restarted encoder alone. The asset
// is named after the point and the wall-clock start of the presentation
// (<point>-<YYYYMMDDTHHMMSSZ>, -2, -3, ... if taken), so that every node
// holding the same fragments names it alike; it is recorded in the point's
// restart record. Nothing is deleted unless the cut succeeded. It returns
// the asset's name ("" when there was nothing to cut).
func (s *Store) ArchiveRestart(point string, r Restart) (string, error) {
	p, err := s.Point(point)
	if err != nil {
		return "", err
	}
	v := p.View(0)
	var from, to time.Duration
	found := false
	for _, t := range v.Tracks {
		e, ok := r.Ends[t.ID]
		if !ok || len(t.Frags) == 0 || t.Frags[0].Start >= e || t.Info.Timescale == 0 {
			continue
		}
		a, b := fromTicks(t.Frags[0].Start, t.Info.Timescale), fromTicks(e, t.Info.Timescale)
		if !found || a < from {
			from = a
		}
		if !found || b > to {
			to = b
		}
		found = true
	}
	if !found || to <= from {
		return "", nil
	}
	base := point + "-" + v.Meta.Anchor.Add(from).UTC().Format("20060102T150405Z")
	if v.Meta.Anchor.IsZero() {
		base = point + "-" + strings.ReplaceAll(fmt.Sprintf("%.3f", from.Seconds()), ".", "_")
	}
	var res CutResult
	name := base
	for i := 2; ; i++ {
		res, err = s.Cut(point, name, from, to)
		if !errors.Is(err, ErrExists) || i > 100 {
			break
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
	if err != nil {
		if errors.Is(err, ErrEmptyCut) {
			return "", nil
		}
		return "", fmt.Errorf("archive the presentation before the restart: %w", err)
	}
	if _, err := p.PruneBefore(r.Ends); err != nil {
		return res.Asset, fmt.Errorf("remove the archived presentation from %s: %w", point, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	meta := p.meta
	meta.Restarts = append([]Restart(nil), p.meta.Restarts...)
	for i := range meta.Restarts {
		if meta.Restarts[i].same(r) {
			meta.Restarts[i].Archived = res.Asset
		}
	}
	if err := p.writeMeta(meta); err != nil {
		return res.Asset, err
	}
	return res.Asset, nil
}
