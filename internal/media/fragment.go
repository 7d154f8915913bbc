package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/Eyevinn/mp4ff/mp4"
)

// ErrUnsupported marks well-formed input that Sluice does not accept.
var ErrUnsupported = errors.New("unsupported")

// FragInfo is what the index needs to know about one fragment (moof+mdat).
type FragInfo struct {
	TrackID  uint32
	Start    int64  // start time in the track timescale; tfxd, else tfdt
	Duration uint64 // tfxd duration, else the sum of the sample durations
	Samples  int
	Key      bool // first sample is a sync sample
	HasTfdt  bool
	HasTfxd  bool
	// samplesDur is the sum of the sample durations (Duration unless a
	// tfxd said otherwise).
	samplesDur uint64
}

// Moof is a decoded movie fragment header together with its raw bytes.
type Moof struct {
	Raw  []byte
	Box  *mp4.MoofBox
	Traf *mp4.TrafBox
}

// DecodeMoof decodes a raw moof box that must hold exactly one traf.
func DecodeMoof(raw []byte) (*Moof, error) {
	b, err := decodeBox(raw)
	if err != nil {
		return nil, fmt.Errorf("decode moof: %w", err)
	}
	moof, ok := b.(*mp4.MoofBox)
	if !ok {
		return nil, fmt.Errorf("expected moof, got %s", b.Type())
	}
	if len(moof.Trafs) != 1 {
		return nil, fmt.Errorf("moof with %d track fragments; send one track per moof (ffmpeg: -movflags separate_moof): %w", len(moof.Trafs), ErrUnsupported)
	}
	traf := moof.Traf
	if traf.Tfhd == nil || len(traf.Truns) == 0 {
		return nil, fmt.Errorf("traf without tfhd or trun")
	}
	if traf.Tfhd.HasBaseDataOffset() {
		return nil, fmt.Errorf("tfhd with an explicit base_data_offset: %w", ErrUnsupported)
	}
	return &Moof{Raw: raw, Box: moof, Traf: traf}, nil
}

func tfxdOf(traf *mp4.TrafBox) *mp4.TfxdData {
	for _, c := range traf.Children {
		if u, ok := c.(*mp4.UUIDBox); ok && u.Tfxd != nil {
			return u.Tfxd
		}
	}
	return nil
}

// Inspect derives the fragment's timing from its moof, using trex for the
// defaults the fragment does not carry (nil if none), and checks that the
// samples the trun describes fit in mdatSize bytes of mdat payload.
func (m *Moof) Inspect(trex *mp4.TrexBox, mdatPayload uint64) (FragInfo, error) {
	traf := m.Traf
	fi := FragInfo{TrackID: traf.Tfhd.TrackID}
	if trex == nil {
		trex = &mp4.TrexBox{TrackID: fi.TrackID}
	}
	var dur, size uint64
	for _, trun := range traf.Truns {
		// Work on a copy: defaults must not be written into the stored box.
		t := *trun
		t.Samples = append([]mp4.Sample(nil), trun.Samples...)
		dur += t.AddSampleDefaultValues(traf.Tfhd, trex)
		for _, s := range t.Samples {
			size += uint64(s.Size)
		}
		fi.Samples += len(t.Samples)
		if trun == traf.Truns[0] && len(t.Samples) > 0 {
			flags := t.Samples[0].Flags
			if f, ok := trun.FirstSampleFlags(); ok {
				flags = f
			}
			fi.Key = flags&0x00010000 == 0
		}
	}
	if fi.Samples == 0 {
		return fi, fmt.Errorf("fragment of track %d has no samples", fi.TrackID)
	}
	if size > mdatPayload {
		return fi, fmt.Errorf("trun describes %d bytes of samples, mdat holds %d", size, mdatPayload)
	}
	fi.Duration, fi.samplesDur = dur, dur
	if traf.Tfdt != nil {
		fi.HasTfdt = true
		fi.Start = int64(traf.Tfdt.BaseMediaDecodeTime())
	}
	if x := tfxdOf(traf); x != nil {
		fi.HasTfxd = true
		fi.Start = int64(x.FragmentAbsoluteTime)
		if x.FragmentAbsoluteDuration > 0 {
			fi.Duration = x.FragmentAbsoluteDuration
		}
	}
	if !fi.HasTfdt && !fi.HasTfxd {
		return fi, fmt.Errorf("fragment of track %d has neither tfxd nor tfdt", fi.TrackID)
	}
	if fi.Duration == 0 {
		return fi, fmt.Errorf("fragment of track %d has duration 0", fi.TrackID)
	}
	return fi, nil
}

