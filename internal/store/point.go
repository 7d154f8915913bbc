package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/parts"
	"github.com/sluice-media/sluice/internal/texttrack"
)

// PointMeta is the persisted state of a publishing point.
type PointMeta struct {
	Created time.Time `json:"created"`
	// Anchor is the wall-clock time of media time zero, fixed when the first
	// fragment arrives; DASH availabilityStartTime and HLS program date times
	// derive from it.
	Anchor time.Time `json:"anchor,omitzero"`
	// VOD marks an on-demand asset (imported or cut from an archive).
	VOD bool `json:"vod,omitempty"`
	// Restarts are the encoder restarts of the point, oldest first (see
	// Restart): their boundaries are discontinuities of every track.
	Restarts []Restart `json:"restarts,omitempty"`
}

// Point is one publishing point (a live channel or an on-demand asset).
type Point struct {
	Name  string
	store *Store
	dir   string

	mu      sync.RWMutex
	meta    PointMeta
	tracks  map[string]*track
	streams map[string]*stream
	// pending holds, in memory only, the headers of header-only pushes
	// (CMAF, one request per object) until their first fragment commits
	// them (see KeepHeader).
	pending map[string]*media.Header
	// busy counts the bodies being received per stream id (Receiving).
	busy    map[string]int
	changed chan struct{}
	// cues are the events inserted out of band (cues.json, events.go).
	cues []media.Emsg
}

type track struct {
	ID   string          `json:"id"`
	Info media.TrackInfo `json:"info"`
	// Stream is the ingest stream the track arrives on.
	Stream string `json:"stream"`
	Ended  bool   `json:"ended,omitempty"`
	// Pruned counts fragments deleted from the front by retention, so that
	// sequence numbers (HLS media sequence) stay stable.
	Pruned int64 `json:"pruned,omitempty"`
	// PrunedGaps counts the discontinuities (a fragment that does not start
	// where the previous one ended) up to and including the one before the
	// first kept fragment, so that the HLS discontinuity sequence stays
	// stable when retention deletes the fragments around a gap.
	PrunedGaps int64 `json:"pruned_gaps,omitempty"`
	// PrunedBefore is the start of the first fragment kept by the last
	// prune (meaningful when Pruned > 0): a fragment file before it is a
	// leftover of a prune interrupted between the index and the files, which
	// Pruned already counts.
	PrunedBefore int64 `json:"pruned_before,omitempty"`
	// Extent remembers the track's first and longest fragments, deleted
	// ones included.
	Extent Extent `json:"extent,omitzero"`

	init []byte
	// storedID is the track_ID of the stored header (init), which every
	// stored fragment of the track says too (0: unknown).
	storedID uint32
	frags    []FragRef
	// arrived is when this process stored the newest fragment (zero: none
	// since it started); see TrackView.Arrived.
	arrived time.Time
	// live holds the parts of the track's newest fragments in memory
	// (parts.go); guarded by the point's mu.
	live parts.Track
	// events are the in-band events stored with fragments, by fragment
	// start; schemes counts the fragments with events of each scheme, and
	// listed are the SCTE-35 events by fragment start (events.go); guarded
	// by the point's mu.
	events  map[int64][]media.Emsg
	schemes map[EventScheme]int
	listed  []listedEvent
	// wmu serialises writers of this track (redundant copies racing for the
	// same start time must not both reach the disk).
	wmu sync.Mutex
	// cc looks for closed captions in the first fragments this process
	// stores (a video track's only; guarded by wmu); ccOff says there is
	// nothing (more) to scan.
	cc    *media.CaptionScan
	ccOff bool
}

