package ingest

// Encoder restarts. A push from an encoder (directly, or teed by a push
// proxy) is judged by where its fragments fall in what the point stores:
//
//   - at or after the end of a track's timeline, or in a hole of it: the
//     encoder goes on (a first push, a reconnection that continues its
//     times, a back-fill);
//   - at a stored start with identical bytes: a copy (a reconnection that
//     resends, a redundant encoder that produces the same bytes, a
//     re-ingest); nothing is decided yet;
//   - at a stored start with different bytes, or overlapping stored
//     fragments (a conflict): while another push is feeding the same track,
//     a redundant encoder — first copy wins, as always; otherwise the
//     encoder restarted with times that go back into what is stored.
//
// A restart is handled by the point's policy (config.Point.OnRestart):
// continue places the new encoder session after what is stored
// (store.Point.Restart), archive also cuts the presentation before it into
// an on-demand asset, refuse answers 409. Bodies in stored form (origins
// pulling, a push proxy catching a standby up) are never judged: they carry
// fragments already placed.

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/store"
)

// ErrRestartRefused is returned (wrapped) by Receive for a restarted push on
// a point whose restart policy is refuse (409).
var ErrRestartRefused = errors.New("encoder restart refused")

// PushInfo describes a body that comes from an encoder: its fragments are
// placed by the restart rules (see ReceiveOptions.Push).
type PushInfo struct {
	// Start is the wall-clock start of the push (for a push forwarded by a
	// primary ingest, the primary's: both compute the same offset).
	Start time.Time
	// Policy is the point's restart policy (config.RestartContinue, ...).
	Policy string
}

// maxCopies bounds the copies a push may send before its judgement (a
// restarted encoder whose first fragments happen to be identical to the
// stored ones, e.g. black frames and silence): beyond it the earliest are
// forgotten (a later restart places only the rest).
const maxCopies = 100_000

// copyRef is a fragment of an undecided push identical to a stored one.
type copyRef struct {
	track string
	key   int64 // where the identical copy is stored
	raw   int64 // the start the encoder sent
}

// timeline places the fragments of one encoder push.
type timeline struct {
	h      *Handler
	point  *store.Point
	stream string
	info   PushInfo
	feed   uint64
	tracks map[string]bool // the tracks of the push's header

	state  pushState
	offset int64            // nanoseconds added to the encoder's times
	first  map[string]int64 // earliest raw start per track in this push
	copies []copyRef        // while undecided
	held   []storeItem      // while holding: fragments as sent
	ends   map[string]int64 // after a restart: the timeline ends before it
}

type pushState int

const (
	undecided  pushState = iota
	continuing           // the push goes on after what is stored
	redundant            // another push feeds the same times: first copy wins
	holding              // a restart, waiting for the first fragment of every track
	restarted            // a restart, placed
)

func (h *Handler) newTimeline(point *store.Point, stream string, info PushInfo, ids map[uint32]string) *timeline {
	if info.Policy == "" {
		info.Policy = config.RestartContinue
	}
	if info.Start.IsZero() {
		info.Start = time.Now()
	}
	tl := &timeline{h: h, point: point, stream: stream, info: info, feed: h.feeds.open(),
		offset: point.StreamOffset(stream), first: map[string]int64{}}
	tl.setTracks(ids)
	return tl
}

func (tl *timeline) close() { tl.h.feeds.close(tl.feed) }

func (tl *timeline) setTracks(ids map[uint32]string) {
	tl.tracks = map[string]bool{}
	for _, id := range ids {
		tl.tracks[id] = true
	}
}

// header is called at each stream header of the push, after flush: a
// repeated header starts a new judgement.
func (tl *timeline) header(ids map[uint32]string) {
	tl.setTracks(ids)
	if tl.state != restarted {
		tl.state, tl.copies = undecided, nil
	}
}

// place returns f moved by the stream's offset.
func (tl *timeline) place(id string, f *media.Fragment) (*media.Fragment, error) {
	if tl.offset == 0 {
		return f, nil
	}
	ti, err := tl.point.TrackInfo(id)
	if err != nil {
		return nil, err
	}
	d := store.OffsetTicks(tl.offset, ti.Timescale)
	data, fi, err := media.Shift(f.Data, f.Info, d)
	if err != nil {
		return nil, fmt.Errorf("place fragment of %s: %w", id, err)
	}
	return &media.Fragment{Info: fi, Data: data, Events: media.ShiftEvents(f.Events, d)}, nil
}

