package origin_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// moofOf decodes the moof of a fragment response.
func moofOf(t *testing.T, body []byte) *mp4.MoofBox {
	t.Helper()
	moofRaw, _, err := media.SplitFragment(body)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(moofRaw))
	if err != nil {
		t.Fatal(err)
	}
	return b.(*mp4.MoofBox)
}

// smoothBoxes counts the tfxd and tfrf boxes of a moof.
func smoothBoxes(m *mp4.MoofBox) (tfxd, tfrf int) {
	for _, c := range m.Traf.Children {
		if u, ok := c.(*mp4.UUIDBox); ok {
			if u.Tfxd != nil {
				tfxd++
			}
			if u.Tfrf != nil {
				tfrf++
			}
		}
	}
	return tfxd, tfrf
}

// TestClientsOfOtherFrameworks pushes a real ffmpeg ismv with two video
// renditions (the encoder numbers its tracks 1, 2 and 3) and checks what
// demuxers other than the browser players need:
//
//   - one track_ID per switching set: every Representation of a DASH
//     AdaptationSet has the same track_ID in its init segment (tkhd, trex)
//     and its fragments (tfhd), and an origin stores the same bytes every
//     time (a second origin fed the same push stores them byte for byte);
//   - DASH and HLS fragments carry no Smooth tfxd or tfrf box, and their tfdt
//     says the listed time; Smooth fragments carry both, with the track_ID
//     the Smooth ingest had;
//   - the stream as pulled by another tier (GET Streams(<id>)) numbers the
//     tracks as its header does.
func TestClientsOfOtherFrameworks(t *testing.T) {
	testmedia.FFmpeg(t)
	file := testmedia.ISMVFile(t, t.TempDir(), 6, 2)
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	push := func(e *env) {
		resp, err := http.Post(e.ts.URL+"/ch.isml/Streams(s)", "video/mp4", bytes.NewReader(body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("push: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	e := newEnv(t, t.TempDir())
	push(e)
	v := e.view()
	if len(v.Tracks) != 3 {
		t.Fatalf("%d tracks, want 3", len(v.Tracks))
	}
	_, mpdBody := e.get("/ch.isml/manifest.mpd")
	m, err := mpd.ReadFromString(string(mpdBody))
	if err != nil {
		t.Fatal(err)
	}
	streamIDs := map[string]uint32{}
	for _, tv := range v.Tracks {
		streamIDs[tv.ID] = tv.Info.TrackID
	}
	seen := map[uint32]string{} // track_ID -> AdaptationSet
	for _, as := range m.Periods[0].AdaptationSets {
		set := string(as.ContentType)
		ids := map[uint32]bool{}
		for _, r := range as.Representations {
			_, init := e.get("/ch.isml/tracks/" + r.Id + "/init.mp4")
			h, err := media.ParseCMAFHeader(init)
			if err != nil {
				t.Fatalf("%s init: %v", r.Id, err)
			}
			if len(h.Tracks) != 1 || h.Trex(h.Tracks[0].TrackID) == nil {
				t.Fatalf("%s init: %d tracks, trex %v", r.Id, len(h.Tracks), h.Trex(h.Tracks[0].TrackID))
			}
			ids[h.Tracks[0].TrackID] = true
			tv, _ := v.Track(r.Id)
			for _, f := range tv.Frags {
				_, frag := e.get("/ch.isml/tracks/" + r.Id + "/" + strconv.FormatInt(f.Start, 10) + ".m4s")
				mf := moofOf(t, frag)
				ids[mf.Traf.Tfhd.TrackID] = true
				if x, r := smoothBoxes(mf); x+r != 0 {
					t.Errorf("%s/%d (DASH, HLS): %d tfxd, %d tfrf", tv.ID, f.Start, x, r)
				}
				if mf.Traf.Tfdt == nil || int64(mf.Traf.Tfdt.BaseMediaDecodeTime()) != f.Start {
					t.Errorf("%s/%d: tfdt %v", tv.ID, f.Start, mf.Traf.Tfdt)
				}
			}
			// Smooth: tfxd and tfrf, the ingest's own track_ID.
			f := tv.Frags[0]
			_, sm := e.get("/ch.isml/QualityLevels(" + strconv.Itoa(tv.Info.Bitrate) + ")/Fragments(" + tv.Info.Name + "=" + strconv.FormatInt(f.Start, 10) + ")")
			mf := moofOf(t, sm)
			if x, r := smoothBoxes(mf); x != 1 || r != 1 || mf.Traf.Tfhd.TrackID != tv.Info.TrackID {
				t.Errorf("%s (Smooth): %d tfxd, %d tfrf, track_ID %d (want 1, 1, %d)", tv.ID, x, r, mf.Traf.Tfhd.TrackID, tv.Info.TrackID)
			}
		}
		if len(ids) != 1 {
			t.Errorf("AdaptationSet %s: track_IDs %v across its renditions, want one", set, ids)
		}
		for id := range ids {
			if other, ok := seen[id]; ok {
				t.Logf("AdaptationSets %s and %s share track_ID %d (separate headers)", other, set, id)
			}
			seen[id] = set
		}
	}
	if len(m.Periods[0].AdaptationSets[0].Representations) != 2 {
		t.Fatalf("want two video renditions in one AdaptationSet:\n%s", mpdBody)
	}
	if a, b := streamIDs[m.Periods[0].AdaptationSets[0].Representations[0].Id], streamIDs[m.Periods[0].AdaptationSets[0].Representations[1].Id]; a == b {
		t.Fatalf("the encoder gave both renditions track_ID %d: nothing to unify", a)
	}

	// A second origin fed the same push stores the same bytes.
	e2 := newEnv(t, t.TempDir())
	push(e2)
	for _, tv := range v.Tracks {
		_, a := e.get("/ch.isml/tracks/" + tv.ID + "/init.mp4")
		_, b := e2.get("/ch.isml/tracks/" + tv.ID + "/init.mp4")
		if !bytes.Equal(a, b) {
			t.Errorf("%s: init differs between two origins", tv.ID)
		}
		for _, f := range tv.Frags {
			u := "/ch.isml/tracks/" + tv.ID + "/" + strconv.FormatInt(f.Start, 10) + ".m4s"
			_, a := e.get(u)
			_, b := e2.get(u)
			if !bytes.Equal(a, b) {
				t.Errorf("%s: differs between two origins", u)
			}
		}
	}

	// Pulled by another tier: the stream's header and its own track_IDs.
	resp, err := http.Get(e.ts.URL + "/ch.isml/Streams(s)")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pull: %v %v", err, resp)
	}
	pulled, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	point, err := e.srv.Store.Point("ch")
	if err != nil {
		t.Fatal(err)
	}
	p := media.NewStreamParser(bytes.NewReader(pulled), 1<<22, nil)
	n := 0
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("pulled stream: %v", err)
		}
		if ev.Kind != media.EventFragment {
			continue
		}
		n++
		ti, _ := p.Header().Track(ev.Fragment.Info.TrackID)
		var want string
		for _, tv := range v.Tracks {
			if tv.Info.TrackID == ev.Fragment.Info.TrackID {
				want = tv.ID
			}
		}
		if tv, ok := v.Track(want); !ok || tv.Info.Kind != ti.Kind {
			t.Fatalf("pulled fragment of track_ID %d is %s, the header says a %s track", ev.Fragment.Info.TrackID, want, ti.Kind)
		}
		// Parsed and normalised again, it is the stored fragment, byte for
		// byte.
		if stored, _, err := point.ReadFragment(want, ev.Fragment.Info.Start); err != nil || !bytes.Equal(stored, ev.Fragment.Data) {
			t.Fatalf("pulled fragment %s/%d is not the stored one once normalised (%v)", want, ev.Fragment.Info.Start, err)
		}
	}
	total := 0
	for _, tv := range v.Tracks {
		total += len(tv.Frags)
	}
	if n != total {
		t.Errorf("pulled %d fragments, stored %d", n, total)
	}
}
