package mp4src

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// UUIDLiveServerManifest is the user type of the Smooth Streaming
// LiveServerManifestBox (MS-SSTR 2.2.7.3), as 16 bytes.
var UUIDLiveServerManifest = [16]byte{0xa5, 0xd4, 0x0b, 0x30, 0xe8, 0x14, 0x11, 0xdd, 0xba, 0x2f, 0x08, 0x00, 0x20, 0x0c, 0x9a, 0x66}

// Sample flags (ISO/IEC 14496-12 8.8.3.1).
const (
	flagsSync    = 0x02000000 // sample_depends_on=2 (an I picture)
	flagsNonSync = 0x01010000 // sample_depends_on=1, sample_is_non_sync_sample
)

// buildHeader encodes ftyp, the LiveServerManifestBox and the fragmented moov.
func (s *Source) buildHeader() ([]byte, error) {
	var buf bytes.Buffer
	ftyp := mp4.NewFtyp("isml", 1, []string{"isml", "piff", "iso6"})
	if err := ftyp.Encode(&buf); err != nil {
		return nil, fmt.Errorf("encode ftyp: %w", err)
	}
	buf.Write(s.manifestBox())
	moov, err := s.moov()
	if err != nil {
		return nil, err
	}
	if err := moov.Encode(&buf); err != nil {
		return nil, fmt.Errorf("encode moov: %w", err)
	}
	return buf.Bytes(), nil
}

// manifestBox is the LiveServerManifestBox: a uuid box holding a SMIL 2.0
// document with one entry per track, laid out as ffmpeg's ismv muxer does.
func (s *Source) manifestBox() []byte {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n")
	b.WriteString("<smil xmlns=\"http://www.w3.org/2001/SMIL20/Language\">\n<head>\n")
	b.WriteString("<meta name=\"creator\" content=\"sluice\" />\n</head>\n<body>\n<switch>\n")
	for _, t := range s.tracks {
		in := t.info
		fmt.Fprintf(&b, "<%s systemBitrate=\"%d\">\n", in.Kind, in.Bitrate)
		param := func(name, value string) {
			b.WriteString("<param name=\"")
			b.WriteString(name)
			b.WriteString("\" value=\"")
			_ = xml.EscapeText(&b, []byte(value))
			b.WriteString("\" valuetype=\"data\"/>\n")
		}
		param("systemBitrate", strconv.Itoa(in.Bitrate))
		param("trackID", strconv.FormatUint(uint64(in.TrackID), 10))
		param("systemLanguage", in.Language)
		param("trackName", in.Name)
		if in.Kind == "video" {
			param("CodecPrivateData", in.CodecPrivateData)
			param("FourCC", in.FourCC)
			param("MaxWidth", strconv.Itoa(in.Width))
			param("MaxHeight", strconv.Itoa(in.Height))
			param("DisplayWidth", strconv.Itoa(in.Width))
			param("DisplayHeight", strconv.Itoa(in.Height))
		} else {
			param("FourCC", in.FourCC)
			param("CodecPrivateData", in.CodecPrivateData)
			param("AudioTag", "255")
			param("Channels", strconv.Itoa(in.Channels))
			param("SamplingRate", strconv.Itoa(in.SampleRate))
			param("BitsPerSample", "16")
			param("PacketSize", strconv.Itoa(in.Channels*2))
		}
		fmt.Fprintf(&b, "</%s>\n", in.Kind)
	}
	b.WriteString("</switch>\n</body>\n</smil>\n")
	doc := b.String()
	out := make([]byte, 8, 8+16+4+len(doc))
	binary.BigEndian.PutUint32(out, uint32(cap(out)))
	copy(out[4:], "uuid")
	out = append(out, UUIDLiveServerManifest[:]...)
	out = append(out, 0, 0, 0, 0) // version 0, flags 0
	return append(out, doc...)
}

