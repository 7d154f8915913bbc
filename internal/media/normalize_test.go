package media_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/sluice-media/sluice/internal/media"
)

// TestNormalizeStoredForm: the stored form of a Smooth push's fragment has
// a tfdt at its start, no tfxd or tfrf and its switching set's track_ID;
// normalising it again changes nothing, and MoofWithTrackID gives it back
// the stream's track_ID without touching the rest.
func TestNormalizeStoredForm(t *testing.T) {
	h, frags := fragments(t, "testdata/small.ismv")
	for _, f := range frags {
		if !f.Info.HasTfxd {
			t.Fatal("the fixture's fragments have a tfxd")
		}
		moofRaw, off, _ := media.SplitFragment(f.Data)
		m, err := media.DecodeMoof(append([]byte(nil), moofRaw...))
		if err != nil {
			t.Fatal(err)
		}
		ti, _ := h.Track(f.Info.TrackID)
		if m.Traf.Tfhd.TrackID != media.SwitchingSetTrackID(ti) || m.Traf.Tfdt == nil || int64(m.Traf.Tfdt.BaseMediaDecodeTime()) != f.Info.Start {
			t.Errorf("track %d at %d: track_ID %d, tfdt %v", f.Info.TrackID, f.Info.Start, m.Traf.Tfhd.TrackID, m.Traf.Tfdt)
		}
		for _, c := range m.Traf.Children {
			if u, ok := c.(*mp4.UUIDBox); ok && (u.Tfxd != nil || u.Tfrf != nil) {
				t.Errorf("track %d at %d: a Smooth box in the stored form", f.Info.TrackID, f.Info.Start)
			}
		}
		fi, err := m.Inspect(h.Trex(f.Info.TrackID), uint64(len(f.Data)-off))
		if err != nil || fi.Start != f.Info.Start || fi.Duration != f.Info.Duration {
			t.Fatalf("re-inspected: %+v %v, want %+v", fi, err, f.Info)
		}
		again, err := m.Normalize(fi, media.SwitchingSetTrackID(ti))
		if err != nil || !bytes.Equal(again, moofRaw) {
			t.Errorf("normalising the stored form changed it (%v)", err)
		}
		orig, _, err := media.MoofWithTrackID(f.Data, 7)
		if err != nil {
			t.Fatal(err)
		}
		om, _ := media.DecodeMoof(orig)
		if om.Traf.Tfhd.TrackID != 7 || len(orig) != len(moofRaw) {
			t.Errorf("MoofWithTrackID: track_ID %d, %d bytes (was %d)", om.Traf.Tfhd.TrackID, len(orig), len(moofRaw))
		}
	}
}

// BenchmarkParseStream measures the ingest's parsing of a Smooth push,
// normalisation of every fragment included (ns per fragment).
func BenchmarkParseStream(b *testing.B) {
	body, err := os.ReadFile("testdata/small.ismv")
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		p := media.NewStreamParser(bytes.NewReader(body), 1<<20, nil)
		for {
			ev, err := p.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if ev.Kind == media.EventFragment {
				n++
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/fragment")
}
