package texttrack

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// maxBoxesPerSample bounds the boxes read from one wvtt sample.
const maxBoxesPerSample = 1024

// Track is what converting a stored text track's fragments needs from its
// CMAF header.
type Track struct {
	Timescale   uint32
	SampleEntry string // wvtt, stpp, ...
	trex        *mp4.TrexBox
}

// ParseInit reads a text track's CMAF header (ftyp+moov with one trak).
func ParseInit(init []byte) (Track, error) {
	if len(init) > MaxInput {
		return Track{}, fmt.Errorf("text track header: %d bytes: %w", len(init), ErrTooLarge)
	}
	f, err := mp4.DecodeFileSR(bits.NewFixedSliceReader(init))
	if err != nil {
		return Track{}, fmt.Errorf("text track header: %w", err)
	}
	if f.Init == nil || f.Init.Moov == nil || len(f.Init.Moov.Traks) != 1 {
		return Track{}, fmt.Errorf("text track header: want a moov with one trak: %w", ErrSyntax)
	}
	trak := f.Init.Moov.Trak
	if trak.Mdia == nil || trak.Mdia.Mdhd == nil || trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil ||
		trak.Mdia.Minf.Stbl.Stsd == nil || len(trak.Mdia.Minf.Stbl.Stsd.Children) == 0 || trak.Mdia.Mdhd.Timescale == 0 {
		return Track{}, fmt.Errorf("text track header: incomplete trak: %w", ErrSyntax)
	}
	t := Track{Timescale: trak.Mdia.Mdhd.Timescale, SampleEntry: trak.Mdia.Minf.Stbl.Stsd.Children[0].Type()}
	if mv := f.Init.Moov.Mvex; mv != nil && mv.Trex != nil {
		t.trex = mv.Trex
	}
	return t, nil
}

// sample is one sample of a stored text fragment, in track ticks.
type sample struct {
	start, end uint64
	data       []byte
}

// samples decodes a stored fragment (moof+mdat) of the track.
func (t Track) samples(frag []byte) ([]sample, error) {
	if len(frag) > MaxInput {
		return nil, fmt.Errorf("text fragment: %d bytes: %w", len(frag), ErrTooLarge)
	}
	f, err := mp4.DecodeFileSR(bits.NewFixedSliceReader(frag))
	if err != nil {
		return nil, fmt.Errorf("text fragment: %w", err)
	}
	if len(f.Segments) != 1 || len(f.Segments[0].Fragments) != 1 {
		return nil, fmt.Errorf("text fragment: want one moof+mdat: %w", ErrSyntax)
	}
	fr := f.Segments[0].Fragments[0]
	if fr.Moof == nil || fr.Moof.Traf == nil || fr.Moof.Traf.Tfdt == nil {
		return nil, fmt.Errorf("text fragment: no tfdt: %w", ErrSyntax)
	}
	trex := t.trex
	if trex != nil {
		c := *trex
		c.TrackID = fr.Moof.Traf.Tfhd.TrackID
		trex = &c
	}
	if err := checkSamples(fr, trex); err != nil {
		return nil, err
	}
	fs, err := fr.GetFullSamples(trex)
	if err != nil {
		return nil, fmt.Errorf("text fragment samples: %w", err)
	}
	out := make([]sample, 0, len(fs))
	for _, s := range fs {
		st := uint64(max(s.PresentationTime(), 0))
		out = append(out, sample{start: st, end: st + uint64(s.Dur), data: s.Data})
	}
	return out, nil
}

// ticks converts track ticks to a duration without overflow.
func (t Track) ticks(x uint64) time.Duration {
	ts := uint64(t.Timescale)
	return time.Duration(x/ts)*time.Second + time.Duration(x%ts*uint64(time.Second)/ts)
}