// moov builds the fragmented movie header: one trak per track (no samples),
// mvex with a trex per track.
func (s *Source) moov() (*mp4.MoovBox, error) {
	moov := mp4.NewMoovBox()
	mvhd := mp4.CreateMvhd()
	mvhd.Timescale = 1000
	mvhd.NextTrackID = uint32(len(s.tracks) + 1)
	moov.AddChild(mvhd)
	for _, t := range s.tracks {
		in := t.info
		trak := mp4.CreateEmptyTrak(in.TrackID, in.Timescale, in.Kind, in.Language)
		btrt := &mp4.BtrtBox{MaxBitrate: uint32(in.MaxBitrate), AvgBitrate: uint32(in.Bitrate)}
		switch {
		case t.entry != nil:
			if in.Kind == "video" {
				trak.Tkhd.Width = mp4.Fixed32(uint32(in.Width) << 16)
				trak.Tkhd.Height = mp4.Fixed32(uint32(in.Height) << 16)
			}
			trak.Mdia.Minf.Stbl.Stsd.AddChild(t.entry)
		case in.Kind == "video":
			trak.Tkhd.Width = mp4.Fixed32(uint32(in.Width) << 16)
			trak.Tkhd.Height = mp4.Fixed32(uint32(in.Height) << 16)
			se := mp4.CreateVisualSampleEntryBox("avc1", uint16(in.Width), uint16(in.Height), t.avcC)
			se.CompressorName = ""
			if t.pasp != nil {
				se.AddChild(t.pasp)
			}
			se.AddChild(btrt)
			trak.Mdia.Minf.Stbl.Stsd.AddChild(se)
		case in.Kind == "audio":
			if in.SampleRate > 0xffff {
				return nil, fmt.Errorf("track %d: sample rate %d does not fit an mp4a sample entry: %w", in.SourceID, in.SampleRate, ErrUnsupported)
			}
			esds := mp4.CreateEsdsBox(t.asc)
			esds.DecConfigDescriptor.AvgBitrate = uint32(in.Bitrate)
			esds.DecConfigDescriptor.MaxBitrate = uint32(in.MaxBitrate)
			se := mp4.CreateAudioSampleEntryBox("mp4a", uint16(in.Channels), 16, uint16(in.SampleRate), esds)
			se.AddChild(btrt)
			trak.Mdia.Minf.Stbl.Stsd.AddChild(se)
		}
		moov.AddChild(trak)
	}
	mvex := mp4.NewMvexBox()
	for _, t := range s.tracks {
		mvex.AddChild(mp4.CreateTrex(t.info.TrackID))
	}
	moov.AddChild(mvex)
	return moov, nil
}

// sequence is the mfhd sequence number of track index ti in period i at
// offset: one counter shared by all tracks, derived from the absolute period
// number so that it depends only on the time.
func (s *Source) sequence(offset int64, i, ti int) uint32 {
	period := floorDiv(offset, s.LoopTicks())*int64(s.Periods()) + int64(i)
	return uint32(period*int64(len(s.tracks)) + int64(ti) + 1)
}

// fragment encodes the moof+mdat of track t for period i at offset, or
// returns nil when the track has no sample in that period.
func (s *Source) fragment(t *track, ti int, offset int64, i int) ([]byte, error) {
	ts, rts := int64(t.info.Timescale), int64(s.Timescale())
	passStart := MulDivRound(offset, ts, rts)
	var (
		base, dur int64
		samples   []mp4.Sample
		picks     []int // input sample per output sample
	)
	if t.info.Kind == "video" {
		first, last, start, end := s.span(t, 0, i)
		base, dur = passStart+start, end-start
		samples = make([]mp4.Sample, 0, last-first)
		picks = make([]int, 0, last-first)
		for j := first; j < last; j++ {
			sm := t.samples[j]
			flags := uint32(flagsNonSync)
			if sm.sync {
				flags = flagsSync
			}
			samples = append(samples, mp4.Sample{Flags: flags, Dur: sm.dur, Size: sm.size, CompositionTimeOffset: sm.cto})
			picks = append(picks, j)
		}
	} else {
		_, n, start, end := s.span(t, offset, i)
		if n <= 0 {
			return nil, nil
		}
		base, dur = start, end-start
		samples = make([]mp4.Sample, 0, n)
		picks = make([]int, 0, n)
		for m := 0; m < n; m++ {
			j := t.audioFrame(start+int64(m)*t.frame, passStart)
			samples = append(samples, mp4.Sample{Flags: flagsSync, Dur: uint32(t.frame), Size: t.samples[j].size})
			picks = append(picks, j)
		}
	}
	if base < 0 {
		return nil, fmt.Errorf("track %d period %d starts at negative time %d", t.info.TrackID, i, base)
	}
	return s.encodeFragment(t, s.sequence(offset, i, ti), base, dur, samples, picks, i)
}