// placePart returns a part of track id moved like the push's fragments,
// or ok false while the push's placement is not settled or it is a
// redundant copy.
func (tl *timeline) placePart(id string, part media.Part) (media.Part, bool, error) {
	if tl.state != continuing && tl.state != restarted {
		return part, false, nil
	}
	if tl.offset == 0 {
		return part, true, nil
	}
	ti, err := tl.point.TrackInfo(id)
	if err != nil {
		return part, false, err
	}
	d := store.OffsetTicks(tl.offset, ti.Timescale)
	data, fi, err := media.Shift(part.Data, part.Info, d)
	if err != nil {
		return part, false, fmt.Errorf("place part of %s: %w", id, err)
	}
	if e, ok := tl.ends[id]; ok && fi.Start < e {
		return part, false, nil
	}
	part.Data, part.Info, part.FragStart = data, fi, part.FragStart+d
	return part, true, nil
}

// action is what Receive does with one fragment of an encoder push.
type action struct {
	store   []storeItem // fragments to store, in order
	drop    string      // non-empty: the fragment is dropped (its placement)
	dropped int         // held fragments dropped (overlapping after placement)
}

type storeItem struct {
	track string
	f     *media.Fragment
}

// fragment judges one fragment of track id (f as the encoder sent it) and
// says what to store. commit stores the push's header (before a restart is
// placed, the stream must exist).
func (tl *timeline) fragment(id string, f *media.Fragment, commit func() error) (action, error) {
	tl.h.feeds.touch(tl.feed, tl.point.Name, id)
	if s, ok := tl.first[id]; !ok || f.Info.Start < s {
		tl.first[id] = f.Info.Start
	}
	switch tl.state {
	case holding:
		repeat := false
		for _, it := range tl.held {
			repeat = repeat || it.track == id
		}
		tl.held = append(tl.held, storeItem{id, f})
		if tl.ready(repeat) {
			return tl.decide(commit)
		}
		return action{}, nil
	case restarted:
		pf, err := tl.place(id, f)
		if err != nil {
			return action{}, err
		}
		if e, ok := tl.ends[id]; ok && pf.Info.Start < e {
			return action{drop: "overlap"}, nil
		}
		return action{store: []storeItem{{id, pf}}}, nil
	}
	pf, err := tl.place(id, f)
	if err != nil {
		return action{}, err
	}
	if tl.state == continuing {
		return action{store: []storeItem{{id, pf}}}, nil
	}
	pl, end, _ := tl.point.Place(id, pf.Info.Start, pf.Info.Duration, pf.Data)
	switch pl {
	case store.PlaceAfter, store.PlaceGap:
		if tl.state == undecided {
			tl.state, tl.copies = continuing, nil
		}
		return action{store: []storeItem{{id, pf}}}, nil
	case store.PlaceDuplicate:
		if tl.state == undecided {
			if len(tl.copies) >= maxCopies {
				tl.copies = tl.copies[1:]
			}
			tl.copies = append(tl.copies, copyRef{track: id, key: pf.Info.Start, raw: f.Info.Start})
		}
		return action{store: []storeItem{{id, pf}}}, nil
	}
	// A conflict: differs at a stored start, or overlaps stored fragments.
	if tl.state == redundant {
		return action{drop: pl.String()}, nil
	}
	if tl.h.feeds.active(tl.feed, tl.point.Name, id, 3*fragDuration(tl.point, id, pf)) {
		// Another push feeds this track: a redundant encoder. One whose
		// times lie within three fragments of the live edge is aligned
		// with it (first copy wins for the rest of the push); one further
		// back is judged again at its next fragment, so that it takes over
		// once the other stops.
		if end-pf.Info.Start <= 3*int64(pf.Info.Duration) {
			tl.state = redundant
		}
		return action{drop: pl.String()}, nil
	}
	// An encoder restart.
	tl.h.log.Warn("encoder restart: the push's times go back into what is stored",
		"point", tl.point.Name, "stream", tl.stream, "track", id, "start", f.Info.Start, "placement", pl.String(),
		"stored_end", end, "policy", tl.info.Policy)
	tl.h.m.Restarts.WithLabelValues(tl.point.Name, tl.info.Policy).Inc()
	if tl.info.Policy == config.RestartRefuse {
		return action{}, fmt.Errorf("%w: the push's times go back into what %s stores (track %s, start %d, stored up to %d); "+
			"the point's restart policy is refuse", ErrRestartRefused, tl.point.Name, id, f.Info.Start, end)
	}
	tl.state = holding
	tl.held = []storeItem{{id, f}}
	if tl.ready(false) {
		return tl.decide(commit)
	}
	return action{}, nil
}