// Normalize returns the moof in the stored form, which DASH, HLS and the
// cluster's senders serve as it is:
//
//   - a tfdt at the fragment's start (fi.Start);
//   - no Smooth boxes: a tfxd or tfrf uuid box in a CMAF segment is
//     something strict demuxers warn about on every segment, and the
//     origin's Smooth path writes both per request (SmoothBoxes). A tfxd
//     stays only where it carries what nothing else can: a negative start
//     (no tfdt can hold it) or a duration that differs from the sum of the
//     samples' (fi.Duration came from it, and the index must read the same
//     duration back);
//   - tfhd track_ID = storedID, the track_ID of the track's switching set
//     (SwitchingSetTrackID; the stored header says the same, see
//     Header.TrackInit), so that every rendition of a DASH AdaptationSet
//     or HLS variant set has one track_ID.
//
// fi (from Inspect) is unchanged: fi.TrackID stays the stream's own
// track_ID. The output depends only on the input and storedID, and a
// stored-form moof is returned unchanged, byte for byte, which makes
// normalisation idempotent across tiers.
func (m *Moof) Normalize(fi FragInfo, storedID uint32) ([]byte, error) {
	traf := m.Traf
	changed := false
	if storedID != 0 && traf.Tfhd.TrackID != storedID {
		traf.Tfhd.TrackID = storedID
		changed = true
	}
	if fi.Start >= 0 {
		if traf.Tfdt == nil {
			tfdt := mp4.CreateTfdt(uint64(fi.Start))
			tfdt.Version = 1
			kids := make([]mp4.Box, 0, len(traf.Children)+1)
			for _, c := range traf.Children {
				kids = append(kids, c)
				if c.Type() == "tfhd" {
					kids = append(kids, tfdt)
				}
			}
			traf.Children = kids
			traf.Tfdt = tfdt
			changed = true
		} else if traf.Tfdt.BaseMediaDecodeTime() != uint64(fi.Start) {
			// A tfxd said another time than the tfdt; the index has the
			// tfxd's, so the tfdt says it too.
			traf.Tfdt.SetBaseMediaDecodeTime(uint64(fi.Start))
			traf.Tfdt.Version = 1
			changed = true
		}
	}
	keepTfxd := fi.Start < 0 || fi.Duration != fi.samplesDur
	kids := traf.Children[:0:0]
	hasTfxd := false
	for _, c := range traf.Children {
		if u, ok := c.(*mp4.UUIDBox); ok {
			if u.Tfrf != nil || (u.Tfxd != nil && !keepTfxd) {
				changed = true
				continue
			}
			hasTfxd = hasTfxd || u.Tfxd != nil
		}
		kids = append(kids, c)
	}
	traf.Children = kids
	if keepTfxd && !hasTfxd {
		traf.Children = append(traf.Children, newTfxd(uint64(fi.Start), fi.Duration))
		changed = true
	}
	if !changed {
		return m.Raw, nil
	}
	return m.encode()
}

// SwitchingSetTrackID is the track_ID a track's fragments and header are
// stored with: one per kind (video 1, audio 2, text 3), so that the
// renditions of a switching set — a DASH AdaptationSet, the variants of an
// HLS master, whatever the encoder numbered them (an ismv push numbers its
// streams 1, 2, 3, ...) — share one track_ID, as DVB-DASH (4.3) and HbbTV
// require and demuxers that take a new track_ID for a new stream expect.
// Two different sets of one kind (two languages, two codecs) share it too;
// each has headers of its own. It depends on the track alone, so every
// origin stores the same bytes. Tracks of other kinds keep their own.
func SwitchingSetTrackID(ti TrackInfo) uint32 {
	switch ti.Kind {
	case "video":
		return 1
	case "audio":
		return 2
	case "text":
		return 3
	}
	return ti.TrackID
}

