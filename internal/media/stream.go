package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Stream errors beyond those of BoxReader.
var (
	// ErrNoHeader means a fragment arrived before any CMAF header (ftyp+moov).
	ErrNoHeader = errors.New("fragment before any stream header")
	// ErrConfigChanged means a repeated header changed a track's codec configuration.
	ErrConfigChanged = errors.New("codec configuration changed mid-stream")
	// ErrSequence means boxes arrived in an order no encoder produces.
	ErrSequence = errors.New("box out of sequence")
	// ErrNoMedia means more than the box bound of boxes that carry no
	// media (padding, unknown types) arrived without a header, a fragment
	// or the end between them.
	ErrNoMedia = errors.New("too many bytes without media")
)

// used are the top-level boxes a StreamParser reads; the payload of every
// other box (free, skip, prft, sidx, mfra, unknown types) is discarded as
// it arrives.
var used = map[string]bool{"ftyp": true, "uuid": true, "moov": true, "styp": true, "moof": true, "mdat": true, "emsg": true}

// EventKind says what a StreamParser event carries.
type EventKind int

// Event kinds.
const (
	EventHeader   EventKind = iota + 1 // a stream header (ftyp, manifest box, moov)
	EventFragment                      // one complete fragment (moof+mdat)
	EventEnd                           // end of stream: mfra, or a segment with the lmsg brand
)

// Fragment is a complete, normalised fragment ready to store.
type Fragment struct {
	Info FragInfo
	Data []byte // normalised moof followed by the mdat as received
	// Mark is what a styp box just before the fragment said (see
	// SegmentMark; a chunked pull between Sluice nodes).
	Mark SegmentMark
	// Events are the event messages (emsg boxes) that arrived before the
	// fragment, times absolute on the track's timeline (see Emsg).
	Events []Emsg
}

// SegmentMark is what a styp box says of the moof+mdat that follows it.
type SegmentMark int

// Segment marks.
const (
	NoMark SegmentMark = iota
	// MarkWhole: a styp without the CMAF chunk brand: the moof+mdat is a
	// complete fragment.
	MarkWhole
	// MarkChunked: a styp with the CMAF chunk brand 'cmfl': the moof+mdat
	// is the first chunk of a fragment sent as it is produced; the
	// chunks up to the next styp continue it.
	MarkChunked
)

// ChunkBrand is the CMAF chunk brand (ISO/IEC 23000-19) that a styp
// carries before the first chunk of a fragment still being produced.
const ChunkBrand = "cmfl"

// Styp returns a styp box announcing a complete fragment (MarkWhole) or
// the first chunk of one in progress (MarkChunked).
func Styp(m SegmentMark) []byte {
	brands := []string{"msdh", "msdh", "msix"}
	if m == MarkChunked {
		brands = append(brands, ChunkBrand)
	}
	b := make([]byte, 0, 8+4+4+4*len(brands))
	b = binary.BigEndian.AppendUint32(b, uint32(8+4+4+4*(len(brands)-1)))
	b = append(b, "styp"...)
	b = append(b, brands[0]...)
	b = binary.BigEndian.AppendUint32(b, 0) // minor version
	for _, br := range brands[1:] {
		b = append(b, br...)
	}
	return b
}

// Event is one step of a parsed ingest body.
type Event struct {
	Kind     EventKind
	Header   *Header
	Fragment *Fragment
}

// StreamParser turns an ingest body into headers, fragments and the end of
// stream. It keeps the last header so that segment-only bodies (one CMAF
// segment per request) can be parsed against a header received earlier.
type StreamParser struct {
	br       *BoxReader
	max      uint64
	header   *Header
	ftyp     []byte
	smil     []byte
	moof     *Moof
	lmsg     bool
	mark     SegmentMark
	endAfter bool
	// noMedia counts the bytes of boxes read since the last event.
	noMedia uint64
	events  int64
	mem     Memory
	held    int // bytes granted by mem for the last fragment's copy
	// kept is what mem granted for the boxes kept across calls (ftyp,
	// manifest box, moof).
	kept map[string]int
	// emsgs are the emsg boxes read since the last fragment (copies),
	// emsgBytes their total size.
	emsgs     [][]byte
	emsgBytes int
}