// chunks returns the fragment of track t for period i (as fragment does)
// cut into CMAF chunks of chunk seconds of the period (the last of them
// ending with the period): chunk k holds the samples that start in
// [k*chunk, (k+1)*chunk) from the period's start, each chunk a moof+mdat
// of its own with its own tfdt and tfxd. A chunk without samples is nil.
func (s *Source) chunks(t *track, ti int, offset int64, i int, chunk time.Duration) ([][]byte, error) {
	whole, err := s.fragment(t, ti, offset, i)
	if err != nil || whole == nil {
		return nil, err
	}
	f, err := mp4.DecodeFile(bytes.NewReader(whole))
	if err != nil || len(f.Segments) == 0 || len(f.Segments[0].Fragments) == 0 {
		return nil, fmt.Errorf("track %d period %d: re-read fragment: %v", t.info.TrackID, i, err)
	}
	frag := f.Segments[0].Fragments[0]
	full, err := frag.GetFullSamples(&mp4.TrexBox{TrackID: t.info.TrackID})
	if err != nil {
		return nil, fmt.Errorf("track %d period %d: %w", t.info.TrackID, i, err)
	}
	if len(full) == 0 {
		return nil, nil
	}
	step := DurationToTicks(chunk, t.info.Timescale)
	if step <= 0 {
		step = 1
	}
	base := int64(full[0].DecodeTime)
	var out [][]byte
	for k := 0; k < len(full); {
		n := (int64(full[k].DecodeTime) - base) / step
		j := k
		for j < len(full) && (int64(full[j].DecodeTime)-base)/step == n {
			j++
		}
		for int64(len(out)) < n {
			out = append(out, nil)
		}
		group := full[k:j]
		samples := make([]mp4.Sample, len(group))
		var dur int64
		for m, fs := range group {
			samples[m] = fs.Sample
			dur += int64(fs.Dur)
		}
		b, err := s.encodeChunk(t, s.sequence(offset, i, ti), int64(group[0].DecodeTime), dur, group, samples)
		if err != nil {
			return nil, fmt.Errorf("track %d period %d chunk %d: %w", t.info.TrackID, i, n, err)
		}
		out = append(out, b)
		k = j
	}
	return out, nil
}

// encodeChunk writes one moof+mdat of samples whose data is in group.
func (s *Source) encodeChunk(t *track, seq uint32, base, dur int64, group []mp4.FullSample, samples []mp4.Sample) ([]byte, error) {
	moof, trun, err := s.moof(t, seq, base, dur, samples)
	if err != nil {
		return nil, err
	}
	out, mdat, err := encodeMoof(moof, trun, payloadSize(samples))
	if err != nil {
		return nil, err
	}
	for _, fs := range group {
		mdat = mdat[copy(mdat, fs.Data):]
	}
	return out, nil
}