// encode writes the moof, shifting the trun data offsets by the change in size.
func (m *Moof) encode() ([]byte, error) {
	delta := int32(m.Box.Size()) - int32(len(m.Raw))
	for _, t := range m.Traf.Truns {
		if t.HasDataOffset() {
			t.DataOffset += delta
		}
	}
	var buf bytes.Buffer
	buf.Grow(int(m.Box.Size()))
	if err := m.Box.Encode(&buf); err != nil {
		return nil, fmt.Errorf("encode moof: %w", err)
	}
	m.Raw = buf.Bytes()
	return m.Raw, nil
}

// TimeDur is a fragment start time and duration, as carried in tfrf.
type TimeDur struct {
	Time     uint64
	Duration uint64
}

// SmoothBoxes returns the moof as Smooth clients want it: a tfxd with the
// fragment's start and duration (unless it has one) and a tfrf announcing
// the next fragments (MS-SSTR 2.2.4.4, 2.2.4.5), replacing any tfrf
// already present, and tfhd track_ID = trackID when that is not 0 (the
// stream's own, which Smooth ingest and clients saw).
func (m *Moof) SmoothBoxes(start int64, duration uint64, next []TimeDur, trackID uint32) ([]byte, error) {
	kids := m.Traf.Children[:0:0]
	hasTfxd := false
	for _, c := range m.Traf.Children {
		if u, ok := c.(*mp4.UUIDBox); ok && u.Tfrf != nil {
			continue
		} else if ok && u.Tfxd != nil {
			hasTfxd = true
		}
		kids = append(kids, c)
	}
	if !hasTfxd {
		kids = append(kids, newTfxd(uint64(start), duration))
	}
	times := make([]uint64, len(next))
	durs := make([]uint64, len(next))
	for i, n := range next {
		times[i], durs[i] = n.Time, n.Duration
	}
	tfrf := mp4.NewTfrfBox(byte(len(next)), times, durs)
	tfrf.Tfrf.Version = 1 // 64-bit times: epoch-anchored times overflow 32 bits
	kids = append(kids, tfrf)
	m.Traf.Children = kids
	if trackID != 0 {
		m.Traf.Tfhd.TrackID = trackID
	}
	return m.encode()
}

// newTfxd returns a version 1 (64-bit) tfxd; mp4ff's constructor makes
// version 0, which truncates epoch-anchored times.
func newTfxd(t, d uint64) *mp4.UUIDBox {
	b := mp4.NewTfxdBox(t, d)
	b.Tfxd.Version = 1
	return b
}