// NewStreamParser reads boxes from r, each at most maxBox bytes. header is the
// stream header already known for this stream, or nil. Boxes it has no use
// for are discarded as they arrive; more than maxBox bytes of them between
// two events is an error (ErrNoMedia).
func NewStreamParser(r io.Reader, maxBox uint64, header *Header) *StreamParser {
	br := NewBoxReader(r, maxBox)
	br.SetSkip(func(typ string) bool { return !used[typ] })
	return &StreamParser{br: br, max: maxBox, header: header}
}

// SetMemory accounts the parser's buffers (the box being read, the last
// fragment returned) to m; Close releases what it holds.
func (p *StreamParser) SetMemory(m Memory) {
	p.mem = m
	p.br.SetMemory(m)
}

// Close releases the memory the parser holds.
func (p *StreamParser) Close() {
	p.release()
	p.br.Release()
	for typ := range p.kept {
		p.drop(typ)
	}
}

// keep takes over the memory of the box just read, kept as typ (replacing
// the one kept before).
func (p *StreamParser) keep(typ string) {
	p.drop(typ)
	if n := p.br.Keep(); n > 0 {
		if p.kept == nil {
			p.kept = map[string]int{}
		}
		p.kept[typ] = n
	}
}

// drop releases the memory of a box kept as typ.
func (p *StreamParser) drop(typ string) {
	if n := p.kept[typ]; n > 0 && p.mem != nil {
		p.mem.Release(n)
	}
	delete(p.kept, typ)
}

func (p *StreamParser) release() {
	if p.mem != nil && p.held > 0 {
		p.mem.Release(p.held)
	}
	p.held = 0
}

// InBox reports whether the parser is waiting for the rest of a box whose
// header has arrived (not between boxes).
func (p *StreamParser) InBox() bool { return p.br.InBox() }

// Events is the number of events (headers, fragments, ends) returned so far.
func (p *StreamParser) Events() int64 { return p.events }

// Header returns the current stream header, or nil.
func (p *StreamParser) Header() *Header { return p.header }

// Offset is the number of body bytes consumed.
func (p *StreamParser) Offset() int64 { return p.br.Offset() }

// Next returns the next event, or io.EOF at a clean end of the body. The
// fragment it returned before may not be used any more.
func (p *StreamParser) Next() (Event, error) {
	p.release()
	ev, err := p.next()
	if err == nil {
		p.events++
		p.noMedia = 0
	}
	return ev, err
}

func (p *StreamParser) next() (Event, error) {
	if p.endAfter {
		p.endAfter = false
		return Event{Kind: EventEnd}, nil
	}
	for {
		b, err := p.br.Next()
		if err != nil {
			if errors.Is(err, io.EOF) && p.moof != nil {
				return Event{}, fmt.Errorf("body ended after a moof without its mdat: %w", ErrTruncated)
			}
			return Event{}, err
		}
		if p.moof != nil && b.Type != "mdat" {
			return Event{}, fmt.Errorf("%s after moof, expected mdat: %w", b.Type, ErrSequence)
		}
		if b.Type != "moov" && b.Type != "moof" && b.Type != "mdat" {
			// Not media (the event a media box makes resets the count).
			p.noMedia += b.Size
			if p.noMedia > p.max {
				return Event{}, fmt.Errorf("%d bytes of boxes (the last %q) without a header, a fragment or the end: %w",
					p.noMedia, printable(b.Type), ErrNoMedia)
			}
		}
		switch b.Type {
		case "ftyp":
			p.ftyp, p.smil = b.Raw, nil
			p.keep("ftyp")
			p.drop("smil")
		case "uuid":
			if UUIDOf(b.Raw) == UUIDLiveServerManifest {
				p.smil = b.Raw
				p.keep("smil")
			}
		case "moov":
			h, err := ParseHeader(p.ftyp, p.smil, b.Raw)
			if err != nil {
				return Event{}, fmt.Errorf("stream header: %w", err)
			}
			if err := SameConfig(p.header, h); err != nil {
				return Event{}, err
			}
			p.header = h
			p.ftyp, p.smil = nil, nil
			p.drop("ftyp")
			p.drop("smil")
			return Event{Kind: EventHeader, Header: h}, nil
		case "styp":
			p.lmsg = hasBrand(b.Raw, "lmsg")
			p.mark = MarkWhole
			if hasBrand(b.Raw, ChunkBrand) {
				p.mark = MarkChunked
			}
		case "moof":
			if p.header == nil {
				return Event{}, ErrNoHeader
			}
			m, err := DecodeMoof(b.Raw)
			if err != nil {
				return Event{}, err
			}
			p.moof = m
			p.keep("moof")
		case "mdat":
			if p.moof == nil {
				return Event{}, fmt.Errorf("mdat without a moof: %w", ErrSequence)
			}
			m := p.moof
			p.moof = nil
			defer p.drop("moof")
			f, err := p.fragment(m, b.Raw)
			if err != nil {
				return Event{}, err
			}
			f.Mark, p.mark = p.mark, NoMark
			if p.lmsg {
				p.lmsg = false
				p.endAfter = true
			}
			return Event{Kind: EventFragment, Fragment: f}, nil
		case "emsg":
			if len(p.emsgs) >= MaxEventsPerFragment || p.emsgBytes+len(b.Raw) > MaxEventBytes {
				return Event{}, fmt.Errorf("more than %d emsg boxes or %d bytes of them before one fragment: %w",
					MaxEventsPerFragment, MaxEventBytes, ErrEventsTooLarge)
			}
			p.emsgs = append(p.emsgs, bytes.Clone(b.Raw))
			p.emsgBytes += len(b.Raw)
		case "mfra":
			return Event{Kind: EventEnd}, nil
		default:
			// prft, sidx, free, skip and unknown boxes carry nothing the
			// origin republishes; they are skipped.
		}
	}
}

