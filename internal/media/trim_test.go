package media_test

import (
	"bytes"
	"testing"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/sluice-media/sluice/internal/media"
)

type sample struct {
	dur  uint32
	data []byte
}

// samplesOf returns the samples of a stored fragment (data offsets relative
// to the moof, as Sluice stores them) with their decode start.
func samplesOf(t *testing.T, data []byte, trex *mp4.TrexBox) (int64, []sample) {
	t.Helper()
	moofRaw, _, err := media.SplitFragment(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(moofRaw))
	if err != nil {
		t.Fatal(err)
	}
	traf := b.(*mp4.MoofBox).Traf
	m, err := media.DecodeMoof(moofRaw)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := m.Inspect(trex, uint64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var out []sample
	for _, tr := range traf.Truns {
		tr.AddSampleDefaultValues(traf.Tfhd, trex)
		off := int(tr.DataOffset)
		for _, s := range tr.Samples {
			out = append(out, sample{s.Dur, data[off : off+int(s.Size)]})
			off += int(s.Size)
		}
	}
	return fi.Start, out
}

// TestTrimFront: a fragment cut at a sample boundary loses the samples
// before it; cut inside a sample, that sample starts at the cut, shorter.
// Every remaining sample keeps its bytes, the timing boxes say the new start
// and duration, and the result is again one complete moof+mdat.
func TestTrimFront(t *testing.T) {
	h, frags := fragments(t, "testdata/small.ismv")
	var f *media.Fragment
	for _, g := range frags {
		if k, _ := h.Track(g.Info.TrackID); k.Kind == "audio" {
			f = g
			break
		}
	}
	trex := h.Trex(f.Info.TrackID)
	start, orig := samplesOf(t, f.Data, trex)
	end := start + int64(f.Info.Duration)
	d0 := int64(orig[0].dur)
	cases := []struct {
		name    string
		at      int64
		dropped int
		firstD  uint32
	}{
		{"at a sample boundary", start + d0, 1, orig[1].dur},
		{"inside the second sample", start + d0 + 1000, 1, orig[1].dur - 1000},
		{"inside the first sample", start + 5, 0, orig[0].dur - 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := media.TrimFront(f.Data, trex, c.at)
			if err != nil {
				t.Fatal(err)
			}
			if !media.IsComplete(got) {
				t.Fatal("not one moof+mdat")
			}
			gs, samples := samplesOf(t, got, trex)
			if gs != c.at {
				t.Errorf("start %d, want %d", gs, c.at)
			}
			moofRaw, _, _ := media.SplitFragment(got)
			m, _ := media.DecodeMoof(moofRaw)
			fi, err := m.Inspect(trex, uint64(len(got)))
			// The stored form (DASH and HLS serve it): a tfdt, no tfxd.
			if err != nil || !fi.HasTfdt || fi.HasTfxd || fi.Duration != uint64(end-c.at) || fi.Start != c.at {
				t.Errorf("inspect: %+v %v; want start %d duration %d with a tfdt and no tfxd", fi, err, c.at, end-c.at)
			}
			want := orig[c.dropped:]
			if len(samples) != len(want) {
				t.Fatalf("%d samples, want %d", len(samples), len(want))
			}
			var sum uint64
			for i, s := range samples {
				if !bytes.Equal(s.data, want[i].data) {
					t.Errorf("sample %d: bytes differ", i)
				}
				d := want[i].dur
				if i == 0 {
					d = c.firstD
				}
				if s.dur != d {
					t.Errorf("sample %d: duration %d, want %d", i, s.dur, d)
				}
				sum += uint64(s.dur)
			}
			if sum != uint64(end-c.at) {
				t.Errorf("samples last %d, want %d", sum, end-c.at)
			}
			// One trun: the left-out bytes leave the mdat too, whose
			// payload starts with the first sample (dash.js's Smooth
			// support assumes that).
			if off := int(m.Traf.Truns[0].DataOffset); len(m.Traf.Truns) != 1 || off != len(moofRaw)+8 {
				t.Errorf("trun data offset %d, want %d (the mdat payload's first byte)", off, len(moofRaw)+8)
			}
			origMoof, _, _ := media.SplitFragment(f.Data)
			droppedBytes := 0
			for _, o := range orig[:c.dropped] {
				droppedBytes += len(o.data)
			}
			if got, want := len(got)-len(moofRaw), len(f.Data)-len(origMoof)-droppedBytes; got != want {
				t.Errorf("mdat of %d bytes, want %d", got, want)
			}
		})
	}
	for _, at := range []int64{start, start - 1, end, end + 1} {
		if _, err := media.TrimFront(f.Data, trex, at); err == nil {
			t.Errorf("trim at %d outside (%d, %d): no error", at, start, end)
		}
	}
}