// Shift returns a copy of the stored fragment data (one normalised
// moof+mdat whose timing fi describes) with every time moved by delta ticks
// of its track's timescale: the tfdt, the tfxd and any tfrf entries. As in
// Normalize, a fragment has a tfdt exactly when its start is not negative,
// and a tfxd when it is (one is added then). The trun data offsets follow the moof's change in
// size, so the samples are untouched. The result depends only on data and
// delta: every node that shifts the same fragment by the same delta
// stores the same bytes. It is how an encoder that restarted with times
// from zero is placed after what is stored (see ingest's restart policy).
func Shift(data []byte, fi FragInfo, delta int64) ([]byte, FragInfo, error) {
	moofRaw, mdatOff, err := SplitFragment(data)
	if err != nil {
		return nil, fi, err
	}
	start := fi.Start + delta
	if (delta > 0 && start < fi.Start) || (delta < 0 && start > fi.Start) {
		return nil, fi, fmt.Errorf("shift %d by %d overflows", fi.Start, delta)
	}
	m, err := DecodeMoof(append([]byte(nil), moofRaw...))
	if err != nil {
		return nil, fi, err
	}
	traf := m.Traf
	switch {
	case traf.Tfdt != nil && start >= 0:
		v := traf.Tfdt.Version
		traf.Tfdt.SetBaseMediaDecodeTime(uint64(start))
		traf.Tfdt.Version = max(traf.Tfdt.Version, v)
	case traf.Tfdt == nil && start >= 0:
		tfdt := mp4.CreateTfdt(uint64(start))
		tfdt.Version = 1
		kids := make([]mp4.Box, 0, len(traf.Children)+1)
		for _, c := range traf.Children {
			kids = append(kids, c)
			if c.Type() == "tfhd" {
				kids = append(kids, tfdt)
			}
		}
		traf.Children, traf.Tfdt = kids, tfdt
	case traf.Tfdt != nil:
		// A negative start has no tfdt (see Normalize).
		kids := make([]mp4.Box, 0, len(traf.Children))
		for _, c := range traf.Children {
			if c.Type() != "tfdt" {
				kids = append(kids, c)
			}
		}
		traf.Children, traf.Tfdt = kids, nil
	}
	if start < 0 && tfxdOf(traf) == nil {
		// A negative start has no tfdt: the tfxd is its only timing.
		traf.Children = append(traf.Children, newTfxd(uint64(fi.Start), fi.Duration))
	}
	for _, c := range traf.Children {
		u, ok := c.(*mp4.UUIDBox)
		if !ok {
			continue
		}
		if x := u.Tfxd; x != nil {
			x.FragmentAbsoluteTime = uint64(int64(x.FragmentAbsoluteTime) + delta)
			if x.FragmentAbsoluteTime >= 1<<32 || x.FragmentAbsoluteDuration >= 1<<32 {
				x.Version = 1
			}
		}
		if r := u.Tfrf; r != nil {
			for i := range r.FragmentAbsoluteTimes {
				r.FragmentAbsoluteTimes[i] = uint64(int64(r.FragmentAbsoluteTimes[i]) + delta)
				if r.FragmentAbsoluteTimes[i] >= 1<<32 {
					r.Version = 1
				}
			}
		}
	}
	moof, err := m.encode()
	if err != nil {
		return nil, fi, err
	}
	out := make([]byte, 0, len(moof)+len(data)-mdatOff)
	out = append(append(out, moof...), data[mdatOff:]...)
	fi.Start = start
	fi.HasTfdt = traf.Tfdt != nil
	fi.HasTfxd = tfxdOf(traf) != nil
	return out, fi, nil
}

// MoofWithTrackID returns the moof of a stored fragment (one moof+mdat)
// with its tfhd track_ID set to id, and the offset of the mdat in data: a
// copy of the moof's bytes patched in place (the mdat is not copied), or
// the moof itself when it already says id. It is how a stored fragment
// (stored with its switching set's track_ID, Normalize) is sent again as
// part of its ingest stream, whose header numbers the tracks its own way.
func MoofWithTrackID(data []byte, id uint32) (moof []byte, mdatOff int, err error) {
	moof, mdatOff, err = SplitFragment(data)
	if err != nil {
		return nil, 0, err
	}
	at, err := tfhdTrackIDOffset(moof)
	if err != nil {
		return nil, 0, err
	}
	if binary.BigEndian.Uint32(moof[at:]) == id {
		return moof, mdatOff, nil
	}
	out := bytes.Clone(moof)
	binary.BigEndian.PutUint32(out[at:], id)
	return out, mdatOff, nil
}

// tfhdTrackIDOffset finds the track_ID field of the (first) tfhd of a moof.
func tfhdTrackIDOffset(moof []byte) (int, error) {
	child := func(b []byte, from int, typ string) (int, int, bool) {
		for i := from; i+8 <= len(b); {
			n := int(binary.BigEndian.Uint32(b[i:]))
			if n < 8 || i+n > len(b) {
				return 0, 0, false
			}
			if string(b[i+4:i+8]) == typ {
				return i, n, true
			}
			i += n
		}
		return 0, 0, false
	}
	t, tn, ok := child(moof, 8, "traf")
	if !ok {
		return 0, errors.New("moof without traf")
	}
	h, hn, ok := child(moof[:t+tn], t+8, "tfhd")
	if !ok || hn < 16 {
		return 0, errors.New("traf without tfhd")
	}
	return h + 12, nil
}
