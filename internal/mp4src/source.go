// Package mp4src turns a progressive MP4 file (H.264 video, AAC audio) into
// the byte stream a Smooth Streaming / ismv live encoder sends to an ingest:
// ftyp (isml), the LiveServerManifestBox (a SMIL table of the tracks), a
// fragmented moov, then one moof+mdat per track for every fragment period,
// and finally an empty mfra.
//
// The file is cut into fragment periods at the key frames of its first video
// track; the other video tracks must have key frames at the same times, and
// audio is cut at the nearest audio frame boundary. Every track keeps its own
// timescale.
//
// Times are a pure function of a caller-supplied offset, so the stream can be
// looped forever with increasing times and two producers that use the same
// offset write identical bytes (redundant encoders for one publishing point):
//
//	src, _ := mp4src.Open("sample.mp4", mp4src.Options{})
//	defer src.Close()
//	src.WriteHeader(w)
//	for k := int64(0); ; k++ {
//		for i := 0; i < src.Periods(); i++ {
//			src.WritePeriod(w, k*src.LoopTicks(), i)
//		}
//	}
//
// Audio fragment boundaries are placed on a grid of whole audio frames counted
// from media time zero, so they too depend only on the absolute time: at a
// loop seam an audio frame may be repeated or skipped, never overlapped.
package mp4src

import (
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"time"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/mp4"
)

// ErrUnsupported marks an input file that is well formed but that mp4src
// cannot turn into a stream (another codec, a fragmented file, ...).
var ErrUnsupported = errors.New("unsupported input")

// Options tune how a file is cut into fragments. The zero value is usable.
type Options struct {
	// MinFragment is the shortest fragment cut at a key frame of the first
	// video track: key frames closer than this to the previous cut are
	// skipped. Zero means one second; a negative value cuts at every key
	// frame.
	MinFragment time.Duration
	// AudioFragment is the fragment duration of a file without video. Zero
	// means two seconds.
	AudioFragment time.Duration
	// OmitTfdt leaves the tfdt box out of every traf, as ffmpeg's ismv muxer
	// does; the tfxd uuid box then carries the only time. By default both are
	// written, which a receiver that normalises fragments stores unchanged.
	OmitTfdt bool
}

// Track describes one output track.
type Track struct {
	TrackID    uint32 // track_ID in the output moov (1, 2, ...)
	SourceID   uint32 // track_ID in the input file
	Kind       string // "video" or "audio"
	Name       string // Smooth trackName: "video", "audio", "audio_<lang>"
	Timescale  uint32
	Codec      string // RFC 6381, e.g. avc1.4D401E or mp4a.40.2
	FourCC     string // H264, AACL or AACH
	Bitrate    int    // average bits per second over the file
	MaxBitrate int    // highest fragment bitrate
	Width      int    // video
	Height     int    // video
	SampleRate int    // audio
	Channels   int    // audio
	Language   string // ISO 639-2/T, "und" when unknown
	// Duration is the track's length in its timescale (video: the sum of
	// the sample durations; audio: whole frames).
	Duration int64
	// CodecPrivateData is the Smooth CodecPrivateData value (hex).
	CodecPrivateData string
}

// Source is a progressive MP4 file opened for streaming. Its methods may be
// called from several goroutines at once.
type Source struct {
	f       *os.File
	path    string
	opts    Options
	tracks  []*track
	ref     *track  // the track whose cuts define the fragment periods
	starts  []int64 // period start times in ref ticks, len(periods)+1; last = loop length
	header  []byte
	maxSize int // largest fragment (moof+mdat) of offset 0, a bound for receivers
}