// WvttCues decodes the cues of a stored wvtt fragment: every vttc box of
// every sample becomes a cue lasting the sample (vtte samples hold none);
// a cue that goes on in the next sample with the same identifier,
// settings and text is merged with it. Cue times are media times.
func (t Track) WvttCues(frag []byte) ([]Cue, error) {
	ss, err := t.samples(frag)
	if err != nil {
		return nil, err
	}
	var cues []Cue
	open := map[Cue]int{} // cue without times -> index of the cue that ends at the previous sample's end
	for _, s := range ss {
		next := map[Cue]int{}
		sr := bits.NewFixedSliceReader(s.data)
		for n := 0; sr.GetPos() < len(s.data); n++ {
			if n == maxBoxesPerSample {
				return nil, fmt.Errorf("wvtt sample: more than %d boxes: %w", maxBoxesPerSample, ErrTooLarge)
			}
			b, err := mp4.DecodeBoxSR(uint64(sr.GetPos()), sr)
			if err != nil {
				return nil, fmt.Errorf("wvtt sample: %w: %w", ErrSyntax, err)
			}
			vttc, ok := b.(*mp4.VttcBox)
			if !ok || vttc.Payl == nil {
				continue // vtte, vtta, unknown
			}
			key := Cue{Text: vttc.Payl.CueText}
			if vttc.Iden != nil {
				key.ID = vttc.Iden.CueID
			}
			if vttc.Sttg != nil {
				key.Settings = vttc.Sttg.Settings
			}
			if i, ok := open[key]; ok && cues[i].End == t.ticks(s.start) {
				cues[i].End = t.ticks(s.end)
				next[key] = i
				continue
			}
			if len(cues) == MaxCues {
				return nil, fmt.Errorf("wvtt fragment: more than %d cues: %w", MaxCues, ErrTooLarge)
			}
			c := key
			c.Start, c.End = t.ticks(s.start), t.ticks(s.end)
			next[key] = len(cues)
			cues = append(cues, c)
		}
		open = next
	}
	return cues, nil
}

// StppCues decodes the cues of a stored stpp (TTML/IMSC1) fragment: the
// paragraphs of each sample's document (ParseTTML), clipped to the
// sample's span (what a document shows outside it is not presented). The
// documents' times are media times (ISO/IEC 14496-30, DASH-IF); Smooth
// encoders write them relative to the sample's start instead, so a
// document none of whose paragraphs falls within its sample, but some
// would once shifted by the sample's start, is read as relative.
func (t Track) StppCues(frag []byte) ([]Cue, error) {
	ss, err := t.samples(frag)
	if err != nil {
		return nil, err
	}
	var cues []Cue
	for _, s := range ss {
		doc, err := ParseTTML(s.data)
		if err != nil {
			return nil, fmt.Errorf("stpp sample at %d: %w", s.start, err)
		}
		from, to := t.ticks(s.start), t.ticks(s.end)
		if relative(doc, from, to) {
			for i := range doc {
				doc[i].Start += from
				doc[i].End += from
			}
		}
		for _, c := range doc {
			c.Start, c.End = max(c.Start, from), min(c.End, to)
			if c.End <= c.Start {
				continue
			}
			if len(cues) == MaxCues {
				return nil, fmt.Errorf("stpp fragment: more than %d cues: %w", MaxCues, ErrTooLarge)
			}
			cues = append(cues, c)
		}
	}
	return cues, nil
}

// HasWebVTT reports whether fragments of a text track of this sample
// entry convert into WebVTT segments (Segment): wvtt and stpp.
func HasWebVTT(sampleEntry string) bool { return sampleEntry == "wvtt" || sampleEntry == "stpp" }

// Segment converts one stored fragment of a wvtt or stpp track into an
// HLS WebVTT segment (see WriteSegment) whose X-TIMESTAMP-MAP is at the
// fragment's start.
func Segment(init, frag []byte) ([]byte, error) {
	t, err := ParseInit(init)
	if err != nil {
		return nil, err
	}
	var cues []Cue
	switch t.SampleEntry {
	case "wvtt":
		cues, err = t.WvttCues(frag)
	case "stpp":
		cues, err = t.StppCues(frag)
	default:
		return nil, fmt.Errorf("text track of sample entry %q has no WebVTT form: %w", t.SampleEntry, ErrSyntax)
	}
	if err != nil {
		return nil, err
	}
	start, err := fragmentStart(frag)
	if err != nil {
		return nil, err
	}
	return WriteSegment(cues, t.ticks(start)), nil
}

// fragmentStart is the tfdt of a fragment.
func fragmentStart(frag []byte) (uint64, error) {
	f, err := mp4.DecodeFileSR(bits.NewFixedSliceReader(frag))
	if err != nil {
		return 0, fmt.Errorf("text fragment: %w", err)
	}
	if len(f.Segments) != 1 || len(f.Segments[0].Fragments) != 1 || f.Segments[0].Fragments[0].Moof.Traf.Tfdt == nil {
		return 0, fmt.Errorf("text fragment: no tfdt: %w", ErrSyntax)
	}
	return f.Segments[0].Fragments[0].Moof.Traf.Tfdt.BaseMediaDecodeTime(), nil
}

