package store

import (
	"bytes"
	"testing"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/parts"
)

// wholePart is fragment f as the single part 0 of itself.
func wholePart(f *media.Fragment) media.Part {
	return media.Part{FragStart: f.Info.Start, Info: f.Info, Data: f.Data}
}

func TestParts(t *testing.T) {
	_, p, ids, frags := emptyPoint(t, t.TempDir())
	var video []*media.Fragment
	var id string
	for _, f := range frags {
		if tid := ids[f.Info.TrackID]; tid != "" {
			if ti, _ := p.TrackInfo(tid); ti.Kind == "video" {
				video, id = append(video, f), tid
			}
		}
	}
	if len(video) < 6 {
		t.Fatalf("fixture has %d video fragments", len(video))
	}
	f0 := video[0]
	changed := p.Changed()
	if ok, err := p.AddPart(id, "a", wholePart(f0)); !ok || err != nil {
		t.Fatalf("first part: %v %v", ok, err)
	}
	select {
	case <-changed:
	default:
		t.Error("a part did not signal a change")
	}
	if ok, _ := p.AddPart(id, "b", wholePart(f0)); ok {
		t.Error("a second stream's copy of a part was taken")
	}
	late := wholePart(f0)
	late.Index = 2
	if ok, _ := p.AddPart(id, "a", late); ok {
		t.Error("a part out of order was taken")
	}
	data, ref, ok, _ := p.Part(id, f0.Info.Start)
	if !ok || !bytes.Equal(data, f0.Data) || ref.Duration != f0.Info.Duration || !ref.Key {
		t.Errorf("Part: ok %v, ref %+v", ok, ref)
	}
	if _, _, ok, pending := p.Part(id, f0.Info.Start+int64(f0.Info.Duration)); ok || !pending {
		t.Errorf("the part after the newest: ok %v pending %v, want a pending one", ok, pending)
	}
	if _, _, ok, pending := p.Part(id, f0.Info.Start-1); ok || pending {
		t.Errorf("a part before the kept ones: ok %v pending %v", ok, pending)
	}
	tv, _ := p.View(0).Track(id)
	if o, ok := tv.Open(); !ok || len(o.Parts) != 1 || tv.PartTarget != f0.Info.Duration {
		t.Errorf("open fragment %+v %v, part target %d", o, ok, tv.PartTarget)
	}

	// Stored, the fragment's parts are complete; a fragment whose parts
	// do not cover it (another stream completed it) keeps none.
	if _, err := p.AddFragment(id, f0); err != nil {
		t.Fatal(err)
	}
	tv, _ = p.View(0).Track(id)
	if _, ok := tv.Open(); ok {
		t.Error("a stored fragment is still open")
	}
	if ps, ok := tv.PartsOf(f0.Info.Start); !ok || len(ps) != 1 {
		t.Errorf("parts of the stored fragment: %v %v", ps, ok)
	}
	short := wholePart(video[1])
	short.Info.Duration /= 2
	if ok, _ := p.AddPart(id, "a", short); !ok {
		t.Fatal("part of the next fragment refused")
	}
	if _, err := p.AddFragment(id, video[1]); err != nil {
		t.Fatal(err)
	}
	tv, _ = p.View(0).Track(id)
	if _, ok := tv.PartsOf(video[1].Info.Start); ok {
		t.Error("parts that do not cover their fragment were kept")
	}
	if ok, _ := p.AddPart(id, "a", wholePart(video[1])); ok {
		t.Error("a part of a stored fragment was taken")
	}

	// Only the newest fragments' parts are kept.
	for _, f := range video[2:6] {
		if ok, _ := p.AddPart(id, "a", wholePart(f)); !ok {
			t.Fatalf("part of %d refused", f.Info.Start)
		}
		if _, err := p.AddFragment(id, f); err != nil {
			t.Fatal(err)
		}
	}
	tv, _ = p.View(0).Track(id)
	if len(tv.Parts) != parts.Kept || tv.Parts[0].Start != video[2].Info.Start {
		t.Errorf("%d fragments' parts kept from %d, want %d from %d", len(tv.Parts), tv.Parts[0].Start, parts.Kept, video[2].Info.Start)
	}
	if e := p.VideoEdge(); !e.Chunked || e.Duration <= 0 {
		t.Errorf("video edge %+v", e)
	}
	// An ended track keeps its last parts (a chunked pull may still be
	// forwarding them); its playlists are no longer low-latency
	// (manifest.LowLatency).
	if err := p.EndTrack(id); err != nil {
		t.Fatal(err)
	}
	tv, _ = p.View(0).Track(id)
	if len(tv.Parts) != parts.Kept || !tv.Ended {
		t.Errorf("ended track: %d fragments' parts kept, ended %v", len(tv.Parts), tv.Ended)
	}
}
