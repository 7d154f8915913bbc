package store

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/rofile"
)

// TrackView is a consistent copy of one track's index.
type TrackView struct {
	ID     string
	Info   media.TrackInfo
	Stream string
	Ended  bool
	// First is the sequence number of Frags[0]: fragments pruned or cut off
	// by the window before it, counted from the track's first fragment.
	First int64
	// Disc is the number of discontinuities before Frags[0], the one
	// between Frags[0] and the fragment before it included: the HLS
	// EXT-X-DISCONTINUITY-SEQUENCE of a playlist that starts at Frags[0].
	Disc int64
	// Extent is the track's first and longest fragments since it began,
	// deleted ones included (zero when unknown).
	Extent Extent
	Frags  []FragRef
	// Breaks are the track's encoder restart boundaries (see
	// Point.Restart), sorted: the fragments on either side of one are
	// discontinuous even where the second starts as the first ends, so
	// that every track of a presentation marks the restart alike (HLS
	// discontinuity sequences stay aligned across renditions).
	Breaks []int64 `json:",omitempty"`
	// Arrived is the wall-clock time at which this process stored the
	// track's newest fragment (zero when none arrived since it started):
	// with that fragment's duration, when the next one is due (the cache
	// lifetime of live manifests, origin.LiveMaxAge).
	Arrived time.Time `json:"-"`
	// Parts are the parts of the track's newest fragments, kept in memory
	// (see AddPart): those of the fragment still open come last, not
	// Complete. PartTarget is the longest part seen (0 without parts).
	Parts      []PartFrag `json:",omitempty"`
	PartTarget uint64     `json:",omitempty"`
	// Schemes are the schemes (and values) of the in-band events (emsg
	// boxes) stored with the track's fragments, sorted: the origin serves
	// those fragments with their emsg boxes before the moof.
	Schemes []EventScheme `json:",omitempty"`
}

// EventScheme is the scheme_id_uri and value of in-band events.
type EventScheme struct {
	Scheme string `json:"scheme"`
	Value  string `json:"value,omitempty"`
}

// Open returns the parts of the fragment still being received: the last
// kept one, when not complete and after the last listed fragment.
func (t TrackView) Open() (PartFrag, bool) {
	n := len(t.Parts)
	if n == 0 || t.Parts[n-1].Complete {
		return PartFrag{}, false
	}
	o := t.Parts[n-1]
	if k := len(t.Frags); k > 0 && t.Frags[k-1].Start >= o.Start {
		return PartFrag{}, false
	}
	return o, true
}

// PartsOf returns the kept parts of the listed fragment that starts at
// start, when they cover it.
func (t TrackView) PartsOf(start int64) ([]PartRef, bool) {
	for _, pf := range t.Parts {
		if pf.Start == start && pf.Complete {
			return pf.Parts, true
		}
	}
	return nil, false
}

// Discontinuous reports whether next does not continue prev: it does not
// start where prev ended, or an encoder restart boundary (one of breaks,
// sorted) lies after prev's start and at or before next's.
func Discontinuous(prev, next FragRef, breaks []int64) bool {
	if next.Start != prev.End() {
		return true
	}
	i := sort.Search(len(breaks), func(i int) bool { return breaks[i] > prev.Start })
	return i < len(breaks) && breaks[i] <= next.Start
}

// Gaps counts the discontinuities among frags[:n+1]: the indexes k in
// [1, n] where frags[k] does not continue frags[k-1] (Discontinuous).
func Gaps(frags []FragRef, breaks []int64, n int) int64 {
	var g int64
	for k := 1; k <= n && k < len(frags); k++ {
		if Discontinuous(frags[k-1], frags[k], breaks) {
			g++
		}
	}
	return g
}

// Seconds converts a time in the track's timescale to seconds.
func (t TrackView) Seconds(ts int64) float64 { return float64(ts) / float64(t.Info.Timescale) }

// View is a consistent copy of a publishing point's index.
type View struct {
	Name   string
	Meta   PointMeta
	Tracks []TrackView // video (highest bitrate first), then audio, then text
	// Ended is true when the point has tracks and every one has ended: the
	// presentation is then static (live-to-VOD).
	Ended bool
	// Events are the point's SCTE-35 event messages (those the manifests
	// list) from the earliest listed fragment on, earliest first: those
	// stored with the listed fragments of every track (copies on several
	// tracks listed once) and the cues inserted out of band (AddCue). Each
	// keeps its own timescale. In-band events of other schemes (ID3) are
	// only served with their fragments (Point.Events, TrackView.Schemes).
	Events []media.Emsg `json:",omitempty"`
}

// Track returns the view of one track.
func (v View) Track(id string) (TrackView, bool) {
	for _, t := range v.Tracks {
		if t.ID == id {
			return t, true
		}
	}
	return TrackView{}, false
}

var kindOrder = map[string]int{"video": 0, "audio": 1, "text": 2}

