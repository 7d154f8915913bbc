package origin_test

import (
	"bytes"
	"net/http"
	"os"
	"strconv"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/sluice-media/sluice/internal/media"
)

// TestFragmentInbandEvents: an emsg box pushed before a fragment is served
// with that fragment (version 1, absolute time, before the moof), and the
// fragments without one are served as stored.
func TestFragmentInbandEvents(t *testing.T) {
	e := newEnv(t, t.TempDir())
	body, err := os.ReadFile("../media/testdata/small.ismv")
	if err != nil {
		t.Fatal(err)
	}
	var eb bytes.Buffer
	(&mp4.EmsgBox{Version: 0, TimeScale: 1000, PresentationTimeDelta: 500, EventDuration: media.UnknownDuration,
		ID: 5, SchemeIDURI: media.SchemeID3, Value: "1", MessageData: []byte("ID3 tag")}).Encode(&eb)
	// Before the second moof of the body.
	first := bytes.Index(body, []byte("moof"))
	second := first + 4 + bytes.Index(body[first+4:], []byte("moof"))
	pushed := append(append(append([]byte(nil), body[:second-4]...), eb.Bytes()...), body[second-4:]...)
	resp, err := http.Post(e.ts.URL+"/ch.isml/Streams(s)", "video/mp4", bytes.NewReader(pushed))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("push: %v %v", err, resp)
	}
	resp.Body.Close()
	v := e.view()
	var with, without int
	for _, tv := range v.Tracks {
		for _, f := range tv.Frags {
			p, _ := e.srv.Store.Point("ch")
			evs := p.Events(tv.ID, f.Start)
			r, got := e.get("/ch.isml/tracks/" + tv.ID + "/" + strconv.FormatInt(f.Start, 10) + ".m4s")
			if r.StatusCode != 200 {
				t.Fatalf("%s/%d: %d", tv.ID, f.Start, r.StatusCode)
			}
			if len(evs) == 0 {
				without++
				if string(got[4:8]) != "moof" || int64(len(got)) != f.Size {
					t.Fatalf("%s/%d without events: starts with %q, %d bytes of %d", tv.ID, f.Start, got[4:8], len(got), f.Size)
				}
				continue
			}
			with++
			back, err := media.DecodeEvents(got[:len(got)-int(f.Size)])
			if err != nil || len(back) != 1 || back[0].ID != 5 || back[0].Scheme != media.SchemeID3 ||
				back[0].Time != f.Start+500*int64(tv.Info.Timescale)/1000 || string(back[0].Data) != "ID3 tag" {
				t.Fatalf("%s/%d: served events %+v, %v", tv.ID, f.Start, back, err)
			}
			if string(got[len(got)-int(f.Size)+4:][:4]) != "moof" || !media.IsComplete(got[len(got)-int(f.Size):]) {
				t.Fatalf("%s/%d: the stored fragment does not follow the emsg", tv.ID, f.Start)
			}
			if r.Header.Get("Etag") != `"f-`+strconv.FormatInt(f.Start, 10)+"-"+strconv.Itoa(len(got))+`"` {
				t.Errorf("ETag %s for %d bytes", r.Header.Get("Etag"), len(got))
			}
			if tv.Schemes == nil || tv.Schemes[0].Scheme != media.SchemeID3 {
				t.Errorf("track view schemes %+v", tv.Schemes)
			}
		}
	}
	if with != 1 || without == 0 {
		t.Fatalf("%d fragments with events, %d without; want 1 and some", with, without)
	}
	_, mpd := e.get("/ch.isml/manifest.mpd")
	if !bytes.Contains(mpd, []byte(`<InbandEventStream schemeIdUri="https://aomedia.org/emsg/ID3" value="1">`)) {
		t.Errorf("MPD declares no ID3 InbandEventStream:\n%s", mpd)
	}
}
