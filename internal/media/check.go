package media

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ParseCMAFHeader parses a stored track header (what a sender receives as
// a track's init segment): boxes up to a moov, an ftyp before it. Only
// ftyp, styp, free, skip, uuid and sidx boxes may precede the moov, and
// nothing may follow it.
func ParseCMAFHeader(raw []byte) (*Header, error) {
	return parseHeaderBoxes(raw, true)
}

// ParseStoredHeader parses a header as a store keeps it (ftyp, the live
// server manifest uuid, moov): it reads the boxes up to the moov, skips
// those it does not use and reads nothing after the moov.
func ParseStoredHeader(raw []byte) (*Header, error) {
	return parseHeaderBoxes(raw, false)
}

// parseHeaderBoxes reads raw up to its moov and parses the header of its
// ftyp, live server manifest and moov. strict is ParseCMAFHeader's check of
// what may stand around the moov.
func parseHeaderBoxes(raw []byte, strict bool) (*Header, error) {
	br := NewBoxReader(bytes.NewReader(raw), uint64(len(raw)))
	var ftyp, smil []byte
	for {
		b, err := br.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("header without moov")
			}
			return nil, err
		}
		switch b.Type {
		case "ftyp":
			ftyp = b.Raw
		case "uuid":
			if UUIDOf(b.Raw) == UUIDLiveServerManifest {
				smil = b.Raw
			}
		case "styp", "free", "skip":
		case "moov":
			if !strict {
				return ParseHeader(ftyp, smil, b.Raw)
			}
			if ftyp == nil {
				return nil, errors.New("header without ftyp before its moov")
			}
			h, err := ParseHeader(ftyp, smil, b.Raw)
			if err != nil {
				return nil, err
			}
			if _, err := br.Next(); !errors.Is(err, io.EOF) {
				return nil, errors.New("boxes after the moov of a header")
			}
			return h, nil
		default:
			if strict {
				return nil, fmt.Errorf("unexpected %q box in a header", b.Type)
			}
		}
	}
}

// CheckFragment checks that data is exactly one fragment (moof+mdat) whose
// samples fit its mdat, and returns its timing. h, when not nil, is the
// track's header: the fragment must be of one of its tracks and is timed
// with its trex defaults.
func CheckFragment(data []byte, h *Header) (FragInfo, error) {
	if !IsComplete(data) {
		return FragInfo{}, errors.New("not one complete moof+mdat")
	}
	moof, off, err := SplitFragment(data)
	if err != nil {
		return FragInfo{}, err
	}
	m, err := DecodeMoof(moof)
	if err != nil {
		return FragInfo{}, err
	}
	mdat := uint64(len(data) - off)
	var fi FragInfo
	if h != nil {
		id := m.Traf.Tfhd.TrackID
		if _, ok := h.Track(id); !ok {
			return fi, fmt.Errorf("fragment of track_ID %d, the track's header has no such track", id)
		}
		fi, err = m.Inspect(h.Trex(id), mdat)
	} else {
		fi, err = m.Inspect(nil, mdat)
	}
	return fi, err
}
