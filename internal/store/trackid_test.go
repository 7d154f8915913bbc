package store

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/sluice-media/sluice/internal/media"
)

// TestStoredTrackID: a track's stored fragments say the track_ID of its
// stored header. A new track's header has its switching set's; a track
// created before that (its header says the encoder's own track_ID) keeps
// its own for the fragments it gets afterwards, so header and fragments
// never disagree.
func TestStoredTrackID(t *testing.T) {
	dir := t.TempDir()
	_, p, ids, frags := fill(t, dir)
	video := ids[1]
	if got := initTrackID(p.tracks[video].init); got != media.SwitchingSetTrackID(p.tracks[video].Info) {
		t.Fatalf("new track's header: track_ID %d", got)
	}
	// A header as stored before: track_ID 9.
	initPath := filepath.Join(dir, "ch", "t", video, initFile)
	raw, err := os.ReadFile(initPath)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for r := bits.NewFixedSliceReader(raw); r.NrRemainingBytes() > 0; {
		b, err := mp4.DecodeBoxSR(0, r)
		if err != nil {
			t.Fatal(err)
		}
		if moov, ok := b.(*mp4.MoovBox); ok {
			moov.Trak.Tkhd.TrackID = 9
			moov.Mvex.Trex.TrackID = 9
		}
		if err := b.Encode(&out); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(initPath, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	p2 := reopen(t, dir, "ch")
	last := lastOf(frags, 1)
	tv, _ := p2.View(0).Track(video)
	next := retime(t, last, tv.Frags[len(tv.Frags)-1].End(), last.Info.Duration)
	if _, err := p2.AddFragment(video, next); err != nil {
		t.Fatal(err)
	}
	data, _, err := p2.ReadFragment(video, next.Info.Start)
	if err != nil {
		t.Fatal(err)
	}
	moof, _, _ := media.SplitFragment(data)
	m, err := media.DecodeMoof(moof)
	if err != nil {
		t.Fatal(err)
	}
	if m.Traf.Tfhd.TrackID != 9 {
		t.Errorf("a fragment of a track whose header says 9 is stored with track_ID %d", m.Traf.Tfhd.TrackID)
	}
	if _, err := refOf(data, tv.Info, out.Bytes()); err != nil {
		t.Errorf("the stored fragment does not index against its header: %v", err)
	}
}