// Extent is what a track's timeline has held since its first fragment,
// fragments that retention deleted included. It is kept in track.json, so
// that manifests can derive values that must never change over a
// presentation's life from it (the HLS target duration, the presentation
// start); it only ever grows.
type Extent struct {
	// First is the start of the earliest fragment the track ever stored and
	// FirstDuration its duration; FirstDuration 0 means not known (no
	// fragment yet).
	First         int64  `json:"first"`
	FirstDuration uint64 `json:"first_d"`
	// FirstSize is the size in bytes of that earliest fragment (0 in
	// extents stored before it was kept): with FirstDuration, the measured
	// bit rate that stands for a track whose encoder declared none
	// (manifest.SmoothBitrate), which must not change while it plays.
	FirstSize int64 `json:"first_size,omitempty"`
	// MaxDuration is the longest fragment duration the track ever stored.
	MaxDuration uint64 `json:"max_d"`
}

// Known reports whether the extent describes at least one fragment.
func (e Extent) Known() bool { return e.FirstDuration > 0 }

// note records a stored fragment; earlier may lower First (nothing was
// pruned yet). It reports whether the extent changed.
func (e *Extent) note(f FragRef, earlier bool) bool {
	changed := false
	if !e.Known() || (earlier && f.Start < e.First) {
		e.First, e.FirstDuration, e.FirstSize = f.Start, f.Duration, f.Size
		changed = true
	} else if e.FirstSize == 0 && f.Start == e.First && f.Size > 0 {
		e.FirstSize = f.Size // an extent saved before sizes were kept
		changed = true
	}
	if f.Duration > e.MaxDuration {
		e.MaxDuration = f.Duration
		changed = true
	}
	return changed
}

type stream struct {
	ID     string            `json:"id"`
	Tracks map[uint32]string `json:"tracks"` // track_ID in the stream -> track id
	// OffsetNs is added, in nanoseconds (OffsetTicks), to the times of
	// every fragment the stream's encoder sends: non-zero after an encoder
	// restart placed the new encoder session after what was stored (see
	// Point.Restart).
	OffsetNs int64 `json:"offset_ns,omitempty"`
	// Fed is set once a fragment arrived on the stream (see StreamFed).
	Fed    bool `json:"fed,omitempty"`
	header []byte
	hdr    *media.Header
	// act is what the stream did since the process started (activity.go).
	act activity
}

func newPoint(s *Store, name string) *Point {
	return &Point{
		Name: name, store: s, dir: filepath.Join(s.dir, filepath.FromSlash(name)),
		tracks: map[string]*track{}, streams: map[string]*stream{}, pending: map[string]*media.Header{},
		busy: map[string]int{}, changed: make(chan struct{}),
	}
}

func (p *Point) saveMeta() error {
	return writeJSONSync(filepath.Join(p.dir, pointFile), p.meta, !p.store.noSync)
}

func (p *Point) load() error {
	p.removeTemps(p.dir)
	b, err := os.ReadFile(filepath.Join(p.dir, pointFile))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &p.meta); err != nil {
		return fmt.Errorf("%s: %w", pointFile, err)
	}
	tdirs, _ := os.ReadDir(filepath.Join(p.dir, "t"))
	for _, d := range tdirs {
		if !d.IsDir() || !ValidID(d.Name()) {
			continue
		}
		t, err := p.loadTrack(filepath.Join(p.dir, "t", d.Name()))
		if err != nil {
			p.store.log.Warn("skipping unreadable track", "point", p.Name, "track", d.Name(), "err", err)
			continue
		}
		p.tracks[t.ID] = t
	}
	p.quarantineTails()
	p.loadCues()
	sdirs, _ := os.ReadDir(filepath.Join(p.dir, "s"))
	for _, d := range sdirs {
		dir := filepath.Join(p.dir, "s", d.Name())
		p.removeTemps(dir)
		var st stream
		b, err := os.ReadFile(filepath.Join(dir, streamFile))
		if err == nil {
			err = json.Unmarshal(b, &st)
		}
		if err == nil {
			st.header, err = os.ReadFile(filepath.Join(dir, headerFile))
		}
		if err == nil {
			st.hdr, err = media.ParseStoredHeader(st.header)
		}
		if err != nil {
			p.store.log.Warn("skipping unreadable stream", "point", p.Name, "stream", d.Name(), "err", err)
			continue
		}
		st.act.since = time.Now()
		p.streams[st.ID] = &st
	}
	p.inferFed()
	return nil
}

