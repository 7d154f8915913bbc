package media

import (
	"bytes"
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
	fi.Duration = dur
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

// Normalize returns the moof with a tfdt (when the start time is not
// negative) and a tfxd, so that one stored fragment serves DASH, HLS and
// Smooth clients alike. A moof that already has both is returned unchanged,
// byte for byte, which makes normalisation idempotent across tiers.
func (m *Moof) Normalize(fi FragInfo) ([]byte, error) {
	traf := m.Traf
	changed := false
	if traf.Tfdt == nil && fi.Start >= 0 {
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
	}
	if tfxdOf(traf) == nil {
		traf.Children = append(traf.Children, newTfxd(uint64(fi.Start), fi.Duration))
		changed = true
	}
	if !changed {
		return m.Raw, nil
	}
	return m.encode()
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

// WithTfrf returns the moof with a Smooth tfrf box announcing the next
// fragments (MS-SSTR 2.2.4.5), replacing any tfrf already present.
func (m *Moof) WithTfrf(next []TimeDur) ([]byte, error) {
	kids := m.Traf.Children[:0:0]
	for _, c := range m.Traf.Children {
		if u, ok := c.(*mp4.UUIDBox); ok && u.Tfrf != nil {
			continue
		}
		kids = append(kids, c)
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
// Normalize, a fragment has a tfdt exactly when its start is not negative. The trun data offsets follow the moof's change in
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
	return out, fi, nil
}