// Open reads the sample tables of a progressive MP4 file and plans its
// fragments. Only the header is read; sample data are read per fragment.
func Open(path string, opts Options) (*Source, error) {
	if opts.MinFragment == 0 {
		opts.MinFragment = time.Second
	}
	if opts.AudioFragment <= 0 {
		opts.AudioFragment = 2 * time.Second
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Source{f: f, path: path, opts: opts}
	if err := s.load(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Close closes the file.
func (s *Source) Close() error { return s.f.Close() }

// Path is the file name given to Open.
func (s *Source) Path() string { return s.path }

// Tracks describes the output tracks in track_ID order.
func (s *Source) Tracks() []Track {
	out := make([]Track, len(s.tracks))
	for i, t := range s.tracks {
		out[i] = t.info
	}
	return out
}

// Timescale is the timescale of the reference track (the first video track,
// or the first audio track of a file without video): offsets and period
// times are counted in it.
func (s *Source) Timescale() uint32 { return s.ref.info.Timescale }

// Periods is the number of fragment periods in one pass over the file.
func (s *Source) Periods() int { return len(s.starts) - 1 }

// LoopTicks is the length of one pass over the file in reference ticks: the
// sum of the fragment durations of the reference track.
func (s *Source) LoopTicks() int64 { return s.starts[len(s.starts)-1] }

// LoopDuration is LoopTicks as a duration.
func (s *Source) LoopDuration() time.Duration { return TicksToDuration(s.LoopTicks(), s.Timescale()) }

// PeriodStart is the start of period i relative to the start of a pass, in
// reference ticks; PeriodStart(Periods()) is LoopTicks().
func (s *Source) PeriodStart(i int) int64 { return s.starts[i] }

// MaxFragmentSize is the size of the largest fragment (moof+mdat) of one
// track, a safe box-size bound for a parser of the stream.
func (s *Source) MaxFragmentSize() int { return s.maxSize }

// Header returns ftyp, the LiveServerManifestBox and moov.
func (s *Source) Header() []byte { return append([]byte(nil), s.header...) }

// WriteHeader writes ftyp, the LiveServerManifestBox and moov.
func (s *Source) WriteHeader(w io.Writer) (int64, error) {
	n, err := w.Write(s.header)
	return int64(n), err
}

// WriteEnd writes the end of a stream: an empty mfra box, as ffmpeg does.
func WriteEnd(w io.Writer) (int64, error) {
	n, err := w.Write(EndBox())
	return int64(n), err
}

// EndBox returns the 8-byte empty mfra that ends a stream.
func EndBox() []byte { return []byte{0, 0, 0, 8, 'm', 'f', 'r', 'a'} }

// WritePeriod writes the fragments of period i (one moof+mdat per track,
// in track order) with every time shifted by offset reference ticks. offset
// must not be negative; offset k*LoopTicks() gives pass k of a loop.
func (s *Source) WritePeriod(w io.Writer, offset int64, i int) (int64, error) {
	if i < 0 || i >= s.Periods() {
		return 0, fmt.Errorf("period %d out of range [0,%d)", i, s.Periods())
	}
	if offset < 0 {
		return 0, fmt.Errorf("negative offset %d", offset)
	}
	var total int64
	for ti, t := range s.tracks {
		b, err := s.fragment(t, ti, offset, i)
		if err != nil {
			return total, err
		}
		if b == nil {
			continue
		}
		n, err := w.Write(b)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// PeriodChunks returns period i (as WritePeriod writes it) cut into CMAF
// chunks of chunk seconds (see chunks): element k holds chunk k of every
// track, in track order, to be sent k*chunk after the period's start; an
// element may be empty.
func (s *Source) PeriodChunks(offset int64, i int, chunk time.Duration) ([][]byte, error) {
	if i < 0 || i >= s.Periods() {
		return nil, fmt.Errorf("period %d out of range [0,%d)", i, s.Periods())
	}
	if offset < 0 {
		return nil, fmt.Errorf("negative offset %d", offset)
	}
	if chunk <= 0 {
		return nil, fmt.Errorf("chunk duration %v must be positive", chunk)
	}
	var out [][]byte
	for ti, t := range s.tracks {
		cs, err := s.chunks(t, ti, offset, i, chunk)
		if err != nil {
			return nil, err
		}
		for k, c := range cs {
			for len(out) <= k {
				out = append(out, nil)
			}
			out[k] = append(out[k], c...)
		}
	}
	return out, nil
}

// WriteAll writes the whole file once with times starting at zero: the
// header, every period and the end box.
func (s *Source) WriteAll(w io.Writer) (int64, error) {
	total, err := s.WriteHeader(w)
	if err != nil {
		return total, err
	}
	for i := 0; i < s.Periods(); i++ {
		n, err := s.WritePeriod(w, 0, i)
		total += n
		if err != nil {
			return total, err
		}
	}
	n, err := WriteEnd(w)
	return total + n, err
}

// TrackTime converts a time in reference ticks to ticks of track t's
// timescale (rounded to the nearest tick).
func (s *Source) TrackTime(t Track, refTicks int64) int64 {
	return MulDivRound(refTicks, int64(t.Timescale), int64(s.Timescale()))
}

// TicksToDuration converts ticks of a timescale to a duration (nearest ns).
func TicksToDuration(ticks int64, timescale uint32) time.Duration {
	return time.Duration(MulDivRound(ticks, int64(time.Second), int64(timescale)))
}

// DurationToTicks converts a duration to ticks of a timescale, rounding down.
func DurationToTicks(d time.Duration, timescale uint32) int64 {
	return MulDivFloor(int64(d), int64(timescale), int64(time.Second))
}

// MulDivRound returns a*b/c rounded to the nearest integer (halves up),
// without overflow in the product. c must be positive.
func MulDivRound(a, b, c int64) int64 {
	n := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
	n.Add(n, big.NewInt(c/2))
	return n.Div(n, big.NewInt(c)).Int64()
}

// MulDivFloor returns floor(a*b/c) without overflow in the product. c must
// be positive.
func MulDivFloor(a, b, c int64) int64 {
	n := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
	return n.Div(n, big.NewInt(c)).Int64()
}

// floorDiv is a/b rounded towards minus infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// sample is one access unit of the input file.
type sample struct {
	off  int64  // byte offset in the file
	size uint32 // bytes
	dts  int64  // decode time in the track timescale, from 0
	dur  uint32
	cto  int32 // composition offset, edit-list shift already applied
	sync bool
}

// track is one input track and what is needed to write it.
type track struct {
	info    Track
	samples []sample
	// shift is the media time of the first edit-list entry (the AAC priming
	// or the B-frame delay), in the track timescale.
	shift int64
	// cuts are the sample indexes where the periods start, with
	// len(samples) appended (video).
	cuts []int
	// frame is the constant duration of an audio frame.
	frame int64
	trak  *mp4.TrakBox
	entry mp4.Box // output sample entry (without btrt)
	avcC  *mp4.AvcCBox
	pasp  *mp4.PaspBox
	asc   []byte
}

func (s *Source) load() error {
	mf, err := mp4.DecodeFile(s.f, mp4.WithDecodeMode(mp4.DecModeLazyMdat))
	if err != nil {
		return fmt.Errorf("decode mp4: %w", err)
	}
	if mf.IsFragmented() {
		return fmt.Errorf("fragmented MP4 input (re-mux it as a progressive MP4 first): %w", ErrUnsupported)
	}
	if mf.Moov == nil || len(mf.Moov.Traks) == 0 {
		return fmt.Errorf("no moov with tracks: %w", ErrUnsupported)
	}
	audioN := 0
	for _, tr := range mf.Moov.Traks {
		t, err := describe(tr)
		if err != nil {
			return err
		}
		t.info.TrackID = uint32(len(s.tracks) + 1)
		if t.info.Kind == "audio" {
			audioN++
			switch {
			case audioN == 1:
				t.info.Name = "audio"
			case t.info.Language != "und":
				t.info.Name = "audio_" + t.info.Language
			default:
				t.info.Name = fmt.Sprintf("audio%d", audioN)
			}
		}
		s.tracks = append(s.tracks, t)
	}
	for _, t := range s.tracks {
		if t.info.Kind == "video" {
			s.ref = t
			break
		}
	}
	if s.ref == nil {
		s.ref = s.tracks[0]
		s.planAudioOnly()
	} else if err := s.planVideo(); err != nil {
		return err
	}
	for _, t := range s.tracks {
		if t.info.Kind == "audio" {
			if err := s.checkAudioLength(t); err != nil {
				return err
			}
		}
	}
	s.rates()
	if s.header, err = s.buildHeader(); err != nil {
		return err
	}
	return nil
}

// describe checks the codec of a trak and expands its sample tables.
func describe(tr *mp4.TrakBox) (*track, error) {
	if tr.Tkhd == nil || tr.Mdia == nil || tr.Mdia.Mdhd == nil || tr.Mdia.Hdlr == nil ||
		tr.Mdia.Minf == nil || tr.Mdia.Minf.Stbl == nil || tr.Mdia.Minf.Stbl.Stsd == nil {
		return nil, fmt.Errorf("trak without tkhd, mdhd, hdlr or stsd: %w", ErrUnsupported)
	}
	id := tr.Tkhd.TrackID
	t := &track{trak: tr}
	t.info.SourceID = id
	t.info.Timescale = tr.Mdia.Mdhd.Timescale
	if t.info.Timescale == 0 {
		return nil, fmt.Errorf("track %d has timescale 0", id)
	}
	t.info.Language = tr.Mdia.Mdhd.GetLanguage()
	if len(t.info.Language) != 3 {
		t.info.Language = "und"
	}
	stsd := tr.Mdia.Minf.Stbl.Stsd
	if len(stsd.Children) != 1 {
		return nil, fmt.Errorf("track %d has %d sample descriptions, want 1: %w", id, len(stsd.Children), ErrUnsupported)
	}
	entry := stsd.Children[0].Type()
	switch tr.Mdia.Hdlr.HandlerType {
	case "vide":
		se := stsd.AvcX
		if se == nil || (entry != "avc1" && entry != "avc3") {
			return nil, fmt.Errorf("track %d: video codec %q, only H.264 (avc1/avc3) is supported: %w", id, entry, ErrUnsupported)
		}
		if se.AvcC == nil || len(se.AvcC.SPSnalus) == 0 || len(se.AvcC.PPSnalus) == 0 {
			return nil, fmt.Errorf("track %d: H.264 without SPS/PPS in avcC: %w", id, ErrUnsupported)
		}
		t.info.Kind, t.info.Name, t.info.FourCC = "video", "video", "H264"
		t.info.Width, t.info.Height = int(se.Width), int(se.Height)
		t.avcC, t.pasp = se.AvcC, se.Pasp
		sps := se.AvcC.SPSnalus[0]
		t.info.Codec = "avc1"
		if len(sps) >= 4 {
			t.info.Codec = fmt.Sprintf("avc1.%02X%02X%02X", sps[1], sps[2], sps[3])
		}
		if p, err := avc.ParseSPSNALUnit(sps, false); err == nil && p.Width > 0 && p.Height > 0 && (t.info.Width == 0 || t.info.Height == 0) {
			t.info.Width, t.info.Height = int(p.Width), int(p.Height)
		}
		var cpd []byte
		for _, n := range se.AvcC.SPSnalus {
			cpd = append(append(cpd, 0, 0, 0, 1), n...)
		}
		for _, n := range se.AvcC.PPSnalus {
			cpd = append(append(cpd, 0, 0, 0, 1), n...)
		}
		t.info.CodecPrivateData = fmt.Sprintf("%X", cpd)
	case "soun":
		se := stsd.Mp4a
		if se == nil || entry != "mp4a" || se.Esds == nil || se.Esds.DecConfigDescriptor == nil ||
			se.Esds.DecConfigDescriptor.ObjectType != mp4.ObjectTypeAAC ||
			se.Esds.DecConfigDescriptor.DecSpecificInfo == nil || len(se.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig) < 2 {
			return nil, fmt.Errorf("track %d: audio codec %q, only AAC (mp4a with an AudioSpecificConfig) is supported: %w", id, entry, ErrUnsupported)
		}
		asc := se.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig
		aot := asc[0] >> 3
		switch aot {
		case 2:
			t.info.FourCC = "AACL"
		case 5, 29:
			t.info.FourCC = "AACH"
		default:
			return nil, fmt.Errorf("track %d: AAC object type %d, only AAC-LC and HE-AAC are supported: %w", id, aot, ErrUnsupported)
		}
		t.info.Kind = "audio"
		t.info.Codec = fmt.Sprintf("mp4a.40.%d", aot)
		t.info.SampleRate = int(t.info.Timescale)
		if se.SampleRate > 0 {
			t.info.SampleRate = int(se.SampleRate)
		}
		t.info.Channels = int(se.ChannelCount)
		if t.info.Channels == 0 {
			t.info.Channels = 2
		}
		t.asc = asc
		t.info.CodecPrivateData = fmt.Sprintf("%X", asc)
	default:
		return nil, fmt.Errorf("track %d: handler %q (%s), only H.264 video and AAC audio are supported: %w",
			id, tr.Mdia.Hdlr.HandlerType, entry, ErrUnsupported)
	}
	if err := t.expand(); err != nil {
		return nil, fmt.Errorf("track %d: %w", id, err)
	}
	return t, nil
}

// expand turns the sample tables into one entry per sample.
func (t *track) expand() error {
	stbl := t.trak.Mdia.Minf.Stbl
	if stbl.Stsz == nil || stbl.Stts == nil || stbl.Stsc == nil || (stbl.Stco == nil && stbl.Co64 == nil) {
		return fmt.Errorf("sample table without stsz, stts, stsc or chunk offsets")
	}
	n := int(stbl.Stsz.GetNrSamples())
	if n == 0 {
		return fmt.Errorf("no samples")
	}
	t.samples = make([]sample, n)
	// sizes
	for i := range t.samples {
		t.samples[i].size = stbl.Stsz.GetSampleSize(i + 1)
	}
	// decode times
	i := 0
	var dts int64
	for e, cnt := range stbl.Stts.SampleCount {
		d := stbl.Stts.SampleTimeDelta[e]
		for c := uint32(0); c < cnt && i < n; c++ {
			t.samples[i].dts, t.samples[i].dur = dts, d
			dts += int64(d)
			i++
		}
	}
	if i != n {
		return fmt.Errorf("stts covers %d of %d samples", i, n)
	}
	// composition offsets
	if ctts := stbl.Ctts; ctts != nil && len(ctts.SampleOffset) > 0 {
		for i := range t.samples {
			t.samples[i].cto = ctts.GetCompositionTimeOffset(uint32(i + 1))
		}
	}
	// sync samples
	if stss := stbl.Stss; stss != nil {
		for _, nr := range stss.SampleNumber {
			if nr >= 1 && int(nr) <= n {
				t.samples[nr-1].sync = true
			}
		}
	} else {
		for i := range t.samples {
			t.samples[i].sync = true
		}
	}
	// file offsets: walk the chunks
	var chunkOffsets []uint64
	if stbl.Stco != nil {
		for _, o := range stbl.Stco.ChunkOffset {
			chunkOffsets = append(chunkOffsets, uint64(o))
		}
	} else {
		chunkOffsets = stbl.Co64.ChunkOffset
	}
	entries := stbl.Stsc.Entries
	if len(entries) == 0 {
		return fmt.Errorf("empty stsc")
	}
	i = 0
	for e, ent := range entries {
		last := uint32(len(chunkOffsets))
		if e+1 < len(entries) {
			last = entries[e+1].FirstChunk - 1
		}
		for c := ent.FirstChunk; c <= last && i < n; c++ {
			if c == 0 || int(c) > len(chunkOffsets) {
				return fmt.Errorf("stsc refers to chunk %d of %d", c, len(chunkOffsets))
			}
			off := int64(chunkOffsets[c-1])
			for k := uint32(0); k < ent.SamplesPerChunk && i < n; k++ {
				t.samples[i].off = off
				off += int64(t.samples[i].size)
				i++
			}
		}
	}
	if i != n {
		return fmt.Errorf("chunks hold %d of %d samples", i, n)
	}
	// edit list: the media time of the first non-empty edit is cut from the
	// front (B-frame delay, AAC priming). An initial empty edit delays the
	// track; it is ignored (the track then starts with the others).
	if edts := t.trak.Edts; edts != nil && len(edts.Elst) > 0 {
		for _, e := range edts.Elst[0].Entries {
			if e.MediaTime >= 0 {
				t.shift = e.MediaTime
				break
			}
		}
	}
	if t.info.Kind == "video" {
		for i := range t.samples {
			t.samples[i].cto = int32(int64(t.samples[i].cto) - t.shift)
		}
		t.info.Duration = dts
		if !t.samples[0].sync {
			return fmt.Errorf("first video sample is not a key frame: %w", ErrUnsupported)
		}
		return nil
	}
	// audio: one constant frame duration (the last frame may be shorter)
	t.frame = int64(t.samples[0].dur)
	for i, sm := range t.samples[:n-1] {
		if int64(sm.dur) != t.frame {
			return fmt.Errorf("audio sample %d lasts %d, others %d: variable audio frame durations: %w", i+1, sm.dur, t.frame, ErrUnsupported)
		}
	}
	if t.frame <= 0 {
		return fmt.Errorf("audio frame duration 0")
	}
	t.info.Duration = int64(n) * t.frame
	return nil
}

// planVideo cuts the reference track at its key frames and checks that the
// other video tracks have key frames at the same times.
func (s *Source) planVideo() error {
	ref := s.ref
	min := DurationToTicks(s.opts.MinFragment, ref.info.Timescale)
	ref.cuts = []int{0}
	s.starts = []int64{0}
	for i := 1; i < len(ref.samples); i++ {
		sm := ref.samples[i]
		if sm.sync && sm.dts-s.starts[len(s.starts)-1] >= min {
			ref.cuts = append(ref.cuts, i)
			s.starts = append(s.starts, sm.dts)
		}
	}
	// A last period much shorter than the others is folded into the previous one.
	if n := len(s.starts); n > 1 && ref.info.Duration-s.starts[n-1] < min {
		ref.cuts, s.starts = ref.cuts[:n-1], s.starts[:n-1]
	}
	ref.cuts = append(ref.cuts, len(ref.samples))
	s.starts = append(s.starts, ref.info.Duration)
	for _, t := range s.tracks {
		if t == ref || t.info.Kind != "video" {
			continue
		}
		ts := int64(t.info.Timescale)
		rts := int64(ref.info.Timescale)
		want := MulDivRound(ref.info.Duration, ts, rts)
		t.cuts = []int{0}
		for _, st := range s.starts[1 : len(s.starts)-1] {
			at := MulDivRound(st, ts, rts)
			j := nearestSample(t.samples, at)
			if !t.samples[j].sync {
				return fmt.Errorf("video track %d has no key frame at %.3f s where track %d has one; encode every rendition with the same GOP: %w",
					t.info.SourceID, float64(st)/float64(rts), ref.info.SourceID, ErrUnsupported)
			}
			if j <= t.cuts[len(t.cuts)-1] {
				return fmt.Errorf("video track %d: key frames too close together to align with track %d: %w", t.info.SourceID, ref.info.SourceID, ErrUnsupported)
			}
			t.cuts = append(t.cuts, j)
		}
		t.cuts = append(t.cuts, len(t.samples))
		// Make the track exactly as long as the reference so that loop
		// passes follow each other without a gap or an overlap.
		if diff := want - t.info.Duration; diff != 0 {
			last := &t.samples[len(t.samples)-1]
			if int64(last.dur)+diff <= 0 {
				return fmt.Errorf("video track %d lasts %d ticks, track %d %d: %w", t.info.SourceID, t.info.Duration, ref.info.SourceID, want, ErrUnsupported)
			}
			last.dur = uint32(int64(last.dur) + diff)
			t.info.Duration = want
		}
	}
	return nil
}

// planAudioOnly cuts a file without video into fragments of about
// AudioFragment, at frame boundaries of the first audio track.
func (s *Source) planAudioOnly() {
	ref := s.ref
	per := DurationToTicks(s.opts.AudioFragment, ref.info.Timescale) / ref.frame
	if per < 1 {
		per = 1
	}
	n := int64(len(ref.samples))
	s.starts = nil
	for f := int64(0); f < n; f += per {
		if f > 0 && n-f < per/2 {
			break
		}
		s.starts = append(s.starts, f*ref.frame)
	}
	s.starts = append(s.starts, n*ref.frame)
}

// checkAudioLength refuses an audio track much shorter than the loop: its
// last frame would have to be repeated to fill the gap.
func (s *Source) checkAudioLength(t *track) error {
	loop := MulDivRound(s.LoopTicks(), int64(t.info.Timescale), int64(s.Timescale()))
	if short := loop - t.info.Duration + t.shift; short > int64(t.info.Timescale)/2 {
		return fmt.Errorf("audio track %d is %.2f s shorter than the video: %w",
			t.info.SourceID, float64(short)/float64(t.info.Timescale), ErrUnsupported)
	}
	return nil
}

// nearestSample is the index of the sample whose decode time is closest to at.
func nearestSample(ss []sample, at int64) int {
	lo, hi := 0, len(ss)
	for lo < hi {
		m := (lo + hi) / 2
		if ss[m].dts < at {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(ss) {
		return len(ss) - 1
	}
	if lo > 0 && at-ss[lo-1].dts < ss[lo].dts-at {
		return lo - 1
	}
	return lo
}

// rates computes each track's average and peak bitrate and the largest
// fragment, from the periods of the first pass.
func (s *Source) rates() {
	for _, t := range s.tracks {
		var bytes int64
		for _, sm := range t.samples {
			bytes += int64(sm.size)
		}
		ts := int64(t.info.Timescale)
		t.info.Bitrate = int(MulDivRound(bytes*8, ts, max(t.info.Duration, 1)))
		for i := 0; i < s.Periods(); i++ {
			first, last, start, end := s.span(t, 0, i)
			var sz int64
			for j := first; j < last; j++ {
				if t.info.Kind == "audio" {
					sz += int64(t.samples[t.audioFrame(start+int64(j)*t.frame, 0)].size)
				} else {
					sz += int64(t.samples[j].size)
				}
			}
			if end > start {
				if r := int(MulDivRound(sz*8, ts, end-start)); r > t.info.MaxBitrate {
					t.info.MaxBitrate = r
				}
			}
			if fs := int(sz) + 4096 + 16*(last-first); fs > s.maxSize {
				s.maxSize = fs
			}
		}
		if t.info.MaxBitrate < t.info.Bitrate {
			t.info.MaxBitrate = t.info.Bitrate
		}
	}
}

// span returns, for video, the sample range of period i and its start and
// end in the track timescale at offset 0 (without offset). For audio it
// returns the number of frames as last-first and the absolute grid times.
func (s *Source) span(t *track, offset int64, i int) (first, last int, start, end int64) {
	if t.info.Kind == "video" {
		first, last = t.cuts[i], t.cuts[i+1]
		start = t.samples[first].dts
		end = t.info.Duration
		if last < len(t.samples) {
			end = t.samples[last].dts
		}
		return first, last, start, end
	}
	start = s.audioGrid(t, offset+s.starts[i])
	end = s.audioGrid(t, offset+s.starts[i+1])
	return 0, int((end - start) / t.frame), start, end
}

// audioGrid maps an absolute time in reference ticks to the nearest audio
// frame boundary of track t, counted in whole frames from time zero.
func (s *Source) audioGrid(t *track, refTicks int64) int64 {
	at := MulDivRound(refTicks, int64(t.info.Timescale), int64(s.Timescale()))
	return floorDiv(at+t.frame/2, t.frame) * t.frame
}

// audioFrame is the index of the input frame played at absolute time at
// (track timescale) in the pass that starts at passStart (track timescale).
func (t *track) audioFrame(at, passStart int64) int {
	j := floorDiv(at-passStart+t.shift+t.frame/2, t.frame)
	if j < 0 {
		j = 0
	}
	if j >= int64(len(t.samples)) {
		j = int64(len(t.samples)) - 1
	}
	return int(j)
}