// removeTemps removes the temporary files a crash left in dir (see
// Store.removeTemp).
func (p *Point) removeTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !e.IsDir() && strings.HasPrefix(e.Name(), tmpPrefix) {
			p.store.removeTemp(filepath.Join(dir, e.Name()))
		}
	}
}

func (p *Point) loadTrack(dir string) (*track, error) {
	var t track
	b, err := os.ReadFile(filepath.Join(dir, trackFile))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, err
	}
	if t.init, err = os.ReadFile(filepath.Join(dir, initFile)); err != nil {
		return nil, err
	}
	t.storedID = initTrackID(t.init)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	evNames := map[int64]bool{}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, tmpPrefix) {
			p.store.removeTemp(filepath.Join(dir, n))
			continue
		}
		if s, ok := strings.CutSuffix(n, eventsExt); ok {
			if start, err := strconv.ParseInt(s, 10, 64); err == nil {
				evNames[start] = true
			}
			continue
		}
		if !strings.HasSuffix(n, fragExt) {
			continue
		}
		start, err := strconv.ParseInt(strings.TrimSuffix(n, fragExt), 10, 64)
		if err != nil {
			continue
		}
		if t.Pruned > 0 && start < t.PrunedBefore {
			if !p.store.shared {
				p.store.log.Info("removing a fragment an interrupted prune left", "file", filepath.Join(dir, n))
				os.Remove(filepath.Join(dir, n))
			}
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		ref, err := refOf(data, t.Info, t.init)
		if err != nil || ref.Start != start {
			if !p.store.shared {
				p.store.log.Warn("removing unreadable fragment", "file", filepath.Join(dir, n), "err", err)
				os.Remove(filepath.Join(dir, n))
			}
			continue
		}
		if err := checkTime(ref, t.Info.Timescale, time.Time{}, timeline{}, now); err != nil {
			p.quarantine(dir, n, err)
			continue
		}
		t.frags = append(t.frags, ref)
	}
	sort.Slice(t.frags, func(i, j int) bool { return t.frags[i].Start < t.frags[j].Start })
	t.mergeExtent()
	p.loadEvents(dir, &t, evNames)
	return &t, nil
}

// mergeExtent completes the persisted extent with the fragments loaded: a
// track.json written before extents existed (or before its last fragment's
// extent was saved) gets them from the fragments on disk.
func (t *track) mergeExtent() {
	for _, f := range t.frags {
		t.Extent.note(f, t.Pruned == 0)
	}
}

// QuarantineSuffix is appended to the name of a stored fragment whose time
// is implausible (see checkTime) when the store loads: the file is kept, for
// an operator to inspect, but never indexed or listed again.
const QuarantineSuffix = ".quarantined"

// quarantine renames a loaded fragment file out of the index's way and logs
// why. A shared store (another process writes it) only skips the file.
func (p *Point) quarantine(dir, name string, why error) {
	path := filepath.Join(dir, name)
	if p.store.shared {
		p.store.log.Warn("skipping a fragment with an implausible time", "file", path, "err", why)
		return
	}
	err := os.Rename(path, path+QuarantineSuffix)
	if err == nil {
		err = syncDir(dir)
	}
	p.store.log.Warn("quarantined a fragment with an implausible time; it is kept but never listed",
		"file", path+QuarantineSuffix, "reason", why, "rename_err", err)
}

