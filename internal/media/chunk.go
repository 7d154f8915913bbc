package media

import (
	"bytes"
	"fmt"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// Merge joins the chunks of one fragment — CMAF chunks of one track, each a
// normalised moof+mdat (Fragment.Data as a StreamParser returns it), in
// order and contiguous — into one fragment in the stored form: a single
// moof whose one trun lists every sample with its duration, size, flags
// and composition offset, and one mdat with the samples' bytes. trex gives
// the defaults the chunks' moofs leave out (nil if none). The result's
// Info is that of the first chunk with the samples and duration of all,
// so Info.TrackID stays the stream's own. Merging one chunk gives that
// chunk's samples in the same form, which makes the result depend only on
// the samples: two encoders (or tiers) that send the same samples in
// chunks of other sizes store the same bytes.
func Merge(chunks []*Fragment, trex *mp4.TrexBox) (*Fragment, error) {
	if len(chunks) == 0 {
		return nil, fmt.Errorf("merge: no chunks")
	}
	first := chunks[0].Info
	if first.Start < 0 {
		return nil, fmt.Errorf("merge: negative start %d: %w", first.Start, ErrUnsupported)
	}
	var out *mp4.Fragment
	next := first.Start
	var size int
	for i, c := range chunks {
		if c.Info.Start != next {
			return nil, fmt.Errorf("merge: chunk %d starts at %d, the one before ends at %d: %w", i, c.Info.Start, next, ErrSequence)
		}
		f, err := decodeFragment(c.Data)
		if err != nil {
			return nil, fmt.Errorf("merge: chunk %d: %w", i, err)
		}
		tx := &mp4.TrexBox{}
		if trex != nil {
			*tx = *trex
		}
		tx.TrackID = f.Moof.Traf.Tfhd.TrackID
		ss, err := f.GetFullSamples(tx)
		if err != nil {
			return nil, fmt.Errorf("merge: chunk %d: %w", i, err)
		}
		if out == nil {
			if out, err = mp4.CreateFragment(f.Moof.Mfhd.SequenceNumber, tx.TrackID); err != nil {
				return nil, err
			}
			out.Moof.Traf.Tfdt.Version = 1
		}
		for _, s := range ss {
			out.AddFullSample(s)
			next += int64(s.Dur)
			size += len(s.Data)
		}
	}
	var buf bytes.Buffer
	buf.Grow(size + 64 + 16*int(out.Moof.Traf.Trun.SampleCount()))
	if err := out.Encode(&buf); err != nil {
		return nil, fmt.Errorf("merge: encode: %w", err)
	}
	info := first
	info.Samples = int(out.Moof.Traf.Trun.SampleCount())
	info.Duration = uint64(next - first.Start)
	info.samplesDur = info.Duration
	info.HasTfdt, info.HasTfxd = true, false
	var evs []Emsg
	for _, c := range chunks {
		evs = append(evs, c.Events...)
	}
	return &Fragment{Info: info, Data: buf.Bytes(), Events: evs}, nil
}

// decodeFragment decodes one moof+mdat.
func decodeFragment(data []byte) (*mp4.Fragment, error) {
	sr := bits.NewFixedSliceReader(data)
	f := mp4.NewFragment()
	for sr.NrRemainingBytes() > 0 {
		pos := sr.GetPos()
		b, err := mp4.DecodeBoxSR(uint64(pos), sr)
		if err != nil {
			return nil, err
		}
		f.AddChild(b)
	}
	if f.Moof == nil || f.Mdat == nil || f.Moof.Traf == nil {
		return nil, fmt.Errorf("not a moof and an mdat: %w", ErrSequence)
	}
	return f, nil
}

// Part is one chunk of a fragment still being received: servable at once,
// from memory, while the fragment it belongs to is completed.
type Part struct {
	// FragStart is the start of the fragment the part belongs to, in the
	// track's timescale; Index its place in that fragment (0 first).
	FragStart int64
	Index     int
	// Info is the chunk's own timing; Info.Key says the part starts with a
	// sync sample (an LL-HLS INDEPENDENT part).
	Info FragInfo
	Data []byte
}

// Assembled is what one chunk given to an Assembler completes and starts.
type Assembled struct {
	// Done are complete fragments to store, in order.
	Done []*Fragment
	// Parts are chunks of fragments still open, in order: the chunk just
	// given, and chunks held until the stream showed it is chunked.
	Parts []Part
}

// asmMode is how an Assembler treats a track's chunks.
type asmMode int

const (
	modeWhole   asmMode = iota // every moof+mdat is a fragment (not chunked)
	modeChunked                // fragments arrive as several chunks
)

// boundaryTolerance is by how much (seconds) a follower track's fragment
// may fall short of the video's fragment duration and still be complete.
const boundaryTolerance = 0.010

// VideoEdge is what an Assembler knows of the video fragments that a
// follower track's fragments align with.
type VideoEdge struct {
	// Start is the start (seconds, media time) of the newest video
	// fragment begun; Duration the duration of the longest complete one
	// (0 when none completed).
	Start, Duration float64
	// Chunked says the video arrives in chunks.
	Chunked bool
}

// Assembler groups the chunks of one ingest body into fragments. A CMAF
// chunk is a moof+mdat; a fragment is one or more chunks, the first
// starting with a sync sample. Nothing in the bytes marks the last chunk
// of a fragment, so a fragment is complete when the next one begins (or
// the body ends). Nothing is held back to find out whether a stream is
// chunked, so unchunked streams — one moof+mdat per fragment — stay as
// prompt as ever:
//
//   - Video: a track starts unchunked: its first moof+mdat is a fragment,
//     stored at once. A later chunk that does not start with a sync sample
//     and continues the one before makes the track chunked: it begins a
//     fragment of its own (the rest of the first GOP, without a sync
//     sample at its start), and from then on a chunk that starts with a
//     sync sample begins a fragment and every other chunk continues it.
//     So a chunked push stores its first chunk and the rest of its first
//     GOP as two short fragments, and whole GOPs after that.
//   - Audio and other tracks, whose samples are all sync samples, are
//     unchunked until the video is chunked — the body's own video, or for
//     a body without video (a CMAF ingest with one request per track) the
//     point's (Edge). Then their fragments begin at the chunk that starts
//     nearest the video's newest fragment start, or once they last as long
//     as the video's longest fragment (within 10 ms: a track ahead of the
//     video).
//
// A fragment is bounded by maxBytes: past it the fragment is completed
// and the chunk begins the next.
type Assembler struct {
	header   *Header
	maxBytes int
	tracks   map[uint32]*asmTrack
	order    []uint32
	// Edge, when set, reports the point's chunked video for bodies
	// without video.
	Edge func() VideoEdge
	// Marked makes styp boxes say where fragments begin (Fragment.Mark),
	// as a chunked pull from a Sluice ingest sends them: a moof+mdat
	// after a styp with the chunk brand begins a fragment in progress, the
	// ones without a styp continue it, and one after another styp is a
	// complete fragment. The sync-sample rules above do not apply.
	Marked bool
}

type asmTrack struct {
	id     uint32
	kind   string
	ts     float64
	mode   asmMode
	chunks []*Fragment // the open fragment's chunks
	bytes  int
	// prev is the last moof+mdat stored as a fragment of its own while
	// the track was unchunked.
	prev *Fragment
	// longest is the duration (seconds) of the longest fragment completed
	// (the GOP, once the short first fragments of a chunked push are past).
	longest float64
}

// NewAssembler returns an Assembler for a body whose header is h (nil
// until SetHeader), each fragment at most maxBytes.
func NewAssembler(h *Header, maxBytes int) *Assembler {
	a := &Assembler{maxBytes: maxBytes, tracks: map[uint32]*asmTrack{}}
	a.SetHeader(h)
	return a
}

// SetHeader sets the body's header; call Flush first when one was set.
func (a *Assembler) SetHeader(h *Header) {
	a.header = h
	if h == nil {
		return
	}
	for _, ti := range h.Tracks {
		if t, ok := a.tracks[ti.TrackID]; ok {
			t.kind, t.ts = ti.Kind, float64(ti.Timescale)
			continue
		}
		a.tracks[ti.TrackID] = &asmTrack{id: ti.TrackID, kind: ti.Kind, ts: float64(ti.Timescale)}
		a.order = append(a.order, ti.TrackID)
	}
}

// Add takes the next chunk of the body (a StreamParser fragment; Add keeps
// it, so the caller must not reuse its Data) and returns what it completes
// and starts.
func (a *Assembler) Add(f *Fragment) (Assembled, error) {
	var out Assembled
	t, ok := a.tracks[f.Info.TrackID]
	if !ok || t.ts == 0 {
		out.Done = append(out.Done, f)
		return out, nil
	}
	if f.Info.Start < 0 {
		// Only a tfxd can say a negative time, and no merged fragment can
		// carry it: such a chunk stays a fragment of its own.
		err := a.complete(t, &out)
		out.Done = append(out.Done, f)
		return out, err
	}
	if a.Marked {
		return out, a.addMarked(t, f, &out)
	}
	if t.kind == "video" {
		return out, a.addVideo(t, f, &out)
	}
	return out, a.addFollower(t, f, &out)
}

func (a *Assembler) addVideo(t *asmTrack, f *Fragment, out *Assembled) error {
	if t.mode != modeChunked {
		if t.prev != nil && !f.Info.Key && f.Info.Start == t.prev.Info.Start+int64(t.prev.Info.Duration) {
			// A chunk that continues the fragment before: chunked.
			t.mode, t.prev = modeChunked, nil
			return a.open(t, f, out)
		}
		t.prev = f
		out.Done = append(out.Done, f)
		return nil
	}
	if f.Info.Key || len(t.chunks) == 0 || !t.contiguous(f) {
		if err := a.complete(t, out); err != nil {
			return err
		}
		return a.open(t, f, out)
	}
	return a.continueOpen(t, f, out)
}

func (a *Assembler) addMarked(t *asmTrack, f *Fragment, out *Assembled) error {
	switch {
	case f.Mark == MarkChunked:
		if err := a.complete(t, out); err != nil {
			return err
		}
		return a.open(t, f, out)
	case f.Mark == NoMark && len(t.chunks) > 0 && t.contiguous(f):
		return a.continueOpen(t, f, out)
	}
	err := a.complete(t, out)
	out.Done = append(out.Done, f)
	return err
}

func (a *Assembler) addFollower(t *asmTrack, f *Fragment, out *Assembled) error {
	edge, hasVideo := a.bodyEdge()
	if !hasVideo && a.Edge != nil {
		edge = a.Edge()
	}
	if !edge.Chunked {
		err := a.complete(t, out)
		t.mode = modeWhole
		out.Done = append(out.Done, f)
		return err
	}
	t.mode = modeChunked
	if len(t.chunks) == 0 || !t.contiguous(f) {
		if err := a.complete(t, out); err != nil {
			return err
		}
		return a.open(t, f, out)
	}
	start := float64(t.chunks[0].Info.Start) / t.ts
	last := float64(t.chunks[len(t.chunks)-1].Info.Start) / t.ts
	at := float64(f.Info.Start) / t.ts
	// The fragment begins at the chunk nearest the video's boundary.
	split := edge.Start > (last+at)/2 && edge.Start <= at+float64(f.Info.Duration)/t.ts/2
	if edge.Duration > 0 && at-start >= edge.Duration-boundaryTolerance {
		split = true
	}
	if split {
		if err := a.complete(t, out); err != nil {
			return err
		}
		return a.open(t, f, out)
	}
	return a.continueOpen(t, f, out)
}

// bodyEdge is the body's own video edge, when the body has video.
func (a *Assembler) bodyEdge() (VideoEdge, bool) {
	var e VideoEdge
	has := false
	for _, t := range a.tracks {
		if t.kind != "video" {
			continue
		}
		has = true
		if t.mode == modeChunked && len(t.chunks) > 0 {
			e.Chunked = true
			e.Start = max(e.Start, float64(t.chunks[0].Info.Start)/t.ts)
			e.Duration = max(e.Duration, t.longest)
		}
	}
	return e, has
}

func (t *asmTrack) contiguous(f *Fragment) bool {
	last := t.chunks[len(t.chunks)-1]
	return f.Info.Start == last.Info.Start+int64(last.Info.Duration)
}

// open begins a fragment with chunk f.
func (a *Assembler) open(t *asmTrack, f *Fragment, out *Assembled) error {
	t.chunks, t.bytes = []*Fragment{f}, len(f.Data)
	out.Parts = append(out.Parts, Part{FragStart: f.Info.Start, Info: f.Info, Data: f.Data})
	return nil
}

// continueOpen adds chunk f to the open fragment (or, past the bound,
// completes it and begins the next with f).
func (a *Assembler) continueOpen(t *asmTrack, f *Fragment, out *Assembled) error {
	if a.maxBytes > 0 && t.bytes+len(f.Data) > a.maxBytes {
		if err := a.complete(t, out); err != nil {
			return err
		}
		return a.open(t, f, out)
	}
	t.chunks = append(t.chunks, f)
	t.bytes += len(f.Data)
	out.Parts = append(out.Parts, Part{FragStart: t.chunks[0].Info.Start, Index: len(t.chunks) - 1, Info: f.Info, Data: f.Data})
	return nil
}

// complete merges a track's open fragment into Done.
func (a *Assembler) complete(t *asmTrack, out *Assembled) error {
	if len(t.chunks) == 0 {
		return nil
	}
	chunks := t.chunks
	t.chunks, t.bytes = nil, 0
	var trex *mp4.TrexBox
	if a.header != nil {
		trex = a.header.Trex(t.id)
	}
	m, err := Merge(chunks, trex)
	if err != nil {
		return fmt.Errorf("track %d: %w", t.id, err)
	}
	if m.Info.Key {
		// A whole GOP (the rest of a first one says nothing of its length).
		t.longest = max(t.longest, float64(m.Info.Duration)/t.ts)
	}
	out.Done = append(out.Done, m)
	return nil
}

// Flush completes every open fragment (the end of the body, a new header,
// the end of the stream).
func (a *Assembler) Flush() ([]*Fragment, error) {
	var out Assembled
	for _, id := range a.order {
		t := a.tracks[id]
		if err := a.complete(t, &out); err != nil {
			return out.Done, err
		}
		t.prev = nil
	}
	return out.Done, nil
}

// SameSamples reports whether two moof+mdat fragments carry the same
// samples — decode times, durations, sizes, flags, composition offsets and
// bytes — whatever their box layout: a fragment merged from chunks and the
// same fragment written whole by another encoder, or by the same encoder
// resending it. trex gives the defaults the moofs leave out (nil if
// none). Fragments that do not decode are not the same.
func SameSamples(a, b []byte, trex *mp4.TrexBox) bool {
	sa, ok := fullSamples(a, trex)
	if !ok {
		return false
	}
	sb, ok := fullSamples(b, trex)
	if !ok || len(sa) != len(sb) {
		return false
	}
	for i := range sa {
		x, y := sa[i], sb[i]
		if x.DecodeTime != y.DecodeTime || x.Dur != y.Dur || x.Size != y.Size || x.Flags != y.Flags ||
			x.CompositionTimeOffset != y.CompositionTimeOffset || !bytes.Equal(x.Data, y.Data) {
			return false
		}
	}
	return true
}

func fullSamples(data []byte, trex *mp4.TrexBox) ([]mp4.FullSample, bool) {
	f, err := decodeFragment(data)
	if err != nil {
		return nil, false
	}
	tx := &mp4.TrexBox{}
	if trex != nil {
		*tx = *trex
	}
	tx.TrackID = f.Moof.Traf.Tfhd.TrackID
	ss, err := f.GetFullSamples(tx)
	return ss, err == nil && len(ss) > 0
}