// View returns a copy of the index. With window > 0 only the fragments that
// end within window of each track's last fragment end are included (the DVR
// window of a live manifest).
func (p *Point) View(window time.Duration) View {
	p.mu.RLock()
	defer p.mu.RUnlock()
	v := View{Name: p.Name, Meta: p.meta, Ended: len(p.tracks) > 0}
	var evs []media.Emsg
	from, anyFrag := time.Duration(0), false
	for _, t := range p.tracks {
		frags := t.frags
		breaks := p.breaks(t.ID)
		first, disc := t.Pruned, t.PrunedGaps
		if window > 0 && len(frags) > 0 {
			edge := frags[len(frags)-1].End()
			from := edge - int64(window.Seconds()*float64(t.Info.Timescale))
			i := sort.Search(len(frags), func(i int) bool { return frags[i].End() > from })
			first += int64(i)
			disc += Gaps(frags, breaks, i)
			frags = frags[i:]
		}
		if len(frags) > 0 {
			evs = append(evs, t.listedFrom(frags[0].Start)...)
			if f := fromTicks(frags[0].Start, t.Info.Timescale); !anyFrag || f < from {
				from, anyFrag = f, true
			}
		}
		parts, target := t.partsView()
		v.Tracks = append(v.Tracks, TrackView{
			ID: t.ID, Info: t.Info, Stream: t.Stream, Ended: t.Ended, First: first, Disc: disc,
			Extent: t.Extent, Frags: append([]FragRef(nil), frags...), Breaks: breaks, Arrived: t.arrived,
			Parts: parts, PartTarget: target, Schemes: t.schemeList(),
		})
		if !t.Ended {
			v.Ended = false
		}
	}
	sort.Slice(v.Tracks, func(i, j int) bool {
		a, b := v.Tracks[i], v.Tracks[j]
		if kindOrder[a.Info.Kind] != kindOrder[b.Info.Kind] {
			return kindOrder[a.Info.Kind] < kindOrder[b.Info.Kind]
		}
		if a.Info.Bitrate != b.Info.Bitrate {
			return a.Info.Bitrate > b.Info.Bitrate
		}
		return a.ID < b.ID
	})
	for _, c := range p.cues {
		if fromTicks(c.Time, c.Timescale) >= from {
			evs = append(evs, c)
		}
	}
	v.Events = mergeEvents(evs)
	return v
}

// Init returns the CMAF header of a track.
func (p *Point) Init(trackID string) ([]byte, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	t := p.tracks[trackID]
	if t == nil {
		return nil, fmt.Errorf("track %q: %w", trackID, ErrNotFound)
	}
	return t.init, nil
}

// Lookup returns the index entry of a fragment.
func (p *Point) Lookup(trackID string, start int64) (FragRef, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	t := p.tracks[trackID]
	if t == nil {
		return FragRef{}, fmt.Errorf("track %q: %w", trackID, ErrNotFound)
	}
	i, ok := t.find(start)
	if !ok {
		return FragRef{}, fmt.Errorf("fragment %s/%d: %w", trackID, start, ErrNotFound)
	}
	return t.frags[i], nil
}

// OpenFragment opens a stored fragment for reading (the caller closes it).
func (p *Point) OpenFragment(trackID string, start int64) (*os.File, FragRef, error) {
	ref, err := p.Lookup(trackID, start)
	if err != nil {
		return nil, ref, err
	}
	f, err := rofile.Open(filepath.Join(p.dir, "t", trackID, fragName(start)))
	if err != nil {
		if os.IsNotExist(err) {
			// Pruned between lookup and open.
			return nil, ref, fmt.Errorf("fragment %s/%d: %w", trackID, start, ErrNotFound)
		}
		return nil, ref, err
	}
	return f, ref, nil
}

// ReadFragment returns the bytes of a stored fragment.
func (p *Point) ReadFragment(trackID string, start int64) ([]byte, FragRef, error) {
	f, ref, err := p.OpenFragment(trackID, start)
	if err != nil {
		return nil, ref, err
	}
	defer f.Close()
	buf := make([]byte, ref.Size)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return nil, ref, fmt.Errorf("read fragment %s/%d: %w", trackID, start, err)
	}
	return buf, ref, nil
}

// maxLeading is how many of a track's first index entries Across looks at:
// a fragment the manifests cut to the presentation start is among them.
const maxLeading = 16

// Across reports whether one of a track's first fragments in the index
// starts before t and ends after it — the only fragments the manifests list
// cut (see manifest.Trimmed) — so that the origin answers requests for
// other missing times without copying the index.
func (p *Point) Across(trackID string, t int64) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	tr := p.tracks[trackID]
	if tr == nil {
		return false
	}
	for _, f := range tr.frags[:min(len(tr.frags), maxLeading)] {
		if f.Start < t && t < f.End() {
			return true
		}
	}
	return false
}

