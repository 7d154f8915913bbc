package player

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Low-latency playback adds media to the buffer chunk by chunk as it
// arrives (a CMAF chunk is a moof+mdat; a growing LL-DASH segment is
// several), so it needs each chunk's duration: the sample durations of its
// trun boxes (tfhd, else the init segment's trex, supplying the default) in
// the track's timescale (the init segment's mdhd).

// trackTiming is the timing an init segment gives its (first) track.
type trackTiming struct {
	timescale  uint32
	defaultDur uint32 // trex default_sample_duration
}

// parseTrackTiming reads the timescale and default sample duration of the
// first track of an init segment.
func parseTrackTiming(init []byte) (trackTiming, error) {
	f, err := mp4.DecodeFile(bytes.NewReader(init))
	if err != nil {
		return trackTiming{}, fmt.Errorf("init segment: %w", err)
	}
	if f.Init == nil || f.Init.Moov == nil || f.Init.Moov.Trak == nil || f.Init.Moov.Trak.Mdia == nil ||
		f.Init.Moov.Trak.Mdia.Mdhd == nil || f.Init.Moov.Trak.Mdia.Mdhd.Timescale == 0 {
		return trackTiming{}, errors.New("init segment: no track timescale")
	}
	tt := trackTiming{timescale: f.Init.Moov.Trak.Mdia.Mdhd.Timescale}
	if mv := f.Init.Moov.Mvex; mv != nil && mv.Trex != nil {
		tt.defaultDur = mv.Trex.DefaultSampleDuration
	}
	return tt, nil
}

// chunkDuration is the media duration of the moof boxes in chunk (one
// CMAF chunk, or several, or a whole fragment).
func (tt trackTiming) chunkDuration(chunk []byte) (time.Duration, error) {
	if tt.timescale == 0 {
		return 0, errors.New("no timescale")
	}
	var ticks uint64
	for off := 0; off+8 <= len(chunk); {
		size, typ, hdr := boxHeader(chunk[off:])
		if size < uint64(hdr) || uint64(off)+size > uint64(len(chunk)) {
			return 0, errors.New("truncated box")
		}
		if typ == "moof" {
			b, err := mp4.DecodeBox(0, bytes.NewReader(chunk[off:off+int(size)]))
			if err != nil {
				return 0, fmt.Errorf("moof: %w", err)
			}
			moof, ok := b.(*mp4.MoofBox)
			if !ok || moof.Traf == nil {
				return 0, errors.New("moof without traf")
			}
			def := tt.defaultDur
			if tf := moof.Traf.Tfhd; tf != nil && tf.HasDefaultSampleDuration() {
				def = tf.DefaultSampleDuration
			}
			for _, tr := range moof.Traf.Truns {
				ticks += tr.Duration(def)
			}
		}
		off += int(size)
	}
	return time.Duration(ticks * uint64(time.Second) / uint64(tt.timescale)), nil
}

// boxHeader reads an ISOBMFF box header: the box size (0 when it runs to
// the end, as the caller must check), its type and the header length.
func boxHeader(b []byte) (size uint64, typ string, hdr int) {
	size = uint64(binary.BigEndian.Uint32(b))
	typ = string(b[4:8])
	hdr = 8
	if size == 1 && len(b) >= 16 {
		size = binary.BigEndian.Uint64(b[8:16])
		hdr = 16
	}
	return size, typ, hdr
}

// readChunks reads a body of ISOBMFF boxes as it arrives and calls fn with
// each chunk the moment its mdat is complete: the boxes since the previous
// chunk (styp, prft, moof, mdat ...), and how long the chunk took to
// arrive from its first byte (its burst: a growing body idles between
// chunks, which says nothing about the network). It returns the whole body
// (at most limit bytes), which the caller checks as a fragment.
func readChunks(r io.Reader, limit int64, fn func(chunk []byte, burst time.Duration)) ([]byte, error) {
	var data []byte
	from := 0 // start of the chunk being read
	var first time.Time
	var hdr [16]byte
	for {
		if _, err := io.ReadFull(r, hdr[:1]); err != nil {
			if errors.Is(err, io.EOF) {
				return data, nil
			}
			return data, err
		}
		if len(data) == from {
			first = time.Now()
		}
		if _, err := io.ReadFull(r, hdr[1:8]); err != nil {
			return data, fmt.Errorf("box header: %w", err)
		}
		n := 8
		size := uint64(binary.BigEndian.Uint32(hdr[:4]))
		if size == 1 {
			if _, err := io.ReadFull(r, hdr[8:16]); err != nil {
				return data, err
			}
			n = 16
			size = binary.BigEndian.Uint64(hdr[8:16])
		}
		if size < uint64(n) {
			return data, fmt.Errorf("%w: box %q of size %d", errNotMedia, hdr[4:8], size)
		}
		if int64(len(data))+int64(size) > limit {
			return data, fmt.Errorf("body larger than %d bytes", limit)
		}
		data = append(data, hdr[:n]...)
		start := len(data)
		data = append(data, make([]byte, size-uint64(n))...)
		if _, err := io.ReadFull(r, data[start:]); err != nil {
			return data[:start], err
		}
		if string(hdr[4:8]) == "mdat" {
			fn(data[from:], time.Since(first))
			from = len(data)
		}
	}
}