// quarantineTails checks the last fragment of every track against the
// timeline before it, as AddFragment would have when it arrived (its file's
// modification time standing in for the wall clock then), and quarantines
// it while it is implausible: one fragment with an absurd time stored by an
// earlier version must not become the live edge that hides the rest. Only
// tails are checked: an outlier anywhere else cannot move the live edge.
func (p *Point) quarantineTails() {
	ids := make([]string, 0, len(p.tracks))
	for id := range p.tracks {
		ids = append(ids, id)
	}
	// Tracks with a fragment before their tail first: a track whose only
	// fragment is checked against the others needs theirs settled.
	sort.Slice(ids, func(i, j int) bool {
		a, b := len(p.tracks[ids[i]].frags) > 1, len(p.tracks[ids[j]].frags) > 1
		if a != b {
			return a
		}
		return ids[i] < ids[j]
	})
	for _, id := range ids {
		t := p.tracks[id]
		dir := filepath.Join(p.dir, "t", id)
		for len(t.frags) > 0 {
			last := t.frags[len(t.frags)-1]
			var tl timeline
			if n := len(t.frags); n > 1 {
				tl.end, tl.known = toDur(t.frags[n-2].End(), t.Info.Timescale)
			} else {
				tl = p.pointTimeline(id)
			}
			at := time.Now()
			if fi, err := os.Stat(filepath.Join(dir, fragName(last.Start))); err == nil {
				at = fi.ModTime()
			}
			err := checkTime(last, t.Info.Timescale, p.meta.Anchor, tl, at)
			if err == nil {
				break
			}
			p.quarantine(dir, fragName(last.Start), err)
			t.frags = t.frags[:len(t.frags)-1]
		}
	}
}

// pointTimeline is the latest fragment end over the tracks other than
// except, the timeline a track's first fragment continues. p.mu must be
// held.
func (p *Point) pointTimeline(except string) timeline {
	var tl timeline
	for id, o := range p.tracks {
		if id == except || len(o.frags) == 0 {
			continue
		}
		if e, ok := toDur(o.frags[len(o.frags)-1].End(), o.Info.Timescale); ok && (!tl.known || e > tl.end) {
			tl = timeline{end: e, known: true}
		}
	}
	return tl
}

// refOf re-derives the index entry of a stored fragment.
func refOf(data []byte, info media.TrackInfo, init []byte) (FragRef, error) {
	if !media.IsComplete(data) {
		return FragRef{}, errors.New("not one complete moof+mdat")
	}
	moof, _, err := media.SplitFragment(data)
	if err != nil {
		return FragRef{}, err
	}
	m, err := media.DecodeMoof(moof)
	if err != nil {
		return FragRef{}, err
	}
	h, err := media.ParseStoredHeader(init)
	if err != nil {
		return FragRef{}, err
	}
	fi, err := m.Inspect(h.StoredTrex(info), uint64(len(data)))
	if err != nil {
		return FragRef{}, err
	}
	return FragRef{Start: fi.Start, Duration: fi.Duration, Size: int64(len(data)), Key: fi.Key}, nil
}

// Meta returns the persisted state of the point.
func (p *Point) Meta() PointMeta {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.meta
}

// AdoptAnchor sets the wall-clock time of media time zero to t when the
// point has none yet, and reports whether it did. Tiers downstream of the
// first ingest (a standby ingest, origins pulling) adopt that ingest's anchor
// before storing their first fragment, so that every node announces the same
// availabilityStartTime and program date times; an anchor once set is never
// changed (players depend on it).
func (p *Point) AdoptAnchor(t time.Time) (bool, error) {
	if t.IsZero() {
		return false, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.meta.Anchor.IsZero() {
		return false, nil
	}
	p.meta.Anchor = t.UTC()
	if err := p.saveMeta(); err != nil {
		p.meta.Anchor = time.Time{}
		return false, fmt.Errorf("save anchor: %w", err)
	}
	p.notify()
	return true, nil
}

// SetVOD marks the point as an on-demand asset.
func (p *Point) SetVOD() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.meta.VOD = true
	return p.saveMeta()
}

// Changed returns a channel that is closed at the next change of the point
// (a fragment added, a track ended or restarted, fragments pruned).
func (p *Point) Changed() <-chan struct{} {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.changed
}

