// Package media reads and writes the ISO-BMFF (fragmented MP4) structures that
// Sluice ingests and serves: a bounded box-stream reader for encoder bodies,
// track and codec description from init segments and the Smooth live server
// manifest, and fragment inspection and normalisation (tfdt, tfxd, tfrf).
package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors returned by BoxReader. They are wrapped with context; test with errors.Is.
var (
	// ErrBoxTooLarge means a box declared a size above the reader's bound.
	ErrBoxTooLarge = errors.New("box larger than the configured bound")
	// ErrTruncated means the stream ended inside a box.
	ErrTruncated = errors.New("stream ended inside a box")
	// ErrMalformed means a box header cannot be valid.
	ErrMalformed = errors.New("malformed box header")
)

// Memory accounts for the bytes a reader holds in box buffers (an ingest's
// memory budget). Grow is called before the reader holds n more bytes; an
// error aborts the read with that error. Release returns bytes no longer
// held.
type Memory interface {
	Grow(n int) error
	Release(n int)
}

// A box larger than firstChunk is read in chunks that double from
// firstChunk up to maxChunk as bytes arrive, so a box that declares a large
// size costs memory only for the bytes that actually came.
const (
	firstChunk = 64 << 10
	maxChunk   = 1 << 20
)

// Box is one top-level box read from a stream: its four-character type and
// its complete bytes, header included (the header alone when the reader
// skipped its payload, see SetSkip).
type Box struct {
	Type    string
	Raw     []byte
	Size    uint64 // the declared size, header included
	Skipped bool   // the payload was discarded
}

// BoxReader reads complete top-level boxes from a byte stream whose chunk
// boundaries have nothing to do with box boundaries (an HTTP chunked body).
// Every box is bounded by Max bytes.
type BoxReader struct {
	r   io.Reader
	max uint64
	off int64
	hdr [16]byte

	skip  func(typ string) bool
	mem   Memory
	held  int  // bytes granted by mem for the box last returned
	inBox bool // a box header was read and its payload is arriving
}

// SetSkip makes the reader discard the payload of the boxes for which skip
// returns true as it arrives, without buffering it: such a box is returned
// with its header only in Raw and its size in Size.
func (b *BoxReader) SetSkip(skip func(typ string) bool) { b.skip = skip }

// SetMemory makes the reader account the box buffers it holds to m. A box
// is held from its first byte until the next call of Next (or Release).
func (b *BoxReader) SetMemory(m Memory) { b.mem = m }

// Release returns the memory of the box last returned: call it when the
// reader is done with.
func (b *BoxReader) Release() {
	if b.mem != nil && b.held > 0 {
		b.mem.Release(b.held)
	}
	b.held = 0
}

// Keep hands the memory of the box last returned to the caller, who keeps
// the box past the next call of Next and releases that many bytes itself.
func (b *BoxReader) Keep() int {
	n := b.held
	b.held = 0
	return n
}

// InBox reports whether a box header has been read and the reader is
// waiting for the rest of that box (not between boxes).
func (b *BoxReader) InBox() bool { return b.inBox }

// NewBoxReader returns a reader of boxes from r; no box may exceed max bytes.
func NewBoxReader(r io.Reader, max uint64) *BoxReader {
	return &BoxReader{r: r, max: max}
}

// Offset is the number of bytes consumed so far.
func (b *BoxReader) Offset() int64 { return b.off }