// ready reports whether a held restart can be placed: every track of the
// push has sent a fragment, or one sent its second (a track that sends
// nothing must not hold the others), or enough is held.
func (tl *timeline) ready(repeat bool) bool {
	if repeat || len(tl.held) > 2*len(tl.tracks)+2 {
		return true
	}
	for id := range tl.tracks {
		if _, ok := tl.first[id]; !ok {
			return false
		}
	}
	return true
}

// flush places a held restart at once (end of the body, a new header, the
// end of stream).
func (tl *timeline) flush(commit func() error) (action, error) {
	if tl.state != holding {
		return action{}, nil
	}
	return tl.decide(commit)
}

// decide places a held restart by the point's policy and returns what to
// store: the copies the push sent before the conflict (its first
// fragments, identical to stored ones) and the held fragments, moved by
// the new offset.
func (tl *timeline) decide(commit func() error) (action, error) {
	name := tl.point.Name
	if err := commit(); err != nil {
		return action{}, err
	}
	old := tl.offset
	rec, joined, err := tl.point.Restart(tl.stream, tl.first, tl.info.Start)
	if err != nil {
		return action{}, fmt.Errorf("place restarted encoder: %w", err)
	}
	tl.offset, tl.ends, tl.state = rec.OffsetNs, rec.Ends, restarted
	log := tl.h.log.With("point", name, "stream", tl.stream, "policy", tl.info.Policy)
	log.Warn("encoder restart placed after what is stored",
		"offset_seconds", float64(rec.OffsetNs)/1e9, "previous_offset_seconds", float64(old)/1e9, "joined", joined,
		"copies_before", len(tl.copies), "push_start", tl.info.Start)
	// The copies the push sent before the conflict are its first fragments:
	// they are placed from the stored bytes they are identical to (read
	// before an archive removes those from the point).
	var act action
	for _, c := range tl.copies {
		data, ref, err := tl.point.ReadFragment(c.track, c.key)
		if err != nil {
			continue // deleted by retention meanwhile
		}
		ti, err := tl.point.TrackInfo(c.track)
		if err != nil {
			continue
		}
		fi := media.FragInfo{TrackID: ti.TrackID, Start: ref.Start, Duration: ref.Duration, Key: ref.Key,
			HasTfdt: ref.Start >= 0, HasTfxd: true}
		d := c.raw + store.OffsetTicks(rec.OffsetNs, ti.Timescale) - c.key
		out, nfi, err := media.Shift(data, fi, d)
		if err != nil {
			return action{}, fmt.Errorf("place restarted encoder: %w", err)
		}
		act.store = append(act.store, storeItem{c.track, &media.Fragment{Info: nfi, Data: out}})
	}
	tl.copies = nil
	if tl.info.Policy == config.RestartArchive && !joined {
		asset, err := tl.h.st.ArchiveRestart(name, rec)
		if err != nil {
			log.Error("encoder restart: archiving the presentation before it failed; it stays in the point", "err", err)
		} else if asset != "" {
			log.Info("encoder restart: the presentation before it is archived", "asset", asset)
		}
	}
	held := tl.held
	tl.held = nil
	for _, it := range held {
		pf, err := tl.place(it.track, it.f)
		if err != nil {
			return action{}, err
		}
		if e, ok := tl.ends[it.track]; ok && pf.Info.Start < e {
			act.dropped++
			continue
		}
		act.store = append(act.store, storeItem{it.track, pf})
	}
	return act, nil
}

// fragDuration is the duration of f in wall-clock time.
func fragDuration(point *store.Point, id string, f *media.Fragment) time.Duration {
	ti, err := point.TrackInfo(id)
	if err != nil || ti.Timescale == 0 {
		return 2 * time.Second
	}
	return time.Duration(float64(f.Info.Duration) / float64(ti.Timescale) * float64(time.Second))
}

// feeds tracks which pushes deliver fragments of which tracks, so that a
// conflict can be told apart: redundancy while another push feeds the
// track, a restart otherwise.
type feeds struct {
	mu   sync.Mutex
	next uint64
	last map[uint64]map[string]time.Time // push -> point/track -> last fragment
}

func newFeeds() *feeds { return &feeds{last: map[uint64]map[string]time.Time{}} }

func (f *feeds) open() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.last[f.next] = map[string]time.Time{}
	return f.next
}

func (f *feeds) close(id uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.last, id)
}

func (f *feeds) touch(id uint64, point, track string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.last[id]; m != nil {
		m[point+"\x00"+track] = time.Now()
	}
}

// active reports whether a push other than self, still in progress,
// delivered a fragment of the track within window.
func (f *feeds) active(self uint64, point, track string, window time.Duration) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := point + "\x00" + track
	for id, m := range f.last {
		if id == self {
			continue
		}
		if t, ok := m[k]; ok && time.Since(t) <= window {
			return true
		}
	}
	return false
}
