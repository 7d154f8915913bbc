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

// Box is one top-level box read from a stream: its four-character type and
// its complete bytes, header included.
type Box struct {
	Type string
	Raw  []byte
}

// BoxReader reads complete top-level boxes from a byte stream whose chunk
// boundaries have nothing to do with box boundaries (an HTTP chunked body).
// Every box is bounded by Max bytes.
type BoxReader struct {
	r   io.Reader
	max uint64
	off int64
	hdr [16]byte
}

// NewBoxReader returns a reader of boxes from r; no box may exceed max bytes.
func NewBoxReader(r io.Reader, max uint64) *BoxReader {
	return &BoxReader{r: r, max: max}
}

// Offset is the number of bytes consumed so far.
func (b *BoxReader) Offset() int64 { return b.off }

// Next reads the next box. It returns io.EOF at a clean end between boxes.
func (b *BoxReader) Next() (Box, error) {
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
			return Box{}, fmt.Errorf("large size of box %q at offset %d: %w", printable(typ), b.off, ErrTruncated)
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
	raw := make([]byte, size)
	copy(raw, b.hdr[:hl])
	got, err := io.ReadFull(b.r, raw[hl:])
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Box{}, fmt.Errorf("box %q at offset %d: %d of %d bytes arrived: %w", typ, b.off, hl+got, size, ErrTruncated)
		}
		return Box{}, fmt.Errorf("box %q at offset %d: %w", typ, b.off, err)
	}
	b.off += int64(size)
	return Box{Type: typ, Raw: raw}, nil
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
