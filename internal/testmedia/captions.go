package testmedia

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/Eyevinn/mp4ff/sei"
)

// CaptionText is the caption AddCaptions shows in every caption period: n
// is the period's number from the start of the body.
func CaptionText(n int) string { return fmt.Sprintf("CAPTION %d", n) }

// parity608 sets the odd parity bit of a CEA-608 byte.
func parity608(b byte) byte {
	b &= 0x7f
	ones := 0
	for x := b; x != 0; x >>= 1 {
		ones += int(x & 1)
	}
	if ones%2 == 0 {
		b |= 0x80
	}
	return b
}

// pop608 returns the CEA-608 byte pairs (parity set) of a pop-on caption on
// CC1 (field 1, channel 1): resume caption loading, erase non-displayed
// memory, a preamble for row 15, the text, end of caption — each control
// code sent twice, as CEA-608 asks.
func pop608(text string) [][2]byte {
	ctl := func(a, b byte) [][2]byte { return [][2]byte{{a, b}, {a, b}} }
	var out [][2]byte
	out = append(out, ctl(0x14, 0x20)...) // RCL
	out = append(out, ctl(0x14, 0x2e)...) // ENM
	out = append(out, ctl(0x14, 0x70)...) // PAC row 15, white
	t := []byte(text)
	for i := 0; i < len(t); i += 2 {
		p := [2]byte{t[i], 0}
		if i+1 < len(t) {
			p[1] = t[i+1]
		}
		out = append(out, p)
	}
	out = append(out, ctl(0x14, 0x2f)...) // EOC
	for i := range out {
		out[i] = [2]byte{parity608(out[i][0]), parity608(out[i][1])}
	}
	return out
}

// eraseDisplayed608 is the pair of the CEA-608 command that clears the
// caption on screen (EDM on CC1), parity set.
var eraseDisplayed608 = [2]byte{parity608(0x14), parity608(0x2c)}

// ccData builds a cc_data() structure (CTA-708-E 4.3) of one field-1 pair
// (or padding when p is nil).
func ccData(p *[2]byte) []byte {
	out := []byte{0x40 | 0x80 | 1, 0xff} // reserved, process_cc_data_flag, cc_count 1; em_data
	if p == nil {
		return append(out, 0xf8, 0x80, 0x80, 0xff) // cc_valid 0, marker byte
	}
	return append(out, 0xfc, p[0], p[1], 0xff) // cc_valid 1, cc_type 0 (field 1); marker byte
}

// AddCaptions returns a fragmented MP4 body (ftyp, moov, then moof+mdat
// pairs, one H.264 or HEVC track with 4-byte NAL unit lengths, such as
// ffmpeg's CMAF output) with CEA-608 captions on CC1 in the SEI of every
// sample (ATSC A/53: user_data_registered_itu_t_t35, GA94, cc_data), the
// SEI NAL unit placed first in each sample and the caption bytes in the
// pictures' presentation order: every period seconds of media time,
// starting at the body's first picture, a pop-on caption
// CaptionText(n) that is shown until 0.8 of the period has passed, then
// erased. The fragments keep their times, sample flags and composition
// offsets, and an mfra at the end stays (the end of an ingest stream);
// styp and other top-level boxes between fragments are dropped. lang, when
// not empty, becomes the track's language (mdhd).
func AddCaptions(body []byte, period float64, lang string) ([]byte, error) {
	f, err := mp4.DecodeFile(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if f.Init == nil || len(f.Init.Moov.Traks) != 1 {
		return nil, errors.New("want one track with an init segment")
	}
	trak := f.Init.Moov.Trak
	stsd := trak.Mdia.Minf.Stbl.Stsd
	isHEVC := stsd.HvcX != nil
	if stsd.AvcX == nil && !isHEVC {
		return nil, errors.New("want an H.264 or HEVC track")
	}
	if lang != "" {
		trak.Mdia.Mdhd.SetLanguage(lang)
	}
	timescale := float64(trak.Mdia.Mdhd.Timescale)
	var trex *mp4.TrexBox
	if f.Init.Moov.Mvex != nil {
		trex = f.Init.Moov.Mvex.Trex
	}
	var out bytes.Buffer
	if err := f.Init.Encode(&out); err != nil {
		return nil, err
	}
	first, started := int64(0), false
	var pending [][2]byte
	cur := -1
	erased := true
	for _, seg := range f.Segments {
		for _, fr := range seg.Fragments {
			ss, err := fr.GetFullSamples(trex)
			if err != nil {
				return nil, err
			}
			nf, err := mp4.CreateFragment(fr.Moof.Mfhd.SequenceNumber, fr.Moof.Traf.Tfhd.TrackID)
			if err != nil {
				return nil, err
			}
			// The caption bytes go with the pictures in presentation
			// order (a decoder hands them on as it outputs the pictures).
			order := make([]int, len(ss))
			for i := range order {
				order[i] = i
			}
			slices.SortStableFunc(order, func(a, b int) int {
				return cmp.Compare(ss[a].PresentationTime(), ss[b].PresentationTime())
			})
			pairs := make([]*[2]byte, len(ss))
			for _, i := range order {
				if !started {
					first, started = int64(ss[i].PresentationTime()), true
				}
				t := float64(int64(ss[i].PresentationTime())-first) / timescale
				n := int(t / period)
				if n != cur {
					cur, pending, erased = n, pop608(CaptionText(n)), false
				}
				switch {
				case len(pending) > 0:
					pairs[i], pending = &pending[0], pending[1:]
				case !erased && t-float64(n)*period >= 0.8*period:
					p := eraseDisplayed608
					pairs[i], erased = &p, true
				}
			}
			for i, s := range ss {
				msg := sei.CreateCTA608SEIMessage(ccData(pairs[i]))
				var nalu []byte
				if isHEVC {
					nalu, err = hevc.CreateSEINalu([]sei.SEIMessage{msg})
				} else {
					nalu, err = avc.CreateSEINalu([]sei.SEIMessage{msg})
				}
				if err != nil {
					return nil, err
				}
				data := make([]byte, 0, 4+len(nalu)+len(s.Data))
				data = append(data, byte(len(nalu)>>24), byte(len(nalu)>>16), byte(len(nalu)>>8), byte(len(nalu)))
				data = append(data, nalu...)
				s.Data = append(data, s.Data...)
				s.Size = uint32(len(s.Data))
				nf.AddFullSample(s)
			}
			if err := nf.Encode(&out); err != nil {
				return nil, err
			}
		}
	}
	if f.Mfra != nil {
		if err := f.Mfra.Encode(&out); err != nil {
			return nil, err
		}
	}
	return out.Bytes(), nil
}