func (p *StreamParser) fragment(m *Moof, mdat []byte) (*Fragment, error) {
	id := m.Traf.Tfhd.TrackID
	ti, ok := p.header.Track(id)
	if !ok {
		return nil, fmt.Errorf("fragment for track %d, which the header does not declare: %w", id, ErrSequence)
	}
	fi, err := m.Inspect(p.header.Trex(id), uint64(len(payload(mdat))))
	if err != nil {
		return nil, err
	}
	moof, err := m.Normalize(fi, SwitchingSetTrackID(ti))
	if err != nil {
		return nil, err
	}
	if p.mem != nil {
		if err := p.mem.Grow(len(moof) + len(mdat)); err != nil {
			return nil, fmt.Errorf("fragment of track %d: %w", id, err)
		}
		p.held = len(moof) + len(mdat)
	}
	var evs []Emsg
	for _, raw := range p.emsgs {
		e, err := eventOf(raw, ti.Timescale, fi.Start)
		if err != nil {
			return nil, fmt.Errorf("event before the fragment of track %d at %d: %w", id, fi.Start, err)
		}
		evs = append(evs, e)
	}
	p.emsgs, p.emsgBytes = nil, 0
	data := make([]byte, 0, len(moof)+len(mdat))
	data = append(append(data, moof...), mdat...)
	return &Fragment{Info: fi, Data: data, Events: evs}, nil
}

// SameConfig reports ErrConfigChanged when a track present in both headers
// changed its sample description. old may be nil.
func SameConfig(old, h *Header) error {
	if old == nil {
		return nil
	}
	for _, t := range h.Tracks {
		if o, ok := old.Track(t.TrackID); ok && o.ConfigHash != t.ConfigHash {
			return fmt.Errorf("track %d (%s): %w", t.TrackID, t.Kind, ErrConfigChanged)
		}
	}
	return nil
}

func hasBrand(raw []byte, brand string) bool {
	p := payload(raw)
	if len(p) < 8 {
		return false
	}
	if string(p[0:4]) == brand {
		return true
	}
	for i := 8; i+4 <= len(p); i += 4 {
		if string(p[i:i+4]) == brand {
			return true
		}
	}
	return false
}

// SplitFragment returns the moof and the offset of the mdat in a stored fragment.
func SplitFragment(data []byte) (moof []byte, mdatOff int, err error) {
	if len(data) < 8 || string(data[4:8]) != "moof" {
		return nil, 0, fmt.Errorf("fragment does not start with moof")
	}
	n := int(binary.BigEndian.Uint32(data))
	if n < 8 || n > len(data) {
		return nil, 0, fmt.Errorf("moof size %d out of range", n)
	}
	return data[:n], n, nil
}

// IsComplete checks that data is exactly one moof followed by one mdat.
func IsComplete(data []byte) bool {
	br := NewBoxReader(bytes.NewReader(data), uint64(len(data)))
	a, err := br.Next()
	if err != nil || a.Type != "moof" {
		return false
	}
	b, err := br.Next()
	if err != nil || b.Type != "mdat" {
		return false
	}
	_, err = br.Next()
	return errors.Is(err, io.EOF)
}
