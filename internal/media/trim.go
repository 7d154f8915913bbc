package media

import (
	"encoding/binary"
	"fmt"

	"github.com/Eyevinn/mp4ff/mp4"
)

// TrimFront returns a copy of a stored fragment (moof+mdat) that starts at
// at instead of its own start: the samples that end at or before at are
// left out of the trun, a sample that straddles at starts there (its
// duration shortened by the part before), and the tfdt says at (any tfxd
// is left out, as in the stored form: see Moof.Normalize). When the fragment has one trun whose data starts the
// mdat (what encoders write), the left-out samples' bytes are cut from the
// mdat too — dash.js's Smooth support expects the samples at the mdat's
// start; otherwise the mdat is kept whole and those bytes stay in it,
// unreferenced. trex supplies the defaults the fragment does not carry (nil
// if none).
//
// It is meant for audio, whose every sample is a sync sample: the origin
// lists the fragment that straddles a presentation start (AAC priming before
// media time zero, or before the first video frame) from that start, since
// no manifest can list a negative time and a player would discard the part
// before the start anyway. Encrypted fragments are refused (ErrUnsupported).
func TrimFront(data []byte, trex *mp4.TrexBox, at int64) ([]byte, error) {
	moofRaw, off, err := SplitFragment(data)
	if err != nil {
		return nil, err
	}
	m, err := DecodeMoof(moofRaw)
	if err != nil {
		return nil, err
	}
	fi, err := m.Inspect(trex, uint64(len(data)-off))
	if err != nil {
		return nil, err
	}
	end := fi.Start + int64(fi.Duration)
	if at <= fi.Start || at >= end {
		return nil, fmt.Errorf("trim fragment [%d, %d) at %d: not inside it", fi.Start, end, at)
	}
	traf := m.Traf
	if traf.Senc != nil || traf.UUIDSenc != nil || traf.Saiz != nil || traf.Saio != nil {
		return nil, fmt.Errorf("trim an encrypted fragment: %w", ErrUnsupported)
	}
	if trex == nil {
		trex = &mp4.TrexBox{TrackID: fi.TrackID}
	}
	mdatHdr := 8
	if len(data) >= off+8 && data[off] == 0 && data[off+1] == 0 && data[off+2] == 0 && data[off+3] == 1 {
		mdatHdr = 16 // largesize
	}
	// Only an 8-byte mdat header (a fragment under 4 GiB) is rewritten.
	cutMdat := mdatHdr == 8 && len(traf.Truns) == 1 && traf.Truns[0].HasDataOffset() && int(traf.Truns[0].DataOffset) == off+mdatHdr
	var cutBytes int64
	t := fi.Start // decode time of the next sample
	var truns []*mp4.TrunBox
	dropped := false
	for _, trun := range traf.Truns {
		if t >= at {
			truns = append(truns, trun)
			continue
		}
		trun.AddSampleDefaultValues(traf.Tfhd, trex)
		drop := 0
		var skip int64
		for drop < len(trun.Samples) && t+int64(trun.Samples[drop].Dur) <= at {
			t += int64(trun.Samples[drop].Dur)
			skip += int64(trun.Samples[drop].Size)
			drop++
		}
		if drop == len(trun.Samples) {
			dropped = true
			continue // wholly before at
		}
		if !trun.HasDataOffset() {
			return nil, fmt.Errorf("trim a trun without data offset: %w", ErrUnsupported)
		}
		if t < at {
			s := &trun.Samples[drop]
			s.Dur -= uint32(at - t)
			t = at
		}
		trun.Samples = trun.Samples[drop:]
		if cutMdat {
			cutBytes = skip
		} else {
			trun.DataOffset += int32(skip)
		}
		// Every sample now carries its own values (the first one's flags
		// are its own, not the run's first-sample flags any more).
		trun.RemoveFirstSampleFlags()
		trun.Flags |= mp4.TrunSampleDurationPresentFlag | mp4.TrunSampleSizePresentFlag | mp4.TrunSampleFlagsPresentFlag
		truns = append(truns, trun)
	}
	if dropped && !truns[0].HasDataOffset() {
		return nil, fmt.Errorf("trim before a trun without data offset: %w", ErrUnsupported)
	}
	keep := map[*mp4.TrunBox]bool{}
	for _, tr := range truns {
		keep[tr] = true
	}
	kids := make([]mp4.Box, 0, len(traf.Children)+1)
	for _, c := range traf.Children {
		if tr, ok := c.(*mp4.TrunBox); ok && !keep[tr] {
			continue
		}
		if u, ok := c.(*mp4.UUIDBox); ok && u.Tfxd != nil {
			continue // replaced below
		}
		kids = append(kids, c)
		if c.Type() == "tfhd" && traf.Tfdt == nil {
			traf.Tfdt = mp4.CreateTfdt(uint64(at))
			kids = append(kids, traf.Tfdt)
		}
	}
	traf.Tfdt.SetBaseMediaDecodeTime(uint64(at))
	traf.Tfdt.Version = 1
	if at < 0 {
		// The stored form: a tfxd only where no tfdt can say the start
		// (Normalize); the Smooth path adds one to what it serves.
		kids = append(kids, newTfxd(uint64(at), uint64(end-at)))
	}
	traf.Children = kids
	traf.Truns = truns
	moof, err := m.encode()
	if err != nil {
		return nil, err
	}
	if !cutMdat {
		return append(moof, data[off:]...), nil
	}
	payload := data[off+mdatHdr+int(cutBytes):]
	out := make([]byte, 0, len(moof)+8+len(payload))
	out = append(out, moof...)
	out = binary.BigEndian.AppendUint32(out, uint32(8+len(payload)))
	out = append(out, "mdat"...)
	return append(out, payload...), nil
}