// encodeFragment writes one moof+mdat of the picked input samples.
func (s *Source) encodeFragment(t *track, seq uint32, base, dur int64, samples []mp4.Sample, picks []int, i int) ([]byte, error) {
	moof, trun, err := s.moof(t, seq, base, dur, samples)
	if err != nil {
		return nil, err
	}
	payload := payloadSize(samples)
	if payload > 0xffffffff-8 {
		return nil, fmt.Errorf("track %d period %d: %d bytes of samples do not fit one mdat", t.info.TrackID, i, payload)
	}
	out, mdat, err := encodeMoof(moof, trun, payload)
	if err != nil {
		return nil, err
	}
	if err := s.readSamples(t, picks, mdat); err != nil {
		return nil, fmt.Errorf("track %d period %d: %w", t.info.TrackID, i, err)
	}
	return out, nil
}

// moof builds the moof of a fragment or chunk of track t.
func (s *Source) moof(t *track, seq uint32, base, dur int64, samples []mp4.Sample) (*mp4.MoofBox, *mp4.TrunBox, error) {
	moof := &mp4.MoofBox{}
	_ = moof.AddChild(mp4.CreateMfhd(seq))
	traf := &mp4.TrafBox{}
	_ = moof.AddChild(traf)
	tfhd := mp4.CreateTfhd(t.info.TrackID) // default-base-is-moof
	trun := mp4.CreateTrun(0)              // version 1: signed composition offsets
	if t.info.Kind == "audio" {
		tfhd.Flags |= mp4.TfhdDefaultSampleFlagsPresentFlag
		tfhd.DefaultSampleFlags = flagsSync
		trun.Flags = mp4.TrunDataOffsetPresentFlag | mp4.TrunSampleDurationPresentFlag | mp4.TrunSampleSizePresentFlag
	}
	_ = traf.AddChild(tfhd)
	if !s.opts.OmitTfdt {
		tfdt := mp4.CreateTfdt(uint64(base))
		tfdt.Version = 1
		_ = traf.AddChild(tfdt)
	}
	trun.AddSamples(samples)
	_ = traf.AddChild(trun)
	tfxd := mp4.NewTfxdBox(uint64(base), uint64(dur))
	tfxd.Tfxd.Version = 1 // 64 bits: epoch-anchored times overflow version 0
	_ = traf.AddChild(tfxd)
	return moof, trun, nil
}

// payloadSize is the bytes of the samples.
func payloadSize(samples []mp4.Sample) int64 {
	var n int64
	for _, sm := range samples {
		n += int64(sm.Size)
	}
	return n
}

// encodeMoof writes moof and the header of an mdat of payload bytes, and
// returns the whole and the mdat's (unfilled) payload.
func encodeMoof(moof *mp4.MoofBox, trun *mp4.TrunBox, payload int64) (out, mdat []byte, err error) {
	moofSize := int(moof.Size())
	trun.DataOffset = int32(moofSize + 8)
	out = make([]byte, moofSize+8+int(payload))
	sw := bits.NewFixedSliceWriterFromSlice(out[:moofSize])
	if err := moof.EncodeSW(sw); err != nil {
		return nil, nil, fmt.Errorf("encode moof: %w", err)
	}
	if sw.Len() != moofSize {
		return nil, nil, fmt.Errorf("encode moof: wrote %d bytes, expected %d", sw.Len(), moofSize)
	}
	binary.BigEndian.PutUint32(out[moofSize:], uint32(8+payload))
	copy(out[moofSize+4:], "mdat")
	return out, out[moofSize+8:], nil
}

// readSamples reads the data of the picked input samples into dst, one read
// per run of samples that are adjacent in the file.
func (s *Source) readSamples(t *track, picks []int, dst []byte) error {
	pos := 0
	for k := 0; k < len(picks); {
		first := t.samples[picks[k]]
		off, n := first.off, int64(first.size)
		k++
		for k < len(picks) && t.samples[picks[k]].off == off+n {
			n += int64(t.samples[picks[k]].size)
			k++
		}
		if _, err := s.f.ReadAt(dst[pos:pos+int(n)], off); err != nil {
			return fmt.Errorf("read %d sample bytes at offset %d: %w", n, off, err)
		}
		pos += int(n)
	}
	return nil
}