// notify must be called with p.mu held for writing.
func (p *Point) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// TrackID derives the stable id of a track from its description, so that
// redundant encoders and every tier name the same track alike.
func TrackID(ti media.TrackInfo) string {
	parts := []string{ti.Name}
	if ti.Language != "" && ti.Kind != "video" {
		parts = append(parts, ti.Language)
	}
	parts = append(parts, strconv.Itoa(ti.Bitrate))
	id := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
			return r
		}
		return '_'
	}, strings.Join(parts, "_"))
	if id == "" || !ValidID(id) {
		id = "t" + strconv.Itoa(int(ti.TrackID))
	}
	return id
}

// StreamHeader returns the header that fragments of a stream are parsed
// against: the one a header-only push left pending (KeepHeader), else the
// stored one.
func (p *Point) StreamHeader(streamID string) (*media.Header, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if h := p.pending[streamID]; h != nil {
		return h, nil
	}
	st := p.streams[streamID]
	if st == nil {
		return nil, fmt.Errorf("stream %q: %w", streamID, ErrNotFound)
	}
	return st.hdr, nil
}

// maxPending bounds the headers kept in memory per point for header-only
// pushes whose first fragment has not come yet.
const maxPending = 256

// KeepHeader remembers, in memory only, the header of a push that ended
// before any of its fragments was stored — the header request of CMAF
// ingest with one request per object — so that the segment requests that
// follow parse against it; the first of them that stores a fragment commits
// it (SetHeader). Nothing durable changes: a restart of the process forgets
// it, and the encoder's next segment then gets 412 and resends the header
// (DASH-IF ingest). At most maxPending headers are kept per point; the
// oldest-looking one is dropped beyond that.
func (p *Point) KeepHeader(streamID string, h *media.Header) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := p.streams[streamID]; st != nil && bytes.Equal(st.header, h.Raw()) {
		delete(p.pending, streamID)
		return
	}
	if _, ok := p.pending[streamID]; !ok && len(p.pending) >= maxPending {
		for k := range p.pending {
			delete(p.pending, k)
			break
		}
	}
	p.pending[streamID] = h
}

// CheckHeader validates a header for a stream without changing anything:
// it returns the track ids the header's tracks map to, or
// media.ErrConfigChanged when a track's codec configuration differs from
// the one stored. Receive checks each header with it and commits it with
// SetHeader only together with the first fragment it stores.
func (p *Point) CheckHeader(streamID string, h *media.Header) (map[uint32]string, error) {
	if !ValidID(streamID) {
		return nil, fmt.Errorf("invalid stream id %q", streamID)
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.checkHeader(h)
}

func (p *Point) checkHeader(h *media.Header) (map[uint32]string, error) {
	ids := map[uint32]string{}
	for _, ti := range h.Tracks {
		id := TrackID(ti)
		if t := p.tracks[id]; t != nil && t.Info.ConfigHash != ti.ConfigHash {
			return nil, fmt.Errorf("track %s: %w", id, media.ErrConfigChanged)
		}
		ids[ti.TrackID] = id
	}
	return ids, nil
}

// RecordStream records a stream that carries copies of stored fragments
// (another stream id with the same media: a redundant encoder, a
// re-ingest): its header and stream record are written when the stream is
// unknown and every track of h exists, so that it is listed and can be
// pulled; unlike SetHeader, no track is created or made live again. It
// does nothing for a known stream.
func (p *Point) RecordStream(streamID string, h *media.Header) error {
	if !ValidID(streamID) {
		return fmt.Errorf("invalid stream id %q", streamID)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.streams[streamID] != nil {
		return nil
	}
	ids, err := p.checkHeader(h)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if p.tracks[id] == nil {
			return nil
		}
	}
	raw := h.Raw()
	dir := filepath.Join(p.dir, "s", streamID)
	if err := mkdirAll(dir); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, headerFile), raw); err != nil {
		return fmt.Errorf("write stream header: %w", err)
	}
	st := &stream{ID: streamID, Tracks: ids, header: raw, hdr: h}
	st.act.since = time.Now()
	if err := writeJSON(filepath.Join(dir, streamFile), st); err != nil {
		return fmt.Errorf("save stream: %w", err)
	}
	p.streams[streamID] = st
	p.notify()
	return nil
}

