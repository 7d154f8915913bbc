package store

import (
	"bytes"
	"fmt"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/sluice-media/sluice/internal/media"
)

// NoSync makes the store skip fsync, for tests that write many fragments
// (the fuzz target): durability is not what they test.
func NoSync(s *Store) { s.noSync = true }

// Retime returns a copy of a stored-form fragment (moof with a tfdt when
// the start is not negative, a tfxd only where the start is negative)
// moved to start with the given duration in a tfxd, the way a corrupted or
// hostile encoder would send it: only the timing fields change (in place
// when the fragment has a tfxd; else one is added).
func Retime(f *media.Fragment, start int64, dur uint64) (*media.Fragment, error) {
	moofRaw, off, err := media.SplitFragment(f.Data)
	if err != nil {
		return nil, err
	}
	b, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(moofRaw))
	if err != nil {
		return nil, err
	}
	moof, ok := b.(*mp4.MoofBox)
	if !ok || moof.Traf == nil {
		return nil, fmt.Errorf("not a moof with a traf")
	}
	found := false
	for _, c := range moof.Traf.Children {
		if u, ok := c.(*mp4.UUIDBox); ok && u.Tfxd != nil {
			u.Tfxd.Version = 1
			u.Tfxd.FragmentAbsoluteTime, u.Tfxd.FragmentAbsoluteDuration = uint64(start), dur
			found = true
		}
	}
	if !found {
		// The stored form has no tfxd (media.Moof.Normalize): the hostile
		// encoder's tfxd is added, and the samples' data offsets follow.
		x := mp4.NewTfxdBox(uint64(start), dur)
		x.Tfxd.Version = 1
		moof.Traf.AddChild(x)
		delta := int32(moof.Size()) - int32(len(moofRaw))
		for _, tr := range moof.Traf.Truns {
			if tr.HasDataOffset() {
				tr.DataOffset += delta
			}
		}
	}
	if moof.Traf.Tfdt != nil {
		v := moof.Traf.Tfdt.Version
		moof.Traf.Tfdt.SetBaseMediaDecodeTime(uint64(start))
		moof.Traf.Tfdt.Version = v // keep the size: SetBaseMediaDecodeTime picks one
		if v == 0 && (start < 0 || start >= 1<<32) {
			return nil, fmt.Errorf("start %d does not fit the fragment's 32-bit tfdt", start)
		}
	}
	var buf bytes.Buffer
	if err := moof.Encode(&buf); err != nil {
		return nil, err
	}
	if found && buf.Len() != len(moofRaw) {
		return nil, fmt.Errorf("retimed moof is %d bytes, was %d", buf.Len(), len(moofRaw))
	}
	data := append(buf.Bytes(), f.Data[off:]...)
	info := f.Info
	info.Start = start
	info.Duration = dur
	return &media.Fragment{Info: info, Data: data}, nil
}
