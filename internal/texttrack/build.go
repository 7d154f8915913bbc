package texttrack

import (
	"bytes"
	"fmt"

	"github.com/Eyevinn/mp4ff/mp4"
)

// RoleScheme is the scheme of the DASH role a text track's kind box
// carries (ISO/IEC 14496-12 8.10.4; DASH 5.8.5.5).
const RoleScheme = "urn:mpeg:dash:role:2011"

// WvttInit returns a CMAF header (ftyp+moov) of one wvtt track with
// track_ID 1, the given timescale and language (BCP 47: a three-letter
// code goes into mdhd, any other into an elng box) and, when role is not
// empty, a kind box of RoleScheme naming it (subtitle, caption, ...).
func WvttInit(timescale uint32, lang, role string) ([]byte, error) {
	if lang == "" {
		lang = "und"
	}
	init := mp4.CreateEmptyInit()
	trak := init.AddEmptyTrack(timescale, "wvtt", lang)
	if err := trak.SetWvttDescriptor("WEBVTT"); err != nil {
		return nil, fmt.Errorf("wvtt header: %w", err)
	}
	if role != "" {
		udta := &mp4.UdtaBox{}
		udta.AddChild(&mp4.KindBox{SchemeURI: RoleScheme, Value: role})
		trak.AddChild(udta)
	}
	var buf bytes.Buffer
	if err := init.Encode(&buf); err != nil {
		return nil, fmt.Errorf("wvtt header: %w", err)
	}
	return buf.Bytes(), nil
}

// StppInit returns the CMAF header (ftyp+moov) of a TTML/IMSC1 (stpp)
// track: track_ID 1, the given timescale and language (as WvttInit), the
// TTML namespace.
func StppInit(timescale uint32, lang string) ([]byte, error) {
	if lang == "" {
		lang = "und"
	}
	init := mp4.CreateEmptyInit()
	trak := init.AddEmptyTrack(timescale, "subtitle", lang)
	if err := trak.SetStppDescriptor("http://www.w3.org/ns/ttml", "", ""); err != nil {
		return nil, fmt.Errorf("stpp header: %w", err)
	}
	var buf bytes.Buffer
	if err := init.Encode(&buf); err != nil {
		return nil, fmt.Errorf("stpp header: %w", err)
	}
	return buf.Bytes(), nil
}

// Fragment returns one fragment (moof+mdat) of track 1 holding samples
// (whose DecodeTime values must follow one another: the first one's is the
// tfdt).
func Fragment(seq uint32, samples []mp4.FullSample) ([]byte, error) {
	return trackFragment(seq, 1, samples)
}

// trackFragment is Fragment for track trackID.
func trackFragment(seq, trackID uint32, samples []mp4.FullSample) ([]byte, error) {
	f, err := mp4.CreateFragment(seq, trackID)
	if err != nil {
		return nil, err
	}
	for _, s := range samples {
		f.AddFullSample(s)
	}
	var buf bytes.Buffer
	if err := f.Encode(&buf); err != nil {
		return nil, fmt.Errorf("text fragment: %w", err)
	}
	return buf.Bytes(), nil
}