// Next reads the next box. It returns io.EOF at a clean end between boxes.
// The memory of the box it returned before is released first.
func (b *BoxReader) Next() (Box, error) {
	b.Release()
	n, err := io.ReadFull(b.r, b.hdr[:8])
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Box{}, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Box{}, fmt.Errorf("box header at offset %d (%d of 8 bytes): %w", b.off, n, ErrTruncated)
		}
		return Box{}, fmt.Errorf("box header at offset %d: %w", b.off, err)
	}
	size := uint64(binary.BigEndian.Uint32(b.hdr[0:4]))
	typ := string(b.hdr[4:8])
	hl := 8
	switch size {
	case 0:
		return Box{}, fmt.Errorf("box %q at offset %d has size 0 (to end of file), not allowed in a stream: %w", printable(typ), b.off, ErrMalformed)
	case 1:
		if _, err := io.ReadFull(b.r, b.hdr[8:16]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = ErrTruncated
			}
			return Box{}, fmt.Errorf("large size of box %q at offset %d: %w", printable(typ), b.off, err)
		}
		size = binary.BigEndian.Uint64(b.hdr[8:16])
		hl = 16
	}
	if !validType(typ) {
		return Box{}, fmt.Errorf("box type %q at offset %d is not a four-character code: %w", printable(typ), b.off, ErrMalformed)
	}
	if size < uint64(hl) {
		return Box{}, fmt.Errorf("box %q at offset %d declares size %d below its header: %w", typ, b.off, size, ErrMalformed)
	}
	if size > b.max {
		return Box{}, fmt.Errorf("box %q at offset %d declares %d bytes, bound is %d: %w", typ, b.off, size, b.max, ErrBoxTooLarge)
	}
	if b.skip != nil && b.skip(typ) {
		b.inBox = true
		got, err := io.CopyN(io.Discard, b.r, int64(size)-int64(hl))
		b.inBox = false
		if err != nil {
			return Box{}, b.readErr(typ, size, uint64(hl)+uint64(got), err)
		}
		b.off += int64(size)
		return Box{Type: typ, Raw: append([]byte(nil), b.hdr[:hl]...), Size: size, Skipped: true}, nil
	}
	b.inBox = true
	raw, err := b.body(typ, size, hl)
	b.inBox = false
	if err != nil {
		return Box{}, err
	}
	b.off += int64(size)
	return Box{Type: typ, Raw: raw, Size: size}, nil
}

// body reads the rest of a box whose header (hl bytes) is in b.hdr. The
// bytes are read into chunks that start at firstChunk and double up to
// maxChunk as they arrive, each granted by the memory account first, and
// copied into one buffer of the box's size only once the whole box has
// arrived: a box that never completes costs the bytes that came, and no
// copy.
func (b *BoxReader) body(typ string, size uint64, hl int) ([]byte, error) {
	grow := func(n int) error {
		if b.mem == nil {
			return nil
		}
		if err := b.mem.Grow(n); err != nil {
			return fmt.Errorf("box %q at offset %d (%d bytes): %w", typ, b.off, size, err)
		}
		b.held += n
		return nil
	}
	if l, ok := b.r.(interface{ Len() int }); (ok && uint64(l.Len()) >= size-uint64(hl)) || size <= firstChunk {
		// Small, or from memory (a stored fragment): read in one piece.
		if err := grow(int(size)); err != nil {
			return nil, err
		}
		raw := make([]byte, size)
		copy(raw, b.hdr[:hl])
		if got, err := io.ReadFull(b.r, raw[hl:]); err != nil {
			return nil, b.readErr(typ, size, uint64(hl+got), err)
		}
		return raw, nil
	}
	var chunks [][]byte
	got, c := uint64(hl), firstChunk
	for got < size {
		n := int(min(uint64(c), size-got))
		if err := grow(n); err != nil {
			return nil, err
		}
		chunk := make([]byte, n)
		m, err := io.ReadFull(b.r, chunk)
		got += uint64(m)
		if err != nil {
			return nil, b.readErr(typ, size, got, err)
		}
		chunks = append(chunks, chunk)
		c = min(2*c, maxChunk)
	}
	if err := grow(int(size)); err != nil {
		return nil, err
	}
	raw := make([]byte, hl, size)
	copy(raw, b.hdr[:hl])
	for i, chunk := range chunks {
		raw = append(raw, chunk...)
		chunks[i] = nil
	}
	if b.mem != nil {
		// The chunks are garbage now: only the box is held.
		b.mem.Release(int(size) - hl)
		b.held -= int(size) - hl
	}
	return raw, nil
}

// readErr describes a box whose payload stopped at got of size bytes.
func (b *BoxReader) readErr(typ string, size, got uint64, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("box %q at offset %d: %d of %d bytes arrived: %w", typ, b.off, got, size, ErrTruncated)
	}
	return fmt.Errorf("box %q at offset %d: %w", typ, b.off, err)
}

// validType accepts printable ASCII four-character codes (and the © prefix
// used by QuickTime metadata).
func validType(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if (c < 0x20 || c > 0x7e) && c != 0xa9 {
			return false
		}
	}
	return true
}

func printable(t string) string {
	out := []byte(t)
	for i, c := range out {
		if c < 0x20 || c > 0x7e {
			out[i] = '?'
		}
	}
	return string(out)
}

// payload returns the bytes of a box after its header.
func payload(raw []byte) []byte {
	if len(raw) >= 16 && binary.BigEndian.Uint32(raw) == 1 {
		return raw[16:]
	}
	if len(raw) < 8 {
		return nil
	}
	return raw[8:]
}
