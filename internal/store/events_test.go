package store

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/sluice-media/sluice/internal/media"
)

// TestEventsRoundTrip: events stored with fragments and cues come back
// after a restart, copies on two tracks are listed once, retention deletes
// them with their fragments, and a cut takes those in its range.
func TestEventsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, p, ids, frags := emptyPoint(t, dir)
	var video, audio []*media.Fragment
	for _, f := range frags {
		if id := ids[f.Info.TrackID]; p.tracks[id].Info.Kind == "video" {
			video = append(video, f)
		} else {
			audio = append(audio, f)
		}
	}
	if len(video) < 4 || len(audio) < 4 {
		t.Fatalf("fixture: %d video, %d audio fragments", len(video), len(audio))
	}
	ev := func(f *media.Fragment, ts uint32, id uint32) media.Emsg {
		return media.Emsg{Scheme: media.SchemeSCTE35, ID: id, Timescale: ts, Time: f.Info.Start + 1,
			Duration: media.UnknownDuration, Data: []byte{0xFC, byte(id)}}
	}
	vts := p.tracks[ids[video[0].Info.TrackID]].Info.Timescale
	ats := p.tracks[ids[audio[0].Info.TrackID]].Info.Timescale
	// Event 1 rides on both tracks (at the same time); event 2 on video only.
	video[0].Events = []media.Emsg{ev(video[0], vts, 1)}
	audio[0].Events = []media.Emsg{{Scheme: media.SchemeSCTE35, ID: 1, Timescale: ats,
		Time: (video[0].Info.Start + 1) * int64(ats) / int64(vts), Duration: media.UnknownDuration, Data: []byte{0xFC, 1}}}
	video[2].Events = []media.Emsg{ev(video[2], vts, 2)}
	for _, f := range frags {
		if _, err := p.AddFragment(ids[f.Info.TrackID], f); err != nil {
			t.Fatal(err)
		}
	}
	cueAt := fromTicks(video[3].Info.Start, vts)
	cue := media.Emsg{Scheme: media.SchemeSCTE35, ID: 9, Timescale: CueTimescale, Time: toTicks(cueAt, CueTimescale),
		Duration: 30 * CueTimescale, Data: []byte{0xFC, 9}}
	if err := p.AddCue(cue); err != nil {
		t.Fatal(err)
	}
	if err := p.AddCue(cue); err != nil || len(p.Cues()) != 1 {
		t.Fatalf("a repeated cue: %v, %d cues", err, len(p.Cues()))
	}
	ids3 := func(v View) []uint32 {
		var out []uint32
		for _, e := range v.Events {
			out = append(out, e.ID)
		}
		return out
	}
	if got := ids3(p.View(0)); !reflect.DeepEqual(got, []uint32{1, 2, 9}) {
		t.Fatalf("events %v, want [1 2 9]", got)
	}
	q := reopen(t, dir, "ch")
	v := q.View(0)
	if got := ids3(v); !reflect.DeepEqual(got, []uint32{1, 2, 9}) {
		t.Fatalf("after restart: events %v, want [1 2 9]", got)
	}
	if e := v.Events[1]; e.Time != video[2].Info.Start+1 || e.Timescale != vts {
		t.Fatalf("event 2 %+v: time %d/%d wanted", e, video[2].Info.Start+1, vts)
	}
	// A cut from the second video fragment on takes events 2 and 9.
	from := fromTicks(video[1].Info.Start, vts)
	if _, err := s.Cut("ch", "clips/ev", from, from+cueAt); err != nil {
		t.Fatal(err)
	}
	a, err := s.Point("clips/ev")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids3(a.View(0)); !reflect.DeepEqual(got, []uint32{2, 9}) {
		t.Fatalf("cut: events %v, want [2 9]", got)
	}
	// Retention drops the events of the fragments it deletes.
	vid := ids[video[0].Info.TrackID]
	last := video[len(video)-1]
	if _, err := p.Prune(fromTicks(last.Info.Start+int64(last.Info.Duration)-video[1].Info.Start, vts)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ch", "t", vid, eventsName(video[0].Info.Start))); !os.IsNotExist(err) {
		t.Fatalf("events file of a pruned fragment: %v", err)
	}
	if got := ids3(p.View(0)); !reflect.DeepEqual(got, []uint32{2, 9}) {
		t.Fatalf("after prune: events %v, want [2 9]", got)
	}
	// In-band events of other schemes are served with their fragments,
	// not listed; the track's schemes name them.
	id3 := []media.Emsg{{Scheme: media.SchemeID3, Value: "1", ID: 5, Timescale: vts, Time: last.Info.Start + int64(last.Info.Duration),
		Duration: media.UnknownDuration, Data: []byte("ID3")}}
	next := *last
	if next.Data, next.Info, err = media.Shift(last.Data, last.Info, int64(last.Info.Duration)); err != nil {
		t.Fatal(err)
	}
	next.Events = id3
	if _, err := p.AddFragment(vid, &next); err != nil {
		t.Fatal(err)
	}
	if got := ids3(p.View(0)); !reflect.DeepEqual(got, []uint32{2, 9}) {
		t.Fatalf("with an ID3 tag: events %v, want [2 9]", got)
	}
	if got := p.Events(vid, next.Info.Start); !reflect.DeepEqual(got, id3) {
		t.Fatalf("events of the fragment %+v", got)
	}
	tv, _ := p.View(0).Track(vid)
	if want := []EventScheme{{media.SchemeID3, "1"}, {Scheme: media.SchemeSCTE35}}; !reflect.DeepEqual(tv.Schemes, want) {
		t.Fatalf("schemes %+v, want %+v", tv.Schemes, want)
	}
}

// TestEventsWithoutFragment: an events file whose fragment never reached
// the disk (a crash between the two writes) is not listed after a
// restart, and the fragment's resend replaces it.
func TestEventsWithoutFragment(t *testing.T) {
	dir := t.TempDir()
	_, p, ids, frags := emptyPoint(t, dir)
	f := frags[0]
	id := ids[f.Info.TrackID]
	ts := p.tracks[id].Info.Timescale
	stale := []media.Emsg{{Scheme: media.SchemeSCTE35, ID: 1, Timescale: ts, Time: f.Info.Start + 1, Duration: media.UnknownDuration, Data: []byte("old")}}
	if err := p.writeEvents(id, f.Info.Start, stale); err != nil {
		t.Fatal(err)
	}
	q := reopen(t, dir, "ch")
	if evs := q.View(0).Events; len(evs) != 0 {
		t.Fatalf("events of a fragment not stored are listed: %+v", evs)
	}
	g := *f
	g.Events = []media.Emsg{{Scheme: media.SchemeSCTE35, ID: 2, Timescale: ts, Time: f.Info.Start + 2, Duration: media.UnknownDuration, Data: []byte("new")}}
	if _, err := q.AddFragment(id, &g); err != nil {
		t.Fatal(err)
	}
	for _, pt := range []*Point{q, reopen(t, dir, "ch")} {
		if evs := pt.View(0).Events; len(evs) != 1 || string(evs[0].Data) != "new" {
			t.Fatalf("after the resend: %+v", evs)
		}
	}
}