// WvttSamples builds the wvtt samples (ISO/IEC 14496-30) that cover the
// media time [from, to) in the given timescale: the span is cut at every
// cue start and end inside it; each piece is one sample holding a vttc box
// per cue active over it (in cue order), or a vtte box when none is. Cues
// are clipped to the span. The samples' durations add up to exactly the
// span (rounded to ticks), so that consecutive fragments built from
// adjacent spans leave no gap.
func WvttSamples(cues []Cue, from, to time.Duration, timescale uint32) []mp4.FullSample {
	tick := func(d time.Duration) uint64 {
		if d < 0 {
			d = 0
		}
		ts := uint64(timescale)
		n := uint64(d)
		return n/uint64(time.Second)*ts + n%uint64(time.Second)*ts/uint64(time.Second)
	}
	a, z := tick(from), tick(to)
	if z <= a {
		return nil
	}
	cuts := []uint64{a, z}
	for _, c := range cues {
		for _, x := range []uint64{tick(c.Start), tick(c.End)} {
			if x > a && x < z {
				cuts = append(cuts, x)
			}
		}
	}
	sort.Slice(cuts, func(i, j int) bool { return cuts[i] < cuts[j] })
	var out []mp4.FullSample
	for i := 0; i+1 < len(cuts); i++ {
		s, e := cuts[i], cuts[i+1]
		if e == s {
			continue
		}
		var buf bytes.Buffer
		for _, c := range cues {
			if tick(c.Start) <= s && tick(c.End) >= e && tick(c.End) > tick(c.Start) {
				v := &mp4.VttcBox{}
				if c.ID != "" {
					v.AddChild(&mp4.IdenBox{CueID: c.ID})
				}
				if c.Settings != "" {
					v.AddChild(&mp4.SttgBox{Settings: c.Settings})
				}
				v.AddChild(&mp4.PaylBox{CueText: c.Text})
				_ = v.Encode(&buf)
			}
		}
		if buf.Len() == 0 {
			_ = (&mp4.VtteBox{}).Encode(&buf)
		}
		out = append(out, mp4.FullSample{
			Sample:     mp4.Sample{Dur: uint32(e - s), Size: uint32(buf.Len()), Flags: mp4.SyncSampleFlags},
			DecodeTime: s,
			Data:       buf.Bytes(),
		})
	}
	return out
}

// checkSamples verifies that the samples every trun of a fragment
// describes lie within its mdat (mp4ff reads them unchecked).
func checkSamples(fr *mp4.Fragment, trex *mp4.TrexBox) error {
	if fr.Mdat == nil || len(fr.Moof.Trafs) != 1 || fr.Moof.Traf.Tfhd == nil {
		return fmt.Errorf("text fragment: want one traf and an mdat: %w", ErrSyntax)
	}
	traf := fr.Moof.Traf
	if traf.Tfhd.HasBaseDataOffset() {
		return fmt.Errorf("text fragment: explicit base_data_offset: %w", ErrSyntax)
	}
	payload := uint64(len(fr.Mdat.Data))
	start := fr.Mdat.PayloadAbsoluteOffset()
	for _, trun := range traf.Truns {
		off := fr.Moof.StartPos
		if trun.HasDataOffset() {
			o := int64(off) + int64(trun.DataOffset)
			if o < int64(start) {
				return fmt.Errorf("text fragment: data offset before the mdat: %w", ErrSyntax)
			}
			off = uint64(o)
		} else if len(traf.Truns) > 1 {
			return fmt.Errorf("text fragment: several truns without data offsets: %w", ErrSyntax)
		} else {
			off = start
		}
		if off < start {
			return fmt.Errorf("text fragment: data offset before the mdat: %w", ErrSyntax)
		}
		end := off - start
		t := *trun
		t.Samples = append([]mp4.Sample(nil), trun.Samples...)
		t.AddSampleDefaultValues(traf.Tfhd, trex)
		for _, smp := range t.Samples {
			end += uint64(smp.Size)
			if end > payload {
				return fmt.Errorf("text fragment: samples beyond the mdat: %w", ErrSyntax)
			}
		}
	}
	return nil
}
