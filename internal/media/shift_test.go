package media_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/sluice-media/sluice/internal/media"
)

// fragments parses every fragment of a test body.
func fragments(t *testing.T, path string) (*media.Header, []*media.Fragment) {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := media.NewStreamParser(bytes.NewReader(body), 1<<20, nil)
	var out []*media.Fragment
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			return p.Header(), out
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == media.EventFragment {
			out = append(out, ev.Fragment)
		}
	}
}

// inspect re-derives the timing of stored fragment bytes.
func inspect(t *testing.T, h *media.Header, data []byte) media.FragInfo {
	t.Helper()
	if !media.IsComplete(data) {
		t.Fatal("not one moof+mdat")
	}
	moof, off, err := media.SplitFragment(data)
	if err != nil {
		t.Fatal(err)
	}
	m, err := media.DecodeMoof(moof)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := m.Inspect(h.Trex(m.Traf.Tfhd.TrackID), uint64(len(data)-off-8))
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func TestShift(t *testing.T) {
	for _, path := range []string{"testdata/small.ismv", "testdata/small.cmfv"} {
		h, frags := fragments(t, path)
		for _, delta := range []int64{0, 1, 123456789, 1 << 40, -1} {
			for _, f := range frags {
				if f.Info.Start+delta < 0 {
					continue
				}
				out, fi, err := media.Shift(f.Data, f.Info, delta)
				if err != nil {
					t.Fatalf("%s: shift %d by %d: %v", path, f.Info.Start, delta, err)
				}
				got := inspect(t, h, out)
				if got.Start != f.Info.Start+delta || fi.Start != got.Start || got.Duration != f.Info.Duration ||
					got.Samples != f.Info.Samples || got.Key != f.Info.Key || !got.HasTfdt || got.HasTfxd {
					t.Fatalf("%s: shifted %+v by %d: got %+v (reported %+v)", path, f.Info, delta, got, fi)
				}
				_, mo, _ := media.SplitFragment(f.Data)
				_, so, _ := media.SplitFragment(out)
				if !bytes.Equal(f.Data[mo:], out[so:]) {
					t.Fatalf("%s: mdat changed", path)
				}
				again, _, _ := media.Shift(f.Data, f.Info, delta)
				if !bytes.Equal(again, out) {
					t.Fatalf("%s: shift is not deterministic", path)
				}
				back, _, err := media.Shift(out, fi, -delta)
				if err != nil || !bytes.Equal(back, f.Data) {
					t.Fatalf("%s: shifting %d back does not restore the bytes (%v)", path, delta, err)
				}
			}
		}
	}
}

func TestShiftNegativeStart(t *testing.T) {
	h, frags := fragments(t, "testdata/small.ismv")
	f := frags[0]
	// A fragment stored with a negative start (AAC priming) has no tfdt;
	// moved to a non-negative time it gets one.
	neg, fi, err := media.Shift(f.Data, f.Info, -f.Info.Start-210000)
	if err != nil || fi.Start != -210000 || fi.HasTfdt {
		t.Fatalf("to a negative start: %+v %v", fi, err)
	}
	pos, fi2, err := media.Shift(neg, fi, 10_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if got := inspect(t, h, pos); got.Start != 10_000_000-210000 || !got.HasTfdt || !fi2.HasTfdt {
		t.Fatalf("back to a positive start: %+v", got)
	}
}