// SetHeader records the header of an ingest stream and creates or restarts
// its tracks. A track whose codec configuration differs from the one stored
// gets media.ErrConfigChanged and nothing is changed. The stream keeps its
// OffsetNs.
func (p *Point) SetHeader(streamID string, h *media.Header) (map[uint32]string, error) {
	if !ValidID(streamID) {
		return nil, fmt.Errorf("invalid stream id %q", streamID)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ids, err := p.checkHeader(h)
	if err != nil {
		return nil, err
	}
	for _, ti := range h.Tracks {
		id := ids[ti.TrackID]
		t := p.tracks[id]
		dir := filepath.Join(p.dir, "t", id)
		if t == nil {
			init, err := h.TrackInit(ti.TrackID)
			if err != nil {
				return nil, err
			}
			if err := mkdirAll(dir); err != nil {
				return nil, err
			}
			if err := writeFileAtomic(filepath.Join(dir, initFile), init); err != nil {
				return nil, fmt.Errorf("write init: %w", err)
			}
			t = &track{ID: id, Info: ti, Stream: streamID, init: init, storedID: initTrackID(init)}
			if err := writeJSON(filepath.Join(dir, trackFile), t); err != nil {
				return nil, err
			}
			p.tracks[id] = t
		} else if t.Ended {
			t.Ended = false
			if err := writeJSON(filepath.Join(dir, trackFile), t); err != nil {
				return nil, err
			}
		}
	}
	raw := h.Raw()
	st := p.streams[streamID]
	if st == nil || !bytes.Equal(st.header, raw) {
		dir := filepath.Join(p.dir, "s", streamID)
		if err := mkdirAll(dir); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(filepath.Join(dir, headerFile), raw); err != nil {
			return nil, err
		}
		old := st
		st = &stream{ID: streamID, Tracks: ids, header: raw, hdr: h}
		if old != nil {
			st.Fed, st.act, st.OffsetNs = old.Fed, old.act, old.OffsetNs
		} else {
			st.act.since = time.Now()
		}
		if err := writeJSON(filepath.Join(dir, streamFile), st); err != nil {
			return nil, err
		}
		p.streams[streamID] = st
	}
	delete(p.pending, streamID)
	p.notify()
	return ids, nil
}

// AddResult says what became of an added fragment.
type AddResult int

// Add results.
const (
	Added     AddResult = iota + 1
	Duplicate           // same track and start time already stored, identical bytes
	Differs             // same track and start time already stored, different bytes (first copy kept)
)

// AddFragment stores a fragment durably and then indexes it. A fragment with
// the start time of one already stored is dropped: the first copy wins. A
// fragment whose time is implausible (see checkTime and docs/ingest.md) is
// refused with an error wrapping ErrImplausibleTime before anything is
// written.
func (p *Point) AddFragment(trackID string, f *media.Fragment) (AddResult, error) {
	p.mu.RLock()
	t := p.tracks[trackID]
	p.mu.RUnlock()
	if t == nil {
		return 0, fmt.Errorf("track %q: %w", trackID, ErrNotFound)
	}
	f, err := withStoredTrackID(f, t.storedID)
	if err != nil {
		return 0, fmt.Errorf("track %s: %w", trackID, err)
	}
	f = p.mediaTimeText(t, f)
	ref := FragRef{Start: f.Info.Start, Duration: f.Info.Duration, Size: int64(len(f.Data)), Key: f.Info.Key}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	p.mu.RLock()
	_, dup := t.find(ref.Start)
	anchor, tl := p.meta.Anchor, p.trackTimeline(t)
	p.mu.RUnlock()
	if err := checkTime(ref, t.Info.Timescale, anchor, tl, time.Now()); err != nil {
		return 0, fmt.Errorf("track %s: %w", trackID, err)
	}
	path := filepath.Join(p.dir, "t", trackID, fragName(ref.Start))
	if dup {
		return p.compare(t, path, f.Data), nil
	}
	// The events first: a fragment on disk always has its events.
	if err := p.writeEvents(trackID, ref.Start, f.Events); err != nil {
		return 0, err
	}
	if err := writeFile(path, f.Data, !p.store.noSync); err != nil {
		return 0, fmt.Errorf("store fragment: %w", err)
	}
	captions := t.scanCaptions(f.Data)
	// Fragment hooks (OnFragment) run after the point is unlocked (defers
	// run last-in first-out), still under the track's writer lock.
	added, hadParts := false, false
	defer func() {
		if added {
			p.store.fragmentAdded(FragmentAdded{Point: p.Name, Track: trackID, Ref: ref, Data: f.Data})
		}
		if hadParts {
			p.store.partEvent(PartEvent{Point: p.Name, Track: trackID, FragStart: ref.Start, Complete: true, End: ref.End()})
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	i, _ := t.find(ref.Start)
	t.frags = append(t.frags, FragRef{})
	copy(t.frags[i+1:], t.frags[i:])
	t.frags[i] = ref
	t.setEvents(ref.Start, f.Events)
	if i == len(t.frags)-1 {
		t.arrived = time.Now()
	}
	hadParts = t.completeParts(ref)
	saveInfo := false
	if captions != nil {
		if c := strings.Join(media.MergeCaptions(t.Info.CaptionList(), captions), ","); c != t.Info.Captions {
			t.Info.Captions, saveInfo = c, true
			p.store.log.Info("closed captions found", "point", p.Name, "track", trackID, "captions", c)
		}
	}
	if t.Extent.note(ref, t.Pruned == 0) || saveInfo {
		// The fragment is durable already; an extent that did not reach
		// the disk is recomputed from the fragments at the next start.
		if err := writeJSONSync(filepath.Join(p.dir, "t", trackID, trackFile), t, !p.store.noSync); err != nil {
			p.store.log.Warn("save track (extent, captions)", "point", p.Name, "track", trackID, "err", err)
		}
	}
	if p.meta.Anchor.IsZero() && ref.Start >= 0 {
		end := float64(ref.End()) / float64(t.Info.Timescale)
		p.meta.Anchor = time.Now().UTC().Add(-time.Duration(end * float64(time.Second))).Truncate(time.Millisecond)
		if d := p.meta.Anchor.Sub(time.Unix(0, 0)); d > -time.Minute && d < time.Minute {
			// Epoch-anchored timestamps (redundant encoders, sluice push):
			// media time zero is the Unix epoch, on every node alike.
			p.meta.Anchor = time.Unix(0, 0).UTC()
		}
		if err := p.saveMeta(); err != nil {
			return 0, err
		}
	}
	p.notify()
	added = true
	return Added, nil
}

// scanCaptions scans a fragment of the track for closed captions while its
// scan's budget lasts (media.CaptionScanFragments), and returns what the
// scan found when that changed, else nil. Called with t.wmu held.
func (t *track) scanCaptions(data []byte) []string {
	if t.ccOff {
		return nil
	}
	if t.cc == nil {
		if t.Info.Kind == "video" {
			t.cc = media.NewCaptionScan(t.init)
		}
		if t.cc == nil {
			t.ccOff = true
			return nil
		}
	}
	changed := t.cc.Fragment(data)
	if t.cc.Done() {
		t.ccOff = true
	}
	if !changed {
		return nil
	}
	return t.cc.Captions()
}

// mediaTimeText returns an stpp (TTML) fragment of t whose documents carry
// media times, as DASH and CMAF players read them: a Smooth encoder writes
// them relative to their samples (texttrack.MediaTimeStpp), and the Smooth
// output turns them back. Other fragments, and one whose documents do not
// parse (stored as they came, with a log line: their text is the
// encoder's), are returned as they are.
func (p *Point) mediaTimeText(t *track, f *media.Fragment) *media.Fragment {
	if t.Info.SampleEntry != "stpp" {
		return f
	}
	tr, err := texttrack.ParseInit(t.init)
	var data []byte
	changed := false
	if err == nil {
		data, changed, err = tr.MediaTimeStpp(f.Data)
	}
	if err != nil {
		p.store.log.Warn("TTML fragment stored with the times it came with", "point", p.Name, "track", t.ID, "start", f.Info.Start, "err", err)
		return f
	}
	if !changed {
		return f
	}
	return &media.Fragment{Info: f.Info, Data: data}
}

// initTrackID is the track_ID of a stored single-track header, 0 when it
// does not parse.
func initTrackID(init []byte) uint32 {
	h, err := media.ParseStoredHeader(init)
	if err != nil || len(h.Tracks) != 1 {
		return 0
	}
	return h.Tracks[0].TrackID
}

// withStoredTrackID returns f with the track_ID of its track's stored
// header: a track created before headers and fragments were stored with
// their switching set's track_ID (media.Moof.Normalize) keeps its own, so
// that its fragments and its header always agree.
func withStoredTrackID(f *media.Fragment, id uint32) (*media.Fragment, error) {
	if id == 0 {
		return f, nil
	}
	moof, off, err := media.MoofWithTrackID(f.Data, id)
	if err != nil {
		return nil, err
	}
	if len(moof) > 0 && &moof[0] == &f.Data[0] {
		return f, nil // it says id already
	}
	data := make([]byte, 0, len(f.Data))
	data = append(append(data, moof...), f.Data[off:]...)
	return &media.Fragment{Info: f.Info, Data: data, Events: f.Events}, nil
}

// trackTimeline is what a new fragment of t continues: the end of t's last
// fragment, or the point's latest end when t has none. p.mu must be held.
func (p *Point) trackTimeline(t *track) timeline {
	if n := len(t.frags); n > 0 {
		e, ok := toDur(t.frags[n-1].End(), t.Info.Timescale)
		return timeline{end: e, known: ok}
	}
	return p.pointTimeline(t.ID)
}

func (p *Point) compare(t *track, path string, data []byte) AddResult {
	old, err := os.ReadFile(path)
	if err == nil && p.same(t, old, data) {
		return Duplicate
	}
	return Differs
}

// same reports whether two fragments of t are copies: the same bytes, or
// the same samples in another box layout (a fragment merged from chunks
// and the same one resent whole, media.SameSamples).
func (p *Point) same(t *track, old, data []byte) bool {
	if bytes.Equal(old, data) {
		return true
	}
	p.mu.RLock()
	init, info := t.init, t.Info
	p.mu.RUnlock()
	h, err := media.ParseStoredHeader(init)
	if err != nil {
		return false
	}
	return media.SameSamples(old, data, h.StoredTrex(info))
}

// find returns the index of start in t.frags, or where it would be inserted.
func (t *track) find(start int64) (int, bool) {
	i := sort.Search(len(t.frags), func(i int) bool { return t.frags[i].Start >= start })
	return i, i < len(t.frags) && t.frags[i].Start == start
}

// EndTrack marks a track as ended (end of stream received).
func (p *Point) EndTrack(trackID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.tracks[trackID]
	if t == nil {
		return fmt.Errorf("track %q: %w", trackID, ErrNotFound)
	}
	if t.Ended {
		return nil
	}
	t.Ended = true
	if err := writeJSONSync(filepath.Join(p.dir, "t", trackID, trackFile), t, !p.store.noSync); err != nil {
		return err
	}
	p.notify()
	return nil
}