// ReadTrimmed returns the stored fragment of a track that starts at stored,
// cut to start at at (media.TrimFront): what the manifests list when that
// fragment straddles the presentation start (manifest.Trimmed).
func (p *Point) ReadTrimmed(trackID string, stored, at int64) ([]byte, error) {
	data, _, err := p.ReadFragment(trackID, stored)
	if err != nil {
		return nil, err
	}
	p.mu.RLock()
	t := p.tracks[trackID]
	p.mu.RUnlock()
	h, err := media.ParseStoredHeader(t.init)
	if err != nil {
		return nil, fmt.Errorf("track %s header: %w", trackID, err)
	}
	out, err := media.TrimFront(data, h.StoredTrex(t.Info), at)
	if err != nil {
		return nil, fmt.Errorf("fragment %s/%d from %d: %w", trackID, stored, at, err)
	}
	return out, nil
}

// StreamInfo describes an ingest stream held by the point.
type StreamInfo struct {
	ID     string
	Header []byte            // ftyp, manifest box and moov as received
	Tracks map[uint32]string // track_ID -> track id
	// Fed: a fragment arrived on the stream once (StreamFed).
	Fed bool
	// Receiving: a body is being received on it now (Receiving).
	Receiving bool
	// Idle is when the stream last showed life: its last fragment since
	// the process started, else its loading or creation.
	Idle time.Time
}

// Streams lists the ingest streams of the point, sorted by id.
func (p *Point) Streams() []StreamInfo {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]StreamInfo, 0, len(p.streams))
	for _, s := range p.streams {
		out = append(out, StreamInfo{ID: s.ID, Header: s.header, Tracks: s.Tracks, Fed: s.Fed,
			Receiving: p.busy[s.ID] > 0, Idle: s.act.idleSince()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Prune deletes, in every track, the fragments that end more than keep
// before the track's last fragment end (archive retention). It returns the
// number of fragments deleted. The store's OnPrune hooks learn which,
// after the point is unlocked.
func (p *Point) Prune(keep time.Duration) (int, error) {
	if keep <= 0 {
		return 0, nil
	}
	return p.pruneFronts(func(t *track) int {
		if len(t.frags) == 0 {
			return 0
		}
		edge := t.frags[len(t.frags)-1].End()
		from := edge - int64(keep.Seconds()*float64(t.Info.Timescale))
		return sort.Search(len(t.frags), func(i int) bool { return t.frags[i].End() > from })
	})
}

// pruneFronts deletes, in every track (in ID order), the first cut(t)
// fragments, under the point's lock; the store's OnPrune hooks learn which
// after it is released. It returns the number of fragments deleted. Prune
// and PruneBefore differ only in where they cut.
func (p *Point) pruneFronts(cut func(t *track) int) (int, error) {
	var evs []FragmentsPruned
	defer func() { p.store.fragmentsPruned(evs) }()
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, len(p.tracks))
	for id := range p.tracks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	n := 0
	for _, id := range ids {
		t := p.tracks[id]
		i := cut(t)
		if i <= 0 {
			continue
		}
		ev, err := p.pruneFront(t, i)
		if err != nil {
			return n, err
		}
		evs = append(evs, ev)
		n += i
	}
	if n > 0 {
		p.notify()
	}
	return n, nil
}

// pruneFront deletes the first i fragments of t: index first, files
// second, so that a crash in between leaves files that the next start
// removes instead of indexing them again; p.mu is held for writing.
func (p *Point) pruneFront(t *track, i int) (FragmentsPruned, error) {
	gone := append([]FragRef(nil), t.frags[:i]...)
	t.frags = append([]FragRef(nil), t.frags[i:]...)
	t.Pruned += int64(i)
	if len(t.frags) > 0 {
		t.PrunedBefore = t.frags[0].Start
	} else {
		t.PrunedBefore = gone[len(gone)-1].End()
	}
	breaks := p.breaks(t.ID)
	t.PrunedGaps += Gaps(gone, breaks, len(gone)-1)
	if len(t.frags) > 0 && Discontinuous(gone[len(gone)-1], t.frags[0], breaks) {
		t.PrunedGaps++
	}
	if err := writeJSON(filepath.Join(p.dir, "t", t.ID, trackFile), t); err != nil {
		return FragmentsPruned{}, err
	}
	p.dropEvents(t, gone)
	ev := FragmentsPruned{Point: p.Name, Track: t.ID, Starts: make([]int64, 0, len(gone))}
	for _, f := range gone {
		os.Remove(filepath.Join(p.dir, "t", t.ID, fragName(f.Start)))
		ev.Starts = append(ev.Starts, f.Start)
	}
	return ev, nil
}

// TrackInfo returns the description of one track.
func (p *Point) TrackInfo(trackID string) (media.TrackInfo, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	t := p.tracks[trackID]
	if t == nil {
		return media.TrackInfo{}, fmt.Errorf("track %q: %w", trackID, ErrNotFound)
	}
	return t.Info, nil
}
